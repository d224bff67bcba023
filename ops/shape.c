/* Joining and cutting tensors along an axis, from views: concat pads each part into place and adds (the padding is
 * a masked load, so the result fuses into its consumer), split is a shrink per part. */
#include "ops.h"

kn_t kn_concat(const kn_t *parts, int n, int axis) {
  if (n < 1 || !parts[0]) return n < 1 ? kn_fail("concat: no tensors") : NULL;
  int nd = kn_ndim(parts[0]);
  if (axis < 0) axis += nd;
  if (axis < 0 || axis >= nd) return kn_fail("concat: axis %d of a %d-d tensor", axis, nd);
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    if (!parts[i]) return NULL;
    if (kn_ndim(parts[i]) != nd) return kn_fail("concat: part %d has %d axes, part 0 has %d", i, kn_ndim(parts[i]), nd);
    for (int d = 0; d < nd; d++)
      if (d != axis && kn_dim(parts[i], d) != kn_dim(parts[0], d))
        return kn_fail("concat: part %d differs from part 0 on axis %d (%lld vs %lld)", i, d,
                       (long long)kn_dim(parts[i], d), (long long)kn_dim(parts[0], d));
    total += kn_dim(parts[i], axis);
  }
  kn_t out = NULL;
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    int64_t before[KN_MAXDIM] = {0}, after[KN_MAXDIM] = {0};
    before[axis] = at, after[axis] = total - at - kn_dim(parts[i], axis);
    kn_t p = kn_pad(parts[i], before, after);
    out = out ? kn_add(out, p) : p;
    at += kn_dim(parts[i], axis);
  }
  return out;
}

kn_t kn_stack(const kn_t *parts, int n, int axis) {
  kn_t u[64];
  if (n > 64) return kn_fail("stack: at most 64 tensors");
  for (int i = 0; i < n; i++) u[i] = kn_unsqueeze(parts[i], axis);
  return kn_concat(u, n, axis);
}

int kn_split(kn_t x, int axis, const int64_t *sizes, int n, kn_t *out) {
  if (!x) return -1;
  int nd = kn_ndim(x);
  if (axis < 0) axis += nd;
  if (axis < 0 || axis >= nd) return kn_fail("split: axis %d of a %d-d tensor", axis, nd), -1;
  int64_t sum = 0;
  for (int i = 0; i < n; i++) sum += sizes[i];
  if (sum != kn_dim(x, axis))
    return kn_fail("split: sizes add up to %lld, axis %d has %lld", (long long)sum, axis, (long long)kn_dim(x, axis)), -1;
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    int64_t b[KN_MAXDIM] = {0}, e[KN_MAXDIM];
    for (int d = 0; d < nd; d++) e[d] = kn_dim(x, d);
    b[axis] = at, e[axis] = at + sizes[i];
    out[i] = kn_shrink(x, b, e);
    at += sizes[i];
  }
  return 0;
}
