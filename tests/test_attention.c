/* The fused attention kernel and the primitive-built attention (ops: kn_attention over kn_causal_mask) against a
 * plain C causal softmax attention, on random queries and caches (f32 and f16), random positions, GQA group sizes,
 * head sizes and sliding windows; the same compiled kernel is replayed at several positions (start_pos is a kernel
 * argument). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h" /* buffers and counters below the graph API, for the checks */
#include "device/base/formats.h"
#include "ops/ops.h"
#include "tests/ref_attention.h"

static int passed, failed;

static float frand(void) { return (float)rand() / RAND_MAX * 2 - 1; }

static void one_case(int T, int H, int KV, int D, int C, kn_dtype kvdt, int window, bool primitive) {
  kn_ctx *c = kn_ctx_current();
  size_t qn = (size_t)T * H * D, cn = (size_t)C * KV * D;
  float *q = malloc(qn * 4), *k = malloc(cn * 4), *v = malloc(cn * 4), *want = malloc(qn * 4), *got = malloc(qn * 4);
  uint16_t *kh = malloc(cn * 2), *vh = malloc(cn * 2);
  for (size_t i = 0; i < qn; i++) q[i] = frand();
  for (size_t i = 0; i < cn; i++) { /* values rounded to the cache's precision, so the reference sees the same */
    k[i] = frand() * 2, v[i] = frand();
    if (kvdt == KN_F16) kh[i] = kn_f32_to_f16(k[i]), vh[i] = kn_f32_to_f16(v[i]), k[i] = kn_f16_to_f32(kh[i]), v[i] = kn_f16_to_f32(vh[i]);
  }
  kn_t Q = kn_from_host(KN_F32, 3, (int64_t[]){T, H, D}, q);
  int64_t cs[3] = {C, KV, D};
  kn_t K = kn_from_host(kvdt, 3, cs, kvdt == KN_F16 ? (void *)kh : (void *)k);
  kn_t V = kn_from_host(kvdt, 3, cs, kvdt == KN_F16 ? (void *)vh : (void *)v);
  char name[64];
  snprintf(name, sizeof name, "pos_T%d_C%d_w%d_%d_%s", T, C, window, primitive, kn_dtype_name(kvdt));
  kn_var *pos = kn_var_new(name, 0, C - T);
  float scale = 1.0f / sqrtf((float)D);
  kn_t out = kn_contiguous(primitive ? kn_attention(Q, K, V, kn_causal_mask(T, C, kn_var_tensor(pos, KN_I32), window), scale)
                                     : kn_custom_attention_window(Q, K, V, pos, T, scale, window));
  kn_plan *p = kn_plan_new(&out, 1);
  for (int rep = 0; rep < 3; rep++) {
    int sp = rep == 0 ? 0 : rep == 1 ? C - T : rand() % (C - T + 1);
    bool ok = p && !kn_plan_run(p, &(kn_bind){pos, sp}, 1) && !kn_buf_copyout(kn_buffer_of(out), 0, got, qn * 4);
    kn_ref_attention(q, k, v, want, T, H, KV, D, sp, scale, window);
    double worst = 0;
    for (size_t i = 0; ok && i < qn; i++) {
      double e = fabs(got[i] - want[i]) / (1e-3 + fabs(want[i]));
      if (e > worst) worst = e;
    }
    ok &= worst < 1e-4;
    if (ok) passed++;
    else
      failed++, printf("FAIL %s attention T=%d H=%d KV=%d D=%d C=%d %s window %d pos=%d: worst relative error %.2e %s\n",
                       primitive ? "primitive" : "fused", T, H, KV, D, C, kn_dtype_name(kvdt), window, sp, worst,
                       kn_ctx_error(c) ? kn_ctx_error(c) : "");
  }
  kn_plan_free(p);
  free(q), free(k), free(v), free(want), free(got), free(kh), free(vh);
}

/* Batched rows: T queries at random distinct cache rows of S segments of C rows (plus P spare rows), their keys and
 * values written there by a row scatter (kn_assign_rows) in the same graph, each attending its own segment up to
 * its row; against the same writes and attention in plain C. The rows untouched by the scatter must stay as they
 * were. */
static void rows_case(int T, int H, int KV, int D, int S, int C, int P, kn_dtype kvdt, int window) {
  kn_ctx *c = kn_ctx_current();
  int N = S * C + P;
  size_t qn = (size_t)T * H * D, cn = (size_t)N * KV * D, nn = (size_t)T * KV * D;
  float *q = malloc(qn * 4), *k = malloc(cn * 4), *v = malloc(cn * 4), *kn = malloc(nn * 4), *vn = malloc(nn * 4);
  float *want = malloc(qn * 4), *got = malloc(qn * 4), *kback = malloc(cn * 4);
  uint16_t *kh = malloc(cn * 2), *vh = malloc(cn * 2), *kbh = malloc(cn * 2);
  int32_t *rows = malloc(T * sizeof *rows);
  for (size_t i = 0; i < qn; i++) q[i] = frand();
  for (size_t i = 0; i < cn; i++) {
    k[i] = frand() * 2, v[i] = frand();
    if (kvdt == KN_F16) kh[i] = kn_f32_to_f16(k[i]), vh[i] = kn_f32_to_f16(v[i]), k[i] = kn_f16_to_f32(kh[i]), v[i] = kn_f16_to_f32(vh[i]);
  }
  for (size_t i = 0; i < nn; i++) {
    kn[i] = frand() * 2, vn[i] = frand();
    if (kvdt == KN_F16) kn[i] = kn_f16_to_f32(kn_f32_to_f16(kn[i])), vn[i] = kn_f16_to_f32(kn_f32_to_f16(vn[i]));
  }
  for (int t = 0; t < T; t++) { /* distinct rows: runs of consecutive positions in random segments, and spare rows */
    bool dup;
    do {
      rows[t] = t > 0 && rand() % 2 && rows[t - 1] + 1 < N ? rows[t - 1] + 1 : rand() % N;
      dup = false;
      for (int u = 0; u < t; u++) dup |= rows[u] == rows[t];
    } while (dup);
  }
  int64_t cs[3] = {N, KV, D}, ns[3] = {T, KV, D};
  kn_t K = kn_from_host(kvdt, 3, cs, kvdt == KN_F16 ? (void *)kh : (void *)k);
  kn_t V = kn_from_host(kvdt, 3, cs, kvdt == KN_F16 ? (void *)vh : (void *)v);
  kn_t R = kn_from_host(KN_I32, 1, (int64_t[]){T}, rows);
  kn_t Q = kn_from_host(KN_F32, 3, (int64_t[]){T, H, D}, q);
  kn_t kc = kn_assign_rows(K, R, kn_from_host(KN_F32, 3, ns, kn)), vc = kn_assign_rows(V, R, kn_from_host(KN_F32, 3, ns, vn));
  float scale = 1.0f / sqrtf((float)D);
  kn_t out = kn_contiguous(kn_custom_attention_rows(Q, kc, vc, R, C, scale, window));
  kn_t outs[2] = {out, kc};
  bool ok = !kn_realize(outs, 2) && !kn_to_host(out, got, qn * 4) &&
            !kn_to_host(kc, kvdt == KN_F16 ? (void *)kbh : (void *)kback, cn * (kvdt == KN_F16 ? 2 : 4));
  if (kvdt == KN_F16)
    for (size_t i = 0; i < cn; i++) kback[i] = kn_f16_to_f32(kbh[i]);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < KV * D; i++)
      k[(size_t)rows[t] * KV * D + i] = kn[(size_t)t * KV * D + i], v[(size_t)rows[t] * KV * D + i] = vn[(size_t)t * KV * D + i];
  double worst_k = 0;
  for (size_t i = 0; ok && i < cn; i++) worst_k = fmax(worst_k, fabs(kback[i] - k[i]));
  /* each query alone against its segment: the single-query reference at position r % C */
  double worst = 0;
  for (int t = 0; ok && t < T; t++) {
    int r = rows[t], p = r % C;
    const float *kseg = k + (size_t)(r - p) * KV * D, *vseg = v + (size_t)(r - p) * KV * D;
    kn_ref_attention(q + (size_t)t * H * D, kseg, vseg, want + (size_t)t * H * D, 1, H, KV, D, p, scale, window);
    for (int i = 0; i < H * D; i++) {
      size_t j = (size_t)t * H * D + i;
      worst = fmax(worst, fabs(got[j] - want[j]) / (1e-3 + fabs(want[j])));
    }
  }
  ok &= worst < 1e-4 && worst_k == 0;
  if (ok) passed++;
  else
    failed++, printf("FAIL rows attention T=%d H=%d KV=%d D=%d segments %d x %d + %d %s window %d: worst relative error "
                     "%.2e, cache rows off by %.2e %s\n", T, H, KV, D, S, C, P, kn_dtype_name(kvdt), window, worst, worst_k,
                     kn_ctx_error(c) ? kn_ctx_error(c) : "");
  free(q), free(k), free(v), free(kn), free(vn), free(want), free(got), free(kback), free(kh), free(vh), free(kbh), free(rows);
}

/* The same decode pass on two devices, one of 1 thread (no split: n_kv_head items) and one of 7 (a KV head's heads
 * split into groups): the outputs must be the same bits, as a sequence's decode alone (split) and in a batched pass
 * (not split) must be. */
static void split_bits_case(kn_device *d1, kn_device *d7, int T, int H, int KV, int D, int C, kn_dtype kvdt) {
  size_t qn = (size_t)T * H * D, cn = (size_t)C * KV * D;
  float *q = malloc(qn * 4), *k = malloc(cn * 4), *v = malloc(cn * 4), *got[2] = {malloc(qn * 4), malloc(qn * 4)};
  uint16_t *kh = malloc(cn * 2), *vh = malloc(cn * 2);
  for (size_t i = 0; i < qn; i++) q[i] = frand();
  for (size_t i = 0; i < cn; i++) k[i] = frand() * 2, v[i] = frand(), kh[i] = kn_f32_to_f16(k[i]), vh[i] = kn_f32_to_f16(v[i]);
  bool ok = true;
  for (int i = 0; i < 2; i++) {
    kn_ctx *c = kn_ctx_new(i ? d7 : d1);
    kn_ctx_set(c);
    int64_t cs[3] = {C, KV, D};
    kn_t K = kn_from_host(kvdt, 3, cs, kvdt == KN_F16 ? (void *)kh : (void *)k);
    kn_t V = kn_from_host(kvdt, 3, cs, kvdt == KN_F16 ? (void *)vh : (void *)v);
    kn_var *pos = kn_var_new("pos", 0, C - T);
    kn_t out = kn_contiguous(kn_custom_attention_window(kn_from_host(KN_F32, 3, (int64_t[]){T, H, D}, q), K, V, pos, T,
                                                        1.0f / sqrtf((float)D), 0));
    kn_plan *p = kn_plan_new(&out, 1);
    ok &= p && !kn_plan_run(p, &(kn_bind){pos, C - T}, 1) && !kn_buf_copyout(kn_buffer_of(out), 0, got[i], qn * 4);
    kn_plan_free(p);
    kn_ctx_free(c);
  }
  ok &= !memcmp(got[0], got[1], qn * 4);
  if (ok) passed++;
  else failed++, printf("FAIL split attention T=%d H=%d KV=%d D=%d C=%d %s: 1 and 7 threads differ\n", T, H, KV, D, C, kn_dtype_name(kvdt));
  free(q), free(k), free(v), free(got[0]), free(got[1]), free(kh), free(vh);
}

int main(void) {
  char err[256];
  kn_device *d = kn_device_open(NULL, err, sizeof err); /* $DEVICE, else the CPU */
  if (!d) return printf("no device: %s\n", err), 1;
  kn_ctx *c = kn_ctx_new(d);
  kn_ctx_set(c);
  srand(11);
  const int shapes[][5] = {{1, 8, 2, 32, 64}, {5, 8, 2, 32, 64}, {1, 14, 2, 64, 40}, {7, 4, 4, 16, 33},
                           {3, 6, 1, 128, 20}, {16, 2, 2, 8, 16}, {1, 28, 4, 128, 300}, {2, 12, 3, 4, 9},
                           {1, 14, 2, 64, 2500}, {3, 8, 2, 128, 1100}, /* long: many blocks of 16 keys */
                           /* prefill: tiles of 4 / 8 / 16 queries (the last one partial), GQA, head_dim 4..128 */
                           {16, 14, 2, 64, 700}, {37, 8, 2, 128, 300}, {21, 6, 1, 4, 50}, {40, 4, 4, 16, 40},
                           {64, 28, 4, 32, 130},
                           /* decode and short passes with a query's heads in the lanes (G 8 and 12) */
                           {3, 16, 2, 64, 200}, {1, 12, 1, 32, 90},
                           /* head_dim 256 with 32 heads per KV head: past the tiled kernel's stack bound on AVX-512 */
                           {32, 32, 1, 256, 40}};
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
    for (int f16 = 0; f16 < 2; f16++) {
      if (!f16) { /* a fresh context per shape: one holds at most 64 variables */
        kn_ctx_free(c);
        kn_ctx_set(c = kn_ctx_new(d));
      }
      one_case(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], shapes[i][4], f16 ? KN_F16 : KN_F32, 0, false);
      /* sliding windows, shorter than and near the query count (both kernels), and the primitive path */
      int w = 1 + rand() % (shapes[i][0] + 6);
      one_case(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], shapes[i][4], f16 ? KN_F16 : KN_F32, w, false);
      /* the primitive path (a graph matmul over the whole cache) sums head_dim 256 in chains that pass the bound
       * on 8- and 16-lane vectors, not on SSE's 4: the last shape is there for the fused kernel's choice */
      if (shapes[i][3] <= 128)
        one_case(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], shapes[i][4], f16 ? KN_F16 : KN_F32, f16 ? w : 0,
                 true);
    }
  const int rshapes[][7] = {{1, 8, 2, 32, 3, 16, 4}, {8, 8, 2, 32, 4, 24, 8}, {5, 14, 2, 64, 2, 40, 0},
                            {16, 4, 4, 16, 3, 12, 8}, {7, 6, 1, 128, 5, 9, 3}, {12, 2, 2, 8, 1, 20, 4},
                            /* tiles of queries (32 and more), some straddling sequences */
                            {40, 8, 2, 32, 3, 64, 8}, {48, 14, 2, 64, 2, 200, 4}, {33, 4, 4, 16, 6, 12, 0},
                            {12, 16, 2, 32, 3, 40, 4}};
  kn_ctx_free(c);
  kn_ctx_set(c = kn_ctx_new(d));
  for (size_t i = 0; i < sizeof rshapes / sizeof *rshapes; i++)
    for (int f16 = 0; f16 < 2; f16++) {
      const int *r = rshapes[i];
      rows_case(r[0], r[1], r[2], r[3], r[4], r[5], r[6], f16 ? KN_F16 : KN_F32, 0);
      rows_case(r[0], r[1], r[2], r[3], r[4], r[5], r[6], f16 ? KN_F16 : KN_F32, 1 + rand() % 8);
    }
  kn_ctx_free(c);
  kn_device_close(d);
  /* Passes with fewer work items than threads split a KV head's query heads into groups, an item each
   * (codegen/attention.c head_split): decode shapes and two prompt chunks (tiles of queries, 3 or 5 of them) on a
   * device of 7 threads, whose items are split up to 14 ways, batched rows too. */
  setenv("THREADS", "7", 1);
  d = kn_device_open(NULL, err, sizeof err);
  if (!d) return printf("no device with 7 threads: %s\n", err), 1;
  const int dshapes[][5] = {{1, 12, 1, 32, 90}, {1, 14, 2, 64, 300}, {1, 16, 4, 128, 70}, {2, 8, 1, 256, 40},
                            {3, 6, 2, 16, 33}, {1, 8, 8, 64, 20}, {1, 28, 4, 128, 1100}, {1, 4, 1, 256, 500},
                            {1, 14, 1, 64, 200}, {33, 8, 1, 32, 60}, {40, 4, 2, 16, 70}};
  for (size_t i = 0; i < sizeof dshapes / sizeof *dshapes; i++)
    for (int f16 = 0; f16 < 2; f16++) {
      kn_ctx_set(c = kn_ctx_new(d));
      const int *r = dshapes[i];
      one_case(r[0], r[1], r[2], r[3], r[4], f16 ? KN_F16 : KN_F32, 0, false);
      one_case(r[0], r[1], r[2], r[3], r[4], f16 ? KN_F16 : KN_F32, 1 + rand() % 40, false);
      rows_case(r[0], r[1], r[2], r[3], 2, r[4] / 2 + 2, 3, f16 ? KN_F16 : KN_F32, 0);
      kn_ctx_free(c);
    }
  setenv("THREADS", "1", 1);
  kn_device *d1 = kn_device_open(NULL, err, sizeof err);
  if (!d1) return printf("no device with 1 thread: %s\n", err), 1;
  for (size_t i = 0; i < sizeof dshapes / sizeof *dshapes; i++)
    for (int f16 = 0; f16 < 2; f16++)
      split_bits_case(d1, d, dshapes[i][0], dshapes[i][1], dshapes[i][2], dshapes[i][3], dshapes[i][4], f16 ? KN_F16 : KN_F32);
  printf("%d passed, %d failed\n", passed, failed);
  kn_device_close(d1);
  kn_device_close(d);
  return failed ? 1 : 0;
}
