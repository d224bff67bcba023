/* Peak resident memory while running tiny-qwen2-Q4_K_M stays under file size + KV cache + 256 MiB: weights are
 * used in place from the mapped file, never dequantized or copied (and `kernels` mode checks the schedule for a
 * copy of any one weight, which the slack of a tiny model would hide). Read from /proc/self/status (VmHWM). The memory
 * plan (`kiln run --dry-run`) predicts that peak within 10% after a prompt long enough for the largest pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* `test_memory kernels` (run with DEBUG=3): no kernel of a prompt's passes or a decode step makes a float copy of a
 * weight. The schedule printed at DEBUG=3 names each kernel's iteration space (reduce axes marked r) and the dtypes
 * it reads; a kernel that reads a block-format or 16-bit float buffer must be a reduction (a matmul decoding the
 * blocks in registers), the embedding gather or the attention template. A dequantized copy of any one weight matrix
 * (an elementwise kernel over a q4_k buffer, say) fails here, however small the model. */
static int kernels_mode(kn_model *m) {
  fflush(stderr);
  FILE *log = tmpfile();
  int saved = dup(2);
  if (!log || saved < 0 || dup2(fileno(log), 2) < 0) return printf("FAIL cannot capture stderr\n0 passed, 1 failed\n"), 1;
  enum { NP = 600 };
  int32_t toks[NP];
  char err[512];
  for (int i = 0; i < NP; i++) toks[i] = (i * 977) % m->hp.n_vocab;
  float *logits = malloc(m->hp.n_vocab * sizeof *logits);
  int rc = kn_model_forward(m, 0, toks, NP, 0, false, logits, err, sizeof err);
  for (int i = 0; !rc && i < 2; i++) rc = kn_model_forward(m, 0, toks + i, 1, NP + i, false, logits, err, sizeof err);
  free(logits);
  fflush(stderr);
  dup2(saved, 2), close(saved);
  if (rc) return printf("FAIL forward: %s\n0 passed, 1 failed\n", err), 1;
  rewind(log);
  char line[4096], head[4096] = "";
  int kernels = 0, weight_readers = 0, bad = 0;
  while (fgets(line, sizeof line, log)) {
    if (!strncmp(line, "kernel #", 8)) {
      snprintf(head, sizeof head, "%s", line), kernels++;
      continue;
    }
    const char *sp = strstr(line, "space ["), *rd = strstr(line, "reads:");
    if (strncmp(line, "  space [", 9) || !sp || !rd || !head[0]) continue;
    bool reduce = false;
    for (const char *c = sp; *c && *c != ']'; c++) reduce |= *c == 'r';
    bool weight = false;
    for (const char *c = rd; (c = strchr(c, '(')); c++)
      weight |= c[1] == 'q' || !strncmp(c + 1, "float16)", 8) || !strncmp(c + 1, "bfloat16)", 9);
    if (!weight) continue;
    weight_readers++;
    if (!reduce && !strstr(head, "gather") && !strstr(head, "attention")) {
      bad++;
      head[strcspn(head, "\n")] = 0;
      printf("FAIL a kernel copies a weight instead of reading it in a matmul: %s\n   %s", head, line);
    }
    head[0] = 0;
  }
  fclose(log);
  bool seen = kernels > 0 && weight_readers > 0;
  if (!seen) printf("FAIL no schedule in the output (%d kernels, %d reading weights): is DEBUG=3 set?\n", kernels, weight_readers);
  else printf("%d kernels, %d of them reading weights, each a matmul, gather or attention\n", kernels, weight_readers);
  printf("%d passed, %d failed\n", seen && !bad, !(seen && !bad));
  return seen && !bad ? 0 : 1;
}

int main(int argc, char **argv) {
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
  if (argc > 1 && !strcmp(argv[1], "kernels")) {
    int rc = kernels_mode(m);
    kn_model_free(m);
    kn_device_close(dev);
    return rc;
  }
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
