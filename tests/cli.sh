#!/bin/sh
# The kiln command as users run it: kiln run's --ids, --logits-out, --prompt-ids, --special, --dry-run, chat mode and its errors, and the
# DEBUG levels / GRAPH=1 output of kiln demo. Skips the model parts when ../shared/testdata is absent.
kiln=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
pass=0 fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export KILN_CACHE_DIR="${KILN_CACHE_DIR:-$tmp/cache}"

# DEBUG levels each add their stage
for lv in 1 2 3 4 5 6 7; do
  out=$(DEBUG=$lv "$kiln" demo -n 16 2>&1) || bad "DEBUG=$lv demo failed"
  case $lv in
    1) pat="scheduled [0-9]* kernels" ;;
    2) pat="GFLOP/s" ;;
    3) pat="because:" ;;
    4) pat="define .*void @kn_" ;;
    5) pat="kernel expr shape" ;;
    6) pat="RANGE\|range\|loop" ;;
    7) pat="ret\|vfmadd\|vmovups" ;;
  esac
  echo "$out" | grep -q "$pat" && ok || bad "DEBUG=$lv: no '$pat' in output"
done
# tracing: DEBUG=1's counts add up; DEBUG=3's schedule entries and DEBUG=2's launch lines name each kernel by the same
# index and entry; KILN_KERNEL limits DEBUG 4-7 to the matching kernels
DEBUG=3 "$kiln" demo -n 16 >"$tmp/d3" 2>&1 || bad "DEBUG=3 demo failed"
python3 - "$tmp/d3" <<'PY' && ok || bad "DEBUG=1-3 tracing: $(head -c 600 "$tmp/d3")"
import re, sys
t = open(sys.argv[1]).read()
counts = re.findall(r"scheduled (\d+) kernels \((\d+) compiled, (\d+) disk-cache hits, (\d+) already in memory\)", t)
assert counts and all(int(n) == int(a) + int(b) + int(c) for n, a, b, c in counts), counts
entries = re.findall(r"^kernel #(\d+) (kn_\w+) \(cache key ([0-9a-f]{32}|-)\)", t, re.M)
launches = re.findall(r"^#(\d+) +\w+ +(kn_\w+) ", t, re.M)
assert entries and launches, (len(entries), len(launches))
names = {i: n for i, n, _ in entries}
assert all(names.get(i) == n for i, n in launches), "launch lines and schedule entries disagree"
print(entries[0][1])
PY
first=$(grep -o "^kernel #0 kn_[A-Za-z0-9_]*" "$tmp/d3" | head -1 | cut -d' ' -f3)
n_all=$(DEBUG=4 "$kiln" demo -n 16 2>&1 | grep -c "^; LLVM IR of ")
n_one=$(DEBUG=4 KILN_KERNEL="$first" "$kiln" demo -n 16 2>&1 | grep "^; LLVM IR of " | grep -c "$first")
n_any=$(DEBUG=4 KILN_KERNEL="$first" "$kiln" demo -n 16 2>&1 | grep -c "^; LLVM IR of ")
[ -n "$first" ] && [ "$n_one" -ge 1 ] && [ "$n_any" -eq "$n_one" ] && [ "$n_all" -gt "$n_one" ] && ok ||
  bad "KILN_KERNEL=$first: $n_any IR listings ($n_one of it), $n_all without the filter"
(cd "$tmp" && GRAPH=1 GRAPH_DIR="$tmp" "$kiln" demo -n 16 >/dev/null 2>&1)
grep -q "digraph kiln" "$tmp"/kiln-graph-0.dot 2>/dev/null && grep -q "cluster_" "$tmp"/kiln-graph-0.dot && ok || bad "GRAPH=1 wrote no DOT graph"
# with graphviz installed (scripts/setup.sh installs it) GRAPH=1 also renders each graph to SVG, one cluster per kernel
if command -v dot >/dev/null 2>&1; then
  grep -q "<svg" "$tmp"/kiln-graph-0.svg 2>/dev/null && grep -q 'class="cluster"' "$tmp"/kiln-graph-0.svg && ok ||
    bad "GRAPH=1 with graphviz installed wrote no SVG next to the DOT file"
else
  echo "note: graphviz is not installed, GRAPH=1's SVG is not checked"
fi

# errors name the problem and exit non-zero
"$kiln" run -m /nonexistent.gguf -p hi >/dev/null 2>"$tmp/e" && bad "missing file accepted" || grep -q "nonexistent" "$tmp/e" && ok || bad "missing file: $(cat "$tmp/e")"
printf 'GGUF\003\000\000\000garbage' > "$tmp/bad.gguf"
"$kiln" run -m "$tmp/bad.gguf" -p hi >/dev/null 2>"$tmp/e" && bad "corrupt file accepted" || grep -qi "bad.gguf" "$tmp/e" && ok || bad "corrupt file: $(cat "$tmp/e")"
"$kiln" run --frobnicate >/dev/null 2>"$tmp/e"; [ $? -eq 2 ] && grep -q "frobnicate" "$tmp/e" && ok || bad "unknown option: $(cat "$tmp/e")"
"$kiln" nosuchcommand >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "unknown command should exit 2"
for c in run serve bench cache gguf demo quantize; do "$kiln" $c --help >/dev/null 2>&1 && ok || bad "kiln $c --help"; done

td="${KILN_TESTDATA:-../shared/testdata}"
# --special and --prompt-ids reproduce the chat references (tokenized with special-token text parsed)
for model in tiny-llama3-Q4_K_M tiny-gemma3-Q4_K_M; do
  ref="$td/refs/$model.chat.deq.json"
  [ -f "$ref" ] || continue
  prompt=$(python3 -c "import json,sys;sys.stdout.write(json.load(open('$ref'))['prompt'] + 'x')"); prompt=${prompt%x} # keeps the final newline
  want=$(python3 -c "import json;print(' '.join(map(str,json.load(open('$ref'))['prompt_tokens'])))")
  ids=$(python3 -c "import json;print(','.join(map(str,json.load(open('$ref'))['prompt_tokens'])))")
  got=$("$kiln" run -m "$td/models/$model.gguf" -p "$prompt" --special --ids 2>"$tmp/e")
  [ "$got" = "$want" ] && ok || bad "$model --special --ids: got '$got' want '$want' ($(cat "$tmp/e"))"
  got=$("$kiln" run -m "$td/models/$model.gguf" -p "$prompt" --ids 2>"$tmp/e")
  [ "$got" != "$want" ] && ok || bad "$model: without --special the special-token text must stay text"
  "$kiln" run -m "$td/models/$model.gguf" --prompt-ids "$ids" -n 0 --kv-type f32 -c 512 --logits-out "$tmp/c.f32" 2>"$tmp/e" >/dev/null ||
    bad "$model --prompt-ids: $(cat "$tmp/e")"
  python3 - "$tmp/c.f32" "$td/refs/$model.chat.deq.logits.f32" "$model" <<'PY' && ok || bad "$model --prompt-ids logits differ from the .deq reference"
import array, math, sys
a, b = array.array('f'), array.array('f')
a.frombytes(open(sys.argv[1], 'rb').read()); b.frombytes(open(sys.argv[2], 'rb').read())
assert len(a) == len(b), (len(a), len(b))
e = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)) / sum(y * y for y in b))
print("%s --prompt-ids: relative error %.2e" % (sys.argv[3], e))
sys.exit(0 if e <= 1e-3 else 1)
PY
  "$kiln" run -m "$td/models/$model.gguf" --prompt-ids "1,2,nope" -n 1 >/dev/null 2>"$tmp/e" && bad "--prompt-ids accepted 'nope'" ||
    grep -q "entry 3 ('nope')" "$tmp/e" && ok || bad "--prompt-ids error: $(cat "$tmp/e")"
  "$kiln" run -m "$td/models/$model.gguf" --prompt-ids "1,999999999" -n 1 >/dev/null 2>"$tmp/e" && bad "--prompt-ids accepted an id past the vocabulary" ||
    grep -q "entry 2" "$tmp/e" && ok || bad "--prompt-ids range error: $(cat "$tmp/e")"
done
if [ -f "$td/models/tiny-llama-Q4_K_M.gguf" ]; then
  m="$td/models/tiny-llama-Q4_K_M.gguf"
  prompt=$(python3 -c "import json;print(json.load(open('$td/refs/tiny-llama-Q4_K_M.story.json'))['prompt'])")
  want=$(python3 -c "import json;print(' '.join(map(str,json.load(open('$td/refs/tiny-llama-Q4_K_M.story.json'))['prompt_tokens'])))")
  got=$("$kiln" run -m "$m" -p "$prompt" --ids 2>"$tmp/e")
  [ "$got" = "$want" ] && ok || bad "--ids: got '$got' want '$want' ($(cat "$tmp/e"))"
  "$kiln" run -m "$m" -p "$prompt" -n 0 --kv-type f32 -c 128 --logits-out "$tmp/l.f32" 2>"$tmp/e" >/dev/null || bad "--logits-out: $(cat "$tmp/e")"
  python3 - "$tmp/l.f32" "$td/refs/tiny-llama-Q4_K_M.story.deq.logits.f32" <<'PY' && ok || bad "--logits-out differs from the .deq reference"
import array, math, sys
a, b = array.array('f'), array.array('f')
a.frombytes(open(sys.argv[1], 'rb').read()); b.frombytes(open(sys.argv[2], 'rb').read())
assert len(a) == len(b) == 32000, (len(a), len(b))
num = sum((x - y) ** 2 for x, y in zip(a, b)); den = sum(y * y for y in b)
print("logits-out relative error %.2e" % math.sqrt(num / den))
sys.exit(0 if math.sqrt(num / den) <= 1e-3 else 1)
PY
  "$kiln" run -m "$m" --dry-run -c 512 >"$tmp/o" 2>&1 && grep -q "KV cache" "$tmp/o" && grep -q "fits" "$tmp/o" && ok || bad "--dry-run: $(cat "$tmp/o")"
  out=$("$kiln" run -m "$m" -p "Once upon a time" -n 8 --temp 0 -c 64 2>/dev/null) && [ -n "$out" ] && ok || bad "generation produced nothing"
  # kiln bench: speeds, the first token of an unseen prompt length, the read bandwidth and the decode limit
  "$kiln" bench -m "$m" -p 16 -n 4 -r 1 --ttft 10 >"$tmp/o" 2>&1 && grep -q "^pp16 .* tok/s" "$tmp/o" &&
    grep -q "^ttft10 .* ms .*new lengths 10\.\.10" "$tmp/o" && grep -q "read bandwidth [0-9.]* GB/s.*limit [0-9.]* tok/s; decode at [0-9]*% of it (median of the runs. own, [0-9]*\.\.[0-9]*%)" "$tmp/o" &&
    ok || bad "bench: $(cat "$tmp/o")"
  a=$("$kiln" run -m "$m" -p "Hi" -n 12 --seed 7 -c 64 2>/dev/null); b=$("$kiln" run -m "$m" -p "Hi" -n 12 --seed 7 -c 64 2>/dev/null)
  [ "$a" = "$b" ] && ok || bad "same seed, different text"
  # kiln quantize: F16 -> Q8_0 runs close to the reference's own Q8_0 file (which it quantized from F32)
  "$kiln" quantize "$td/models/tiny-llama-F16.gguf" "$tmp/q8.gguf" q8_0 >/dev/null 2>"$tmp/e" || bad "quantize: $(cat "$tmp/e")"
  "$kiln" run -m "$tmp/q8.gguf" -p "$prompt" -n 0 --kv-type f32 -c 128 --logits-out "$tmp/q8.f32" 2>"$tmp/e" >/dev/null || bad "run quantized: $(cat "$tmp/e")"
  python3 - "$tmp/q8.f32" "$td/refs/tiny-llama-Q8_0.story.deq.logits.f32" <<'PY' && ok || bad "quantized model's logits are far from the reference Q8_0"
import array, math, sys
a, b = array.array('f'), array.array('f')
a.frombytes(open(sys.argv[1], 'rb').read()); b.frombytes(open(sys.argv[2], 'rb').read())
e = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)) / sum(y * y for y in b))
print("quantize q8_0: relative error %.2e against the reference's Q8_0" % e)
sys.exit(0 if len(a) == len(b) and e <= 5e-2 else 1)
PY
  "$kiln" quantize "$td/models/tiny-llama-F16.gguf" "$tmp/x.gguf" q9_9 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "unknown quantize type should exit 2"
  q="$td/models/tiny-qwen2-Q4_K_M.gguf"
  out=$(printf 'hello\nhow are you?\n' | "$kiln" run -m "$q" -n 6 -c 256 --temp 0 2>"$tmp/e") && [ -n "$out" ] && grep -q "chatml\|qwen" "$tmp/e" && ok || bad "chat mode: $(cat "$tmp/e")"
else
  echo "skipped the model cases: $td/models not found"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
