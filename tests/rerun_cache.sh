#!/bin/sh
# A second run of the same program compiles nothing: every kernel comes from the disk cache (DEBUG=1 shows it),
# and `kiln cache stats` counts the hits.
kiln="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export KILN_CACHE_DIR="$dir"
pass=0 fail=0
first=$(DEBUG=1 "$kiln" demo 2>&1) || { echo "FAIL first run: $first"; echo "0 passed, 1 failed"; exit 1; }
second=$(DEBUG=1 "$kiln" demo 2>&1) || { echo "FAIL second run: $second"; echo "0 passed, 1 failed"; exit 1; }
echo "$first" | grep -q "scheduled [0-9]* kernels ([1-9][0-9]* compiled, 0 disk-cache hits" && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL first run should compile: $first"; }
echo "$second" | grep -q "scheduled [0-9]* kernels (0 compiled, [1-9][0-9]* disk-cache hits" && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL second run should only hit the cache: $second"; }
stats=$("$kiln" cache stats 2>&1)
echo "$stats" | grep -qi "hits" && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL cache stats: $stats"; }
echo "$stats"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
