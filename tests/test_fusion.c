/* Fusion: the scheduler's kernel counts for the patterns DESIGN.md promises, each also run and checked against a
 * plain C reference so a fused kernel that computes the wrong thing fails too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h" /* buffers and counters below the graph API, for the checks */
#include "ops/ops.h"

static int passed, failed;

static void expect(const char *name, kn_t t, int max_kernels, int min_kernels, const float *want, int64_t n, double tol) {
  kn_ctx *c = kn_ctx_current();
  int k = kn_schedule_count(&t, 1);
  bool ok = k >= min_kernels && k <= max_kernels;
  char why[256] = "";
  if (!ok) snprintf(why, sizeof why, "%d kernels, want %d..%d (%s)", k, min_kernels, max_kernels, kn_ctx_error(c) ? kn_ctx_error(c) : "");
  if (ok && want) {
    float *got = malloc(n * sizeof *got);
    kn_device *dev = kn_ctx_device(c);
    kn_device_counters_reset(dev);
    if (kn_to_host(t, got, n * sizeof *got)) ok = false, snprintf(why, sizeof why, "realize: %s", kn_ctx_error(c));
    /* a device that counts its launches (AMD:EMU) runs exactly the scheduled kernels: one launch each */
    kn_kernel_counters kc[16];
    int nk = kn_device_counters(dev, kc, 16);
    uint64_t launches = 0;
    for (int i = 0; i < nk; i++) launches += kc[i].launches;
    if (ok && nk && launches != (uint64_t)k)
      ok = false, snprintf(why, sizeof why, "%llu launches for %d scheduled kernels", (unsigned long long)launches, k);
    for (int64_t i = 0; ok && i < n; i++)
      if (fabs(got[i] - want[i]) > tol * (1 + fabs(want[i])))
        ok = false, snprintf(why, sizeof why, "element %lld: %g vs %g", (long long)i, got[i], want[i]);
    free(got);
  }
  if (ok) passed++;
  else failed++, printf("FAIL %s: %s\n", name, why), kn_ctx_clear_error(c);
}

static float frand(void) { return (float)rand() / RAND_MAX * 2 - 1; }

static kn_t randt(int nd, const int64_t *sh, float **host) {
  int64_t n = kn_shape_numel(nd, sh);
  float *h = malloc(n * sizeof *h);
  for (int64_t i = 0; i < n; i++) h[i] = frand();
  kn_t t = kn_from_host(KN_F32, nd, sh, h);
  *host = h;
  return t;
}

int main(void) {
  char err[256];
  kn_device *d = kn_device_open(NULL, err, sizeof err); /* $DEVICE, else CPU */
  if (!d) return printf("no CPU device: %s\n", err), 1;
  kn_ctx *c = kn_ctx_new(d);
  kn_ctx_set(c);
  srand(1);
  int64_t N = 37, M = 53;
  int64_t sh[2] = {N, M};
  float *a, *b, *cc;
  kn_t A = randt(2, sh, &a), B = randt(2, sh, &b), C = randt(2, sh, &cc);
  float *want = malloc(N * M * sizeof *want);

  for (int64_t i = 0; i < N * M; i++) want[i] = fmaxf(a[i] * b[i] + cc[i], 0);
  expect("relu(a*b+c)", kn_relu(kn_add(kn_mul(A, B), C)), 1, 1, want, N * M, 1e-6);

  int ax = 1;
  for (int64_t i = 0; i < N; i++) {
    double s = 0;
    for (int64_t j = 0; j < M; j++) s += a[i * M + j] * b[i * M + j];
    want[i] = (float)s;
  }
  expect("sum(a*b, axis=1)", kn_sum(kn_mul(A, B), 1, &ax, false), 1, 1, want, N, 1e-5);

  kn_t BT = kn_transpose(B, 0, 1); /* [M, N] */
  for (int64_t i = 0; i < N; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < M; k++) s += a[i * M + k] * b[j * M + k];
      want[i * N + j] = fmaxf((float)s + cc[j], 0);
    }
  kn_t bias = kn_shrink(kn_reshape(C, 1, (int64_t[]){N * M}), (int64_t[]){0}, (int64_t[]){N});
  expect("relu(a @ b + bias)", kn_relu(kn_add(kn_matmul(A, BT), bias)), 1, 1, want, N * N, 1e-5);

  for (int64_t i = 0; i < N; i++) {
    float m = -INFINITY;
    double s = 0;
    for (int64_t j = 0; j < M; j++) m = fmaxf(m, a[i * M + j]);
    for (int64_t j = 0; j < M; j++) s += exp(a[i * M + j] - m);
    for (int64_t j = 0; j < M; j++) want[i * M + j] = (float)(exp(a[i * M + j] - m) / s);
  }
  expect("softmax(x, -1)", kn_softmax(A, -1), 3, 1, want, N * M, 1e-5);

  float *w;
  kn_t W = randt(1, &M, &w);
  for (int64_t i = 0; i < N; i++) {
    double s = 0;
    for (int64_t j = 0; j < M; j++) s += (double)a[i * M + j] * a[i * M + j];
    float r = (float)(1 / sqrt(s / M + 1e-5));
    for (int64_t j = 0; j < M; j++) want[i * M + j] = a[i * M + j] * r * w[j];
  }
  expect("rmsnorm(x) * w", kn_rmsnorm(A, W, 1e-5f), 2, 1, want, N * M, 1e-5);

  kn_t x = A;
  for (int64_t i = 0; i < N * M; i++) want[i] = a[i];
  for (int k = 0; k < 50; k++) {
    x = k % 3 == 0 ? kn_mul(x, B) : k % 3 == 1 ? kn_adds(x, 0.25) : kn_sub(x, C);
    for (int64_t i = 0; i < N * M; i++)
      want[i] = k % 3 == 0 ? want[i] * b[i] : k % 3 == 1 ? want[i] + 0.25f : want[i] - cc[i];
  }
  expect("50 chained elementwise ops", x, 1, 1, want, N * M, 1e-5);

  /* a reduce whose result is broadcast back is a boundary: x - mean(x) is 2 kernels */
  for (int64_t i = 0; i < N; i++) {
    double s = 0;
    for (int64_t j = 0; j < M; j++) s += a[i * M + j];
    for (int64_t j = 0; j < M; j++) want[i * M + j] = a[i * M + j] - (float)(s / M);
  }
  expect("x - mean(x)", kn_sub(A, kn_mean(A, 1, &ax, true)), 2, 2, want, N * M, 1e-5);

  /* hash-consing: building the same expression twice gives the same node */
  size_t before = kn_ctx_nodes(c);
  kn_t e1 = kn_relu(kn_add(kn_mul(A, B), C));
  size_t mid = kn_ctx_nodes(c);
  kn_t e2 = kn_relu(kn_add(kn_mul(A, B), C));
  if (e1 == e2 && kn_ctx_nodes(c) == mid && mid >= before) passed++;
  else failed++, printf("FAIL hash-consing: equal subgraphs are different nodes\n");

  printf("%d passed, %d failed\n", passed, failed);
  free(a), free(b), free(cc), free(w), free(want);
  kn_ctx_free(c);
  kn_device_close(d);
  return failed ? 1 : 0;
}
