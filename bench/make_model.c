/* make_model: write a random-weight llama-family GGUF of any size, with the tokenizer and chat template of an
 * existing file, so speed and memory can be measured at real model shapes (e.g. Qwen2.5-0.5B or 7B) without
 * downloading one. Weights are F16 (normal noise scaled by 1/sqrt(fan-in), norms 1 + small noise); convert them
 * with `kiln quantize` to measure quantized formats.
 *
 *   make_model OUT.gguf LIKE.gguf [--layers N] [--embd N] [--heads N] [--kv N] [--ffn N] [--vocab N]
 *   (defaults: Qwen2.5-0.5B: 24 layers, 896, 14 heads, 2 kv heads, ffn 4864, the LIKE file's vocabulary) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/gguf.h"
#include "models/quantize.h"

typedef struct {
  int layers, embd, heads, kv, ffn, vocab;
  uint64_t seed;
} shape;

static uint64_t next(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

static float gauss(uint64_t *s) {
  double u = ((next(s) >> 11) + 0.5) / 9007199254740992.0, v = ((next(s) >> 11) + 0.5) / 9007199254740992.0;
  return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

typedef struct {
  shape sh;
} gen;

/* Fill a tensor: norms near 1, biases small, matrices N(0, 1/fan_in). */
static int fill(void *user, size_t index, const char *name, void *dst, uint64_t nbytes, char *err, size_t errlen) {
  gen *g = user;
  uint64_t s = g->sh.seed * 0x9e3779b97f4a7c15ull + index * 7919 + 1;
  bool norm = strstr(name, "norm") != NULL, bias = strstr(name, "bias") != NULL;
  if (norm || bias) { /* 1-D tensors are float32 */
    float *f = dst;
    for (uint64_t i = 0; i < nbytes / 4; i++) f[i] = (norm ? 1.0f : 0.0f) + 0.1f * gauss(&s);
    return 0;
  }
  uint16_t *h = dst;
  uint64_t n = nbytes / 2;
  int fan_in = strstr(name, "ffn_down") ? g->sh.ffn : g->sh.embd;
  float scale = (float)(1.0 / sqrt((double)fan_in));
  for (uint64_t i = 0; i < n; i++) h[i] = kn_f32_to_f16(scale * gauss(&s));
  (void)err, (void)errlen;
  return 0;
}

static int add(kn_gguf_writer *w, const char *name, int ndim, uint64_t a, uint64_t b, bool f32) {
  uint64_t ne[2] = {a, b};
  return kn_gguf_add_tensor(w, name, f32 ? 0 : 1, ndim, ne, NULL);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: make_model OUT.gguf LIKE.gguf [--layers N] [--embd N] [--heads N] [--kv N] [--ffn N] [--vocab N]\n");
    return 2;
  }
  shape sh = {24, 896, 14, 2, 4864, 0, 42};
  for (int i = 3; i + 1 < argc; i += 2) {
    int v = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--layers")) sh.layers = v;
    else if (!strcmp(argv[i], "--embd")) sh.embd = v;
    else if (!strcmp(argv[i], "--heads")) sh.heads = v;
    else if (!strcmp(argv[i], "--kv")) sh.kv = v;
    else if (!strcmp(argv[i], "--ffn")) sh.ffn = v;
    else if (!strcmp(argv[i], "--vocab")) sh.vocab = v;
    else return fprintf(stderr, "make_model: unknown option %s\n", argv[i]), 2;
  }
  char err[512];
  kn_gguf *like = kn_gguf_open(argv[2], err, sizeof err);
  if (!like) return fprintf(stderr, "make_model: %s\n", err), 1;
  const kn_gguf_value *toks = kn_gguf_get(like, "tokenizer.ggml.tokens");
  if (!sh.vocab) sh.vocab = toks ? (int)kn_gguf_arr_len(toks) : 32000;
  kn_gguf_writer *w = kn_gguf_writer_new(32);
  int rc = 0;
  for (size_t i = 0; !rc && i < kn_gguf_kv_count(like); i++) { /* tokenizer and template */
    const kn_gguf_kv *kv = kn_gguf_kv_at(like, i);
    if (!strncmp(kv->key, "tokenizer.", 10)) rc = kn_gguf_set_value(w, kv->key, &kv->value);
  }
  int hd = sh.embd / sh.heads;
  rc |= kn_gguf_set_str(w, "general.architecture", "qwen2") | kn_gguf_set_str(w, "general.name", "random-qwen2");
  rc |= kn_gguf_set_u32(w, "qwen2.block_count", sh.layers) | kn_gguf_set_u32(w, "qwen2.context_length", 32768);
  rc |= kn_gguf_set_u32(w, "qwen2.embedding_length", sh.embd) | kn_gguf_set_u32(w, "qwen2.feed_forward_length", sh.ffn);
  rc |= kn_gguf_set_u32(w, "qwen2.attention.head_count", sh.heads) | kn_gguf_set_u32(w, "qwen2.attention.head_count_kv", sh.kv);
  rc |= kn_gguf_set_f32(w, "qwen2.rope.freq_base", 1e6f) | kn_gguf_set_f32(w, "qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
  rc |= add(w, "token_embd.weight", 2, sh.embd, sh.vocab, false);
  rc |= add(w, "output_norm.weight", 1, sh.embd, 1, true);
  char n[96];
  for (int l = 0; l < sh.layers && !rc; l++) {
#define T(suffix, nd, a, b, f32) rc |= (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), add(w, n, nd, a, b, f32))
    T("attn_norm.weight", 1, sh.embd, 1, true);
    T("ffn_norm.weight", 1, sh.embd, 1, true);
    T("attn_q.weight", 2, sh.embd, sh.heads * hd, false);
    T("attn_q.bias", 1, sh.heads * hd, 1, true);
    T("attn_k.weight", 2, sh.embd, sh.kv * hd, false);
    T("attn_k.bias", 1, sh.kv * hd, 1, true);
    T("attn_v.weight", 2, sh.embd, sh.kv * hd, false);
    T("attn_v.bias", 1, sh.kv * hd, 1, true);
    T("attn_output.weight", 2, sh.heads * hd, sh.embd, false);
    T("ffn_gate.weight", 2, sh.embd, sh.ffn, false);
    T("ffn_up.weight", 2, sh.embd, sh.ffn, false);
    T("ffn_down.weight", 2, sh.ffn, sh.embd, false);
#undef T
  }
  gen g = {sh};
  if (rc) fprintf(stderr, "make_model: %s\n", kn_gguf_writer_error(w));
  else if (kn_gguf_write_file(w, argv[1], fill, &g, err, sizeof err)) fprintf(stderr, "make_model: %s\n", err), rc = 1;
  else
    printf("wrote %s: qwen2, %d layers, embd %d, %d/%d heads, ffn %d, vocab %d (F16)\n", argv[1], sh.layers, sh.embd,
           sh.heads, sh.kv, sh.ffn, sh.vocab);
  kn_gguf_writer_free(w);
  kn_gguf_close(like);
  return rc ? 1 : 0;
}
