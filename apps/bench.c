/* `kiln bench`: prompt processing and generation speed of a model, as medians over repeated runs, with peak RSS.
 * The figures to compare with other engines on the same machine (llama-bench reports pp/tg the same way). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "device/env.h"
#include "models/model.h"
#include "models/registry.h"
#include "models/sample.h"

static int usage(FILE *f) {
  fprintf(f, "usage: kiln bench -m FILE|NAME [-p N] [-n N] [-r REPS] [-c CTX] [--kv-type f16|f32]\n\n"
             "Measures prompt processing of N tokens (-p, default 128) and generation of N tokens (-n, default 32),\n"
             "each repeated REPS times (default 3), and prints medians in tokens/s with the peak resident memory.\n");
  return f == stdout ? 0 : 2;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
  if (f) fclose(f);
  return kb;
}

int kn_cmd_bench(int argc, char **argv) {
  const char *model = NULL;
  int pp = 128, tg = 32, reps = 3, n_ctx = 0;
  kn_dtype kv = KN_F16;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout);
    if (!v) return fprintf(stderr, "kiln bench: %s needs a value\n", a), usage(stderr);
    i++;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
    else if (!strcmp(a, "-p")) pp = atoi(v);
    else if (!strcmp(a, "-n")) tg = atoi(v);
    else if (!strcmp(a, "-r")) reps = atoi(v);
    else if (!strcmp(a, "-c")) n_ctx = atoi(v);
    else if (!strcmp(a, "--kv-type")) kv = !strcmp(v, "f32") ? KN_F32 : KN_F16;
    else return fprintf(stderr, "kiln bench: unknown option '%s'\n", a), usage(stderr);
  }
  if (!model || pp < 1 || tg < 0 || reps < 1) return usage(stderr);
  char err[1024], path[4096];
  if (kn_registry_resolve(model, path, sizeof path, err, sizeof err)) return fprintf(stderr, "kiln bench: %s\n", err), 1;
  kn_device *dev = kn_device_open(NULL, err, sizeof err);
  if (!dev) return fprintf(stderr, "kiln bench: %s\n", err), 1;
  kn_load_opts lo = kn_load_defaults();
  lo.n_ctx = n_ctx ? n_ctx : pp + tg + 8, lo.kv_dtype = kv;
  double t0 = kn_now();
  kn_model *m = kn_model_load(path, dev, &lo, err, sizeof err);
  if (!m) return fprintf(stderr, "kiln bench: %s\n", err), kn_device_close(dev), 1;
  double load_s = kn_now() - t0;
  if (pp + tg > m->n_ctx) {
    fprintf(stderr, "kiln bench: -p + -n exceeds the context (%d)\n", m->n_ctx);
    kn_model_free(m);
    kn_device_close(dev);
    return 1;
  }
  int32_t *toks = malloc(pp * sizeof *toks);
  float *logits = malloc(m->hp.n_vocab * sizeof *logits);
  for (int i = 0; i < pp; i++) toks[i] = (int32_t)((i * 7919 + 13) % m->hp.n_vocab);
  double *pps = calloc(reps, sizeof *pps), *tgs = calloc(reps, sizeof *tgs);
  int rc = 0;
  /* one warm-up pass compiles every kernel (or loads it from the cache) */
  if (kn_model_forward(m, 0, toks, pp, 0, false, logits, err, sizeof err) ||
      kn_model_forward(m, 0, toks, 1, pp, false, logits, err, sizeof err))
    rc = 1;
  for (int r = 0; r < reps && !rc; r++) {
    double a = kn_now();
    if (kn_model_forward(m, 0, toks, pp, 0, false, logits, err, sizeof err)) rc = 1;
    double b = kn_now();
    int32_t t = kn_argmax(logits, m->hp.n_vocab);
    for (int i = 0; i < tg && !rc; i++) {
      if (kn_model_forward(m, 0, &t, 1, pp + i, false, logits, err, sizeof err)) rc = 1;
      t = kn_argmax(logits, m->hp.n_vocab);
    }
    double c = kn_now();
    pps[r] = pp / (b - a), tgs[r] = tg / (c - b);
  }
  if (rc) fprintf(stderr, "kiln bench: %s\n", err);
  else {
    qsort(pps, reps, sizeof *pps, cmp), qsort(tgs, reps, sizeof *tgs, cmp);
    printf("model %s (%s), weights %.1f MiB, device %s, load %.2f s\n", m->name, m->hp.arch, m->weight_bytes / 1048576.0,
           kn_device_name(dev), load_s);
    printf("pp%-5d %10.2f tok/s (median of %d)\n", pp, pps[reps / 2], reps);
    printf("tg%-5d %10.2f tok/s (median of %d)\n", tg, tgs[reps / 2], reps);
    printf("peak RSS %.1f MiB\n", peak_rss_kb() / 1024.0);
  }
  free(toks), free(logits), free(pps), free(tgs);
  kn_model_free(m);
  kn_device_close(dev);
  return rc;
}
