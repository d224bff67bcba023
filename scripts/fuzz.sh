#!/bin/sh
# scripts/fuzz.sh [SECONDS] [TARGET...]: builds kiln's libFuzzer targets (tests/fuzz/fuzz_*.c) with clang-19 under
# AddressSanitizer and UBSan, and runs each for SECONDS (default 600) from its corpus in tests/fuzz/corpus/<target>.
# The parsers' own sources are compiled into each fuzzer, so they run instrumented. New inputs that add coverage go
# to a scratch folder; with FUZZ_MERGE=1 they are merged (minimized) into the kept corpus afterwards. A crash, leak
# or UB report fails the run and leaves the input in $FUZZ_OUT (default build-fuzz/out/<target>).
# Exits 77 when clang-19 or its libFuzzer runtime (Debian: clang-19, libclang-rt-19-dev) is missing.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${1:-600}
[ $# -gt 0 ] && shift
TARGETS=${*:-"gguf_header request template tokenizer toolcall"}
CC=${FUZZ_CC:-clang-19}
B=${FUZZ_BUILD:-$ROOT/build-fuzz}
OUT=${FUZZ_OUT:-$B/out}
export KILN_TESTDATA=${KILN_TESTDATA:-$ROOT/../shared/testdata}

command -v "$CC" >/dev/null || { echo "skip: $CC is not installed (Debian: clang-19 libclang-rt-19-dev)"; exit 77; }
mkdir -p "$B" "$OUT"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$B/probe.c"
if ! "$CC" -fsanitize=fuzzer "$B/probe.c" -o "$B/probe" 2>/dev/null; then
  echo "skip: $CC has no libFuzzer runtime (Debian: libclang-rt-19-dev)"; exit 77
fi

CFLAGS="-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
 -I$ROOT -I$ROOT/build $(pkg-config --cflags libcjson libpcre2-8 libmicrohttpd 2>/dev/null)"
LIBS="$(pkg-config --libs libcjson libpcre2-8 2>/dev/null || echo -lcjson -lpcre2-8) -lm -lpthread"
TEXT="models/text/json_read.c models/text/chat_json.c models/text/chat_conv.c models/text/chat_detect.c models/text/chat_template.c
 models/text/toolcall.c models/text/toolcall_out.c models/text/json_constraint.c device/base/env.c device/base/bytes.c"
GGUF="models/gguf.c models/gguf_get.c models/gguf_write.c device/base/dtype.c device/base/bytes.c device/base/formats.c
 device/base/formats_k.c"
sources() {
  case $1 in
  gguf_header) echo "$GGUF device/base/env.c" ;;
  request) echo "$TEXT apps/openai.c models/sample.c models/text/json_schema.c models/text/json_schema_merge.c models/text/json_schema_run.c models/text/json_regex.c" ;;
  template) echo "$TEXT" ;;
  tokenizer) echo "$GGUF models/text/tokenizer.c models/text/bpe.c models/text/spm.c models/text/detok.c device/base/env.c" ;;
  toolcall) echo "$TEXT" ;;
  *) return 1 ;;
  esac
}

# Each source is compiled once into $B/obj (again when it or any header is newer), two at a time, then linked.
objects() {
  for f in "$@"; do
    o="$B/obj/$(echo "$f" | tr / _).o"
    if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ -n "$(find models apps device codegen tests/fuzz -name '*.h' -newer "$o" | head -1)" ]; then
      echo "$f"
    fi
  done | xargs -r -P 2 -I{} sh -c 'o="$0/obj/$(echo "{}" | tr / _).o"; '"$CC"' $1 -c "{}" -o "$o" 2>"$o.log" || { cat "$o.log"; exit 1; }' "$B" "$CFLAGS" || return 1
  for f in "$@"; do echo "$B/obj/$(echo "$f" | tr / _).o"; done
}
mkdir -p "$B/obj"

fail=0
for t in $TARGETS; do
  if [ $t = tokenizer ] && [ ! -f "$KILN_TESTDATA/models/tiny-qwen2-Q4_K_M.gguf" ]; then
    echo "skip fuzz_$t: $KILN_TESTDATA/models is missing (../shared/testdata)"; continue
  fi
  src=$(sources "$t") || { echo "unknown fuzz target $t"; exit 2; }
  exe="$B/fuzz_$t"
  # shellcheck disable=SC2086
  if ! objs=$(objects tests/fuzz/fuzz_$t.c $src 2>"$B/$t.build.log") || ! "$CC" $CFLAGS $objs $LIBS -o "$exe" 2>>"$B/$t.build.log"; then
    echo "FAIL fuzz_$t: does not build:"; tail -20 "$B/$t.build.log"; fail=$((fail + 1)); continue
  fi
  corpus=tests/fuzz/corpus/$t
  work="$B/corpus-$t"
  mkdir -p "$work" "$OUT/$t"
  dict=""
  [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
  # shellcheck disable=SC2086
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$exe" "$work" "$corpus" $dict -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout=20 \
    -print_final_stats=1 -artifact_prefix="$OUT/$t/" >"$B/$t.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$B/$t.log" | tail -1)
  if [ $rc != 0 ]; then
    echo "FAIL fuzz_$t after ${runs:-?} runs (exit $rc); the input is in $OUT/$t:"
    grep -E "ERROR|SUMMARY|runtime error|==[0-9]+==" "$B/$t.log" | head -15
    fail=$((fail + 1))
  else
    echo "ok   fuzz_$t: ${runs:-?} runs in ${SECS} s, no crash, leak or UB report"
  fi
  if [ "${FUZZ_MERGE:-0}" = 1 ] && [ $rc = 0 ]; then
    ASAN_OPTIONS=detect_leaks=0 "$exe" -merge=1 "$corpus" "$work" >"$B/$t.merge.log" 2>&1 &&
      echo "     corpus $corpus: $(ls "$corpus" | wc -l) inputs after merging"
  fi
done
echo "$(( $(echo $TARGETS | wc -w) - fail )) passed, $fail failed"
[ $fail = 0 ]
