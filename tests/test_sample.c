/* Sampling against its definition: greedy is argmax with ties to the lowest id, top-k / top-p / min-p never pick
 * outside their sets, the empirical distribution at temperature T follows softmax(logits / T), a seed reproduces
 * a sequence, and the penalties move exactly the logits of tokens seen. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "models/sample.h"


int main(void) {
  enum { V = 50 };
  float logits[V], l2[V];
  srand(3);
  for (int i = 0; i < V; i++) logits[i] = (float)rand() / RAND_MAX * 4 - 2;
  logits[17] = logits[30] = 5; /* a tie: greedy takes 17 */
  kn_sample_params p = kn_sample_defaults();
  p.temperature = 0;
  kn_sampler *s = kn_sampler_new(&p, V);
  memcpy(l2, logits, sizeof l2);
  CHECK(kn_sample(s, l2) == 17, "greedy tie should pick the lowest id");
  kn_sampler_free(s);

  /* top-k 3: only the 3 largest logits appear */
  int order[V];
  for (int i = 0; i < V; i++) order[i] = i;
  for (int i = 0; i < V; i++)
    for (int j = i + 1; j < V; j++)
      if (logits[order[j]] > logits[order[i]] || (logits[order[j]] == logits[order[i]] && order[j] < order[i])) {
        int t = order[i];
        order[i] = order[j], order[j] = t;
      }
  p = kn_sample_defaults();
  p.top_k = 3, p.top_p = 1, p.min_p = 0, p.temperature = 1.5f, p.seed = 9;
  s = kn_sampler_new(&p, V);
  int outside = 0;
  for (int r = 0; r < 2000; r++) {
    memcpy(l2, logits, sizeof l2);
    int t = kn_sample(s, l2);
    outside += t != order[0] && t != order[1] && t != order[2];
  }
  CHECK(outside == 0, "top-k 3 sampled %d times outside the top 3", outside);
  kn_sampler_free(s);

  /* top-k on a large vocabulary: at a huge temperature every one of the k best appears, nothing else does */
  for (int rep = 0; rep < 5; rep++) {
    enum { BV = 20000 };
    static float big[BV], b2[BV];
    for (int i = 0; i < BV; i++) big[i] = (float)(rand() % 1000) / 10; /* many ties */
    int k = 1 + rand() % 60;
    int *ord = malloc(BV * sizeof *ord), *seen = calloc(BV, sizeof *seen);
    for (int i = 0; i < BV; i++) ord[i] = i;
    for (int i = 0; i < k; i++) /* selection of the k best, ties to the lower id */
      for (int j = i + 1; j < BV; j++)
        if (big[ord[j]] > big[ord[i]] || (big[ord[j]] == big[ord[i]] && ord[j] < ord[i])) {
          int t = ord[i];
          ord[i] = ord[j], ord[j] = t;
        }
    kn_sample_params q = kn_sample_defaults();
    q.top_k = k, q.top_p = 1, q.min_p = 0, q.temperature = 1e6f, q.seed = (uint64_t)rep + 100;
    kn_sampler *ss = kn_sampler_new(&q, BV);
    for (int r = 0; r < 200 * k; r++) {
      memcpy(b2, big, sizeof b2);
      seen[kn_sample(ss, b2)]++;
    }
    int in = 0, out = 0;
    for (int i = 0; i < k; i++) in += seen[ord[i]] > 0;
    for (int i = k; i < BV; i++) out += seen[ord[i]] > 0;
    CHECK(in == k && out == 0, "top-k %d of %d: %d of the best seen, %d others", k, BV, in, out);
    kn_sampler_free(ss);
    free(ord), free(seen);
  }

  /* the full distribution at T = 0.7 matches softmax(l / T) */
  p = kn_sample_defaults();
  p.top_k = 0, p.top_p = 1, p.min_p = 0, p.temperature = 0.7f, p.seed = 1234;
  s = kn_sampler_new(&p, V);
  int counts[V] = {0}, N = 200000;
  for (int r = 0; r < N; r++) {
    memcpy(l2, logits, sizeof l2);
    counts[kn_sample(s, l2)]++;
  }
  double z = 0, worst = 0;
  for (int i = 0; i < V; i++) z += exp(logits[i] / 0.7);
  for (int i = 0; i < V; i++) {
    double pi = exp(logits[i] / 0.7) / z, sd = sqrt(pi * (1 - pi) / N), d = fabs(counts[i] / (double)N - pi);
    if (d / (sd + 1e-9) > worst) worst = d / (sd + 1e-9);
  }
  CHECK(worst < 5.5, "empirical distribution off by %.1f standard deviations", worst);
  kn_sampler_free(s);

  /* top-p 0.5: the sampled set is the smallest prefix of sorted tokens with mass >= 0.5 */
  p.top_p = 0.5f, p.temperature = 1, p.seed = 5;
  s = kn_sampler_new(&p, V);
  z = 0;
  for (int i = 0; i < V; i++) z += exp(logits[i]);
  double c = 0;
  int keep = 0;
  while (c < 0.5) c += exp(logits[order[keep++]]) / z;
  outside = 0;
  for (int r = 0; r < 3000; r++) {
    memcpy(l2, logits, sizeof l2);
    int t = kn_sample(s, l2), in = 0;
    for (int k = 0; k < keep; k++) in |= order[k] == t;
    outside += !in;
  }
  CHECK(outside == 0, "top-p sampled %d times outside the nucleus of %d tokens", outside, keep);
  kn_sampler_free(s);

  /* min-p 0.5: tokens below half the best probability never appear */
  p = kn_sample_defaults();
  p.top_k = 0, p.top_p = 1, p.min_p = 0.5f, p.temperature = 1, p.seed = 6;
  s = kn_sampler_new(&p, V);
  outside = 0;
  for (int r = 0; r < 3000; r++) {
    memcpy(l2, logits, sizeof l2);
    int t = kn_sample(s, l2);
    outside += exp(logits[t]) < 0.5 * exp(logits[order[0]]) - 1e-6;
  }
  CHECK(outside == 0, "min-p let %d low tokens through", outside);
  kn_sampler_free(s);

  /* seeds: equal seeds, equal sequences; different seeds, different sequences */
  int a[64], b[64], d[64];
  for (int pass = 0; pass < 3; pass++) {
    p = kn_sample_defaults();
    p.seed = pass == 2 ? 77 : 76;
    s = kn_sampler_new(&p, V);
    for (int r = 0; r < 64; r++) {
      memcpy(l2, logits, sizeof l2);
      (pass == 0 ? a : pass == 1 ? b : d)[r] = kn_sample(s, l2);
    }
    kn_sampler_free(s);
  }
  CHECK(!memcmp(a, b, sizeof a), "same seed gave different tokens");
  CHECK(memcmp(a, d, sizeof a), "different seeds gave the same 64 tokens");

  /* penalties: repeat divides positive / multiplies negative logits; frequency and presence subtract */
  p = kn_sample_defaults();
  p.temperature = 0, p.repeat_penalty = 2, p.frequency_penalty = 0.5f, p.presence_penalty = 0.25f, p.repeat_last_n = 8;
  s = kn_sampler_new(&p, V);
  kn_sampler_accept(s, 17), kn_sampler_accept(s, 17), kn_sampler_accept(s, 3);
  memcpy(l2, logits, sizeof l2);
  kn_sample(s, l2);
  float want17 = logits[17] / 2 - 2 * 0.5f - 0.25f;
  float want3 = (logits[3] > 0 ? logits[3] / 2 : logits[3] * 2) - 0.5f - 0.25f;
  CHECK(fabsf(l2[17] - want17) < 1e-5 && fabsf(l2[3] - want3) < 1e-5 && l2[4] == logits[4],
        "penalties: %g/%g vs %g/%g", l2[17], l2[3], want17, want3);
  kn_sampler_free(s);

  /* hostile values: logits with NaN / +inf give KN_SAMPLE_BAD_LOGITS (they once sent the top-k selection off the
   * array), all -inf too; -inf alone is a masked token and is never drawn; any parameters stay in bounds */
  enum { W = 301 };
  static float h[W];
  const float specials[] = {NAN, -NAN, INFINITY, -INFINITY, 0, 1e30f, -1e30f, 1e-45f};
  const float temps[] = {0, -1, NAN, INFINITY, 1e-30f, 0.8f, 100};
  int bad_ok = 0, bad_total = 0, masked_drawn = 0, out_of_range = 0;
  srand(11);
  for (int r = 0; r < 3000; r++) {
    p = kn_sample_defaults();
    p.temperature = temps[r % 7], p.top_k = (int[]){0, 1, 2, 40, W, W + 5, -3}[r / 7 % 7];
    p.top_p = (float[]){1, 0.5f, 0, NAN, 2}[r / 49 % 5], p.min_p = (float[]){0, 0.05f, 1, NAN}[r / 245 % 4];
    p.seed = (uint64_t)r;
    s = kn_sampler_new(&p, W);
    int kind = r % 3, any_nan = 0, any_finite = 0; /* 0: NaN/inf sprinkled, 1: masked (-inf) entries, 2: all -inf */
    for (int i = 0; i < W; i++) {
      h[i] = (float)rand() / RAND_MAX * 20 - 10;
      if (kind == 0 && rand() % 50 == 0) h[i] = specials[rand() % 8];
      if (kind == 1 && rand() % 2 == 0) h[i] = -INFINITY;
      if (kind == 2) h[i] = -INFINITY;
      any_nan |= isnan(h[i]) || h[i] == INFINITY;
      any_finite |= isfinite(h[i]);
    }
    float copy[W];
    memcpy(copy, h, sizeof copy);
    int t = kn_sample(s, h);
    if (any_nan || !any_finite) {
      bad_total++;
      bad_ok += t == KN_SAMPLE_BAD_LOGITS;
    } else if (t < 0 || t >= W) {
      out_of_range++;
    } else {
      masked_drawn += copy[t] == -INFINITY;
    }
    kn_sampler_free(s);
  }
  CHECK(bad_ok == bad_total && bad_total > 0, "broken logits: %d of %d gave KN_SAMPLE_BAD_LOGITS", bad_ok, bad_total);
  CHECK(out_of_range == 0, "%d samples outside the vocabulary", out_of_range);
  CHECK(masked_drawn == 0, "%d masked (-inf) tokens drawn", masked_drawn);

  /* kn_logits_argmax (blocks of 32 tested as a whole) against its definition, the first index of the maximum, on
   * lengths around the block size, ties, rising runs, NaNs (never the maximum) and a NaN first */
  int am_bad = 0;
  srand(21);
  for (int r = 0; r < 4000; r++) {
    static float a[700];
    int n = 1 + rand() % (r < 2000 ? 100 : 700), mode = r % 4;
    for (int i = 0; i < n; i++) {
      a[i] = mode == 1 ? (float)(rand() % 5) : mode == 2 ? (float)(i / 7) : (float)rand() / RAND_MAX * 10 - 5;
      if (mode == 3 && rand() % 10 == 0) a[i] = NAN;
    }
    if (r % 13 == 0) a[0] = NAN;
    int want = 0;
    for (int i = 1; i < n; i++)
      if (a[i] > a[want]) want = i;
    am_bad += kn_logits_argmax(a, n) != want;
  }
  CHECK(am_bad == 0, "kn_logits_argmax: %d of 4000 arrays off the first maximum", am_bad);
  return check_summary();
}
