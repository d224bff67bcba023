/* The view algebra on its own: random chains of movement ops applied to a view chain, evaluated index by index
 * (the way codegen indexes a buffer) and compared with the same ops applied to an explicit index table; checks
 * that merging keeps chains short where one view suffices. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/uop.h"

static int passed, failed;
static uint64_t rng = 88172645463325252ull;
static int64_t irand(int64_t lo, int64_t hi) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return lo + (int64_t)(rng % (uint64_t)(hi - lo + 1));
}

/* Element offset of index i (row-major over the chain's shape) or -1 when masked: codegen's semantics. */
static int64_t st_eval(const kn_st *st, int64_t lin, int64_t var) {
  for (int vi = st->nviews - 1; vi >= 0; vi--) {
    const kn_view *v = &st->v[vi];
    int64_t idx[KN_MAXDIM], off = v->offset.c + (v->offset.v >= 0 ? v->offset.k * var : 0);
    for (int d = v->ndim - 1; d >= 0; d--) idx[d] = v->shape[d] ? lin % v->shape[d] : 0, lin = v->shape[d] ? lin / v->shape[d] : 0;
    for (int d = 0; d < v->ndim; d++) {
      if (v->masked && (idx[d] < v->mask_lo[d] || idx[d] >= v->mask_hi[d])) return -1;
      off += idx[d] * v->strides[d];
    }
    lin = off;
  }
  return lin;
}

static void unravel(int64_t i, int nd, const int64_t *sh, int64_t *idx) {
  for (int d = nd - 1; d >= 0; d--) idx[d] = i % sh[d], i /= sh[d];
}
static int64_t ravel(int nd, const int64_t *sh, const int64_t *idx) {
  int64_t o = 0;
  for (int d = 0; d < nd; d++) o = o * sh[d] + idx[d];
  return o;
}

typedef struct {
  int nd;
  int64_t sh[KN_MAXDIM];
  int64_t *map;
} table;

static void step(kn_st *st, table *t) {
  int kind = (int)irand(0, 5), nd = t->nd;
  int64_t n = kn_shape_numel(nd, t->sh), idx[KN_MAXDIM], j[KN_MAXDIM];
  table o = {nd, {0}, NULL};
  memcpy(o.sh, t->sh, sizeof o.sh);
  if (kind == 0) {
    int64_t ns[KN_MAXDIM];
    int nn = 0;
    for (int i = 0; i < nd; i++) {
      if (t->sh[i] % 2 == 0 && t->sh[i] > 2 && nn < 6 && irand(0, 1)) ns[nn++] = 2, ns[nn++] = t->sh[i] / 2;
      else if (i + 1 < nd && irand(0, 1)) ns[nn++] = t->sh[i] * t->sh[i + 1], i++;
      else ns[nn++] = t->sh[i];
    }
    o.nd = nn;
    memcpy(o.sh, ns, sizeof ns);
    o.map = malloc(n * 8);
    memcpy(o.map, t->map, n * 8);
    kn_st_reshape(st, nn, ns);
  } else if (kind == 1) {
    int order[KN_MAXDIM];
    for (int i = 0; i < nd; i++) order[i] = i;
    for (int i = nd - 1; i > 0; i--) {
      int k = (int)irand(0, i), x = order[i];
      order[i] = order[k], order[k] = x;
    }
    for (int i = 0; i < nd; i++) o.sh[i] = t->sh[order[i]];
    o.map = malloc(n * 8);
    for (int64_t i = 0; i < n; i++) {
      unravel(i, nd, o.sh, idx);
      for (int d = 0; d < nd; d++) j[order[d]] = idx[d];
      o.map[i] = t->map[ravel(nd, t->sh, j)];
    }
    kn_st_permute(st, order);
  } else if (kind == 2) {
    int64_t b[KN_MAXDIM], a[KN_MAXDIM];
    for (int i = 0; i < nd; i++) b[i] = irand(0, 1), a[i] = irand(0, 1), o.sh[i] = t->sh[i] + b[i] + a[i];
    int64_t m = kn_shape_numel(nd, o.sh);
    o.map = malloc(m * 8);
    for (int64_t i = 0; i < m; i++) {
      unravel(i, nd, o.sh, idx);
      bool in = true;
      for (int d = 0; d < nd; d++) j[d] = idx[d] - b[d], in &= j[d] >= 0 && j[d] < t->sh[d];
      o.map[i] = in ? t->map[ravel(nd, t->sh, j)] : -1;
    }
    kn_st_pad(st, b, a);
  } else if (kind == 3) {
    int64_t b[KN_MAXDIM], e[KN_MAXDIM];
    for (int i = 0; i < nd; i++) b[i] = irand(0, (t->sh[i] - 1) / 2), e[i] = irand(b[i] + 1, t->sh[i]), o.sh[i] = e[i] - b[i];
    int64_t m = kn_shape_numel(nd, o.sh);
    o.map = malloc(m * 8);
    for (int64_t i = 0; i < m; i++) {
      unravel(i, nd, o.sh, idx);
      for (int d = 0; d < nd; d++) j[d] = idx[d] + b[d];
      o.map[i] = t->map[ravel(nd, t->sh, j)];
    }
    kn_st_shrink(st, b, e);
  } else if (kind == 4) {
    int ax = (int)irand(0, nd - 1);
    o.map = malloc(n * 8);
    for (int64_t i = 0; i < n; i++) {
      unravel(i, nd, o.sh, idx);
      memcpy(j, idx, sizeof j);
      j[ax] = t->sh[ax] - 1 - idx[ax];
      o.map[i] = t->map[ravel(nd, t->sh, j)];
    }
    kn_st_flip(st, ax);
  } else {
    int ax = (int)irand(0, nd - 1);
    if (t->sh[ax] != 1) { /* make it size 1 by shrinking, then expand */
      int64_t b[KN_MAXDIM] = {0}, e[KN_MAXDIM];
      memcpy(e, t->sh, sizeof e);
      b[ax] = irand(0, t->sh[ax] - 1), e[ax] = b[ax] + 1;
      kn_st_shrink(st, b, e);
      for (int d = 0; d < nd; d++) o.sh[d] = e[d] - b[d];
      table tmp = {nd, {0}, NULL};
      memcpy(tmp.sh, o.sh, sizeof tmp.sh);
      int64_t m = kn_shape_numel(nd, o.sh);
      tmp.map = malloc(m * 8);
      for (int64_t i = 0; i < m; i++) {
        unravel(i, nd, o.sh, idx);
        for (int d = 0; d < nd; d++) j[d] = idx[d] + b[d];
        tmp.map[i] = t->map[ravel(nd, t->sh, j)];
      }
      free(t->map);
      *t = tmp;
    }
    int64_t es[KN_MAXDIM];
    memcpy(es, t->sh, sizeof es);
    es[ax] = irand(2, 3);
    memcpy(o.sh, es, sizeof es);
    int64_t m = kn_shape_numel(nd, es);
    o.map = malloc(m * 8);
    for (int64_t i = 0; i < m; i++) {
      unravel(i, nd, es, idx);
      idx[ax] = 0;
      o.map[i] = t->map[ravel(nd, t->sh, idx)];
    }
    kn_st_expand(st, es);
  }
  free(t->map);
  *t = o;
}

int main(void) {
  for (int rep = 0; rep < 400; rep++) {
    int nd = (int)irand(1, 4);
    int64_t sh[KN_MAXDIM];
    for (int i = 0; i < nd; i++) sh[i] = irand(1, 6);
    kn_st st;
    kn_st_contiguous(&st, nd, sh);
    table t = {nd, {0}, NULL};
    memcpy(t.sh, sh, sizeof sh);
    int64_t n = kn_shape_numel(nd, sh);
    t.map = malloc(n * 8);
    for (int64_t i = 0; i < n; i++) t.map[i] = i;
    int steps = (int)irand(1, 6);
    for (int s = 0; s < steps; s++) step(&st, &t);
    int64_t m = kn_shape_numel(t.nd, t.sh);
    bool ok = kn_st_ndim(&st) == t.nd && !memcmp(kn_st_shape(&st), t.sh, t.nd * 8);
    int64_t bad = -1;
    for (int64_t i = 0; ok && i < m; i++)
      if (st_eval(&st, i, 0) != t.map[i]) ok = false, bad = i;
    if (ok) passed++;
    else {
      failed++;
      printf("FAIL chain %d (%d steps, %d views): index %lld -> %lld, want %lld\n", rep, steps, st.nviews, (long long)bad,
             bad >= 0 ? (long long)st_eval(&st, bad, 0) : -2LL, bad >= 0 ? (long long)t.map[bad] : -2LL);
    }
    free(t.map);
  }
  /* composing (the scheduler inlining a view of a view): a random chain on top of another random chain, evaluated
   * through the composition, equals evaluating the top chain and then the bottom one */
  for (int rep = 0; rep < 400; rep++) {
    kn_st chain[2];
    table tb[2];
    for (int c = 0; c < 2; c++) {
      int nd = c ? kn_st_ndim(&chain[0]) : (int)irand(1, 4);
      int64_t sh[KN_MAXDIM];
      for (int i = 0; i < nd; i++) sh[i] = c ? kn_st_shape(&chain[0])[i] : irand(1, 6);
      kn_st_contiguous(&chain[c], nd, sh);
      tb[c] = (table){nd, {0}, NULL};
      memcpy(tb[c].sh, sh, sizeof sh);
      int64_t n = kn_shape_numel(nd, sh);
      tb[c].map = malloc(n * 8);
      for (int64_t i = 0; i < n; i++) tb[c].map[i] = i;
      for (int s = (int)irand(1, 4); s > 0; s--) step(&chain[c], &tb[c]);
    }
    kn_st both;
    int64_t m = kn_shape_numel(tb[1].nd, tb[1].sh), bad = -1, want = -2;
    bool ok = !kn_st_compose(&both, &chain[0], &chain[1]);
    for (int64_t i = 0; ok && i < m; i++) {
      int64_t mid = st_eval(&chain[1], i, 0);
      want = mid < 0 ? -1 : st_eval(&chain[0], mid, 0);
      if (st_eval(&both, i, 0) != want) ok = false, bad = i;
    }
    if (ok) passed++;
    else failed++, printf("FAIL composition %d (%d views): index %lld -> %lld, want %lld\n", rep, both.nviews,
                          (long long)bad, bad >= 0 ? (long long)st_eval(&both, bad, 0) : -2LL, (long long)want);
    free(tb[0].map), free(tb[1].map);
  }
  /* a flip over a broadcast composes into one view (RoPE's pair swap of a decode row's activations, read inside the
   * projection: one view lets codegen vectorize the reduce as it does without the swap) */
  kn_st bottom, top, flat;
  kn_st_contiguous(&bottom, 2, (int64_t[]){1, 8});
  kn_st_reshape(&bottom, 3, (int64_t[]){1, 1, 8});
  kn_st_expand(&bottom, (int64_t[]){1, 6, 8});
  kn_st_contiguous(&top, 2, (int64_t[]){6, 8});
  kn_st_reshape(&top, 3, (int64_t[]){3, 2, 8});
  kn_st_flip(&top, 1);
  kn_st_reshape(&top, 4, (int64_t[]){1, 3, 2, 8});
  if (!kn_st_compose(&flat, &bottom, &top) && flat.nviews == 1) passed++;
  else failed++, printf("FAIL a flip over a broadcast should compose into one view (got %d)\n", flat.nviews);
  /* merging: permute + reshape that one view can express stays one view; a transpose then merge needs two */
  kn_st st;
  kn_st_contiguous(&st, 3, (int64_t[]){4, 6, 8});
  kn_st_permute(&st, (int[]){0, 2, 1});
  kn_st_reshape(&st, 4, (int64_t[]){4, 2, 4, 6});
  if (st.nviews == 1) passed++;
  else failed++, printf("FAIL split of a permuted axis should stay one view (got %d)\n", st.nviews);
  kn_st_contiguous(&st, 2, (int64_t[]){4, 6});
  kn_st_permute(&st, (int[]){1, 0});
  kn_st_reshape(&st, 1, (int64_t[]){24});
  if (st.nviews == 2) passed++;
  else failed++, printf("FAIL flattening a transpose needs two views (got %d)\n", st.nviews);
  /* symbolic offsets: a window [start, start+3) of rows */
  kn_st_contiguous(&st, 2, (int64_t[]){10, 4});
  kn_st_shrink_var(&st, 0, 0, 3);
  bool ok = true;
  for (int64_t v = 0; v <= 7; v++)
    for (int64_t i = 0; i < 12; i++) ok &= st_eval(&st, i, v) == v * 4 + i;
  if (ok) passed++;
  else failed++, printf("FAIL symbolic shrink\n");
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
