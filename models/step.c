/* Steps: a forward pass for a given batch length is built (by the architecture's forward) and captured once by the
 * runner (kn_capture), then replayed with new token ids and a new start position (a symbolic variable), so every
 * position uses the same kernels. The KV caches and the attention over them that every architecture shares live
 * here too. */
#include "arch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Write this step's keys and values into the slot's cache, then attend over it. */
kn_t kn_model_attention(kn_model *m, const kn_fwd *f, int layer, kn_t q, kn_t k, kn_t v, float scale, int window) {
  int T = f->n_tokens;
  kn_kvcache *kv = &m->slots[f->slot];
  kn_t kc = kn_assign(kn_shrink_var(kv->k[layer], 0, f->pos, T), k);
  kn_t vc = kn_assign(kn_shrink_var(kv->v[layer], 0, f->pos, T), v);
  kn_t att = m->attn_primitive ? kn_attention(q, kc, vc, kn_causal_mask(T, m->n_ctx, kn_var_tensor(f->pos, KN_I32), window), scale)
                               : kn_custom_attention_window(q, kc, vc, f->pos, T, scale, window);
  return kn_reshape(att, 2, (int64_t[]){T, (int64_t)m->hp.n_head * m->hp.head_dim});
}

int kn_model_init_cache(kn_model *m, int n_ctx, int n_slots, kn_dtype kv_dtype, char *err, size_t errlen) {
  const kn_hparams *hp = &m->hp;
  kn_ctx *prev = kn_ctx_set(m->wctx);
  m->n_ctx = n_ctx, m->kv_dtype = kv_dtype, m->n_slots = n_slots;
  int64_t shape[3] = {n_ctx, hp->n_head_kv, hp->head_dim};
  m->slots = calloc(n_slots, sizeof *m->slots);
  kn_t *all = calloc(2 * (size_t)n_slots * hp->n_layer, sizeof *all);
  int na = 0;
  for (int s = 0; m->slots && all && s < n_slots; s++) {
    kn_kvcache *kv = &m->slots[s];
    kv->k = calloc(hp->n_layer, sizeof *kv->k), kv->v = calloc(hp->n_layer, sizeof *kv->v);
    for (int l = 0; kv->k && kv->v && l < hp->n_layer; l++) {
      all[na++] = kv->k[l] = kn_empty(kv_dtype, 3, shape);
      all[na++] = kv->v[l] = kn_empty(kv_dtype, 3, shape);
    }
  }
  m->kv_bytes = 2 * (int64_t)n_slots * hp->n_layer * kn_dtype_nbytes(kv_dtype, n_ctx * shape[1] * shape[2]);
  /* allocate the caches now, so a model that does not fit fails at load, not mid-generation */
  int rc = na == 2 * n_slots * hp->n_layer ? kn_realize(all, na) : -1;
  free(all);
  const char *e = kn_ctx_error(m->wctx);
  if (rc || e) snprintf(err, errlen, "KV cache: %s", e ? e : "allocation failed");
  kn_ctx_set(prev);
  return rc || e ? -1 : 0;
}

/* A step's key: slot, pass size, all positions or the last */
static int64_t step_key(int slot, int n, bool all) { return ((int64_t)slot << 32) | ((int64_t)n << 1) | all; }

/* The graph of one step: token ids in, logits out, start_pos bound on each replay. */
static int build_step(void *user, int64_t key, kn_capture_io *io) {
  kn_model *m = user;
  int slot = (int)(key >> 32), n = (int)((key & 0xffffffff) >> 1);
  bool all = key & 1;
  kn_var *pos = kn_var_new("start_pos", 0, m->n_ctx - n);
  kn_t ids = kn_empty(KN_I32, 1, (int64_t[]){n});
  kn_fwd f = {.n_tokens = n, .all = all, .ids = ids, .pos = pos, .slot = slot};
  io->inputs[0] = ids, io->n_inputs = 1;
  io->outputs[0] = m->arch->forward(m, &f), io->n_outputs = 1;
  io->vars[0] = pos, io->n_vars = 1;
  io->keep = n == 1; /* decode steps stay; prompt passes are evicted least recently used first */
  return io->outputs[0] ? 0 : -1;
}

/* the model's captured steps, made on first use */
static kn_capture *steps(kn_model *m, char *err, size_t errlen) {
  /* a full set of pass sizes per slot stays resident, so slots evaluating prompts in turn do not rebuild each
   * other's */
  if (!m->steps && !(m->steps = kn_capture_new(m->dev, build_step, m, KN_PASS_SIZES * m->n_slots)))
    snprintf(err, errlen, "out of memory");
  return m->steps;
}

int kn_model_prepare(kn_model *m, int slot, int max_n, char *err, size_t errlen) {
  if (slot < 0 || slot >= m->n_slots) return snprintf(err, errlen, "no KV cache slot %d", slot), -1;
  if (!steps(m, err, errlen)) return -1;
  int c = 1;
  while (c * 2 <= KN_MAX_PASS && c * 2 <= max_n && c * 2 <= m->n_ctx) c *= 2;
  for (; c >= 1; c /= 2) /* largest first: the smaller passes then fit in its scratch buffers */
    if (kn_capture_prepare(m->steps, step_key(slot, c, false), err, errlen)) return -1;
  return 0;
}

void kn_model_free_steps(kn_model *m) {
  kn_capture_free(m->steps);
  m->steps = NULL;
}

/* One pass of n tokens (a size that has a captured step) at start_pos; logits of the last or of every position. */
static int forward_pass(kn_model *m, int slot, const int32_t *tokens, int n, int start_pos, bool all, float *logits,
                        char *err, size_t errlen) {
  if (!steps(m, err, errlen)) return -1;
  size_t in_bytes = (size_t)n * sizeof *tokens, out_bytes = (size_t)(all ? n : 1) * m->hp.n_vocab * sizeof *logits;
  int64_t pos = start_pos;
  return kn_capture_run(m->steps, step_key(slot, n, all), (const void *const[]){tokens}, &in_bytes, &pos,
                        (void *const[]){logits}, &out_bytes, err, errlen);
}

int kn_model_forward(kn_model *m, int slot, const int32_t *tokens, int n, int start_pos, bool all, float *logits,
                     char *err, size_t errlen) {
  if (slot < 0 || slot >= m->n_slots) return snprintf(err, errlen, "no KV cache slot %d", slot), -1;
  if (n < 1 || start_pos < 0 || start_pos + n > m->n_ctx)
    return snprintf(err, errlen, "%d tokens at position %d do not fit the context of %d", n, start_pos, m->n_ctx), -1;
  for (int i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
      return snprintf(err, errlen, "token id %d at %d is outside the vocabulary (%d)", tokens[i], i, m->hp.n_vocab), -1;
  /* passes of power-of-two sizes, largest first (100 = 64 + 32 + 4): a prompt of any length runs on at most
   * log2(KN_MAX_PASS) + 1 captured steps, so after those are compiled no prompt length compiles anything */
  for (int done = 0; done < n;) {
    int c = KN_MAX_PASS;
    while (c > n - done) c /= 2;
    float *out = all ? logits + (size_t)done * m->hp.n_vocab : logits;
    if (forward_pass(m, slot, tokens + done, c, start_pos + done, all, out, err, errlen)) return -1;
    done += c;
  }
  return 0;
}
