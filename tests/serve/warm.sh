#!/bin/sh
# tests/serve/warm.sh KILN: `kiln serve` prepares every prompt pass and the decode step at startup, so with a warm
# kernel cache no request compiles. Starts the server once to fill the cache, then again with DEBUG=1 and sends
# 20 prompts of 20 lengths (token-id prompts to /v1/completions): every DEBUG=1 count after "listening on" must say
# 0 compiled and 0 read from the disk cache. The first request after each of three starts is a 100-token prompt whose
# whole reply (max_tokens 1: the first token) is timed against the same request on the warm server (the median of
# three 100-token prompts of other tokens, in the same run; the server's own prefill time, prompt_ms, beside it) and
# the median ratio of the three starts printed (goal: 1.5). Skips (77) without ../shared/testdata or curl.
set -u
KILN=${1:?usage: warm.sh path/to/kiln}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
MODEL=$TD/models/tiny-qwen2-Q4_K_M.gguf

skip_without_file "$MODEL"
skip_without curl

# Start a server; $1: log file, rest: a command prefix (env DEBUG=1).
start() {
  log=$1
  shift
  "$@" "$KILN" serve -m "$MODEL" --port 0 -c 512 --parallel 1 2>"$log" &
  SERVER=$!
  serve_wait "$log"
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

# three starts with a warm cache; each: the first request is a 100-token prompt, then three more of other tokens.
# The first start also sends the 20 lengths and checks its DEBUG=1 counts.
med3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
ratios=
for run in 1 2 3; do
  start "$TMP/warm$run.log" env DEBUG=1
  first=$(ask 100 $((1000 + run)))
  if [ $run = 1 ]; then
    if grep -q "scheduled [0-9]* kernels" "$TMP/warm1.log" && ! grep "scheduled [0-9]* kernels" "$TMP/warm1.log" | grep -qv "(0 compiled, "; then
      ok "startup with a warm cache compiles nothing ($(grep "prompt passes" "$TMP/warm1.log" | sed 's/.*ready/ready/'))"
    else
      bad "startup with a warm cache compiled kernels:"; grep "scheduled" "$TMP/warm1.log" | grep -v "(0 compiled, "
    fi
    n=0
    for len in 3 5 7 11 13 22 37 50 77 99 127 150 190 255 300 333 383 411 450 490; do
      ask $len $((2000 + len)) >/dev/null
      grep -q '"choices"' "$TMP/body" && n=$((n + 1))
    done
    [ $n = 20 ] && ok "20 prompts of 20 lengths answered" || bad "only $n of 20 prompts answered"
  fi
  a=$(ask 100 $((3000 + run)))
  pa=$(sed -n 's/.*"prompt_ms":\([0-9.e+-]*\).*/\1/p' "$TMP/body")
  b=$(ask 100 $((4000 + run)))
  pb=$(sed -n 's/.*"prompt_ms":\([0-9.e+-]*\).*/\1/p' "$TMP/body")
  c=$(ask 100 $((5000 + run)))
  pc=$(sed -n 's/.*"prompt_ms":\([0-9.e+-]*\).*/\1/p' "$TMP/body")
  later=$(med3 "$a" "$b" "$c")
  pms=$(med3 "$pa" "$pb" "$pc")
  r=$(awk -v a="$first" -v b="$later" 'BEGIN { printf "%.2f", a / b }')
  echo "start $run: first 100-token prompt's reply in $(awk -v a="$first" 'BEGIN { printf "%.1f", a * 1000 }') ms;" \
    "later 100-token prompts: reply $(awk -v a="$later" 'BEGIN { printf "%.1f", a * 1000 }') ms (median of 3), prefill $pms ms (server timings); ratio $r"
  ratios="$ratios $r"
  sed -n "$(($(grep -n "listening on" "$TMP/warm$run.log" | head -1 | cut -d: -f1) + 1)),\$p" "$TMP/warm$run.log" |
    grep "scheduled [0-9]* kernels" >>"$TMP/after"
  stop
done
touch "$TMP/after"
if ! grep -v "(0 compiled, 0 disk-cache hits" "$TMP/after" >/dev/null; then
  ok "no request compiled or loaded a kernel"
else
  bad "requests compiled or loaded kernels:"; grep -v "(0 compiled, 0 disk-cache hits" "$TMP/after"
fi
# the first request after startup against the same request on a warm server (both include HTTP, tokenizing and
# sampling); the median over three starts, as this machine class is shared and noisy
# Reported, not yet held to 1.5x: since steps are shared by all slots (continuous batching) the first request after a
# start takes 1.5-1.8x a warm one on the loaded development machine although it compiles and loads nothing (checked
# above); where the rest goes (first touch of scratch or KV memory?) is open (issue 8).
ratio=$(med3 $ratios)
echo "first 100-token prompt after a start: $ratio x a warm one (median of$ratios; the goal is 1.5)"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
