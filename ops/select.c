/* Picking positions along an axis from graph primitives: argmax (the first index of the largest value) and top-k
 * (the k largest values of the last axis with their indices, largest first). Both are reductions over the axis that
 * fuse their comparisons; top-k is k argmax passes, each excluding the positions already taken. */
#include <math.h>

#include "ops.h"

static int norm_axis(kn_t x, int axis, const char *op) {
  int nd = kn_ndim(x);
  if (axis < 0) axis += nd;
  if (axis < 0 || axis >= nd) return kn_fail("%s: axis %d of a %d-d tensor", op, axis, nd), -1;
  if (kn_dim(x, axis) < 1) return kn_fail("%s: axis %d is empty", op, axis), -1;
  return axis;
}

/* n, n-1, ..., 1 along axis (int32), shaped to broadcast against x: the first position of a tie has the largest */
static kn_t countdown(kn_t x, int axis) {
  int nd = kn_ndim(x);
  int64_t n = kn_dim(x, axis), shape[KN_MAXDIM];
  for (int d = 0; d < nd; d++) shape[d] = d == axis ? n : 1;
  return kn_reshape(kn_sub(kn_scalar(KN_I32, (double)n), kn_arange(n, KN_I32)), nd, shape);
}

/* the first index along axis where x equals its max m (m broadcast against x); where `taken` (bool, may be NULL)
 * marks positions that do not count */
static kn_t first_of_max(kn_t x, kn_t m, kn_t taken, int axis, bool keepdim) {
  kn_t hit = kn_eq(x, m);
  if (taken) hit = kn_and(hit, kn_not(taken));
  kn_t down = countdown(x, axis);
  kn_t best = kn_max(kn_where(hit, down, kn_scalar(KN_I32, 0)), 1, &axis, keepdim);
  return kn_sub(kn_scalar(KN_I32, (double)kn_dim(x, axis)), best);
}

kn_t kn_argmax(kn_t x, int axis, bool keepdim) {
  if (!x) return NULL;
  if (kn_ndim(x) > KN_MAXDIM) return kn_fail("argmax: %d axes (at most %d)", kn_ndim(x), KN_MAXDIM);
  if ((axis = norm_axis(x, axis, "argmax")) < 0) return NULL;
  return first_of_max(x, kn_max(x, 1, &axis, true), NULL, axis, keepdim);
}

int kn_topk(kn_t x, int k, kn_t *values, kn_t *indices) {
  *values = *indices = NULL;
  if (!x) return -1;
  if (kn_ndim(x) > KN_MAXDIM) return kn_fail("topk: %d axes (at most %d)", kn_ndim(x), KN_MAXDIM), -1;
  int axis = norm_axis(x, -1, "topk");
  if (axis < 0) return -1;
  int64_t n = kn_dim(x, axis);
  if (k < 1 || k > n || k > 256)
    return kn_fail("topk: k = %d for a last axis of %lld (1 <= k <= min(n, 256))", k, (long long)n), -1;
  if (kn_dtype_of(x) != KN_F32) x = kn_cast(x, KN_F32); /* values are compared as float32 */
  /* taken marks the positions picked so far, so a value equal to an earlier pick (or -inf) is still found once */
  kn_t vals[256], idxs[256], taken = NULL;
  int64_t shape[KN_MAXDIM];
  for (int d = 0; d < kn_ndim(x); d++) shape[d] = d == axis ? n : 1;
  kn_t pos = kn_reshape(kn_arange(n, KN_I32), kn_ndim(x), shape), lowest = kn_scalar(KN_F32, -INFINITY);
  for (int i = 0; i < k; i++) {
    kn_t rest = taken ? kn_where(taken, lowest, x) : x;
    kn_t m = kn_max(rest, 1, &axis, true);
    kn_t at = first_of_max(x, m, taken, axis, true);
    vals[i] = m, idxs[i] = at;
    if (i + 1 < k) {
      kn_t pick = kn_eq(pos, at);
      taken = kn_contiguous(taken ? kn_or(taken, pick) : pick);
    }
  }
  *values = kn_concat(vals, k, axis);
  *indices = kn_concat(idxs, k, axis);
  return *values && *indices ? 0 : -1;
}
