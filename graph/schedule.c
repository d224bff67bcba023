/* The scheduler: decides which nodes become buffers (kernel boundaries) and builds one kernel AST per realized
 * node by inlining everything between it and the buffers it reads. The boundary rules (DESIGN.md):
 *   always: targets, contiguous, assign, gather/attention (and their inputs), arange, rand;
 *   a reduce (or an expression carrying one) used by several consumers, broadcast or permuted by a view, or
 *   feeding another reduce; a padded view of an expression that is not zero at the padding;
 *   and whatever a kernel cannot hold (a second reduce of another shape, too many buffers, too many views),
 *   found while building and fixed by realizing the offending source and scheduling again.
 * DEBUG=3 prints every kernel with the reason for its boundary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../device/base/env.h"
#include "schedule.h"

typedef struct {
  kn_uop *u;
  int nparents, nonalu_parents;
  bool realize, carry, visited;
  bool forced;        /* realized whatever the rules say: a kernel could not hold it, or a shared result split */
  char forced_why[160];
  bool shared;        /* carries a reduce and feeds several ALU consumers: one kernel may hold them all */
  bool multi;         /* inlined into more than one kernel */
  kn_uop *owner;      /* the kernel (realized node) it is inlined into, when only one */
  bool feeds_red;     /* read by a reduce through elementwise ops and views (a matmul's operand) */
  bool swizzled;      /* a reduce read through a permuting/flipping/shrinking view: computed where it is read */
  char why[160];
  UT_hash_handle hh;
} info;

typedef struct {
  info *map;
  kn_uop **topo;
  int ntopo, cap;
  kn_uop **targets;
  int ntargets;
} sctx;

static info *get(sctx *s, kn_uop *u) {
  info *i;
  HASH_FIND_PTR(s->map, &u, i);
  return i;
}

bool kn_uop_is_leaf(const kn_uop *u) { return u->buf != NULL || u->op == KN_OP_BUFFER; }

static int collect(sctx *s, kn_uop *u) {
  info *i = get(s, u);
  if (i) return 0;
  i = calloc(1, sizeof *i);
  if (!i) return -1;
  i->u = u;
  HASH_ADD_PTR(s->map, u, i);
  if (!kn_uop_is_leaf(u))
    for (int k = 0; k < u->nsrc; k++) {
      if (collect(s, u->src[k])) return -1;
      info *si = get(s, u->src[k]);
      si->nparents++;
      si->nonalu_parents += u->op != KN_OP_ALU && u->op != KN_OP_VIEW;
    }
  if (s->ntopo == s->cap && !(s->topo = realloc(s->topo, (s->cap = s->cap ? 2 * s->cap : 256) * sizeof *s->topo))) return -1;
  s->topo[s->ntopo++] = u;
  return 0;
}

static void mark(info *i, const char *why) {
  if (i->realize || kn_uop_is_leaf(i->u)) return;
  i->realize = true;
  snprintf(i->why, sizeof i->why, "%s", why);
}

/* mark with a reason that names a tensor: "input of attention 'attention'" */
static void mark_named(info *i, const char *what, const kn_uop *named) {
  char why[160];
  snprintf(why, sizeof why, "%s '%s'", what, kn_uop_label(named));
  mark(i, why);
}

/* A view that only renames axes of a contiguous layout: the linear index does not change. */
static bool pure_reshape(const kn_uop *v) { return kn_st_is_contiguous(v->arg.st); }

/* f(0) == 0 for every op in the inlined expression: padding can be applied to its inputs instead. */
static bool zero_preserving(sctx *s, kn_uop *u) {
  info *i = get(s, u);
  if (kn_uop_is_leaf(u) || (i && i->realize)) return true;
  switch (u->op) {
  case KN_OP_VIEW: return zero_preserving(s, u->src[0]);
  case KN_OP_ALU:
    switch (u->arg.alu) {
    case KN_KOP_ADD: case KN_KOP_SUB: case KN_KOP_MUL: case KN_KOP_NEG: case KN_KOP_CAST: case KN_KOP_BITCAST:
      for (int k = 0; k < u->nsrc; k++)
        if (!zero_preserving(s, u->src[k])) return false;
      return true;
    default: return false;
    }
  default: return false;
  }
}

/* How many times each element of a view's source is read through it (an expand repeats elements). */
static int64_t broadcast_factor(const kn_uop *v) {
  int64_t out = kn_shape_numel(v->ndim, v->shape), in = kn_shape_numel(v->src[0]->ndim, v->src[0]->shape);
  return in ? out / in : 0;
}

/* The inlined expression does arithmetic (more than casts and views of buffers): recomputing it per broadcast
 * element would multiply its cost. */
static bool computes(sctx *s, kn_uop *u, int depth) {
  info *i = get(s, u);
  if (kn_uop_is_leaf(u) || (i && i->realize) || depth > 64) return false;
  if (u->op == KN_OP_VIEW) return computes(s, u->src[0], depth + 1);
  if (u->op != KN_OP_ALU) return false;
  if (u->arg.alu != KN_KOP_CAST && u->arg.alu != KN_KOP_BITCAST) return true;
  return computes(s, u->src[0], depth + 1);
}

/* Ops left in the budget after the inlined expression u (-1: not cheap): a few adds and multiplies of loaded
 * values, such as RMSNorm's x * rsqrt(mean) * w. Recomputing it for every element it is broadcast to (each row of
 * the matmul that consumes it, which shares it across its register block) costs less than a kernel of its own and
 * a round trip through memory, as tinygrad inlines every elementwise op. */
static int cheap(sctx *s, kn_uop *u, int budget) {
  info *i = get(s, u);
  if (budget < 0 || kn_uop_is_leaf(u) || (i && i->realize) || u->op == KN_OP_CONST || u->op == KN_OP_VARVAL) return budget;
  if (i && i->carry) return -1;
  if (u->op == KN_OP_VIEW) return cheap(s, u->src[0], budget);
  if (u->op != KN_OP_ALU) return -1;
  switch (u->arg.alu) {
  case KN_KOP_CAST: case KN_KOP_BITCAST: break;
  case KN_KOP_ADD: case KN_KOP_SUB: case KN_KOP_MUL: case KN_KOP_NEG: case KN_KOP_MAX: case KN_KOP_MIN: budget--; break;
  default: return -1;
  }
  for (int k = 0; k < u->nsrc && budget >= 0; k++) budget = cheap(s, u->src[k], budget);
  return budget;
}

#define KN_CHEAP_OPS 3

/* At most one axis longer than 1: a decode step's activations. Recomputing inside a matrix-vector product is free
 * (it is bound by the weights' bytes, and the integer-dot template quantizes the activations per block anyway);
 * a prefill's matrix-matrix product reuses each decoded weight block across tokens, so there the extra operations
 * per multiply-add would cost more than the kernel they save. */
static bool one_row(const kn_uop *u) {
  int n = 0;
  for (int i = 0; i < u->ndim; i++) n += u->shape[i] > 1;
  return n <= 1;
}

/* A view a reduce can be computed through: it reads every element once (a permute or flip: a broadcast would
 * repeat the reduction per copy, a shrink would change the kernel's space) and has no padding (a padded element
 * would still run the reduce loop). */
static bool pushable_view(const kn_uop *v) {
  return kn_shape_numel(v->ndim, v->shape) == kn_shape_numel(v->src[0]->ndim, v->src[0]->shape) && !kn_st_has_mask(v->arg.st);
}

/* The reduces inside an inlined expression read through a pushable view (e.g. RoPE's pair swap of q = x Wq + b). */
static void mark_swizzled(sctx *s, kn_uop *u, int depth) {
  info *i = get(s, u);
  if (depth > 256 || kn_uop_is_leaf(u) || !i || i->realize) return;
  if (u->op == KN_OP_REDUCE) {
    i->swizzled = true;
    return;
  }
  if (u->op == KN_OP_ALU || u->op == KN_OP_VIEW)
    for (int k = 0; k < u->nsrc; k++) mark_swizzled(s, u->src[k], depth + 1);
}

/* A view of a reduce result in a one-row (decode) pass, e.g. RoPE's pair swap of q = x Wq, is pushed into the reduce
 * (tinygrad's swizzle): q's and k's RoPE fuse into their projections, 9 kernels per llama layer instead of 11. The
 * swizzled projection sums every row in the order of the unswizzled one (the flipped view merges into one view, so
 * the reduce is vectorized alike, and codegen fuses each accumulation into one multiply-add whatever shares the
 * product), so a row decoded alone equals the same row inside a many-row pass bit for bit. KILN_FUSE_ROPE=0 keeps
 * RoPE in kernels of its own. */
static bool swizzle_decode(void) { return kn_getenv_int("KILN_FUSE_ROPE", 1) != 0; }

static void decide(sctx *s) {
  bool swizzle_one_row = swizzle_decode();
  for (int n = 0; n < s->ntopo; n++) get(s, s->topo[n])->shared = get(s, s->topo[n])->swizzled = false;
  for (int t = 0; t < s->ntargets; t++) mark(get(s, s->targets[t]), "a realize target");
  for (int n = 0; n < s->ntopo; n++) {
    kn_uop *p = s->topo[n];
    info *pi = get(s, p);
    if (kn_uop_is_leaf(p)) continue;
    switch (p->op) {
    case KN_OP_CONTIGUOUS: mark(pi, "explicit contiguous"); break;
    case KN_OP_ASSIGN:
      mark_named(pi, "assign into the existing buffer", p->src[0]);
      if (p->nsrc == 3) mark_named(get(s, p->src[2]), "rows of the row scatter into", p->src[0]);
      break;
    case KN_OP_ARANGE: case KN_OP_RAND: mark(pi, "arange/rand are generated in their own kernel"); break;
    case KN_OP_GATHER:
      mark_named(pi, "gather kernel: rows of", p->src[0]);
      mark_named(get(s, p->src[0]), "table of the gather", p);
      mark_named(get(s, p->src[1]), "indices of the gather", p);
      break;
    case KN_OP_ATTENTION:
      mark(pi, "attention template kernel");
      for (int k = 0; k < p->nsrc; k++) mark_named(get(s, p->src[k]), "input of the attention kernel", p);
      break;
    default: break;
    }
    if (p->op == KN_OP_VIEW && broadcast_factor(p) >= 4 && computes(s, p->src[0], 0) &&
        (cheap(s, p->src[0], KN_CHEAP_OPS) < 0 || (pi->feeds_red && !one_row(p->src[0]))))
      mark(get(s, p->src[0]), "expression broadcast to many elements (computed once instead of per use)");
    if (p->op == KN_OP_VIEW && kn_st_has_mask(p->arg.st) && !zero_preserving(s, p->src[0]))
      mark(get(s, p->src[0]), "padded view of an expression that is not zero at the padding");
    bool carry = p->op == KN_OP_REDUCE;
    for (int k = 0; k < p->nsrc; k++) {
      info *si = get(s, p->src[k]);
      if (!si->carry || si->realize) continue;
      if (p->op == KN_OP_REDUCE) mark_named(si, "reduce result feeding another reduce, of", p);
      else if (p->op == KN_OP_VIEW && !pure_reshape(p) && (!pushable_view(p) || !swizzle_one_row))
        mark(si, "reduce result broadcast or permuted by a view");
      else if (p->op == KN_OP_VIEW && !pure_reshape(p) && !one_row(si->u))
        mark(si, "reduce result permuted by a view (swizzled only in one-row passes)");
      else if (p->op == KN_OP_VIEW && !pure_reshape(p)) {
        mark_swizzled(s, si->u, 0); /* the view is pushed into the reduce, which is computed where it is read */
        if (si->nparents > 1) si->shared = true;
      }
      else if (si->nparents > 1 && si->nonalu_parents == 0)
        si->shared = true; /* kept if every consumer lands in one kernel (settle), e.g. SiLU(gate) * up */
      else if (si->nparents > 1) {
        char why[96];
        snprintf(why, sizeof why, "reduce result used by %d consumers", si->nparents);
        mark(si, why);
      } else if (p->op != KN_OP_ALU && p->op != KN_OP_VIEW && p->op != KN_OP_CONTIGUOUS && p->op != KN_OP_ASSIGN)
        mark_named(si, "reduce result consumed by the kernel boundary", p); /* contiguous/assign take the reduce in */
      if (!si->realize) carry = true;
    }
    pi->carry = carry;
  }
}

/* Which kernel each inlined node lands in: a node belongs to the kernels of its consumers (itself when realized).
 * A shared reduce result whose consumers land in different kernels would be recomputed by each: realize it.
 * True when something was marked. */
static bool split_shared(sctx *s) {
  for (int n = 0; n < s->ntopo; n++) {
    info *i = get(s, s->topo[n]);
    i->owner = NULL, i->multi = false;
  }
  for (int n = s->ntopo - 1; n >= 0; n--) {
    kn_uop *u = s->topo[n];
    info *i = get(s, u);
    if (kn_uop_is_leaf(u)) continue;
    kn_uop *owner = i->realize ? u : i->owner;
    bool multi = !i->realize && i->multi;
    for (int k = 0; k < u->nsrc; k++) {
      info *si = get(s, u->src[k]);
      if (multi) si->multi = true;
      else if (!si->owner) si->owner = owner;
      else if (si->owner != owner) si->multi = true;
    }
  }
  bool changed = false;
  for (int n = 0; n < s->ntopo; n++) {
    info *i = get(s, s->topo[n]);
    if (i->shared && !i->realize && i->multi) {
      i->forced = true;
      snprintf(i->forced_why, sizeof i->forced_why, "reduce result used by %d consumers in different kernels", i->nparents);
      changed = true;
    }
  }
  return changed;
}

/* The boundary rules from scratch given the forced boundaries, until no shared reduce result would be recomputed
 * (each split can only lift marks that a tentatively inlined result had caused downstream). */
static void settle(sctx *s) {
  for (int n = s->ntopo - 1; n >= 0; n--) { /* consumers first */
    kn_uop *u = s->topo[n];
    info *i = get(s, u);
    if (kn_uop_is_leaf(u)) continue;
    for (int k = 0; k < u->nsrc; k++)
      if (u->op == KN_OP_REDUCE || ((u->op == KN_OP_ALU || u->op == KN_OP_VIEW) && i->feeds_red))
        get(s, u->src[k])->feeds_red = true;
  }
  do {
    for (int n = 0; n < s->ntopo; n++) {
      info *i = get(s, s->topo[n]);
      i->realize = false, i->why[0] = 0;
    }
    for (int n = 0; n < s->ntopo; n++) {
      info *i = get(s, s->topo[n]);
      if (i->forced) mark(i, i->forced_why);
    }
    decide(s);
  } while (split_shared(s));
}

/* ---------------- kernel building ---------------- */

typedef struct memo {
  struct {
    kn_uop *u;
    uint64_t sth;
    int inred;
  } key;
  kn_kop *k;
  UT_hash_handle hh;
} memo;

typedef struct {
  sctx *s;
  kn_sched_item *it;
  kn_kernel *k;
  kn_uop *root;        /* the expression being stored (not loaded even if realized) */
  kn_uop *red;         /* the kernel's reduce signature */
  int perm[KN_MAXDIM]; /* reduce src axis order: output axes, then reduce axes */
  memo *memo;
  bool swz_space;      /* the space is the expression's, every reduce is swizzled into it */
  kn_uop *need;        /* a node to realize before this kernel can be built */
  const char *need_why;
  int varmap[64];
} kb;

static uint64_t st_hash(const kn_st *st) {
  uint64_t h = 1469598103934665603ull;
  const unsigned char *p = (const unsigned char *)st;
  size_t n = offsetof(kn_st, v) + st->nviews * sizeof(kn_view);
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* Buffers of leaves and assigns hold their own dtype (block formats included); realized expressions hold values. */
static kn_dtype stored_dtype(const kn_uop *u) {
  return kn_uop_is_leaf(u) || u->op == KN_OP_ASSIGN ? u->dtype : kn_dtype_scalar(u->dtype);
}

static int buf_index(kb *b, kn_uop *u) {
  for (int i = 0; i < b->it->nbufs; i++)
    if (b->it->bufs[i] == u) return i;
  if (b->it->nbufs == KN_MAXBUFS) return -1;
  b->it->bufs[b->it->nbufs] = u;
  b->k->bufs[b->it->nbufs].dtype = stored_dtype(u);
  b->k->bufs[b->it->nbufs].nelems = kn_shape_numel(u->ndim, u->shape);
  b->k->nbufs = b->it->nbufs + 1;
  return b->it->nbufs++;
}

static int var_index(kb *b, int gid) {
  if (gid < 0) return -1;
  if (b->varmap[gid] >= 0) return b->varmap[gid];
  if (b->k->nvars == KN_MAXVARS) return -2;
  kn_var *v = kn_var_by_id(gid);
  int i = b->k->nvars++;
  snprintf(b->k->vars[i].name, sizeof b->k->vars[i].name, "%s", v->name);
  b->k->vars[i].min = v->min, b->k->vars[i].max = v->max;
  b->it->vars[i] = v;
  b->it->nvars = b->k->nvars;
  return b->varmap[gid] = i;
}

/* Rewrite the global variable ids in a chain's offsets to the kernel's argument indices. */
static int localize_vars(kb *b, kn_st *st) {
  for (int i = 0; i < st->nviews; i++)
    if (st->v[i].offset.v >= 0) {
      int l = var_index(b, st->v[i].offset.v);
      if (l < 0) return -1;
      st->v[i].offset.v = l;
    }
  return 0;
}

static kn_kop *fail(kb *b, kn_uop *u, const char *why) {
  if (!b->need) b->need = u, b->need_why = why;
  return NULL;
}

/* Chain from the kernel's iteration space (shape sh) to the linear index of node u's contiguous layout, where the
 * kernel space is u's shape permuted by perm (perm NULL: identity). */
static void space_chain(kn_st *out, const kn_uop *u, int ndim, const int64_t *sh, const int *perm) {
  int64_t cs[KN_MAXDIM], s = 1;
  for (int i = u->ndim - 1; i >= 0; i--) cs[i] = s, s *= u->shape[i];
  kn_st top;
  memset(&top, 0, sizeof top);
  top.nviews = 1;
  kn_view *v = &top.v[0];
  v->ndim = ndim, v->offset.v = -1;
  for (int i = 0; i < ndim; i++) {
    v->shape[i] = sh[i];
    v->strides[i] = u->ndim == 0 ? 0 : cs[perm ? perm[i] : i];
  }
  kn_st bottom;
  int64_t one = 1;
  kn_st_contiguous(&bottom, u->ndim ? u->ndim : 1, u->ndim ? u->shape : &one);
  kn_st_compose(out, &bottom, &top);
}

static kn_kop *build(kb *b, kn_uop *u, const kn_st *A, int inred);

/* A reduce reached through a view that permutes, flips or shrinks its result (decide() lets such views through,
 * e.g. RoPE's pair swap of a matmul's output): the reduce is computed where the view reads it, tinygrad's swizzle.
 * A addresses the reduce's result (its shape with the reduced axes 1) from the kernel's output space; each of its
 * views gets the reduce axes appended (strides scaled by their element count), and the chain ends on the source
 * permuted to [kept axes..., reduced axes...]. *full: the chain from the kernel's full space to the source. */
static int swizzle(kb *b, kn_uop *u, const kn_st *A, kn_st *full) {
  kn_uop *src = u->src[0];
  const kn_kernel *k = b->k;
  int nred = 0, perm[KN_MAXDIM], n = 0;
  int64_t rshape[KN_MAXDIM], pshape[KN_MAXDIM], prs = 1;
  for (int i = 0; i < src->ndim; i++)
    if (!(u->arg.red.axes >> i & 1)) perm[n] = i, pshape[n++] = src->shape[i];
  for (int i = 0; i < src->ndim; i++)
    if (u->arg.red.axes >> i & 1) perm[n] = i, pshape[n++] = rshape[nred++] = src->shape[i];
  if (nred != k->nreduce) return -1;
  for (int i = 0; i < nred; i++) prs *= rshape[i];
  kn_st ext;
  memset(&ext, 0, sizeof ext);
  ext.nviews = A->nviews;
  for (int vi = 0; vi < A->nviews; vi++) {
    const kn_view *v = &A->v[vi];
    kn_view *e = &ext.v[vi];
    bool top = vi == A->nviews - 1;
    int keep = top ? k->ndim - k->nreduce : v->ndim; /* the top view's trailing size-1 reduce axes are replaced */
    if (top && v->ndim != k->ndim) return -1;
    if (keep + nred > KN_MAXDIM) return -1;
    *e = *v;
    e->ndim = keep + nred;
    for (int i = 0; i < keep; i++) e->strides[i] = v->strides[i] * prs;
    e->offset.c = v->offset.c * prs, e->offset.k = v->offset.k * prs;
    int64_t st = 1;
    for (int i = nred - 1; i >= 0; i--) {
      e->shape[keep + i] = rshape[i], e->strides[keep + i] = rshape[i] == 1 ? 0 : st, st *= rshape[i];
      e->mask_lo[keep + i] = 0, e->mask_hi[keep + i] = rshape[i];
    }
  }
  kn_st P;
  space_chain(&P, src, src->ndim, pshape, perm); /* [kept..., reduced...] -> the source's layout */
  return kn_st_compose(full, &P, &ext);
}

static kn_kop *load(kb *b, kn_uop *u, const kn_st *A) {
  int bi = buf_index(b, u);
  if (bi < 0) return fail(b, b->root, "kernel would read more than KN_MAXBUFS buffers");
  kn_st layout, st;
  int64_t one = 1;
  kn_st_contiguous(&layout, u->ndim ? u->ndim : 1, u->ndim ? u->shape : &one);
  if (kn_st_compose(&st, &layout, A) || localize_vars(b, &st)) return fail(b, b->root, "view chain too long");
  return kn_kop_load(b->k, bi, kn_dtype_scalar(u->dtype), &st);
}

static void note_fused(kn_sched_item *it, kn_uop *u) {
  for (int i = 0; i < it->nfused; i++)
    if (it->fused[i] == u) return;
  if (it->nfused == it->capfused) {
    kn_uop **n = realloc(it->fused, (it->capfused = it->capfused ? 2 * it->capfused : 16) * sizeof *n);
    if (!n) return;
    it->fused = n;
  }
  it->fused[it->nfused++] = u;
}

static kn_kop *build_uncached(kb *b, kn_uop *u, const kn_st *A, int inred) {
  info *i = get(b->s, u);
  if (u != b->root && (kn_uop_is_leaf(u) || (i && i->realize))) return load(b, u, A);
  note_fused(b->it, u);
  switch (u->op) {
  case KN_OP_CONST:
    return kn_dtype_is_float(u->dtype) ? kn_kop_const_f(b->k, u->dtype, u->arg.f) : kn_kop_const_i(b->k, u->dtype, u->arg.i);
  case KN_OP_VARVAL: {
    int l = var_index(b, u->arg.var->id);
    return l < 0 ? fail(b, b->root, "too many variables in one kernel") : kn_kop_var(b->k, l, u->dtype);
  }
  case KN_OP_VIEW: {
    kn_st c;
    if (kn_st_compose(&c, u->arg.st, A)) return fail(b, u->src[0], "view chain too long to inline");
    return build(b, u->src[0], &c, inred);
  }
  case KN_OP_ALU: {
    kn_kop *s[3] = {0};
    for (int k = 0; k < u->nsrc; k++)
      if (!(s[k] = build(b, u->src[k], A, inred))) return NULL;
    if ((u->arg.alu == KN_KOP_CAST) && s[0]->dtype == u->dtype) return s[0];
    return kn_kop_alu(b->k, u->arg.alu, u->dtype, u->nsrc, s[0], s[1], s[2]);
  }
  case KN_OP_REDUCE: {
    if (inred) return fail(b, u, "nested reduce");
    if (b->red && (b->red->src[0]->ndim != u->src[0]->ndim || b->red->arg.red.axes != u->arg.red.axes ||
                   memcmp(b->red->src[0]->shape, u->src[0]->shape, u->ndim * sizeof *u->shape)))
      return fail(b, u, "a second reduce of another shape in one kernel");
    kn_st full;
    space_chain(&full, u->src[0], b->k->ndim, b->k->shape, b->perm);
    if ((b->swz_space || get(b->s, u)->swizzled) && swizzle(b, u, A, &full)) return fail(b, u, "a view of a reduce result that cannot be pushed into the reduce");
    kn_kop *s = build(b, u->src[0], &full, 1);
    return s ? kn_kop_reduce(b->k, u->arg.red.rop, s) : NULL;
  }
  default: return fail(b, u, "node cannot be inlined");
  }
}

static kn_kop *build(kb *b, kn_uop *u, const kn_st *A, int inred) {
  memo key, *m;
  memset(&key, 0, sizeof key);
  /* a reduce's value does not depend on A (it is computed at the kernel's output index) unless it is swizzled */
  info *i = get(b->s, u);
  key.key.u = u, key.key.sth = u->op == KN_OP_REDUCE && u != b->root && i && !i->realize && !i->swizzled && !b->swz_space
                                   ? 0 : st_hash(A);
  key.key.inred = inred;
  HASH_FIND(hh, b->memo, &key.key, sizeof key.key, m);
  if (m) return m->k;
  kn_kop *k = build_uncached(b, u, A, inred);
  if (!k) return NULL;
  if (!(m = calloc(1, sizeof *m))) return NULL;
  m->key = key.key, m->k = k;
  HASH_ADD(hh, b->memo, key, sizeof m->key, m);
  return k;
}

/* Find the first reduce inlined into the expression (not crossing buffers). */
static kn_uop *find_reduce(sctx *s, kn_uop *u, kn_uop *root) {
  info *i = get(s, u);
  if (u != root && (kn_uop_is_leaf(u) || (i && i->realize))) return NULL;
  if (u->op == KN_OP_REDUCE) return u;
  if (u->op != KN_OP_ALU && u->op != KN_OP_VIEW && u != root) return NULL;
  for (int k = 0; k < u->nsrc; k++) {
    kn_uop *r = find_reduce(s, u->src[k], root);
    if (r) return r;
  }
  return NULL;
}

static bool any_swizzled(sctx *s, kn_uop *u, kn_uop *root, int depth) {
  info *i = get(s, u);
  if (depth > 256 || (u != root && (kn_uop_is_leaf(u) || (i && i->realize)))) return false;
  if (u->op == KN_OP_REDUCE) return i && i->swizzled;
  for (int k = 0; k < u->nsrc; k++)
    if (any_swizzled(s, u->src[k], root, depth + 1)) return true;
  return false;
}

/* The space of a kernel whose reduce is read through a swizzled view: e past its casts and pure reshapes (the
 * same linear index), NULL when no reduce is swizzled or a symbolic extent is involved. */
static kn_uop *swizzle_space(sctx *s, kn_uop *e, kn_uop *root) {
  if (!any_swizzled(s, e, root, 0)) return NULL;
  kn_uop *sp = e;
  for (;;) {
    info *i = get(s, sp);
    if (sp != e && i && i->realize) break;
    if (sp->op == KN_OP_VIEW && pure_reshape(sp)) sp = sp->src[0];
    else if (sp->op == KN_OP_ALU && sp->arg.alu == KN_KOP_CAST) sp = sp->src[0];
    else break;
  }
  if (sp->op == KN_OP_REDUCE || sp->ndim < 1) return NULL;
  for (int i = 0; i < sp->ndim; i++)
    if (sp->symvar[i] >= 0) return NULL;
  return sp;
}

static int build_expr_kernel(kb *b, kn_uop *x) {
  kn_kernel *k = b->k;
  kn_uop *e = x->op == KN_OP_CONTIGUOUS ? x->src[0] : x->op == KN_OP_ASSIGN ? x->src[1] : x;
  b->root = x; /* contiguous/assign of an already realized node just loads it */
  kn_uop *out = x->op == KN_OP_ASSIGN ? x->src[0] : x;
  buf_index(b, out);
  if (e->op == KN_OP_ALU || e->op == KN_OP_VIEW || e->op == KN_OP_REDUCE) b->red = find_reduce(b->s, e, x);
  kn_st A;
  kn_uop *sp = b->red ? swizzle_space(b->s, e, x) : NULL;
  if (sp) {
    /* a swizzled reduce: the kernel runs over the expression's own (finest) shape plus the reduce axes, and every
     * reduce is addressed from it (RoPE: [T, H, D/2, 2] x reduce, the pair swap then a single flipped view) */
    kn_uop *r = b->red, *src = r->src[0];
    int n = 0;
    int64_t o[KN_MAXDIM];
    for (int i = 0; i < sp->ndim; i++) k->shape[n] = o[n] = sp->shape[i], n++;
    for (int i = 0; i < src->ndim; i++)
      if (r->arg.red.axes >> i & 1) k->shape[n] = src->shape[i], o[n++] = 1;
    k->ndim = n, k->nreduce = n - sp->ndim, b->swz_space = true;
    kn_st top;
    kn_st_contiguous(&A, e->ndim ? e->ndim : 1, e->ndim ? e->shape : (int64_t[]){1});
    kn_st_contiguous(&top, n, o);
    kn_st_compose(&A, &A, &top); /* pure reshapes and casts lie between: e's linear index is the space's */
  } else if (b->red) {
    kn_uop *r = b->red, *src = r->src[0];
    int n = 0;
    for (int i = 0; i < src->ndim; i++)
      if (!(r->arg.red.axes >> i & 1)) b->perm[n++] = i;
    k->nreduce = src->ndim - n;
    for (int i = 0; i < src->ndim; i++)
      if (r->arg.red.axes >> i & 1) b->perm[n++] = i;
    k->ndim = src->ndim;
    int64_t o[KN_MAXDIM];
    for (int i = 0; i < k->ndim; i++) k->shape[i] = src->shape[b->perm[i]], o[i] = i < k->ndim - k->nreduce ? k->shape[i] : 1;
    for (int i = 0; i < k->ndim; i++)
      if (src->symvar[b->perm[i]] >= 0 && (k->shape_sym[i] = var_index(b, src->symvar[b->perm[i]]) + 1) <= 0) return -1;
    kn_st tmp;
    space_chain(&tmp, r, k->ndim, o, b->perm); /* output space -> reduce result linear index */
    kn_st_contiguous(&A, e->ndim ? e->ndim : 1, e->ndim ? e->shape : (int64_t[]){1});
    kn_st top = tmp;
    top.nviews = 1, top.v[0] = tmp.v[tmp.nviews - 1];
    /* the reduce result and e share their linear index (only reshapes lie between): address e's layout */
    kn_st_compose(&A, &A, &top);
  } else {
    k->ndim = e->ndim ? e->ndim : 1, k->nreduce = 0;
    for (int i = 0; i < k->ndim; i++) k->shape[i] = e->ndim ? e->shape[i] : 1;
    for (int i = 0; i < e->ndim; i++)
      if (e->symvar[i] >= 0 && (k->shape_sym[i] = var_index(b, e->symvar[i]) + 1) <= 0) return -1;
    kn_st_contiguous(&A, k->ndim, k->shape);
  }
  if (x->op == KN_OP_ASSIGN) {
    if (kn_st_compose(&k->out_st, x->arg.st, &A)) return -1;
    if (x->nsrc == 3) { /* row scatter: the row of output element (t, ...) is rows[t] */
      kn_uop *rows = x->src[2];
      kn_st rv, rst;
      kn_st_contiguous(&rv, e->ndim, e->shape);
      for (int i = 0; i < e->ndim; i++) rv.v[0].strides[i] = i == 0;
      if (kn_st_compose(&rst, &rv, &A)) return -1;
      if (!(k->out_row = load(b, rows, &rst))) return -1;
      k->out_row_stride = kn_shape_numel(out->ndim - 1, out->shape + 1);
    }
  } else
    k->out_st = A;
  if (localize_vars(b, &k->out_st)) return -1;
  kn_kop *root = build(b, e, &A, 0);
  if (!root) return -1;
  if (root->dtype != k->bufs[0].dtype && !kn_dtype_is_quant(k->bufs[0].dtype))
    root = kn_kop_alu(k, KN_KOP_CAST, k->bufs[0].dtype, 1, root, NULL, NULL);
  k->root = root;
  return 0;
}

static int build_special(kb *b, kn_uop *x) {
  kn_kernel *k = b->k;
  buf_index(b, x);
  if (x->op == KN_OP_ATTENTION) {
    k->kind = KN_KERNEL_ATTENTION;
    k->attn = *x->arg.attn;
    for (int i = 0; i < x->nsrc; i++) buf_index(b, x->src[i]);
    k->ndim = 3;
    memcpy(k->shape, x->shape, sizeof x->shape);
    kn_st_contiguous(&k->out_st, 3, x->shape);
    if (x->arg.attn->seg > 0) return 0; /* per-row mode: the row table is buffer 4 */
    k->attn.pos_var = var_index(b, x->arg.attn->pos_var);
    return k->attn.pos_var < 0 ? -1 : 0;
  }
  k->ndim = x->ndim;
  memcpy(k->shape, x->shape, sizeof x->shape);
  kn_st_contiguous(&k->out_st, x->ndim, x->shape);
  if (x->op == KN_OP_ARANGE) {
    kn_kop *idx = kn_kop_idx(k, 0, KN_I64);
    k->root = x->dtype == KN_I64 ? idx : kn_kop_alu(k, KN_KOP_CAST, x->dtype, 1, idx, NULL, NULL);
    return 0;
  }
  if (x->op == KN_OP_RAND) { /* counter-based: a 32-bit integer hash of (seed, flat index) */
    int64_t n = kn_shape_numel(x->ndim, x->shape);
    k->ndim = 1, k->shape[0] = n;
    kn_st_contiguous(&k->out_st, 1, &n);
    kn_kop *h = kn_kop_alu(k, KN_KOP_CAST, KN_U32, 1, kn_kop_idx(k, 0, KN_I64), NULL, NULL);
    uint32_t seed = (uint32_t)(x->arg.i * 0x9E3779B9u + 0x7f4a7c15u);
    h = kn_kop_alu(k, KN_KOP_XOR, KN_U32, 2, h, kn_kop_const_i(k, KN_U32, seed), NULL);
    for (int r = 0; r < 3; r++) {
      h = kn_kop_alu(k, KN_KOP_XOR, KN_U32, 2, h, kn_kop_alu(k, KN_KOP_SHR, KN_U32, 2, h, kn_kop_const_i(k, KN_U32, 16), NULL), NULL);
      h = kn_kop_alu(k, KN_KOP_MUL, KN_U32, 2, h, kn_kop_const_i(k, KN_U32, r == 1 ? 0x846ca68bu : 0x7feb352du), NULL);
    }
    h = kn_kop_alu(k, KN_KOP_XOR, KN_U32, 2, h, kn_kop_alu(k, KN_KOP_SHR, KN_U32, 2, h, kn_kop_const_i(k, KN_U32, 15), NULL), NULL);
    h = kn_kop_alu(k, KN_KOP_SHR, KN_U32, 2, h, kn_kop_const_i(k, KN_U32, 8), NULL);
    kn_kop *f = kn_kop_alu(k, KN_KOP_CAST, KN_F32, 1, h, NULL, NULL);
    k->root = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, f, kn_kop_const_f(k, KN_F32, 1.0 / 16777216.0), NULL);
    return 0;
  }
  /* GATHER: out[t, d] = table[ids[t], d] */
  kn_uop *table = x->src[0], *ids = x->src[1];
  int tb = buf_index(b, table), ib = buf_index(b, ids);
  kn_st st;
  kn_st_contiguous(&st, 2, x->shape);
  st.v[0].strides[0] = 0, st.v[0].strides[1] = 1;
  kn_kop *row = kn_kop_load(k, tb, kn_dtype_scalar(table->dtype), &st);
  kn_st_contiguous(&st, 2, x->shape);
  st.v[0].strides[0] = 1, st.v[0].strides[1] = 0;
  kn_kop *id = kn_kop_load(k, ib, KN_I32, &st);
  row->nsrc = 1, row->src[0] = id, row->gather_stride = table->shape[1];
  k->root = row->dtype == x->dtype ? row : kn_kop_alu(k, KN_KOP_CAST, x->dtype, 1, row, NULL, NULL);
  return 0;
}

static int build_item(sctx *s, kn_sched_item *it, kn_uop **need, const char **need_why) {
  kb b;
  memset(&b, 0, sizeof b);
  memset(b.varmap, -1, sizeof b.varmap);
  b.s = s, b.it = it;
  if (!(b.k = it->k = kn_kernel_new())) return -1;
  kn_uop *x = it->node;
  note_fused(it, x);
  /* the kernel is named after the tensor it realizes, without digits (blk.3.q -> blk_q: every layer shares it) */
  const char *nm = kn_uop_label(x);
  size_t o = 0;
  for (const char *p = nm; *p && o + 1 < sizeof b.k->label; p++) {
    char ch = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
    if (ch >= '0' && ch <= '9') continue;
    if (!((ch >= 'a' && ch <= 'z') || ch == '_')) ch = '_';
    if (ch == '_' && (o == 0 || b.k->label[o - 1] == '_')) continue;
    b.k->label[o++] = ch;
  }
  while (o > 0 && b.k->label[o - 1] == '_') o--;
  b.k->label[o] = 0;
  int rc = x->op == KN_OP_ARANGE || x->op == KN_OP_RAND || x->op == KN_OP_GATHER || x->op == KN_OP_ATTENTION
             ? build_special(&b, x)
             : build_expr_kernel(&b, x);
  memo *m, *tmp;
  HASH_ITER(hh, b.memo, m, tmp) {
    HASH_DEL(b.memo, m);
    free(m);
  }
  *need = b.need, *need_why = b.need_why;
  return rc;
}

void kn_schedule_free(kn_schedule *s) {
  for (int i = 0; i < s->n; i++) kn_kernel_free(s->items[i].k), free(s->items[i].fused);
  free(s->items);
  s->items = NULL, s->n = 0;
}

void kn_sched_item_print(const kn_sched_item *it, int idx, const char *entry, const char *key) {
  const kn_kernel *k = it->k;
  char sh[96];
  kn_print_shape(it->node, sh, sizeof sh);
  fprintf(stderr, "kernel #%d %s (cache key %s): realizes '%s' %s %s (node %lld) because: %s\n", idx,
          entry && *entry ? entry : "?", key && *key ? key : "-", kn_uop_label(it->node),
          kn_dtype_get(it->node->dtype)->short_name, sh, (long long)it->node->id, it->why);
  fprintf(stderr, "  space [");
  for (int i = 0; i < k->ndim; i++) fprintf(stderr, "%s%lld%s", i ? ", " : "", (long long)k->shape[i], i >= k->ndim - k->nreduce ? "r" : "");
  fprintf(stderr, "], fused %d nodes:", it->nfused);
  for (int i = 0; i < it->nfused && i < 16; i++) {
    const kn_uop *u = it->fused[i];
    fprintf(stderr, " %s", u->op == KN_OP_ALU ? kn_kop_name(u->arg.alu) : u->op == KN_OP_REDUCE ? "REDUCE" :
                           u->op == KN_OP_VIEW ? "VIEW" : u->op == KN_OP_CONST ? "CONST" : "OP");
  }
  fprintf(stderr, "%s; reads:", it->nfused > 16 ? " ..." : "");
  for (int i = 1; i < it->nbufs; i++)
    fprintf(stderr, " buf%d<-'%s' (%s)", i, kn_uop_label(it->bufs[i]), kn_dtype_name(it->bufs[i]->dtype));
  fprintf(stderr, "\n");
}

int kn_schedule_build(kn_uop **targets, int ntargets, kn_schedule *out) {
  memset(out, 0, sizeof *out);
  sctx s;
  memset(&s, 0, sizeof s);
  s.targets = targets, s.ntargets = ntargets;
  int rc = -1;
  for (int t = 0; t < ntargets; t++)
    if (!targets[t] || collect(&s, targets[t])) goto done;
  settle(&s);
  for (int attempt = 0; attempt < 64; attempt++) {
    kn_schedule_free(out);
    int n = 0;
    for (int i = 0; i < s.ntopo; i++) n += get(&s, s.topo[i])->realize;
    if (!(out->items = calloc(n ? n : 1, sizeof *out->items))) goto done;
    kn_uop *need = NULL;
    const char *why = NULL;
    for (int i = 0; i < s.ntopo && !need; i++) {
      info *in = get(&s, s.topo[i]);
      if (!in->realize) continue;
      kn_sched_item *it = &out->items[out->n++];
      it->node = in->u;
      snprintf(it->why, sizeof it->why, "%s", in->why);
      if (build_item(&s, it, &need, &why) && !need) {
        kn_graph_fail("scheduling node %lld failed", (long long)in->u->id);
        goto done;
      }
    }
    if (!need) {
      if (kn_getenv_int("GRAPH", 0) > 0) kn_graph_write_dot(out);
      rc = 0;
      goto done;
    }
    info *ni = get(&s, need);
    if (!ni || ni->realize || kn_uop_is_leaf(need)) {
      kn_graph_fail("scheduler: cannot split kernel at node %lld (%s)", (long long)need->id, why);
      goto done;
    }
    ni->forced = true;
    snprintf(ni->forced_why, sizeof ni->forced_why, "%s", why);
    settle(&s);
  }
  kn_graph_fail("scheduler did not converge");
done:
  if (rc) kn_schedule_free(out);
  info *i, *tmp;
  HASH_ITER(hh, s.map, i, tmp) {
    HASH_DEL(s.map, i);
    free(i);
  }
  free(s.topo);
  return rc;
}
