/* Movement ops: reshape, permute, expand, pad, shrink, flip. Each returns a VIEW node over the underlying
 * non-view node with the composed view chain; constants just change shape; identity views fold away. */
#include <stdlib.h>
#include <string.h>

#include "uop.h"

#define SHAPE_STR(t, name) \
  char name[128];          \
  kn_print_shape(t, name, sizeof name)

static void base_st(kn_t a, kn_t *base, kn_st *st) {
  if (a->op == KN_OP_VIEW) {
    *base = a->src[0];
    *st = *a->arg.st;
  } else {
    *base = a;
    kn_st_contiguous(st, a->ndim, a->shape);
  }
}

/* sv: the symbolic extents of the result's axes (NULL: none) */
static kn_t finish(kn_t base, kn_st *st, const int8_t *sv) {
  kn_st_simplify(st);
  int nd = kn_st_ndim(st);
  const int64_t *sh = kn_st_shape(st);
  int8_t none[KN_MAXDIM];
  memset(none, -1, sizeof none);
  if (!sv) sv = none;
  if (base->op == KN_OP_CONST && !kn_st_has_mask(st))
    return kn_uop_make_sym(KN_OP_CONST, base->dtype, nd, sh, sv, 0, NULL, &base->arg, sizeof base->arg);
  if (kn_st_is_contiguous(st) && nd == base->ndim && !memcmp(sh, base->shape, nd * sizeof *sh) &&
      (!nd || !memcmp(sv, base->symvar, nd)))
    return base;
  kn_uop *src[1] = {base};
  return kn_uop_make_sym(KN_OP_VIEW, base->dtype, nd, sh, sv, 1, src, st, sizeof *st);
}

static kn_t sym_axis_error(const char *op, kn_t a, int axis) {
  return kn_graph_fail("%s: axis %d has a symbolic extent (variable %d); only reshapes that keep it, permutes and "
                       "expands of other axes apply", op, axis, a->symvar[axis]);
}

kn_t kn_reshape(kn_t a, int ndim, const int64_t *shape) {
  if (!a) return NULL;
  if (ndim < 0 || ndim > KN_MAXDIM) return kn_graph_fail("reshape to %d dims: kiln supports 0..%d", ndim, KN_MAXDIM);
  int64_t sh[KN_MAXDIM], known = 1;
  int infer = -1;
  for (int i = 0; i < ndim; i++) {
    sh[i] = shape[i];
    if (shape[i] == -1) {
      if (infer >= 0) return kn_graph_fail("reshape: more than one -1 in the new shape");
      infer = i;
    } else if (shape[i] < 0)
      return kn_graph_fail("reshape: negative dimension %lld", (long long)shape[i]);
    else
      known *= shape[i];
  }
  int64_t n = kn_numel(a);
  if (infer >= 0) sh[infer] = known ? n / known : 0;
  if (kn_shape_numel(ndim, sh) != n) {
    SHAPE_STR(a, s);
    return kn_graph_fail("reshape: cannot reshape %s (%lld elements) to %d dims with %lld elements", s, (long long)n,
                         ndim, (long long)kn_shape_numel(ndim, sh));
  }
  if (ndim == a->ndim && !memcmp(sh, a->shape, ndim * sizeof *sh)) return a;
  int8_t sv[KN_MAXDIM];
  memset(sv, -1, sizeof sv);
  if (kn_uop_symbolic(a)) { /* symbolic axes survive only reshapes that insert or remove size-1 axes */
    int j = 0;
    for (int i = 0; i < ndim; i++) {
      if (sh[i] == 1) continue;
      while (j < a->ndim && a->shape[j] == 1) j++;
      if (j >= a->ndim || a->shape[j] != sh[i]) {
        for (int k = 0; k < a->ndim; k++)
          if (a->symvar[k] >= 0) return sym_axis_error("reshape", a, k);
      }
      sv[i] = j < a->ndim ? a->symvar[j] : -1;
      j++;
    }
  }
  kn_t base;
  kn_st st;
  base_st(a, &base, &st);
  if (kn_st_reshape(&st, ndim, sh)) return kn_graph_fail("reshape: view chain too long");
  return finish(base, &st, sv);
}

kn_t kn_permute(kn_t a, const int *order) {
  if (!a) return NULL;
  int seen = 0;
  for (int i = 0; i < a->ndim; i++) {
    if (order[i] < 0 || order[i] >= a->ndim || (seen >> order[i] & 1))
      return kn_graph_fail("permute: order is not a permutation of %d axes", a->ndim);
    seen |= 1 << order[i];
  }
  int8_t sv[KN_MAXDIM];
  memset(sv, -1, sizeof sv);
  for (int i = 0; i < a->ndim; i++) sv[i] = a->symvar[order[i]];
  kn_t base;
  kn_st st;
  base_st(a, &base, &st);
  kn_st_permute(&st, order);
  return finish(base, &st, sv);
}

kn_t kn_transpose(kn_t a, int ax0, int ax1) {
  if (!a) return NULL;
  if (ax0 < 0) ax0 += a->ndim;
  if (ax1 < 0) ax1 += a->ndim;
  if (ax0 < 0 || ax1 < 0 || ax0 >= a->ndim || ax1 >= a->ndim) return kn_graph_fail("transpose: axis out of range");
  int order[KN_MAXDIM];
  for (int i = 0; i < a->ndim; i++) order[i] = i;
  order[ax0] = ax1, order[ax1] = ax0;
  return kn_permute(a, order);
}

kn_t kn_expand(kn_t a, int ndim, const int64_t *shape) {
  if (!a) return NULL;
  if (ndim < a->ndim) return kn_graph_fail("expand: %d dims to fewer (%d)", a->ndim, ndim);
  if (ndim > a->ndim) { /* new leading axes */
    int64_t sh[KN_MAXDIM];
    for (int i = 0; i < ndim; i++) sh[i] = i < ndim - a->ndim ? 1 : a->shape[i - (ndim - a->ndim)];
    a = kn_reshape(a, ndim, sh);
    if (!a) return NULL;
  }
  for (int i = 0; i < ndim; i++)
    if (a->shape[i] != shape[i] && a->shape[i] != 1) {
      SHAPE_STR(a, s);
      return kn_graph_fail("expand: axis %d of %s has size %lld, only size-1 axes expand (to %lld)", i, s,
                           (long long)a->shape[i], (long long)shape[i]);
    }
  if (!memcmp(a->shape, shape, ndim * sizeof *shape)) return a;
  kn_t base;
  kn_st st;
  base_st(a, &base, &st);
  kn_st_expand(&st, shape);
  return finish(base, &st, a->symvar);
}

kn_t kn_pad(kn_t a, const int64_t *before, const int64_t *after) {
  if (!a) return NULL;
  for (int i = 0; i < a->ndim; i++) {
    if (before[i] < 0 || after[i] < 0) return kn_graph_fail("pad: negative padding on axis %d", i);
    if ((before[i] || after[i]) && a->symvar[i] >= 0) return sym_axis_error("pad", a, i);
  }
  kn_t base;
  kn_st st;
  base_st(a, &base, &st);
  kn_st_pad(&st, before, after);
  return finish(base, &st, a->symvar);
}

kn_t kn_shrink(kn_t a, const int64_t *begin, const int64_t *end) {
  if (!a) return NULL;
  for (int i = 0; i < a->ndim; i++)
    if (begin[i] < 0 || end[i] > a->shape[i] || begin[i] > end[i]) {
      SHAPE_STR(a, s);
      return kn_graph_fail("shrink: [%lld, %lld) is outside axis %d of %s", (long long)begin[i], (long long)end[i], i, s);
    }
  for (int i = 0; i < a->ndim; i++)
    if (a->symvar[i] >= 0 && (begin[i] || end[i] != a->shape[i])) return sym_axis_error("shrink", a, i);
  kn_t base;
  kn_st st;
  base_st(a, &base, &st);
  kn_st_shrink(&st, begin, end);
  return finish(base, &st, a->symvar);
}

kn_t kn_shrink_var(kn_t a, int axis, kn_var *start, int64_t len) {
  if (!a || !start) return a ? kn_graph_fail("shrink_var: no variable") : NULL;
  if (axis < 0) axis += a->ndim;
  if (axis < 0 || axis >= a->ndim || len < 0 || start->min < 0 || start->max + len > a->shape[axis])
    return kn_graph_fail("shrink_var: [%s, %s+%lld) with %s <= %lld does not fit axis %d (size %lld)", start->name,
                         start->name, (long long)len, start->name, (long long)start->max, axis,
                         (long long)(axis >= 0 && axis < a->ndim ? a->shape[axis] : -1));
  if (a->symvar[axis] >= 0) return sym_axis_error("shrink_var", a, axis);
  kn_t base;
  kn_st st;
  base_st(a, &base, &st);
  kn_st_shrink_var(&st, axis, start->id, len);
  return finish(base, &st, a->symvar);
}

kn_t kn_shrink_sym(kn_t a, int axis, kn_var *len) {
  if (!a || !len) return a ? kn_graph_fail("shrink_sym: no variable") : NULL;
  if (axis < 0) axis += a->ndim;
  if (axis < 0 || axis >= a->ndim || len->min < 1 || len->max > a->shape[axis])
    return kn_graph_fail("shrink_sym: %s in [%lld, %lld] does not fit axis %d (size %lld); the length must be >= 1",
                         len->name, (long long)len->min, (long long)len->max, axis,
                         (long long)(axis >= 0 && axis < a->ndim ? a->shape[axis] : -1));
  if (a->symvar[axis] >= 0) return sym_axis_error("shrink_sym", a, axis);
  int64_t b[KN_MAXDIM] = {0}, e[KN_MAXDIM];
  memcpy(e, a->shape, sizeof e);
  e[axis] = len->max;
  kn_t base;
  kn_st st;
  base_st(a, &base, &st);
  kn_st_shrink(&st, b, e);
  int8_t sv[KN_MAXDIM];
  memcpy(sv, a->symvar, sizeof sv);
  sv[axis] = (int8_t)len->id;
  return finish(base, &st, sv);
}

kn_t kn_flip(kn_t a, int axis) {
  if (!a) return NULL;
  if (axis < 0) axis += a->ndim;
  if (axis < 0 || axis >= a->ndim) return kn_graph_fail("flip: axis out of range");
  if (a->symvar[axis] >= 0) return sym_axis_error("flip", a, axis);
  kn_t base;
  kn_st st;
  base_st(a, &base, &st);
  kn_st_flip(&st, axis);
  return finish(base, &st, a->symvar);
}

kn_t kn_unsqueeze(kn_t a, int axis) {
  if (!a) return NULL;
  if (axis < 0) axis += a->ndim + 1;
  if (axis < 0 || axis > a->ndim) return kn_graph_fail("unsqueeze: axis out of range");
  int64_t sh[KN_MAXDIM];
  for (int i = 0, j = 0; i <= a->ndim; i++) sh[i] = i == axis ? 1 : a->shape[j++];
  return kn_reshape(a, a->ndim + 1, sh);
}

kn_t kn_squeeze(kn_t a, int axis) {
  if (!a) return NULL;
  if (axis < 0) axis += a->ndim;
  if (axis < 0 || axis >= a->ndim || a->shape[axis] != 1) return kn_graph_fail("squeeze: axis %d is not of size 1", axis);
  int64_t sh[KN_MAXDIM];
  for (int i = 0, j = 0; i < a->ndim; i++)
    if (i != axis) sh[j++] = a->shape[i];
  return kn_reshape(a, a->ndim - 1, sh);
}
