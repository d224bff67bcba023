/* Sampling cost per token: kn_sample over one row of logits of a real vocabulary (default Qwen2.5's 151936), normal
 * with a spread like a model's (sd 3), for the samplers clients ask for: kiln's defaults (temperature 0.8, top-k 40,
 * top-p 0.95, min-p 0.05), greedy, top-k off with top-p and/or min-p (the OpenAI API has no top-k; Ollama's top_k
 * 0), and a flat distribution at temperature 1.5 with top-k off (the longest nucleus). The logits are copied back
 * before each draw (penalties write into them), outside the timed part. Prints the median and best of REPS.
 * Usage: bench_sample [VOCAB] [REPS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/base/env.h"
#include "models/sample.h"

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 151936, reps = argc > 2 ? atoi(argv[2]) : 101;
  if (n < 2 || reps < 1 || reps > 10000) return fprintf(stderr, "usage: bench_sample [VOCAB >= 2] [REPS 1..10000]\n"), 2;
  float *l = malloc((size_t)n * sizeof *l), *flat = malloc((size_t)n * sizeof *flat), *w = malloc((size_t)n * sizeof *w);
  double *t = malloc((size_t)reps * sizeof *t);
  if (!l || !flat || !w || !t) return fprintf(stderr, "bench_sample: out of memory\n"), 1;
  srand(1);
  for (int i = 0; i < n; i++) {
    double u = (rand() + 1.0) / (RAND_MAX + 2.0), v = (rand() + 1.0) / (RAND_MAX + 2.0);
    l[i] = (float)(3 * sqrt(-2 * log(u)) * cos(6.283185307 * v));
    flat[i] = l[i] / 10;
  }
  struct {
    const char *name;
    float temp, top_p, min_p;
    int top_k;
    const float *src;
  } cases[] = {
      {"defaults (T 0.8, top-k 40, top-p 0.95, min-p 0.05)", 0.8f, 0.95f, 0.05f, 40, l},
      {"greedy", 0, 1, 0, 0, l},
      {"top-k off, top-p 0.95, min-p 0.05", 0.8f, 0.95f, 0.05f, 0, l},
      {"top-k off, top-p 0.95", 0.8f, 0.95f, 0, 0, l},
      {"top-k off, top-p 1, min-p 0 (plain T 1)", 1, 1, 0, 0, l},
      {"flat logits, T 1.5, top-k off, top-p 0.95", 1.5f, 0.95f, 0, 0, flat},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    kn_sample_params p = kn_sample_defaults();
    p.temperature = cases[c].temp, p.top_k = cases[c].top_k, p.top_p = cases[c].top_p, p.min_p = cases[c].min_p;
    kn_sampler *s = kn_sampler_new(&p, n);
    if (!s) return fprintf(stderr, "bench_sample: out of memory\n"), 1;
    long sink = 0;
    for (int r = 0; r < reps; r++) {
      memcpy(w, cases[c].src, (size_t)n * sizeof *w);
      double t0 = kn_now();
      sink += kn_sample(s, w);
      t[r] = kn_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmpd);
    printf("%-52s %8.3f ms per token (best %.3f; vocabulary %d, token sum %ld)\n", cases[c].name, t[reps / 2] * 1e3,
           t[0] * 1e3, n, sink);
    kn_sampler_free(s);
  }
  free(l), free(flat), free(w), free(t);
  return 0;
}
