/* Fusion: the scheduler's kernel counts for the patterns DESIGN.md promises, each also run and checked against a
 * plain C reference so a fused kernel that computes the wrong thing fails too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static float silu(float v) { return v / (1 + expf(-v)); }

/* out[t][o] = sum_i x[t][i] * w[o][i] */
static void ref_linear(const float *x, const float *w, float *out, int64_t T, int64_t O, int64_t I) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t o = 0; o < O; o++) {
      double s = 0;
      for (int64_t i = 0; i < I; i++) s += (double)x[t * I + i] * w[o * I + i];
      out[t * O + o] = (float)s;
    }
}

/* The patterns a transformer layer is made of, with their kernel counts (docs/graph-api.md, "What fuses"). */
static void test_layer_patterns(void) {
  int64_t T = 3, E = 64, F = 96, H = 4, D = 16;
  float *x, *w1, *w2, *wu, *nw;
  kn_t X = randt(2, (int64_t[]){T, E}, &x), W1 = randt(2, (int64_t[]){F, E}, &w1), W2 = randt(2, (int64_t[]){E, F}, &w2);
  kn_t WU = randt(2, (int64_t[]){F, E}, &wu), NW = randt(1, &E, &nw);
  float *h = malloc(T * F * sizeof *h), *u = malloc(T * F * sizeof *u), *want = malloc(T * F * sizeof *want);
  /* the two-layer MLP of docs/graph-api.md: SiLU in the first matmul's kernel, the second matmul */
  ref_linear(x, w1, h, T, F, E);
  for (int64_t i = 0; i < T * F; i++) h[i] = silu(h[i]);
  ref_linear(h, w2, want, T, E, F);
  expect("silu(x W1) W2", kn_linear(kn_silu(kn_linear(X, W1, NULL)), W2, NULL), 2, 2, want, T * E, 1e-4);
  /* gate * up: both sums in one kernel */
  ref_linear(x, w1, h, T, F, E);
  ref_linear(x, wu, u, T, F, E);
  for (int64_t i = 0; i < T * F; i++) want[i] = silu(h[i]) * u[i];
  expect("silu(x Wg) * (x Wu)", kn_mul(kn_silu(kn_linear(X, W1, NULL)), kn_linear(X, WU, NULL)), 1, 1, want, T * F, 1e-4);
  /* RMSNorm then a matmul: the mean square, then the matmul with the normalize inlined */
  float *xn = malloc(T * E * sizeof *xn);
  for (int64_t t = 0; t < T; t++) {
    double ss = 0;
    for (int64_t i = 0; i < E; i++) ss += (double)x[t * E + i] * x[t * E + i];
    float r = (float)(1 / sqrt(ss / E + 1e-5));
    for (int64_t i = 0; i < E; i++) xn[t * E + i] = x[t * E + i] * r * nw[i];
  }
  ref_linear(xn, w1, want, T, F, E);
  /* several tokens: mean square, normalize, matmul; one token: the normalize inside the matmul */
  expect("rmsnorm(x) W, 3 tokens", kn_linear(kn_rmsnorm(X, NW, 1e-5f), W1, NULL), 3, 3, want, T * F, 1e-4);
  kn_t X1 = kn_shrink(X, (int64_t[]){0, 0}, (int64_t[]){1, E});
  expect("rmsnorm(x) W, 1 token", kn_linear(kn_rmsnorm(X1, NW, 1e-5f), W1, NULL), 2, 2, want, F, 1e-4);
  /* RoPE of a projection (both layouts): one token (decode) is one kernel, the pair swap pushed into the matmul;
   * several tokens, or KILN_FUSE_ROPE=0, two kernels (the projection and the rotation) */
  float *cs, *sn, *q = malloc(T * H * D * sizeof *q);
  kn_t COS = randt(2, (int64_t[]){T, D / 2}, &cs), SIN = randt(2, (int64_t[]){T, D / 2}, &sn);
  ref_linear(x, w1, q, T, H * D, E); /* the first H*D rows of W1 */
  kn_t WQ = kn_shrink(W1, (int64_t[]){0, 0}, (int64_t[]){H * D, E});
  for (int variant = 0; variant < 8; variant++) {
    int neox = variant & 1, fuse = variant >= 4; /* the default fuses a one-token RoPE into its projection */
    if (fuse) unsetenv("KILN_FUSE_ROPE");
    else setenv("KILN_FUSE_ROPE", "0", 1);
    int64_t TT = (variant & 3) < 2 ? 1 : T; /* the first TT tokens */
    for (int64_t t = 0; t < TT; t++)
      for (int64_t hh = 0; hh < H; hh++)
        for (int64_t j = 0; j < D / 2; j++) {
          int64_t ia = neox ? j : 2 * j, ib = neox ? j + D / 2 : 2 * j + 1, base = (t * H + hh) * D;
          float qa = q[base + ia], qb = q[base + ib], c = cs[t * D / 2 + j], s = sn[t * D / 2 + j];
          want[base + ia] = qa * c - qb * s, want[base + ib] = qa * s + qb * c;
        }
    /* a fresh leaf per variant: the same graph would already be realized by an earlier variant */
    kn_t XT = kn_shrink(kn_from_host(KN_F32, 2, (int64_t[]){T, E}, x), (int64_t[]){0, 0}, (int64_t[]){TT, E});
    kn_t Q = kn_reshape(kn_linear(XT, WQ, NULL), 3, (int64_t[]){TT, H, D});
    kn_t CT = kn_shrink(COS, (int64_t[]){0, 0}, (int64_t[]){TT, D / 2}), ST = kn_shrink(SIN, (int64_t[]){0, 0}, (int64_t[]){TT, D / 2});
    const char *names[] = {"KILN_FUSE_ROPE=0 rope(x Wq), 1 token", "KILN_FUSE_ROPE=0 rope(x Wq) neox, 1 token",
                           "KILN_FUSE_ROPE=0 rope(x Wq), 3 tokens", "KILN_FUSE_ROPE=0 rope(x Wq) neox, 3 tokens",
                           "rope(x Wq), 1 token", "rope(x Wq) neox, 1 token", "rope(x Wq), 3 tokens",
                           "rope(x Wq) neox, 3 tokens"};
    int nk = TT == 1 && fuse ? 1 : 2;
    expect(names[variant], kn_rope(Q, CT, ST, neox), nk, nk, want, TT * H * D, 1e-4);
  }
  unsetenv("KILN_FUSE_ROPE");
  free(x), free(w1), free(w2), free(wu), free(nw), free(h), free(u), free(want), free(xn), free(cs), free(sn), free(q);
}

/* A row's RoPE(rmsnorm(x) W) is the same bits whether the row is one token (RoPE swizzled into the projection) or
 * the first of three (projection and rotation apart), for f32 and f16 weights and both layouts: a sequence decoded
 * alone equals the same sequence decoded inside a continuous batch (test_batch's exact mode). */
static void test_rope_rows_exact(void) {
  int64_t T = 3, E = 256, H = 8, D = 32;
  float *x, *w, *nw, *cs, *sn;
  kn_t W32 = randt(2, (int64_t[]){H * D, E}, &w), NW = randt(1, &E, &nw);
  kn_t W16 = kn_contiguous(kn_cast(W32, KN_F16));
  x = malloc(T * E * sizeof *x), cs = malloc(T * D / 2 * sizeof *cs), sn = malloc(T * D / 2 * sizeof *sn);
  for (int64_t i = 0; i < T * E; i++) x[i] = frand();
  for (int64_t i = 0; i < T * D / 2; i++) cs[i] = frand(), sn[i] = frand();
  if (kn_realize(&W16, 1)) return (void)(failed++, printf("FAIL f16 weights: %s\n", kn_ctx_error(kn_ctx_current())));
  float *many = malloc(T * H * D * sizeof *many), *one = malloc(H * D * sizeof *one);
  unsetenv("KILN_FUSE_ROPE");
  for (int variant = 0; variant < 4; variant++) {
    bool neox = variant & 1;
    kn_t W = variant & 2 ? W16 : W32;
    char name[96];
    snprintf(name, sizeof name, "rope(rmsnorm(x) W%s)%s: one row == first of three, bit for bit", variant & 2 ? " f16" : "",
             neox ? " neox" : "");
    int nk[2] = {0, 0}, rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++) {
      int64_t TT = pass ? 1 : T;
      /* fresh leaves: a realized graph would not be scheduled again */
      kn_t XT = kn_shrink(kn_from_host(KN_F32, 2, (int64_t[]){T, E}, x), (int64_t[]){0, 0}, (int64_t[]){TT, E});
      kn_t CT = kn_shrink(kn_from_host(KN_F32, 2, (int64_t[]){T, D / 2}, cs), (int64_t[]){0, 0}, (int64_t[]){TT, D / 2});
      kn_t ST = kn_shrink(kn_from_host(KN_F32, 2, (int64_t[]){T, D / 2}, sn), (int64_t[]){0, 0}, (int64_t[]){TT, D / 2});
      kn_t q = kn_reshape(kn_linear(kn_rmsnorm(XT, NW, 1e-5f), W, NULL), 3, (int64_t[]){TT, H, D});
      q = kn_rope(q, CT, ST, neox);
      nk[pass] = kn_schedule_count(&q, 1);
      rc = kn_to_host(q, pass ? one : many, TT * H * D * sizeof *one);
    }
    int64_t bad = -1;
    for (int64_t i = 0; !rc && i < H * D && bad < 0; i++)
      if (memcmp(&one[i], &many[i], sizeof *one)) bad = i;
    /* one row: the rmsnorm's mean square, then projection and rotation in one kernel */
    if (!rc && bad < 0 && nk[1] == 2) passed++;
    else if (rc) failed++, printf("FAIL %s: %s\n", name, kn_ctx_error(kn_ctx_current())), kn_ctx_clear_error(kn_ctx_current());
    else if (bad >= 0) failed++, printf("FAIL %s: element %lld is %.9g alone, %.9g in three rows\n", name, (long long)bad, one[bad], many[bad]);
    else failed++, printf("FAIL %s: one row took %d kernels, want 2 (RoPE inside the projection)\n", name, nk[1]);
  }
  free(x), free(w), free(nw), free(cs), free(sn), free(many), free(one);
}

/* GRAPH=1: one cluster per kernel, and a node recomputed by two kernels drawn in both */
static void test_graph_dot(void) {
  char dir[] = "/tmp/kiln-graph-XXXXXX";
  if (!mkdtemp(dir)) return (void)(failed++, printf("FAIL GRAPH=1: no temporary directory\n"));
  setenv("GRAPH", "1", 1), setenv("GRAPH_DIR", dir, 1);
  int64_t T = 1, E = 32, F = 48; /* one token: the cheap x * w - x is recomputed, not realized */
  float *x, *nw, *wa, *wb;
  kn_t X = randt(2, (int64_t[]){T, E}, &x), NW = randt(1, &E, &nw);
  kn_t WA = randt(2, (int64_t[]){F, E}, &wa), WB = randt(2, (int64_t[]){F, E}, &wb);
  kn_t n = kn_sub(kn_mul(X, NW), X); /* cheap: inlined into (recomputed by) both matmuls */
  kn_t outs[2] = {kn_linear(n, WA, NULL), kn_linear(n, WB, NULL)};
  int rc = kn_realize(outs, 2);
  unsetenv("GRAPH"), unsetenv("GRAPH_DIR");
  char path[256], line[512];
  snprintf(path, sizeof path, "%s/kiln-graph-0.dot", dir);
  FILE *f = fopen(path, "r");
  int clusters = 0, in_cluster = -1, mul_clusters = 0, last_mul_cluster = -1;
  char first_id[64] = "";
  while (f && fgets(line, sizeof line, f)) {
    if (strstr(line, "subgraph cluster_")) in_cluster = clusters++;
    else if (!strncmp(line, " }", 2)) in_cluster = -1;
    /* the SUB node of n inside a kernel */
    else if (in_cluster >= 0 && strstr(line, "label=\"SUB\\nf32") && last_mul_cluster != in_cluster) {
      /* a node of its own in each cluster (Graphviz draws one node per id, whatever cluster names it again) */
      char id[64] = "";
      sscanf(line, " %63s", id);
      if (strcmp(id, first_id)) mul_clusters++, last_mul_cluster = in_cluster;
      if (!first_id[0]) snprintf(first_id, sizeof first_id, "%s", id);
    }
  }
  if (f) fclose(f);
  if (!rc && f && clusters == 2 && mul_clusters == 2) passed++;
  else failed++, printf("FAIL GRAPH=1: %s: %d kernel clusters (want 2), x * w - x drawn in %d of them (want 2)\n",
                        f ? path : "no DOT file", clusters, mul_clusters);
  remove(path);
  snprintf(path, sizeof path, "%s/kiln-graph-0.svg", dir);
  remove(path);
  rmdir(dir);
  free(x), free(nw), free(wa), free(wb);
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

  test_layer_patterns();
  test_rope_rows_exact();
  test_graph_dot();

  printf("%d passed, %d failed\n", passed, failed);
  free(a), free(b), free(cc), free(w), free(want);
  kn_ctx_free(c);
  kn_device_close(d);
  return failed ? 1 : 0;
}
