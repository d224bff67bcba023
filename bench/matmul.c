/* Matmul benchmark: this machine's peak float32 FMA rate (a hand-written FMA loop on every core) against kiln's
 * 1024x1024x1024 float32 matmul compiled from the scheduler's AST (REDUCE(ADD, MUL(a, b)) over [M, N, K]).
 * Prints the peak (best of 7 runs) and kiln's median GFLOP/s, and their ratio.
 * Usage: bench_matmul [N] [repeats] [gemv [FORMAT...] | gemm [T] [FORMAT...]]
 * gemv: also 4096x4096 GEMV over f32, f16 and block-format weights (all, or the named ones: q4_k q6_k ..., each
 * optionally with its own shape, q6_k:151936x256), in GB/s of weights, of the one matrix (partly cache-resident)
 * and streamed from DRAM over copies of it (as decode reads a model), each also as a fraction of f32's; gemm: T x 2048 x 2048 (T activation rows, default 128: prefill) over the same weights. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "device/device.h"
#include "device/base/env.h"
#include "tests/ref_quant.h"
#include "tests/wmm.h"

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));

#define NACC 12
#define PEAK_ITERS 20000000L

typedef struct {
  int wide;
  float seed;
  float sink;
} peak_arg;

/* NACC independent FMA chains hide the FMA latency; the result is kept so the loop is not removed. */
static void *peak_thread(void *p) {
  peak_arg *a = p;
  float s = a->seed;
  if (a->wide) {
    v16 acc[NACC], x = {0}, y = {0};
    for (int i = 0; i < 16; i++) x[i] = 0.999999f + s * 1e-9f, y[i] = 1e-7f;
    for (int j = 0; j < NACC; j++) acc[j] = x * (float)(j + 1);
    for (long i = 0; i < PEAK_ITERS; i++)
      for (int j = 0; j < NACC; j++) acc[j] = acc[j] * x + y;
    for (int j = 1; j < NACC; j++) acc[0] += acc[j];
    a->sink = acc[0][0] + acc[0][15];
  } else {
    v8 acc[NACC], x = {0}, y = {0};
    for (int i = 0; i < 8; i++) x[i] = 0.999999f + s * 1e-9f, y[i] = 1e-7f;
    for (int j = 0; j < NACC; j++) acc[j] = x * (float)(j + 1);
    for (long i = 0; i < PEAK_ITERS; i++)
      for (int j = 0; j < NACC; j++) acc[j] = acc[j] * x + y;
    for (int j = 1; j < NACC; j++) acc[0] += acc[j];
    a->sink = acc[0][0] + acc[0][7];
  }
  return NULL;
}

static double peak_gflops(int nthreads, int wide) {
  pthread_t th[256];
  peak_arg args[256];
  double t0 = kn_now();
  for (int i = 0; i < nthreads; i++) {
    args[i] = (peak_arg){wide, (float)i, 0};
    pthread_create(&th[i], NULL, peak_thread, &args[i]);
  }
  for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  double dt = kn_now() - t0;
  return (double)nthreads * PEAK_ITERS * NACC * (wide ? 16 : 8) * 2 / dt / 1e9;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmpd);
  return v[n / 2];
}

/* The last-level cache's size in bytes: the largest cache sysfs lists for cpu0 (what a VM's guest sees; glibc's
 * sysconf may report the whole physical chip's), else sysconf's, else 64 MB. */
static double llc_bytes(void) {
  double best = 0;
  for (int i = 0; i < 8; i++) {
    char path[96], unit = 0;
    long v = 0;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fscanf(f, "%ld%c", &v, &unit) >= 1) {
      double b = (double)v * (unit == 'K' ? 1024 : unit == 'M' ? 1048576 : 1);
      if (b > best) best = b;
    }
    fclose(f);
  }
  if (best <= 0) best = (double)sysconf(_SC_LEVEL3_CACHE_SIZE);
  return best > 0 ? best : 64e6;
}

/* A GEMV's weight in copies launched one after the other (decode's stream: see bench_wmm). */
typedef struct {
  kn_program *p;
  const kn_compiled *c;
  kn_buf *out, *x, *w[64];
  int n;
  double bytes; /* of all copies */
} stream_set;

/* Copies of w, together at least four times the last-level cache and 256 MB; 0 copies if memory runs out. */
static void stream_init(stream_set *s, kn_device *dev, kn_program *p, const kn_compiled *c, kn_buf **bufs, size_t wbytes) {
  char err[256];
  double llc = llc_bytes(), want = llc * 4 > 256e6 ? llc * 4 : 256e6;
  *s = (stream_set){.p = p, .c = c, .out = bufs[0], .x = bufs[1], .n = (int)(want / (double)wbytes) + 1};
  if (s->n > 64) s->n = 64;
  for (int i = 0; i < s->n; i++) {
    if (!(s->w[i] = kn_buf_alloc(dev, wbytes, err, sizeof err))) {
      fprintf(stderr, "bench_matmul: streamed copies: %s\n", err);
      for (int j = 0; j < i; j++) kn_buf_free(s->w[j]);
      s->n = 0;
      return;
    }
    memcpy(s->w[i]->ptr, bufs[2]->ptr, wbytes);
  }
  s->bytes = (double)wbytes * s->n;
}

/* One pass over every copy: GB/s of weights. */
static double stream_pass(kn_device *dev, const stream_set *s) {
  char err[256];
  double t0 = kn_now();
  for (int i = 0; i < s->n; i++) {
    kn_buf *b[3] = {s->out, s->x, s->w[i]};
    kn_program_launch(s->p, b, 3, NULL, 0, s->c->global, s->c->local, err, sizeof err);
  }
  kn_device_sync(dev);
  return s->bytes / (kn_now() - t0) / 1e9;
}

static void stream_free(stream_set *s) {
  for (int i = 0; i < s->n; i++) kn_buf_free(s->w[i]);
  s->n = 0;
}

/* f32's GEMV of this run, kept for the other formats' ratios: its cache-resident GB/s and its stream, whose passes
 * alternate with each format's (the shared host's bandwidth drifts by 2x within minutes) */
static struct {
  double hot;
  stream_set s;
  kn_program *p;
  kn_compiled c;
  kn_buf *bufs[3];
} f32_ref;

/* Matmul over a (block-format) weight, out[t, n] = sum_k x[t, k] * W[n, k] for T rows of activations: T = 1 is
 * the decode step's GEMV, bound by memory bandwidth (reported in GB/s of weight bytes read); T > 1 is prefill.
 * A few outputs are checked against the plain C reference dequantizer so a fast wrong kernel cannot pass. */
static void bench_wmm(kn_device *dev, kn_dtype q, int64_t T, int64_t N, int64_t K, int reps) {
  char err[512];
  kn_kernel *k = kn_test_wmm_kernel(q, T, N, K);
  kn_compiled c;
  kn_program *p = NULL;
  kn_buf *bufs[3] = {0};
  int64_t wbytes = kn_dtype_nbytes(q, N * K);
  double t0c = kn_now();
  if (kn_compile(k, kn_device_target(dev), &c, err, sizeof err) ||
      !(p = kn_program_load(dev, c.entry, c.obj, c.obj_size, err, sizeof err))) {
    fprintf(stderr, "bench_matmul: %s %s: %s\n", T == 1 ? "gemv" : "gemm", kn_dtype_name(q), err);
    kn_kernel_free(k);
    return;
  }
  double tcomp = kn_now() - t0c;
  uint64_t rs = 42;
  int64_t sizes[3] = {T * N * 4, T * K * 4, wbytes};
  for (int i = 0; i < 3; i++)
    if (!(bufs[i] = kn_buf_alloc(dev, (size_t)sizes[i], err, sizeof err))) {
      fprintf(stderr, "bench_matmul: alloc: %s\n", err);
      goto done;
    }
  kn_ref_fill_random(KN_F32, bufs[1]->ptr, T * K, &rs);
  kn_ref_fill_random(q, bufs[2]->ptr, N * K, &rs);
  double ts[64];
  if (reps > 64) reps = 64;
  double cs[64]; /* CPU time of the process per launch: on a shared machine, what the kernel cost when it ran */
  for (int r = 0; r < reps; r++) {
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    double t0 = kn_now();
    kn_program_launch(p, bufs, 3, NULL, 0, c.global, c.local, err, sizeof err);
    kn_device_sync(dev);
    ts[r] = kn_now() - t0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    cs[r] = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
  }
  /* Decode reads each weight once per token from DRAM (a model's layers are far larger than the caches), so T = 1
   * is also timed over copies of the weight launched one after the other: the one matrix alone may be partly
   * cache-resident (a 4096^2 f32 is 64 MB, a q2_k one 5.5 MB), which measures the kernel's compute, not the stream
   * decode sees. Each pass alternates with one of f32's stream; the ratio is the median of the pairs'. */
  stream_set st = {0};
  double sv[64], rv[64];
  int nr = 0;
  if (T == 1) stream_init(&st, dev, p, &c, bufs, (size_t)wbytes);
  for (int r = 0; r < reps && st.n > 0; r++) {
    double f = q != KN_F32 && f32_ref.s.n > 0 ? stream_pass(dev, &f32_ref.s) : 0;
    sv[r] = stream_pass(dev, &st);
    if (f > 0) rv[nr++] = sv[r] / f;
  }
  float *row = malloc((size_t)K * sizeof *row);
  /* the integer-dot mode: GEMV, and prefill through the tiled template (codegen/quant_mm.c, named qmm_) */
  bool qdot = kn_dtype_is_quant(q) && kn_getenv_int("KILN_EXACT", 0) <= 0 && (T == 1 || !strncmp(c.name, "qmm_", 4));
  const float *X = bufs[1]->ptr, *O = bufs[0]->ptr;
  int bad = 0;
  for (int s = 0; s < 8 && row; s++) {
    int64_t n = (s * 977 + 13) % N, t = (s * 131) % T;
    double ref = 0, mag = 0;
    if (q != KN_F32) kn_ref_dequant(q, (const char *)bufs[2]->ptr + kn_dtype_nbytes(q, n * K), K, row);
    else memcpy(row, (const float *)bufs[2]->ptr + n * K, (size_t)K * sizeof *row);
    /* the integer-dot mode quantizes each block of activations to int8: each one is off by at most half a step */
    int64_t qk = kn_dtype_get(q)->block_elems;
    double slack = 0;
    for (int64_t b0 = 0; b0 < K; b0 += qk) {
      double amax = 0, wsum = 0;
      for (int64_t j = b0; j < b0 + qk && j < K; j++) {
        ref += (double)X[t * K + j] * row[j], mag += __builtin_fabs((double)X[t * K + j] * row[j]);
        amax = __builtin_fmax(amax, __builtin_fabs((double)X[t * K + j])), wsum += __builtin_fabs((double)row[j]);
      }
      slack += wsum * amax / 254;
    }
    if (__builtin_fabs(O[t * N + n] - ref) > 1e-4 * mag + 1e-3 + (qdot ? slack : 0)) bad++;
  }
  free(row);
  double tb = ts[0];
  for (int r = 1; r < reps; r++) tb = ts[r] < tb ? ts[r] : tb;
  double tm = median(ts, reps), cm = median(cs, reps);
  printf("kiln %s %s %lldx%lldx%lld (%s%s, compile %.0f ms): %.3f ms, %.1f GB/s of weights (best %.1f), %.1f GFLOP/s, "
         "%.1f GFLOP per CPU second%s\n",
         T == 1 ? "gemv" : "gemm", kn_dtype_name(q), (long long)T, (long long)N, (long long)K, c.name,
         qdot ? " int-dot" : "", tcomp * 1e3,
         tm * 1e3, (double)wbytes / tm / 1e9, (double)wbytes / tb / 1e9, 2.0 * T * N * K / tm / 1e9,
         2.0 * T * N * K / cm / 1e9, bad ? "  WRONG RESULTS" : "");
  if (st.n > 0) {
    double hot = (double)wbytes / tm / 1e9;
    printf("  streamed over %d copies (%.0f MB): %.1f GB/s of weights", st.n, st.bytes / 1e6, median(sv, reps));
    if (nr > 0) printf(", %.0f %% of f32's (cache-resident: %.0f %%)", 100 * median(rv, nr), 100 * hot / f32_ref.hot);
    printf("\n");
  }
  if (q == KN_F32 && T == 1 && st.n > 0 && !f32_ref.p) { /* kept for the formats after it */
    f32_ref.hot = (double)wbytes / tm / 1e9, f32_ref.s = st, f32_ref.p = p, f32_ref.c = c;
    f32_ref.s.c = &f32_ref.c;
    memcpy(f32_ref.bufs, bufs, sizeof f32_ref.bufs);
    kn_kernel_free(k);
    return;
  }
  stream_free(&st);
done:
  for (int i = 0; i < 3; i++) kn_buf_free(bufs[i]);
  kn_program_free(p);
  kn_compiled_free(&c);
  kn_kernel_free(k);
}

int main(int argc, char **argv) {
  int64_t N = argc > 1 ? atoll(argv[1]) : 1024;
  int reps = argc > 2 ? atoi(argv[2]) : 9;
  if (N < 1 || reps < 1 || reps > 1000) {
    fprintf(stderr, "usage: bench_matmul [N >= 1] [repeats 1..1000] [gemv [FORMAT...] | gemm [T] [FORMAT...]]\n");
    return 2;
  }
  char err[512];
  kn_device *dev = kn_device_open("CPU", err, sizeof err);
  if (!dev) {
    fprintf(stderr, "bench_matmul: %s\n", err);
    return 1;
  }
  const kn_target *t = kn_device_target(dev);
  int nth = t->ncores > 0 ? t->ncores : (int)sysconf(_SC_NPROCESSORS_ONLN);
  /* the best of several runs: other processes on a shared machine can only slow a run down */
  double peak = 0;
  for (int i = 0; i < 7; i++) {
    double a = peak_gflops(nth, 1), b = peak_gflops(nth, 0);
    if (a > peak) peak = a;
    if (b > peak) peak = b;
  }

  kn_kernel *k = kn_kernel_new();
  k->nbufs = 3;
  for (int i = 0; i < 3; i++) k->bufs[i] = (kn_kbuf){KN_F32, N * N};
  k->ndim = 3, k->nreduce = 1;
  int64_t sh[3] = {N, N, N}, sa[3] = {N, 0, 1}, sb[3] = {0, 1, N}, so[3] = {N, 1, 0}, osh[3] = {N, N, 1};
  memcpy(k->shape, sh, sizeof sh);
  k->out_st = kn_test_view3(osh, so);
  kn_st a = kn_test_view3(sh, sa), b = kn_test_view3(sh, sb);
  k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &a),
                                                     kn_kop_load(k, 2, KN_F32, &b), NULL));
  kn_compiled c;
  if (kn_compile(k, t, &c, err, sizeof err)) {
    fprintf(stderr, "bench_matmul: compile: %s\n", err);
    return 1;
  }
  kn_program *p = kn_program_load(dev, c.entry, c.obj, c.obj_size, err, sizeof err);
  if (!p) {
    fprintf(stderr, "bench_matmul: load: %s\n", err);
    return 1;
  }
  kn_buf *bufs[3];
  for (int i = 0; i < 3; i++) {
    if (!(bufs[i] = kn_buf_alloc(dev, (size_t)(N * N) * 4, err, sizeof err))) {
      fprintf(stderr, "bench_matmul: alloc: %s\n", err);
      return 1;
    }
    float *f = bufs[i]->ptr;
    for (int64_t j = 0; j < N * N; j++) f[j] = (float)((j * 7919 + i) % 1000) / 1000.0f - 0.5f;
  }
  /* spot-check a few outputs against plain C so a fast wrong kernel cannot pass */
  kn_program_launch(p, bufs, 3, NULL, 0, c.global, c.local, err, sizeof err);
  kn_device_sync(dev);
  const float *A = bufs[1]->ptr, *B = bufs[2]->ptr, *C = bufs[0]->ptr;
  for (int s = 0; s < 16; s++) {
    int64_t i = (s * 131) % N, j = (s * 977) % N;
    double ref = 0;
    for (int64_t kk = 0; kk < N; kk++) ref += (double)A[i * N + kk] * B[kk * N + j];
    if (C[i * N + j] - ref > 1e-3 || ref - C[i * N + j] > 1e-3) {
      fprintf(stderr, "bench_matmul: wrong result at (%lld, %lld): %g, want %g\n", (long long)i, (long long)j, C[i * N + j], ref);
      return 1;
    }
  }
  double *ts = calloc((size_t)reps, sizeof *ts);
  double *cs = calloc((size_t)reps, sizeof *cs); /* CPU time of the process per launch: what the kernel cost when it ran */
  for (int r = 0; r < reps; r++) {
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    double t0 = kn_now();
    kn_program_launch(p, bufs, 3, NULL, 0, c.global, c.local, err, sizeof err);
    kn_device_sync(dev);
    ts[r] = kn_now() - t0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    cs[r] = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
  }
  double tm = median(ts, reps), gf = 2.0 * N * N * N / tm / 1e9, cm = median(cs, reps);
  printf("peak FMA (%d threads): %.1f GFLOP/s\n", nth, peak);
  printf("kiln matmul %lldx%lldx%lld f32 (%s, global %lld): %.2f ms (%.2f ms of CPU), %.1f GFLOP/s\n", (long long)N,
         (long long)N, (long long)N, c.name, (long long)c.global[0], tm * 1e3, cm * 1e3, gf);
  printf("ratio: %.1f%% of peak\n", 100.0 * gf / peak);
  for (int i = 0; i < 3; i++) kn_buf_free(bufs[i]);
  kn_program_free(p);
  kn_compiled_free(&c);
  kn_kernel_free(k);
  free(ts), free(cs);
  if (argc > 3 && (!strcmp(argv[3], "gemv") || !strcmp(argv[3], "gemm"))) {
    bool gemm = !strcmp(argv[3], "gemm");
    int64_t T = 1;
    int first = 4;
    if (gemm) T = argc > 4 ? atoll(argv[4]) : 128, first = 5;
    if (T < 1) T = 1;
    kn_dtype qs[] = {KN_F32, KN_F16, KN_BF16, KN_Q8_0, KN_Q4_0, KN_Q4_1, KN_Q5_0, KN_Q5_1, KN_Q4_K, KN_Q5_K, KN_Q6_K, KN_Q2_K, KN_Q3_K};
    int64_t dim = gemm ? 2048 : 4096;
    /* FORMAT or FORMAT:NxK (a weight of N rows of K, e.g. q6_k:151936x256, the tied output matrix of a small model) */
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
      bool want = argc <= first;
      for (int a = first; a < argc; a++) {
        size_t n = strlen(kn_dtype_name(qs[i]));
        if (strncmp(argv[a], kn_dtype_name(qs[i]), n) || (argv[a][n] && argv[a][n] != ':')) continue;
        long long rn = dim, rk = dim;
        if (argv[a][n] == ':' && (sscanf(argv[a] + n + 1, "%lldx%lld", &rn, &rk) != 2 || rn < 1 || rk < 1)) {
          fprintf(stderr, "bench_matmul: bad shape in %s (want FORMAT:NxK)\n", argv[a]);
          continue;
        }
        bench_wmm(dev, qs[i], T, rn, rk, reps);
      }
      if (want) bench_wmm(dev, qs[i], T, dim, dim, reps);
    }
  }
  if (f32_ref.p) {
    stream_free(&f32_ref.s);
    for (int i = 0; i < 3; i++) kn_buf_free(f32_ref.bufs[i]);
    kn_program_free(f32_ref.p);
    kn_compiled_free(&f32_ref.c);
  }
  kn_device_close(dev);
  return 0;
}
