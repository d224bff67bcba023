/* The quantized matmuls on the emulated gfx1100 (DEVICE=AMD:EMU), from the emulator's per-kernel counters.
 *
 * Prefill: one Q4_K matmul of T tokens (512 x 256 x 2048; KILN_PREFILL_SHAPE=T,N,K for another) through the tiled
 * shape (codegen/amdgpu_qmm.c) reads each weight byte once per tile of 16 tokens and each activation once per
 * workgroup of 16 rows: fetched = T/16 x the weight's size and N/16 x the activations' size exactly; a sample of
 * outputs is checked against the plain C dequantizer, and the same kernel without the template (KILN_QMM=0, the
 * matvec shape per row block) is counted beside it.
 *
 * A decode step: each quantized weight is read by exactly one launch (one kernel per matmul, no dequantized copy and no
 * second pass), that launch reads every byte of it, and fetches each byte once per launch with the emulator's
 * per-wave model (lanes of one instruction in one wave that read the same bytes share a fetch; two waves reading the
 * same block header both fetch it, so every block must belong to one wave). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tests/kernel_ref.h"
#include "codegen/codegen.h"
#include "device/base/dtype.h"
#include "tests/ref_quant.h"
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

static kn_st st_strided(int nd, const int64_t *shape, const int64_t *strides) { return kn_kref_st_strided(nd, shape, strides, 0); }

/* out[t, n] = sum_k x[t, k] * W[n, k] with W in Q4_K, launched once with the counters reset; the counters of the
 * launch in *c. false when it failed. */
static bool prefill_once(kn_device *dev, int64_t T, int64_t N, int64_t K, const float *x, const void *w, float *out,
                         kn_kernel_counters *c, char *name, size_t nn) {
  kn_kernel *k = kn_kernel_new();
  k->nbufs = 3;
  k->bufs[0] = (kn_kbuf){KN_F32, T * N}, k->bufs[1] = (kn_kbuf){KN_F32, T * K}, k->bufs[2] = (kn_kbuf){KN_Q4_K, N * K};
  int64_t sh[3] = {T, N, K}, osh[3] = {T, N, 1}, so[3] = {N, 1, 0}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1};
  k->ndim = 3, k->nreduce = 1;
  for (int i = 0; i < 3; i++) k->shape[i] = sh[i];
  k->out_st = st_strided(3, osh, so);
  kn_st a = st_strided(3, sh, sx), b = st_strided(3, sh, sw);
  k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &a),
                                                    kn_kop_load(k, 2, KN_F32, &b), NULL));
  char err[512];
  kn_compiled comp;
  kn_program *p = NULL;
  size_t nb[3] = {(size_t)(T * N) * 4, (size_t)(T * K) * 4, (size_t)kn_dtype_nbytes(KN_Q4_K, N * K)};
  const void *host[3] = {out, x, w};
  kn_buf *bufs[3] = {0};
  bool ok = check(!kn_compile(k, kn_device_target(dev), &comp, err, sizeof err), "prefill: compile: %s", err);
  if (ok) snprintf(name, nn, "%s", comp.name);
  ok = ok && check((p = kn_program_load(dev, comp.entry, comp.obj, comp.obj_size, err, sizeof err)) != NULL, "prefill: load: %s", err);
  for (int i = 0; i < 3 && ok; i++)
    ok = check((bufs[i] = kn_buf_alloc(dev, nb[i], err, sizeof err)) && !kn_buf_copyin(bufs[i], 0, host[i], nb[i]),
               "prefill: buffer %d: %s", i, err);
  if (ok) {
    kn_device_counters_reset(dev);
    ok = check(!kn_program_launch(p, bufs, 3, NULL, 0, comp.global, comp.local, err, sizeof err) && !kn_device_sync(dev),
               "prefill: launch %s: %s", comp.name, err);
  }
  ok = ok && check(kn_device_counters(dev, c, 1) == 1, "prefill: no counters") && !kn_buf_copyout(bufs[0], 0, out, nb[0]);
  for (int i = 0; i < 3; i++) kn_buf_free(bufs[i]);
  kn_program_free(p);
  if (comp.obj) kn_compiled_free(&comp);
  kn_kernel_free(k);
  return ok;
}

static void print_counts(const char *what, const kn_kernel_counters *c, uint64_t xb, uint64_t wb) {
  double mib = 1024.0 * 1024.0;
  uint64_t insts = 0;
  for (int i = 0; i < KN_COUNTER_CLASSES; i++) insts += c->insts[i];
  printf("  %-8s %-22s %6llu workgroups %7llu waves %11llu instructions; read %8.1f MiB, least %5.1f MiB; weight "
         "fetched %5.1fx, activations %5.1fx\n",
         what, c->name, (unsigned long long)c->workgroups, (unsigned long long)c->waves, (unsigned long long)insts,
         c->global_read / mib, c->read_distinct / mib, (double)(c->top_distinct == wb ? c->top_fetched : c->second_fetched) / wb,
         (double)(c->top_distinct == xb ? c->top_fetched : c->second_fetched) / xb);
}

static void check_prefill(kn_device *dev) {
  int64_t T = 512, N = 256, K = 2048;
  const char *sh = getenv("KILN_PREFILL_SHAPE");
  long long a, b, cc;
  if (sh && sscanf(sh, "%lld,%lld,%lld", &a, &b, &cc) == 3 && a >= 16 && b >= 16 && cc >= 256)
    T = a / 16 * 16, N = b / 16 * 16, K = cc / 256 * 256; /* whole tiles and chunks: the exact figures below */
  uint64_t rs = 0x9e3779b97f4a7c15ull;
  float *x = malloc((size_t)(T * K) * 4), *out = malloc((size_t)(T * N) * 4), *row = malloc((size_t)K * 4);
  void *w = malloc((size_t)kn_dtype_nbytes(KN_Q4_K, N * K));
  for (int64_t i = 0; i < T * K; i++) x[i] = (float)kn_ref_uniform(&rs) * 2 - 1;
  kn_ref_fill_random(KN_Q4_K, w, N * K, &rs);
  uint64_t xb = (uint64_t)(T * K) * 4, wb = (uint64_t)kn_dtype_nbytes(KN_Q4_K, N * K);
  printf("prefill Q4_K T %lld N %lld K %lld: weight %.2f MiB, activations %.2f MiB\n", (long long)T, (long long)N,
         (long long)K, wb / 1048576.0, xb / 1048576.0);
  kn_kernel_counters c;
  char name[96] = "";
  if (prefill_once(dev, T, N, K, x, w, out, &c, name, sizeof name)) {
    check(!strncmp(name, "qmm_", 4), "prefill: compiled as %s, not by the tiled template", name);
    print_counts("tiled", &c, xb, wb);
    uint64_t wf = c.top_distinct == wb ? c.top_fetched : c.second_fetched, xf = c.top_distinct == xb ? c.top_fetched : c.second_fetched;
    check(wf == wb * (uint64_t)(T / 16), "prefill: the weight fetched %llu bytes, want %lld tiles x %llu", (unsigned long long)wf,
          (long long)(T / 16), (unsigned long long)wb);
    check(xf == xb * (uint64_t)(N / 16), "prefill: the activations fetched %llu bytes, want %lld row tiles x %llu",
          (unsigned long long)xf, (long long)(N / 16), (unsigned long long)xb);
    int bad = 0;
    for (int s = 0; s < 64; s++) { /* a sample of outputs against the plain C dequantizer */
      int64_t n = (int64_t)(kn_ref_rand(&rs) % (uint64_t)N), t = (int64_t)(kn_ref_rand(&rs) % (uint64_t)T);
      kn_ref_dequant(KN_Q4_K, (const char *)w + kn_dtype_nbytes(KN_Q4_K, n * K), K, row);
      double want = 0, mag = 0;
      for (int64_t i = 0; i < K; i++) want += (double)row[i] * x[t * K + i], mag += fabs((double)row[i] * x[t * K + i]);
      if (!(fabs(out[t * N + n] - want) <= 1e-5 * mag + 1e-6) && bad++ < 3)
        check(false, "prefill: out[%lld, %lld] = %.9g, want %.9g", (long long)t, (long long)n, out[t * N + n], want);
    }
  }
  setenv("KILN_QMM", "0", 1); /* the same kernel through the general GPU schedule */
  if (prefill_once(dev, T, N, K, x, w, out, &c, name, sizeof name)) print_counts("matvec", &c, xb, wb);
  unsetenv("KILN_QMM");
  free(x), free(out), free(row), free(w);
}

int main(void) {
  char err[256];
  kn_device *dev = kn_device_open("AMD:EMU", err, sizeof err);
  if (!check(dev != NULL, "open AMD:EMU: %s", err)) return check_summary();
  check_prefill(dev);
  const char *td = getenv("KILN_TESTDATA");
  char p[1024];
  snprintf(p, sizeof p, "%s/models/tiny-llama-Q4_0.gguf", td ? td : "");
  FILE *f = td ? fopen(p, "rb") : NULL;
  if (!f) {
    printf("the decode steps skipped: test models not found (KILN_TESTDATA=%s; needs ../shared/testdata)\n", td ? td : "unset");
    kn_device_close(dev);
    return check_summary();
  }
  fclose(f);
  const char *models[] = {"tiny-llama-Q4_0", "tiny-llama-Q8_0", "tiny-llama-Q4_K_M", "tiny-qwen2-Q4_K_M"};
  for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) check_model(dev, td, models[i]);
  kn_device_close(dev);
  return check_summary();
}
