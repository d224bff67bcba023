/* Reductions (sum, max, prod, mean) and matmul, which is a broadcasted multiply reduced over K. Half-precision and
 * small-integer inputs accumulate in a wider type, as every serious engine does. */
#include <string.h>

#include "uop.h"

static kn_t reduce(kn_kop_type rop, kn_t a, int naxes, const int *axes, bool keepdim, const char *name) {
  if (!a) return NULL;
  uint32_t mask = 0;
  if (naxes < 0) /* all axes */
    mask = a->ndim ? (1u << a->ndim) - 1 : 0;
  for (int i = 0; i < naxes; i++) {
    int ax = axes[i] < 0 ? axes[i] + a->ndim : axes[i];
    if (ax < 0 || ax >= a->ndim) return kn_graph_fail("%s: axis %d out of range for %d dims", name, axes[i], a->ndim);
    mask |= 1u << ax;
  }
  kn_dtype in = kn_dtype_scalar(a->dtype), acc = in;
  if (rop == KN_KOP_ADD || rop == KN_KOP_MUL) {
    if (in == KN_F16 || in == KN_BF16) acc = KN_F32;
    else if (in == KN_BOOL || in == KN_I8 || in == KN_I16) acc = KN_I32;
    else if (in == KN_U8 || in == KN_U16) acc = KN_U32;
  }
  kn_t src = kn_cast(a, acc); /* also turns a block-format tensor into its float32 values */
  int64_t sh[KN_MAXDIM];
  for (int i = 0; i < a->ndim; i++) sh[i] = (mask >> i & 1) ? 1 : a->shape[i];
  kn_t r = src;
  if (mask) {
    struct {
      kn_kop_type rop;
      uint32_t axes;
    } arg = {rop, mask};
    kn_t s[1] = {src};
    r = kn_uop_make(KN_OP_REDUCE, acc, a->ndim, sh, 1, s, &arg, sizeof arg);
  }
  if (acc != in && (in == KN_F16 || in == KN_BF16)) r = kn_cast(r, in);
  if (!keepdim && r) {
    int64_t out[KN_MAXDIM];
    int n = 0;
    for (int i = 0; i < a->ndim; i++)
      if (!(mask >> i & 1)) out[n++] = a->shape[i];
    r = kn_reshape(r, n, out);
  }
  return r;
}

kn_t kn_sum(kn_t a, int naxes, const int *axes, bool keepdim) { return reduce(KN_KOP_ADD, a, naxes, axes, keepdim, "sum"); }
kn_t kn_max(kn_t a, int naxes, const int *axes, bool keepdim) { return reduce(KN_KOP_MAX, a, naxes, axes, keepdim, "max"); }
kn_t kn_prod(kn_t a, int naxes, const int *axes, bool keepdim) { return reduce(KN_KOP_MUL, a, naxes, axes, keepdim, "prod"); }

kn_t kn_mean(kn_t a, int naxes, const int *axes, bool keepdim) {
  if (!a) return NULL;
  kn_t s = kn_sum(a, naxes, axes, keepdim);
  if (!s) return NULL;
  int64_t n = kn_numel(a) / (kn_numel(s) ? kn_numel(s) : 1);
  if (!kn_dtype_is_float(kn_dtype_of(s))) s = kn_cast(s, KN_F32);
  return kn_muls(s, n ? 1.0 / (double)n : 0.0);
}

kn_t kn_matmul(kn_t a, kn_t b) {
  if (!a || !b) return NULL;
  if (a->ndim < 1 || b->ndim < 1) return kn_graph_fail("matmul: operands must have at least one dimension");
  bool a_vec = a->ndim == 1, b_vec = b->ndim == 1;
  if (a_vec) a = kn_unsqueeze(a, 0);
  if (b_vec) b = kn_unsqueeze(b, 1);
  if (!a || !b) return NULL;
  int64_t k = a->shape[a->ndim - 1];
  if (b->shape[b->ndim - 2] != k) {
    char sa[128], sb[128];
    kn_print_shape(a, sa, sizeof sa);
    kn_print_shape(b, sb, sizeof sb);
    return kn_graph_fail("matmul: inner dimensions differ: %s @ %s", sa, sb);
  }
  /* products of half-precision inputs are formed in float32 (each product rounded once, in the sum) */
  kn_dtype out = kn_dtype_promote(kn_dtype_scalar(a->dtype), kn_dtype_scalar(b->dtype));
  if (out == KN_F16 || out == KN_BF16) a = kn_cast(a, KN_F32), b = kn_cast(b, KN_F32);
  /* a [..., M, 1, K] * b^T [..., 1, N, K] summed over K: the weight's K stays its contiguous axis */
  kn_t x = kn_unsqueeze(a, -2);
  kn_t w = kn_unsqueeze(kn_transpose(b, -1, -2), -3);
  kn_t p = kn_mul(x, w);
  int ax = -1;
  kn_t r = kn_sum(p, 1, &ax, false);
  if (r && a_vec) r = kn_squeeze(r, -2);
  if (r && b_vec) r = kn_squeeze(r, -1);
  return r && out != kn_dtype_of(r) ? kn_cast(r, out) : r;
}
