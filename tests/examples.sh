#!/bin/sh
# Out-of-tree build: `meson install` into a scratch directory, then every program in examples/ compiled with
# nothing but `pkg-config --cflags --libs kiln` from that installed tree, run, and checked (each example compares
# itself against plain C and exits non-zero on a mismatch).
build=${1:?usage: examples.sh BUILD_DIR SOURCE_DIR}
src=${2:?usage: examples.sh BUILD_DIR SOURCE_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
meson install -C "$build" --destdir "$tmp/root" --no-rebuild >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; echo "0 passed, 1 failed"; exit 1; }
prefix=$(meson introspect "$build" --buildoptions | python3 -c "import json,sys;print(next(o['value'] for o in json.load(sys.stdin) if o['name']=='prefix'))")
pc=$(find "$tmp/root" -name kiln.pc | head -1)
[ -n "$pc" ] || { echo "FAIL: meson install wrote no kiln.pc"; echo "0 passed, 1 failed"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")"
flags=$(pkg-config --define-variable=prefix="$tmp/root$prefix" --cflags --libs kiln) || { echo "FAIL: pkg-config kiln"; exit 1; }
for ex in "$src"/examples/*.c; do
  name=$(basename "$ex" .c)
  # only the installed headers: the source tree is not on the include path
  if cc -std=gnu11 -O2 "$ex" -o "$tmp/$name" $flags 2>"$tmp/cc.log"; then
    if out=$(KILN_CACHE_DIR="$tmp/cache" "$tmp/$name" 2>&1); then pass=$((pass+1)); echo "ok   $name: $out"
    else fail=$((fail+1)); echo "FAIL $name: $out"; fi
  else
    fail=$((fail+1)); echo "FAIL $name does not compile against the installed kiln:"; cat "$tmp/cc.log"
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
