# tests/serve/lib.sh: what the serve test scripts (run.sh, warm.sh, schemas.sh) share; sourced once they have set
# KILN and checked what they skip without. A scratch directory $TMP, removed on exit together with the server still
# running ($SERVER); pass/fail counting (ok, bad); and waiting for a server started in the background.
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

TMP=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

# serve_wait LOG [SECONDS]: waits until the server started in the background (pid $SERVER, its stderr in LOG)
# listens, then sets PORT and BASE; exits 1 with the log when it died or did not listen within SECONDS (300).
serve_wait() {
  i=0
  while ! grep -q "listening on" "$1" 2>/dev/null; do
    if ! kill -0 "$SERVER" 2>/dev/null; then echo "the server did not start:"; cat "$1"; exit 1; fi
    i=$((i + 1))
    [ $i -gt $((${2:-300} * 10)) ] && { echo "the server did not start within ${2:-300} s"; cat "$1"; exit 1; }
    sleep 0.1
  done
  PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -1)
  BASE=http://127.0.0.1:$PORT
}
