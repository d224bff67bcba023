/* Running sums along an axis from graph primitives: each output position sums the inputs at or before it, as one
 * reduction over a lower-triangular mask (n * n work for an axis of n, in one kernel; meant for the lengths models
 * use, such as a row of probabilities for top-p or a sequence of positions). */
#include "ops.h"

kn_t kn_cumsum(kn_t x, int axis) {
  if (!x) return NULL;
  int nd = kn_ndim(x);
  if (axis < 0) axis += nd;
  if (axis < 0 || axis >= nd) return kn_fail("cumsum: axis %d of a %d-d tensor", axis, nd);
  if (nd > 7) return kn_fail("cumsum: %d axes (at most 7)", nd);
  int64_t n = kn_dim(x, axis);
  if (n < 1) return kn_fail("cumsum: axis %d is empty", axis);
  kn_dtype dt = kn_dtype_of(x);
  if (kn_dtype_is_quant(dt) || dt == KN_BOOL) x = kn_cast(x, dt == KN_BOOL ? KN_I32 : KN_F32);
  /* move axis last: [..., n]; then [..., n_out, n_in] with in <= out kept */
  int order[8], back[8];
  for (int d = 0, j = 0; d < nd; d++)
    if (d != axis) order[j++] = d;
  order[nd - 1] = axis;
  for (int d = 0; d < nd; d++) back[order[d]] = d;
  kn_t xt = kn_unsqueeze(kn_permute(x, order), nd - 1); /* [..., 1, n] */
  kn_t out_pos = kn_reshape(kn_arange(n, KN_I32), 2, (int64_t[]){n, 1});
  kn_t in_pos = kn_reshape(kn_arange(n, KN_I32), 2, (int64_t[]){1, n});
  kn_t tri = kn_le(in_pos, out_pos); /* [n, n] */
  int last = nd;
  kn_t s = kn_sum(kn_where(tri, xt, kn_scalar(kn_dtype_of(xt), 0)), 1, &last, false); /* [..., n] */
  return kn_permute(s, back);
}
