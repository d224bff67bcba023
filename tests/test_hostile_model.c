/* Hostile model files: a testdata model rewritten with impossible hyper-parameters (a NaN or negative norm epsilon,
 * a rope base of 0 or NaN, a context length of 0 or 2^32-1, a u64 head count of 2^32+8, a vocabulary that does not
 * match the embedding rows) must fail to load with a message naming the key, and so must tensors the architecture
 * cannot take (one missing, one of another shape, a rope_freqs.weight of the wrong size, which would otherwise
 * silently change the model) with a message naming the tensor; a model whose weights make the logits
 * NaN loads, and sampling from it reports broken logits instead of reading out of bounds.
 * `test_hostile_model nan-weights OUT` writes that NaN model for the server tests (tests/hostile.sh). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "device/device.h"
#include "models/gguf.h"
#include "models/model.h"
#include "models/sample.h"
#include "models/session.h"

/* V_DROP: without tensor key; V_TRANSPOSE: tensor key with its two dimensions swapped (the same bytes);
 * V_EXTRA_F32: an added float32 tensor key of num values */
typedef enum { V_U32, V_U64, V_F32, V_NAN_WEIGHT, V_SHORT_VOCAB, V_DROP, V_TRANSPOSE, V_EXTRA_F32 } change_kind;

typedef struct change {
  change_kind kind;
  const char *key; /* metadata key (without the architecture prefix for numbers), or the tensor */
  double num;
  const char *expect; /* in the load error */
} change;

/* Copy src to out with one change. */
static int rewrite(const char *src, const char *out, const change *c, char *err, size_t errlen) {
  kn_gguf *g = kn_gguf_open(src, err, errlen);
  if (!g) return -1;
  const char *arch = kn_gguf_get_str(g, "general.architecture", "llama");
  kn_gguf_writer *w = kn_gguf_writer_new((uint32_t)kn_gguf_alignment(g));
  int rc = 0;
  for (size_t i = 0; i < kn_gguf_kv_count(g) && !rc; i++) {
    const kn_gguf_kv *kv = kn_gguf_kv_at(g, i);
    if (strcmp(kv->key, "general.alignment")) rc = kn_gguf_set_value(w, kv->key, &kv->value);
  }
  char key[160];
  snprintf(key, sizeof key, "%s.%s", arch, c->key);
  if (c->kind == V_U32) rc |= kn_gguf_set_u32(w, key, (uint32_t)c->num);
  if (c->kind == V_U64) rc |= kn_gguf_set_u64(w, key, (uint64_t)c->num);
  if (c->kind == V_F32) rc |= kn_gguf_set_f32(w, key, (float)c->num);
  if (c->kind == V_SHORT_VOCAB) { /* one token fewer than the embedding has rows */
    const kn_gguf_value *toks = kn_gguf_get_arr(g, "tokenizer.ggml.tokens", KN_GGUF_STRING);
    uint64_t n = kn_gguf_arr_len(toks) - 1;
    const char **strs = calloc(n, sizeof *strs);
    for (uint64_t k = 0; strs && k < n; k++) strs[k] = kn_gguf_arr_str(toks, k, NULL);
    rc |= !strs || kn_gguf_set_arr_str(w, "tokenizer.ggml.tokens", strs, n);
    free(strs);
    const char *per_token[] = {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"};
    for (int k = 0; k < 2; k++) {
      const kn_gguf_value *v = kn_gguf_get(g, per_token[k]);
      if (!v) continue;
      kn_gguf_value cut = *v;
      cut.n = n;
      rc |= kn_gguf_set_value(w, per_token[k], &cut);
    }
  }
  float *nan_data = NULL;
  for (size_t i = 0; i < kn_gguf_tensor_count(g) && !rc; i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(g, i);
    const void *data = t->data;
    if (c->kind == V_NAN_WEIGHT && !strcmp(t->name, c->key)) {
      if (t->type != 0) { /* f32 */
        snprintf(err, errlen, "%s is not f32", c->key);
        rc = -1;
        break;
      }
      nan_data = malloc(t->nbytes);
      for (uint64_t k = 0; nan_data && k < t->nbytes / 4; k++) nan_data[k] = NAN;
      data = nan_data;
    }
    if (c->kind == V_DROP && !strcmp(t->name, c->key)) continue;
    uint64_t ne[KN_GGUF_MAX_DIMS];
    memcpy(ne, t->ne, sizeof ne);
    if (c->kind == V_TRANSPOSE && !strcmp(t->name, c->key)) ne[0] = t->ne[1], ne[1] = t->ne[0];
    rc = kn_gguf_add_tensor(w, t->name, t->type, t->ndim, ne, data);
  }
  float extra[64] = {0};
  if (c->kind == V_EXTRA_F32 && !rc) rc = kn_gguf_add_tensor(w, c->key, 0 /* f32 */, 1, (uint64_t[]){(uint64_t)c->num}, extra);
  if (rc && !err[0]) snprintf(err, errlen, "%s", kn_gguf_writer_error(w));
  if (!rc) rc = kn_gguf_write_file(w, out, NULL, NULL, err, errlen);
  kn_gguf_writer_free(w);
  free(nan_data);
  kn_gguf_close(g);
  return rc;
}

static const change nan_weights = {V_NAN_WEIGHT, "output_norm.weight", 0, NULL};

int main(int argc, char **argv) {
  const char *td = getenv("KILN_TESTDATA");
  char src[4096], out[4096], err[1024] = "";
  snprintf(src, sizeof src, "%s/models/tiny-qwen2-Q4_K_M.gguf", td ? td : "../shared/testdata");
  if (access(src, R_OK)) return printf("skip: %s is missing (../shared/testdata)\n", src), 77;
  if (argc == 3 && !strcmp(argv[1], "nan-weights")) {
    if (rewrite(src, argv[2], &nan_weights, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    return 0;
  }
  snprintf(out, sizeof out, "%s/kiln-hostile-%d.gguf", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
  kn_device *dev = kn_device_open("CPU", err, sizeof err);
  if (!dev) return printf("FAIL: CPU device: %s\n", err), 1;
  const change bad[] = {
      {V_F32, "attention.layer_norm_rms_epsilon", NAN, "layer_norm_rms_epsilon"},
      {V_F32, "attention.layer_norm_rms_epsilon", -1e-6, "layer_norm_rms_epsilon"},
      {V_F32, "attention.layer_norm_rms_epsilon", 0, "layer_norm_rms_epsilon"},
      {V_F32, "rope.freq_base", NAN, "rope.freq_base"},
      {V_F32, "rope.freq_base", 0, "rope.freq_base"},
      {V_F32, "rope.freq_base", -10000, "rope.freq_base"},
      {V_F32, "rope.freq_base", INFINITY, "rope.freq_base"},
      {V_U32, "context_length", 0, "context_length is 0"},
      {V_U32, "context_length", 4294967295.0, "context_length is 4294967295"},
      {V_U64, "attention.head_count", 4294967304.0, "head_count is 4294967304"},
      {V_U64, "block_count", 1e19, "block_count is 10000000000000000000"},
      {V_SHORT_VOCAB, "", 0, "token_embd.weight has"},
      {V_DROP, "blk.3.ffn_down.weight", 0, "tensor blk.3.ffn_down.weight is missing"},
      {V_TRANSPOSE, "blk.0.ffn_up.weight", 0, "tensor blk.0.ffn_up.weight has shape [256, 768], expected [768, 256]"},
      {V_EXTRA_F32, "rope_freqs.weight", 8, "tensor rope_freqs.weight is f32 of 32 bytes, expected 16 float32 values"},
  };
  kn_load_opts lo = kn_load_defaults();
  lo.n_ctx = 64;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err[0] = 0;
    if (rewrite(src, out, &bad[i], err, sizeof err)) {
      CHECK(0, "writing the variant %s=%g: %s", bad[i].key, bad[i].num, err);
      continue;
    }
    kn_model *m = kn_model_load(out, dev, &lo, err, sizeof err);
    CHECK(!m && strstr(err, bad[i].expect), "%s = %g: %s (want an error with \"%s\")", bad[i].key, bad[i].num,
          m ? "loaded" : err, bad[i].expect);
    if (m) kn_model_free(m);
  }

  /* NaN weights: the model loads; the logits are NaN; sampling says so for every kind of sampler */
  err[0] = 0;
  kn_model *m = NULL;
  if (rewrite(src, out, &nan_weights, err, sizeof err) || !(m = kn_model_load(out, dev, &lo, err, sizeof err))) {
    CHECK(0, "the NaN-weight model: %s", err);
  } else {
    kn_session *s = kn_session_new(m, 0);
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof *logits);
    int32_t ids[] = {1, 2, 3, 4};
    int prc = s && logits ? kn_session_prompt(s, ids, 4, logits, NULL, err, sizeof err) : -1;
    CHECK(prc == 0, "prompt on the NaN model: %s", err);
    if (!prc) {
      CHECK(isnan(logits[0]), "the NaN model's logits are %g, not NaN", logits[0]);
      float temps[] = {0, 0.8f};
      for (int k = 0; k < 2; k++) {
        kn_sample_params p = kn_sample_defaults();
        p.temperature = temps[k];
        kn_sampler *smp = kn_sampler_new(&p, m->hp.n_vocab);
        float *copy = malloc((size_t)m->hp.n_vocab * sizeof *copy);
        memcpy(copy, logits, (size_t)m->hp.n_vocab * sizeof *copy);
        CHECK(kn_sample(smp, copy) == KN_SAMPLE_BAD_LOGITS, "sampling NaN logits at temperature %g", temps[k]);
        free(copy);
        kn_sampler_free(smp);
      }
    }
    free(logits);
    kn_session_free(s);
    kn_model_free(m);
  }
  unlink(out);
  kn_device_close(dev);
  return check_summary();
}
