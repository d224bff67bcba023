/* The ops authors build models from (ops/): layernorm with bias, variance and standard deviation, log_softmax,
 * tanh soft-capping, tanh-GELU, erf and exact GELU, argmax, top-k, cumsum, concat/stack/split and the causal
 * (sliding-window) mask, each against plain C on random shapes and random data. */
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
        *gl = malloc(R * C * 4), *ef = malloc(R * C * 4), *ge = malloc(R * C * 4);
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
      ef[r * C + c] = (float)erf(xv * 1.7), ge[r * C + c] = (float)(0.5 * xv * (1 + erf(xv / sqrt(2))));
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
  e = compare(kn_erf(kn_muls(X, 1.7)), ef, R * C);
  check(e < 1e-6, "erf [%lld, %lld]: %.2e", (long long)R, (long long)C, e);
  e = compare(kn_gelu_erf(X), ge, R * C);
  check(e < 1e-6, "gelu (erf) [%lld, %lld]: %.2e", (long long)R, (long long)C, e);
  (void)rep;
  free(x), free(w), free(b), free(ln), free(var), free(sd), free(ls), free(cap), free(gl), free(ef), free(ge);
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

/* values drawn from a few levels, so rows have ties, and now and then -inf */
static float *tied_vec(int64_t n) {
  float *v = malloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++) v[i] = rand() % 13 == 0 ? -INFINITY : (float)(rand() % 7) * 0.5f - 1.25f;
  return v;
}

/* argmax over a random axis of a [A, B, C] tensor, with and without keepdim; the first index wins ties */
static void argmax(void) {
  int64_t sh[3] = {1 + rand() % 4, 1 + rand() % 9, 1 + rand() % 40};
  int axis = rand() % 3;
  bool keep = rand() % 2;
  float *x = tied_vec(sh[0] * sh[1] * sh[2]);
  int64_t st[3] = {sh[1] * sh[2], sh[2], 1}, n = sh[axis], outn = sh[0] * sh[1] * sh[2] / n;
  float *want = malloc((size_t)outn * sizeof *want);
  int64_t o = 0;
  for (int64_t a = 0; a < (axis == 0 ? 1 : sh[0]); a++)
    for (int64_t b = 0; b < (axis == 1 ? 1 : sh[1]); b++)
      for (int64_t c = 0; c < (axis == 2 ? 1 : sh[2]); c++) {
        int64_t base = a * st[0] + b * st[1] + c * st[2], best = 0;
        for (int64_t i = 1; i < n; i++)
          if (x[base + i * st[axis]] > x[base + best * st[axis]]) best = i;
        want[o++] = (float)best;
      }
  kn_t X = kn_from_host(KN_F32, 3, sh, x), am = kn_argmax(X, axis - 3 * (rand() % 2), keep);
  check(am && kn_dtype_of(am) == KN_I32 && kn_ndim(am) == (keep ? 3 : 2) && compare(kn_cast(am, KN_F32), want, outn) == 0,
        "argmax [%lld, %lld, %lld] axis %d keepdim %d", (long long)sh[0], (long long)sh[1], (long long)sh[2], axis, keep);
  free(x), free(want);
}

/* top-k of the last axis: the reference is a stable selection (larger value first, then lower index) */
static void topk(void) {
  int64_t R = 1 + rand() % 5, C = 1 + rand() % 30;
  int k = 1 + rand() % (int)(C < 9 ? C : 9);
  float *x = tied_vec(R * C), *wv = malloc(R * k * 4), *wi = malloc(R * k * 4);
  char *used = calloc((size_t)C, 1);
  for (int64_t r = 0; r < R; r++) {
    memset(used, 0, (size_t)C);
    for (int i = 0; i < k; i++) {
      int64_t best = -1;
      for (int64_t c = 0; c < C; c++)
        if (!used[c] && (best < 0 || x[r * C + c] > x[r * C + best])) best = c;
      used[best] = 1, wv[r * k + i] = fmaxf(x[r * C + best], -1e30f), wi[r * k + i] = (float)best;
    }
  }
  kn_t X = kn_from_host(KN_F32, 2, (int64_t[]){R, C}, x), v, idx;
  int rc = kn_topk(X, k, &v, &idx);
  /* -inf compared as -1e30: compare() counts inf - inf (NaN) as a mismatch */
  check(!rc && kn_dim(v, 1) == k && compare(kn_maximum(v, kn_scalar(KN_F32, -1e30)), wv, R * k) == 0 && compare(kn_cast(idx, KN_F32), wi, R * k) == 0,
        "topk k %d of [%lld, %lld]", k, (long long)R, (long long)C);
  free(x), free(wv), free(wi), free(used);
}

/* cumsum over a random axis, float32 and int32 */
static void cumsum(void) {
  int64_t sh[3] = {1 + rand() % 4, 1 + rand() % 7, 1 + rand() % 50}, st[3] = {sh[1] * sh[2], sh[2], 1};
  int axis = rand() % 3;
  int64_t N = sh[0] * sh[1] * sh[2];
  float *x = rnd_vec(N), *want = malloc(N * 4), *wanti = malloc(N * 4);
  int32_t *xi = malloc(N * 4);
  for (int64_t i = 0; i < N; i++) xi[i] = rand() % 201 - 100;
  for (int64_t a = 0; a < sh[0]; a++)
    for (int64_t b = 0; b < sh[1]; b++)
      for (int64_t c = 0; c < sh[2]; c++) {
        int64_t at = a * st[0] + b * st[1] + c * st[2], idx[3] = {a, b, c};
        double s = 0;
        int64_t si = 0;
        for (int64_t i = 0; i <= idx[axis]; i++) {
          int64_t from = at - (idx[axis] - i) * st[axis];
          s += x[from], si += xi[from];
        }
        want[at] = (float)s, wanti[at] = (float)si;
      }
  double e = compare(kn_cumsum(kn_from_host(KN_F32, 3, sh, x), axis), want, N);
  check(e < 1e-5, "cumsum f32 [%lld, %lld, %lld] axis %d: %.2e", (long long)sh[0], (long long)sh[1], (long long)sh[2],
        axis, e);
  kn_t ci = kn_cumsum(kn_from_host(KN_I32, 3, sh, xi), axis - 3);
  check(ci && kn_dtype_of(ci) == KN_I32 && compare(kn_cast(ci, KN_F32), wanti, N) == 0,
        "cumsum i32 [%lld, %lld, %lld] axis %d", (long long)sh[0], (long long)sh[1], (long long)sh[2], axis);
  free(x), free(want), free(wanti), free(xi);
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
  kn_device *d = kn_device_open(NULL, err, sizeof err); /* $DEVICE, else the CPU */
  if (!d) return printf("cannot open the device: %s\n", err), 1;
  kn_ctx *c = kn_ctx_new(d);
  kn_ctx_set(c);
  srand(17);
  for (int rep = 0; rep < 12; rep++) rows(rep), joins(), mask(), argmax(), topk(), cumsum();
  kn_ctx_clear_error(c);
  check(!kn_concat((kn_t[]){kn_full(KN_F32, 1, 2, (int64_t[]){2, 3}), kn_full(KN_F32, 1, 2, (int64_t[]){3, 3})}, 2, 1) &&
            strstr(kn_ctx_error(c) ? kn_ctx_error(c) : "", "axis 0"),
        "concat of parts that differ off the axis is an error naming the axis");
  kn_ctx_clear_error(c);
  check(kn_split(kn_full(KN_F32, 1, 1, (int64_t[]){5}), 0, (int64_t[]){2, 2}, 2, (kn_t[2]){0}) == -1 && kn_ctx_error(c),
        "split sizes that do not add up are an error");
  kn_ctx_clear_error(c);
  kn_t tv, ti;
  check(kn_topk(kn_full(KN_F32, 1, 1, (int64_t[]){5}), 6, &tv, &ti) == -1 && kn_ctx_error(c) &&
            strstr(kn_ctx_error(c), "k = 6"),
        "topk with k past the axis is an error naming k");
  kn_ctx_clear_error(c);
  check(!kn_argmax(kn_full(KN_F32, 1, 1, (int64_t[]){5}), 1, false) && kn_ctx_error(c) &&
            strstr(kn_ctx_error(c), "axis 1"),
        "argmax over a missing axis is an error naming it");
  kn_ctx_free(c);
  kn_device_close(d);
  return check_summary();
}
