/* The hand-built weight matmul kernel (wmm.h). */
#include "wmm.h"

#include <string.h>

kn_st kn_test_view3(const int64_t *shape, const int64_t *strides) {
  kn_st s;
  memset(&s, 0, sizeof s);
  s.nviews = 1, s.v[0].ndim = 3, s.v[0].offset.v = -1;
  for (int i = 0; i < 3; i++) s.v[0].shape[i] = shape[i], s.v[0].strides[i] = shape[i] == 1 ? 0 : strides[i];
  return s;
}

kn_kernel *kn_test_wmm_kernel(kn_dtype w, int64_t T, int64_t N, int64_t K) {
  kn_kernel *k = kn_kernel_new();
  if (!k) return NULL;
  k->nbufs = 3;
  k->bufs[0] = (kn_kbuf){KN_F32, T * N}, k->bufs[1] = (kn_kbuf){KN_F32, T * K}, k->bufs[2] = (kn_kbuf){w, N * K};
  k->ndim = 3, k->nreduce = 1;
  int64_t sh[3] = {T, N, K}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1}, so[3] = {N, 1, 0}, osh[3] = {T, N, 1};
  memcpy(k->shape, sh, sizeof sh);
  k->out_st = kn_test_view3(osh, so);
  kn_st a = kn_test_view3(sh, sx), b = kn_test_view3(sh, sw);
  kn_kop *wl = kn_kop_load(k, 2, KN_F32, &b);
  if (w == KN_F16 || w == KN_BF16) wl = kn_kop_alu(k, KN_KOP_CAST, KN_F32, 1, kn_kop_load(k, 2, w, &b), NULL, NULL);
  k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &a), wl, NULL));
  return k;
}
