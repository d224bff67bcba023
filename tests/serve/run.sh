#!/bin/sh
# tests/serve/run.sh KILN: starts `kiln serve` on a free loopback port with a testdata model and checks it with real
# HTTP clients: curl (framing, headers, keep-alive, 100-continue, auth) and the openai npm package (client.mjs), then
# shuts it down with SIGTERM in the middle of a stream. Skips (77) when ../shared/testdata, curl or node is missing.
# The parts whose cost depends on the host's speed can be sized (the emulated GPU runs this suite: test serve_amd_emu):
#   KILN_SERVE_PING_WORDS  words of the prompt evaluated while pings are checked (default 450)
#   ONLY                   a regular expression: the client.mjs checks to run on the main server (default all)
#   KILN_SOAK_SECONDS      how long client.mjs's 16 concurrent clients stream (default 60)
#   KILN_SERVE_MODELS      0: leave out the tiny-qwen3, tiny-llama3 and tiny-mistral servers (default 1)
#   KILN_SERVE_OLLAMA      0: leave out the ollama client's checks on the main server (default 1)
#   KILN_SERVE_TIME_SCALE  multiplies the bounds of the waits for a condition (server ready, stream started, slots
#                          idle, server gone) and of a client's request (default 1; lib.sh's wait_until)
set -u
KILN=${1:?usage: run.sh path/to/kiln}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
MODEL=$TD/models/tiny-qwen2-Q4_K_M.gguf
KEY=sk-test-$$
N_CTX=512
MAX_BODY=262144
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

skip_without_file "$MODEL"
skip_without curl

# Start a server; sets SERVER (pid) and BASE. $1: log file, rest: extra options.
start() {
  log=$1
  shift
  "$KILN" serve -m "$MODEL" --port 0 -c $N_CTX --parallel 4 --api-key "$KEY" --alias "$ALIAS" \
    --max-body $MAX_BODY --ping-interval 0.1 "$@" 2>"$log" &
  SERVER=$!
  serve_wait "$log"
}

ALIAS=tiny-qwen2
# a short grace: the SIGTERM check at the end cuts a stream that must still be running when the grace ends, and
# tiny-qwen2 decodes the rest of its 512-token context in about a second (~550 tok/s), so a grace of 0.5 s lost
# that race now and then once decode got faster
start "$TMP/server.log" --shutdown-grace 0.1
echo "server at $BASE (pid $SERVER)"
AUTH="Authorization: Bearer $KEY"
CHAT=$BASE/v1/chat/completions

# ---- curl -----------------------------------------------------------------------------------------------------------

code() { curl -s -o "$TMP/body" -w '%{http_code}' "$@"; }
check "GET /health without a key" '[ "$(code $BASE/health)" = 200 ] && grep -q "\"status\":\"ok\"" $TMP/body'
check "GET /v1/models needs the key" '[ "$(code $BASE/v1/models)" = 401 ] && grep -q authentication_error $TMP/body'
check "GET /v1/models" '[ "$(code -H "$AUTH" $BASE/v1/models)" = 200 ] && grep -q "\"id\":\"tiny-qwen2\"" $TMP/body'
check "chat completion" '[ "$(code -H "$AUTH" -H "Content-Type: application/json" \
  -d "{\"model\":\"tiny-qwen2\",\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" $CHAT)" = 200 ] &&
  grep -q "\"object\":\"chat.completion\"" $TMP/body && grep -q "\"usage\"" $TMP/body'
check "a reply carries llama-server's timings" '[ "$(code -H "$AUTH" -H "Content-Type: application/json" \
  -d "{\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" $CHAT)" = 200 ] &&
  grep -q "\"timings\":{\"cache_n\":[0-9]*,\"prompt_n\":[0-9]*,\"prompt_ms\":" $TMP/body &&
  grep -q "\"predicted_per_second\":" $TMP/body'
check "/metrics in Prometheus text format" '[ "$(code -H "$AUTH" $BASE/metrics)" = 200 ] &&
  grep -q "^kiln_requests_total{api=\"openai\",status=\"2xx\"} [1-9]" $TMP/body &&
  grep -q "^kiln_generated_tokens_total [1-9]" $TMP/body && grep -q "^# TYPE kiln_time_to_first_token_seconds histogram" $TMP/body &&
  grep -q "^kiln_time_to_first_token_seconds_bucket{le=\"+Inf\"} [1-9]" $TMP/body && grep -q "^kiln_kv_cache_usage_ratio 0\." $TMP/body &&
  ! grep -v -e "^#" -e "^[a-z_]*\({[^}]*}\)\? [0-9.e+-]*$" $TMP/body | grep -q .'
check "malformed JSON is a 400 in OpenAI's shape" '[ "$(code -H "$AUTH" -d "{oops" $CHAT)" = 400 ] &&
  grep -q "\"error\":{\"message\"" $TMP/body && grep -q invalid_request_error $TMP/body'

# A stream: event-stream headers, every line an SSE field or blank, JSON on one line, [DONE] last.
curl -sN -D "$TMP/h" -H "$AUTH" -H "Content-Type: application/json" -o "$TMP/sse" \
  -d '{"max_tokens":12,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}' "$CHAT"
check "stream headers" 'grep -qi "^content-type: text/event-stream" $TMP/h && grep -qi "^cache-control: no-cache" $TMP/h'
check "stream framing" '! grep -v -e "^data: {.*}\r\?$" -e "^data: \[DONE\]$" -e "^: ping$" -e "^$" $TMP/sse >/dev/null &&
  [ "$(grep "^data:" $TMP/sse | tail -1)" = "data: [DONE]" ] && grep -q "\"usage\":{" $TMP/sse'
check "stream: chunks carry chat.completion.chunk" '[ $(grep -c "\"object\":\"chat.completion.chunk\"" $TMP/sse) -ge 3 ]'

# keep-alive comments while a long prompt is evaluated: on a server of its own with room for a prompt that takes many
# ping intervals on any host (the 340 tokens that fit the main server's context took 76 ms, under one 0.1 s interval)
S1=$SERVER B1=$BASE
start "$TMP/server_ping.log" -c 4096 --parallel 1 --ping-interval 0.02
P=$(awk -v n="${KILN_SERVE_PING_WORDS:-450}" 'BEGIN { srand(); for (i = 0; i < n; i++) printf "w%d ", int(rand() * 1e6) }')
curl -sN -H "$AUTH" -H "Content-Type: application/json" -o "$TMP/ping" \
  -d "{\"max_tokens\":2,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"$P\"}]}" "$BASE/v1/chat/completions"
check "pings during prompt evaluation" 'grep -q "^: ping$" $TMP/ping && [ "$(grep "^data:" $TMP/ping | tail -1)" = "data: [DONE]" ]'
kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null
SERVER=$S1 BASE=$B1

# a GPU fault fails the request whose step faulted, not the server: on the emulated GPU, whose fault injection
# (AMD_EMU_FAULT) makes the first dispatch of the logits kernel fault; the device takes a fresh queue and the next
# request is served
case ${DEVICE:-} in
[Aa][Mm][Dd]:[Ee][Mm][Uu])
  S1=$SERVER B1=$BASE
  export AMD_EMU_FAULT=logits
  start "$TMP/server_fault.log" --parallel 1
  unset AMD_EMU_FAULT
  R='{"max_tokens":3,"messages":[{"role":"user","content":"hi"}]}'
  check "GPU fault: the request whose step faulted is a 500 naming the fault" '[ "$(code -H "$AUTH" \
    -H "Content-Type: application/json" -d "$R" "$BASE/v1/chat/completions")" = 500 ] &&
    grep -q "\"error\":{\"message\":\"[^\"]*GPU memory fault at 0x1000[^\"]*injected fault" $TMP/body'
  check "GPU fault: the next request is served" '[ "$(code -H "$AUTH" -H "Content-Type: application/json" -d "$R" \
    "$BASE/v1/chat/completions")" = 200 ] && grep -q "\"finish_reason\":\"length\"" $TMP/body &&
    [ "$(code $BASE/health)" = 200 ]'
  kill -TERM "$SERVER"; wait "$SERVER"
  rcf=$?
  check "GPU fault: the server stops cleanly (exit $rcf), the fault in its log" '[ $rcf = 0 ] &&
    grep -q "slot 0: .*GPU memory fault" $TMP/server_fault.log'
  SERVER=$S1 BASE=$B1
  ;;
esac

# keep-alive: two requests on one connection
curl -sv -H "$AUTH" "$BASE/v1/models" "$BASE/props" -o /dev/null -o /dev/null 2>"$TMP/v"
check "keep-alive reuses the connection" 'grep -qi "re-using existing connection" $TMP/v'

# Expect: 100-continue is answered by the server (a "100 Continue" interim response), so clients do not sit out
# their expect timeout; checked on the wire, not with a clock (this machine is shared and noisy)
head -c 100000 /dev/zero | tr '\0' 'a' >"$TMP/big"
printf '{"max_tokens":1,"messages":[{"role":"user","content":"%s"}]}' "$(head -c 1000 "$TMP/big")" >"$TMP/req.json"
curl -sv -o /dev/null --expect100-timeout 30 -H "$AUTH" -H "Expect: 100-continue" -H "Content-Type: application/json" \
  --data-binary @"$TMP/req.json" "$CHAT" 2>"$TMP/v100"
check "100-continue is answered with 100 Continue" 'grep -q "< HTTP/1.1 100 Continue" $TMP/v100'
check "body over the limit is a 413 before it is read" '[ "$(head -c $((MAX_BODY * 2)) /dev/zero | code -H "$AUTH" \
  -H "Expect: 100-continue" --data-binary @- $CHAT)" = 413 ]'
check "wrong method is a 405 with Allow" '[ "$(curl -s -o /dev/null -D - -X DELETE -H "$AUTH" $CHAT | tr -d "\r" |
  grep -ci "^allow: POST")" = 1 ]'

# ---- the OpenAI SDK and raw HTTP -------------------------------------------------------------------------------------

node_rc=77
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "skip: node/npm are not installed: the openai SDK checks did not run"
elif ! npm_modules openai ollama ajv; then
  echo "skip: npm install of openai@6 failed (tests/serve/node_modules):"
  tail -5 "$TMP/npm.log"
else
  BASE=$BASE KEY=$KEY MODEL=tiny-qwen2 N_CTX=$N_CTX MAX_BODY=$MAX_BODY node "$HERE/client.mjs"
  node_rc=$?
  [ $node_rc = 0 ] && ok "openai SDK checks" || bad "openai SDK checks"
  if [ "${KILN_SERVE_OLLAMA:-1}" = 0 ]; then
    echo "skip: KILN_SERVE_OLLAMA=0: the ollama client's checks did not run"
  else
    BASE=$BASE KEY=$KEY MODEL=tiny-qwen2 node "$HERE/ollama.mjs" && ok "ollama client checks" || bad "ollama client checks"
  fi
fi

# ---- the log, and a clean shutdown during a stream -------------------------------------------------------------------

check "one log line per request, with tokens" 'grep -q "POST /v1/chat/completions 200 tokens in=[0-9]* cached=[0-9]* out=[0-9]*" $TMP/server.log'
if [ $node_rc = 0 ] && echo "100 disconnects mid-stream" | grep -Eq "${ONLY:-.}"; then
  check "disconnects are logged as such" 'grep -q "client disconnected" $TMP/server.log'
fi
curl -sN -H "$AUTH" -H "Content-Type: application/json" -o "$TMP/cut" \
  -d '{"max_tokens":100000,"stream":true,"messages":[{"role":"user","content":"go on forever"}]}' "$CHAT" &
CURL=$!
# SIGTERM once the stream is running: a fixed sleep let an idle host decode to the end of the 512-token context first
started() { grep -q "^data:" "$TMP/cut" 2>/dev/null; }
wait_until 60 started || bad "the stream to cut did not start"
kill -TERM "$SERVER"
# the server's own watchdog ends it at most 13.1 s after the signal (grace 0.1 s)
gone() { ! kill -0 "$SERVER" 2>/dev/null; }
if ! wait_until 30 gone; then
  bad "SIGTERM: the server is still running after 30 s x KILN_SERVE_TIME_SCALE"
else
  wait "$SERVER"
  rc=$?
  SERVER=
  check "SIGTERM: exit code 0 ($rc), stream ended" '[ $rc = 0 ] && grep -q "kiln serve: stopped" $TMP/server.log'
fi
wait $CURL
check "SIGTERM: the cut stream got an error event" 'grep -q "^data: {\"error\"" $TMP/cut'

# ---- SIGTERM while a prompt's forward pass is still running --------------------------------------------------------------

# KILN_SERVE_SLOW_STEP_MS holds every forward pass back (a test mode: a slow device's long pass): the first request's
# prompt pass is in flight at the SIGTERM, the other three wait in the queue. Each client gets the end of its answer
# naming the shutdown (the stream's error event, Ollama's error line, a 503) right after the grace, not after the pass
# (nor never, when the watchdog ended the process first), and the server still exits 0.
export KILN_SERVE_SLOW_STEP_MS=600000
start "$TMP/server_cut.log" --shutdown-grace 0.2
unset KILN_SERVE_SLOW_STEP_MS
J='"messages":[{"role":"user","content":"hi"}]'
cut_req() { curl -sN -H "$AUTH" -o "$TMP/cut_$1" -w '%{http_code}' -d "$2" "$BASE$3" >"$TMP/cut_$1.code"; }
cut_req oai_stream "{\"stream\":true,$J}" /v1/chat/completions &
cut_req oai "{$J}" /v1/chat/completions &
cut_req olla_stream "{\"model\":\"$ALIAS\",$J}" /api/chat &
cut_req olla "{\"model\":\"$ALIAS\",\"stream\":false,$J}" /api/chat &
all_in() { # running + queued = 4
  [ "$(curl -s "$BASE/health" | sed -n 's/.*"slots_processing":\([0-9]*\),"requests_queued":\([0-9]*\).*/\1 \2/p' |
    awk '{ print $1 + $2 }')" = 4 ]
}
if ! wait_until 60 all_in; then
  bad "SIGTERM mid-pass: the four requests did not reach the server"
fi
kill -TERM "$SERVER"
wait "$SERVER"
rc=$?
SERVER=
wait
check "SIGTERM mid-pass: exit code 0 ($rc), the pass left behind" '[ $rc = 0 ] && grep -q "kiln serve: stopped (a forward pass" $TMP/server_cut.log'
check "SIGTERM mid-pass: the stream ends with an error event naming the shutdown" '[ "$(cat $TMP/cut_oai_stream.code)" = 200 ] &&
  [ "$(grep "^data:" $TMP/cut_oai_stream | tail -1)" = "data: {\"error\":{\"message\":\"the server is shutting down\",\"type\":\"unavailable_error\",\"param\":null,\"code\":null}}" ]'
check "SIGTERM mid-pass: a request not streamed gets a 503 naming the shutdown" '[ "$(cat $TMP/cut_oai.code)" = 503 ] &&
  grep -q "\"message\":\"the server is shutting down\",\"type\":\"unavailable_error\"" $TMP/cut_oai'
check "SIGTERM mid-pass: Ollama's stream ends with its error line" '[ "$(cat $TMP/cut_olla_stream.code)" = 200 ] &&
  [ "$(tail -1 $TMP/cut_olla_stream)" = "{\"error\":\"the server is shutting down\"}" ]'
check "SIGTERM mid-pass: Ollama's request not streamed gets a 503" '[ "$(cat $TMP/cut_olla.code)" = 503 ] &&
  grep -q "^{\"error\":\"the server is shutting down\"}" $TMP/cut_olla'

# ---- Qwen3's template (thinking, its own tool format) with the same clients -------------------------------------------

MODEL3=$TD/models/tiny-qwen3-Q4_K_M.gguf
if [ "${KILN_SERVE_MODELS:-1}" = 0 ]; then
  echo "skip: KILN_SERVE_MODELS=0: the tiny-qwen3, tiny-llama3 and tiny-mistral servers did not run"
elif [ $node_rc != 77 ] && [ -f "$MODEL3" ]; then
  MODEL=$MODEL3 ALIAS=tiny-qwen3
  start "$TMP/server3.log"
  BASE=$BASE KEY=$KEY MODEL=tiny-qwen3 N_CTX=$N_CTX MAX_BODY=$MAX_BODY \
    ONLY="models|chat, not streamed|chat, streamed|tool_choice (required|named)|auto tool calls opened|tool result|second turn" node "$HERE/client.mjs"
  [ $? = 0 ] && ok "openai SDK checks with tiny-qwen3" || bad "openai SDK checks with tiny-qwen3"
  kill -TERM "$SERVER"
  wait "$SERVER"
  rc3=$?
  check "tiny-qwen3 server stopped cleanly" '[ $rc3 = 0 ]'
  SERVER=
fi

# ---- Llama 3's template (JSON tool calls) through the ollama client ---------------------------------------------------

MODELL3=$TD/models/tiny-llama3-Q4_K_M.gguf
if [ "${KILN_SERVE_MODELS:-1}" != 0 ] && [ $node_rc != 77 ] && [ -f "$MODELL3" ]; then
  MODEL=$MODELL3 ALIAS=tiny-llama3
  start "$TMP/serverl3.log"
  BASE=$BASE KEY=$KEY MODEL=tiny-llama3 node "$HERE/ollama.mjs" && ok "ollama client checks with tiny-llama3" ||
    bad "ollama client checks with tiny-llama3"
  BASE=$BASE KEY=$KEY MODEL=tiny-llama3 N_CTX=$N_CTX MAX_BODY=$MAX_BODY ONLY="llama 3|tool_choice (required|named)" \
    node "$HERE/client.mjs" && ok "openai SDK tool calls with tiny-llama3" || bad "openai SDK tool calls with tiny-llama3"
  kill -TERM "$SERVER"
  wait "$SERVER"
  SERVER=
fi

# ---- Mistral's templates: tiny-llama's weights with Mistral's control tokens (tests/mistral_gguf.py) ---------------------

# v3 ([TOOL_CALLS] lists): the ollama client and the openai SDK's tool checks
if [ "${KILN_SERVE_MODELS:-1}" != 0 ] && [ $node_rc != 77 ] && mistral_model tiny-mistral "$TMP/tiny-mistral.gguf"; then
  MODEL=$TMP/tiny-mistral.gguf ALIAS=tiny-mistral
  start "$TMP/serverm.log"
  check "tiny-mistral: its template is detected as mistral" 'grep -q "chat template mistral" $TMP/serverm.log'
  BASE=$BASE KEY=$KEY MODEL=tiny-mistral node "$HERE/ollama.mjs" && ok "ollama client checks with tiny-mistral" ||
    bad "ollama client checks with tiny-mistral"
  BASE=$BASE KEY=$KEY MODEL=tiny-mistral N_CTX=$N_CTX MAX_BODY=$MAX_BODY \
    ONLY="models|chat, not streamed|chat, streamed|tool_choice (required|named)|mistral" node "$HERE/client.mjs" &&
    ok "openai SDK tool calls with tiny-mistral" || bad "openai SDK tool calls with tiny-mistral"
  kill -TERM "$SERVER"
  wait "$SERVER"
  SERVER=
fi

# v7 ([SYSTEM_PROMPT], spaced [TOOL_CALLS] [ lists) and v11 ([TOOL_CALLS]name[ARGS]{...}): the tool checks, and in the
# prompts the server logs (-v: the rendered prompt, then a forced call's opening) the form the template uses
for v in v7 v11; do
  [ "${KILN_SERVE_MODELS:-1}" != 0 ] && [ $node_rc != 77 ] && mistral_model tiny-mistral-$v "$TMP/tiny-mistral-$v.gguf" || continue
  MODEL=$TMP/tiny-mistral-$v.gguf ALIAS=tiny-mistral-$v
  start "$TMP/serverm$v.log" -v
  BASE=$BASE KEY=$KEY MODEL=tiny-mistral-$v N_CTX=$N_CTX MAX_BODY=$MAX_BODY \
    ONLY="tool_choice (required|named)|mistral" node "$HERE/client.mjs" &&
    ok "openai SDK tool calls with tiny-mistral-$v" || bad "openai SDK tool calls with tiny-mistral-$v"
  kill -TERM "$SERVER"
  wait "$SERVER"
  SERVER=
done
if [ -f "$TMP/servermv7.log" ]; then
  check "tiny-mistral-v7: detected as v7" 'grep -q "chat template mistral.*SYSTEM_PROMPT" $TMP/servermv7.log'
  check "tiny-mistral-v7: the system message as [SYSTEM_PROMPT]" 'grep -q "^<s>\[SYSTEM_PROMPT\]Use tools.\[/SYSTEM_PROMPT\]\[AVAILABLE_TOOLS\] \[" $TMP/servermv7.log'
  check "tiny-mistral-v7: a named tool_choice opens its list form" \
    'grep -q "\[/INST\]\[TOOL_CALLS\] \[{\"name\": \"get_time\", \"arguments\": $" $TMP/servermv7.log'
fi
# the templates' default system message (as the published Small 3.x ones write it) when a request has none, dated
# with the day it was rendered (yesterday's date too, for a run across midnight)
today_or_yesterday() { grep -q -e "The current date is $(date +%Y-%m-%d)\.$" -e "The current date is $(date -d yesterday +%Y-%m-%d)\.$" "$1"; }
for v in v7 v11; do
  [ -f "$TMP/serverm$v.log" ] || continue
  check "tiny-mistral-$v: a request without a system message gets the template's default one, dated today" \
    'grep -q "chat template mistral.*a default system message" $TMP/serverm$v.log &&
     grep -q "^<s>\[SYSTEM_PROMPT\]You are a Mistral Small 3[.2]* model, a \"test\" assistant\.$" $TMP/serverm$v.log &&
     today_or_yesterday $TMP/serverm$v.log'
done
if [ -f "$TMP/servermv11.log" ]; then
  check "tiny-mistral-v11: detected as v11" 'grep -q "chat template mistral.*v11" $TMP/servermv11.log'
  check "tiny-mistral-v11: a named tool_choice opens [TOOL_CALLS]name[ARGS]" 'grep -q "\[/INST\]\[TOOL_CALLS\]get_time\[ARGS\]$" $TMP/servermv11.log'
  check "tiny-mistral-v11: tool_choice required opens [TOOL_CALLS]" 'grep -q "\[/INST\]\[TOOL_CALLS\]$" $TMP/servermv11.log'
  check "tiny-mistral-v11: a call goes back as [TOOL_CALLS]name[ARGS]{...}, its result as [TOOL_RESULTS]" \
    'grep -q "\[TOOL_CALLS\][a-z_]*\[ARGS\]{.*}</s>\[TOOL_RESULTS\]21 C\[/TOOL_RESULTS\]" $TMP/servermv11.log'
fi

echo "$pass passed, $fail failed"
[ $fail = 0 ] || { echo "---- server log (last 30 lines) ----"; tail -30 "$TMP/server.log"; exit 1; }
[ $node_rc = 77 ] && exit 77
exit 0
