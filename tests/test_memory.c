/* Peak resident memory while running tiny-qwen2-Q4_K_M stays under file size + KV cache + 256 MiB: weights are
 * used in place from the mapped file, never dequantized or copied. Read from /proc/self/status (VmHWM). The memory
 * plan (`kiln run --dry-run`) predicts that peak within 10% after a prompt long enough for the largest pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models/model.h"

static long status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, key, strlen(key))) kb = strtol(line + strlen(key), NULL, 10);
  if (f) fclose(f);
  return kb;
}

int main(void) {
#if defined(__SANITIZE_ADDRESS__)
  printf("skipped: resident memory is not meaningful under AddressSanitizer (its shadow memory counts)\n");
  return 77;
#endif
  const char *td = getenv("KILN_TESTDATA");
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/models/tiny-qwen2-Q4_K_M.gguf", td ? td : "");
  struct stat st;
  if (!td || stat(path, &st)) {
    printf("skipped: %s not found (needs ../shared/testdata)\n", path);
    return 77;
  }
  kn_device *dev = kn_device_open("CPU", err, sizeof err);
  kn_load_opts o = kn_load_defaults();
  o.n_ctx = 1024;
  kn_model *m = dev ? kn_model_load(path, dev, &o, err, sizeof err) : NULL;
  if (!m) return printf("FAIL load: %s\n0 passed, 1 failed\n", err), 1;
  enum { NP = 600 };
  int32_t toks[NP];
  for (int i = 0; i < NP; i++) toks[i] = (i * 977) % m->hp.n_vocab;
  float *logits = malloc(m->hp.n_vocab * sizeof *logits);
  int rc = kn_model_forward(m, 0, toks, NP, 0, false, logits, err, sizeof err);
  for (int i = 0; !rc && i < 32; i++) rc = kn_model_forward(m, 0, toks + i, 1, NP + i, false, logits, err, sizeof err);
  long hwm = status_kb("VmHWM:");
  kn_mem_plan plan;
  bool planned = !kn_model_mem_plan(path, dev, &o, &plan, err, sizeof err);
  double off = planned && hwm > 0 ? plan.total / (hwm * 1024.0) - 1 : 1;
  printf("memory plan %.1f MiB, %+.1f%% of the peak\n", plan.total / 1048576.0, off * 100);
  double limit = (double)st.st_size + (double)m->kv_bytes + 256.0 * 1048576;
  printf("peak RSS %.1f MiB; file %.1f MiB + KV cache %.1f MiB + 256 MiB = %.1f MiB\n", hwm / 1024.0,
         st.st_size / 1048576.0, m->kv_bytes / 1048576.0, limit / 1048576.0);
  bool ok = !rc && hwm > 0 && hwm * 1024.0 < limit, ok2 = planned && off > -0.1 && off < 0.1;
  if (rc) printf("FAIL forward: %s\n", err);
  if (!ok2) printf("FAIL the memory plan is off by more than 10%% of the peak\n");
  printf("%d passed, %d failed\n", ok + ok2, !ok + !ok2);
  free(logits);
  kn_model_free(m);
  kn_device_close(dev);
  return ok && ok2 ? 0 : 1;
}
