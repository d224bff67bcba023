#!/bin/sh
# scripts/serve_amd_emu_full.sh [BUILD_DIR]: the server's whole suite on the emulated gfx1100. Runs tests/serve/run.sh
# against `kiln serve` with DEVICE=AMD:EMU on tiny-qwen2 with nothing sized down: every curl check, client.mjs (chat,
# streams, tool calls, stop sequences, the 16-client soak, 100 disconnects, 1000 malformed requests) and ollama.mjs.
# The tiny-qwen3/llama3/mistral servers that run.sh starts after the main one are left out (KILN_SERVE_MODELS=0:
# this is the tiny-qwen2 suite). By hand, not in CI: its wall time is in docs/devices.md; the meson test
# serve_amd_emu runs the part of it that fits a test's time. Exit status: run.sh's.
set -u
B=${1:-build}
[ -x "$B/apps/kiln" ] || { echo "usage: $0 [BUILD_DIR] (no $B/apps/kiln: build first)"; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
export DEVICE=AMD:EMU KILN_EXACT=1 KILN_SERVE_MODELS=0
export KILN_SERVE_TIME_SCALE=${KILN_SERVE_TIME_SCALE:-20} # the suite's backstop bounds, for the interpreter's speed
export KILN_TESTDATA=${KILN_TESTDATA:-$HERE/../../shared/testdata}
export KILN_CACHE_DIR=${KILN_CACHE_DIR:-$B/tests/kcache_serve_amd_emu_full}
t0=$(date +%s)
sh "$HERE/../tests/serve/run.sh" "$B/apps/kiln"
rc=$?
echo "serve_amd_emu_full: exit $rc after $(($(date +%s) - t0)) s (DEVICE=AMD:EMU, tiny-qwen2, the whole run.sh)"
exit $rc
