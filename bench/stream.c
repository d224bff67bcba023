/* GEMVs over weights streamed from DRAM, as decode reads them: each shape's weight in COPIES buffers launched one
 * after the other (a model's layers: together far larger than the caches), under several codegen configurations
 * (environment settings such as KILN_QROWS=1) alternated pass by pass, so that the shared host's bandwidth, which
 * drifts by 2x within minutes, weighs on every configuration alike. Prints each configuration's GB/s of weights
 * per shape and over the whole pass, from the median pass.
 * Usage: bench_stream PASSES FORMAT:NxK:COPIES... -- NAME:VAR=VALUE[,VAR=VALUE...]...
 * e.g. bench_stream 200 q8_0:151936x896:1 q5_0:4864x896:24 -- old:KILN_QROWS=16 new:KILN_QROWS=1 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "device/base/env.h"
#include "device/device.h"
#include "tests/ref_quant.h"
#include "tests/wmm.h"

#define MAXSHAPES 8
#define MAXCFG 8
#define MAXCOPIES 64

typedef struct {
  kn_dtype fmt;
  int64_t n, k;
  int copies;
  kn_buf *w[MAXCOPIES], *x, *out;
  double bytes; /* of all copies */
} shape;

typedef struct {
  char name[32], vars[224]; /* VAR=VALUE,VAR=VALUE */
  kn_compiled comp[MAXSHAPES];
  kn_program *prog[MAXSHAPES];
} config;

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int parse_shape(const char *arg, shape *s) {
  char f[32];
  long long n, k;
  int c;
  if (sscanf(arg, "%31[^:]:%lldx%lld:%d", f, &n, &k, &c) != 4 || n < 1 || k < 1 || c < 1 || c > MAXCOPIES) return -1;
  for (int d = 0; d < KN_DTYPE_COUNT; d++)
    if (!strcmp(kn_dtype_name((kn_dtype)d), f)) {
      *s = (shape){.fmt = (kn_dtype)d, .n = n, .k = k, .copies = c};
      return kn_dtype_nbytes(s->fmt, n * k) > 0 ? 0 : -1;
    }
  return -1;
}

/* Sets the variables of config c (after unsetting every variable any config names). */
static void apply(const config *cfg, int ncfg, int c) {
  for (int pass = 0; pass < 2; pass++)
    for (int i = pass ? c : 0; i < (pass ? c + 1 : ncfg); i++) {
      char buf[224];
      snprintf(buf, sizeof buf, "%s", cfg[i].vars);
      for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq) continue;
        *eq = 0;
        if (pass) setenv(t, eq + 1, 1);
        else unsetenv(t);
      }
    }
}

/* One pass of configuration c: every shape's copies in turn; the seconds of each shape into t[]. */
static void run_pass(kn_device *dev, config *c, shape *sh, int ns, double *t) {
  char err[256];
  for (int s = 0; s < ns; s++) {
    double t0 = kn_now();
    for (int i = 0; i < sh[s].copies; i++) {
      kn_buf *b[3] = {sh[s].out, sh[s].x, sh[s].w[i]};
      kn_program_launch(c->prog[s], b, 3, NULL, 0, c->comp[s].global, c->comp[s].local, err, sizeof err);
    }
    kn_device_sync(dev);
    t[s] = kn_now() - t0;
  }
}

int main(int argc, char **argv) {
  static shape sh[MAXSHAPES];
  static config cfg[MAXCFG];
  int passes = argc > 1 ? atoi(argv[1]) : 0, ns = 0, nc = 0, a = 2;
  for (; a < argc && strcmp(argv[a], "--") && ns < MAXSHAPES; a++)
    if (parse_shape(argv[a], &sh[ns++])) return fprintf(stderr, "bench_stream: bad shape %s\n", argv[a]), 2;
  for (a++; a < argc && nc < MAXCFG; a++, nc++) {
    const char *colon = strchr(argv[a], ':');
    if (!colon) return fprintf(stderr, "bench_stream: configuration %s is not NAME:VAR=VALUE,...\n", argv[a]), 2;
    snprintf(cfg[nc].name, sizeof cfg[nc].name, "%.*s", (int)(colon - argv[a]), argv[a]);
    snprintf(cfg[nc].vars, sizeof cfg[nc].vars, "%s", colon + 1);
  }
  if (passes < 1 || !ns || !nc) {
    fprintf(stderr, "usage: bench_stream PASSES FORMAT:NxK:COPIES... -- NAME:VAR=VALUE[,VAR=VALUE...]...\n");
    return 2;
  }
  char err[512];
  kn_device *dev = kn_device_open("CPU", err, sizeof err);
  if (!dev) return fprintf(stderr, "bench_stream: %s\n", err), 1;
  for (int c = 0; c < nc; c++) { /* the compile memo's key holds the codegen variables: one kernel per config */
    apply(cfg, nc, c);
    for (int s = 0; s < ns; s++) {
      kn_kernel *k = kn_test_wmm_kernel(sh[s].fmt, 1, sh[s].n, sh[s].k);
      if (kn_compile(k, kn_device_target(dev), &cfg[c].comp[s], err, sizeof err) ||
          !(cfg[c].prog[s] = kn_program_load(dev, cfg[c].comp[s].entry, cfg[c].comp[s].obj, cfg[c].comp[s].obj_size, err,
                                              sizeof err)))
        return fprintf(stderr, "bench_stream: %s: %s\n", cfg[c].name, err), 1;
      kn_kernel_free(k);
    }
  }
  apply(cfg, nc, nc - 1);
  uint64_t rs = 42;
  double total = 0;
  for (int s = 0; s < ns; s++) {
    size_t wb = (size_t)kn_dtype_nbytes(sh[s].fmt, sh[s].n * sh[s].k);
    sh[s].bytes = (double)wb * sh[s].copies, total += sh[s].bytes;
    if (!(sh[s].x = kn_buf_alloc(dev, (size_t)sh[s].k * 4, err, sizeof err)) ||
        !(sh[s].out = kn_buf_alloc(dev, (size_t)sh[s].n * 4, err, sizeof err)))
      return fprintf(stderr, "bench_stream: %s\n", err), 1;
    kn_ref_fill_random(KN_F32, sh[s].x->ptr, sh[s].k, &rs);
    for (int i = 0; i < sh[s].copies; i++) {
      if (!(sh[s].w[i] = kn_buf_alloc(dev, wb, err, sizeof err))) return fprintf(stderr, "bench_stream: %s\n", err), 1;
      kn_ref_fill_random(sh[s].fmt, sh[s].w[i]->ptr, sh[s].n * sh[s].k, &rs);
    }
  }
  double *t = calloc((size_t)(nc * passes * (ns + 1)), sizeof *t), *v = calloc((size_t)passes, sizeof *v);
  if (!t || !v) return fprintf(stderr, "bench_stream: out of memory\n"), 1;
  for (int p = 0; p < passes; p++)
    for (int i = 0; i < nc; i++) { /* the order rotates too: no config always follows the same one */
      int c = (i + p) % nc;
      double *tp = &t[(c * passes + p) * (ns + 1)];
      run_pass(dev, &cfg[c], sh, ns, tp);
      for (int s = 0; s < ns; s++) tp[ns] += tp[s];
    }
  for (int s = 0; s <= ns; s++) {
    char label[64] = "whole pass";
    if (s < ns) snprintf(label, sizeof label, "%s:%lldx%lld:%d", kn_dtype_name(sh[s].fmt), (long long)sh[s].n, (long long)sh[s].k, sh[s].copies);
    printf("%-26s", label);
    for (int c = 0; c < nc; c++) {
      for (int p = 0; p < passes; p++) v[p] = t[(c * passes + p) * (ns + 1) + s];
      qsort(v, (size_t)passes, sizeof *v, cmpd);
      printf("  %s %.1f GB/s", cfg[c].name, (s < ns ? sh[s].bytes : total) / v[passes / 2] / 1e9);
    }
    printf("\n");
  }
  return 0;
}
