/* make_model: write a random-weight llama-family GGUF of any size, with the tokenizer and chat template of an
 * existing file, so speed and memory can be measured at real model shapes (Qwen2.5-0.5B, 7B, 14B) without
 * downloading one. Weights are normal noise scaled by 1/sqrt(fan-in), norms 1 + small noise. They are written
 * directly in the format asked for, so a 14B-shaped Q4_K_M file (9 GB) needs no 28 GB float16 detour: each matrix
 * quantizes a pool of random rows once and its rows are drawn from that pool (values repeat, bytes in memory and
 * on disk do not: the machine reads every row as it would a real model's).
 *
 *   make_model OUT.gguf LIKE.gguf [--shape 0.5b|1.5b|7b|14b] [--type T] [--layers N] [--embd N] [--heads N]
 *              [--kv N] [--ffn N] [--vocab N] [--tied 0|1]
 *   (defaults: Qwen2.5-0.5B: 24 layers, 896, 14 heads, 2 kv heads, ffn 4864, tied output, the LIKE file's
 *   vocabulary; type f16. T: f32, f16, q8_0, q4_0, q5_0, q4_k, q6_k, ..., or q4_k_m: the mix of real Q4_K_M files,
 *   Q4_K with the output (a tied embedding table included) and every other attn_v/ffn_down in Q6_K, Q5_0/Q8_0 where
 *   rows are not whole 256-element super-blocks, as in the real 0.5B file) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/gguf.h"
#include "device/base/formats.h"

typedef struct {
  int layers, embd, heads, kv, ffn, vocab, tied;
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

#define POOL_ROWS 64 /* distinct rows per matrix */

typedef struct {
  shape sh;
  kn_dtype *types; /* per tensor, in the order they were added */
} gen;

/* A matrix of `rows` rows of ne0 values in format t: POOL_ROWS rows of N(0, scale^2) quantized once, then each row
 * of the matrix a copy of a pool row picked by a hash of its index. */
static int fill_matrix(uint64_t s, kn_dtype t, int64_t ne0, int64_t rows, float scale, uint8_t *dst, char *err,
                       size_t errlen) {
  int64_t row_bytes = kn_dtype_nbytes(t, ne0), np = rows < POOL_ROWS ? rows : POOL_ROWS;
  float *f = malloc((size_t)ne0 * sizeof *f);
  uint8_t *pool = malloc((size_t)(np * row_bytes));
  int rc = f && pool ? 0 : (snprintf(err, errlen, "out of memory"), -1);
  for (int64_t r = 0; !rc && r < np; r++) {
    for (int64_t i = 0; i < ne0; i++) f[i] = scale * gauss(&s);
    rc = kn_quantize(t, f, ne0, pool + r * row_bytes, err, errlen);
  }
  for (int64_t r = 0; !rc && r < rows; r++) {
    uint64_t h = (uint64_t)r * 0x9e3779b97f4a7c15ull + s;
    h ^= h >> 29;
    memcpy(dst + r * row_bytes, pool + (int64_t)(h % (uint64_t)np) * row_bytes, (size_t)row_bytes);
  }
  free(f), free(pool);
  return rc;
}

/* Fill a tensor: norms near 1, biases small (float32), matrices N(0, 1/fan_in) in their format. */
static int fill(void *user, size_t index, const char *name, void *dst, uint64_t nbytes, char *err, size_t errlen) {
  gen *g = user;
  uint64_t s = g->sh.seed * 0x9e3779b97f4a7c15ull + index * 7919 + 1;
  bool norm = strstr(name, "norm") != NULL, bias = strstr(name, "bias") != NULL;
  if (norm || bias) {
    float *f = dst;
    for (uint64_t i = 0; i < nbytes / 4; i++) f[i] = (norm ? 1.0f : 0.0f) + 0.1f * gauss(&s);
    return 0;
  }
  int64_t ne0 = strstr(name, "ffn_down") ? g->sh.ffn : g->sh.embd;
  if (strstr(name, "attn_output")) ne0 = (int64_t)g->sh.heads * (g->sh.embd / g->sh.heads);
  int64_t rows = (int64_t)(nbytes / (uint64_t)kn_dtype_nbytes(g->types[index], ne0));
  return fill_matrix(s, g->types[index], ne0, rows, (float)(1.0 / sqrt((double)ne0)), dst, err, errlen);
}

/* The format of one matrix (row length ne0) of layer l (-1: not in a layer) under the asked type; q4_k_m mixes.
 * A tied embedding table is the output matrix too, and gets the output's format. */
static kn_dtype choose(kn_dtype base, bool mix_m, bool tied, const char *name, int64_t ne0, int l, int n_layer) {
  kn_dtype d = base;
  if (mix_m) {
    bool more = l >= 0 && (l < n_layer / 8 || l >= 7 * n_layer / 8 || (l - n_layer / 8) % 3 == 2);
    bool output = !strcmp(name, "output.weight") || (tied && !strcmp(name, "token_embd.weight"));
    if (output || (more && (strstr(name, "attn_v.") || strstr(name, "ffn_down.")))) d = KN_Q6_K;
  }
  if (ne0 % kn_dtype_get(d)->block_elems) { /* rows that are not whole super-blocks: the 32-element formats */
    kn_dtype fb = d == KN_Q6_K || d == KN_Q5_K ? KN_Q8_0 : d == KN_Q4_K || d == KN_Q3_K || d == KN_Q2_K ? KN_Q5_0 : KN_F16;
    d = ne0 % kn_dtype_get(fb)->block_elems ? KN_F16 : fb;
  }
  return d;
}

typedef struct {
  kn_gguf_writer *w;
  kn_dtype base;
  bool mix_m, tied;
  int n_layer;
  kn_dtype *types;
  size_t n;
  uint64_t bytes;
} adder;

/* A tensor of GGUF shape [a] (1-D, float32) or [a, b] (a matrix with rows of a elements, format chosen). */
static int add(adder *ad, const char *name, int ndim, uint64_t a, uint64_t b, int layer) {
  uint64_t ne[2] = {a, b};
  kn_dtype t = ndim == 1 ? KN_F32 : choose(ad->base, ad->mix_m, ad->tied, name, (int64_t)a, layer, ad->n_layer);
  ad->types[ad->n++] = t;
  ad->bytes += (uint64_t)kn_dtype_nbytes(t, (int64_t)(a * b));
  return kn_gguf_add_tensor(ad->w, name, kn_dtype_get(t)->ggml_type, ndim, ne, NULL);
}

static const struct {
  const char *name;
  shape sh;
} shapes[] = {
  {"0.5b", {24, 896, 14, 2, 4864, 0, 1, 42}},
  {"1.5b", {28, 1536, 12, 2, 8960, 0, 1, 42}},
  {"7b", {28, 3584, 28, 4, 18944, 0, 0, 42}},
  {"14b", {48, 5120, 40, 8, 13824, 0, 0, 42}},
};

static int usage(void) {
  fprintf(stderr, "usage: make_model OUT.gguf LIKE.gguf [--shape 0.5b|1.5b|7b|14b] [--type f16|q4_k_m|q8_0|q4_0|...]\n"
                  "                  [--layers N] [--embd N] [--heads N] [--kv N] [--ffn N] [--vocab N] [--tied 0|1]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  shape sh = shapes[0].sh;
  kn_dtype base = KN_F16;
  bool mix_m = false;
  for (int i = 3; i < argc; i += 2) {
    if (i + 1 >= argc) return fprintf(stderr, "make_model: %s needs a value\n", argv[i]), usage();
    const char *a = argv[i], *s = argv[i + 1];
    int v = atoi(s);
    if (!strcmp(a, "--shape")) {
      size_t k = 0;
      while (k < sizeof shapes / sizeof *shapes && strcmp(shapes[k].name, s)) k++;
      if (k == sizeof shapes / sizeof *shapes) return fprintf(stderr, "make_model: unknown shape %s\n", s), usage();
      sh = shapes[k].sh;
    } else if (!strcmp(a, "--type")) {
      mix_m = !strcmp(s, "q4_k_m");
      int k = 0;
      while (k < KN_DTYPE_COUNT && strcmp(kn_dtype_get(k)->short_name, mix_m ? "q4_k" : s)) k++;
      if (k == KN_DTYPE_COUNT || !kn_quantize_supported(k)) return fprintf(stderr, "make_model: cannot write type %s\n", s), usage();
      base = k;
    } else if (!strcmp(a, "--layers")) sh.layers = v;
    else if (!strcmp(a, "--embd")) sh.embd = v;
    else if (!strcmp(a, "--heads")) sh.heads = v;
    else if (!strcmp(a, "--kv")) sh.kv = v;
    else if (!strcmp(a, "--ffn")) sh.ffn = v;
    else if (!strcmp(a, "--vocab")) sh.vocab = v;
    else if (!strcmp(a, "--tied")) sh.tied = v;
    else return fprintf(stderr, "make_model: unknown option %s\n", a), usage();
  }
  if (sh.layers < 1 || sh.embd < 1 || sh.heads < 1 || sh.kv < 1 || sh.ffn < 1 || sh.vocab < 0 || sh.embd % sh.heads ||
      sh.heads % sh.kv)
    return fprintf(stderr, "make_model: bad shape (embd must divide into heads, heads into kv heads)\n"), 2;
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
  adder ad = {w, base, mix_m, sh.tied, sh.layers, calloc(3 + 12 * (size_t)sh.layers, sizeof(kn_dtype)), 0, 0};
  if (!ad.types) return fprintf(stderr, "make_model: out of memory\n"), 1;
  rc |= add(&ad, "token_embd.weight", 2, sh.embd, sh.vocab, -1);
  rc |= add(&ad, "output_norm.weight", 1, sh.embd, 1, -1);
  if (!sh.tied) rc |= add(&ad, "output.weight", 2, sh.embd, sh.vocab, -1);
  char n[96];
  for (int l = 0; l < sh.layers && !rc; l++) {
#define T(suffix, nd, a, b) rc |= (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), add(&ad, n, nd, a, b, l))
    T("attn_norm.weight", 1, sh.embd, 1);
    T("ffn_norm.weight", 1, sh.embd, 1);
    T("attn_q.weight", 2, sh.embd, sh.heads * hd);
    T("attn_q.bias", 1, sh.heads * hd, 1);
    T("attn_k.weight", 2, sh.embd, sh.kv * hd);
    T("attn_k.bias", 1, sh.kv * hd, 1);
    T("attn_v.weight", 2, sh.embd, sh.kv * hd);
    T("attn_v.bias", 1, sh.kv * hd, 1);
    T("attn_output.weight", 2, sh.heads * hd, sh.embd);
    T("ffn_gate.weight", 2, sh.embd, sh.ffn);
    T("ffn_up.weight", 2, sh.embd, sh.ffn);
    T("ffn_down.weight", 2, sh.ffn, sh.embd);
#undef T
  }
  gen g = {sh, ad.types};
  if (rc) fprintf(stderr, "make_model: %s\n", kn_gguf_writer_error(w));
  else if (kn_gguf_write_file(w, argv[1], fill, &g, err, sizeof err)) fprintf(stderr, "make_model: %s\n", err), rc = 1;
  else
    printf("wrote %s: qwen2, %d layers, embd %d, %d/%d heads, ffn %d, vocab %d, %s output, %s%s, %.1f MiB of tensors\n",
           argv[1], sh.layers, sh.embd, sh.heads, sh.kv, sh.ffn, sh.vocab, sh.tied ? "tied" : "separate",
           kn_dtype_name(base), mix_m ? " (_M mix)" : "", ad.bytes / 1048576.0);
  free(ad.types);
  kn_gguf_writer_free(w);
  kn_gguf_close(like);
  return rc ? 1 : 0;
}
