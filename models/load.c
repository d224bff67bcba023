/* Loading a GGUF model: the hyper-parameters every architecture shares (named by the file's general.architecture),
 * the tokenizer, the chat template, the architecture's own load (its weights, as tensors over the mapped file), and
 * the KV cache. Before anything is allocated, the memory plan is checked against the device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../device/base/env.h"
#include "gguf.h"
#include "arch.h"

kn_load_opts kn_load_defaults(void) { return (kn_load_opts){.n_ctx = 0, .kv_dtype = KN_F16, .n_slots = 1}; }

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
  if (!kn_arch_find(arch)) {
    char names[256];
    kn_arch_names(names, sizeof names);
    return snprintf(err, errlen, "architecture '%s' is not supported (kiln runs %s)", arch, names), -1;
  }
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
  const kn_gguf_tensor *emb = kn_gguf_tensor_find(g, "token_embd.weight");
  hp->n_vocab = emb && emb->ndim == 2 && emb->ne[1] <= (1u << 24) ? (int)emb->ne[1] : 0;
  const char *bad = hp->n_embd <= 0 ? "embedding_length" : hp->n_layer <= 0 ? "block_count" :
                    hp->n_head <= 0 ? "attention.head_count" : hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv ? "attention.head_count_kv" :
                    hp->n_ff <= 0 ? "feed_forward_length" : hp->head_dim <= 0 || hp->head_dim % 2 ? "attention.key_length" :
                    hp->n_vocab <= 0 ? "token_embd.weight" : NULL;
  if (bad) return snprintf(err, errlen, "%s.%s is missing or invalid", arch, bad), -1;
  return 0;
}

/* Scratch: the intermediates of the largest forward pass (KN_MAX_PASS tokens; every pass shares them): per token,
 * gate and up of the feed-forward and about four rows of the embedding width alive at once, then one row of logits.
 * Attention from primitives (KILN_ATTENTION=0) adds the scores over the context, twice (scores and softmax). */
static int64_t scratch_bytes(const kn_hparams *hp, int n_ctx, int slots, bool primitive) {
  int64_t T = n_ctx < KN_MAX_PASS ? n_ctx : KN_MAX_PASS;
  int64_t bytes = T * (2 * (int64_t)hp->n_ff + 4 * (int64_t)hp->n_embd) * 4 + (int64_t)hp->n_vocab * 4;
  if (primitive) bytes += T * hp->n_head * ((int64_t)n_ctx * slots + KN_PAD_ROWS) * 4 * 2;
  return bytes;
}

/* Runtime: the libraries, the tokenizer, the loaded kernels and the graphs of the captured passes (these grow with
 * the layers), measured on the CPU device. It is host memory: a GPU's plan leaves it out. */
static int64_t runtime_bytes(const kn_hparams *hp, kn_device *dev) {
  if (!kn_device_host_memory(dev)) return 0;
  return ((int64_t)120 << 20) + (int64_t)hp->n_layer * (3 << 18);
}

/* Weights that become resident. The CPU uses the mapped file in place, where the embedding table is read a row
 * per token (pages of it, at most one per context position) unless it is also the output matrix; other devices
 * hold every byte. */
static int64_t resident_weights(kn_gguf *g, kn_device *dev, int64_t weights, int64_t positions) {
  const kn_gguf_tensor *emb = kn_gguf_tensor_find(g, "token_embd.weight");
  if (!emb || !kn_gguf_tensor_find(g, "output.weight") || !kn_device_host_memory(dev) || emb->ndim < 2)
    return weights;
  int64_t rows = (int64_t)(emb->nelems / emb->ne[0]), row = (int64_t)emb->nbytes / (rows ? rows : 1);
  int64_t touched = (positions < rows ? positions : rows) * (row > 4096 ? row : 4096);
  return weights - (int64_t)emb->nbytes + (touched < (int64_t)emb->nbytes ? touched : (int64_t)emb->nbytes);
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
    bool prim = kn_getenv_int("KILN_ATTENTION", 1) == 0;
    int64_t row = 2 * (int64_t)hp.n_layer * hp.n_head_kv * hp.head_dim * kn_dtype_get(o->kv_dtype)->itemsize;
    int64_t per_pos = (int64_t)slots * row;
    int64_t fixed = runtime_bytes(&hp, dev);
    if (o->n_ctx <= 0 && avail) /* the trained context, capped by what memory holds */
      while (n_ctx > 256 && resident_weights(g, dev, p->weights, (int64_t)n_ctx * slots) + per_pos * n_ctx +
                                row * KN_PAD_ROWS + scratch_bytes(&hp, n_ctx, slots, prim) + fixed > (int64_t)avail)
        n_ctx /= 2;
    p->n_ctx = n_ctx;
    p->resident = resident_weights(g, dev, p->weights, (int64_t)n_ctx * slots);
    p->kv_cache = per_pos * n_ctx + row * KN_PAD_ROWS;
    p->scratch = scratch_bytes(&hp, n_ctx, slots, prim);
    p->runtime = fixed;
    p->total = p->resident + p->kv_cache + p->scratch + p->runtime;
    p->fits = !avail || p->total <= (int64_t)avail;
  }
  kn_gguf_close(g);
  return rc;
}

void kn_mem_plan_print(const kn_mem_plan *p, FILE *f) {
  const double M = 1 << 20;
  fprintf(f, "memory plan (context %d tokens):\n", p->n_ctx);
  fprintf(f, "  weights   %10.1f MiB", p->weights / M);
  if (p->resident != p->weights) fprintf(f, " (%.1f MiB resident: the embedding table is read a row at a time)", p->resident / M);
  fprintf(f, "\n  KV cache  %10.1f MiB\n  scratch   %10.1f MiB\n  runtime   %10.1f MiB\n  total     %10.1f MiB\n",
          p->kv_cache / M, p->scratch / M, p->runtime / M, p->total / M);
  fprintf(f, "  device    %10.1f MiB available of %.1f MiB -> %s\n", p->device_avail / M, p->device_total / M,
          p->fits ? "fits" : "DOES NOT FIT");
}

void kn_model_free(kn_model *m) {
  if (!m) return;
  kn_model_free_steps(m);
  if (m->arch && m->arch->free) m->arch->free(m);
  else free(m->arch_data);
  kn_ctx_free(m->wctx);
  free(m->kcache), free(m->vcache), free(m->pass_logits);
  if (m->arch && m->arch->free) m->arch->free(m);
  else free(m->arch_data);
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
  m->arch = kn_arch_find(m->hp.arch);
  m->n_ctx = plan.n_ctx; /* the architecture may build tables over the context (rope angles) */
  if (m->arch->load(m)) {
    snprintf(err, errlen, "%s: %s", path, m->err[0] ? m->err : "loading the weights failed");
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
