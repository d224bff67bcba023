/* Lowering: kernel AST + axis schedule -> loop IR. Axis indices are affine sums of loop counters; a view chain
 * becomes offset + sum(idx * stride) per view, unravelled into the view below with div/mod (simplified with
 * value bounds), masks become gates on loads (gated-off lanes read 0). REDUCE nodes become accumulators that
 * share one reduce loop nest; the epilogue runs after it and stores through out_st. */
#include <stdlib.h>
#include <string.h>

#include "../device/base/env.h"
#include "index.h"

typedef struct {
  const kn_kop *p;
  int idx;
} nodeix;

typedef struct {
  kn_lctx c;
  nodeix *ix;     /* kernel nodes sorted by address: node -> dense index for the memo */
  int *memo;      /* lowered op per node for the current instance, -1 unknown */
  const kn_kop *reds[KN_MAXREDS];
  int nreds;
  int *redval;    /* [out instance][reduce] -> op of the reduced value */
  int cur_inst;
  int qx_scratch[KN_MAXREDS]; /* per reduce: the SCRATCH of its activations quantized once per call, -1 none */
  int qx_groups;              /* records (QDOT groups) per iteration of the reduce loop */
} lower;

static int cmp_nodeix(const void *a, const void *b) {
  const kn_kop *x = ((const nodeix *)a)->p, *y = ((const nodeix *)b)->p;
  return x < y ? -1 : x > y;
}

static int node_index(lower *L, const kn_kop *x) {
  nodeix key = {x, 0};
  nodeix *f = bsearch(&key, L->ix, (size_t)L->c.k->nnodes, sizeof *L->ix, cmp_nodeix);
  return f ? f->idx : -1;
}

static int lower_node(lower *L, const kn_kop *x);

static int lane_iota(kn_lctx *c, int lanes, int64_t step) {
  int s[KN_MAXLANES];
  for (int l = 0; l < lanes; l++) s[l] = kn_l_const_i(c->p, KN_I64, l * step);
  return kn_l_add(c->p, KN_L_VECTORIZE, KN_I64, lanes, lanes, s, 0, 0);
}

/* IDX: the axis index, a vector when the axis carries the vector lanes. */
static int lower_idx(lower *L, const kn_kop *x) {
  kn_lctx *c = &L->c;
  if (x->axis < 0 || x->axis >= c->k->ndim) return kn_lfail(c, "IDX axis %d outside the kernel's %d axes", x->axis, c->k->ndim);
  kn_aff a;
  kn_axis_aff(c, x->axis, 0, &a);
  int base = kn_aff_op(c, &a);
  int lanes = kn_lanes(c);
  if (lanes > 1 && c->s->p[c->s->vec].axis == x->axis)
    base = kn_l_alu(c->p, KN_KOP_ADD, KN_I64, base, lane_iota(c, lanes, c->s->p[c->s->vec].mult));
  return kn_l_cast(c->p, base, x->dtype);
}

static int unary(kn_lctx *c, kn_kop_type op, kn_dtype dt, int a) {
  return kn_l_add(c->p, KN_L_ALU, dt, c->p->ops[a].vec, 1, &a, op, 0);
}

static int lower_uncached(lower *L, const kn_kop *x) {
  kn_lctx *c = &L->c;
  int s[3] = {-1, -1, -1};
  switch (x->op) {
  case KN_KOP_LOAD: return kn_lower_load(c, x, x->nsrc == 1 ? lower_node(L, x->src[0]) : -1);
  case KN_KOP_CONST:
    return kn_dtype_is_float(x->dtype) ? kn_l_const_f(c->p, x->dtype, x->val.f) : kn_l_const_i(c->p, x->dtype, x->val.i);
  case KN_KOP_VAR:
    if (x->var < 0 || x->var >= c->k->nvars) return kn_lfail(c, "VAR %d but the kernel has %d variables", x->var, c->k->nvars);
    return kn_l_cast(c->p, c->vars[x->var], x->dtype);
  case KN_KOP_IDX: return lower_idx(L, x);
  case KN_KOP_REDUCE:
    for (int r = 0; r < L->nreds; r++)
      if (L->reds[r] == x && L->redval) return L->redval[L->cur_inst * L->nreds + r];
    return kn_lfail(c, "REDUCE inside a reduce's source (nested reductions are not supported)");
  default: break;
  }
  if (x->nsrc < 1 || x->nsrc > 3) return kn_lfail(c, "%s node with %d sources", kn_kop_name(x->op), x->nsrc);
  for (int i = 0; i < x->nsrc; i++)
    if ((s[i] = lower_node(L, x->src[i])) < 0) return -1;
  switch (x->op) {
  case KN_KOP_CAST: return kn_l_cast(c->p, s[0], x->dtype);
  case KN_KOP_BITCAST:
    if (kn_dtype_get(x->dtype)->itemsize != kn_dtype_get(x->src[0]->dtype)->itemsize || x->dtype == KN_BOOL)
      return kn_lfail(c, "BITCAST %s -> %s changes the size", kn_dtype_name(x->src[0]->dtype), kn_dtype_name(x->dtype));
    return kn_l_add(c->p, KN_L_BITCAST, x->dtype, c->p->ops[s[0]].vec, 1, s, 0, 0);
  case KN_KOP_NEG: case KN_KOP_RECIP: case KN_KOP_SQRT: case KN_KOP_EXP2: case KN_KOP_LOG2: case KN_KOP_SIN:
  case KN_KOP_TRUNC: case KN_KOP_NOT:
    return unary(c, x->op, x->dtype, s[0]);
  case KN_KOP_WHERE: return kn_l_alu3(c->p, KN_KOP_WHERE, x->dtype, s[0], s[1], s[2]);
  default:
    if (x->nsrc != 2) return kn_lfail(c, "%s node with %d sources", kn_kop_name(x->op), x->nsrc);
    return kn_l_alu(c->p, x->op, x->dtype, s[0], s[1]);
  }
}

static int lower_node(lower *L, const kn_kop *x) {
  if (!x) return kn_lfail(&L->c, "missing node");
  int i = node_index(L, x);
  if (i < 0) return kn_lfail(&L->c, "node %p is not owned by the kernel", (const void *)x);
  if (L->memo[i] >= 0) return L->memo[i];
  return L->memo[i] = lower_uncached(L, x);
}

static void reset_memo(lower *L) { memset(L->memo, -1, (size_t)L->c.k->nnodes * sizeof *L->memo); }

static int collect_reds(lower *L, const kn_kop *x, int depth) {
  if (!x || depth > 4096) return 0;
  if (x->op == KN_KOP_REDUCE) {
    for (int r = 0; r < L->nreds; r++)
      if (L->reds[r] == x) return 0;
    if (L->nreds == KN_MAXREDS) return kn_lfail(&L->c, "more than %d REDUCE nodes in one kernel", KN_MAXREDS);
    L->reds[L->nreds++] = x;
    return 0;
  }
  for (int i = 0; i < x->nsrc && i < 3; i++)
    if (collect_reds(L, x->src[i], depth + 1)) return -1;
  return 0;
}

/* Identity element of a reduction, as a constant of dtype. */
static int identity(kn_lctx *c, kn_kop_type rop, kn_dtype dt) {
  const kn_dtype_info *d = kn_dtype_get(dt);
  if (rop == KN_KOP_ADD) return kn_dtype_is_float(dt) ? kn_l_const_f(c->p, dt, 0.0) : kn_l_const_i(c->p, dt, 0);
  if (rop == KN_KOP_MUL) return kn_dtype_is_float(dt) ? kn_l_const_f(c->p, dt, 1.0) : kn_l_const_i(c->p, dt, 1);
  if (rop != KN_KOP_MAX) return kn_lfail(c, "reduce op %s is not ADD, MUL or MAX", kn_kop_name(rop));
  if (kn_dtype_is_float(dt)) return kn_l_const_f(c->p, dt, -__builtin_inf());
  if (!d->is_signed || dt == KN_BOOL) return kn_l_const_i(c->p, dt, 0);
  return kn_l_const_i(c->p, dt, d->itemsize == 8 ? INT64_MIN : -(INT64_C(1) << (8 * d->itemsize - 1)));
}

static bool has_quant_or_reduce(const kn_kernel *k, const kn_kop *x, int depth) {
  if (!x || depth > 2048) return true;
  if (x->op == KN_KOP_REDUCE) return true;
  if (x->op == KN_KOP_LOAD && x->buf >= 0 && x->buf < k->nbufs && kn_dtype_is_quant(k->bufs[x->buf].dtype)) return true;
  for (int i = 0; i < x->nsrc && i < 3; i++)
    if (has_quant_or_reduce(k, x->src[i], depth + 1)) return true;
  return false;
}

/* The integer-dot form of the fused dequant-matmul: reduce `ri` is an ADD of x * W over the last axis, W a
 * block-format load walking that axis contiguously, vectorized along it with the unroll covering exactly one block
 * (several such reduces share the loop: SiLU(x W_gate) * (x W_up)). Returns the weight load (and the activation
 * expression in *xn), or NULL. */
static const kn_kop *qdot_weight(lower *L, int ri, const kn_kop **xn) {
  const kn_lctx *c = &L->c;
  const kn_kernel *k = c->k;
  if (!c->s->qdot || k->nreduce != 1 || c->s->vec < 0) return NULL;
  const kn_kop *red = L->reds[ri], *m = red->src[0];
  if (red->rop != KN_KOP_ADD || red->dtype != KN_F32 || !m || m->op != KN_KOP_MUL || m->nsrc != 2 || m->dtype != KN_F32) return NULL;
  int r = k->ndim - 1;
  const kn_piece *vp = &c->s->p[c->s->vec];
  if (vp->kind != KN_AX_RVEC || vp->axis != r || vp->size < 4) return NULL;
  int nunroll = 0;
  for (int i = 0; i < c->s->n; i++)
    if (c->s->p[i].kind == KN_AX_UNROLL) {
      if (c->s->p[i].axis != r || c->s->p[i].mult != vp->size || nunroll) return NULL;
      nunroll = (int)c->s->p[i].size;
    }
  for (int side = 0; side < 2; side++) {
    const kn_kop *w = m->src[side], *x = m->src[1 - side];
    if (w->op != KN_KOP_LOAD || w->nsrc != 0 || w->buf < 0 || w->buf >= k->nbufs) continue;
    kn_dtype fmt = k->bufs[w->buf].dtype;
    const kn_view *top = &w->st.v[w->st.nviews - 1];
    if (!kn_quant_dot_supported(fmt) || w->st.nviews != 1 || top->masked || top->strides[r] != 1) continue;
    int64_t qk = kn_dtype_get(fmt)->block_elems;
    if ((nunroll * vp->size) % qk || has_quant_or_reduce(k, x, 0)) continue;
    *xn = x;
    return w;
  }
  return NULL;
}

/* Vectors per QDOT of weight w (*per: per block) at `lanes` lanes: nb consecutive blocks of the row in one QDOT
 * (the template reads them from the first block's index on) where the schedule asks for it. */
static int qdot_group(const kn_lctx *c, const kn_kop *w, int lanes, int *per) {
  int nunroll = kn_inst_count(c, true);
  *per = (int)(kn_dtype_get(c->k->bufs[w->buf].dtype)->block_elems / lanes);
  int nb = c->s->qdot_blocks > 1 && nunroll % (*per * c->s->qdot_blocks) == 0 ? c->s->qdot_blocks : 1;
  return *per * nb;
}

/* The reduce loop's counter (-1 while it is not open or there is none: the unroll covers the whole axis). */
static int reduce_counter(const kn_lctx *c) {
  for (int i = 0; i < c->s->n; i++)
    if (c->s->p[i].kind == KN_AX_REDUCE) return c->piece_op[i];
  return -1;
}

/* index of record g of the current reduce iteration: counter * groups + g */
static int record_index(lower *L, int g) {
  kn_lctx *c = &L->c;
  int it = reduce_counter(c), gi = kn_l_const_i(c->p, KN_I64, g);
  if (it < 0) return gi;
  return kn_l_alu(c->p, KN_KOP_ADD, KN_I64, kn_l_alu(c->p, KN_KOP_MUL, KN_I64, it, kn_l_const_i(c->p, KN_I64, L->qx_groups)), gi);
}

static int prefetch(lower *L, const kn_kop *w, int param, int blk, int elems) {
  kn_lctx *c = &L->c;
  const kn_dtype_info *di = kn_dtype_get(c->k->bufs[w->buf].dtype);
  int64_t per, ahead = c->s->qdot_prefetch ? kn_lower_prefetch_ahead(c, w->buf, &per) : 0;
  if (ahead < 1) return 0;
  int src[2] = {param, kn_l_alu(c->p, KN_KOP_ADD, KN_I64, blk, kn_l_const_i(c->p, KN_I64, ahead))};
  int v = kn_l_add(c->p, KN_L_PREFETCH, KN_I64, 1, 2, src, 0, c->k->bufs[w->buf].dtype);
  if (v < 0) return kn_lfail(c, "out of memory");
  c->p->ops[v].size = (int64_t)elems / di->block_elems * di->block_bytes;
  return 0;
}

/* The items of a call before the first one its work items prefetch ahead were fetched by nothing: the pool splits a
 * launch into a few ranges of items per thread, so a small GEMV (a 0.5B model's k and v: 128 rows) was mostly such
 * demand-missed starts. The call's prologue prefetches them, the weight's blocks from the call's first item's on
 * (taking the items' blocks as consecutive, as prefetch does: where they are not, only a hint goes astray). */
static int lead_prefetch(lower *L) {
  kn_lctx *c = &L->c;
  uint32_t bufs = c->s->stream_bufs; /* the streamed float weights (opt.c), and the integer-dot GEMV's */
  for (int r = 0; r < L->nreds && c->s->qdot_prefetch; r++) {
    const kn_kop *xn, *w = qdot_weight(L, r, &xn);
    if (w && w->buf < 32) bufs |= 1u << w->buf;
  }
  int first = -1;
  for (int b = 0; b < c->k->nbufs && b < 32; b++) {
    int64_t per, ahead = bufs >> b & 1 ? kn_lower_prefetch_ahead(c, b, &per) : 0;
    if (ahead < 1) continue;
    if (first < 0) {
      int64_t items = kn_lower_items(c);
      if ((first = kn_l_add(c->p, KN_L_SPECIAL, KN_I64, 1, 0, NULL, 0, KN_SP_FIRST0)) < 0) return kn_lfail(c, "out of memory");
      c->p->ops[first].size = items, c->p->ops[first].lo = 0, c->p->ops[first].hi = items - 1;
    }
    int src[2] = {c->params[b], kn_l_alu(c->p, KN_KOP_MUL, KN_I64, first, kn_l_const_i(c->p, KN_I64, per))};
    int v = kn_l_add(c->p, KN_L_PREFETCH, KN_I64, 1, 2, src, 0, c->k->bufs[b].dtype);
    if (v < 0) return kn_lfail(c, "out of memory");
    c->p->ops[v].size = ahead * kn_dtype_get(c->k->bufs[b].dtype)->block_bytes;
  }
  return c->p->failed ? kn_lfail(c, "out of memory") : 0;
}

/* x * W over the unrolled instances, which cover whole blocks of W: the activations of each block's instances, one
 * QDOT per block group, into v[] (the count returned); with the activations quantized once per call (ri's SCRATCH),
 * a QDOTR of the group's record instead. */
static int lower_qdot(lower *L, int u, int ri, const kn_kop *w, const kn_kop *xn, int lanes, int *v) {
  kn_lctx *c = &L->c;
  int nunroll = kn_inst_count(c, true), per, g = qdot_group(c, w, lanes, &per);
  int src[2 + 256], nv = 0;
  /* the schedule's block groups were sized for records; quantized in place (records too large), one block each */
  if (L->qx_scratch[ri] < 0 && c->s->qdot_hoist) g = per;
  if (g > 256) return kn_lfail(c, "integer-dot block of %d vectors", g);
  for (int b0 = 0; b0 < nunroll; b0 += g) {
    int n = 2 + g;
    if (L->qx_scratch[ri] >= 0) {
      src[2] = L->qx_scratch[ri], src[3] = record_index(L, b0 / g), src[4] = kn_l_const_i(c->p, KN_I64, (int64_t)g * lanes);
      n = 5;
    } else
      for (int i = 0; i < g; i++) {
        kn_set_inst(c, u, b0 + i);
        reset_memo(L);
        if ((src[2 + i] = lower_node(L, xn)) < 0) return -1;
      }
    kn_set_inst(c, u, b0);
    src[0] = c->params[w->buf];
    if ((src[1] = kn_lower_qblock(c, w)) < 0) return kn_lfail(c, "integer-dot load of buf%d does not start a block", w->buf);
    if (n == 5 && prefetch(L, w, src[0], src[1], g * lanes) < 0) return -1;
    if (nv == 256) return kn_lfail(c, "more than 256 integer-dot groups per step");
    v[nv++] = kn_l_add(c->p, n == 5 ? KN_L_QDOTR : KN_L_QDOT, KN_F32, lanes, n, src, 0, c->k->bufs[w->buf].dtype);
  }
  return nv;
}

/* Does x take the same value for every output (no load walks an output axis, no output index)? */
static bool same_for_outputs(const kn_kernel *k, const kn_kop *x, int depth) {
  if (!x || depth > 2048) return false;
  int nout = k->ndim - k->nreduce;
  if (x->op == KN_KOP_IDX) return x->axis >= nout;
  if (x->op == KN_KOP_LOAD) {
    if (x->nsrc) return false; /* a gather: the row index is an expression */
    const kn_view *top = &x->st.v[x->st.nviews - 1];
    for (int a = 0; a < nout && a < top->ndim; a++)
      if (k->shape[a] > 1 && (top->strides[a] || (top->masked && (top->mask_lo[a] > 0 || top->mask_hi[a] < top->shape[a]))))
        return false;
  }
  for (int i = 0; i < x->nsrc && i < 3; i++)
    if (!same_for_outputs(k, x->src[i], depth + 1)) return false;
  return true;
}

#define QX_MAX_BYTES (256 * 1024) /* the records of one call's activations: within any thread's stack */

/* Activations that are the same for every output (a GEMV's x, e.g. rmsnorm(x) * w) are quantized once per call of
 * the kernel, before its work-item loop, into one SCRATCH of records per distinct activation expression and weight
 * format (QX): every register block of rows then loads them (QDOTR) instead of quantizing them again. */
static int lower_qx(lower *L) {
  kn_lctx *c = &L->c;
  const kn_kernel *k = c->k;
  for (int r = 0; r < KN_MAXREDS; r++) L->qx_scratch[r] = -1;
  if (!c->s->qdot_hoist || !L->nreds || c->s->vec < 0) return 0;
  const kn_kop *xn[KN_MAXREDS], *qw[KN_MAXREDS];
  for (int r = 0; r < L->nreds; r++)
    if (!(qw[r] = qdot_weight(L, r, &xn[r])) || !same_for_outputs(k, xn[r], 0)) return 0;
  int lanes = (int)c->s->p[c->s->vec].size, nunroll = kn_inst_count(c, true), R = 1, ri = -1;
  for (int i = 0; i < c->s->n; i++)
    if (c->s->p[i].kind == KN_AX_REDUCE) R = (int)c->s->p[i].size, ri = i;
  int per, g = qdot_group(c, qw[0], lanes, &per);
  for (int r = 1; r < L->nreds; r++)
    if (qdot_group(c, qw[r], lanes, &per) != g) return 0; /* one record index for all */
  L->qx_groups = nunroll / g;
  int saved[KN_MAXPIECES], zero = kn_l_const_i(c->p, KN_I64, 0);
  memcpy(saved, c->piece_op, sizeof saved);
  for (int i = 0; i < c->s->n; i++) c->piece_op[i] = zero; /* no output index is read (same_for_outputs) */
  c->in_reduce = true;
  int range = R > 1 ? kn_l_range(c->p, R) : -1;
  if (ri >= 0) c->piece_op[ri] = range;
  for (int r = 0; r < L->nreds; r++) {
    kn_dtype fmt = k->bufs[qw[r]->buf].dtype;
    int same = -1;
    for (int o = 0; o < r && same < 0; o++)
      if (xn[o] == xn[r] && k->bufs[qw[o]->buf].dtype == fmt) same = o;
    if (same >= 0) {
      L->qx_scratch[r] = L->qx_scratch[same];
      continue;
    }
    int qk = g * lanes, bytes = kn_quant_x_record_bytes(qk, qk / (int)kn_dtype_get(fmt)->block_elems) * R * L->qx_groups;
    if (bytes > QX_MAX_BYTES) { /* too long to keep on the stack: this reduce quantizes per register block */
      L->qx_scratch[r] = -1;
      continue;
    }
    /* the SCRATCH op is created before the loop (its alloca is the entry block's anyway) */
    int sc = L->qx_scratch[r] = kn_l_add(c->p, KN_L_SCRATCH, KN_U8, 1, 0, NULL, 0, 0);
    if (sc < 0) return kn_lfail(c, "out of memory");
    c->p->ops[sc].size = bytes;
    int src[2 + 256];
    for (int b0 = 0; b0 < nunroll; b0 += g) {
      for (int i = 0; i < g; i++) {
        kn_set_inst(c, 0, b0 + i);
        reset_memo(L);
        if ((src[2 + i] = lower_node(L, xn[r])) < 0) return -1;
      }
      src[0] = sc, src[1] = record_index(L, b0 / g);
      kn_l_add(c->p, KN_L_QX, KN_F32, lanes, 2 + g, src, 0, fmt);
    }
  }
  if (range >= 0) kn_l_add(c->p, KN_L_ENDRANGE, KN_I64, 1, 1, &range, 0, 0);
  c->in_reduce = false;
  memcpy(c->piece_op, saved, sizeof saved);
  reset_memo(L);
  return c->p->failed ? kn_lfail(c, "loop IR construction failed (out of memory or bad operand)") : 0;
}

/* The reduce loop nest: accumulators per output instance and reduce node, unrolled reduce instances inside. */
static int lower_reduce(lower *L, int ninst) {
  kn_lctx *c = &L->c;
  int nr = L->nreds, lanes, S = c->s->red_split > 1 ? c->s->red_split : 1; /* accumulators per reduce instance */
  int *acc = malloc((size_t)(ninst * nr * S) * sizeof *acc);
  L->redval = malloc((size_t)(ninst * nr) * sizeof *L->redval);
  if (!acc || !L->redval) return free(acc), kn_lfail(c, "out of memory");
  c->in_reduce = true;
  lanes = kn_lanes(c);
  for (int u = 0; u < ninst; u++)
    for (int r = 0; r < nr; r++)
      for (int j = 0; j < S; j++) {
        int id = identity(c, L->reds[r]->rop, L->reds[r]->dtype);
        acc[(u * nr + r) * S + j] = kn_l_add(c->p, KN_L_ACC, L->reds[r]->dtype, lanes, 1, &id, L->reds[r]->rop, 0);
      }
  int ranges[KN_MAXPIECES], nranges = 0;
  for (int i = 0; i < c->s->n; i++)
    if (c->s->p[i].kind == KN_AX_REDUCE) {
      int sym = c->k->shape_sym[c->s->p[i].axis]; /* symbolic extent: the loop runs to the variable */
      c->piece_op[i] = ranges[nranges++] =
          sym ? kn_l_range_to(c->p, c->s->p[i].size, c->vars[sym - 1]) : kn_l_range(c->p, c->s->p[i].size);
    }
  int nunroll = kn_inst_count(c, true);
  const kn_kop *xn[KN_MAXREDS] = {0}, *qw[KN_MAXREDS] = {0};
  bool q = nr > 0; /* every reduce in the integer-dot form, or none */
  for (int r = 0; r < nr && q; r++) q = (qw[r] = qdot_weight(L, r, &xn[r])) != NULL;
  /* An accumulator that would add the very values another one adds (the same op, shared by CSE, at every step) is
   * that one: a swizzled reduce sums each RoPE pair partner's row twice, once as either member's sum, and the copy
   * would double the accumulators a work item holds (32 AVX-512 registers for 16 rows). Known when one value per
   * accumulator covers the loop: the integer-dot form (one sum of QDOTs), or a reduce without unrolled steps. */
  int *same = malloc((size_t)(ninst * nr) * sizeof *same), *val = malloc((size_t)(ninst * nr) * sizeof *val);
  if (!same || !val) return free(acc), free(same), free(val), kn_lfail(c, "out of memory");
  for (int i = 0; i < ninst * nr; i++) same[i] = -1;
  bool share = q || nunroll == 1;
  for (int w = 0; w < (q ? 1 : nunroll); w++)
    for (int u = 0; u < ninst; u++) {
      if (!q) kn_set_inst(c, u, w), reset_memo(L);
      for (int r = 0; r < nr; r++) {
        /* several QDOTs per step (one-block groups) are added to the accumulator one after the other, as the tiled
         * template (quant_mm.c) adds its records: each add then fuses with its QDOT's last multiply the same way */
        int qv[256], nq = 1, i = u * nr + r;
        if (q) nq = lower_qdot(L, u, r, qw[r], xn[r], lanes, qv);
        else qv[0] = lower_node(L, L->reds[r]->src[0]);
        int v = nq > 0 ? qv[0] : -1;
        if (v < 0) return free(acc), free(same), free(val), -1;
        val[i] = v;
        for (int j = 0; share && j < i && same[i] < 0; j++)
          if (same[j] < 0 && val[j] == v && L->reds[j % nr]->rop == L->reds[r]->rop &&
              L->reds[j % nr]->dtype == L->reds[r]->dtype)
            same[i] = j;
        if (same[i] >= 0) continue;
        int a = acc[i * S + w % S], nv = a;
        for (int j = 0; j < nq && nv >= 0; j++) nv = kn_l_alu(c->p, L->reds[r]->rop, L->reds[r]->dtype, nv, qv[j]);
        if (nv < 0) return free(acc), free(same), free(val), -1;
        kn_l_add(c->p, KN_L_ACCSET, L->reds[r]->dtype, lanes, 2, (int[]){a, nv}, 0, 0);
      }
    }
  for (int i = nranges - 1; i >= 0; i--) kn_l_add(c->p, KN_L_ENDRANGE, KN_I64, 1, 1, &ranges[i], 0, 0);
  c->in_reduce = false;
  for (int u = 0; u < ninst; u++)
    for (int r = 0; r < nr; r++) {
      int i = u * nr + r, a = acc[i * S];
      if (same[i] >= 0) {
        L->redval[i] = L->redval[same[i]];
        continue;
      }
      for (int j = 1; j < S; j++) a = kn_l_alu(c->p, L->reds[r]->rop, L->reds[r]->dtype, a, acc[i * S + j]);
      if (lanes > 1 && c->s->p[c->s->vec].kind == KN_AX_RVEC)
        a = kn_l_add(c->p, KN_L_HREDUCE, L->reds[r]->dtype, 1, 1, &a, L->reds[r]->rop, 0);
      if (kn_sched_group(c->s) > 1) a = kn_l_group_reduce(c->p, a, L->reds[r]->rop, kn_sched_group(c->s));
      L->redval[i] = a;
    }
  free(acc), free(same), free(val);
  return c->p->failed ? -1 : 0;
}

static int lower_expr(lower *L) {
  kn_lctx *c = &L->c;
  const kn_kernel *k = c->k;
  if (kn_dtype_is_quant(k->bufs[0].dtype)) return kn_lfail(c, "cannot store into block format %s", kn_dtype_name(k->bufs[0].dtype));
  if (!k->root) return kn_lfail(c, "kernel has no root expression");
  if (k->root->dtype != k->bufs[0].dtype)
    return kn_lfail(c, "root dtype %s differs from output buffer dtype %s", kn_dtype_name(k->root->dtype),
                    kn_dtype_name(k->bufs[0].dtype));
  if (kn_lower_params(c) || collect_reds(L, k->root, 0) || lower_qx(L) || lead_prefetch(L) || kn_lower_work_items(c))
    return -1;
  int loops[KN_MAXPIECES], nloops = 0;
  for (int i = 0; i < c->s->n; i++)
    if (c->s->p[i].kind == KN_AX_LOOP) c->piece_op[i] = loops[nloops++] = kn_l_range(c->p, c->s->p[i].size);
  int ninst = kn_inst_count(c, false);
  if (L->nreds && k->nreduce == 0) return kn_lfail(c, "REDUCE node in a kernel without reduce axes");
  if (L->nreds && lower_reduce(L, ninst)) return -1;
  for (int u = 0; u < ninst; u++) {
    kn_set_inst(c, u, 0);
    L->cur_inst = u;
    reset_memo(L);
    int v = lower_node(L, k->root), row = k->out_row ? lower_node(L, k->out_row) : -1;
    if (v < 0 || (k->out_row && row < 0) || kn_lower_store(c, v, row)) return -1;
  }
  for (int i = nloops - 1; i >= 0; i--) kn_l_add(c->p, KN_L_ENDRANGE, KN_I64, 1, 1, &loops[i], 0, 0);
  return c->p->failed ? kn_lfail(c, "loop IR construction failed (out of memory or bad operand)") : 0;
}

kn_lprog *kn_lower(const kn_kernel *k, const kn_sched *s, char *err, size_t errlen) {
  if (k->kind != KN_KERNEL_EXPR) {
    snprintf(err, errlen, "kernel kind %d has no loop IR lowering", (int)k->kind);
    return NULL;
  }
  lower L;
  memset(&L, 0, sizeof L);
  L.c.k = k, L.c.s = s, L.c.err = err, L.c.errlen = errlen;
  if (!(L.c.p = kn_lprog_new(k))) return snprintf(err, errlen, "out of memory"), NULL;
  L.ix = malloc((size_t)(k->nnodes ? k->nnodes : 1) * sizeof *L.ix);
  L.memo = malloc((size_t)(k->nnodes ? k->nnodes : 1) * sizeof *L.memo);
  int rc = -1;
  if (!L.ix || !L.memo) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  for (int i = 0; i < k->nnodes; i++) L.ix[i] = (nodeix){k->nodes[i], i};
  qsort(L.ix, (size_t)k->nnodes, sizeof *L.ix, cmp_nodeix);
  rc = lower_expr(&L);
done:
  free(L.ix), free(L.memo), free(L.redval);
  if (rc) {
    if (!err[0]) snprintf(err, errlen, "lowering failed");
    kn_lprog_free(L.c.p);
    return NULL;
  }
  kn_sched_name(k, s, L.c.p->name, sizeof L.c.p->name);
  return L.c.p;
}
