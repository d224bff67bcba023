/* Sampling the next token from logits: greedy, temperature, top-k, top-p, min-p, repetition / frequency /
 * presence penalties, with a seeded generator so a seed reproduces a generation. */
#ifndef KN_SAMPLE_H
#define KN_SAMPLE_H

#include <stdint.h>

typedef struct {
  float temperature;      /* <= 0: greedy (argmax, ties to the lowest id) */
  int top_k;              /* <= 0: off */
  float top_p;            /* >= 1: off */
  float min_p;            /* <= 0: off */
  float repeat_penalty;   /* 1: off; divides positive / multiplies negative logits of recent tokens */
  int repeat_last_n;      /* window for the penalties */
  float frequency_penalty;/* OpenAI style: minus count * f */
  float presence_penalty; /* minus p if the token appeared */
  uint64_t seed;
} kn_sample_params;

typedef struct kn_sampler kn_sampler;

kn_sample_params kn_sample_defaults(void);
kn_sampler *kn_sampler_new(const kn_sample_params *p, int n_vocab);
void kn_sampler_free(kn_sampler *s);
/* Pick a token from logits (n_vocab floats, modified in place by penalties). KN_SAMPLE_BAD_LOGITS when a logit is
 * NaN or +infinity, or every one is -infinity: the model's output is broken and no token is drawn. */
#define KN_SAMPLE_BAD_LOGITS (-1)
int kn_sample(kn_sampler *s, float *logits);
/* Record a token as generated or part of the prompt (feeds the penalties). */
void kn_sampler_accept(kn_sampler *s, int token);
int kn_logits_argmax(const float *logits, int n);

#endif
