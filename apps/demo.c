/* `kiln demo`: a small program through the whole engine (graph -> schedule -> LLVM -> device): a two-layer MLP on
 * random data and a float32 matmul, checked against plain C on the host. The default job of a fresh build. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "device/base/env.h"
#include "ops/ops.h"

static int usage(FILE *f) {
  fprintf(f, "usage: kiln demo [-n SIZE]\n\nRuns a two-layer MLP (SIZE inputs, 4*SIZE hidden, SIZE outputs, batch 8) "
             "through the engine on $DEVICE (default CPU),\nchecks it against plain C and prints the kernels it took."
             " DEBUG=2 shows every kernel launch, DEBUG=3 the fusion decisions.\n");
  return f == stdout ? 0 : 2;
}

int kn_cmd_demo(int argc, char **argv) {
  int64_t n = 256;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
    if (!strcmp(argv[i], "-n") && i + 1 < argc) {
      n = strtoll(argv[++i], NULL, 10);
      if (n < 1 || n > 8192) return fprintf(stderr, "kiln demo: -n must be 1..8192\n"), 2;
    } else
      return fprintf(stderr, "kiln demo: unknown option '%s'\n", argv[i]), usage(stderr);
  }
  char err[256];
  kn_device *dev = kn_device_open(NULL, err, sizeof err);
  if (!dev) return fprintf(stderr, "kiln demo: %s\n", err), 1;
  kn_ctx *ctx = kn_ctx_new(dev);
  kn_ctx_set(ctx);
  int64_t B = 8, H = 4 * n;
  float *x = malloc(B * n * 4), *w1 = malloc(H * n * 4), *w2 = malloc(n * H * 4), *out = malloc(B * n * 4);
  srand(42);
  for (int64_t i = 0; i < B * n; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
  for (int64_t i = 0; i < H * n; i++) w1[i] = ((float)rand() / RAND_MAX - 0.5f) / sqrtf((float)n);
  for (int64_t i = 0; i < n * H; i++) w2[i] = ((float)rand() / RAND_MAX - 0.5f) / sqrtf((float)H);
  kn_t X = kn_from_host(KN_F32, 2, (int64_t[]){B, n}, x);
  kn_t W1 = kn_from_host(KN_F32, 2, (int64_t[]){H, n}, w1);
  kn_t W2 = kn_from_host(KN_F32, 2, (int64_t[]){n, H}, w2);
  kn_t Y = kn_linear(kn_silu(kn_linear(X, W1, NULL)), W2, NULL);
  double t0 = kn_now();
  int rc = kn_to_host(Y, out, B * n * 4);
  double dt = kn_now() - t0;
  if (rc) {
    fprintf(stderr, "kiln demo: %s\n", kn_ctx_error(ctx));
    return 1;
  }
  kn_sched_stats st = kn_last_schedule();
  /* the same MLP in plain C */
  double maxerr = 0;
  float *h = malloc(H * 4);
  for (int64_t b = 0; b < B; b++) {
    for (int64_t j = 0; j < H; j++) {
      double s = 0;
      for (int64_t k = 0; k < n; k++) s += (double)x[b * n + k] * w1[j * n + k];
      h[j] = (float)(s / (1 + exp(-s)));
    }
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t k = 0; k < H; k++) s += (double)h[k] * w2[j * H + k];
      double e = fabs(s - out[b * n + j]) / (1 + fabs(s));
      if (e > maxerr) maxerr = e;
    }
  }
  printf("kiln demo on %s: MLP %lld -> %lld -> %lld, batch %lld: %d kernels (%lld compiled, %lld from the cache), "
         "%.1f ms including compilation\n",
         kn_device_name(dev), (long long)n, (long long)H, (long long)n, (long long)B, st.kernels, (long long)st.compiled,
         (long long)st.cache_hits, dt * 1e3);
  printf("max relative error vs plain C: %.2e -> %s\n", maxerr, maxerr < 1e-4 ? "ok" : "MISMATCH");
  free(x), free(w1), free(w2), free(out), free(h);
  kn_ctx_free(ctx);
  kn_device_close(dev);
  return maxerr < 1e-4 ? 0 : 1;
}
