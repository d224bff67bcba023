#!/bin/sh
# kiln run --dry-run on the emulated AMD GPU plans memory against its VRAM: a Qwen2.5-14B Q4_K_M (the real file's
# tensor table, written as a sparse file with no weight data) with a 16k context fits a 20 GB RX 7900 XT, and does
# not fit 11 GB (8.4 GiB of weights and 3 GiB of KV cache).
kiln="$1"
tests=$(dirname "$0")
pass=0 fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$tests/shaped_gguf.py" "$tmp/q14.gguf" qwen2.5-14b-q4_k_m >/dev/null || { echo "FAIL shaped_gguf.py"; exit 1; }

DEVICE=AMD:EMU "$kiln" run -m "$tmp/q14.gguf" --dry-run -c 16384 >"$tmp/o" 2>&1
rc=$?
cat "$tmp/o"
[ $rc -eq 0 ] && grep -q "of 20480.0 MiB -> fits" "$tmp/o" && ok || bad "14B Q4_K_M, 16k context, on a 20 GiB AMD:EMU"
grep -q "context 16384 tokens" "$tmp/o" && ok || bad "the plan is for 16384 tokens"
DEVICE=AMD:EMU AMD_EMU_VRAM=11 "$kiln" run -m "$tmp/q14.gguf" --dry-run -c 16384 >"$tmp/o" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "of 11264.0 MiB -> DOES NOT FIT" "$tmp/o" && ok || bad "11 GiB: $(cat "$tmp/o")"
DEVICE=AMD "$kiln" run -m "$tmp/q14.gguf" --dry-run >"$tmp/o" 2>&1
if [ ! -e /dev/kfd ]; then
  grep -q "/dev/kfd" "$tmp/o" && ok || bad "DEVICE=AMD without /dev/kfd: $(cat "$tmp/o")"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
