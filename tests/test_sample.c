/* Sampling against its definition: greedy is argmax with ties to the lowest id, top-k / top-p / min-p never pick
 * outside their sets, the empirical distribution at temperature T follows softmax(logits / T), a seed reproduces
 * a sequence, the penalties move exactly the logits of tokens seen, and draw for draw it matches a plain full-sort
 * implementation of the same definition from the same seed. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "models/sample.h"

/* The sampler's definition, written plainly for the comparison below: every token with a weight sorted by logit
 * (ties to the lower id); the candidates are the first top-k of them, or all; softmax(logit / T) over them (with
 * top-k off the normalizer summed by id); top-p keeps the shortest prefix reaching it, min-p those at least min-p
 * times the first's; the draw walks the kept prefix (with top-k off and nothing cut, its total summed by id). The
 * generator is the sampler's: xoshiro256** seeded by splitmix64. */
typedef struct {
  uint64_t s[4];
} ref_rng;

static uint64_t ref_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double ref_unit(ref_rng *g) {
  uint64_t *s = g->s, r = s[1] * 5, t = s[1] << 17;
  r = ((r << 7) | (r >> 57)) * 9;
  s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return (double)(r >> 11) / 9007199254740992.0;
}

static const float *ref_l;
static int ref_cmp(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  if (ref_l[x] != ref_l[y]) return ref_l[x] < ref_l[y] ? 1 : -1;
  return x - y;
}

static int ref_sample(const kn_sample_params *p, ref_rng *g, const float *l, int n, int *ids, float *prob) {
  int c = 0;
  for (int i = 0; i < n; i++)
    if (l[i] != -INFINITY) ids[c++] = i;
  ref_l = l;
  qsort(ids, (size_t)c, sizeof *ids, ref_cmp);
  bool all = !(p->top_k > 0 && p->top_k < n);
  int k = all || p->top_k > c ? c : p->top_k;
  float mx = l[ids[0]], T = p->temperature;
  double sum = 0;
  if (all)
    for (int i = 0; i < n; i++) sum += l[i] == -INFINITY ? 0.0f : expf((l[i] - mx) / T);
  else
    for (int i = 0; i < k; i++) sum += prob[i] = expf((l[ids[i]] - mx) / T);
  for (int i = 0; i < k; i++) prob[i] = (all ? expf((l[ids[i]] - mx) / T) : prob[i]) / (float)sum;
  if (all && !(p->top_p < 1.0f) && !(p->min_p > 0)) {
    double total = 0;
    for (int i = 0; i < n; i++) total += (l[i] == -INFINITY ? 0.0f : expf((l[i] - mx) / T)) / (float)sum;
    double r = ref_unit(g) * total;
    for (int i = 0; i < k; i++)
      if ((r -= prob[i]) <= 0) return ids[i];
    while (k > 1 && !(prob[k - 1] > 0)) k--;
    return ids[k - 1];
  }
  int keep = k;
  if (p->top_p < 1.0f) {
    double cum = 0;
    for (int i = 0; i < k; i++)
      if ((cum += prob[i]) >= p->top_p) {
        keep = i + 1;
        break;
      }
  }
  if (p->min_p > 0)
    for (int i = 1; i < keep; i++)
      if (prob[i] < p->min_p * prob[0]) {
        keep = i;
        break;
      }
  while (keep > 1 && !(prob[keep - 1] > 0)) keep--;
  double total = 0;
  for (int i = 0; i < keep; i++) total += prob[i];
  double r = ref_unit(g) * total;
  for (int i = 0; i < keep; i++)
    if ((r -= prob[i]) <= 0) return ids[i];
  return ids[keep - 1];
}

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

  /* the sampler against its definition (ref_sample), draw for draw from the same seed, on random logits with ties,
   * masked tokens and a few peaked or flat distributions, over vocabularies from 50 to a real one's 151936 (where
   * the candidates come from a heap over blocks of 32, and with top-k off from a prefix grown 64, 512, ...) */
  int ref_trials = 0, ref_diff = 0;
  srand(31);
  for (int r = 0; r < 360; r++) {
    int n = (int[]){50, 333, 4099, 151936}[r % 4 == 3 && r % 8 != 3 ? 2 : r % 4], mode = r / 4 % 5;
    float *l = malloc((size_t)n * sizeof *l), *cp = malloc((size_t)n * sizeof *cp), *pr = malloc((size_t)n * sizeof *pr);
    int *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) {
      double u = (rand() + 1.0) / (RAND_MAX + 2.0), v = (rand() + 1.0) / (RAND_MAX + 2.0);
      float z = (float)(sqrt(-2 * log(u)) * cos(6.283185307 * v));
      l[i] = mode == 0 ? 3 * z : mode == 1 ? roundf(4 * z) / 4 /* ties */ : mode == 2 ? 0.3f * z /* flat */
             : mode == 3 ? (rand() % 3 ? -INFINITY : 2 * z)                                          /* masked */
                         : 12 * z;                                                                     /* peaked */
    }
    if (mode == 3) l[rand() % n] = 1;
    kn_sample_params q = kn_sample_defaults();
    q.temperature = (float[]){0.2f, 0.8f, 1.5f, 4}[r / 20 % 4];
    q.top_k = (int[]){0, 40, 1, 5, 0, 1000, 0, 40, 0}[r / 3 % 9];
    if (r % 17 == 0) q.top_k = n;
    q.top_p = (float[]){1, 0.95f, 0.5f}[r / 7 % 3], q.min_p = (float[]){0, 0.05f, 0.3f, 0}[r / 11 % 4];
    q.seed = (uint64_t)r * 7919;
    kn_sampler *sm = kn_sampler_new(&q, n);
    ref_rng g;
    uint64_t x = q.seed;
    for (int i = 0; i < 4; i++) g.s[i] = ref_splitmix(&x);
    for (int d = 0; d < (n > 10000 ? 2 : 4); d++) {
      memcpy(cp, l, (size_t)n * sizeof *cp);
      int got = kn_sample(sm, cp), want = ref_sample(&q, &g, l, n, ids, pr);
      ref_trials++;
      if (got != want && ref_diff++ < 5)
        fprintf(stderr, "n %d mode %d T %g top-k %d top-p %g min-p %g draw %d: %d, want %d\n", n, mode,
                (double)q.temperature, q.top_k, (double)q.top_p, (double)q.min_p, d, got, want);
    }
    kn_sampler_free(sm);
    free(l), free(cp), free(pr), free(ids);
  }
  CHECK(ref_diff == 0, "sampler vs its definition: %d of %d draws differ", ref_diff, ref_trials);

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
