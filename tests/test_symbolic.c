/* Symbolic shapes: a tensor whose axis runs to a variable (kn_shrink_sym) is scheduled and compiled once and run
 * for every value of the variable; sums, maxes, matmuls and elementwise chains over the symbolic axis match plain
 * C over the first `len` rows; movement ops that would cut through a symbolic axis are refused with a message.
 * Variables belong to their context: values come with each run, out of range or unbound is an error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h" /* buffers and counters below the graph API, for the checks */
#include "check.h"
#include "graph/graph.h"


static float frand(void) { return (float)rand() / RAND_MAX * 2 - 1; }

int main(void) {
  char err[256], what[256];
  kn_device *d = kn_device_open("CPU", err, sizeof err);
  if (!d) return printf("no CPU device: %s\n", err), 1;
  kn_ctx *c = kn_ctx_new(d);
  kn_ctx_set(c);
  srand(5);
  enum { R = 37, C = 24, N = 9 };
  static float x[R * C], w[R * N];
  for (int i = 0; i < R * C; i++) x[i] = frand() - 0.3f;
  for (int i = 0; i < R * N; i++) w[i] = frand();
  kn_t X = kn_from_host(KN_F32, 2, (int64_t[]){R, C}, x);
  kn_t W = kn_from_host(KN_F32, 2, (int64_t[]){R, N}, w);
  kn_var *len = kn_var_new("len", 1, R);
  kn_t Y = kn_shrink_sym(X, 0, len);             /* [len, C] */
  int ax0 = 0;
  kn_t s = kn_contiguous(kn_sum(kn_exp(Y), 1, &ax0, false));           /* sum over the symbolic axis */
  kn_t m = kn_contiguous(kn_max(kn_muls(Y, -1.0), 1, &ax0, false));  /* max: padding must not leak in */
  kn_t mm = kn_contiguous(kn_matmul(kn_transpose(Y, 0, 1), kn_shrink_sym(W, 0, len))); /* K symbolic: [C, N] */
  kn_t e = kn_contiguous(kn_adds(kn_muls(Y, 2.0), 1.0));                /* elementwise, symbolic rows */
  check(kn_symvar(Y, 0) >= 0 && kn_symvar(s, 0) < 0 && kn_symvar(e, 0) >= 0, "symbolic extents propagate");
  kn_t outs[4] = {s, m, mm, e};
  kn_plan *p = kn_plan_new(outs, 4);
  if (!p) printf("plan: %s\n", kn_ctx_error(c));
  check(p != NULL, "a plan over symbolic shapes");
  kn_sched_stats st0 = kn_last_schedule();
  static float gs[C], gm[C], gmm[C * N], ge[R * C];
  for (int n = 1; p && n <= R; n += (n < 5 ? 1 : 7)) {
    bool ok = !kn_plan_run(p, &(kn_bind){len, n}, 1) && !kn_buf_copyout(kn_buffer_of(s), 0, gs, sizeof gs) &&
              !kn_buf_copyout(kn_buffer_of(m), 0, gm, sizeof gm) && !kn_buf_copyout(kn_buffer_of(mm), 0, gmm, sizeof gmm) &&
              !kn_buf_copyout(kn_buffer_of(e), 0, ge, sizeof ge);
    double worst = 0;
    for (int j = 0; ok && j < C; j++) {
      double ws = 0, wm = -INFINITY;
      for (int i = 0; i < n; i++) ws += exp(x[i * C + j]), wm = fmax(wm, -x[i * C + j]);
      worst = fmax(worst, fabs(gs[j] - ws) / (1 + fabs(ws)));
      worst = fmax(worst, fabs(gm[j] - wm));
      for (int k = 0; k < N; k++) {
        double wmm = 0;
        for (int i = 0; i < n; i++) wmm += (double)x[i * C + j] * w[i * N + k];
        worst = fmax(worst, fabs(gmm[j * N + k] - wmm) / (1 + fabs(wmm)));
      }
    }
    for (int i = 0; ok && i < n * C; i++) worst = fmax(worst, fabs(ge[i] - (2 * x[i] + 1)));
    snprintf(what, sizeof what, "len = %d: sum/max/matmul/elementwise over the symbolic axis (worst error %.2e)", n, worst);
    check(ok && worst < 1e-5, "%s", what);
  }
  /* the same graph in another context, with its own variable of the same name: every kernel is already compiled
   * (one compiled kernel serves every length), and the two variables do not share values */
  kn_ctx *c2 = kn_ctx_new(d);
  kn_ctx_set(c2);
  kn_var *len2 = kn_var_new("len", 1, R);
  kn_t X2 = kn_from_host(KN_F32, 2, (int64_t[]){R, C}, x);
  kn_t s2 = kn_contiguous(kn_sum(kn_exp(kn_shrink_sym(X2, 0, len2)), 1, &ax0, false));
  kn_plan *p2 = kn_plan_new(&s2, 1);
  kn_sched_stats st1 = kn_last_schedule();
  /* every kernel of p2 comes from memory: neither compiled nor read from the disk cache (a rerun of this test finds
   * the kernels on disk, so "nothing compiled" alone would hold even if p2's kernels differed from p's) */
  check(p2 && st1.compiled == st0.compiled && st1.cache_hits == st0.cache_hits &&
            st1.memory_hits - st0.memory_hits == kn_plan_kernels(p2),
        "a second plan of the same kernels finds each in memory (%lld compiled, %lld from disk, %lld of %d in memory)",
        (long long)(st1.compiled - st0.compiled), (long long)(st1.cache_hits - st0.cache_hits),
        (long long)(st1.memory_hits - st0.memory_hits), p2 ? kn_plan_kernels(p2) : -1);
  static float g2[C];
  bool ok2 = p2 && p && !kn_plan_run(p2, &(kn_bind){len2, 3}, 1) && !kn_plan_run(p, &(kn_bind){len, R}, 1) &&
             !kn_buf_copyout(kn_buffer_of(s2), 0, g2, sizeof g2);
  double w2 = 0;
  for (int i = 0; i < 3; i++) w2 += exp(x[i * C]);
  check(ok2 && fabs(g2[0] - w2) < 1e-4 * (1 + w2), "variables of two contexts keep their own values");
  /* bindings are checked */
  check(p2 && kn_plan_run(p2, &(kn_bind){len2, R + 1}, 1) == -1 && kn_ctx_error(c2) &&
            strstr(kn_ctx_error(c2), "'len'") && strstr(kn_ctx_error(c2), "outside"),
        "a value past the range is an error naming the variable (%s)", kn_ctx_error(c2) ? kn_ctx_error(c2) : "none");
  kn_ctx_clear_error(c2);
  check(p2 && kn_plan_run(p2, NULL, 0) == -1 && kn_ctx_error(c2) && strstr(kn_ctx_error(c2), "does not bind"),
        "an unbound variable is an error (%s)", kn_ctx_error(c2) ? kn_ctx_error(c2) : "none");
  kn_ctx_clear_error(c2);
  check(p2 && kn_plan_run(p2, &(kn_bind){len, 3}, 1) == -1, "another context's variable does not bind this plan's");
  kn_ctx_clear_error(c2);
  check(!kn_var_new("len", 0, 5) && kn_ctx_error(c2) && strstr(kn_ctx_error(c2), "already"),
        "a second variable of the same name in one context is refused");
  kn_ctx_clear_error(c2);
  check(!kn_var_new("bad", 5, 4) && kn_ctx_error(c2), "min above max is refused");
  kn_plan_free(p2);
  kn_ctx_free(c2);
  kn_ctx_set(c);
  kn_plan_free(p);
  /* refused: cutting through a symbolic axis */
  kn_ctx_clear_error(c);
  check(!kn_flip(Y, 0) && strstr(kn_ctx_error(c) ? kn_ctx_error(c) : "", "symbolic"), "flip of a symbolic axis is refused");
  kn_ctx_clear_error(c);
  check(!kn_reshape(Y, 1, (int64_t[]){R * C}) && kn_ctx_error(c), "merging a symbolic axis is refused");
  kn_ctx_clear_error(c);
  check(!kn_pad(Y, (int64_t[]){1, 0}, (int64_t[]){0, 0}) && kn_ctx_error(c), "padding a symbolic axis is refused");
  kn_ctx_clear_error(c);
  check(kn_reshape(Y, 3, (int64_t[]){R, 1, C}) && kn_symvar(kn_reshape(Y, 3, (int64_t[]){R, 1, C}), 0) >= 0,
         "inserting a size-1 axis keeps the symbolic extent");
  kn_ctx_free(c);
  kn_device_close(d);
  return check_summary();
}
