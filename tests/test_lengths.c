/* Prompt lengths never recompile: after one warm-up prompt that uses every pass size, prompts of 20 new lengths
 * compile (and even load) no kernel, and the logits of each length's last position equal those of feeding the same
 * tokens one at a time (the decode step), the plain reference that no pass decomposition touches. The passes share
 * their intermediates: all ten cost no more memory than the largest alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "models/model.h"

static double rel_err(const float *a, const float *b, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; i++) num += (a[i] - b[i]) * (double)(a[i] - b[i]), den += (double)b[i] * b[i];
  return sqrt(num / (den > 0 ? den : 1));
}

int main(void) {
  const char *td = getenv("KILN_TESTDATA");
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/models/stories260K-F32.gguf", td ? td : "");
  struct stat st;
  if (!td || stat(path, &st)) return printf("skipped: %s not found (needs ../shared/testdata)\n", path), 77;
  kn_device *dev = kn_device_open("CPU", err, sizeof err);
  if (!dev) return printf("no CPU device: %s\n", err), 1;
  kn_load_opts o = kn_load_defaults();
  o.n_ctx = 1100, o.kv_dtype = KN_F32;
  kn_model *m = kn_model_load(path, dev, &o, err, sizeof err);
  if (!m) return printf("FAIL load: %s\n0 passed, 1 failed\n", err), kn_device_close(dev), 1;
  enum { NL = 20, MAXN = 1050 };
  /* 20 lengths no earlier prompt had, a few past one pass (512), none a power of two */
  int lens[NL] = {3, 5, 7, 11, 13, 22, 37, 50, 77, 100, 127, 190, 255, 300, 383, 511, 600, 777, 1000, 1049};
  int nv = m->hp.n_vocab;
  int32_t *ids = malloc(MAXN * sizeof *ids);
  float *ref = malloc((size_t)NL * nv * sizeof *ref), *got = malloc((size_t)nv * sizeof *got);
  for (int i = 0; i < MAXN; i++) ids[i] = (i * 7919 + 11) % nv;
  /* the reference: one token at a time, keeping the logits at each length */
  /* the largest pass alone, then every other: the smaller ones fit in its scratch buffers */
  int rc = kn_model_forward(m, 0, ids, 512, 0, false, got, err, sizeof err);
  size_t one = kn_capture_scratch_bytes(m->steps);
  rc = rc || kn_model_prepare(m, 0, 512, err, sizeof err);
  size_t all = kn_capture_scratch_bytes(m->steps);
  check(!rc && one > 0 && all <= one + one / 20, "intermediates of the ten pass sizes %.2f MiB, of the 512 pass alone %.2f MiB",
        all / 1048576.0, one / 1048576.0);
  for (int p = 0, l = 0; !rc && p < MAXN && l < NL; p++) {
    rc = kn_model_forward(m, 0, ids + p, 1, p, false, got, err, sizeof err);
    if (!rc && p + 1 == lens[l]) memcpy(ref + (size_t)l++ * nv, got, (size_t)nv * sizeof *got);
  }
  check(!rc, "token-by-token reference: %s", rc ? err : "");
  /* warm-up: 1023 = 512 + 256 + ... + 1 uses every pass size */
  rc = kn_model_forward(m, 0, ids, 1023, 0, false, got, err, sizeof err);
  check(!rc, "warm-up prompt of 1023 tokens: %s", rc ? err : "");
  kn_sched_stats s0 = kn_last_schedule();
  for (int l = 0; l < NL; l++) {
    rc = kn_model_forward(m, 0, ids, lens[l], 0, false, got, err, sizeof err);
    double e = rc ? INFINITY : rel_err(got, ref + (size_t)l * nv, nv);
    check(!rc && e < 1e-4, "prompt of %d tokens: last logits vs one token at a time: relative error %.2e %s", lens[l], e,
          rc ? err : "");
  }
  kn_sched_stats s1 = kn_last_schedule();
  check(s1.compiled == s0.compiled && s1.cache_hits == s0.cache_hits,
        "20 new prompt lengths after the warm-up: %lld kernels compiled, %lld loaded from the cache (want 0, 0)",
        (long long)(s1.compiled - s0.compiled), (long long)(s1.cache_hits - s0.cache_hits));
  free(ids), free(ref), free(got);
  kn_model_free(m);
  kn_device_close(dev);
  return check_summary();
}
