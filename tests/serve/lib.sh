# tests/serve/lib.sh: what the serve test scripts (run.sh, warm.sh, schemas.sh) share; sourced once they have set
# KILN and HERE (their folder). The testdata folder $TD; a scratch directory $TMP, removed on exit together with the server still running
# ($SERVER); pass/fail counting (ok, bad); skipping (exit 77) when a file or program is absent; npm modules; the
# tiny Mistral models; and waiting for a server started in the background.
TD=${KILN_TESTDATA:-$HERE/../../../shared/testdata}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

TMP=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

# serve_wait LOG [SECONDS]: waits until the server started in the background (pid $SERVER, its stderr in LOG)
# prints its ready line ("listening on"), then sets PORT and BASE; exits 1 with the log when it died, or did not get
# ready within SECONDS (300) x KILN_SERVE_TIME_SCALE.
serve_wait() {
  sw_ready() { grep -q "listening on" "$1" 2>/dev/null || ! kill -0 "$SERVER" 2>/dev/null; }
  if ! wait_until "${2:-300}" sw_ready "$1"; then
    echo "the server did not start within ${2:-300} s x KILN_SERVE_TIME_SCALE (${KILN_SERVE_TIME_SCALE:-1})"; cat "$1"; exit 1
  fi
  grep -q "listening on" "$1" || { echo "the server did not start:"; cat "$1"; exit 1; }
  PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -1)
  BASE=http://127.0.0.1:$PORT
}

# wait_until SECONDS COMMAND...: polls COMMAND (a condition: a log line, a file, /health) until it succeeds: 0, or 1
# when it still fails after SECONDS x KILN_SERVE_TIME_SCALE (default 1) of wall time. The bound is only a backstop for
# a hung server, generous on this host; runs on a slow device (the emulated GPU) raise the scale.
wait_until() {
  wu_end=$(($(date +%s%3N) + $(awk -v s="$1" -v k="${KILN_SERVE_TIME_SCALE:-1}" 'BEGIN { printf "%d", s * k * 1000 }')))
  shift
  while ! "$@"; do
    [ "$(date +%s%3N)" -ge $wu_end ] && return 1
    sleep 0.05
  done
}

# skip_without_file FILE: exit 77 when FILE (a testdata model) is absent.
skip_without_file() { [ -f "$1" ] || { echo "skip: $1 is missing (../shared/testdata)"; exit 77; }; }
# skip_without PROGRAM...: exit 77 when one of the programs is not installed.
skip_without() {
  for p in "$@"; do command -v "$p" >/dev/null || { echo "skip: $p is not installed"; exit 77; }; done
}
# npm_modules MODULE...: 0 when tests/serve/node_modules has them all or `npm install` got them (its output in
# $TMP/npm.log), else 1.
npm_modules() {
  for m in "$@"; do
    [ -d "$HERE/node_modules/$m" ] && continue
    (cd "$HERE" && npm install --no-audit --no-fund >"$TMP/npm.log" 2>&1)
    return
  done
}
# mistral_model NAME OUT: writes the test model NAME (tiny-mistral: Mistral 7B v0.3's template; tiny-mistral-nemo:
# Nemo's v3-tekken; tiny-mistral-v7 / tiny-mistral-v11: kiln's reference templates of the [SYSTEM_PROMPT] and
# [TOOL_CALLS]name[ARGS]{...} forms) to OUT: tiny-llama's weights with Mistral's control tokens (tests/mistral_gguf.py);
# 1 when it cannot (no tiny-llama in testdata, no python3).
mistral_model() {
  case $1 in
  tiny-mistral) tmpl=mistral-v0.3.jinja ;;
  tiny-mistral-nemo) tmpl=mistral-nemo.jinja ;;
  tiny-mistral-v7) tmpl=mistral-v7.jinja ;;
  tiny-mistral-v11) tmpl=mistral-v11.jinja ;;
  *) return 1 ;;
  esac
  [ -f "$2" ] || { [ -f "$TD/models/tiny-llama-Q4_K_M.gguf" ] &&
    python3 "$HERE/../mistral_gguf.py" "$TD/models/tiny-llama-Q4_K_M.gguf" "$HERE/../chat_templates/$tmpl" "$2"; }
}
