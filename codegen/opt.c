/* Optimization of the axis schedule: which axis becomes vector lanes (an output axis, or the reduce axis for
 * GEMV-like kernels), which output axes are register-blocked (upcast), which small reductions are unrolled, and
 * which axes are split over work items so every core gets work. NOOPT=1 keeps the plain schedule. */
#include <stdio.h>
#include <string.h>

#include "../device/base/env.h"
#include "loopir.h"

typedef struct {
  const kn_kop *loads[64];
  bool in_red[64];
  int n;
  int nquant;
  const kn_kop *reds[16];
  int nreds;
} loadset;

static void collect_loads(const kn_kernel *k, const kn_kop *x, bool in_red, loadset *ls, int depth) {
  if (!x || depth > 2048) return;
  if (x->op == KN_KOP_LOAD && ls->n < 64) {
    for (int i = 0; i < ls->n; i++)
      if (ls->loads[i] == x) return;
    ls->in_red[ls->n] = in_red;
    ls->loads[ls->n++] = x;
    if (x->buf >= 0 && x->buf < k->nbufs && kn_dtype_is_quant(k->bufs[x->buf].dtype)) ls->nquant++;
  }
  if (x->op == KN_KOP_REDUCE) {
    bool seen = false;
    for (int i = 0; i < ls->nreds; i++) seen |= ls->reds[i] == x;
    if (!seen && ls->nreds < 16) ls->reds[ls->nreds++] = x;
  }
  for (int i = 0; i < x->nsrc && i < 3; i++) collect_loads(k, x->src[i], in_red || x->op == KN_KOP_REDUCE, ls, depth + 1);
}

/* How well an access walks along axis a: contiguous is good, broadcast is free, anything else is a gather. */
static int access_score(const kn_st *st, int a, int64_t lanes, bool quant) {
  const kn_view *top = &st->v[st->nviews - 1];
  if (a >= top->ndim) return 0;
  if (top->masked && (top->mask_lo[a] > 0 || top->mask_hi[a] < top->shape[a])) return -3;
  if (top->strides[a] == 0) return 0;
  if (st->nviews == 1 && top->strides[a] == 1) return quant ? 6 : 2;
  return quant ? -8 : -3;
}

static int axis_score(const kn_kernel *k, const loadset *ls, int a, int64_t lanes) {
  bool red = a >= k->ndim - k->nreduce;
  int score = 0;
  for (int i = 0; i < ls->n; i++) {
    const kn_kop *x = ls->loads[i];
    if (red && !ls->in_red[i]) continue;
    if (x->nsrc == 1) score -= 3; /* gathered rows: index varies per lane */
    score += access_score(&x->st, a, lanes, kn_dtype_is_quant(k->bufs[x->buf].dtype));
  }
  if (!red) score += access_score(&k->out_st, a, lanes, false) * 2;
  return score;
}

static int out_itemsize(const kn_kernel *k) {
  int s = kn_dtype_get(k->bufs[0].dtype)->itemsize;
  return s < 4 ? 4 : s;
}

static void add_piece(kn_sched *s, int axis, int64_t size, int64_t mult, kn_axkind kind) {
  if (s->n < KN_MAXPIECES) s->p[s->n++] = (kn_piece){axis, size, mult, kind};
}

static void plain(const kn_kernel *k, kn_sched *s) {
  memset(s, 0, sizeof *s);
  s->vec = -1;
  for (int i = 0; i < k->ndim; i++)
    add_piece(s, i, k->shape[i], 1, i < k->ndim - k->nreduce ? KN_AX_GLOBAL : KN_AX_REDUCE);
}

static bool is_quant_load(const kn_kernel *k, const kn_kop *x) {
  return x->buf >= 0 && x->buf < k->nbufs && kn_dtype_is_quant(k->bufs[x->buf].dtype);
}

/* Does some load inside the reduce ignore axis a (stride 0)? Then upcasting a shares that load's registers
 * (quant_only: a block-format load, whose decode is then shared too). */
static bool reused_along(const kn_kernel *k, const loadset *ls, int a, bool quant_only) {
  for (int i = 0; i < ls->n; i++) {
    const kn_view *top = &ls->loads[i]->st.v[ls->loads[i]->st.nviews - 1];
    if (quant_only && !is_quant_load(k, ls->loads[i])) continue;
    if (ls->in_red[i] && a < top->ndim && top->strides[a] == 0 && !top->masked) return true;
  }
  return false;
}

/* The bytes of the largest buffer that a load inside the reduce reads the same along axis a (stride 0). */
static int64_t reused_bytes(const kn_kernel *k, const loadset *ls, int a) {
  int64_t most = 0;
  for (int i = 0; i < ls->n; i++) {
    const kn_view *top = &ls->loads[i]->st.v[ls->loads[i]->st.nviews - 1];
    int b = ls->loads[i]->buf;
    if (!ls->in_red[i] || a >= top->ndim || top->strides[a] != 0 || top->masked || b < 0 || b >= k->nbufs) continue;
    int64_t n = kn_dtype_nbytes(k->bufs[b].dtype, k->bufs[b].nelems);
    if (n > most) most = n;
  }
  return most;
}

/* Do two block-format loads in the reduce read the same weight mirrored along axis a (strides s and -s, all others
 * alike)? A GEMV with RoPE fused reads row pairs so: output half 0 of a pair sums rows j and j + 32 of a head, half 1
 * rows j + 32 and j. */
static bool mirrored_along(const kn_kernel *k, const loadset *ls, int a) {
  for (int i = 0; i < ls->n; i++)
    for (int j = i + 1; j < ls->n; j++) {
      const kn_kop *x = ls->loads[i], *y = ls->loads[j];
      if (!ls->in_red[i] || !ls->in_red[j] || !is_quant_load(k, x) || x->buf != y->buf || x->st.nviews != 1 || y->st.nviews != 1)
        continue;
      const kn_view *vx = &x->st.v[0], *vy = &y->st.v[0];
      bool alike = vx->ndim == vy->ndim && a < vx->ndim && vx->strides[a] && vx->strides[a] == -vy->strides[a];
      for (int d = 0; alike && d < vx->ndim; d++) alike = d == a || vx->strides[d] == vy->strides[d];
      if (alike) return true;
    }
  return false;
}

/* The largest block of the block-format loads that walk axis a contiguously (0: none). */
static int64_t quant_block_along(const kn_kernel *k, const loadset *ls, int a) {
  int64_t qk = 0;
  for (int i = 0; i < ls->n; i++) {
    const kn_kop *x = ls->loads[i];
    const kn_view *top = &x->st.v[x->st.nviews - 1];
    if (!is_quant_load(k, x) || x->st.nviews != 1 || a >= top->ndim || top->strides[a] != 1) continue;
    if (kn_dtype_get(k->bufs[x->buf].dtype)->block_elems > qk) qk = kn_dtype_get(k->bufs[x->buf].dtype)->block_elems;
  }
  return qk;
}

/* Is there a block-format load walking axis a contiguously that the integer-dot template handles? */
static bool quant_dot_along(const kn_kernel *k, const loadset *ls, int a) {
  for (int i = 0; i < ls->n; i++) {
    const kn_kop *x = ls->loads[i];
    const kn_view *top = &x->st.v[x->st.nviews - 1];
    if (is_quant_load(k, x) && x->st.nviews == 1 && a < top->ndim && top->strides[a] == 1 &&
        kn_quant_dot_supported(k->bufs[x->buf].dtype))
      return true;
  }
  return false;
}

/* Blocks per QDOT for the block-format loads along a (the fewest any of them takes). */
static int quant_dot_blocks_along(const kn_kernel *k, const loadset *ls, int a, const kn_target *t, bool hoisted) {
  int nb = 4;
  for (int i = 0; i < ls->n; i++) {
    const kn_kop *x = ls->loads[i];
    const kn_view *top = &x->st.v[x->st.nviews - 1];
    if (is_quant_load(k, x) && x->st.nviews == 1 && a < top->ndim && top->strides[a] == 1) {
      int b = kn_quant_dot_blocks(t, k->bufs[x->buf].dtype, hoisted);
      if (b < nb) nb = b;
    }
  }
  return nb;
}

/* Rows per register block of the integer-dot GEMV for the block-format loads along a (the fewest any asks for) */
static int quant_dot_rows_along(const kn_kernel *k, const loadset *ls, int a, const kn_target *t, bool hoisted) {
  int nr = 64;
  for (int i = 0; i < ls->n; i++) {
    const kn_kop *x = ls->loads[i];
    const kn_view *top = &x->st.v[x->st.nviews - 1];
    if (is_quant_load(k, x) && x->st.nviews == 1 && a < top->ndim && top->strides[a] == 1) {
      int r = kn_quant_dot_rows(t, k->bufs[x->buf].dtype, hoisted);
      if (r < nr) nr = r;
    }
  }
  return nr < 64 ? nr : 8;
}

/* Are the reduce's float operands the same for every output (no load inside the reduce walks an output axis, no
 * gather)? Then the integer-dot template quantizes them once per call (lower.c checks the expression itself). */
static bool shared_activations(const kn_kernel *k, const loadset *ls) {
  int nout = k->ndim - k->nreduce;
  for (int i = 0; i < ls->n; i++) {
    const kn_kop *x = ls->loads[i];
    if (!ls->in_red[i] || is_quant_load(k, x)) continue;
    if (x->nsrc) return false;
    const kn_view *top = &x->st.v[x->st.nviews - 1];
    for (int a = 0; a < nout && a < top->ndim; a++)
      if (k->shape[a] > 1 && (top->strides[a] || top->masked)) return false;
  }
  return true;
}

int64_t kn_opt_quant_block(const kn_kernel *k, int axis) {
  loadset ls = {0};
  collect_loads(k, k->root, false, &ls, 0);
  int64_t qk = 0;
  for (int i = 0; i < ls.n; i++)
    if (ls.in_red[i] && is_quant_load(k, ls.loads[i])) {
      const kn_kop *x = ls.loads[i];
      const kn_view *top = &x->st.v[x->st.nviews - 1];
      if (x->st.nviews == 1 && axis < top->ndim && top->strides[axis] == 1 && kn_dtype_get(k->bufs[x->buf].dtype)->block_elems > qk)
        qk = kn_dtype_get(k->bufs[x->buf].dtype)->block_elems;
    }
  return qk;
}

typedef struct {
  int64_t vec, up, unroll; /* per axis: vector lanes, upcast factor, unroll factor (1 = none) */
} axplan;

static void build(const kn_kernel *k, const axplan *pl, int vaxis, kn_sched *s) {
  memset(s, 0, sizeof *s);
  s->vec = -1;
  int nout = k->ndim - k->nreduce;
  for (int i = 0; i < nout; i++) {
    int64_t inner = pl[i].vec * pl[i].up;
    if (k->shape[i] / inner > 1 || inner == 1) add_piece(s, i, k->shape[i] / inner, inner, KN_AX_GLOBAL);
  }
  for (int i = 0; i < nout; i++)
    if (pl[i].up > 1) add_piece(s, i, pl[i].up, pl[i].vec, KN_AX_UPCAST);
  if (vaxis >= 0 && vaxis < nout) s->vec = s->n, add_piece(s, vaxis, pl[vaxis].vec, 1, KN_AX_VEC);
  for (int i = nout; i < k->ndim; i++) {
    int64_t inner = pl[i].vec * pl[i].unroll;
    if (k->shape[i] / inner > 1) add_piece(s, i, k->shape[i] / inner, inner, KN_AX_REDUCE);
  }
  for (int i = nout; i < k->ndim; i++)
    if (pl[i].unroll > 1) add_piece(s, i, pl[i].unroll, pl[i].vec, KN_AX_UNROLL);
  if (vaxis >= nout) s->vec = s->n, add_piece(s, vaxis, pl[vaxis].vec, 1, KN_AX_RVEC);
}

/* The narrowest item size (1 to 4 bytes) of the float loads inside the reduce that walk axis r contiguously. */
static int narrowest_along(const kn_kernel *k, const loadset *ls, int r) {
  int isz = 4;
  for (int i = 0; i < ls->n; i++) {
    const kn_kop *x = ls->loads[i];
    const kn_view *top = &x->st.v[x->st.nviews - 1];
    if (!ls->in_red[i] || is_quant_load(k, x) || x->nsrc || x->st.nviews != 1 || r >= top->ndim || top->strides[r] != 1) continue;
    int s = kn_dtype_get(k->bufs[x->buf].dtype)->itemsize;
    if (s >= 1 && s < isz) isz = s;
  }
  return isz;
}

/* The float buffers a GEMV-like kernel streams: read inside the reduce, contiguously along the vectorized reduce axis
 * r, each element by one output (no output axis of the kernel leaves them in place). Each is read once per call,
 * from DRAM in decode, where four rows per work item ran as four short streams the hardware prefetcher followed
 * late: 4096x4096 f16 and bf16 weights streamed over copies (bench_matmul gemv, alternating) reached 71-81 % of
 * f32's rate on AVX2 and 86-90 % on AVX-512 so, 97-104 % with one row per work item, split accumulators and each
 * line prefetched one work item ahead (f32 itself unchanged, 45-52 GB/s). */
static uint32_t streamed_bufs(const kn_kernel *k, const loadset *ls, int r) {
  int nout = k->ndim - k->nreduce;
  uint32_t m = 0;
  for (int i = 0; i < ls->n; i++) {
    const kn_kop *x = ls->loads[i];
    if (!ls->in_red[i] || x->nsrc || is_quant_load(k, x) || x->st.nviews != 1 || x->buf < 1 || x->buf >= 32) continue;
    const kn_view *top = &x->st.v[0];
    bool once = !top->masked && r < top->ndim && top->strides[r] == 1;
    for (int a = 0; a < nout && once; a++) once = k->shape[a] == 1 || (a < top->ndim && top->strides[a] != 0);
    if (once) m |= 1u << x->buf;
  }
  return m;
}

int kn_opt_schedule(const kn_kernel *k, const kn_target *t, kn_sched *s, char *err, size_t errlen) {
  if (k->ndim < 1 || k->ndim > KN_MAXDIM || k->nreduce < 0 || k->nreduce > k->ndim) {
    snprintf(err, errlen, "kernel has %d axes with %d reduced", k->ndim, k->nreduce);
    return -1;
  }
  for (int i = 0; i < k->ndim; i++)
    if (k->shape[i] < 1) {
      snprintf(err, errlen, "kernel axis %d has size %lld", i, (long long)k->shape[i]);
      return -1;
    }
  plain(k, s);
  if (kn_getenv_int("NOOPT", 0) > 0 || k->kind != KN_KERNEL_EXPR) return 0;
  for (int i = 0; i < k->ndim; i++) /* symbolic extents: one piece per axis, lanes and unrolls need fixed sizes */
    if (k->shape_sym[i]) return 0;
  loadset ls = {0};
  collect_loads(k, k->root, false, &ls, 0);
  int nout = k->ndim - k->nreduce;
  axplan pl[KN_MAXDIM];
  for (int i = 0; i < k->ndim; i++) pl[i] = (axplan){1, 1, 1};
  /* vector lanes: the axis where most accesses are contiguous */
  int64_t V = t->vector_bytes > 0 ? t->vector_bytes / out_itemsize(k) : 1;
  if (V > 16) V = 16;
  int vaxis = -1, best = 0;
  int64_t bestv = 1;
  for (int a = 0; a < k->ndim && V >= 4; a++) {
    bool red = a >= nout;
    if (red && a != k->ndim - 1) continue;
    int64_t v = V;
    while (v >= 4 && k->shape[a] % v) v /= 2;
    if (v < 4) continue;
    int sc = axis_score(k, &ls, a, v) * 4 + (int)(v / 4) - (red ? 1 : 0);
    if (axis_score(k, &ls, a, v) > 0 && sc > best) best = sc, vaxis = a, bestv = v;
  }
  if (vaxis >= 0) pl[vaxis].vec = bestv;
  bool qdot = false, hoist = false;
  uint32_t stream = 0; /* streamed_bufs */
  int split = 1;
  int qblocks = 1;
  if (k->nreduce > 0) {
    /* quantized weights along a vectorized reduce axis: unroll over a whole block so every position inside the
     * block is a constant and the format's decode folds to straight-line code */
    int r = k->ndim - 1;
    int64_t qk = 0;
    if (vaxis == r && nout <= r) {
      qk = quant_block_along(k, &ls, r);
      /* a GPU work item holds its unrolled block in VGPRs and gpu_opt splits the reduction over a workgroup:
       * unrolling a whole 256-element block there spills to scratch, so GPUs keep the short unroll */
      bool gpu = t->kind != KN_TARGET_CPU;
      if (qk > pl[r].vec && k->shape[r] % qk == 0 && (!gpu || qk / pl[r].vec <= 16)) pl[r].unroll = qk / pl[r].vec;
    }
    /* the integer-dot template takes a whole block per row: its cost is per row, and the activations' quantization
     * is shared by every row of the register block, so blocks of many rows pay off */
    qdot = qk > 0 && qk == pl[r].unroll * pl[r].vec && quant_dot_along(k, &ls, r) && kn_qdot_mode() &&
           t->kind == KN_TARGET_CPU; /* the integer-dot templates are x86/NEON multiply-adds */
    /* ... but only where no output axis reuses the weights (GEMV): with several tokens per weight (prefill) the
     * activations are quantized per block inside the loop for every group of rows, which costs more than the
     * exact decode shared by the tokens; that needs the activations quantized once per launch first */
    for (int a = 0; a < nout && qdot; a++)
      if (k->shape[a] > 1 && reused_along(k, &ls, a, true)) qdot = false;
    hoist = qdot && shared_activations(k, &ls) && kn_getenv_int("KILN_QX", 1) > 0;
    if (qdot && qk == 32 && k->shape[r] % (2 * qk) == 0) { /* two blocks: independent chains, or one pair per QDOT */
      qblocks = quant_dot_blocks_along(k, &ls, r, t, hoist); /* ... or up to four (hoisted nibble formats) */
      while (qblocks > 2 && k->shape[r] % (qblocks * qk)) qblocks /= 2;
      pl[r].unroll *= qblocks > 2 ? qblocks : 2;
    }
    /* A float reduce along its vector lanes (a GEMV, a batched decode's matmul, a norm): the reduce is unrolled to a
     * 64-byte line of its narrowest contiguous operand per step (at most four vectors), each with its own accumulator
     * (lower.c), so a row's multiply-adds make independent chains instead of one that waits on its own latency.
     * The order of a row's additions then depends on the reduce and the target alone, as before the rows per item:
     * a row dotted alone (decode) and inside a batch (continuous batching) stay the same bits. */
    if (!qdot && vaxis == r && r >= nout && t->kind == KN_TARGET_CPU && pl[r].unroll == 1) {
      int64_t u = kn_getenv_int("KILN_SPLIT_BYTES", 64) / (pl[r].vec * narrowest_along(k, &ls, r));
      if (u > 4) u = 4; /* 16-byte vectors of f16: half a line, four chains (a batch's tokens need registers too) */
      while (u > 1 && k->shape[r] % (pl[r].vec * u)) u /= 2;
      if (u > 1) pl[r].unroll = split = (int)u;
      /* A streamed GEMV (float weights read once: decode) takes one row per work item, so the items read the
       * weights in memory order, one stream per thread that the loads' prefetches run ahead of (the rows of a
       * register block ran as interleaved streams that the hardware prefetcher followed late) */
      stream = kn_getenv_int("KILN_PREFETCH", 1) > 0 ? streamed_bufs(k, &ls, r) : 0;
    }
    /* register blocking: rows that share loads (first those sharing a decoded block), and two vectors along the
     * vector axis when it is an output; at most 16 accumulators and 64 unrolled instances (the integer-dot GEMV:
     * the rows its format and width take best, as the activations' quantization is shared by them) */
    int64_t qrows = qdot ? quant_dot_rows_along(k, &ls, r, t, hoist) : 8;
    int64_t budget = qrows > 16 || hoist ? qrows : 16;
    if (vaxis >= nout && !qdot && 64 / pl[r].unroll < budget) budget = 64 / pl[r].unroll;
    if (ls.nreds > 1) budget /= ls.nreds; /* every reduce keeps an accumulator per instance */
    budget /= split;                       /* ... and per unrolled step, split */
    if (budget < 1) budget = 1;
    if (vaxis >= 0 && vaxis < nout && (k->shape[vaxis] / pl[vaxis].vec) % 2 == 0) pl[vaxis].up = 2, budget = 8;
    /* the output axes innermost first; with split accumulators (fewer instances) those that keep the larger operand
     * in registers first: a batched decode's tokens, so that its float weights are read once, not once per token */
    int order[KN_MAXDIM];
    for (int i = 0; i < nout; i++) order[i] = nout - 1 - i;
    for (int i = 1; i < nout && split > 1; i++)
      for (int j = i; j > 0 && reused_bytes(k, &ls, order[j]) > reused_bytes(k, &ls, order[j - 1]); j--) {
        int x = order[j];
        order[j] = order[j - 1], order[j - 1] = x;
      }
    for (int pass = 0; pass < 2; pass++)
      for (int i = 0, a; i < nout && budget > 1; i++) {
        if ((a = order[i]) == vaxis || pl[a].up > 1 || stream || !reused_along(k, &ls, a, pass == 0)) continue;
        int64_t cap = qdot ? (pass == 0 ? 4 : qrows) : vaxis >= nout ? 4 : 8;
        /* ... but at least 4 register blocks per thread: a launch splits its work items over the cores */
        while (qdot && pass == 1 && cap > 8 && k->shape[a] / cap < 4 * (t->ncores > 0 ? t->ncores : 1)) cap /= 2;
        int64_t f = budget < cap ? budget : cap;
        while (f > 1 && k->shape[a] % f) f /= 2;
        if (f > 1) pl[a].up = f, budget /= f;
      }
    /* both halves of a mirrored pair in one work item: the rows one half sums are the other's, so lower.c's shared
     * accumulators dot each row once where two items dotted it twice (the rows per item stay one per half) */
    for (int a = 0; a < nout && qdot && hoist; a++)
      if (a != vaxis && pl[a].up == 1 && k->shape[a] == 2 && mirrored_along(k, &ls, a))
        pl[a].up = 2;
    /* small reductions: unroll the whole reduce axis */
    int64_t rest = k->shape[r] / pl[r].vec, block = 1;
    for (int a = 0; a < nout; a++) block *= pl[a].up;
    /* ... except on a GPU whose work item would hold a whole register block per unrolled step: 16 rows by 7 steps
     * of 4 lanes (a 28-long reduce) spilled 544 bytes to scratch, which kiln's kernels may not use */
    bool gpu_spill = t->kind != KN_TARGET_CPU && block * rest * pl[r].vec > 128;
    if (pl[r].unroll == 1 && rest > 1 && rest <= 8 && k->nreduce == 1 && !gpu_spill) pl[r].unroll = rest;
  }
  build(k, pl, vaxis, s);
  s->qdot = qdot;
  s->qdot_blocks = qdot ? qblocks : 0;
  s->qdot_hoist = hoist;
  s->qdot_prefetch = hoist && kn_getenv_int("KILN_PREFETCH", 1) > 0;
  s->stream_bufs = stream;
  s->red_split = split;
  return 0;
}

void kn_sched_name(const kn_kernel *k, const kn_sched *s, char *name, size_t n) {
  size_t o = (size_t)snprintf(name, n, "%s", k->nreduce > 0 ? "r" : "E");
  for (int i = 0; i < s->n && o < n; i++) o += (size_t)snprintf(name + o, n - o, "_%lld", (long long)s->p[i].size);
  if (s->n == 0 && o < n) snprintf(name + o, n - o, "_1");
}
