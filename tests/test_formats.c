/* Every format kiln reads from GGUF (each dtype whose GGML id kn_dtype_from_ggml accepts) has its whole row: the
 * dtype table's row (device/base/dtype.c: block geometry, the host quantizer and dequantizer of
 * device/base/formats.c), a reference dequantizer (tests/ref_quant.c) and a decoder in the kernels
 * (codegen/quant.c). A format added to the dtype table and missing
 * any of these fails here. Each part is also checked against the reference on random data: the kernels' decode in
 * a matmul, the host dequantizer bit for bit, and the quantizer's round trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device/base/formats.h"
#include "ops/ops.h"
#include "ref_quant.h"

/* x [1, K] @ W^T with W [N, K] stored in format t, through the graph (the kernels' decoder), against plain C over
 * the reference dequantization; worst |error| / (1 + |want|) */
static double matmul_err(kn_dtype t, const uint8_t *w, const float *wf, int64_t N, int64_t K, uint64_t *rng) {
  float *x = malloc(K * sizeof *x), got[4];
  for (int64_t k = 0; k < K; k++) x[k] = kn_ref_uniform(rng) * 2 - 1;
  kn_t X = kn_from_host(KN_F32, 2, (int64_t[]){1, K}, x), W = kn_from_host(t, 2, (int64_t[]){N, K}, w);
  double worst = kn_to_host(kn_linear(X, W, NULL), got, N * sizeof *got) ? INFINITY : 0;
  for (int64_t n = 0; worst < INFINITY && n < N; n++) {
    double want = 0;
    for (int64_t k = 0; k < K; k++) want += (double)x[k] * wf[n * K + k];
    worst = fmax(worst, fabs(got[n] - want) / (1 + fabs(want)));
  }
  free(x);
  return worst;
}

static void format(kn_dtype t) {
  const kn_dtype_info *d = kn_dtype_get(t);
  const char *nm = d->name;
  check(d->block_elems >= 1 && d->block_bytes >= 1 && kn_dtype_nbytes(t, d->block_elems) == d->block_bytes,
        "%s: block geometry (%d elements in %d bytes)", nm, d->block_elems, d->block_bytes);
  bool q = check(kn_quantize_supported(t), "%s: a quantizer (the dtype table row's quantize, device/base/formats.c)", nm);
  bool dq = check(kn_dequantize_supported(t), "%s: a host dequantizer (the dtype table row's dequantize)", nm);
  bool ref = check(kn_ref_supported(t), "%s: a reference dequantizer (tests/ref_quant.c)", nm);
  if (!ref) return;
  uint64_t rng = 0x5eed0000u + (uint64_t)t;
  int64_t N = 4, K = 2 * d->block_elems;
  uint8_t *w = malloc((size_t)kn_dtype_nbytes(t, N * K)), *w2 = malloc((size_t)kn_dtype_nbytes(t, N * K));
  float *wf = malloc(N * K * sizeof *wf), *back = malloc(N * K * sizeof *back), *src = malloc(N * K * sizeof *src);
  kn_ref_fill_random(t, w, N * K, &rng);
  kn_ref_dequant(t, w, N * K, wf);
  kn_ctx *c = kn_ctx_current();
  kn_ctx_clear_error(c);
  double e = matmul_err(t, w, wf, N, K, &rng);
  check(e < 1e-4, "%s: the kernels decode it (a matmul against the reference: %.2e%s%s)", nm, e,
        kn_ctx_error(c) ? "; " : "", kn_ctx_error(c) ? kn_ctx_error(c) : "");
  if (dq) {
    bool same = !kn_dequantize(t, w, N * K, back);
    for (int64_t i = 0; same && i < N * K; i++) same = memcmp(&back[i], &wf[i], 4) == 0;
    check(same, "%s: the host dequantizer matches the reference bit for bit", nm);
  }
  if (q) {
    char err[256];
    double num = 0, den = 0;
    for (int64_t i = 0; i < N * K; i++) src[i] = kn_ref_normal(&rng), den += (double)src[i] * src[i];
    bool ok = !kn_quantize(t, src, N * K, w2, err, sizeof err) && !kn_ref_dequant(t, w2, N * K, back);
    for (int64_t i = 0; ok && i < N * K; i++) num += ((double)back[i] - src[i]) * ((double)back[i] - src[i]);
    double rel = ok ? sqrt(num / den) : INFINITY;
    check(rel < 0.4, "%s: quantizing normal values and reading them back: relative RMS error %.3f", nm, rel);
  }
  free(w), free(w2), free(wf), free(back), free(src);
}

int main(void) {
  setenv("KILN_EXACT", "1", 1); /* the exact decode: the integer-dot mode quantizes the activations too */
  char err[256];
  kn_device *dev = kn_device_open("CPU", err, sizeof err);
  if (!dev) return printf("no CPU device: %s\n", err), 1;
  kn_ctx *c = kn_ctx_new(dev);
  kn_ctx_set(c);
  int readable = 0;
  for (int t = 0; t < KN_DTYPE_COUNT; t++) {
    const kn_dtype_info *d = kn_dtype_get((kn_dtype)t);
    if (d->ggml_type < 0 || kn_dtype_from_ggml(d->ggml_type) != t) continue; /* not read from GGUF */
    if (!d->is_quant && !d->is_float) continue; /* integer tensors are read as they are */
    readable++;
    format((kn_dtype)t);
  }
  check(readable >= 15, "%d formats are read from GGUF (F32, F16, BF16 and 12 block formats at least)", readable);
  kn_ctx_free(c);
  kn_device_close(dev);
  return check_summary();
}
