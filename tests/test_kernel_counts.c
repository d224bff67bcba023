/* Kernels per transformer layer of a llama-family step, pinned (issue 9: a decode step was 14 per layer). A decode
 * step (one token) and a prefill pass (8 tokens) of tiny-llama and tiny-qwen2 are scheduled and their kernels
 * counted; the layers of these models are all alike, so (total - outside) / n_layer is the per-layer count.
 * DEBUG=3 shows each kernel and why its boundary is there. Outside the layers: the embedding gather, the rope
 * tables' rows at this step's positions (two gathers), the final RMSNorm and the output projection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"

static int failed;

/* the counts this tree schedules: lower is better; a change must update them (and docs/graph-api.md) */
static const struct {
  const char *model;
  int n_tokens, fuse_rope, per_layer;
} pinned[] = {
    {"tiny-llama-Q4_K_M", 1, 0, 11},
    {"tiny-llama-Q4_K_M", 8, 0, 13},
    {"tiny-qwen2-Q4_K_M", 1, 0, 11},
    {"tiny-qwen2-Q4_K_M", 8, 0, 13},
    /* KILN_FUSE_ROPE=1 (graph/schedule.c): RoPE fused into the q and k projections of a decode step */
    {"tiny-llama-Q4_K_M", 1, 1, 9},
    {"tiny-llama-Q4_K_M", 8, 1, 13},
    {"tiny-qwen2-Q4_K_M", 1, 1, 9},
    {"tiny-qwen2-Q4_K_M", 8, 1, 13},
};

enum { OUTSIDE = 5, MAX_FUSED_DECODE_PER_LAYER = 10 };

static int count(kn_model *m, int n) {
  char err[512];
  int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float *logits = malloc((size_t)m->hp.n_vocab * sizeof *logits);
  int rc = kn_model_forward(m, 0, ids, n, 0, false, logits, err, sizeof err);
  free(logits);
  if (rc) return printf("FAIL forward of %d tokens: %s\n", n, err), -1;
  return kn_last_schedule().kernels; /* the step was captured (scheduled) by this first forward of its size */
}

int main(void) {
  const char *td = getenv("KILN_TESTDATA");
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/models/tiny-llama-Q4_K_M.gguf", td ? td : "../shared/testdata");
  FILE *probe = fopen(path, "rb");
  if (!probe) return printf("SKIP: %s absent (../shared/testdata holds the test models)\n", path), 77;
  fclose(probe);
  kn_device *dev = kn_device_open(NULL, err, sizeof err);
  if (!dev) return printf("FAIL opening the device: %s\n", err), 1;
  for (size_t i = 0; i < sizeof pinned / sizeof *pinned; i++) {
    snprintf(path, sizeof path, "%s/models/%s.gguf", td ? td : "../shared/testdata", pinned[i].model);
    setenv("KILN_FUSE_ROPE", pinned[i].fuse_rope ? "1" : "0", 1);
    kn_load_opts o = kn_load_defaults();
    o.n_ctx = 64;
    kn_model *m = kn_model_load(path, dev, &o, err, sizeof err);
    if (!m) {
      printf("FAIL loading %s: %s\n", path, err), failed++;
      continue;
    }
    int total = count(m, pinned[i].n_tokens), L = m->hp.n_layer;
    int per = total < 0 ? -1 : (total - OUTSIDE) / L;
    bool ok = total >= 0 && (total - OUTSIDE) % L == 0 && per == pinned[i].per_layer &&
              (pinned[i].n_tokens > 1 || !pinned[i].fuse_rope || per <= MAX_FUSED_DECODE_PER_LAYER);
    printf("%s %s%s %s (%d token%s): %d kernels = %d outside the layers + %d layers x %d (pinned %d per layer)\n",
           ok ? "ok  " : "FAIL", pinned[i].fuse_rope ? "KILN_FUSE_ROPE=1 " : "", pinned[i].model, pinned[i].n_tokens == 1 ? "decode" : "prefill", pinned[i].n_tokens,
           pinned[i].n_tokens == 1 ? "" : "s", total, OUTSIDE, L, per, pinned[i].per_layer);
    failed += !ok;
    kn_model_free(m);
  }
  kn_device_close(dev);
  printf("%s\n", failed ? "FAILED" : "all kernel counts as pinned");
  return failed ? 1 : 0;
}
