/* The fused attention template (KN_KERNEL_ATTENTION) for AMDGPU: one workgroup per (query, head). Its work items
 * split the keys 0 .. start_pos + t (work item w takes keys w, w + WG, ...), each keeping its own online softmax
 * (running max, denominator, head_dim accumulators in registers); the partial states are then merged through LDS:
 * the group's max M, each partial scaled by exp(m_w - M), and output element d summed over the partials by work item
 * d mod WG. No score matrix exists in memory, and the cost follows the position, not the cache length. */
#include <stdio.h>
#include <string.h>

#include "attention.h"
#include "emit.h"
#include "llvm_target.h"


typedef struct {
  kn_emit *e;
  LLVMValueRef fn, barrier;
} actx;

static LLVMValueRef ci(kn_emit *e, int64_t v) { return LLVMConstInt(e->i64, (unsigned long long)v, 1); }
static LLVMValueRef cf(kn_emit *e, double v) { return LLVMConstReal(e->f32, v); }

/* e^x through the shared exp2 polynomial */
static LLVMValueRef expf_(kn_emit *e, LLVMValueRef x) { return kn_e_exp2(e, kn_e_fmul(e, x, kn_e_fconst(LLVMTypeOf(x), 1.4426950408889634))); }



typedef struct {
  LLVMBasicBlockRef head, body, exit;
  LLVMValueRef i;
} loop;

static loop loop_begin(actx *a, LLVMValueRef from, LLVMValueRef to) {
  kn_emit *e = a->e;
  loop l;
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(e->b);
  l.head = LLVMAppendBasicBlockInContext(e->ctx, a->fn, "head");
  l.body = LLVMAppendBasicBlockInContext(e->ctx, a->fn, "body");
  l.exit = LLVMAppendBasicBlockInContext(e->ctx, a->fn, "exit");
  LLVMBuildBr(e->b, l.head);
  LLVMPositionBuilderAtEnd(e->b, l.head);
  l.i = LLVMBuildPhi(e->b, e->i64, "i");
  LLVMAddIncoming(l.i, &from, &pre, 1);
  LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, l.i, to, ""), l.body, l.exit);
  LLVMPositionBuilderAtEnd(e->b, l.body);
  return l;
}

static void loop_end(actx *a, loop *l, int64_t step) {
  kn_emit *e = a->e;
  LLVMValueRef next = LLVMBuildAdd(e->b, l->i, ci(e, step), "");
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(e->b);
  LLVMAddIncoming(l->i, &next, &cur, 1);
  LLVMBuildBr(e->b, l->head);
  LLVMPositionBuilderAtEnd(e->b, l->exit);
}


static LLVMValueRef lds(kn_emit *e, const char *name, int n) {
  LLVMTypeRef at = LLVMArrayType(e->f32, (unsigned)n);
  LLVMValueRef g = LLVMAddGlobalInAddressSpace(e->mod, at, name, 3);
  LLVMSetInitializer(g, LLVMGetPoison(at));
  LLVMSetLinkage(g, LLVMInternalLinkage);
  LLVMSetAlignment(g, 16);
  return g;
}

static LLVMValueRef lds_at(kn_emit *e, LLVMValueRef g, int n, LLVMValueRef i) {
  return LLVMBuildGEP2(e->b, LLVMArrayType(e->f32, (unsigned)n), g, (LLVMValueRef[]){ci(e, 0), i}, 2, "");
}

static void barrier(actx *a) { LLVMBuildCall2(a->e->b, LLVMGlobalGetValueType(a->barrier), a->barrier, NULL, 0, ""); }

/* Work-item layout: tid = kg * DS + ds. The DS work items of a key group split head_dim (C dims each; DS a power of
 * two within one wave, so the dot product is a lane butterfly); the KS key groups split the keys. */
typedef struct {
  int C, DS, KS, WGS;
} layout;

static layout pick_layout(int D, int wave) {
  layout l = {4, 1, 1, 1};
  while (D / l.C > wave) l.C *= 2;
  int ds = (D + l.C - 1) / l.C;
  while (l.DS < ds) l.DS *= 2;
  l.KS = 64 / l.DS > 1 ? 64 / l.DS : 1;
  l.WGS = l.DS * l.KS;
  return l;
}

static LLVMValueRef bperm_sum(actx *a, LLVMValueRef x, LLVMValueRef tid, int DS, int wave) {
  kn_emit *e = a->e;
  LLVMValueRef lane = LLVMBuildAnd(e->b, tid, LLVMConstInt(e->i32, (unsigned)wave - 1, 0), "");
  for (int m = 1; m < DS; m *= 2) {
    LLVMValueRef addr = LLVMBuildShl(e->b, LLVMBuildXor(e->b, lane, LLVMConstInt(e->i32, (unsigned)m, 0), ""), LLVMConstInt(e->i32, 2, 0), "");
    LLVMValueRef args[2] = {addr, LLVMBuildBitCast(e->b, x, e->i32, "")};
    LLVMValueRef o = kn_amdgpu_intr(e, "llvm.amdgcn.ds.bpermute", args, 2);
    x = kn_e_fadd(e, x, LLVMBuildBitCast(e->b, o, e->f32, ""));
  }
  return x;
}

/* C floats of a row at element `elem` (0 when the slice is padding past head_dim) */
static LLVMValueRef load_c(actx *a, LLVMValueRef base, LLVMValueRef elem, LLVMValueRef valid, bool half, int C) {
  kn_emit *e = a->e;
  LLVMTypeRef et = half ? e->f16 : e->f32, vt = LLVMVectorType(e->f32, (unsigned)C);
  elem = LLVMBuildSelect(e->b, valid, elem, ci(e, 0), "");
  LLVMValueRef v = LLVMBuildLoad2(e->b, LLVMVectorType(et, (unsigned)C), LLVMBuildGEP2(e->b, et, base, &elem, 1, ""), "");
  LLVMSetAlignment(v, half ? 2 : 4);
  if (half) v = LLVMBuildFPExt(e->b, v, vt, "");
  return LLVMBuildSelect(e->b, valid, v, LLVMConstNull(vt), "");
}

static LLVMValueRef hsum(kn_emit *e, LLVMValueRef v, int C) {
  LLVMValueRef s = NULL;
  for (int i = 0; i < C; i++) {
    LLVMValueRef x = LLVMBuildExtractElement(e->b, v, LLVMConstInt(e->i32, (unsigned)i, 0), "");
    s = s ? kn_e_fadd(e, s, x) : x;
  }
  return s;
}

static void body(actx *a, const kn_kernel *k, LLVMValueRef *bufs, LLVMValueRef start_pos, layout ly, int wave) {
  /* start_pos NULL: per-row mode, the query's cache row read from bufs[4] */
  kn_emit *e = a->e;
  LLVMBuilderRef b = e->b;
  const kn_attn *at = &k->attn;
  bool half = k->bufs[2].dtype == KN_F16;
  int D = at->head_dim, G = at->n_head / at->n_kv_head, C = ly.C;
  LLVMTypeRef vt = LLVMVectorType(e->f32, (unsigned)C);
  LLVMValueRef item = LLVMBuildZExt(b, kn_amdgpu_intr(e, "llvm.amdgcn.workgroup.id.x", NULL, 0), e->i64, "");
  LLVMValueRef tid32 = kn_amdgpu_intr(e, "llvm.amdgcn.workitem.id.x", NULL, 0), w = LLVMBuildZExt(b, tid32, e->i64, "");
  LLVMValueRef kg = LLVMBuildUDiv(b, w, ci(e, ly.DS), "kg"), ds = LLVMBuildURem(b, w, ci(e, ly.DS), "ds");
  LLVMValueRef dim = LLVMBuildMul(b, ds, ci(e, C), "dim"), valid = LLVMBuildICmp(b, LLVMIntSLT, dim, ci(e, D), "");
  LLVMValueRef tq = LLVMBuildSDiv(b, item, ci(e, at->n_head), ""), h = LLVMBuildSRem(b, item, ci(e, at->n_head), "");
  LLVMValueRef kvh = LLVMBuildSDiv(b, h, ci(e, G), "");
  LLVMValueRef qoff = LLVMBuildMul(b, item, ci(e, D), "");
  LLVMValueRef nkeys, seg0 = ci(e, 0); /* keys first .. nkeys - 1 of the segment starting at cache row seg0 */
  if (!start_pos) {
    LLVMValueRef r = LLVMBuildSExt(b, LLVMBuildLoad2(b, e->i32, LLVMBuildGEP2(b, e->i32, bufs[4], &tq, 1, ""), ""), e->i64, "row");
    LLVMValueRef p = LLVMBuildSRem(b, r, ci(e, at->seg), "pos");
    seg0 = LLVMBuildSub(b, r, p, "seg0");
    nkeys = LLVMBuildAdd(b, p, ci(e, 1), "nkeys");
  } else
    nkeys = LLVMBuildAdd(b, LLVMBuildAdd(b, start_pos, tq, ""), ci(e, 1), "nkeys");
  LLVMValueRef first = ci(e, 0);
  if (at->window > 0) { /* sliding window: the last `window` keys only */
    LLVMValueRef lo = LLVMBuildSub(b, nkeys, ci(e, at->window), "");
    first = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, lo, first, ""), lo, first, "first");
  }
  LLVMValueRef k0 = LLVMBuildAdd(b, first, kg, ""); /* key group kg takes keys first + kg, first + kg + KS, ... */
  LLVMValueRef q = kn_e_fmul(e, load_c(a, bufs[1], LLVMBuildAdd(b, qoff, dim, ""), valid, false, C), kn_e_fconst(vt, at->scale));
  /* the key loop; loop-carried state as phis: acc, running max m, denominator l */
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(b);
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(e->ctx, a->fn, "key");
  LLVMBasicBlockRef kbody = LLVMAppendBasicBlockInContext(e->ctx, a->fn, "key.body");
  LLVMBasicBlockRef kexit = LLVMAppendBasicBlockInContext(e->ctx, a->fn, "key.exit");
  LLVMBuildBr(b, head);
  LLVMPositionBuilderAtEnd(b, head);
  LLVMValueRef ki = LLVMBuildPhi(b, e->i64, "k"), mx = LLVMBuildPhi(b, e->f32, "m"), den = LLVMBuildPhi(b, e->f32, "l");
  LLVMValueRef acc = LLVMBuildPhi(b, vt, "acc");
  LLVMValueRef z = LLVMConstNull(vt), m0 = cf(e, -1e30), l0 = cf(e, 0.0);
  LLVMAddIncoming(ki, &k0, &pre, 1), LLVMAddIncoming(mx, &m0, &pre, 1), LLVMAddIncoming(den, &l0, &pre, 1);
  LLVMAddIncoming(acc, &z, &pre, 1);
  LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, ki, nkeys, ""), kbody, kexit);
  LLVMPositionBuilderAtEnd(b, kbody);
  LLVMValueRef kabs = LLVMBuildAdd(b, seg0, ki, "");
  LLVMValueRef row = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, kabs, ci(e, at->n_kv_head), ""), kvh, ""), ci(e, D), ""), dim, "");
  LLVMValueRef s = bperm_sum(a, hsum(e, kn_e_fmul(e, q, load_c(a, bufs[2], row, valid, half, C)), C), tid32, ly.DS, wave);
  LLVMValueRef m_new = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, s, mx, ""), s, mx, "");
  LLVMValueRef corr = expf_(e, kn_e_fsub(e, mx, m_new)), p = expf_(e, kn_e_fsub(e, s, m_new));
  LLVMValueRef l_new = kn_e_fadd(e, kn_e_fmul(e, den, corr), p), k_next = LLVMBuildAdd(b, ki, ci(e, ly.KS), "");
  LLVMValueRef vv = load_c(a, bufs[3], row, valid, half, C);
  LLVMValueRef nacc = kn_e_fadd(e, kn_e_fmul(e, acc, kn_e_splat(e, corr, C)), kn_e_fmul(e, vv, kn_e_splat(e, p, C)));
  LLVMBasicBlockRef last = LLVMGetInsertBlock(b);
  LLVMAddIncoming(acc, &nacc, &last, 1);
  LLVMAddIncoming(ki, &k_next, &last, 1), LLVMAddIncoming(mx, &m_new, &last, 1), LLVMAddIncoming(den, &l_new, &last, 1);
  LLVMBuildBr(b, head);
  LLVMPositionBuilderAtEnd(b, kexit);
  /* merge the KS key groups' states: lm/ll per group, lacc[kg][d] */
  int KS = ly.KS, DP = ly.DS * C; /* padded row of lacc */
  LLVMValueRef lm = lds(e, "kn.att.m", KS), ll = lds(e, "kn.att.l", KS), lacc = lds(e, "kn.att.acc", KS * DP);
  LLVMBuildStore(b, mx, lds_at(e, lm, KS, kg)); /* the DS work items of a group store equal values */
  LLVMBuildStore(b, den, lds_at(e, ll, KS, kg));
  for (int c = 0; c < C; c++) {
    LLVMValueRef ix = LLVMBuildAdd(b, LLVMBuildMul(b, kg, ci(e, DP), ""), LLVMBuildAdd(b, dim, ci(e, c), ""), "");
    LLVMBuildStore(b, LLVMBuildExtractElement(b, acc, LLVMConstInt(e->i32, (unsigned)c, 0), ""), lds_at(e, lacc, KS * DP, ix));
  }
  barrier(a);
  LLVMValueRef M = NULL, mi[64];
  for (int i = 0; i < KS; i++) {
    mi[i] = LLVMBuildLoad2(b, e->f32, lds_at(e, lm, KS, ci(e, i)), "");
    M = M ? LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, mi[i], M, ""), mi[i], M, "") : mi[i];
  }
  LLVMValueRef L = cf(e, 0.0), f[64];
  for (int i = 0; i < KS; i++) {
    f[i] = expf_(e, kn_e_fsub(e, mi[i], M));
    L = kn_e_fadd(e, L, kn_e_fmul(e, LLVMBuildLoad2(b, e->f32, lds_at(e, ll, KS, ci(e, i)), ""), f[i]));
  }
  LLVMValueRef inv = LLVMBuildFDiv(b, cf(e, 1.0), L, "");
  loop d = loop_begin(a, w, ci(e, D));
  LLVMValueRef sum = cf(e, 0.0);
  for (int i = 0; i < KS; i++) {
    LLVMValueRef x = LLVMBuildLoad2(b, e->f32, lds_at(e, lacc, KS * DP, LLVMBuildAdd(b, ci(e, (int64_t)i * DP), d.i, "")), "");
    sum = kn_e_fadd(e, sum, kn_e_fmul(e, x, f[i]));
  }
  LLVMValueRef off = LLVMBuildAdd(b, qoff, d.i, "");
  LLVMBuildStore(b, kn_e_fmul(e, sum, inv), LLVMBuildGEP2(b, e->f32, bufs[0], &off, 1, ""));
  loop_end(a, &d, ly.WGS);
}

LLVMModuleRef kn_amdgpu_attention_module(LLVMContextRef c, const kn_kernel *k, const kn_target *t, const char *entry,
                                         int64_t global[3], int64_t local[3], char *err, size_t errlen) {
  const kn_attn *at = &k->attn;
  if ((k->bufs[2].dtype != KN_F16 && k->bufs[2].dtype != KN_F32) || k->bufs[3].dtype != k->bufs[2].dtype ||
      at->head_dim <= 0 || at->head_dim > 256 || at->n_kv_head <= 0 || at->n_head % at->n_kv_head || at->head_dim % 4 ||
      (at->seg > 0 ? k->nbufs != 5 || k->bufs[4].dtype != KN_I32 : at->pos_var < 0 || at->pos_var >= k->nvars)) {
    snprintf(err, errlen, "attention kernel: unsupported cache dtype or head layout for AMDGPU");
    return NULL;
  }
  kn_lprog dummy = {.k = k};
  kn_emit e;
  kn_emit_init(&e, c, &dummy, t, entry, err, errlen);
  if (e.failed || kn_llvm_set_target(e.mod, t, err, errlen)) {
    kn_emit_done(&e);
    LLVMDisposeModule(e.mod);
    return NULL;
  }
  actx a = {.e = &e};
  int wave = strncmp(t->cpu, "gfx9", 4) ? 32 : 64;
  layout ly = pick_layout(at->head_dim, wave);
  a.fn = e.fn = kn_amdgpu_kernel_fn(&e, entry, ly.WGS);
  e.entry = LLVMAppendBasicBlockInContext(c, e.fn, "entry");
  LLVMPositionBuilderAtEnd(e.b, e.entry);
  a.barrier = kn_amdgpu_barrier_fn(&e);
  LLVMValueRef bufs[5];
  for (int i = 0; i < k->nbufs && i < 5; i++) bufs[i] = LLVMGetParam(e.fn, (unsigned)i);
  body(&a, k, bufs, at->seg > 0 ? NULL : LLVMGetParam(e.fn, (unsigned)(k->nbufs + at->pos_var)), ly, wave);
  LLVMBuildRetVoid(e.b);
  global[0] = (int64_t)at->n_q * at->n_head, local[0] = ly.WGS;
  global[1] = global[2] = local[1] = local[2] = 1;
  bool failed = e.failed;
  kn_emit_done(&e);
  if (failed) {
    LLVMDisposeModule(e.mod);
    return NULL;
  }
  return e.mod;
}
