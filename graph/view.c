/* View algebra: movement ops (reshape, permute, expand, pad, shrink, flip) act on a chain of strided views and
 * never copy. Each op rewrites the top view in place when it can; a reshape that no single view can express
 * pushes a new view, and adjacent views are merged back whenever the index mapping allows. */
#include <stdlib.h>
#include <string.h>

#include "uop.h"

static void view_contiguous(kn_view *v, int ndim, const int64_t *shape) {
  memset(v, 0, sizeof *v);
  v->ndim = ndim;
  v->offset.v = -1;
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    v->shape[i] = shape[i];
    v->strides[i] = shape[i] == 1 ? 0 : s;
    s *= shape[i];
  }
}

void kn_st_contiguous(kn_st *st, int ndim, const int64_t *shape) {
  memset(st, 0, sizeof *st);
  st->nviews = 1;
  view_contiguous(&st->v[0], ndim, shape);
}

const int64_t *kn_st_shape(const kn_st *st) { return st->v[st->nviews - 1].shape; }
int kn_st_ndim(const kn_st *st) { return st->v[st->nviews - 1].ndim; }

/* Row-major strides of v's shape with size-1 axes given stride 0, offset 0, no mask. */
static bool view_is_contiguous(const kn_view *v) {
  if (v->masked || v->offset.c || (v->offset.v >= 0 && v->offset.k)) return false;
  int64_t s = 1;
  for (int i = v->ndim - 1; i >= 0; i--) {
    if (v->shape[i] != 1 && v->strides[i] != s) return false;
    s *= v->shape[i];
  }
  return true;
}

bool kn_st_is_contiguous(const kn_st *st) { return st->nviews == 1 && view_is_contiguous(&st->v[0]); }

bool kn_st_has_mask(const kn_st *st) {
  for (int i = 0; i < st->nviews; i++)
    if (st->v[i].masked) return true;
  return false;
}

/* Canonical form: size-1 axes have stride 0; a mask that covers everything is dropped; an empty mask is kept as
 * [0,0) on every axis so equal views compare equal. */
static void view_canon(kn_view *v) {
  bool all = true, empty = false;
  for (int i = 0; i < v->ndim; i++) {
    if (v->shape[i] == 1) v->strides[i] = 0;
    if (!v->masked) continue;
    if (v->mask_lo[i] < 0) v->mask_lo[i] = 0;
    if (v->mask_hi[i] > v->shape[i]) v->mask_hi[i] = v->shape[i];
    if (v->mask_hi[i] <= v->mask_lo[i]) empty = true;
    if (v->mask_lo[i] != 0 || v->mask_hi[i] != v->shape[i]) all = false;
  }
  if (v->masked && empty)
    for (int i = 0; i < v->ndim; i++) v->mask_lo[i] = v->mask_hi[i] = 0;
  else if (v->masked && all)
    v->masked = false;
  if (!v->masked) memset(v->mask_lo, 0, sizeof v->mask_lo), memset(v->mask_hi, 0, sizeof v->mask_hi);
  for (int i = v->ndim; i < KN_MAXDIM; i++) v->shape[i] = v->strides[i] = 0;
  if (v->offset.v < 0 || v->offset.k == 0) v->offset.v = -1, v->offset.k = 0;
}

static void ensure_mask(kn_view *v) {
  if (v->masked) return;
  v->masked = true;
  for (int i = 0; i < v->ndim; i++) v->mask_lo[i] = 0, v->mask_hi[i] = v->shape[i];
}

/* Merge top onto bottom into one view when the index mapping is expressible; true on success. */
static bool merge(kn_view *out, const kn_view *b, const kn_view *t) {
  /* bottom is a plain linear layout: top addresses it directly */
  bool b_linear = !b->masked;
  int64_t s = 1;
  for (int i = b->ndim - 1; i >= 0 && b_linear; i--) {
    if (b->shape[i] != 1 && b->strides[i] != s) b_linear = false;
    s *= b->shape[i];
  }
  if (b_linear) {
    if (b->offset.v >= 0 && t->offset.v >= 0 && b->offset.v != t->offset.v) return false;
    *out = *t;
    out->offset.c += b->offset.c;
    if (b->offset.v >= 0) out->offset.v = b->offset.v, out->offset.k += b->offset.k;
    view_canon(out);
    return true;
  }
  if (t->offset.v >= 0 && t->offset.k) return false; /* a symbolic offset cannot be unravelled */
  /* each top axis walks one bottom axis (a multiple of its contiguous stride), forward or backward (a flip): the
   * bottom index is the offset's unravelled index plus those walks, valid when every axis stays inside its extent */
  int64_t cs[KN_MAXDIM], o[KN_MAXDIM], used[KN_MAXDIM], back[KN_MAXDIM];
  int nb = b->ndim;
  s = 1;
  for (int i = nb - 1; i >= 0; i--) cs[i] = s, s *= b->shape[i];
  if (t->offset.c < 0 || t->offset.c >= (s ? s : 1)) return false;
  int64_t rem = t->offset.c;
  for (int i = 0; i < nb; i++) o[i] = rem / cs[i], rem %= cs[i], used[i] = back[i] = 0;
  kn_view r;
  memset(&r, 0, sizeof r);
  r.ndim = t->ndim;
  r.offset = b->offset;
  int map[KN_MAXDIM];
  int64_t ratio[KN_MAXDIM];
  for (int j = 0; j < t->ndim; j++) {
    r.shape[j] = t->shape[j];
    map[j] = -1, ratio[j] = 0;
    if (t->shape[j] == 1 || t->strides[j] == 0) continue;
    int64_t sj = t->strides[j] < 0 ? -t->strides[j] : t->strides[j];
    int i = -1;
    for (int a = 0; a < nb; a++)
      if (b->shape[a] > 1 && cs[a] <= sj) { i = a; break; }
    if (i < 0 || sj % cs[i]) return false;
    map[j] = i, ratio[j] = t->strides[j] / cs[i];
    if (ratio[j] > 0) used[i] += ratio[j] * (t->shape[j] - 1);
    else back[i] -= ratio[j] * (t->shape[j] - 1);
    r.strides[j] = ratio[j] * b->strides[i];
  }
  for (int i = 0; i < nb; i++) {
    if (o[i] < back[i]) return false;
    if (o[i] + used[i] >= b->shape[i] && b->shape[i] > 0 && (used[i] || o[i] >= b->shape[i])) return false;
    r.offset.c += o[i] * b->strides[i];
  }
  if (t->masked) {
    r.masked = true;
    memcpy(r.mask_lo, t->mask_lo, sizeof r.mask_lo);
    memcpy(r.mask_hi, t->mask_hi, sizeof r.mask_hi);
  }
  if (b->masked) {
    for (int i = 0; i < nb; i++) {
      if (b->mask_lo[i] == 0 && b->mask_hi[i] == b->shape[i]) continue;
      int nmap = 0, jj = -1;
      for (int j = 0; j < t->ndim; j++)
        if (map[j] == i) nmap++, jj = j;
      if (nmap == 0) {
        if (o[i] < b->mask_lo[i] || o[i] >= b->mask_hi[i]) { /* the whole view is padding */
          ensure_mask(&r);
          for (int j = 0; j < r.ndim; j++) r.mask_lo[j] = r.mask_hi[j] = 0;
        }
        continue;
      }
      if (nmap > 1 || ratio[jj] != 1) return false;
      ensure_mask(&r);
      int64_t lo = b->mask_lo[i] - o[i], hi = b->mask_hi[i] - o[i];
      if (lo > r.mask_lo[jj]) r.mask_lo[jj] = lo;
      if (hi < r.mask_hi[jj]) r.mask_hi[jj] = hi;
    }
  }
  view_canon(&r);
  *out = r;
  return true;
}

void kn_st_simplify(kn_st *st) {
  for (int i = 0; i < st->nviews; i++) view_canon(&st->v[i]);
  while (st->nviews > 1) {
    kn_view m;
    /* a contiguous top view of the same shape as the one below adds nothing */
    kn_view *t = &st->v[st->nviews - 1], *b = &st->v[st->nviews - 2];
    if (view_is_contiguous(t) && t->ndim == b->ndim && !memcmp(t->shape, b->shape, sizeof t->shape)) {
      st->nviews--;
      continue;
    }
    if (!merge(&m, b, t)) break;
    st->v[st->nviews - 2] = m;
    st->nviews--;
  }
}

int kn_st_reshape(kn_st *st, int ndim, const int64_t *shape) {
  kn_view *t = &st->v[st->nviews - 1];
  /* fast path: only size-1 axes inserted or removed, no mask on non-1 axes changes meaning */
  int64_t ns[KN_MAXDIM], nst[KN_MAXDIM], nlo[KN_MAXDIM], nhi[KN_MAXDIM];
  int j = 0, ok = 1;
  for (int i = 0; i < ndim && ok; i++) {
    if (shape[i] == 1) {
      ns[i] = 1, nst[i] = 0, nlo[i] = 0, nhi[i] = 1;
      continue;
    }
    while (j < t->ndim && t->shape[j] == 1) {
      if (t->masked && t->mask_hi[j] <= t->mask_lo[j]) ok = 0;
      j++;
    }
    if (j >= t->ndim || t->shape[j] != shape[i]) { ok = 0; break; }
    ns[i] = shape[i], nst[i] = t->strides[j], nlo[i] = t->mask_lo[j], nhi[i] = t->mask_hi[j];
    j++;
  }
  while (ok && j < t->ndim) {
    if (t->shape[j] != 1 || (t->masked && t->mask_hi[j] <= t->mask_lo[j])) ok = 0;
    j++;
  }
  if (ok) {
    t->ndim = ndim;
    memcpy(t->shape, ns, ndim * sizeof *ns);
    memcpy(t->strides, nst, ndim * sizeof *nst);
    if (t->masked) memcpy(t->mask_lo, nlo, ndim * sizeof *nlo), memcpy(t->mask_hi, nhi, ndim * sizeof *nhi);
    view_canon(t);
    return 0;
  }
  if (st->nviews >= KN_MAXVIEWS) return -1;
  view_contiguous(&st->v[st->nviews++], ndim, shape);
  kn_st_simplify(st);
  return 0;
}

void kn_st_permute(kn_st *st, const int *order) {
  kn_view *t = &st->v[st->nviews - 1], o = *t;
  for (int i = 0; i < t->ndim; i++) {
    t->shape[i] = o.shape[order[i]];
    t->strides[i] = o.strides[order[i]];
    t->mask_lo[i] = o.mask_lo[order[i]];
    t->mask_hi[i] = o.mask_hi[order[i]];
  }
}

void kn_st_expand(kn_st *st, const int64_t *shape) {
  kn_view *t = &st->v[st->nviews - 1];
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] == shape[i]) continue;
    t->shape[i] = shape[i];
    t->strides[i] = 0;
    if (t->masked) t->mask_hi[i] = t->mask_hi[i] > t->mask_lo[i] ? shape[i] : 0, t->mask_lo[i] = 0;
  }
  view_canon(t);
}

void kn_st_pad(kn_st *st, const int64_t *before, const int64_t *after) {
  kn_view *t = &st->v[st->nviews - 1];
  bool any = false;
  for (int i = 0; i < t->ndim; i++) any |= before[i] || after[i];
  if (!any) return;
  ensure_mask(t);
  for (int i = 0; i < t->ndim; i++) {
    t->offset.c -= before[i] * t->strides[i];
    t->mask_lo[i] += before[i];
    t->mask_hi[i] += before[i];
    t->shape[i] += before[i] + after[i];
  }
  view_canon(t);
}

void kn_st_shrink(kn_st *st, const int64_t *begin, const int64_t *end) {
  kn_view *t = &st->v[st->nviews - 1];
  for (int i = 0; i < t->ndim; i++) {
    t->offset.c += begin[i] * t->strides[i];
    t->shape[i] = end[i] - begin[i];
    if (t->masked) t->mask_lo[i] -= begin[i], t->mask_hi[i] -= begin[i];
  }
  view_canon(t);
}

void kn_st_shrink_var(kn_st *st, int axis, int var, int64_t len) {
  kn_view *t = &st->v[st->nviews - 1];
  if ((t->masked || (t->offset.v >= 0 && t->offset.v != var)) && st->nviews < KN_MAXVIEWS) {
    /* a symbolic shift of a mask is not representable: address the masked view through a fresh one */
    int nd = t->ndim;
    int64_t sh[KN_MAXDIM];
    memcpy(sh, t->shape, sizeof sh);
    view_contiguous(&st->v[st->nviews++], nd, sh);
    t = &st->v[st->nviews - 1];
  }
  t->offset.v = var;
  t->offset.k += t->strides[axis];
  t->shape[axis] = len;
  view_canon(t);
}

void kn_st_flip(kn_st *st, int axis) {
  kn_view *t = &st->v[st->nviews - 1];
  int64_t n = t->shape[axis];
  t->offset.c += (n - 1) * t->strides[axis];
  t->strides[axis] = -t->strides[axis];
  if (t->masked) {
    int64_t lo = t->mask_lo[axis], hi = t->mask_hi[axis];
    t->mask_lo[axis] = n - hi, t->mask_hi[axis] = n - lo;
  }
  view_canon(t);
}

int kn_st_compose(kn_st *out, const kn_st *bottom, const kn_st *top) {
  if (bottom->nviews + top->nviews > KN_MAXVIEWS) {
    /* simplify a copy of the concatenation step by step so short results still fit */
    kn_st tmp = *bottom;
    for (int i = 0; i < top->nviews; i++) {
      if (tmp.nviews >= KN_MAXVIEWS) return -1;
      tmp.v[tmp.nviews++] = top->v[i];
      kn_st_simplify(&tmp);
    }
    *out = tmp;
    return 0;
  }
  kn_st r = *bottom;
  for (int i = 0; i < top->nviews; i++) r.v[r.nviews++] = top->v[i];
  kn_st_simplify(&r);
  *out = r;
  return 0;
}

bool kn_st_equal(const kn_st *a, const kn_st *b) {
  if (a->nviews != b->nviews) return false;
  for (int i = 0; i < a->nviews; i++) {
    const kn_view *x = &a->v[i], *y = &b->v[i];
    if (x->ndim != y->ndim || x->masked != y->masked || memcmp(&x->offset, &y->offset, sizeof x->offset)) return false;
    if (memcmp(x->shape, y->shape, x->ndim * 8) || memcmp(x->strides, y->strides, x->ndim * 8)) return false;
    if (x->masked && (memcmp(x->mask_lo, y->mask_lo, x->ndim * 8) || memcmp(x->mask_hi, y->mask_hi, x->ndim * 8)))
      return false;
  }
  return true;
}

int64_t kn_st_extent(const kn_st *st, const kn_var *const *vars) {
  const kn_view *v = &st->v[0];
  int64_t off = v->offset.c;
  if (v->offset.v >= 0 && vars && vars[v->offset.v]) off += v->offset.k * vars[v->offset.v]->max;
  int64_t hi = off;
  for (int i = 0; i < v->ndim; i++)
    if (v->strides[i] > 0) hi += v->strides[i] * (v->shape[i] - 1);
  return hi + 1;
}
