#!/bin/sh
# Every kernel of a 512-token prefill and of decode steps of a Qwen2.5-7B-shaped Q4_K_M model, compiled for the
# four AMD archs (gfx1100, gfx1030, gfx90a, gfx942) and held to the AMD kernel ABI (KILN_CROSS_AMD), then each AMD
# kernel's registers and LDS as `kiln cache show` reads them. The model is the real file's tensor table (2 layers:
# every layer has the same kernels; Q4_K and Q6_K variants of attn_v/ffn_down both present) as a sparse file with
# tiny-qwen2's tokenizer; the run itself happens on the CPU.
#   scripts/amdgpu_qwen7b.sh [build dir]    (default: build)
cd "$(dirname "$0")/.."
build=${1:-build}
kiln=$build/apps/kiln
like=../shared/testdata/models/tiny-qwen2-Q4_K_M.gguf
[ -x "$kiln" ] || { echo "no $kiln: build first"; exit 1; }
[ -f "$like" ] || { echo "no $like (its tokenizer is borrowed)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 tests/shaped_gguf.py "$tmp/q7.gguf" qwen2.5-7b-q4_k_m 2 "$like" || exit 1
ids=$(python3 -c "print(','.join(str(100 + i * 37 % 5000) for i in range(512)))")
export KILN_CACHE_DIR="$tmp/cache" KILN_CROSS_AMD=gfx1100,gfx1030,gfx90a,gfx942
DEBUG=1 "$kiln" run -m "$tmp/q7.gguf" --prompt-ids "$ids" -n 3 -c 1024 >"$tmp/run.txt" 2>&1
rc=$?
grep -E "^loaded|^scheduled|prompt:" "$tmp/run.txt"
[ $rc -eq 0 ] || { echo "FAIL: kiln run exited $rc"; tail -5 "$tmp/run.txt"; exit 1; }
"$kiln" cache list >"$tmp/list.txt" || exit 1
fail=0
for arch in gfx1100 gfx1030 gfx90a gfx942; do
  n=$(grep -c "amdgcn-amd-amdhsa/$arch " "$tmp/list.txt")
  echo "== $arch: $n kernels"
  [ "$n" -gt 0 ] || fail=1
  grep "amdgcn-amd-amdhsa/$arch " "$tmp/list.txt" | while read -r key name rest; do
    "$kiln" cache show "$key" >"$tmp/show.txt" || { echo "FAIL: cache show $key"; continue; }
    printf '%-34s %s\n' "$name" "$(grep -E '^(regs|LDS|scratch|kernargs)' "$tmp/show.txt" | sed 's/  */ /g' | paste -sd';')"
  done
done
cpu=$(grep -vc "amdgcn" "$tmp/list.txt")
echo "CPU kernels: $((cpu - 1)) (each also compiled for the four archs above)"
[ $fail -eq 0 ] && echo "ok" || { echo "FAIL"; exit 1; }
