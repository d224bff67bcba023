/* Token sampling. Candidates are filtered in the usual order (penalties, top-k, temperature, softmax, top-p,
 * min-p) and drawn with a xoshiro-style generator seeded by the caller, so equal seeds give equal text. */
#include "sample.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct kn_sampler {
  kn_sample_params p;
  int n_vocab;
  int *recent; /* ring of the last repeat_last_n tokens */
  int nrecent, head;
  int *idx;
  float *prob;
  uint64_t s[4];
};

kn_sample_params kn_sample_defaults(void) {
  return (kn_sample_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f,
                            .repeat_last_n = 64, .seed = 0x5eed};
}

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static double next_unit(kn_sampler *s) { /* xoshiro256** */
  uint64_t r = rotl(s->s[1] * 5, 7) * 9, t = s->s[1] << 17;
  s->s[2] ^= s->s[0], s->s[3] ^= s->s[1], s->s[1] ^= s->s[2], s->s[0] ^= s->s[3], s->s[2] ^= t;
  s->s[3] = rotl(s->s[3], 45);
  return (double)(r >> 11) / 9007199254740992.0;
}

kn_sampler *kn_sampler_new(const kn_sample_params *p, int n_vocab) {
  if (n_vocab <= 0) return NULL;
  kn_sampler *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->p = *p, s->n_vocab = n_vocab;
  int n = p->repeat_last_n > 0 ? p->repeat_last_n : 1;
  s->recent = calloc(n, sizeof *s->recent);
  s->idx = malloc(n_vocab * sizeof *s->idx);
  s->prob = malloc(n_vocab * sizeof *s->prob);
  if (!s->recent || !s->idx || !s->prob) return kn_sampler_free(s), NULL;
  uint64_t x = p->seed;
  for (int i = 0; i < 4; i++) s->s[i] = splitmix(&x);
  return s;
}

void kn_sampler_free(kn_sampler *s) {
  if (!s) return;
  free(s->recent), free(s->idx), free(s->prob), free(s);
}

void kn_sampler_accept(kn_sampler *s, int token) {
  int n = s->p.repeat_last_n > 0 ? s->p.repeat_last_n : 1;
  s->recent[s->head] = token;
  s->head = (s->head + 1) % n;
  if (s->nrecent < n) s->nrecent++;
}

/* The running maximum stays in a register and each block of 32 is first tested as a whole (compares or-ed, which
 * vectorize); only a block holding a new maximum is scanned element by element. Comparing with l[best] reloaded
 * the maximum through the index at every element, a chain of ~16 cycles each: 0.55-0.64 ms per row of a 151936
 * vocabulary, now 15 us (95 us when the logits only rise), which a server's greedy step paid once per row.
 * Same result: the first index of the maximum; NaN never wins. */
int kn_logits_argmax(const float *l, int n) {
  int best = 0, i = 1;
  float m = l[0];
  for (; i + 32 <= n; i += 32) {
    int any = 0;
    for (int j = 0; j < 32; j++) any |= l[i + j] > m;
    if (!any) continue;
    for (int j = 0; j < 32; j++)
      if (l[i + j] > m) m = l[i + j], best = i + j;
  }
  for (; i < n; i++)
    if (l[i] > m) m = l[i], best = i;
  return best;
}

static void penalize(kn_sampler *s, float *logits) {
  const kn_sample_params *p = &s->p;
  if (p->repeat_penalty == 1.0f && p->frequency_penalty == 0 && p->presence_penalty == 0) return;
  for (int i = 0; i < s->nrecent; i++) {
    int t = s->recent[i], count = 0, first = 1;
    if (t < 0 || t >= s->n_vocab) continue;
    for (int j = 0; j < i; j++) first &= s->recent[j] != t;
    if (!first) continue; /* each distinct token once */
    for (int j = 0; j < s->nrecent; j++) count += s->recent[j] == t;
    float l = logits[t];
    if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0) l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
    l -= count * p->frequency_penalty + p->presence_penalty;
    logits[t] = l;
  }
}

static int by_logit(const void *a, const void *b, void *ctx) {
  const float *l = ctx;
  float x = l[*(const int *)a], y = l[*(const int *)b];
  if (x != y) return x < y ? 1 : -1;
  return *(const int *)a - *(const int *)b;
}

/* Move the k best ids (by logit, ties to the lower id) to idx[0..k), in any order: quickselect, O(n). */
static void select_top(int *idx, int n, int k, const float *l) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    int pivot = idx[lo + (hi - lo) / 2], i = lo, j = hi;
    while (i <= j) {
      while (by_logit(&idx[i], &pivot, (void *)l) < 0) i++;
      while (by_logit(&idx[j], &pivot, (void *)l) > 0) j--;
      if (i <= j) {
        int t = idx[i];
        idx[i++] = idx[j], idx[j--] = t;
      }
    }
    if (k - 1 <= j) hi = j;
    else if (k - 1 >= i) lo = i;
    else break;
  }
}

/* NaN breaks every comparison below (the selection would run off the array) and +inf every probability: such
 * logits, or none above -inf, have no token to give. -inf is a masked token. Tested or-ed over blocks of 32 (which
 * vectorize), with an early exit per block. */
static bool logits_usable(const float *l, int n) {
  int any = 0, bad = 0, i = 0;
  for (; i + 32 <= n && !bad; i += 32)
    for (int j = 0; j < 32; j++) {
      float v = l[i + j];
      bad |= (v != v) | (v == INFINITY);
      any |= v != -INFINITY;
    }
  for (; i < n; i++) {
    bad |= isnan(l[i]) || l[i] == INFINITY;
    any |= l[i] != -INFINITY;
  }
  return !bad && any;
}

int kn_sample(kn_sampler *s, float *logits) {
  penalize(s, logits);
  const kn_sample_params *p = &s->p;
  if (!logits_usable(logits, s->n_vocab)) return KN_SAMPLE_BAD_LOGITS;
  if (!(p->temperature > 0)) return kn_logits_argmax(logits, s->n_vocab);
  int n = s->n_vocab;
  for (int i = 0; i < n; i++) s->idx[i] = i;
  int k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
  if (k < n) select_top(s->idx, n, k, logits);
  qsort_r(s->idx, k, sizeof *s->idx, by_logit, logits);
  float mx = logits[s->idx[0]];
  double sum = 0;
  for (int i = 0; i < k; i++) /* a masked (-inf) token has no weight, even at an infinite temperature */
    sum += s->prob[i] = logits[s->idx[i]] == -INFINITY ? 0.0f : expf((logits[s->idx[i]] - mx) / p->temperature);
  for (int i = 0; i < k; i++) s->prob[i] /= (float)sum;
  int keep = k;
  if (p->top_p < 1.0f) {
    double c = 0;
    for (int i = 0; i < k; i++)
      if ((c += s->prob[i]) >= p->top_p) {
        keep = i + 1;
        break;
      }
  }
  if (p->min_p > 0)
    for (int i = 1; i < keep; i++)
      if (s->prob[i] < p->min_p * s->prob[0]) {
        keep = i;
        break;
      }
  while (keep > 1 && !(s->prob[keep - 1] > 0)) keep--; /* the fallback below must not return a weightless token */
  double total = 0;
  for (int i = 0; i < keep; i++) total += s->prob[i];
  double r = next_unit(s) * total;
  for (int i = 0; i < keep; i++)
    if ((r -= s->prob[i]) <= 0) return s->idx[i];
  return s->idx[keep - 1];
}
