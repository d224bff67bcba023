#!/bin/sh
# tests/serve/warm.sh KILN: `kiln serve` prepares every prompt pass and the decode step at startup, so with a warm
# kernel cache no request compiles. Starts the server once to fill the cache, then again with DEBUG=1 and sends
# 20 prompts of 20 lengths (token-id prompts to /v1/completions): every DEBUG=1 count after "listening on" must say
# 0 compiled and 0 read from the disk cache. The first request after the second start is a 100-token prompt whose
# whole reply (max_tokens 1: the first token) must arrive within 1.5x the prefill time of 100 tokens, taken from the
# server's own timings (prompt_ms) of a later 100-token prompt of other tokens in the same run; the ratio is
# printed. Skips (77) without ../shared/testdata or curl.
set -u
KILN=${1:?usage: warm.sh path/to/kiln}
HERE=$(cd "$(dirname "$0")" && pwd)
TD=${KILN_TESTDATA:-$HERE/../../../shared/testdata}
MODEL=$TD/models/tiny-qwen2-Q4_K_M.gguf
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

[ -f "$MODEL" ] || { echo "skip: $MODEL is missing (../shared/testdata)"; exit 77; }
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }

TMP=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

start() {
  log=$1
  shift
  "$@" "$KILN" serve -m "$MODEL" --port 0 -c 512 --parallel 1 2>"$log" &
  SERVER=$!
  i=0
  while ! grep -q "listening on" "$log" 2>/dev/null; do
    if ! kill -0 "$SERVER" 2>/dev/null; then echo "the server did not start:"; cat "$log"; exit 1; fi
    i=$((i + 1))
    [ $i -gt 3000 ] && { echo "the server did not start within 300 s"; cat "$log"; exit 1; }
    sleep 0.1
  done
  PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  BASE=http://127.0.0.1:$PORT
}
stop() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=; }

# n token ids starting at a (distinct first tokens: no prompt shares a prefix with another)
ids() { seq -s, "$2" 7 $(($2 + 7 * ($1 - 1))); }
# POST a prompt of $1 tokens from id $2 with max_tokens 1; the body goes to $TMP/body, the total time to stdout
ask() {
  curl -s -o "$TMP/body" -w '%{time_total}' -H "Content-Type: application/json" \
    -d "{\"prompt\":[$(ids "$1" "$2")],\"max_tokens\":1,\"temperature\":0}" "$BASE/v1/completions"
}

start "$TMP/first.log" env
grep "prompt passes" "$TMP/first.log"
stop

start "$TMP/warm.log" env DEBUG=1
grep "prompt passes" "$TMP/warm.log"
if grep -q "scheduled [0-9]* kernels" "$TMP/warm.log" && ! grep "scheduled [0-9]* kernels" "$TMP/warm.log" | grep -qv "(0 compiled, "; then
  ok "startup with a warm cache compiles nothing"
else
  bad "startup with a warm cache compiled kernels:"; grep "scheduled" "$TMP/warm.log" | grep -v "(0 compiled, "
fi
listen=$(grep -n "listening on" "$TMP/warm.log" | head -1 | cut -d: -f1)

first=$(ask 100 1000)
grep -q '"prompt_n":100' "$TMP/body" || echo "note: the first prompt counted $(sed -n 's/.*"prompt_n":\([0-9]*\).*/\1/p' "$TMP/body") tokens"
n=0
for len in 3 5 7 11 13 22 37 50 77 99 127 150 190 255 300 333 383 411 450 490; do
  ask $len $((2000 + len)) >/dev/null
  grep -q '"choices"' "$TMP/body" && n=$((n + 1))
done
ask 100 3000 >/dev/null
pms=$(sed -n 's/.*"prompt_ms":\([0-9.e+-]*\).*/\1/p' "$TMP/body")
[ $n = 20 ] && ok "20 prompts of 20 lengths answered" || bad "only $n of 20 prompts answered"

sed -n "$((listen + 1)),\$p" "$TMP/warm.log" | grep "scheduled [0-9]* kernels" >"$TMP/after"
if ! grep -v "(0 compiled, 0 disk-cache hits" "$TMP/after" >/dev/null; then
  ok "no request compiled or loaded a kernel ($(wc -l <"$TMP/after") DEBUG=1 counts after startup)"
else
  bad "requests compiled or loaded kernels:"; grep -v "(0 compiled, 0 disk-cache hits" "$TMP/after"
fi

if [ -n "$pms" ]; then
  ratio=$(awk -v a="$first" -v b="$pms" 'BEGIN { printf "%.2f", a * 1000 / b }')
  echo "first 100-token prompt after startup: reply in $(awk -v a="$first" 'BEGIN { printf "%.1f", a * 1000 }') ms;" \
    "prefill of 100 tokens (server timings): $pms ms; ratio $ratio"
  if awk -v r="$ratio" 'BEGIN { exit !(r <= 1.5) }'; then ok "first token within 1.5x the prefill time ($ratio)"
  else bad "first token took $ratio x the prefill time (limit 1.5)"; fi
else
  bad "no prompt_ms in the reply: $(head -c 300 "$TMP/body")"
fi
stop
echo "$pass passed, $fail failed"
[ $fail = 0 ]
