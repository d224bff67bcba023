/* The prefill matmul for block-format weights (CPU, integer-dot mode): out[t, n] = f(sum_k x[t, k] * W[n, k]) with x
 * an f32 buffer of T >= 2 tokens, W [N, K] in a GGUF block format and f the kernel's epilogue (bias, residual, SiLU
 * gate, an f16 KV-cache store, ...). A work item is (token tile, row), tiles outer, so the contiguous range of items a
 * thread runs quantizes each of its token tiles once: int8 with one scale per weight block and the sums of each
 * sub-block (kn_quant_x_block, the rounding of the GEMV template), into a buffer on the stack. Then each row decodes
 * every weight block once per group of U tokens and dots it with all of them (kn_quant_dot_tile): the decode is paid
 * once per U tokens, the quantization once per launch instead of once per block and row. Kernels of other shapes,
 * symbolic extents, or an epilogue this file does not evaluate keep the general lowering (opt.c, lower.c). The
 * match and the epilogue are shared with the GPU's tiled template (amdgpu_qmm.c), which decodes the weights exactly. */
#include <stdio.h>
#include <string.h>

#include "../device/base/env.h"
#include "emit.h"
#include "quant_mm.h"

#define STACK_BYTES (384 * 1024) /* the quantized token tile: within any thread's stack */
#define MAX_TILE 64

bool kn_qmm_enabled(void) { return kn_qdot_mode() && kn_getenv_int("KILN_QMM", 1) > 0; }

static bool is_float(kn_dtype d) { return d == KN_F32 || d == KN_F16 || d == KN_BF16; }

static bool plain_view(const kn_st *st) { return st->nviews == 1 && !st->v[0].masked; }

/* An output-shaped access the epilogue evaluates: a chain of unmasked views (a reshape under a permute or a
 * broadcast: the V projection of a batched pass stores [T, N] into [T, heads, head_dim] rows), its top view over the
 * kernel's (t, n, k) with k 0 outside the reduce */
static bool chain_ok(const kn_kernel *k, const kn_st *st) {
  if (st->nviews < 1 || st->nviews > KN_MAXVIEWS || st->v[st->nviews - 1].ndim != k->ndim) return false;
  for (int i = 0; i < st->nviews; i++)
    if (st->v[i].masked || st->v[i].ndim < 1 || st->v[i].ndim > KN_MAXDIM) return false;
  return true;
}

static bool is_red(const kn_qmm *m, const kn_kop *x) {
  for (int i = 0; i < m->nred; i++)
    if (m->reds[i] == x) return true;
  return false;
}

/* Can the epilogue (everything above the reduces) be evaluated here: float math on loads over the output shape */
static bool epi_ok(const kn_kernel *k, const kn_qmm *m, const kn_kop *x, int depth) {
  if (!x || depth > 64) return false;
  if (is_red(m, x)) return true;
  if (!is_float(x->dtype)) return false;
  switch (x->op) {
  case KN_KOP_LOAD:
    return x->nsrc == 0 && x->buf >= 0 && x->buf < k->nbufs && is_float(k->bufs[x->buf].dtype) && chain_ok(k, &x->st);
  case KN_KOP_CONST: return true;
  case KN_KOP_NEG: case KN_KOP_RECIP: case KN_KOP_SQRT: case KN_KOP_EXP2: case KN_KOP_LOG2: case KN_KOP_SIN:
    return epi_ok(k, m, x->src[0], depth + 1);
  case KN_KOP_CAST: return is_float(x->src[0]->dtype) && epi_ok(k, m, x->src[0], depth + 1);
  case KN_KOP_ADD: case KN_KOP_SUB: case KN_KOP_MUL: case KN_KOP_DIV: case KN_KOP_MAX: case KN_KOP_MIN: case KN_KOP_POW:
    return epi_ok(k, m, x->src[0], depth + 1) && epi_ok(k, m, x->src[1], depth + 1);
  default: return false;
  }
}

/* The distinct REDUCE nodes under x (not looking inside them), in the order first met; false past `cap` of them */
static bool find_reduces(const kn_kop *x, int depth, const kn_kop **out, int *n, int cap) {
  if (!x || depth > 64) return false;
  if (x->op == KN_KOP_REDUCE) {
    for (int i = 0; i < *n; i++)
      if (out[i] == x) return true;
    if (*n == cap) return false;
    out[(*n)++] = x;
    return true;
  }
  for (int i = 0; i < x->nsrc && i < 3; i++)
    if (!find_reduces(x->src[i], depth + 1, out, n, cap)) return false;
  return true;
}

static bool same_view(const kn_view *a, const kn_view *b) {
  if (a->ndim != b->ndim || a->masked != b->masked || a->offset.c != b->offset.c || a->offset.v != b->offset.v ||
      (a->offset.v >= 0 && a->offset.k != b->offset.k))
    return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i] || a->strides[i] != b->strides[i]) return false;
  return true;
}

/* One reduce sum_k x[t, k] * W[n, k]: x an f32 load, W a block-format load the integer-dot template decodes */
static bool match_reduce(const kn_kernel *k, bool gpu, const kn_kop *red, const kn_kop **xo, const kn_kop **wo) {
  if (red->rop != KN_KOP_ADD || red->src[0]->op != KN_KOP_MUL) return false;
  const kn_kop *a = red->src[0]->src[0], *b = red->src[0]->src[1];
  if (a->op != KN_KOP_LOAD || b->op != KN_KOP_LOAD || a->nsrc || b->nsrc) return false;
  if (kn_dtype_is_quant(k->bufs[a->buf].dtype)) {
    const kn_kop *s = a;
    a = b, b = s;
  }
  kn_dtype fmt = k->bufs[b->buf].dtype;
  if (k->bufs[a->buf].dtype != KN_F32 || !(gpu ? kn_quant_load_supported(fmt) : kn_quant_dot_supported(fmt))) return false;
  if (!plain_view(&a->st) || !plain_view(&b->st)) return false;
  const kn_view *xv = &a->st.v[0], *wv = &b->st.v[0];
  int64_t qk = kn_dtype_get(fmt)->block_elems, K = k->shape[2];
  if (xv->ndim != 3 || wv->ndim != 3 || xv->strides[1] != 0 || xv->strides[2] != 1 || wv->strides[0] != 0 || wv->strides[2] != 1)
    return false;
  if (K % qk || wv->strides[1] % qk || wv->offset.v >= 0 || wv->offset.c % qk || K / qk > 4096) return false;
  *xo = a, *wo = b;
  return true;
}

bool kn_qmm_match(const kn_kernel *k, const kn_target *t, kn_qmm *m) {
  memset(m, 0, sizeof *m);
  /* the CPU's template is the integer-dot one; the GPU's (amdgpu_qmm.c) decodes exactly */
  bool gpu = t->kind == KN_TARGET_AMDGPU;
  if (!gpu && (t->kind != KN_TARGET_CPU || !kn_qmm_enabled())) return false;
  if (k->kind != KN_KERNEL_EXPR || kn_getenv_int("KILN_QMM", 1) <= 0 || kn_getenv_int("NOOPT", 0) > 0) return false;
  if (k->ndim != 3 || k->nreduce != 1 || k->shape[0] < 2 || k->shape_sym[0] || k->shape_sym[1] || k->shape_sym[2]) return false;
  if (!is_float(k->bufs[0].dtype) || !chain_ok(k, &k->out_st)) return false;
  /* a row scatter (the K and V rows of a batched pass into their sequences' cache rows): rows from an integer load */
  const kn_kop *r = k->out_row;
  if (r && (r->op != KN_KOP_LOAD || r->nsrc || r->buf < 0 || r->buf >= k->nbufs || !chain_ok(k, &r->st) ||
            (k->bufs[r->buf].dtype != KN_I32 && k->bufs[r->buf].dtype != KN_I64)))
    return false;
  if (!find_reduces(k->root, 0, m->reds, &m->nred, KN_QMM_MAX_RED) || m->nred < 1) return false;
  /* every reduce dots the same activations with a weight of one format (gate and up of a fused SiLU-gated MLP) */
  for (int i = 0; i < m->nred; i++) {
    const kn_kop *x, *w;
    if (!match_reduce(k, gpu, m->reds[i], &x, &w)) return false;
    if (i > 0 && (x->buf != m->x->buf || !same_view(&x->st.v[0], &m->x->st.v[0]) || k->bufs[w->buf].dtype != m->fmt))
      return false;
    if (i == 0) m->x = x, m->fmt = k->bufs[w->buf].dtype;
    m->ws[i] = w;
  }
  if (!epi_ok(k, m, k->root, 0)) return false;
  m->T = k->shape[0], m->N = k->shape[1], m->K = k->shape[2];
  m->red = m->reds[0], m->w = m->ws[0];
  return true;
}

/* ---- emission ---- */

typedef struct {
  LLVMBasicBlockRef body, exit;
  LLVMValueRef i, to;
} loop;

static LLVMValueRef ci(kn_emit *e, int64_t v) { return LLVMConstInt(e->i64, (unsigned long long)v, 1); }

/* for (i = from; i < to; i++): the body runs at least once only when from < to */
static loop loop_begin(kn_emit *e, LLVMValueRef from, LLVMValueRef to, const char *name) {
  loop l = {.to = to};
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(e->b);
  l.body = LLVMAppendBasicBlockInContext(e->ctx, e->fn, name);
  l.exit = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "done");
  LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, from, to, ""), l.body, l.exit);
  LLVMPositionBuilderAtEnd(e->b, l.body);
  l.i = LLVMBuildPhi(e->b, e->i64, name);
  LLVMAddIncoming(l.i, &from, &pre, 1);
  return l;
}

static void loop_end(kn_emit *e, loop *l) {
  LLVMValueRef next = LLVMBuildAdd(e->b, l->i, ci(e, 1), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(e->b);
  LLVMAddIncoming(l->i, &next, &latch, 1);
  LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, next, l->to, ""), l->body, l->exit);
  LLVMPositionBuilderAtEnd(e->b, l->exit);
}

LLVMValueRef kn_qmm_sint(kn_qmm_epi *p, kn_sint s) {
  LLVMValueRef v = ci(p->e, s.c);
  if (s.v >= 0 && s.k) v = LLVMBuildAdd(p->e->b, v, LLVMBuildMul(p->e->b, p->vars[s.v], ci(p->e, s.k), ""), "");
  return v;
}

/* An index as an affine sum c + sum k[i] * v[i] over values whose bounds are known (t, n, variables, and the
 * quotients and remainders unravelling makes), so that a view chain's divisions fold where the bounds allow, as
 * codegen/index.c does for the general lowering */
typedef struct {
  int n;
  LLVMValueRef v[16];
  int64_t k[16], lo[16], hi[16], c;
} qaff;

static int64_t floordiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static void qaff_term(qaff *a, LLVMValueRef v, int64_t k, int64_t lo, int64_t hi) {
  if (k == 0) return;
  for (int i = 0; i < a->n; i++)
    if (a->v[i] == v) {
      a->k[i] += k;
      return;
    }
  if (a->n < 16) a->v[a->n] = v, a->k[a->n] = k, a->lo[a->n] = lo, a->hi[a->n++] = hi;
}

static void qaff_bounds(const qaff *a, int64_t *lo, int64_t *hi) {
  *lo = *hi = a->c;
  for (int i = 0; i < a->n; i++) {
    int64_t x = a->lo[i] * a->k[i], y = a->hi[i] * a->k[i];
    *lo += x < y ? x : y, *hi += x < y ? y : x;
  }
}

static LLVMValueRef qaff_value(kn_emit *e, const qaff *a) {
  LLVMValueRef v = ci(e, a->c);
  for (int i = 0; i < a->n; i++) v = LLVMBuildAdd(e->b, v, LLVMBuildMul(e->b, a->v[i], ci(e, a->k[i]), ""), "");
  return v;
}

/* q = floor(L / P) mod S (no mod for the outermost axis); L's values are valid offsets into the view below, so
 * never negative where the value matters */
static void qaff_unravel(kn_emit *e, const qaff *L, int64_t P, int64_t S, bool outermost, qaff *q) {
  qaff small = {0};
  memset(q, 0, sizeof *q);
  int64_t cq = floordiv(L->c, P), lo, hi;
  small.c = L->c - cq * P;
  for (int i = 0; i < L->n; i++) {
    if (L->k[i] % P == 0) qaff_term(q, L->v[i], L->k[i] / P, L->lo[i], L->hi[i]);
    else qaff_term(&small, L->v[i], L->k[i], L->lo[i], L->hi[i]);
  }
  q->c = cq;
  if (small.n) {
    qaff_bounds(&small, &lo, &hi);
    if (floordiv(lo, P) == floordiv(hi, P)) q->c += floordiv(lo, P);
    else {
      int64_t Llo, Lhi;
      qaff_bounds(L, &Llo, &Lhi);
      memset(q, 0, sizeof *q);
      qaff_term(q, LLVMBuildSDiv(e->b, qaff_value(e, L), ci(e, P), ""), 1, floordiv(Llo, P), floordiv(Lhi, P));
    }
  }
  if (outermost) return;
  qaff m = {0};
  for (int i = 0; i < q->n; i++)
    if (q->k[i] % S) qaff_term(&m, q->v[i], q->k[i], q->lo[i], q->hi[i]);
  m.c = q->c - floordiv(q->c, S) * S;
  qaff_bounds(&m, &lo, &hi);
  if (lo >= 0 && hi < S) *q = m;
  else {
    LLVMValueRef r = LLVMBuildSRem(e->b, qaff_value(e, lo >= 0 ? &m : q), ci(e, S), "");
    memset(q, 0, sizeof *q);
    qaff_term(q, r, 1, 0, S - 1);
  }
}

/* element index of (t, n) (k = 0) in an output-shaped chain of unmasked views (chain_ok) */
static LLVMValueRef out_index(kn_qmm_epi *p, const kn_st *st) {
  kn_emit *e = p->e;
  const kn_view *top = &st->v[st->nviews - 1];
  qaff dim[KN_MAXDIM] = {0}, L = {0};
  qaff_term(&dim[0], p->t, 1, 0, p->m->T - 1);
  qaff_term(&dim[1], p->n, 1, 0, p->m->N - 1);
  for (int vi = st->nviews - 1; vi >= 0; vi--) {
    const kn_view *v = &st->v[vi];
    if (v != top) {
      int64_t P = 1;
      for (int j = v->ndim - 1; j >= 0; P *= v->shape[j], j--) qaff_unravel(e, &L, P, v->shape[j], j == 0, &dim[j]);
    }
    memset(&L, 0, sizeof L);
    L.c = v->offset.c;
    if (v->offset.v >= 0 && v->offset.k) {
      const kn_kvar *kv = &p->k->vars[v->offset.v];
      qaff_term(&L, p->vars[v->offset.v], v->offset.k, kv->min <= kv->max ? kv->min : INT32_MIN, kv->min <= kv->max ? kv->max : INT32_MAX);
    }
    for (int j = 0; j < v->ndim; j++) {
      for (int i = 0; i < dim[j].n; i++) qaff_term(&L, dim[j].v[i], dim[j].k[i] * v->strides[j], dim[j].lo[i], dim[j].hi[i]);
      L.c += dim[j].c * v->strides[j];
    }
  }
  return qaff_value(e, &L);
}

/* a constant of the epilogue's width (p->U lanes, or a scalar) */
static LLVMValueRef fconst(kn_qmm_epi *p, double v) { return kn_e_splat(p->e, LLVMConstReal(p->e->f32, v), p->U); }

/* a load of x at (p->t, p->n), or with p->U at each of the tokens p->t0 + u (clamped to the last real one) */
static LLVMValueRef load_at(kn_qmm_epi *p, const kn_kop *x) {
  kn_emit *e = p->e;
  kn_dtype sd = p->k->bufs[x->buf].dtype;
  LLVMTypeRef mt = kn_e_memtype(e, sd);
  LLVMValueRef r = NULL;
  for (int u = 0; u < (p->U ? p->U : 1); u++) {
    if (p->U) {
      LLVMValueRef tk = LLVMBuildAdd(e->b, p->t0, ci(e, u), "");
      p->t = LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, tk, ci(e, p->m->T), ""), tk, ci(e, p->m->T - 1), "");
    }
    LLVMValueRef ix = out_index(p, &x->st);
    LLVMValueRef v = LLVMBuildLoad2(e->b, mt, LLVMBuildGEP2(e->b, mt, p->bufs[x->buf], &ix, 1, ""), "");
    LLVMSetAlignment(v, (unsigned)kn_dtype_get(sd)->itemsize);
    if (!p->U) return v;
    if (!r) r = LLVMGetPoison(LLVMVectorType(mt, (unsigned)p->U));
    r = LLVMBuildInsertElement(e->b, r, v, LLVMConstInt(e->i32, (unsigned)u, 0), "");
  }
  return r;
}

static LLVMValueRef eval(kn_qmm_epi *p, const kn_kop *x) {
  kn_emit *e = p->e;
  for (int i = 0; i < p->m->nred; i++)
    if (x == p->m->reds[i]) return p->red[i];
  for (int i = 0; i < p->nseen; i++)
    if (p->seen[i] == x) return p->vals[i];
  LLVMValueRef v;
  switch (x->op) {
  case KN_KOP_LOAD: {
    kn_dtype sd = p->k->bufs[x->buf].dtype;
    v = load_at(p, x);
    if (sd == KN_F16) v = LLVMBuildFPExt(e->b, v, kn_e_vec(e->f32, p->U ? p->U : 1), "");
    else if (sd == KN_BF16) v = kn_e_bf16_to_f32(e, v);
    break;
  }
  case KN_KOP_CONST: v = fconst(p, x->val.f); break;
  case KN_KOP_NEG: v = LLVMBuildFNeg(e->b, eval(p, x->src[0]), ""); break;
  case KN_KOP_RECIP: v = LLVMBuildFDiv(e->b, fconst(p, 1.0), eval(p, x->src[0]), ""); break;
  case KN_KOP_SQRT: {
    LLVMValueRef a = eval(p, x->src[0]);
    v = kn_e_intrinsic(e, "llvm.sqrt", LLVMTypeOf(a), &a, 1);
    break;
  }
  case KN_KOP_EXP2: v = kn_e_exp2(e, eval(p, x->src[0])); break;
  case KN_KOP_LOG2: v = kn_e_log2(e, eval(p, x->src[0])); break;
  case KN_KOP_SIN: v = kn_e_sin(e, eval(p, x->src[0])); break;
  case KN_KOP_CAST: v = kn_e_round_to(e, eval(p, x->src[0]), x->dtype); break;
  default: v = kn_e_binary(e, x->op, x->src[0]->dtype, eval(p, x->src[0]), eval(p, x->src[1])); break;
  }
  if (p->nseen < 64) p->seen[p->nseen] = x, p->vals[p->nseen++] = v;
  return v;
}

/* shuffle indices of a 32-byte block's 16 elements from `from` */
static LLVMValueRef half_idx(kn_emit *e, int from) {
  LLVMValueRef m[16];
  for (int i = 0; i < 16; i++) m[i] = LLVMConstInt(e->i32, (unsigned)(from + i), 0);
  return LLVMConstVector(m, 16);
}

/* v (the epilogue's value at (p->t, p->n), of the output's dtype) stored */
static void store_at(kn_qmm_epi *p, LLVMValueRef v) {
  kn_emit *e = p->e;
  kn_dtype od = p->k->bufs[0].dtype;
  LLVMTypeRef mt = kn_e_memtype(e, od);
  LLVMValueRef ix = out_index(p, &p->k->out_st);
  if (p->k->out_row) { /* plus the row chosen at run time times the row stride */
    const kn_kop *r = p->k->out_row;
    LLVMTypeRef rt = p->k->bufs[r->buf].dtype == KN_I32 ? e->i32 : e->i64;
    LLVMValueRef ri = out_index(p, &r->st);
    LLVMValueRef rv = LLVMBuildLoad2(e->b, rt, LLVMBuildGEP2(e->b, rt, p->bufs[r->buf], &ri, 1, ""), "");
    LLVMSetAlignment(rv, rt == e->i32 ? 4 : 8);
    if (rt == e->i32) rv = LLVMBuildSExt(e->b, rv, e->i64, "");
    ix = LLVMBuildAdd(e->b, ix, LLVMBuildMul(e->b, rv, LLVMConstInt(e->i64, (unsigned long long)p->k->out_row_stride, 1), ""), "");
  }
  LLVMSetAlignment(LLVMBuildStore(e->b, v, LLVMBuildGEP2(e->b, mt, p->bufs[0], &ix, 1, "")), (unsigned)kn_dtype_get(od)->itemsize);
}

/* the epilogue's value (scalar or p->U lanes) rounded to the output's dtype */
static LLVMValueRef out_value(kn_qmm_epi *p) {
  kn_emit *e = p->e;
  p->nseen = 0;
  LLVMValueRef v = eval(p, p->k->root);
  kn_dtype od = p->k->bufs[0].dtype;
  if (od == KN_F16) v = LLVMBuildFPTrunc(e->b, v, kn_e_vec(e->f16, p->U ? p->U : 1), "");
  else if (od == KN_BF16) v = kn_e_f32_to_bf16(e, v);
  return v;
}

/* The epilogue at (p->t, p->n) over the reduces' values p->red, rounded to the output's dtype and stored */
void kn_qmm_store(kn_qmm_epi *p) {
  p->U = 0;
  store_at(p, out_value(p));
}

void kn_qmm_store_tokens(kn_qmm_epi *p, LLVMValueRef t0, int U) {
  kn_emit *e = p->e;
  p->U = U, p->t0 = t0;
  LLVMValueRef v = out_value(p);
  p->U = 0;
  for (int u = 0; u < U; u++) { /* each real token's lane */
    LLVMValueRef tk = LLVMBuildAdd(e->b, t0, ci(e, u), "");
    LLVMBasicBlockRef st = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "st"), next = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "next");
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, tk, ci(e, p->m->T), ""), st, next);
    LLVMPositionBuilderAtEnd(e->b, st);
    p->t = tk;
    store_at(p, LLVMBuildExtractElement(e->b, v, LLVMConstInt(e->i32, (unsigned)u, 0), ""));
    LLVMBuildBr(e->b, next);
    LLVMPositionBuilderAtEnd(e->b, next);
  }
}

void kn_qmm_plan(const kn_qmm *m, const kn_target *t, kn_qmm_plan_t *pl) {
  int64_t qk = kn_dtype_get(m->fmt)->block_elems, nb = m->K / qk, nsub = qk / kn_quant_dot_sub(m->fmt);
  int U = kn_getenv_int("KILN_QMM_U", t->vector_bytes >= 64 ? 16 : t->vector_bytes >= 32 ? 8 : 4);
  if (U < 1 || U > 16) U = t->vector_bytes >= 64 ? 16 : t->vector_bytes >= 32 ? 8 : 4;
  if (m->T < U) U = (int)m->T;
  pl->pb = kn_quant_dot_tile_blocks(t, m->fmt, nb, &pl->split);
  /* biased records triple a token's bytes: worth it while a tile's activations stay in L1 (a batched decode pass of
   * up to 16 rows); a prefill's 64-token tiles would stream them from L2 for every row (Q8_0 4864x896 at 128 tokens:
   * 183 -> 98 GFLOP per CPU second). Both sum a row as the GEMV does (the integer sums are exact either way). */
  pl->biased = !pl->split && m->T <= 16 && kn_quant_dot_tile_biased(t, m->fmt, pl->pb);
  /* a token's bytes per block: its int8 values, dx (split: over four lanes, and four lanes of sums; biased: over
   * qk / 4 lanes, and as many integer starts), the sums */
  int64_t per_tok = nb * (qk + (pl->split ? 32 : pl->biased ? 2 * qk : 4) + 2 * nsub), tile = STACK_BYTES / per_tok;
  if (tile > MAX_TILE) tile = MAX_TILE;
  if (tile > m->T) tile = m->T;
  tile = tile / U * U;
  if (tile < U) tile = U;
  pl->U = U, pl->tile = tile, pl->nb = nb, pl->nsub = nsub;
  pl->ntiles = (m->T + tile - 1) / tile;
  /* Streams: each reduce of each of a work item's rows, dotted in one loop over the records. With at most 8 tokens
   * per group and 32 vector registers, two streams' accumulators (two rows, or a fused MLP's gate and up) fit, and
   * token by token (chunk 1) each token's record loads serve both: L1 loads, not the multiply-adds, bound the
   * 8-token tile. THREADS=1 bench_matmul gemm 8, GFLOP per CPU second, one row / two rows alternating (loaded host):
   * q8_0 151936x896 209-213 / 256-268, q5_0 9728x896 255-314 / 330-339, q6_k 896x4864 146-160 / 268-294; the
   * K formats with mins lose (q4_k 230-277 / 232, q5_k 258-262 / 205-232, q2_k, q3_k alike): one stream, as
   * before. The nibble formats (split records) on 64-byte vectors take two rows at 16-token groups too, a fused
   * MLP's gate and up included (four streams): Zen 5, 2 threads, loaded host, one row / two rows alternating, kiln
   * bench -p 512 on the 0.5B shape: all-Q4_0 411-481 / 604-695 tok/s (ffn_down's 256-token kernel 171-189 / 99-110 ms
   * over 24 layers), the Q4_K_M mix (mostly Q5_0) 449-486 / 600-704; a 16-sequence batched decode 370-390 / 408-457
   * tok/s aggregate; Q8_0 and the K formats gain nothing or lose (all-Q4_K/Q6_K 431-464 / 369-418), and AVX2 too
   * (q5_0 mix 337-359 / 321-360). KILN_QMM_ROWS overrides the rows. */
  bool two = U <= 8 && t->vector_bytes >= 64 && (pl->split || m->fmt == KN_Q8_0 || m->fmt == KN_Q6_K);
  bool split2 = t->vector_bytes >= 64 && pl->split;
  int R = kn_getenv_int("KILN_QMM_ROWS", (two && m->nred == 1) || split2 ? 2 : 1);
  if (R < 1 || R * m->nred > KN_QMM_MAX_STREAMS) R = 1;
  while (R > 1 && m->N % R) R--;
  pl->rows = R;
  pl->chunk = two || R > 1 ? 1 : U;
}

LLVMModuleRef kn_qmm_module(LLVMContextRef ctx, const kn_kernel *k, const kn_qmm *m, const kn_target *t, const char *entry,
                            char *err, size_t errlen) {
  kn_lprog *lp = kn_lprog_new(k);
  if (!lp) return snprintf(err, errlen, "out of memory"), NULL;
  kn_emit E, *e = &E;
  kn_emit_init(e, ctx, lp, t, entry, err, errlen);
  kn_qmm_plan_t pl;
  kn_qmm_plan(m, t, &pl);
  int64_t qk = kn_dtype_get(m->fmt)->block_elems, nb = pl.nb, nsub = pl.nsub, TT = pl.tile, T = m->T;
  int U = pl.U;
  int V = t->vector_bytes / 4 >= 4 ? t->vector_bytes / 4 : 4;
  if (V > 16) V = 16;
  while (qk % V) V /= 2;
  /* a record: U tokens' PB blocks (two 32-element blocks fill a 64-byte vector; split: a vector's 16-byte lanes) */
  int PB = pl.pb, ND = pl.split ? 4 * PB : pl.biased ? PB * (int)qk / 4 : PB; /* ND: a token's dx floats per record */
  int64_t NR = nb / PB;
  int nx = (int)(qk / V), lanes = kn_quant_dot_lanes(e, m->fmt, PB);
  LLVMBuilderRef b = e->b;
  LLVMTypeRef params[4] = {e->ptr, e->ptr, e->i64, e->i64};
  e->fn = LLVMAddFunction(e->mod, entry, LLVMFunctionType(e->vd, params, 4, 0));
  e->entry = LLVMAppendBasicBlockInContext(ctx, e->fn, "entry");
  LLVMPositionBuilderAtEnd(b, e->entry);
  LLVMValueRef bufs[KN_MAXBUFS];
  for (int i = 0; i < k->nbufs; i++) {
    LLVMValueRef ix = ci(e, i);
    bufs[i] = LLVMBuildLoad2(b, e->ptr, LLVMBuildGEP2(b, e->ptr, LLVMGetParam(e->fn, 0), &ix, 1, ""), "");
  }
  LLVMValueRef vars[KN_MAXVARS];
  for (int i = 0; i < k->nvars; i++) {
    LLVMValueRef ix = ci(e, i);
    vars[i] = LLVMBuildLoad2(b, e->i64, LLVMBuildGEP2(b, e->i64, LLVMGetParam(e->fn, 1), &ix, 1, ""), "");
  }
  kn_qmm_epi ep = {.e = e, .k = k, .bufs = bufs, .vars = vars, .m = m};
  LLVMTypeRef vacc = kn_e_vec(e->f32, lanes), vu = LLVMVectorType(e->f32, (unsigned)U), vx = kn_e_vec(e->f32, V);
  LLVMValueRef XQ = LLVMBuildAlloca(b, LLVMArrayType(e->i8, (unsigned)(TT * nb * qk)), "xq");
  LLVMSetAlignment(XQ, 64);
  LLVMValueRef DX = LLVMBuildAlloca(b, LLVMArrayType(e->f32, (unsigned)(TT * NR * ND)), "dx");
  LLVMSetAlignment(DX, 64);
  /* one-sub-block formats: dx * sum(xq) per token (f32); others: the sub-block sums (i16), [U][nsub] per record */
  LLVMValueRef XS = LLVMBuildAlloca(b, LLVMArrayType(e->i16, (unsigned)(TT * nb * (nsub > 1 ? nsub : 2))), "xs");
  LLVMSetAlignment(XS, 16);
  /* biased records: each token's integer starts; split records: its sums of four times the offset (i32) or times
   * dx (f32, the formats with a min); laid out as its dx */
  LLVMValueRef XI = pl.biased || pl.split ? LLVMBuildAlloca(b, LLVMArrayType(e->i32, (unsigned)(TT * NR * ND)), "xi") : NULL;
  if (XI) LLVMSetAlignment(XI, 64);
  LLVMValueRef cur = LLVMBuildAlloca(b, e->i64, "tile");
  /* streams: each reduce of each of the item's R rows, dotted in one loop over the records (a record's tokens
   * loaded once for all of them) */
  int R = pl.rows, NS = m->nred * R;
  LLVMValueRef accp[KN_QMM_MAX_STREAMS][16], accvp[KN_QMM_MAX_STREAMS];
  for (int sI = 0; sI < NS; sI++) {
    accvp[sI] = LLVMBuildAlloca(b, vu, "accv");
    for (int u = 0; u < U; u++) accp[sI][u] = LLVMBuildAlloca(b, vacc, "acc");
  }
  LLVMBuildStore(b, ci(e, -1), cur);
  /* element offset of x's token 0 (may move with a variable) and the weight's first block */
  LLVMValueRef xoff = kn_qmm_sint(&ep, m->x->st.v[0].offset);
  int64_t sxt = m->x->st.v[0].strides[0];
  LLVMValueRef X = bufs[m->x->buf];

  loop item = loop_begin(e, LLVMGetParam(e->fn, 2), LLVMGetParam(e->fn, 3), "item");
  LLVMValueRef tt = LLVMBuildSDiv(b, item.i, ci(e, m->N / R), "tt");
  LLVMValueRef row = LLVMBuildMul(b, LLVMBuildSRem(b, item.i, ci(e, m->N / R), ""), ci(e, R), "row");
  LLVMValueRef t0 = LLVMBuildMul(b, tt, ci(e, TT), "t0");
  { /* a new token tile: quantize it */
    LLVMBasicBlockRef quant = LLVMAppendBasicBlockInContext(ctx, e->fn, "quant"), go = LLVMAppendBasicBlockInContext(ctx, e->fn, "go");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntNE, LLVMBuildLoad2(b, e->i64, cur, ""), tt, ""), quant, go);
    LLVMPositionBuilderAtEnd(b, quant);
    LLVMBuildStore(b, tt, cur);
    loop lu = loop_begin(e, ci(e, 0), ci(e, TT), "qtok");
    LLVMValueRef tk = LLVMBuildAdd(b, t0, lu.i, "");
    LLVMValueRef valid = LLVMBuildICmp(b, LLVMIntSLT, tk, ci(e, T), "");
    LLVMValueRef tc = LLVMBuildSelect(b, valid, tk, ci(e, T - 1), "");
    LLVMValueRef xrow = LLVMBuildAdd(b, xoff, LLVMBuildMul(b, tc, ci(e, sxt), ""), "");
    LLVMValueRef uu = LLVMBuildURem(b, lu.i, ci(e, U), ""), g0 = LLVMBuildMul(b, LLVMBuildUDiv(b, lu.i, ci(e, U), ""), ci(e, NR), "");
    loop lb = loop_begin(e, ci(e, 0), ci(e, nb), "qblk");
    LLVMValueRef xs[256];
    for (int j = 0; j < nx; j++) {
      LLVMValueRef ix = LLVMBuildAdd(b, xrow, LLVMBuildAdd(b, LLVMBuildMul(b, lb.i, ci(e, qk), ""), ci(e, j * V), ""), "");
      xs[j] = LLVMBuildLoad2(b, vx, LLVMBuildGEP2(b, e->f32, X, &ix, 1, ""), "");
      LLVMSetAlignment(xs[j], 4);
    }
    LLVMValueRef xq, dx, sums;
    kn_quant_x_block(e, m->fmt, xs, nx, V, &xq, &dx, &sums);
    xq = LLVMBuildSelect(b, valid, xq, LLVMConstNull(LLVMTypeOf(xq)), "");
    dx = LLVMBuildSelect(b, valid, dx, LLVMConstReal(e->f32, 0), "");
    sums = LLVMBuildSelect(b, valid, sums, LLVMConstNull(LLVMTypeOf(sums)), "");
    LLVMValueRef rec = LLVMBuildAdd(b, g0, LLVMBuildUDiv(b, lb.i, ci(e, PB), ""), ""), kb = LLVMBuildURem(b, lb.i, ci(e, PB), "");
    LLVMValueRef o = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, rec, ci(e, U), ""), uu, ""), ci(e, PB * qk), ""),
                                  LLVMBuildMul(b, kb, ci(e, qk), ""), "");
    LLVMValueRef slot = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, rec, ci(e, PB), ""), kb, ""), ci(e, U), ""), uu, "");
    if (pl.split) { /* elements 0-15 with the record's other blocks' 0-15, then 16-31 likewise; dx over 4 lanes */
      LLVMValueRef lo = LLVMBuildShuffleVector(b, xq, LLVMGetPoison(LLVMTypeOf(xq)), half_idx(e, 0), "");
      LLVMValueRef hi = LLVMBuildShuffleVector(b, xq, LLVMGetPoison(LLVMTypeOf(xq)), half_idx(e, 16), "");
      LLVMValueRef tok = LLVMBuildAdd(b, LLVMBuildMul(b, rec, ci(e, U), ""), uu, "");
      o = LLVMBuildAdd(b, LLVMBuildMul(b, tok, ci(e, PB * qk), ""), LLVMBuildMul(b, kb, ci(e, 16), ""), "");
      LLVMSetAlignment(LLVMBuildStore(b, lo, LLVMBuildGEP2(b, e->i8, XQ, &o, 1, "")), 16);
      o = LLVMBuildAdd(b, o, ci(e, 16 * PB), "");
      LLVMSetAlignment(LLVMBuildStore(b, hi, LLVMBuildGEP2(b, e->i8, XQ, &o, 1, "")), 16);
      o = LLVMBuildAdd(b, LLVMBuildMul(b, tok, ci(e, ND), ""), LLVMBuildMul(b, kb, ci(e, 4), ""), "");
      LLVMSetAlignment(LLVMBuildStore(b, kn_e_splat(e, dx, 4), LLVMBuildGEP2(b, e->f32, DX, &o, 1, "")), 16);
      LLVMSetAlignment(LLVMBuildStore(b, kn_quant_split_sums(e, m->fmt, xq, dx), LLVMBuildGEP2(b, e->i32, XI, &o, 1, "")), 16);
    } else if (pl.biased) { /* dx over the block's qk / 4 lanes, -128 times the sums of four beside it */
      LLVMSetAlignment(LLVMBuildStore(b, xq, LLVMBuildGEP2(b, e->i8, XQ, &o, 1, "")), 16);
      LLVMValueRef tok = LLVMBuildAdd(b, LLVMBuildMul(b, rec, ci(e, U), ""), uu, "");
      LLVMValueRef d = LLVMBuildAdd(b, LLVMBuildMul(b, tok, ci(e, ND), ""), LLVMBuildMul(b, kb, ci(e, qk / 4), ""), "");
      LLVMSetAlignment(LLVMBuildStore(b, kn_e_splat(e, dx, (int)qk / 4), LLVMBuildGEP2(b, e->f32, DX, &d, 1, "")), 16);
      LLVMValueRef s4 = kn_quant_x_sums4(e, xq);
      s4 = LLVMBuildMul(b, s4, kn_e_iconst(LLVMTypeOf(s4), -128), "");
      LLVMSetAlignment(LLVMBuildStore(b, s4, LLVMBuildGEP2(b, e->i32, XI, &d, 1, "")), 16);
    } else { /* in the GEMV's record order (kn_quant_x_order: Q2_K/Q3_K on AVX-512, Q3_K on AVX2) */
      LLVMSetAlignment(LLVMBuildStore(b, kn_quant_x_order(e, m->fmt, xq), LLVMBuildGEP2(b, e->i8, XQ, &o, 1, "")), 16);
      LLVMSetAlignment(LLVMBuildStore(b, dx, LLVMBuildGEP2(b, e->f32, DX, &slot, 1, "")), 4);
    }
    if (nsub == 1) {
      LLVMValueRef s0 = LLVMBuildExtractElement(b, sums, LLVMConstInt(e->i32, 0, 0), "");
      LLVMValueRef cv = LLVMBuildFMul(b, dx, LLVMBuildSIToFP(b, s0, e->f32, ""), "");
      LLVMSetAlignment(LLVMBuildStore(b, cv, LLVMBuildGEP2(b, e->f32, XS, &slot, 1, "")), 4);
    } else { /* a token's sub-block sums side by side */
      o = LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, rec, ci(e, U), ""), uu, ""), ci(e, nsub), "");
      LLVMSetAlignment(LLVMBuildStore(b, sums, LLVMBuildGEP2(b, e->i16, XS, &o, 1, "")), 2);
    }
    loop_end(e, &lb);
    loop_end(e, &lu);
    LLVMBuildBr(b, go);
    LLVMPositionBuilderAtEnd(b, go);
  }
  int pf_rows = kn_getenv_int("KILN_PREFETCH", 1) > 0 ? 2 * R : 0;
  /* groups of U tokens of this tile (the last tile may hold fewer tokens) */
  LLVMValueRef left = LLVMBuildSub(b, ci(e, T), t0, "");
  left = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, left, ci(e, TT), ""), left, ci(e, TT), "");
  LLVMValueRef ngroups = LLVMBuildSDiv(b, LLVMBuildAdd(b, left, ci(e, U - 1), ""), ci(e, U), "");
  loop lg = loop_begin(e, ci(e, 0), ngroups, "group");
  LLVMValueRef gbase = LLVMBuildMul(b, lg.i, ci(e, NR), "");
  LLVMValueRef wrow[KN_QMM_MAX_STREAMS];
  int64_t swn[KN_QMM_MAX_STREAMS];
  for (int sI = 0; sI < NS; sI++) { /* stream sI: reduce sI % nred of row row + sI / nred */
    const kn_view *wv = &m->ws[sI % m->nred]->st.v[0];
    swn[sI] = wv->strides[1] / qk;
    LLVMValueRef rw = LLVMBuildAdd(b, row, ci(e, sI / m->nred), "");
    wrow[sI] = LLVMBuildAdd(b, ci(e, wv->offset.c / qk), LLVMBuildMul(b, rw, ci(e, swn[sI]), ""), "");
    for (int u = 0; u < U; u++) LLVMBuildStore(b, LLVMConstNull(vacc), accp[sI][u]);
    LLVMBuildStore(b, LLVMConstNull(vu), accvp[sI]);
  }
  /* one loop over the records for all streams when they interleave (chunk < U), else one loop per stream: a
   * stream's accumulators then fill the registers alone (16 tokens on AVX-512, 8 with AVX2's 16 registers) */
  int GS = pl.chunk < U ? NS : 1;
  for (int g0 = 0; g0 < NS && !e->failed; g0 += GS) {
    loop lb = loop_begin(e, ci(e, 0), ci(e, NR), "blk");
    LLVMValueRef rec = LLVMBuildAdd(b, gbase, lb.i, "");
    LLVMValueRef o = LLVMBuildMul(b, rec, ci(e, U * PB * qk), ""), xqp = LLVMBuildGEP2(b, e->i8, XQ, &o, 1, "");
    o = LLVMBuildMul(b, rec, ci(e, U * ND), "");
    LLVMValueRef dxp = LLVMBuildGEP2(b, e->f32, DX, &o, 1, "");
    o = LLVMBuildMul(b, rec, ci(e, U * PB), "");
    LLVMValueRef sp = LLVMBuildGEP2(b, e->f32, XS, &o, 1, "");
    if (nsub > 1) o = LLVMBuildMul(b, rec, ci(e, U * nsub), ""), sp = LLVMBuildGEP2(b, e->i16, XS, &o, 1, "");
    LLVMValueRef xip = NULL;
    if (XI) o = LLVMBuildMul(b, rec, ci(e, U * ND), ""), xip = LLVMBuildGEP2(b, e->i32, XI, &o, 1, "");
    LLVMValueRef acc[KN_QMM_MAX_STREAMS][16], accv[KN_QMM_MAX_STREAMS];
    for (int sI = g0; sI < g0 + GS; sI++) {
      for (int u = 0; u < U; u++) acc[sI][u] = LLVMBuildLoad2(b, vacc, accp[sI][u], "");
      accv[sI] = LLVMBuildLoad2(b, vu, accvp[sI], "");
      if (pf_rows > 0) { /* the same record pf_rows rows ahead: a later work item's, so its weights come from DRAM
                          * while this row is dotted (a row is a stream of about 1 KB the hardware prefetcher does
                          * not get ahead of, as in the GEMV: KILN_PREFETCH) */
        const kn_dtype_info *di = kn_dtype_get(m->fmt);
        LLVMValueRef pb = LLVMBuildAdd(b, wrow[sI], LLVMBuildAdd(b, LLVMBuildMul(b, lb.i, ci(e, PB), ""), ci(e, pf_rows * swn[sI]), ""), "");
        LLVMValueRef po = LLVMBuildMul(b, pb, ci(e, (int64_t)di->block_bytes), "");
        kn_prefetch_span(e->mod, b, LLVMBuildGEP2(b, e->i8, bufs[m->ws[sI % m->nred]->buf], &po, 1, ""), PB * (int64_t)di->block_bytes);
      }
    }
    /* token by token (chunk 1), each token's record loads shared by the streams, or each stream's tokens in turn */
    int CH = pl.chunk;
    for (int u0 = 0; u0 < U; u0 += CH)
      for (int sI = g0; sI < g0 + GS && !e->failed; sI++)
        kn_quant_dot_tile(e, m->fmt, bufs[m->ws[sI % m->nred]->buf], LLVMBuildAdd(b, wrow[sI], LLVMBuildMul(b, lb.i, ci(e, PB), ""), ""), PB,
                          U, u0, u0 + CH < U ? u0 + CH : U, xqp, dxp, sp, xip, acc[sI], &accv[sI]);
    for (int sI = g0; sI < g0 + GS && !e->failed; sI++) {
      for (int u = 0; u < U; u++) LLVMBuildStore(b, acc[sI][u], accp[sI][u]);
      LLVMBuildStore(b, accv[sI], accvp[sI]);
    }
    loop_end(e, &lb);
  }
  /* the epilogue of each row for the group's tokens at once (lane u: token u), stored for each real one */
  for (int i = 0; i < R && !e->failed; i++) {
    for (int r = 0; r < m->nred; r++) {
      LLVMValueRef acc[16];
      for (int u = 0; u < U; u++) acc[u] = LLVMBuildLoad2(b, vacc, accp[i * m->nred + r][u], "");
      ep.red[r] = kn_quant_dot_hsums(e, acc, U, LLVMBuildLoad2(b, vu, accvp[i * m->nred + r], ""));
    }
    ep.n = LLVMBuildAdd(b, row, ci(e, i), "");
    kn_qmm_store_tokens(&ep, LLVMBuildAdd(b, t0, LLVMBuildMul(b, lg.i, ci(e, U), ""), ""), U);
  }
  loop_end(e, &lg);
  loop_end(e, &item);
  LLVMBuildRetVoid(b);
  bool failed = e->failed;
  kn_emit_done(e);
  kn_lprog_free(lp);
  if (failed) {
    LLVMDisposeModule(e->mod);
    return NULL;
  }
  return e->mod;
}
