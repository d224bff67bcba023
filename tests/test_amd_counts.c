/* The quantized matmuls of a decode step on the emulated gfx1100 (DEVICE=AMD:EMU), from the emulator's per-kernel
 * counters: each quantized weight is read by exactly one launch (one kernel per matmul, no dequantized copy and no
 * second pass), that launch reads every byte of it, and fetches each byte once per launch with the emulator's
 * per-wave model (lanes of one instruction in one wave that read the same bytes share a fetch; two waves reading the
 * same block header both fetch it, so every block must belong to one wave). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device/base/dtype.h"
#include "device/device.h"
#include "models/gguf.h"
#include "models/model.h"


static void check_model(kn_device *dev, const char *td, const char *name) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/models/%s.gguf", td, name);
  kn_load_opts o = kn_load_defaults();
  o.n_ctx = 16;
  kn_model *m = kn_model_load(path, dev, &o, err, sizeof err);
  if (!check(m != NULL, "%s: load: %s", name, err)) return;
  /* the quantized matmul weights: every quantized tensor but a token embedding that an output matrix stands beside */
  const kn_gguf *g = m->file;
  bool untied = kn_gguf_tensor_find(g, "output.weight") != NULL;
  int nq = 0;
  uint64_t sizes[256];
  for (size_t i = 0; i < kn_gguf_tensor_count(g) && nq < 256; i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(g, i);
    if (t->dtype < 0 || !kn_dtype_is_quant((kn_dtype)t->dtype)) continue;
    if (untied && !strcmp(t->name, "token_embd.weight")) continue; /* read a row at a time by the embedding gather */
    sizes[nq++] = t->nbytes;
  }
  float *logits = malloc(m->hp.n_vocab * sizeof *logits);
  int32_t tok = 1;
  int rc = kn_model_forward(m, 0, &tok, 1, 0, false, logits, err, sizeof err); /* compiles and warms up */
  kn_device_counters_reset(dev);
  rc = rc ? rc : kn_model_forward(m, 0, &tok, 1, 1, false, logits, err, sizeof err);
  if (!check(!rc, "%s: decode step: %s", name, err)) goto out;
  int n = kn_device_counters(dev, NULL, 0);
  kn_kernel_counters *c = calloc(n ? n : 1, sizeof *c);
  n = kn_device_counters(dev, c, n);
  int matched = 0;
  for (int i = 0; i < n; i++) {
    /* a launch's most-read buffer, and its second (a kernel fusing two matmuls, gate and up, reads two weights) */
    for (int which = 0; which < 2; which++) {
      uint64_t distinct = which ? c[i].second_distinct : c[i].top_distinct;
      uint64_t fetched = which ? c[i].second_fetched : c[i].top_fetched;
      if (!c[i].launches || !distinct || distinct % c[i].launches) continue;
      uint64_t per = distinct / c[i].launches;
      bool weight = false;
      for (int k = 0; k < nq && !weight; k++) weight = sizes[k] == per;
      if (!weight) continue;
      matched += (int)c[i].launches;
      double f = (double)fetched / distinct;
      check(fetched == distinct, "%s: %s fetches its %llu-byte weight %.3f times (want each byte once)", name, c[i].name,
            (unsigned long long)per, f);
      printf("  %s %-36s %llu launches, %s weight %llu bytes, each byte read, fetched %.3fx\n", name, c[i].name,
             (unsigned long long)c[i].launches, which ? "second" : "first", (unsigned long long)per, f);
    }
  }
  check(matched == nq, "%s: %d quantized matmul weights, %d read whole by one launch each (one kernel per matmul or per fused pair)", name, nq,
        matched);
  free(c);
out:
  free(logits);
  kn_model_free(m);
}

int main(void) {
  const char *td = getenv("KILN_TESTDATA");
  char p[1024];
  snprintf(p, sizeof p, "%s/models/tiny-llama-Q4_0.gguf", td ? td : "");
  FILE *f = td ? fopen(p, "rb") : NULL;
  if (!f) {
    printf("skipped: test models not found (KILN_TESTDATA=%s; needs ../shared/testdata)\n", td ? td : "unset");
    return 77;
  }
  fclose(f);
  char err[256];
  kn_device *dev = kn_device_open("AMD:EMU", err, sizeof err);
  if (!check(dev != NULL, "open AMD:EMU: %s", err)) return check_summary();
  const char *models[] = {"tiny-llama-Q4_0", "tiny-llama-Q8_0", "tiny-llama-Q4_K_M", "tiny-qwen2-Q4_K_M"};
  for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) check_model(dev, td, models[i]);
  kn_device_close(dev);
  return check_summary();
}
