/* Loading a llama-family GGUF: hyper-parameters from the metadata (named by the file's general.architecture),
 * weights as tensors over the mapped file in their storage formats (on the CPU they are used in place: resident
 * weight memory is the file's tensor bytes), the tokenizer, the chat template, and the KV cache. Before anything
 * is allocated, the memory plan is checked against the device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../device/env.h"
#include "gguf.h"
#include "model.h"

kn_load_opts kn_load_defaults(void) { return (kn_load_opts){.n_ctx = 0, .kv_dtype = KN_F16, .n_slots = 1}; }

static bool supported_arch(const char *a) { return !strcmp(a, "llama") || !strcmp(a, "qwen2") || !strcmp(a, "qwen3"); }

/* Hyper-parameters are checked where they are read: a value outside its range (a u64 head count of 2^32+8, a NaN
 * norm epsilon, a rope base of 0) is an error naming the key, never truncated or carried into logits that are NaN. */
typedef struct hp_reader {
  const kn_gguf *g;
  const char *arch;
  char *err;
  size_t errlen;
  int failed;
} hp_reader;

/* "<arch>.<suffix>" as an integer in [lo, hi]; def when absent. */
static int hp_int(hp_reader *r, const char *suffix, int64_t def, int64_t lo, int64_t hi) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", r->arch, suffix);
  const kn_gguf_value *v = kn_gguf_get(r->g, key);
  if (r->failed) return 0;
  if (!v) return (int)def;
  bool is_int = v->type == KN_GGUF_U8 || v->type == KN_GGUF_U16 || v->type == KN_GGUF_U32 || v->type == KN_GGUF_U64 ||
                v->type == KN_GGUF_I8 || v->type == KN_GGUF_I16 || v->type == KN_GGUF_I32 || v->type == KN_GGUF_I64;
  bool is_u = v->type == KN_GGUF_U8 || v->type == KN_GGUF_U16 || v->type == KN_GGUF_U32 || v->type == KN_GGUF_U64;
  if (!is_int) {
    r->failed = 1;
    snprintf(r->err, r->errlen, "%s is not an integer", key);
    return 0;
  }
  if (is_u ? v->u < (uint64_t)lo || v->u > (uint64_t)hi : v->i < lo || v->i > hi) {
    r->failed = 1;
    if (is_u) snprintf(r->err, r->errlen, "%s is %llu, outside %lld..%lld", key, (unsigned long long)v->u, (long long)lo, (long long)hi);
    else snprintf(r->err, r->errlen, "%s is %lld, outside %lld..%lld", key, (long long)v->i, (long long)lo, (long long)hi);
    return 0;
  }
  return is_u ? (int)v->u : (int)v->i;
}

/* "<arch>.<suffix>" as a finite number in (lo, hi]; def when absent. */
static float hp_float(hp_reader *r, const char *suffix, double def, double lo, double hi) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", r->arch, suffix);
  const kn_gguf_value *v = kn_gguf_get(r->g, key);
  if (r->failed) return 0;
  if (!v) return (float)def;
  double d = kn_gguf_value_float(v, NAN);
  if (!(d > lo && d <= hi)) { /* NaN fails here too */
    r->failed = 1;
    snprintf(r->err, r->errlen, "%s is %g; it must be a number above %g and at most %g", key, d, lo, hi);
    return 0;
  }
  return (float)d;
}

static int read_hparams(const kn_gguf *g, kn_hparams *hp, char *err, size_t errlen) {
  const char *arch = kn_gguf_get_str(g, "general.architecture", NULL);
  if (!arch) return snprintf(err, errlen, "general.architecture is missing"), -1;
  if (!supported_arch(arch))
    return snprintf(err, errlen, "architecture '%s' is not supported (kiln runs llama, qwen2, qwen3)", arch), -1;
  memset(hp, 0, sizeof *hp);
  snprintf(hp->arch, sizeof hp->arch, "%s", arch);
  hp_reader r = {g, arch, err, errlen, 0};
  const int64_t big = 1 << 20;
  hp->n_embd = hp_int(&r, "embedding_length", 0, 1, big);
  hp->n_layer = hp_int(&r, "block_count", 0, 1, 1024);
  hp->n_head = hp_int(&r, "attention.head_count", 0, 1, 4096);
  hp->n_head_kv = hp_int(&r, "attention.head_count_kv", hp->n_head, 1, 4096);
  hp->n_ff = hp_int(&r, "feed_forward_length", 0, 1, big);
  hp->n_ctx_train = hp_int(&r, "context_length", 2048, 1, 1 << 24);
  hp->head_dim = hp_int(&r, "attention.key_length", hp->n_head ? hp->n_embd / hp->n_head : 0, 2, 65536);
  /* rms(x) + eps under a square root: 0, negative or NaN makes NaN logits; a rope base <= 0 or NaN too */
  hp->eps = hp_float(&r, "attention.layer_norm_rms_epsilon", 1e-5, 0, 1);
  hp->rope_theta = hp_float(&r, "rope.freq_base", 10000.0, 1e-3, 1e30);
  if (r.failed) return -1;
  hp->rope_neox = strcmp(arch, "llama") != 0;
  hp->qk_norm = !strcmp(arch, "qwen3");
  const kn_gguf_tensor *emb = kn_gguf_tensor_find(g, "token_embd.weight");
  hp->n_vocab = emb && emb->ndim == 2 && emb->ne[1] <= (1u << 24) ? (int)emb->ne[1] : 0;
  const char *bad = hp->n_embd <= 0 ? "embedding_length" : hp->n_layer <= 0 ? "block_count" :
                    hp->n_head <= 0 ? "attention.head_count" : hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv ? "attention.head_count_kv" :
                    hp->n_ff <= 0 ? "feed_forward_length" : hp->head_dim <= 0 || hp->head_dim % 2 ? "attention.key_length" :
                    hp->n_vocab <= 0 ? "token_embd.weight" : NULL;
  if (bad) return snprintf(err, errlen, "%s.%s is missing or invalid", arch, bad), -1;
  return 0;
}

/* A weight as a tensor over the file: shape is GGUF's ne reversed (ne[0] is the contiguous axis). */
static kn_t weight(kn_model *m, const char *name, int ndim, const int64_t *want, bool optional, char *err, size_t errlen) {
  const kn_gguf_tensor *t = kn_gguf_tensor_find(m->file, name);
  if (!t) {
    if (!optional) snprintf(err, errlen, "tensor %s is missing", name);
    return NULL;
  }
  int64_t shape[4];
  for (int i = 0; i < t->ndim; i++) shape[i] = (int64_t)t->ne[t->ndim - 1 - i];
  bool ok = t->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++) ok = shape[i] == want[i];
  if (!ok) {
    char got[96] = "", exp[96] = "";
    for (int i = 0, o = 0; i < t->ndim; i++) o += snprintf(got + o, sizeof got - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    for (int i = 0, o = 0; i < ndim; i++) o += snprintf(exp + o, sizeof exp - o, "%s%lld", i ? ", " : "", (long long)want[i]);
    snprintf(err, errlen, "tensor %s has shape [%s], expected [%s]", name, got, exp);
    return NULL;
  }
  int dt = kn_dtype_from_ggml(t->type);
  if (dt < 0) {
    snprintf(err, errlen, "tensor %s has GGML type %d, which kiln cannot read", name, t->type);
    return NULL;
  }
  kn_buf *b = kn_buf_wrap_host(m->dev, (void *)t->data, t->nbytes);
  if (!b) { /* devices without host access get a copy of each tensor, never the whole file */
    char e2[256];
    if (!(b = kn_buf_alloc(m->dev, t->nbytes, e2, sizeof e2)) || kn_buf_copyin(b, 0, t->data, t->nbytes)) {
      snprintf(err, errlen, "tensor %s: %s", name, b ? "copy to the device failed" : e2);
      return NULL;
    }
  }
  m->weight_bytes += t->nbytes;
  kn_t w = kn_from_buf(b, dt, ndim, shape); /* the tensor owns b from here */
  if (!w) kn_buf_free(b), snprintf(err, errlen, "tensor %s: %s", name, kn_ctx_error(m->wctx));
  return w;
}

static int load_weights(kn_model *m, char *err, size_t errlen) {
  const kn_hparams *hp = &m->hp;
  int64_t E = hp->n_embd, V = hp->n_vocab, Q = (int64_t)hp->n_head * hp->head_dim,
          K = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, D = hp->head_dim;
  err[0] = 0;
  if (!(m->tok_embd = weight(m, "token_embd.weight", 2, (int64_t[]){V, E}, false, err, errlen))) return -1;
  if (!(m->output_norm = weight(m, "output_norm.weight", 1, &E, false, err, errlen))) return -1;
  m->output = weight(m, "output.weight", 2, (int64_t[]){V, E}, true, err, errlen); /* absent: tied embeddings */
  if (err[0]) return -1;
  if (!(m->layers = calloc(hp->n_layer, sizeof *m->layers))) return snprintf(err, errlen, "out of memory"), -1;
  for (int l = 0; l < hp->n_layer; l++) {
    kn_layer *L = &m->layers[l];
    char n[96];
#define W(field, suffix, nd, ...)                                                          \
  do {                                                                                     \
    snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                                         \
    if (!(L->field = weight(m, n, nd, (int64_t[]){__VA_ARGS__}, false, err, errlen))) return -1; \
  } while (0)
#define OPT(field, suffix, nd, ...)                                                        \
  do {                                                                                     \
    snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                                         \
    L->field = weight(m, n, nd, (int64_t[]){__VA_ARGS__}, true, err, errlen);              \
    if (err[0]) return -1;                                                                 \
  } while (0)
    W(attn_norm, "attn_norm.weight", 1, E);
    W(wq, "attn_q.weight", 2, Q, E);
    W(wk, "attn_k.weight", 2, K, E);
    W(wv, "attn_v.weight", 2, K, E);
    W(wo, "attn_output.weight", 2, E, Q);
    OPT(bq, "attn_q.bias", 1, Q);
    OPT(bk, "attn_k.bias", 1, K);
    OPT(bv, "attn_v.bias", 1, K);
    if (hp->qk_norm) {
      W(q_norm, "attn_q_norm.weight", 1, D);
      W(k_norm, "attn_k_norm.weight", 1, D);
    }
    W(ffn_norm, "ffn_norm.weight", 1, E);
    W(w_gate, "ffn_gate.weight", 2, F, E);
    W(w_up, "ffn_up.weight", 2, F, E);
    W(w_down, "ffn_down.weight", 2, E, F);
#undef W
#undef OPT
  }
  /* llama 3 rope scaling ships as per-frequency divisors */
  const kn_gguf_tensor *rf = kn_gguf_tensor_find(m->file, "rope_freqs.weight");
  if (rf && rf->type == 0 && rf->ne[0] == (uint64_t)(D / 2)) {
    m->freq_factors = malloc(D / 2 * sizeof(float));
    if (m->freq_factors) memcpy(m->freq_factors, rf->data, D / 2 * sizeof(float));
  }
  return 0;
}

/* Scratch: the largest activations of a prompt chunk (512 tokens): logits, attention scores over the context,
 * feed-forward intermediates, times a margin for intermediates alive at once. */
static int64_t scratch_bytes(const kn_hparams *hp, int n_ctx) {
  int64_t T = n_ctx < 512 ? n_ctx : 512;
  int64_t scores = T * hp->n_head * (int64_t)n_ctx * 4 * 3, ffn = T * hp->n_ff * 4 * 3, logits = (int64_t)hp->n_vocab * 4 * 2;
  int64_t emb = T * hp->n_embd * 4 * 8;
  return scores + ffn + logits + emb + (64 << 20);
}

int kn_model_mem_plan(const char *path, kn_device *dev, const kn_load_opts *o, kn_mem_plan *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  kn_gguf *g = kn_gguf_open(path, err, errlen);
  if (!g) return -1;
  kn_hparams hp;
  int rc = read_hparams(g, &hp, err, errlen);
  if (!rc) {
    for (size_t i = 0; i < kn_gguf_tensor_count(g); i++) p->weights += kn_gguf_tensor_at(g, i)->nbytes;
    uint64_t total = 0, avail = 0;
    kn_device_mem(dev, &total, &avail);
    p->device_total = (int64_t)total, p->device_avail = (int64_t)avail;
    int n_ctx = o->n_ctx > 0 ? o->n_ctx : hp.n_ctx_train;
    int slots = o->n_slots > 0 ? o->n_slots : 1;
    int64_t per_pos = (int64_t)slots * 2 * hp.n_layer * hp.n_head_kv * hp.head_dim * kn_dtype_get(o->kv_dtype)->itemsize;
    if (o->n_ctx <= 0 && avail) /* the trained context, capped by what memory holds */
      while (n_ctx > 256 && p->weights + per_pos * n_ctx + scratch_bytes(&hp, n_ctx) > (int64_t)avail) n_ctx /= 2;
    p->n_ctx = n_ctx;
    p->kv_cache = per_pos * n_ctx;
    p->scratch = scratch_bytes(&hp, n_ctx);
    p->total = p->weights + p->kv_cache + p->scratch;
    p->fits = !avail || p->total <= (int64_t)avail;
  }
  kn_gguf_close(g);
  return rc;
}

void kn_mem_plan_print(const kn_mem_plan *p, FILE *f) {
  const double M = 1 << 20;
  fprintf(f, "memory plan (context %d tokens):\n", p->n_ctx);
  fprintf(f, "  weights   %10.1f MiB\n  KV cache  %10.1f MiB\n  scratch   %10.1f MiB\n  total     %10.1f MiB\n",
          p->weights / M, p->kv_cache / M, p->scratch / M, p->total / M);
  fprintf(f, "  device    %10.1f MiB available of %.1f MiB -> %s\n", p->device_avail / M, p->device_total / M,
          p->fits ? "fits" : "DOES NOT FIT");
}

void kn_model_free(kn_model *m) {
  if (!m) return;
  kn_model_free_steps(m);
  kn_ctx_free(m->wctx);
  for (int s = 0; m->slots && s < m->n_slots; s++) free(m->slots[s].k), free(m->slots[s].v);
  free(m->slots);
  free(m->layers);
  free(m->freq_factors);
  free(m->chat_template);
  kn_tokenizer_free(m->tok);
  kn_gguf_close(m->file);
  free(m);
}

kn_model *kn_model_load(const char *path, kn_device *dev, const kn_load_opts *o, char *err, size_t errlen) {
  kn_mem_plan plan;
  if (kn_model_mem_plan(path, dev, o, &plan, err, errlen)) return NULL;
  if (!plan.fits) {
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    if (mf) kn_mem_plan_print(&plan, mf), fclose(mf);
    snprintf(err, errlen, "%s does not fit this device (try a smaller -c):\n%s", path, buf ? buf : "");
    free(buf);
    return NULL;
  }
  kn_model *m = calloc(1, sizeof *m);
  if (!m) return snprintf(err, errlen, "out of memory"), NULL;
  m->dev = dev;
  m->attn_primitive = kn_getenv_int("KILN_ATTENTION", 1) == 0;
  char e2[512];
  if (!(m->file = kn_gguf_open(path, err, errlen)) || read_hparams(m->file, &m->hp, err, errlen) ||
      !(m->wctx = kn_ctx_new(dev)))
    goto fail;
  const char *name = kn_gguf_get_str(m->file, "general.name", NULL), *slash = strrchr(path, '/');
  snprintf(m->name, sizeof m->name, "%s", name ? name : slash ? slash + 1 : path);
  const char *tmpl = kn_gguf_get_str(m->file, "tokenizer.chat_template", NULL);
  if (tmpl && !(m->chat_template = strdup(tmpl))) goto oom;
  if (!(m->tok = kn_tokenizer_load(m->file, e2, sizeof e2))) {
    snprintf(err, errlen, "%s: tokenizer: %s", path, e2);
    goto fail;
  }
  if (kn_tokenizer_n_tokens(m->tok) != m->hp.n_vocab) { /* a token id past the embedding rows would read outside it */
    snprintf(err, errlen, "%s: the vocabulary has %d tokens but token_embd.weight has %d rows", path,
             (int)kn_tokenizer_n_tokens(m->tok), m->hp.n_vocab);
    goto fail;
  }
  kn_ctx *prev = kn_ctx_set(m->wctx);
  int rc = load_weights(m, e2, sizeof e2);
  kn_ctx_set(prev);
  if (rc) {
    snprintf(err, errlen, "%s: %s", path, e2);
    goto fail;
  }
  if (kn_model_init_cache(m, plan.n_ctx, o->n_slots > 0 ? o->n_slots : 1, o->kv_dtype, e2, sizeof e2)) {
    snprintf(err, errlen, "%s: %s", path, e2);
    goto fail;
  }
  if (kn_debug() >= 1)
    fprintf(stderr, "loaded %s (%s, %d layers, %d vocab): weights %.1f MiB, KV cache %.1f MiB (%d tokens, %s)\n", m->name,
            m->hp.arch, m->hp.n_layer, m->hp.n_vocab, m->weight_bytes / 1048576.0, m->kv_bytes / 1048576.0, m->n_ctx,
            kn_dtype_name(m->kv_dtype));
  return m;
oom:
  snprintf(err, errlen, "out of memory");
fail:
  kn_model_free(m);
  return NULL;
}
