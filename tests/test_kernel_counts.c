/* Kernels per transformer layer, pinned (issue 9: a llama decode step was 14 per layer). A decode step (one token)
 * and a prefill pass (8 tokens) of each architecture's tiny model are scheduled and their kernels counted; the
 * layers of a model all schedule alike (gemma3's sliding and global layers differ only in their tables and window),
 * so (total - outside) / n_layer is the per-layer count. DEBUG=3 shows each kernel and why its boundary is there.
 * Outside the layers: the embedding gather, the rope tables' rows at this step's positions (two gathers per table
 * pair: llama-family one pair, gemma3 a local and a global pair), the final RMSNorm and the output projection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"

static int failed;

/* the counts this tree schedules: lower is better; a change must update them (and docs/graph-api.md) */
static const struct {
  const char *model;
  int n_tokens, fuse_rope, outside, per_layer;
} pinned[] = {
    /* default: RoPE runs inside the q and k projections of a decode step (graph/schedule.c swizzle_decode) */
    {"tiny-llama-Q4_K_M", 1, 1, 5, 9},
    {"tiny-llama-Q4_K_M", 8, 1, 5, 13},
    {"tiny-qwen2-Q4_K_M", 1, 1, 5, 9},
    {"tiny-qwen2-Q4_K_M", 8, 1, 5, 13},
    {"tiny-llama3-Q4_K_M", 1, 1, 5, 9},
    /* qwen3: the per-head q/k RMSNorms sit between the projections and RoPE (their mean squares are kernels) */
    {"tiny-qwen3-Q4_K_M", 1, 1, 5, 13},
    {"tiny-qwen3-Q4_K_M", 8, 1, 5, 15},
    /* gemma3: q/k norms, and post-attention and post-feed-forward norms before each residual add */
    {"tiny-gemma3-Q4_K_M", 1, 1, 7, 17},
    {"tiny-gemma3-Q4_K_M", 8, 1, 7, 19},
    /* KILN_FUSE_ROPE=0: q's RoPE and k's RoPE (with the cache write) as kernels of their own */
    {"tiny-llama-Q4_K_M", 1, 0, 5, 11},
    {"tiny-llama-Q4_K_M", 8, 0, 5, 13},
};

enum { MAX_LLAMA_DECODE_PER_LAYER = 10 }; /* issue 9's bound for the default llama decode step */

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
    if (pinned[i].fuse_rope) unsetenv("KILN_FUSE_ROPE"); /* the default */
    else setenv("KILN_FUSE_ROPE", "0", 1);
    kn_load_opts o = kn_load_defaults();
    o.n_ctx = 64;
    kn_model *m = kn_model_load(path, dev, &o, err, sizeof err);
    if (!m) {
      printf("FAIL loading %s: %s\n", path, err), failed++;
      continue;
    }
    int total = count(m, pinned[i].n_tokens), L = m->hp.n_layer, out = pinned[i].outside;
    int per = total < 0 ? -1 : (total - out) / L;
    bool llama = strstr(pinned[i].model, "llama") || strstr(pinned[i].model, "qwen2");
    bool ok = total >= 0 && (total - out) % L == 0 && per == pinned[i].per_layer &&
              (!llama || pinned[i].n_tokens > 1 || !pinned[i].fuse_rope || per <= MAX_LLAMA_DECODE_PER_LAYER);
    printf("%s %s%s %s (%d token%s): %d kernels = %d outside the layers + %d layers x %d (pinned %d per layer)\n",
           ok ? "ok  " : "FAIL", pinned[i].fuse_rope ? "" : "KILN_FUSE_ROPE=0 ", pinned[i].model,
           pinned[i].n_tokens == 1 ? "decode" : "prefill", pinned[i].n_tokens, pinned[i].n_tokens == 1 ? "" : "s", total,
           out, L, (total - out) / L, pinned[i].per_layer);
    failed += !ok;
    kn_model_free(m);
  }
  kn_device_close(dev);
  printf("%s\n", failed ? "FAILED" : "all kernel counts as pinned");
  return failed ? 1 : 0;
}
