/* The ops authors build models from (ops/): layernorm with bias, variance and standard deviation, log_softmax,
 * tanh soft-capping, tanh-GELU, concat/stack/split and the causal (sliding-window) mask, each against plain C on
 * random shapes and random data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/ops.h"

static float frand(void) { return (float)rand() / RAND_MAX * 4 - 2; }
static float *rnd_vec(int64_t n) {
  float *v = malloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++) v[i] = frand();
  return v;
}

/* worst |got - want| / (1 + |want|) after realizing t */
static double compare(kn_t t, const float *want, int64_t n) {
  float *got = malloc((size_t)n * sizeof *got);
  double worst = kn_to_host(t, got, (size_t)n * sizeof *got) ? INFINITY : 0;
  for (int64_t i = 0; worst < INFINITY && i < n; i++) {
    double e = fabs((double)got[i] - want[i]) / (1 + fabs(want[i]));
    if (!(e <= worst)) worst = e;
  }
  free(got);
  return worst;
}

static void rows(int rep) {
  int64_t R = 1 + rand() % 9, C = 1 + rand() % 70;
  float *x = rnd_vec(R * C), *w = rnd_vec(C), *b = rnd_vec(C);
  float *ln = malloc(R * C * 4), *var = malloc(R * 4), *sd = malloc(R * 4), *ls = malloc(R * C * 4), *cap = malloc(R * C * 4),
        *gl = malloc(R * C * 4);
  for (int64_t r = 0; r < R; r++) {
    double m = 0, v = 0, mx = -INFINITY, s = 0;
    for (int64_t c = 0; c < C; c++) m += x[r * C + c], mx = fmax(mx, x[r * C + c]);
    m /= C;
    for (int64_t c = 0; c < C; c++) v += (x[r * C + c] - m) * (x[r * C + c] - m);
    v /= C;
    for (int64_t c = 0; c < C; c++) s += exp(x[r * C + c] - mx);
    var[r] = (float)v, sd[r] = (float)sqrt(v);
    for (int64_t c = 0; c < C; c++) {
      double xv = x[r * C + c];
      ln[r * C + c] = (float)((xv - m) / sqrt(v + 1e-5) * w[c] + b[c]);
      ls[r * C + c] = (float)(xv - mx - log(s));
      cap[r * C + c] = (float)(1.5 * tanh(xv / 1.5));
      gl[r * C + c] = (float)(0.5 * xv * (1 + tanh(sqrt(2 / M_PI) * (xv + 0.044715 * xv * xv * xv))));
    }
  }
  kn_t X = kn_from_host(KN_F32, 2, (int64_t[]){R, C}, x), W = kn_from_host(KN_F32, 1, &C, w),
       B = kn_from_host(KN_F32, 1, &C, b);
  double e;
  e = compare(kn_layernorm(X, W, B, 1e-5f), ln, R * C);
  check(e < 1e-4, "layernorm [%lld, %lld]: %.2e", (long long)R, (long long)C, e);
  e = compare(kn_var_last(X), var, R);
  check(e < 1e-5, "var [%lld, %lld]: %.2e", (long long)R, (long long)C, e);
  e = compare(kn_std_last(X), sd, R);
  check(e < 1e-5, "std [%lld, %lld]: %.2e", (long long)R, (long long)C, e);
  e = compare(kn_log_softmax(X, -1), ls, R * C);
  check(e < 1e-5, "log_softmax [%lld, %lld]: %.2e", (long long)R, (long long)C, e);
  e = compare(kn_softcap(X, 1.5f), cap, R * C);
  check(e < 1e-5, "softcap [%lld, %lld]: %.2e", (long long)R, (long long)C, e);
  e = compare(kn_gelu(X), gl, R * C);
  check(e < 1e-5, "gelu (tanh) [%lld, %lld]: %.2e", (long long)R, (long long)C, e);
  (void)rep;
  free(x), free(w), free(b), free(ln), free(var), free(sd), free(ls), free(cap), free(gl);
}

static void joins(void) {
  int64_t A = 1 + rand() % 5, B1 = 1 + rand() % 6, B2 = 1 + rand() % 6, C = 1 + rand() % 7;
  float *x = rnd_vec(A * B1 * C), *y = rnd_vec(A * B2 * C), *want = malloc(A * (B1 + B2) * C * 4);
  for (int64_t a = 0; a < A; a++)
    for (int64_t j = 0; j < B1 + B2; j++)
      for (int64_t c = 0; c < C; c++)
        want[(a * (B1 + B2) + j) * C + c] = j < B1 ? x[(a * B1 + j) * C + c] : y[(a * B2 + j - B1) * C + c];
  kn_t X = kn_from_host(KN_F32, 3, (int64_t[]){A, B1, C}, x), Y = kn_from_host(KN_F32, 3, (int64_t[]){A, B2, C}, y);
  kn_t cat = kn_concat((kn_t[]){X, Y}, 2, 1);
  check(compare(cat, want, A * (B1 + B2) * C) == 0, "concat [%lld, %lld|%lld, %lld] on axis 1", (long long)A,
        (long long)B1, (long long)B2, (long long)C);
  kn_t parts[2];
  check(!kn_split(cat, 1, (int64_t[]){B1, B2}, 2, parts) && compare(parts[0], x, A * B1 * C) == 0 &&
            compare(parts[1], y, A * B2 * C) == 0,
        "split undoes concat");
  /* stack needs parts of one shape: a tensor of its own (y holds only A*B2*C values) */
  float *y1 = rnd_vec(A * B1 * C);
  kn_t Y1 = kn_from_host(KN_F32, 3, (int64_t[]){A, B1, C}, y1);
  float *st = malloc(2 * A * B1 * C * 4);
  memcpy(st, x, A * B1 * C * 4), memcpy(st + A * B1 * C, y1, A * B1 * C * 4);
  check(compare(kn_stack((kn_t[]){X, Y1}, 2, 0), st, 2 * A * B1 * C) == 0, "stack on a new axis 0");
  free(x), free(y), free(y1), free(want), free(st);
}

static void mask(void) {
  int64_t T = 1 + rand() % 6, C = T + rand() % 10, start = rand() % (C - T + 1);
  int window = rand() % 5;
  float *want = malloc(T * C * 4);
  for (int64_t t = 0; t < T; t++)
    for (int64_t c = 0; c < C; c++)
      want[t * C + c] = c <= start + t && (window == 0 || c > start + t - window);
  kn_t m = kn_cast(kn_causal_mask(T, C, kn_scalar(KN_I32, (double)start), window), KN_F32);
  check(compare(m, want, T * C) == 0, "causal mask T %lld C %lld start %lld window %d", (long long)T, (long long)C,
        (long long)start, window);
  free(want);
}

int main(void) {
  char err[256];
  kn_device *d = kn_device_open("CPU", err, sizeof err);
  if (!d) return printf("no CPU device: %s\n", err), 1;
  kn_ctx *c = kn_ctx_new(d);
  kn_ctx_set(c);
  srand(17);
  for (int rep = 0; rep < 12; rep++) rows(rep), joins(), mask();
  kn_ctx_clear_error(c);
  check(!kn_concat((kn_t[]){kn_full(KN_F32, 1, 2, (int64_t[]){2, 3}), kn_full(KN_F32, 1, 2, (int64_t[]){3, 3})}, 2, 1) &&
            strstr(kn_ctx_error(c) ? kn_ctx_error(c) : "", "axis 0"),
        "concat of parts that differ off the axis is an error naming the axis");
  kn_ctx_clear_error(c);
  check(kn_split(kn_full(KN_F32, 1, 1, (int64_t[]){5}), 0, (int64_t[]){2, 2}, 2, (kn_t[2]){0}) == -1 && kn_ctx_error(c),
        "split sizes that do not add up are an error");
  kn_ctx_free(c);
  kn_device_close(d);
  return check_summary();
}
