/* Neural-network building blocks from graph primitives. Each is a few lines so the scheduler sees (and fuses)
 * the primitives: softmax is three kernels, rmsnorm two, activations fuse into their neighbours. */
#include <math.h>

#include "ops.h"

kn_t kn_softmax(kn_t x, int axis) {
  kn_t m = kn_max(x, 1, &axis, true);
  kn_t e = kn_exp(kn_sub(x, m));
  return kn_name(kn_div(e, kn_name(kn_sum(e, 1, &axis, true), "softmax_sum")), "softmax");
}

kn_t kn_rmsnorm(kn_t x, kn_t w, float eps) {
  int ax = -1;
  kn_t ms = kn_mean(kn_square(x), 1, &ax, true);
  kn_t y = kn_mul(x, kn_name(kn_rsqrt(kn_adds(ms, eps)), "rmsnorm_scale"));
  return kn_name(w ? kn_mul(y, w) : y, "rmsnorm");
}

kn_t kn_silu(kn_t x) { return kn_name(kn_mul(x, kn_sigmoid(x)), "silu"); }

kn_t kn_gelu(kn_t x) {
  kn_t inner = kn_muls(kn_add(x, kn_muls(kn_mul(kn_square(x), x), 0.044715)), sqrt(2.0 / M_PI));
  return kn_name(kn_mul(kn_muls(x, 0.5), kn_adds(kn_tanh(inner), 1.0)), "gelu");
}

kn_t kn_linear(kn_t x, kn_t w, kn_t bias) {
  kn_t y = kn_matmul(x, kn_transpose(w, 0, 1));
  return kn_name(bias ? kn_add(y, bias) : y, "linear");
}

/* out = x * C + swap(x) * S, where swap exchanges the two members of each rotated pair (a flip: a view) and C, S
 * are the tables spread over the pairs (S negated on the first member): out_a = a cos - b sin, out_b = b cos + a sin
 * in the same float operations as the textbook form. No padding touches x, so when x is a matmul's result the
 * scheduler computes the rotation inside the matmul's kernel (the flip is pushed into the reduce). */
kn_t kn_rope(kn_t x, kn_t cos, kn_t sin, bool neox) {
  if (!x || !cos || !sin) return NULL;
  int64_t T = kn_dim(x, 0), H = kn_dim(x, 1), D = kn_dim(x, 2), half = D / 2;
  /* pairs on axis `pa` of [T, H, half, 2] (normal: interleaved) or [T, H, 2, half] (NEOX: halves) */
  int64_t shp[4] = {T, H, neox ? 2 : half, neox ? half : 2};
  int pa = neox ? 2 : 3;
  kn_t x4 = kn_reshape(x, 4, shp), sw = kn_flip(x4, pa);
  kn_t c = kn_unsqueeze(kn_unsqueeze(cos, 1), pa), s = kn_unsqueeze(kn_unsqueeze(sin, 1), pa); /* [T, 1, ., .] */
  int64_t tsh[4] = {T, 1, shp[2], shp[3]}, lo[4] = {0}, hi[4] = {0};
  hi[pa] = 1;
  kn_t sn = kn_pad(kn_neg(s), lo, hi); /* -sin on the first member */
  hi[pa] = 0, lo[pa] = 1;
  kn_t S = kn_add(sn, kn_pad(s, lo, hi)), C = kn_expand(c, 4, tsh);
  return kn_name(kn_reshape(kn_add(kn_mul(x4, C), kn_mul(sw, S)), 3, (int64_t[]){T, H, D}), "rope");
}

/* population variance over the last axis, keeping it as size 1 */
kn_t kn_var_last(kn_t x) {
  int ax = -1;
  kn_t d = kn_sub(x, kn_mean(x, 1, &ax, true));
  return kn_mean(kn_square(d), 1, &ax, true);
}

kn_t kn_std_last(kn_t x) { return kn_sqrt(kn_var_last(x)); }

kn_t kn_layernorm(kn_t x, kn_t w, kn_t b, float eps) {
  int ax = -1;
  kn_t d = kn_sub(x, kn_mean(x, 1, &ax, true));
  kn_t y = kn_mul(d, kn_rsqrt(kn_adds(kn_mean(kn_square(d), 1, &ax, true), eps)));
  if (w) y = kn_mul(y, w);
  return kn_name(b ? kn_add(y, b) : y, "layernorm");
}

kn_t kn_log_softmax(kn_t x, int axis) {
  kn_t m = kn_max(x, 1, &axis, true);
  kn_t s = kn_sub(x, m);
  return kn_sub(s, kn_log(kn_sum(kn_exp(s), 1, &axis, true)));
}

kn_t kn_softcap(kn_t x, float cap) { return kn_muls(kn_tanh(kn_muls(x, 1.0 / cap)), cap); }

/* erf from Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below float32's resolution near 1): elementwise, so it
 * fuses like any activation and needs nothing of codegen beyond exp */
kn_t kn_erf(kn_t x) {
  if (!x) return NULL;
  kn_t ax = kn_abs(x);
  kn_t t = kn_recip(kn_adds(kn_muls(ax, 0.3275911), 1.0));
  kn_t poly = kn_muls(t, 1.061405429);
  poly = kn_mul(kn_adds(poly, -1.453152027), t);
  poly = kn_mul(kn_adds(poly, 1.421413741), t);
  poly = kn_mul(kn_adds(poly, -0.284496736), t);
  poly = kn_mul(kn_adds(poly, 0.254829592), t);
  kn_t y = kn_sub(kn_scalar(kn_dtype_of(poly), 1.0), kn_mul(poly, kn_exp(kn_neg(kn_square(ax)))));
  return kn_where(kn_lt(x, kn_scalar(kn_dtype_of(x), 0)), kn_neg(y), y);
}

kn_t kn_gelu_erf(kn_t x) { return kn_mul(kn_muls(x, 0.5), kn_adds(kn_erf(kn_muls(x, M_SQRT1_2)), 1.0)); }
