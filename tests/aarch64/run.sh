#!/bin/sh
# tests/aarch64/run.sh GEN SRCDIR: the aarch64 kernels under qemu-aarch64. GEN (x86, gen.c) compiles every block
# format's GEMV and prefill matmul for aarch64 with NEON + dotprod and writes their objects and reference cases;
# runner.c is cross-compiled freestanding (no aarch64 libc needed) with clang and linked by ld.lld with them, then
# runs under qemu-aarch64 (Debian: qemu-user). Skips (77) when qemu-aarch64, clang or ld.lld is missing.
set -u
GEN=${1:?usage: run.sh GEN SRCDIR}
SRC=${2:?usage: run.sh GEN SRCDIR}
QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static) || { echo "skip: qemu-aarch64 is not installed (Debian: apt-get install qemu-user)"; exit 77; }
CC=$(command -v clang-19 || command -v clang) || { echo "skip: no clang to cross-compile the aarch64 runner"; exit 77; }
command -v ld.lld >/dev/null || { echo "skip: ld.lld is not installed (Debian: lld-19)"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
"$GEN" "$TMP" || { echo "FAIL: generating the aarch64 kernels"; exit 1; }
"$CC" --target=aarch64-linux-gnu -march=armv8.2-a+dotprod -ffreestanding -fno-builtin -fno-stack-protector -nostdlib \
  -static -fuse-ld=lld -O1 -I"$SRC" -o "$TMP/runner" "$SRC/runner.c" "$TMP/cases.c" "$TMP"/k*.o ||
  { echo "FAIL: cross-compiling and linking the aarch64 runner"; exit 1; }
"$QEMU" -cpu max "$TMP/runner"
