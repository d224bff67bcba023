/* Decode attention benchmark: the fused attention kernel (kn_custom_attention_window) for T queries (default 1:
 * decode) at the end of a cache of C keys (f16), per model shape: its time per call, per key, and GB/s of cache
 * read; the cache is larger than the caches when C is (a 7B shape's 16k keys are 32 MB a
 * layer), as decode at a long context reads it. Each result is checked against the plain C attention of
 * tests/ref_attention.c.
 * Usage: bench_attention [C] [reps] [T] [shape ...]   shape: H:KV:D (default 14:2:64 28:4:128 32:8:128 8:1:256) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h"
#include "device/base/env.h"
#include "device/base/formats.h"
#include "ops/ops.h"
#include "tests/ref_attention.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* the worst relative error of out against the reference attention of its queries at positions pos .. (the caches
 * widened to f32 first) */
static double check(const float *q, const uint16_t *kc, const uint16_t *vc, const float *out, int T, int H, int KV, int D,
                    int pos, float scale) {
  size_t cn = (size_t)(pos + T) * KV * D, qn = (size_t)T * H * D;
  float *k = malloc(cn * 4), *v = malloc(cn * 4), *want = malloc(qn * 4);
  for (size_t i = 0; i < cn; i++) k[i] = kn_f16_to_f32(kc[i]), v[i] = kn_f16_to_f32(vc[i]);
  kn_ref_attention(q, k, v, want, T, H, KV, D, pos, scale, 0);
  double worst = 0;
  for (size_t i = 0; i < qn; i++) {
    double e = fabs(out[i] - want[i]) / (1e-3 + fabs(want[i]));
    worst = e > worst ? e : worst;
  }
  free(k), free(v), free(want);
  return worst;
}

static void run_shape(kn_device *dev, int C, int reps, int T, int H, int KV, int D) {
  kn_ctx *c = kn_ctx_new(dev);
  kn_ctx_set(c);
  size_t qn = (size_t)T * H * D, cn = (size_t)C * KV * D;
  float *q = malloc(qn * 4), *out = malloc(qn * 4);
  uint16_t *kc = malloc(cn * 2), *vc = malloc(cn * 2);
  srand(7);
  for (size_t i = 0; i < qn; i++) q[i] = (float)rand() / RAND_MAX * 2 - 1;
  for (size_t i = 0; i < cn; i++)
    kc[i] = kn_f32_to_f16((float)rand() / RAND_MAX * 4 - 2), vc[i] = kn_f32_to_f16((float)rand() / RAND_MAX * 2 - 1);
  int64_t cs[3] = {C, KV, D};
  kn_t Q = kn_from_host(KN_F32, 3, (int64_t[]){T, H, D}, q);
  kn_t K = kn_from_host(KN_F16, 3, cs, kc), V = kn_from_host(KN_F16, 3, cs, vc);
  kn_var *pos = kn_var_new("pos", 0, C - T);
  float scale = 1.0f / sqrtf((float)D);
  kn_t o = kn_contiguous(kn_custom_attention_window(Q, K, V, pos, T, scale, 0));
  kn_plan *p = kn_plan_new(&o, 1);
  kn_bind bind = {pos, C - T};
  if (!p || kn_plan_run(p, &bind, 1)) {
    printf("attention %d:%d:%d: %s\n", H, KV, D, kn_ctx_error(c) ? kn_ctx_error(c) : "plan failed");
    goto done;
  }
  double ts[256];
  reps = reps > 256 ? 256 : reps < 1 ? 1 : reps;
  for (int r = 0; r < reps; r++) {
    double t0 = kn_now();
    kn_plan_run(p, &bind, 1);
    ts[r] = kn_now() - t0;
  }
  qsort(ts, (size_t)reps, sizeof *ts, cmp);
  double tm = ts[reps / 2], bytes = 2.0 * (double)C * KV * D * 2;
  int threads = kn_device_threads(dev);
  kn_buf_copyout(kn_buffer_of(o), 0, out, qn * 4);
  double err = check(q, kc, vc, out, T, H, KV, D, C - T, scale);
  printf("attention H %d KV %d D %d, %d queries at %d keys (f16 cache %.0f MB): %.3f ms, %.1f GB/s, %.1f ns per key "
         "(%d threads)%s\n",
         H, KV, D, T, C, bytes / 1e6, tm * 1e3, bytes / tm / 1e9, tm * 1e9 / C, threads, err < 1e-4 ? "" : "  WRONG RESULTS");
done:
  kn_plan_free(p);
  kn_ctx_free(c);
  free(q), free(out), free(kc), free(vc);
}

int main(int argc, char **argv) {
  char err[256];
  kn_device *d = kn_device_open(NULL, err, sizeof err);
  if (!d) return fprintf(stderr, "bench_attention: %s\n", err), 1;
  int C = argc > 1 ? atoi(argv[1]) : 4096, reps = argc > 2 ? atoi(argv[2]) : 21, T = argc > 3 ? atoi(argv[3]) : 1;
  if (C < 1 || T < 1 || T > C) return fprintf(stderr, "usage: bench_attention [C] [reps] [T] [H:KV:D ...]\n"), 2;
  const char *defaults[] = {"14:2:64", "28:4:128", "32:8:128", "8:1:256"};
  int nshape = argc > 4 ? argc - 4 : 4;
  for (int i = 0; i < nshape; i++) {
    int H, KV, D;
    if (sscanf(argc > 4 ? argv[4 + i] : defaults[i], "%d:%d:%d", &H, &KV, &D) != 3 || KV < 1 || H % KV || D < 4 || D % 4) {
      fprintf(stderr, "bench_attention: bad shape '%s' (H:KV:D, H a multiple of KV, D of 4)\n", argc > 4 ? argv[4 + i] : defaults[i]);
      return 2;
    }
    run_shape(d, C, reps, T, H, KV, D);
  }
  kn_device_close(d);
  return 0;
}
