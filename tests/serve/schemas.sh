#!/bin/sh
# tests/serve/schemas.sh KILN [MODEL:N ...]: schema-constrained output against ajv (schemas.mjs) for each test model,
# N random schemas each (a json_schema reply and a forced tool call per schema). CI runs a few per model; the full
# run is e.g. `tests/serve/schemas.sh build/apps/kiln tiny-qwen2:300 tiny-qwen3:300 tiny-llama3:300 tiny-mistral:300`
# (tiny-mistral, tiny-mistral-nemo, tiny-mistral-v7 and tiny-mistral-v11 are made from tiny-llama by
# tests/mistral_gguf.py; v11's calls are [TOOL_CALLS]name[ARGS]{...}). The context is 2048: Llama 3.1
# writes the tools into the prompt with indent=4, and a large random schema made a 1024-token context overflow.
# Skips (77) when ../shared/testdata or node is missing.
set -u
KILN=${1:?usage: schemas.sh path/to/kiln [model:count ...]}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ $# -gt 0 ] || set -- tiny-qwen2:6 tiny-llama3:3 tiny-mistral:3 tiny-mistral-v11:3
skip_without node npm
npm_modules ajv ajv-formats || { echo "skip: npm install failed (tests/serve/node_modules)"; exit 77; }
rc=0
ran=0
for spec in "$@"; do
  name=${spec%%:*} count=${spec#*:}
  model=$TD/models/$name-Q4_K_M.gguf
  case $name in # made here: tiny-llama's weights, Mistral's tokens and template (v3, or Nemo's v3-tekken)
  tiny-mistral*) model=$TMP/$name.gguf; mistral_model "$name" "$model" || { echo "skip: no $name"; continue; } ;;
  esac
  [ -f "$model" ] || { echo "skip: $model is missing"; continue; }
  ran=$((ran + 1))
  # a fresh log per model: the previous server's "listening on" line must not be read as this one's
  rm -f "$TMP/log"
  "$KILN" serve -m "$model" --port 0 -c 2048 --parallel 4 --alias "$name" 2>"$TMP/log" &
  SERVER=$!
  serve_wait "$TMP/log" 120
  if ! BASE=$BASE MODEL=$name SCHEMAS=$count node "$HERE/schemas.mjs"; then
    rc=1
    echo "---- server log (last 20 lines) ----"
    tail -20 "$TMP/log"
  fi
  kill "$SERVER"
  wait "$SERVER"
  SERVER=
done
[ $ran = 0 ] && exit 77
exit $rc
