/* The tiled prefill shape for AMDGPU: out[t, n] = f(sum_k x[t, k] * W[n, k]) for T >= 2 tokens of f32 activations
 * and W [N, K] in a GGUF block format (the kernels quant_mm.c matches: one to KN_QMM_MAX_RED reduces over the same
 * activations, the epilogue evaluated there). One workgroup computes a tile of TM tokens x TN weight rows:
 *
 *   - the K axis runs in chunks of 256 elements; a chunk's activations of the tile's TM tokens are staged in LDS by
 *     the whole workgroup (16-byte loads, zeros past T and K), behind a barrier;
 *   - each wave owns R rows of the tile and splits the chunk over its lanes (VEC = 256 / wave elements each: 8 on
 *     wave32, 4 on wave64), so a wave's lanes cover whole blocks of every format and no block is fetched by two
 *     waves; each lane decodes its VEC elements of its R rows once in registers (quant.c's exact templates) and
 *     multiplies them with the TM tokens' activations read from LDS: R x TM accumulators per lane;
 *   - after the last chunk each accumulator is summed over the wave's lanes (the GROUPREDUCE butterfly), and the
 *     lanes share the R x TM outputs for the epilogue and the store.
 *
 * So each weight block is fetched and decoded once per tile of TM tokens (T / TM times a launch, not once per token
 * block of the matvec shape), and each activation once per workgroup. One kernel per matmul: no dequantized copy. */
#include <stdio.h>
#include <string.h>

#include "emit.h"
#include "llvm_target.h"
#include "quant_mm.h"

#define CHUNK 256 /* K elements per step: one K-format block, 8 of the 32-element formats */
#define TM 16     /* tokens per tile */
#define WGS 256   /* work items per workgroup: 8 waves of wave32, 4 of wave64 */

static LLVMValueRef ci(kn_emit *e, int64_t v) { return LLVMConstInt(e->i64, (unsigned long long)v, 1); }
static LLVMValueRef c32(kn_emit *e, int64_t v) { return LLVMConstInt(e->i32, (unsigned long long)v, 1); }

static LLVMValueRef smin(kn_emit *e, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, a, b, ""), a, b, "");
}

/* rows per wave: the accumulators (R x TM per reduce) stay at 32 VGPRs. Four rows (64 accumulators) took 151-243
 * VGPRs on wave32 and up to 264 on wave64 (AGPRs on gfx90a), and capping them at 128 spilled to scratch */
static int rows_per_wave(const kn_qmm *m) { return m->nred > 1 ? 1 : 2; }

static void geometry(const kn_qmm *m, const kn_target *t, int64_t global[3], int64_t local[3]) {
  int wave = strncmp(t->cpu, "gfx9", 4) ? 32 : 64, tn = WGS / wave * rows_per_wave(m);
  global[0] = (m->T + TM - 1) / TM * ((m->N + tn - 1) / tn), local[0] = WGS;
  global[1] = global[2] = local[1] = local[2] = 1;
}

LLVMModuleRef kn_amdgpu_qmm_module(LLVMContextRef ctx, const kn_kernel *k, const kn_qmm *m, const kn_target *t,
                                   const char *entry, int64_t global[3], int64_t local[3], char *err, size_t errlen) {
  kn_lprog dummy = {.k = k};
  kn_emit E, *e = &E;
  kn_emit_init(e, ctx, &dummy, t, entry, err, errlen);
  if (e->failed || kn_llvm_set_target(e->mod, t, err, errlen)) {
    kn_emit_done(e);
    LLVMDisposeModule(e->mod);
    return NULL;
  }
  const int W = strncmp(t->cpu, "gfx9", 4) ? 32 : 64, VEC = CHUNK / W, R = rows_per_wave(m), NR = m->nred;
  const int TN = WGS / W * R, NV = R * TM; /* rows per tile; accumulators per reduce */
  const int64_t T = m->T, N = m->N, K = m->K, qk = kn_dtype_get(m->fmt)->block_elems, nch = (K + CHUNK - 1) / CHUNK;
  const int64_t ntn = (N + TN - 1) / TN;
  geometry(m, t, global, local);
  LLVMBuilderRef b = e->b;
  e->fn = kn_amdgpu_kernel_fn(e, entry, WGS);
  e->entry = LLVMAppendBasicBlockInContext(ctx, e->fn, "entry");
  LLVMPositionBuilderAtEnd(b, e->entry);
  LLVMValueRef barrier = kn_amdgpu_barrier_fn(e);
  LLVMTypeRef bt = barrier ? LLVMGlobalGetValueType(barrier) : NULL;
  LLVMValueRef bufs[KN_MAXBUFS], vars[KN_MAXVARS];
  for (int i = 0; i < k->nbufs; i++) bufs[i] = LLVMGetParam(e->fn, (unsigned)i);
  for (int i = 0; i < k->nvars; i++) vars[i] = LLVMGetParam(e->fn, (unsigned)(k->nbufs + i));
  kn_qmm_epi ep = {.e = e, .k = k, .bufs = bufs, .vars = vars, .m = m};
  /* the tile: row blocks fastest, so neighbouring workgroups read the same activations */
  LLVMValueRef wg = LLVMBuildZExt(b, kn_amdgpu_intr(e, "llvm.amdgcn.workgroup.id.x", NULL, 0), e->i64, "");
  LLVMValueRef tid32 = kn_amdgpu_intr(e, "llvm.amdgcn.workitem.id.x", NULL, 0), tid = LLVMBuildZExt(b, tid32, e->i64, "");
  LLVMValueRef t0 = LLVMBuildMul(b, LLVMBuildUDiv(b, wg, ci(e, ntn), ""), ci(e, TM), "t0");
  LLVMValueRef n0 = LLVMBuildMul(b, LLVMBuildURem(b, wg, ci(e, ntn), ""), ci(e, TN), "n0");
  LLVMValueRef wave = LLVMBuildUDiv(b, tid, ci(e, W), "wave"), lane = LLVMBuildURem(b, tid, ci(e, W), "lane");
  LLVMValueRef row0 = LLVMBuildAdd(b, n0, LLVMBuildMul(b, wave, ci(e, R), ""), "row0");
  /* each weight's first block of each of the wave's rows (a row past N reads row N - 1 and is not stored) */
  LLVMValueRef wrow[KN_QMM_MAX_RED][8];
  for (int q = 0; q < NR; q++) {
    const kn_view *wv = &m->ws[q]->st.v[0];
    for (int r = 0; r < R; r++) {
      LLVMValueRef row = smin(e, LLVMBuildAdd(b, row0, ci(e, r), ""), ci(e, N - 1));
      wrow[q][r] = LLVMBuildAdd(b, ci(e, wv->offset.c / qk), LLVMBuildMul(b, row, ci(e, wv->strides[1] / qk), ""), "");
    }
  }
  LLVMValueRef xoff = kn_qmm_sint(&ep, m->x->st.v[0].offset), X = bufs[m->x->buf];
  int64_t sxt = m->x->st.v[0].strides[0];
  LLVMTypeRef lt = LLVMArrayType(e->f32, TM * CHUNK);
  LLVMValueRef lds = LLVMAddGlobalInAddressSpace(e->mod, lt, "kn.qmm.x", 3);
  LLVMSetInitializer(lds, LLVMGetPoison(lt)); /* LDS cannot be initialised */
  LLVMSetLinkage(lds, LLVMInternalLinkage);
  LLVMSetAlignment(lds, 16);
  LLVMTypeRef v4 = LLVMVectorType(e->f32, 4), vv = kn_e_vec(e->f32, VEC);

  /* the chunk loop, accumulators as phis */
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(b), body = LLVMAppendBasicBlockInContext(ctx, e->fn, "chunk"),
                    done = LLVMAppendBasicBlockInContext(ctx, e->fn, "chunks.done");
  LLVMBuildBr(b, body);
  LLVMPositionBuilderAtEnd(b, body);
  LLVMValueRef c = LLVMBuildPhi(b, e->i64, "c"), acc[KN_QMM_MAX_RED][TM * 8];
  LLVMValueRef zero64 = ci(e, 0), fz = LLVMConstReal(e->f32, 0);
  LLVMAddIncoming(c, &zero64, &pre, 1);
  for (int q = 0; q < NR; q++)
    for (int i = 0; i < NV; i++) {
      acc[q][i] = LLVMBuildPhi(b, e->f32, "acc");
      LLVMAddIncoming(acc[q][i], &fz, &pre, 1);
    }
  LLVMValueRef k0 = LLVMBuildMul(b, c, ci(e, CHUNK), "k0");
  /* stage x[t0 .. t0 + TM)[k0 .. k0 + CHUNK) in LDS, 4 floats per load */
  for (int j = 0; j < TM * CHUNK / 4 / WGS; j++) {
    LLVMValueRef f = LLVMBuildAdd(b, tid, ci(e, (int64_t)j * WGS), "");
    LLVMValueRef u = LLVMBuildUDiv(b, f, ci(e, CHUNK / 4), ""), col = LLVMBuildMul(b, LLVMBuildURem(b, f, ci(e, CHUNK / 4), ""), ci(e, 4), "");
    LLVMValueRef tk = LLVMBuildAdd(b, t0, u, ""), kk = LLVMBuildAdd(b, k0, col, "");
    LLVMValueRef ok = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSLT, tk, ci(e, T), ""), LLVMBuildICmp(b, LLVMIntSLT, kk, ci(e, K), ""), "");
    LLVMValueRef ix = LLVMBuildAdd(b, xoff, LLVMBuildAdd(b, LLVMBuildMul(b, smin(e, tk, ci(e, T - 1)), ci(e, sxt), ""), smin(e, kk, ci(e, K - 4)), ""), "");
    LLVMValueRef xv = LLVMBuildLoad2(b, v4, LLVMBuildGEP2(b, e->f32, X, &ix, 1, ""), "");
    LLVMSetAlignment(xv, 4);
    xv = LLVMBuildSelect(b, ok, xv, LLVMConstNull(v4), "");
    LLVMValueRef li = LLVMBuildAdd(b, LLVMBuildMul(b, u, ci(e, CHUNK), ""), col, "");
    LLVMValueRef st = LLVMBuildStore(b, xv, LLVMBuildGEP2(b, lt, lds, (LLVMValueRef[]){zero64, li}, 2, ""));
    LLVMSetAlignment(st, 16);
  }
  LLVMBuildCall2(b, bt, barrier, NULL, 0, "");
  /* this lane's VEC elements of each row: decoded once, dotted with the TM tokens */
  LLVMValueRef kl = LLVMBuildAdd(b, k0, LLVMBuildMul(b, lane, ci(e, VEC), ""), "");
  bool tail = K % CHUNK != 0; /* lanes past K in the last chunk: a clamped (valid) address, weights zeroed */
  LLVMValueRef kv = tail ? LLVMBuildICmp(b, LLVMIntSLT, kl, ci(e, K), "") : NULL;
  LLVMValueRef kc = tail ? smin(e, kl, ci(e, K - VEC)) : kl;
  LLVMValueRef blk = LLVMBuildUDiv(b, kc, ci(e, qk), ""), j0 = LLVMBuildURem(b, kc, ci(e, qk), "");
  LLVMValueRef w[KN_QMM_MAX_RED][8][16];
  for (int q = 0; q < NR; q++)
    for (int r = 0; r < R; r++) {
      LLVMValueRef d = kn_quant_load(e, m->fmt, bufs[m->ws[q]->buf], LLVMBuildAdd(b, wrow[q][r], blk, ""), j0, VEC);
      if (tail) d = LLVMBuildSelect(b, kv, d, LLVMConstNull(vv), "");
      for (int i = 0; i < VEC; i++) w[q][r][i] = LLVMBuildExtractElement(b, d, c32(e, i), "");
    }
  LLVMValueRef nacc[KN_QMM_MAX_RED][TM * 8];
  for (int u = 0; u < TM; u++) {
    LLVMValueRef li = LLVMBuildAdd(b, ci(e, (int64_t)u * CHUNK), LLVMBuildMul(b, lane, ci(e, VEC), ""), "");
    LLVMValueRef xl = LLVMBuildLoad2(b, vv, LLVMBuildGEP2(b, lt, lds, (LLVMValueRef[]){zero64, li}, 2, ""), "");
    LLVMSetAlignment(xl, 16);
    LLVMValueRef xs[16];
    for (int i = 0; i < VEC; i++) xs[i] = LLVMBuildExtractElement(b, xl, c32(e, i), "");
    for (int q = 0; q < NR; q++)
      for (int r = 0; r < R; r++) {
        LLVMValueRef a = acc[q][r * TM + u];
        for (int i = 0; i < VEC; i++) a = kn_e_fadd(e, a, kn_e_fmul(e, w[q][r][i], xs[i]));
        nacc[q][r * TM + u] = a;
      }
  }
  LLVMBuildCall2(b, bt, barrier, NULL, 0, ""); /* every wave is done with the chunk before the next is staged */
  LLVMValueRef cn = LLVMBuildAdd(b, c, ci(e, 1), "");
  LLVMBasicBlockRef last = LLVMGetInsertBlock(b);
  LLVMAddIncoming(c, &cn, &last, 1);
  for (int q = 0; q < NR; q++)
    for (int i = 0; i < NV; i++) LLVMAddIncoming(acc[q][i], &nacc[q][i], &last, 1);
  LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, cn, ci(e, nch), ""), body, done);
  LLVMPositionBuilderAtEnd(b, done);

  /* sums over the wave's lanes; lane l then stores outputs l, l + W, ... of the wave's R x TM (row-major) */
  LLVMValueRef sum[KN_QMM_MAX_RED][TM * 8];
  for (int q = 0; q < NR; q++)
    for (int i = 0; i < NV; i++) sum[q][i] = kn_amdgpu_lane_sum(e, nacc[q][i], tid32, W, W);
  LLVMValueRef lane32 = LLVMBuildTrunc(b, lane, e->i32, "");
  for (int j = 0; j * W < NV && !e->failed; j++) {
    LLVMValueRef o = LLVMBuildAdd(b, ci(e, (int64_t)j * W), lane, "");
    for (int q = 0; q < NR; q++) { /* output j * W + lane: a select over the W candidates this round holds */
      LLVMValueRef v = fz;
      for (int i = j * W; i < (j + 1) * W && i < NV; i++)
        v = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, lane32, c32(e, i - j * W), ""), sum[q][i], v, "");
      ep.red[q] = v;
    }
    LLVMValueRef tk = LLVMBuildAdd(b, t0, LLVMBuildURem(b, o, ci(e, TM), ""), "tok");
    LLVMValueRef row = LLVMBuildAdd(b, row0, LLVMBuildUDiv(b, o, ci(e, TM), ""), "row");
    LLVMValueRef ok = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSLT, tk, ci(e, T), ""), LLVMBuildICmp(b, LLVMIntSLT, row, ci(e, N), ""), "");
    if (NV % W) ok = LLVMBuildAnd(b, ok, LLVMBuildICmp(b, LLVMIntSLT, o, ci(e, NV), ""), "");
    LLVMBasicBlockRef st = LLVMAppendBasicBlockInContext(ctx, e->fn, "store"), next = LLVMAppendBasicBlockInContext(ctx, e->fn, "next");
    LLVMBuildCondBr(b, ok, st, next);
    LLVMPositionBuilderAtEnd(b, st);
    ep.t = tk, ep.n = row;
    kn_qmm_store(&ep);
    LLVMBuildBr(b, next);
    LLVMPositionBuilderAtEnd(b, next);
  }
  LLVMBuildRetVoid(b);
  bool failed = e->failed;
  kn_emit_done(e);
  if (failed) {
    LLVMDisposeModule(e->mod);
    return NULL;
  }
  return e->mod;
}
