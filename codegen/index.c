/* Index arithmetic for lowering: affine sums of loop counters, view chains (offset + sum idx*stride per view,
 * unravelled into the view below with div/mod that value bounds often remove), masks as load gates, and the
 * choice between one vector access, a broadcast scalar, or one access per lane. */
#include <stdio.h>
#include <string.h>

#include "index.h"
#include "../device/base/env.h"

int kn_lfail(kn_lctx *c, const char *fmt, ...) {
  if (c->err && c->errlen && !c->err[0]) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  c->p->failed = true;
  return -1;
}

int kn_lanes(const kn_lctx *c) {
  if (c->s->vec < 0) return 1;
  const kn_piece *v = &c->s->p[c->s->vec];
  if (v->kind == KN_AX_RVEC && !c->in_reduce) return 1;
  return (int)v->size;
}

static void aff_term(kn_aff *a, int op, int64_t k) {
  if (k == 0) return;
  for (int i = 0; i < a->n; i++)
    if (a->op[i] == op) {
      a->k[i] += k;
      return;
    }
  if (a->n < KN_MAXTERMS) a->op[a->n] = op, a->k[a->n++] = k;
}

static int64_t floordiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

void kn_axis_aff(kn_lctx *c, int axis, int lane, kn_aff *a) {
  memset(a, 0, sizeof *a);
  bool red = axis >= c->k->ndim - c->k->nreduce;
  if (red && !c->in_reduce) return;
  for (int i = 0; i < c->s->n; i++) {
    const kn_piece *p = &c->s->p[i];
    if (p->axis != axis) continue;
    switch (p->kind) {
    case KN_AX_GLOBAL: case KN_AX_LOOP: case KN_AX_REDUCE: case KN_AX_GROUP: aff_term(a, c->piece_op[i], p->mult); break;
    case KN_AX_UPCAST: case KN_AX_UNROLL: a->c += c->inst[i] * p->mult; break;
    case KN_AX_VEC: case KN_AX_RVEC: a->c += lane * p->mult; break;
    }
  }
}

static bool aff_bounds(const kn_lctx *c, const kn_aff *a, int64_t *lo, int64_t *hi) {
  *lo = *hi = a->c;
  for (int i = 0; i < a->n; i++) {
    const kn_lop *o = &c->p->ops[a->op[i]];
    if (o->lo > o->hi) return false;
    int64_t x = o->lo * a->k[i], y = o->hi * a->k[i];
    *lo += x < y ? x : y, *hi += x < y ? y : x;
  }
  return true;
}

/* Sum of terms in a fixed order (by op id) so equal index expressions of different instances share ops. */
int kn_aff_op(kn_lctx *c, const kn_aff *a) {
  int ord[KN_MAXTERMS];
  for (int i = 0; i < a->n; i++) ord[i] = i;
  for (int i = 1; i < a->n; i++)
    for (int j = i; j > 0 && a->op[ord[j - 1]] > a->op[ord[j]]; j--) {
      int t = ord[j];
      ord[j] = ord[j - 1], ord[j - 1] = t;
    }
  int acc = -1;
  for (int i = 0; i < a->n; i++) {
    int t = kn_l_alu(c->p, KN_KOP_MUL, KN_I64, kn_l_cast(c->p, a->op[ord[i]], KN_I64), kn_l_const_i(c->p, KN_I64, a->k[ord[i]]));
    acc = acc < 0 ? t : kn_l_alu(c->p, KN_KOP_ADD, KN_I64, acc, t);
  }
  int k = kn_l_const_i(c->p, KN_I64, a->c);
  return acc < 0 ? k : kn_l_alu(c->p, KN_KOP_ADD, KN_I64, acc, k);
}

static void aff_single(kn_aff *a, int op) {
  memset(a, 0, sizeof *a);
  a->n = 1, a->op[0] = op, a->k[0] = 1;
}

/* floor(L / P) mod S (no mod for the outermost dimension), exact for the integer values L takes. */
static void unravel(kn_lctx *c, const kn_aff *L, int64_t P, int64_t S, bool outermost, kn_aff *q) {
  kn_aff small;
  memset(q, 0, sizeof *q);
  memset(&small, 0, sizeof small);
  int64_t cq = floordiv(L->c, P);
  small.c = L->c - cq * P;
  for (int i = 0; i < L->n; i++) {
    if (L->k[i] % P == 0) aff_term(q, L->op[i], L->k[i] / P);
    else aff_term(&small, L->op[i], L->k[i]);
  }
  q->c = cq;
  int64_t lo, hi;
  if (small.n) {
    if (aff_bounds(c, &small, &lo, &hi) && floordiv(lo, P) == floordiv(hi, P)) q->c += floordiv(lo, P);
    else aff_single(q, kn_l_alu(c->p, KN_KOP_DIV, KN_I64, kn_aff_op(c, L), kn_l_const_i(c->p, KN_I64, P)));
  }
  if (outermost) return;
  kn_aff m;
  memset(&m, 0, sizeof m);
  for (int i = 0; i < q->n; i++)
    if (q->k[i] % S) aff_term(&m, q->op[i], q->k[i]);
  m.c = q->c - floordiv(q->c, S) * S;
  /* m == q modulo S; the emitted MOD is C's remainder, so it may only take m when m cannot be negative (q itself
   * is a valid index wherever the value matters) */
  bool kb = aff_bounds(c, &m, &lo, &hi);
  if (kb && lo >= 0 && hi < S) *q = m;
  else aff_single(q, kn_l_alu(c->p, KN_KOP_MOD, KN_I64, kn_aff_op(c, kb && lo >= 0 ? &m : q), kn_l_const_i(c->p, KN_I64, S)));
}

static int and_gate(kn_lctx *c, int g, int cond) { return g < 0 ? cond : kn_l_alu(c->p, KN_KOP_AND, KN_BOOL, g, cond); }

/* Gate for lo <= x < hi; false in *never when no value of x is inside. */
static int mask_gate(kn_lctx *c, const kn_aff *x, int64_t mlo, int64_t mhi, int gate, bool *never) {
  int64_t lo, hi;
  bool kb = aff_bounds(c, x, &lo, &hi);
  if (kb && (hi < mlo || lo >= mhi)) return *never = true, gate;
  int xo = -1;
  if (!kb || lo < mlo) {
    xo = kn_aff_op(c, x);
    gate = and_gate(c, gate, kn_l_alu(c->p, KN_KOP_CMPLT, KN_BOOL, kn_l_const_i(c->p, KN_I64, mlo - 1), xo));
  }
  if (!kb || hi >= mhi) {
    if (xo < 0) xo = kn_aff_op(c, x);
    gate = and_gate(c, gate, kn_l_alu(c->p, KN_KOP_CMPLT, KN_BOOL, xo, kn_l_const_i(c->p, KN_I64, mhi)));
  }
  return gate;
}

/* Element index (as an affine sum) and gate (-1: always valid) of a view chain at the current instance and lane. */
static int chain_index(kn_lctx *c, const kn_st *st, int lane, kn_aff *out, int *gate, bool *never) {
  *gate = -1, *never = false;
  if (st->nviews < 1 || st->nviews > KN_MAXVIEWS) return kn_lfail(c, "view chain with %d views", st->nviews);
  const kn_view *top = &st->v[st->nviews - 1];
  if (top->ndim != c->k->ndim)
    return kn_lfail(c, "view chain has %d axes but the kernel has %d", top->ndim, c->k->ndim);
  kn_aff dim[KN_MAXDIM], L;
  for (int i = 0; i < top->ndim; i++) kn_axis_aff(c, i, lane, &dim[i]);
  for (int vi = st->nviews - 1; vi >= 0; vi--) {
    const kn_view *v = &st->v[vi];
    if (v->ndim < 1 || v->ndim > KN_MAXDIM) return kn_lfail(c, "view %d has %d axes", vi, v->ndim);
    if (vi < st->nviews - 1) {
      int64_t P = 1;
      for (int j = v->ndim - 1; j >= 0; j--) {
        if (v->shape[j] < 1) return kn_lfail(c, "view %d has an empty axis %d", vi, j);
        unravel(c, &L, P, v->shape[j], j == 0, &dim[j]);
        P *= v->shape[j];
      }
    }
    if (v->masked)
      for (int j = 0; j < v->ndim && !*never; j++) *gate = mask_gate(c, &dim[j], v->mask_lo[j], v->mask_hi[j], *gate, never);
    memset(&L, 0, sizeof L);
    L.c = v->offset.c;
    if (v->offset.v >= 0 && v->offset.k) {
      if (v->offset.v >= c->k->nvars) return kn_lfail(c, "view offset uses variable %d of %d", v->offset.v, c->k->nvars);
      aff_term(&L, c->vars[v->offset.v], v->offset.k);
    }
    for (int j = 0; j < v->ndim; j++) {
      for (int t = 0; t < dim[j].n; t++) aff_term(&L, dim[j].op[t], dim[j].k[t] * v->strides[j]);
      L.c += dim[j].c * v->strides[j];
    }
  }
  *out = L;
  return c->p->failed ? -1 : 0;
}

static int zero(kn_lctx *c, kn_dtype dt) { return kn_dtype_is_float(dt) ? kn_l_const_f(c->p, dt, 0.0) : kn_l_const_i(c->p, dt, 0); }

static int lane_of(kn_lctx *c, int v, int lane) {
  if (v < 0 || c->p->ops[v].vec == 1) return v;
  return kn_l_add(c->p, KN_L_GEP, c->p->ops[v].dtype, 1, 1, &v, 0, lane);
}

/* A block-format load addresses (block, element in block). When every term of the index is a whole number of
 * blocks the element is a constant, and the format's template folds to straight-line code for that position. */
static int qload(kn_lctx *c, int buf, const kn_aff *a, int gate, int lanes) {
  kn_dtype sd = c->k->bufs[buf].dtype;
  int64_t QK = kn_dtype_get(sd)->block_elems;
  bool whole = true;
  for (int i = 0; i < a->n; i++) whole = whole && a->k[i] % QK == 0;
  int blk, j0;
  if (whole) {
    kn_aff b;
    memset(&b, 0, sizeof b);
    for (int i = 0; i < a->n; i++) aff_term(&b, a->op[i], a->k[i] / QK);
    b.c = floordiv(a->c, QK);
    blk = kn_aff_op(c, &b);
    j0 = kn_l_const_i(c->p, KN_I64, a->c - b.c * QK);
  } else {
    int idx = kn_aff_op(c, a);
    blk = kn_l_alu(c->p, KN_KOP_DIV, KN_I64, idx, kn_l_const_i(c->p, KN_I64, QK));
    j0 = kn_l_alu(c->p, KN_KOP_MOD, KN_I64, idx, kn_l_const_i(c->p, KN_I64, QK));
  }
  int src[4] = {c->params[buf], blk, j0, gate};
  return kn_l_add(c->p, KN_L_QLOAD, KN_F32, lanes, gate < 0 ? 3 : 4, src, 0, sd);
}

int kn_lower_qblock(kn_lctx *c, const kn_kop *x) {
  kn_aff a;
  int gate;
  bool never;
  if (chain_index(c, &x->st, 0, &a, &gate, &never) || gate >= 0 || never) return -1;
  int64_t QK = kn_dtype_get(c->k->bufs[x->buf].dtype)->block_elems;
  kn_aff b;
  memset(&b, 0, sizeof b);
  for (int i = 0; i < a.n; i++) {
    if (a.k[i] % QK) return -1;
    aff_term(&b, a.op[i], a.k[i] / QK);
  }
  if (a.c % QK) return -1;
  b.c = a.c / QK;
  return kn_aff_op(c, &b);
}

/* A GEMV's work item reads its rows' weights once, each row a stream of well under a few KB (a 896-wide Q8_0 row is
 * 952 bytes): too short for the hardware prefetcher to get ahead of the loads, so with the weights in DRAM every row
 * started with demand misses. Work items take consecutive rows, so the blocks one work item ahead of the ones about
 * to be dotted are the next item's: fetching them now overlaps the memory traffic with this item's arithmetic. The
 * weight's blocks per work item (*per) is that distance (0: no prefetch, e.g. fewer blocks than items), times the
 * items that make it at least KILN_PREFETCH_BYTES (default 8 KB): a work item of one row (kn_quant_dot_rows, about
 * 1 KB) is done in less than a DRAM latency. Measured with bench_stream (the 0.5B models' GEMV shapes streamed from
 * DRAM, 200 alternating passes, loaded host), whole pass AVX-512 / AVX2: 4 KB ahead 18.2 / 27.1 GB/s, 8 KB 18.4 /
 * 28.2, 16 KB 17.2 / 27.9; the 145 MB Q8_0 logits alone on AVX-512 27.5 at 4 KB, 38.5 at 8 KB. */
int64_t kn_lower_prefetch_ahead(const kn_lctx *c, int buf, int64_t *per) {
  const kn_dtype_info *di = kn_dtype_get(c->k->bufs[buf].dtype);
  int64_t bytes = kn_getenv_int("KILN_PREFETCH_BYTES", 8192);
  int64_t ahead = *per = c->k->bufs[buf].nelems / di->block_elems / kn_lower_items(c);
  if (ahead < 1) return 0;
  if (bytes > 0) ahead *= (bytes + ahead * (int64_t)di->block_bytes - 1) / (ahead * (int64_t)di->block_bytes);
  return ahead;
}

/* A streamed float load (opt.c's stream_bufs) prefetches its address a work item ahead, one prefetch per 64 bytes of
 * a row: the unrolled step whose offset along the reduce is a multiple of 64 bytes issues it (where a step spans
 * less, its first instance does, every step). */
static int stream_prefetch(kn_lctx *c, const kn_kop *x, const int *src) {
  const kn_view *top = &x->st.v[0];
  kn_dtype dt = c->k->bufs[x->buf].dtype;
  int64_t per, ahead = kn_lower_prefetch_ahead(c, x->buf, &per), at = 0;
  for (int i = 0; i < c->s->n; i++)
    if (c->s->p[i].kind == KN_AX_UNROLL && c->s->p[i].axis < top->ndim)
      at += c->inst[i] * c->s->p[i].mult * top->strides[c->s->p[i].axis];
  if (ahead < 1 || at * kn_dtype_get(dt)->itemsize % 64) return 0;
  int ps[2] = {src[0], kn_l_alu(c->p, KN_KOP_ADD, KN_I64, src[1], kn_l_const_i(c->p, KN_I64, ahead))};
  int v = kn_l_add(c->p, KN_L_PREFETCH, KN_I64, 1, 2, ps, 0, dt);
  if (v < 0) return kn_lfail(c, "out of memory");
  c->p->ops[v].size = 1; /* the line at that address */
  return 0;
}

/* One access of `lanes` contiguous elements (lanes == 1: scalar) at the given lane's index. */
static int load_at(kn_lctx *c, const kn_kop *x, int gather, int lane, int lanes) {
  kn_aff a;
  int gate;
  bool never;
  if (chain_index(c, &x->st, lane, &a, &gate, &never)) return -1;
  kn_dtype sd = c->k->bufs[x->buf].dtype;
  if (never) return zero(c, kn_dtype_scalar(sd));
  if (gather >= 0) aff_term(&a, kn_l_cast(c->p, lane_of(c, gather, lane), KN_I64), x->gather_stride);
  bool quant = kn_dtype_is_quant(sd);
  if (quant && lanes > 1)
    for (int i = 0; i < a.n; i++)
      if (a.k[i] % lanes) return -2;
  if (quant && lanes > 1 && a.c % lanes) return -2;
  if (quant) return qload(c, x->buf, &a, gate, lanes);
  int src[3] = {c->params[x->buf], kn_aff_op(c, &a), gate};
  if (c->in_reduce && gate < 0 && gather < 0 && (c->s->stream_bufs >> x->buf & 1) && stream_prefetch(c, x, src))
    return -1;
  return kn_l_add(c->p, KN_L_LOAD, kn_dtype_scalar(sd), lanes, gate < 0 ? 2 : 3, src, 0, sd);
}

static int per_lane_load(kn_lctx *c, const kn_kop *x, int gather, int lanes) {
  int s[KN_MAXLANES];
  for (int l = 0; l < lanes; l++)
    if ((s[l] = load_at(c, x, gather, l, 1)) < 0) return -1;
  return kn_l_add(c->p, KN_L_VECTORIZE, c->p->ops[s[0]].dtype, lanes, lanes, s, 0, 0);
}

typedef enum { ACC_SCALAR, ACC_VECTOR, ACC_LANES } access_mode;

/* How the lanes of the VEC piece walk through a chain: not at all, contiguously, or otherwise. */
static access_mode lane_mode(const kn_lctx *c, const kn_st *st) {
  const kn_piece *vp = &c->s->p[c->s->vec];
  const kn_view *top = &st->v[st->nviews - 1];
  int a = vp->axis;
  bool mask_a = top->masked && (top->mask_lo[a] > 0 || top->mask_hi[a] < top->shape[a]);
  if (mask_a) return ACC_LANES;
  if (top->strides[a] == 0) return ACC_SCALAR;
  if (st->nviews == 1 && top->strides[a] * vp->mult == 1) return ACC_VECTOR;
  return ACC_LANES;
}

int kn_lower_load(kn_lctx *c, const kn_kop *x, int gather) {
  if (x->buf < 0 || x->buf >= c->k->nbufs) return kn_lfail(c, "LOAD of buffer %d of %d", x->buf, c->k->nbufs);
  if (x->nsrc == 1 && gather < 0) return -1;
  int lanes = kn_lanes(c), v;
  access_mode m = lanes == 1 ? ACC_SCALAR : lane_mode(c, &x->st);
  if (gather >= 0 && c->p->ops[gather].vec > 1 && m != ACC_LANES) m = ACC_LANES;
  bool quant = kn_dtype_is_quant(c->k->bufs[x->buf].dtype);
  if (m == ACC_VECTOR && quant && lanes > 16) m = ACC_LANES;
  if (m == ACC_SCALAR) v = load_at(c, x, gather, 0, 1);
  else if (m == ACC_VECTOR) {
    v = load_at(c, x, gather, 0, lanes);
    if (v == -2) v = per_lane_load(c, x, gather, lanes);
  } else
    v = per_lane_load(c, x, gather, lanes);
  if (v < 0) return kn_lfail(c, "lowering LOAD of buf%d failed", x->buf);
  return kn_l_cast(c->p, v, x->dtype);
}

static int store_at(kn_lctx *c, int v, int row, int lane, int lanes) {
  kn_aff a;
  int gate;
  bool never;
  if (chain_index(c, &c->k->out_st, lane, &a, &gate, &never)) return -1;
  if (never) return 0;
  if (row >= 0) aff_term(&a, kn_l_cast(c->p, lane_of(c, row, lane), KN_I64), c->k->out_row_stride);
  for (int i = 0; i < c->s->n; i++) { /* symbolic output axes: elements past the variable are not stored */
    int sym = c->k->shape_sym[c->s->p[i].axis];
    if (!sym || c->s->p[i].kind != KN_AX_GLOBAL) continue;
    int in = kn_l_alu(c->p, KN_KOP_CMPLT, KN_BOOL, c->piece_op[i], c->vars[sym - 1]);
    gate = gate < 0 ? in : kn_l_alu(c->p, KN_KOP_AND, KN_BOOL, gate, in);
  }
  int src[4] = {c->params[0], kn_aff_op(c, &a), lanes == 1 ? lane_of(c, v, lane) : v, gate};
  return kn_l_add(c->p, KN_L_STORE, c->k->bufs[0].dtype, lanes, gate < 0 ? 3 : 4, src, 0, 0) < 0 ? -1 : 0;
}

int kn_lower_store(kn_lctx *c, int v, int row) {
  int lanes = kn_lanes(c);
  if (lanes == 1) return store_at(c, v, row, 0, 1);
  access_mode m = lane_mode(c, &c->k->out_st);
  if (m == ACC_VECTOR && (row < 0 || c->p->ops[row].vec == 1)) return store_at(c, v, row, 0, lanes);
  for (int l = 0; l < lanes; l++)
    if (store_at(c, v, row, l, 1)) return -1;
  return 0;
}

int kn_lower_params(kn_lctx *c) {
  kn_lprog *p = c->p;
  for (int i = 0; i < c->k->nbufs; i++)
    c->params[i] = kn_l_add(p, KN_L_PARAM, c->k->bufs[i].dtype, 1, 0, NULL, 0, i);
  for (int i = 0; i < c->k->nvars; i++) {
    c->vars[i] = kn_l_add(p, KN_L_VAR, KN_I64, 1, 0, NULL, 0, i);
    if (c->vars[i] >= 0 && c->k->vars[i].min <= c->k->vars[i].max)
      p->ops[c->vars[i]].lo = c->k->vars[i].min, p->ops[c->vars[i]].hi = c->k->vars[i].max;
  }
  return p->failed ? kn_lfail(c, "out of memory") : 0;
}

int kn_lower_prologue(kn_lctx *c) { return kn_lower_params(c) || kn_lower_work_items(c) ? -1 : 0; }

int64_t kn_lower_items(const kn_lctx *c) {
  int64_t G = 1;
  for (int i = 0; i < c->s->n; i++)
    if (c->s->p[i].kind == KN_AX_GLOBAL) G *= c->s->p[i].size;
  return G;
}

int kn_lower_work_items(kn_lctx *c) {
  kn_lprog *p = c->p;
  int64_t G = kn_lower_items(c);
  int gid = kn_l_add(p, KN_L_SPECIAL, KN_I64, 1, 0, NULL, 0, KN_SP_GLOBAL0);
  if (gid < 0) return kn_lfail(c, "out of memory");
  p->ops[gid].size = G, p->ops[gid].lo = 0, p->ops[gid].hi = G - 1;
  p->global[0] = G;
  int64_t after = G;
  for (int i = 0; i < c->s->n; i++) {
    if (c->s->p[i].kind != KN_AX_GLOBAL) continue;
    after /= c->s->p[i].size;
    int q = kn_l_alu(p, KN_KOP_DIV, KN_I64, gid, kn_l_const_i(p, KN_I64, after));
    c->piece_op[i] = kn_l_alu(p, KN_KOP_MOD, KN_I64, q, kn_l_const_i(p, KN_I64, c->s->p[i].size));
  }
  for (int i = 0; i < c->s->n; i++) /* GPU: a reduce axis split over the work items of a workgroup */
    if (c->s->p[i].kind == KN_AX_GROUP) {
      int lid = c->piece_op[i] = kn_l_add(p, KN_L_SPECIAL, KN_I64, 1, 0, NULL, 0, KN_SP_LOCAL0);
      if (lid < 0) return kn_lfail(c, "out of memory");
      p->ops[lid].size = p->local[0] = c->s->p[i].size, p->ops[lid].lo = 0, p->ops[lid].hi = c->s->p[i].size - 1;
    }
  return p->failed ? kn_lfail(c, "out of memory") : 0;
}

static bool in_set(kn_axkind k, bool reduce) { return reduce ? k == KN_AX_UNROLL : k == KN_AX_UPCAST; }

int kn_inst_count(const kn_lctx *c, bool reduce) {
  int n = 1;
  for (int i = 0; i < c->s->n; i++)
    if (in_set(c->s->p[i].kind, reduce)) n *= (int)c->s->p[i].size;
  return n;
}

static void decode(kn_lctx *c, int x, bool reduce) {
  for (int i = c->s->n - 1; i >= 0; i--)
    if (in_set(c->s->p[i].kind, reduce)) {
      c->inst[i] = x % c->s->p[i].size;
      x /= (int)c->s->p[i].size;
    }
}

void kn_set_inst(kn_lctx *c, int out_inst, int red_inst) {
  decode(c, out_inst, false);
  decode(c, red_inst, true);
}
