/* Token sampling. Candidates are filtered in the usual order (penalties, top-k, temperature, softmax, top-p,
 * min-p) and drawn with a xoshiro-style generator seeded by the caller, so equal seeds give equal text. */
#include "sample.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct kn_sampler {
  kn_sample_params p;
  int n_vocab;
  int *recent; /* ring of the last repeat_last_n tokens */
  int nrecent, head;
  int *idx;
  float *prob; /* the candidates' probabilities, in idx's order */
  float *e;    /* with top-k off: every token's weight exp((logit - max) / T), by id */
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
  s->e = malloc(n_vocab * sizeof *s->e);
  if (!s->recent || !s->idx || !s->prob || !s->e) return kn_sampler_free(s), NULL;
  uint64_t x = p->seed;
  for (int i = 0; i < 4; i++) s->s[i] = splitmix(&x);
  return s;
}

void kn_sampler_free(kn_sampler *s) {
  if (!s) return;
  free(s->recent), free(s->idx), free(s->prob), free(s->e), free(s);
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

/* a ranks below b: a lower logit, or the same one and a higher id */
static bool worse(const float *l, int a, int b) { return l[a] < l[b] || (l[a] == l[b] && a > b); }

static void sift_down(int *h, int m, int i, const float *l) {
  for (;;) {
    int c = 2 * i + 1;
    if (c >= m) return;
    if (c + 1 < m && worse(l, h[c + 1], h[c])) c++;
    if (!worse(l, h[c], h[i])) return;
    int t = h[c];
    h[c] = h[i], h[i] = t, i = c;
  }
}

/* The best m ids by logit (ties to the lower id) among those above -inf, best first, into h; returns how many
 * (fewer than m where fewer tokens have a weight). A heap of the m best so far whose root is the worst of them;
 * ids come in rising order, so a later token enters only with a logit strictly above the root's, and a block of 32
 * logits is first tested as a whole against it (compares or-ed, which vectorize): with m far below n nearly every
 * block is passed over, and a 151936 vocabulary costs about what an argmax does (where m is most of n, one sort of
 * every weighted id is quicker). It replaced a quickselect over all n ids comparing through the index (0.95 ms per
 * token at top-k 40: bench_sample) and, with top-k off, a sort of all n (18 ms). */
/* Where top_sorted sorts every weighted id instead of keeping a heap: m is most of n, where a heap of nearly every
 * id is slower than one sort of them. */
static bool sorts_all(int64_t m, int n) { return m * 8 >= n; }

static int top_sorted(const float *l, int n, int m, int *h) {
  if (m > n) m = n;
  int k = 0;
  if (sorts_all(m, n)) {
    for (int i = 0; i < n; i++)
      if (l[i] != -INFINITY) h[k++] = i;
    qsort_r(h, (size_t)k, sizeof *h, by_logit, (void *)l);
    return k < m ? k : m;
  }
  float thr = -INFINITY;
  for (int i = 0; i < n; i += 32) {
    int end = i + 32 < n ? i + 32 : n;
    if (end - i == 32) {
      int any = 0;
      for (int j = 0; j < 32; j++) any |= l[i + j] > thr;
      if (!any) continue;
    }
    for (int j = i; j < end; j++) {
      if (!(l[j] > thr)) continue;
      if (k < m) { /* sift up */
        int c = k++;
        h[c] = j;
        while (c > 0 && worse(l, h[c], h[(c - 1) / 2])) {
          int t = h[c];
          h[c] = h[(c - 1) / 2], h[(c - 1) / 2] = t, c = (c - 1) / 2;
        }
        if (k == m) thr = l[h[0]];
      } else {
        h[0] = j;
        sift_down(h, m, 0, l);
        thr = l[h[0]];
      }
    }
  }
  qsort_r(h, (size_t)k, sizeof *h, by_logit, (void *)l);
  return k;
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

/* The candidates are the top-k tokens by logit (ties to the lower id), or with top-k off every token, best first;
 * their probabilities are softmax(logit / T) over that set; top-p keeps the shortest prefix whose probabilities
 * reach it, min-p the ones at least min-p times the first's, and the draw walks the kept prefix. With top-k off
 * only as much of the order as that needs is built: from the most min-p keeps or the fewest top-p can (else 64),
 * 8x more while neither cut nor the draw has landed (a flat distribution at a high temperature needs it all). The
 * normalizer with top-k off, and the draw's total where nothing is cut, are summed by id. */
int kn_sample(kn_sampler *s, float *logits) {
  penalize(s, logits);
  const kn_sample_params *p = &s->p;
  if (!logits_usable(logits, s->n_vocab)) return KN_SAMPLE_BAD_LOGITS;
  if (!(p->temperature > 0)) return kn_logits_argmax(logits, s->n_vocab);
  int n = s->n_vocab;
  float mx = logits[kn_logits_argmax(logits, n)], T = p->temperature;
  bool all = !(p->top_k > 0 && p->top_k < n), cuts = p->top_p < 1.0f || p->min_p > 0;
  double sum = 0, r = 0;
  bool drawn = false;
  int want = all ? 64 : p->top_k;
  if (all) { /* a masked (-inf) token has no weight, even at an infinite temperature */
    int above = 0; /* tokens min-p keeps: a weight of at least min-p (the first one's is 1) */
    for (int i = 0; i < n; i++) {
      sum += s->e[i] = logits[i] == -INFINITY ? 0.0f : expf((logits[i] - mx) / T);
      above += s->e[i] >= p->min_p;
    }
    /* where to start: min-p cuts just past its tokens; else top-p needs at least top-p * sum of them (each
     * probability is at most the first one's, 1 / sum), so a flat distribution goes straight to a whole sort */
    if (p->min_p > 0) want = above + 2 > want ? above + 2 : want;
    else if (p->top_p < 1.0f && p->top_p * sum > want) want = p->top_p * sum < n ? (int)(p->top_p * sum) : n;
    if (!cuts) { /* everything is kept: the draw's total is known before the order */
      double total = 0;
      for (int i = 0; i < n; i++) total += s->e[i] / (float)sum;
      r = next_unit(s) * total, drawn = true;
    }
  }
  for (;; want *= 8) {
    if (all && sorts_all(want, n)) want = n; /* top_sorted sorts them all anyway: take every one */
    int k = top_sorted(logits, n, want, s->idx);
    bool complete = !all || k < want || want >= n;
    if (!all) {
      sum = 0;
      for (int i = 0; i < k; i++) sum += s->prob[i] = expf((logits[s->idx[i]] - mx) / T);
      for (int i = 0; i < k; i++) s->prob[i] /= (float)sum;
    } else
      for (int i = 0; i < k; i++) s->prob[i] = s->e[s->idx[i]] / (float)sum;
    if (drawn) { /* nothing cut (top-k off): the draw lands in this prefix or a longer one */
      double left = r;
      for (int i = 0; i < k; i++)
        if ((left -= s->prob[i]) <= 0) return s->idx[i];
      if (!complete) continue;
      while (k > 1 && !(s->prob[k - 1] > 0)) k--; /* rounding left a sliver: the last token with a weight */
      return s->idx[k - 1];
    }
    int keep = k;
    bool cut = false;
    if (p->top_p < 1.0f) {
      double c = 0;
      for (int i = 0; i < k && !cut; i++)
        if ((c += s->prob[i]) >= p->top_p) keep = i + 1, cut = true;
    }
    if (p->min_p > 0)
      for (int i = 1; i < keep; i++)
        if (s->prob[i] < p->min_p * s->prob[0]) {
          keep = i, cut = true;
          break;
        }
    if (!cut && !complete) continue;
    while (keep > 1 && !(s->prob[keep - 1] > 0)) keep--; /* the fallback below must not return a weightless token */
    double total = 0;
    for (int i = 0; i < keep; i++) total += s->prob[i];
    double u = next_unit(s) * total;
    for (int i = 0; i < keep; i++)
      if ((u -= s->prob[i]) <= 0) return s->idx[i];
    return s->idx[keep - 1];
  }
}
