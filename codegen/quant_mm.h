/* Private to codegen/: the tiled prefill matmul for block-format weights (quant_mm.c). */
#ifndef KN_QUANT_MM_H
#define KN_QUANT_MM_H

#include <llvm-c/Core.h>
#include <stdbool.h>

#include "../device/device.h"
#include "emit.h"
#include "kernel.h"

#define KN_QMM_MAX_RED 2
#define KN_QMM_MAX_STREAMS 4 /* reduces x rows of a work item */

/* A kernel out[t, n] = f(sum_k x[t, k] * W0[n, k], sum_k x[t, k] * W1[n, k], ...) the template takes: T tokens (>= 2),
 * N rows, K reduced, one to KN_QMM_MAX_RED reduces over the same activations and weights of one format (a fused
 * SiLU-gated MLP's gate and up: silu(x W0) * (x W1)) */
typedef struct {
  int64_t T, N, K;
  kn_dtype fmt;
  int nred;
  const kn_kop *reds[KN_QMM_MAX_RED], *ws[KN_QMM_MAX_RED]; /* the REDUCEs and their block-format weight loads */
  const kn_kop *red, *x, *w; /* the first REDUCE, the f32 activation load, the first weight load */
} kn_qmm;

/* Its tiling: U tokens per decoded block, token tiles of `tile` tokens (a multiple of U), ntiles of them; nb weight
 * blocks per row, nsub activation sums per block, pb blocks per record (split: in the weights' nibble order). Work
 * items: ntiles * N. */
typedef struct {
  int U, pb, rows, chunk; /* rows: of each work item (N / rows items per tile); chunk: tokens dotted per stream in turn */
  bool split, biased; /* biased: kn_quant_dot_tile_biased's records */
  int64_t tile, ntiles, nb, nsub;
} kn_qmm_plan_t;

/* The epilogue of a matched kernel at one output (t, n): bufs are the kernel's buffer pointers, vars its variables'
 * i64 values, red[i] the value of reduce m->reds[i]; seen/vals memoize the nodes evaluated for one output. */
typedef struct {
  kn_emit *e;
  const kn_kernel *k;
  const kn_qmm *m;
  LLVMValueRef *bufs, *vars, t, n, red[KN_QMM_MAX_RED];
  int U;           /* kn_qmm_store_tokens: the values are <U x float>, lane u token t0 + u */
  LLVMValueRef t0;
  const kn_kop *seen[64];
  LLVMValueRef vals[64];
  int nseen;
} kn_qmm_epi;

/* The template is on: the integer-dot mode (not KILN_EXACT=1) and not KILN_QMM=0 */
bool kn_qmm_enabled(void);
/* Does a template take k on t (the CPU's integer-dot one, or the GPU's)? Fills m. */
bool kn_qmm_match(const kn_kernel *k, const kn_target *t, kn_qmm *m);
void kn_qmm_plan(const kn_qmm *m, const kn_target *t, kn_qmm_plan_t *pl);
/* A module with one function `entry` in the CPU calling convention over ntiles * N work items; NULL with err. */
LLVMModuleRef kn_qmm_module(LLVMContextRef ctx, const kn_kernel *k, const kn_qmm *m, const kn_target *t, const char *entry,
                            char *err, size_t errlen);

/* A symbolic offset's value (i64) */
LLVMValueRef kn_qmm_sint(kn_qmm_epi *p, kn_sint s);
/* Evaluate the epilogue at (p->t, p->n) and store it to the output, rounded to its dtype */
void kn_qmm_store(kn_qmm_epi *p);
/* Evaluate it for the U tokens t0.. at once (p->red[i] are <U x float>: kn_quant_dot_hsums) and store each real one's */
void kn_qmm_store_tokens(kn_qmm_epi *p, LLVMValueRef t0, int U);
/* amdgpu_qmm.c: the tiled shape for a GPU, one amdgpu_kernel `entry` and its launch geometry; NULL with err. */
LLVMModuleRef kn_amdgpu_qmm_module(LLVMContextRef ctx, const kn_kernel *k, const kn_qmm *m, const kn_target *t,
                                   const char *entry, int64_t global[3], int64_t local[3], char *err, size_t errlen);

#endif
