#!/bin/sh
# VIZ=1 (issue 9): a tiny-llama run writes one self-contained HTML page; opened in real headless chromium
# (Debian's, driven by puppeteer-core from npm) it shows every kernel of the decode step with its AST, LLVM IR and
# assembly, and logs no console error. Skips (77) without the test models, node/npm, chromium or the npm package.
kiln="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
M="${KILN_TESTDATA:-../shared/testdata}/models/tiny-llama-Q4_K_M.gguf"
[ -f "$M" ] || { echo "skip: $M absent (../shared/testdata holds the test models)"; exit 77; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "skip: node/npm are not installed"; exit 77; }
CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$CHROMIUM" ] || { echo "skip: chromium is not installed (apt install chromium)"; exit 77; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
if [ ! -d "$HERE/viz/node_modules/puppeteer-core" ] &&
  ! (cd "$HERE/viz" && npm install --no-audit --no-fund >"$TMP/npm.log" 2>&1); then
  echo "skip: npm install of puppeteer-core failed (tests/viz/node_modules):"
  tail -5 "$TMP/npm.log"
  exit 77
fi
# one decode step after a 2-token prompt; DEBUG=3 lists the kernels of each schedule, the last one the decode step
VIZ=1 VIZ_DIR="$TMP" DEBUG=3 "$kiln" run -m "$M" --prompt-ids 1,2 -n 2 >"$TMP/out.txt" 2>"$TMP/err.txt" ||
  { echo "FAIL: kiln run with VIZ=1:"; tail -5 "$TMP/err.txt"; exit 1; }
PAGE="$(ls "$TMP"/kiln-viz-*.html 2>/dev/null | head -1)"
[ -n "$PAGE" ] || { echo "FAIL: VIZ=1 wrote no page"; exit 1; }
grep -q "VIZ=1: writing $PAGE" "$TMP/err.txt" || { echo "FAIL: VIZ=1 did not print the page's path"; exit 1; }
# the decode step's kernels: the entries of the last schedule DEBUG=3 printed
ENTRIES="$(awk '/^kernel #0 /{n=0; delete e} /^kernel #[0-9]+ /{e[n++]=$3} END{for(i=0;i<n;i++) print e[i]}' "$TMP/err.txt")"
N="$(echo "$ENTRIES" | grep -c .)"
[ "$N" -gt 10 ] || { echo "FAIL: found $N kernels of the decode step in DEBUG=3's output"; exit 1; }
# shellcheck disable=SC2086
node "$HERE/viz/check.mjs" "$PAGE" "$CHROMIUM" $ENTRIES || exit 1
echo "ok: the VIZ page shows all $N kernels of the decode step in headless chromium without console errors"
