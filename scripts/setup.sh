#!/bin/sh
# Installs what kiln needs on Debian 12 (only what is missing), then configures and builds it in ./build.
set -e
cd "$(dirname "$0")/.."
PKGS="meson ninja-build pkg-config gcc llvm-19-dev uthash-dev libcjson-dev libpcre2-dev libmicrohttpd-dev
libusb-1.0-0-dev libcurl4-openssl-dev python3 python3-jinja2 curl clang-19 libclang-rt-19-dev lld qemu-user chromium
graphviz"
# lld and qemu-user: the aarch64 kernel test links a freestanding runner and runs it under qemu-aarch64 (qemu-user is
# every user-mode emulator in one Debian package: ~97 MiB installed plus libcapstone4 6 MiB; no aarch64 libc needed)
# chromium: the VIZ=1 report is opened headless by tests/viz.sh (puppeteer-core from npm)
# graphviz: GRAPH=1 renders its DOT files to SVG with `dot` (tests/cli.sh checks it; ~3 MiB and ten small libraries
# beside chromium's)
MISSING=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING="$MISSING $p"
done
# node and npm (the server tests drive kiln with the openai npm package) may come from outside Debian
command -v node >/dev/null 2>&1 || MISSING="$MISSING nodejs"
command -v npm >/dev/null 2>&1 || MISSING="$MISSING npm"
if [ -n "$MISSING" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "kiln setup: installing$MISSING"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
fi
[ -d build ] || meson setup build --buildtype=release -Db_ndebug=false >/dev/null
ninja -C build >/dev/null
echo "kiln setup: built ./build/apps/kiln"
