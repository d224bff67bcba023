/* Steps: a forward pass for a given number of rows is built (by the architecture's forward) and captured once by
 * the runner (kn_capture), then replayed with new token ids, positions and KV cache rows (input tensors), so every
 * position of every slot uses the same kernels, and one pass can carry rows of several sequences (continuous
 * batching: kn_model_forward_rows). The KV caches and the attention over them that every architecture shares live
 * here too. */
#include "arch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kn_t kn_model_pos_rows(const kn_fwd *f, kn_t table) { return kn_gather_rows(table, f->pos); }

kn_t kn_model_out_rows(const kn_fwd *f, kn_t x) {
  if (f->out) return kn_gather_rows(x, f->out);
  if (f->n_out == f->n_tokens) return x;
  return kn_shrink(x, (int64_t[]){f->n_tokens - 1, 0}, (int64_t[]){f->n_tokens, kn_dim(x, 1)});
}

/* Write this step's keys and values into each row's cache row, then attend over the row's own sequence. */
kn_t kn_model_attention(kn_model *m, const kn_fwd *f, int layer, kn_t q, kn_t k, kn_t v, float scale, int window) {
  int T = f->n_tokens;
  kn_t kc = kn_assign_rows(m->kcache[layer], f->rows, k);
  kn_t vc = kn_assign_rows(m->vcache[layer], f->rows, v);
  kn_t att;
  if (m->attn_primitive) { /* row t sees cache rows rows[t] - pos[t] ... rows[t]: its sequence up to itself */
    int64_t N = kn_dim(m->kcache[layer], 0);
    kn_t key = kn_reshape(kn_arange(N, KN_I32), 2, (int64_t[]){1, N});
    kn_t row = kn_reshape(f->rows, 2, (int64_t[]){T, 1}), pos = kn_reshape(f->pos, 2, (int64_t[]){T, 1});
    kn_t vis = kn_and(kn_le(key, row), kn_ge(key, kn_sub(row, pos)));
    if (window > 0) vis = kn_and(vis, kn_gt(key, kn_adds(row, -window)));
    att = kn_attention(q, kc, vc, vis, scale);
  } else
    att = kn_custom_attention_rows(q, kc, vc, f->rows, m->n_ctx, scale, window);
  return kn_reshape(att, 2, (int64_t[]){T, (int64_t)m->hp.n_head * m->hp.head_dim});
}

int kn_model_init_cache(kn_model *m, int n_ctx, int n_slots, kn_dtype kv_dtype, char *err, size_t errlen) {
  const kn_hparams *hp = &m->hp;
  kn_ctx *prev = kn_ctx_set(m->wctx);
  m->n_ctx = n_ctx, m->kv_dtype = kv_dtype, m->n_slots = n_slots;
  int64_t shape[3] = {(int64_t)n_slots * n_ctx + KN_PAD_ROWS, hp->n_head_kv, hp->head_dim};
  m->kcache = calloc(hp->n_layer, sizeof *m->kcache), m->vcache = calloc(hp->n_layer, sizeof *m->vcache);
  kn_t *all = calloc(2 * (size_t)hp->n_layer, sizeof *all);
  int na = 0;
  for (int l = 0; m->kcache && m->vcache && all && l < hp->n_layer; l++) {
    all[na++] = m->kcache[l] = kn_name(kn_empty(kv_dtype, 3, shape), "blk.%d.cache_k", l);
    all[na++] = m->vcache[l] = kn_name(kn_empty(kv_dtype, 3, shape), "blk.%d.cache_v", l);
  }
  m->kv_bytes = 2 * (int64_t)hp->n_layer * kn_dtype_nbytes(kv_dtype, shape[0] * shape[1] * shape[2]);
  /* allocate the caches now, so a model that does not fit fails at load, not mid-generation */
  int rc = na == 2 * hp->n_layer ? kn_realize(all, na) : -1;
  free(all);
  const char *e = kn_ctx_error(m->wctx);
  if (rc || e) snprintf(err, errlen, "KV cache: %s", e ? e : "allocation failed");
  kn_ctx_set(prev);
  return rc || e ? -1 : 0;
}

/* A step's key: pass size, logits selection (every row, the last, or gathered rows) and the rows selected */
enum { OUT_ALL, OUT_LAST, OUT_GATHER };
static int64_t step_key(int n, int mode, int n_out) { return (int64_t)n | (int64_t)n_out << 16 | (int64_t)mode << 40; }

/* The graph of one step: token ids, positions and cache rows in (and the selected rows), logits out. */
static int build_step(void *user, int64_t key, kn_capture_io *io) {
  kn_model *m = user;
  int n = (int)(key & 0xffff), n_out = (int)(key >> 16 & 0xffffff), mode = (int)(key >> 40);
  kn_fwd f = {.n_tokens = n, .n_out = n_out};
  f.ids = kn_empty(KN_I32, 1, (int64_t[]){n});
  f.pos = kn_empty(KN_I32, 1, (int64_t[]){n});
  f.rows = kn_empty(KN_I32, 1, (int64_t[]){n});
  io->inputs[0] = f.ids, io->inputs[1] = f.pos, io->inputs[2] = f.rows, io->n_inputs = 3;
  if (mode == OUT_GATHER) io->inputs[io->n_inputs++] = f.out = kn_empty(KN_I32, 1, (int64_t[]){n_out});
  io->outputs[0] = m->arch->forward(m, &f), io->n_outputs = 1;
  io->n_vars = 0;
  io->keep = n <= 16; /* decode steps (batches of up to 16 rows) stay; prompt passes are evicted least recently used
                       * first */
  snprintf(io->name, sizeof io->name, "%d row%s, logits of %s", n, n == 1 ? "" : "s",
           mode == OUT_ALL ? "every row" : mode == OUT_LAST ? "the last row" : "selected rows");
  if (mode == OUT_GATHER) snprintf(io->name + strlen(io->name), sizeof io->name - strlen(io->name), " (%d)", n_out);
  return io->outputs[0] ? 0 : -1;
}

/* the model's captured steps, made on first use */
static kn_capture *steps(kn_model *m, char *err, size_t errlen) {
  /* a full set of pass sizes stays resident besides the decode steps */
  if (!m->steps && !(m->steps = kn_capture_new(m->dev, build_step, m, 2 * KN_PASS_SIZES)))
    snprintf(err, errlen, "out of memory");
  return m->steps;
}

int kn_model_prepare(kn_model *m, int slot, int max_n, char *err, size_t errlen) {
  if (slot < 0 || slot >= m->n_slots) return snprintf(err, errlen, "no KV cache slot %d", slot), -1;
  if (!steps(m, err, errlen)) return -1;
  int c = 1;
  while (c * 2 <= KN_MAX_PASS && c * 2 <= max_n && c * 2 <= m->n_ctx) c *= 2;
  for (; c >= 1; c /= 2) /* largest first: the smaller passes then fit in its scratch buffers */
    if (kn_capture_prepare(m->steps, step_key(c, OUT_LAST, 1), err, errlen)) return -1;
  return 0;
}

void kn_model_free_steps(kn_model *m) {
  kn_capture_free(m->steps);
  m->steps = NULL;
}

/* One pass of n rows (a power of two); out_idx holds n_out row indices in OUT_GATHER mode. */
static int run_pass(kn_model *m, int n, const int32_t *ids, const int32_t *pos, const int32_t *rows, int mode,
                    const int32_t *out_idx, int n_out, float *logits, char *err, size_t errlen) {
  if (!steps(m, err, errlen)) return -1;
  size_t b = (size_t)n * sizeof *ids, ob = (size_t)n_out * sizeof *out_idx;
  size_t out_bytes = (size_t)n_out * m->hp.n_vocab * sizeof *logits;
  return kn_capture_run(m->steps, step_key(n, mode, n_out), (const void *const[]){ids, pos, rows, out_idx},
                        (size_t[]){b, b, b, ob}, NULL, (void *const[]){logits}, &out_bytes, err, errlen);
}

static int check_token(const kn_model *m, int32_t t, int i, char *err, size_t errlen) {
  if (t >= 0 && t < m->hp.n_vocab) return 0;
  return snprintf(err, errlen, "token id %d at %d is outside the vocabulary (%d)", t, i, m->hp.n_vocab), -1;
}

int kn_model_forward(kn_model *m, int slot, const int32_t *tokens, int n, int start_pos, bool all, float *logits,
                     char *err, size_t errlen) {
  if (slot < 0 || slot >= m->n_slots) return snprintf(err, errlen, "no KV cache slot %d", slot), -1;
  if (n < 1 || start_pos < 0 || start_pos + n > m->n_ctx)
    return snprintf(err, errlen, "%d tokens at position %d do not fit the context of %d", n, start_pos, m->n_ctx), -1;
  for (int i = 0; i < n; i++)
    if (check_token(m, tokens[i], i, err, errlen)) return -1;
  int32_t *pos = malloc(2 * (size_t)(n < KN_MAX_PASS ? n : KN_MAX_PASS) * sizeof *pos);
  if (!pos) return snprintf(err, errlen, "out of memory"), -1;
  /* passes of power-of-two sizes, largest first (100 = 64 + 32 + 4): a prompt of any length runs on at most
   * log2(KN_MAX_PASS) + 1 captured steps, so after those are compiled no prompt length compiles anything */
  int rc = 0;
  for (int done = 0; done < n && !rc;) {
    int c = KN_MAX_PASS;
    while (c > n - done) c /= 2;
    int32_t *rows = pos + c;
    for (int i = 0; i < c; i++) pos[i] = start_pos + done + i, rows[i] = slot * m->n_ctx + pos[i];
    float *out = all ? logits + (size_t)done * m->hp.n_vocab : logits;
    rc = run_pass(m, c, tokens + done, pos, rows, all ? OUT_ALL : OUT_LAST, NULL, all ? c : 1, out, err, errlen);
    done += c;
  }
  free(pos);
  return rc;
}

static int cmp_key(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int kn_model_forward_rows(kn_model *m, const kn_row *rows, int n, const int *out, int n_out, float *logits, char *err,
                          size_t errlen) {
  if (n < 1) return snprintf(err, errlen, "a batch needs at least one row"), -1;
  int64_t *keys = malloc((size_t)n * sizeof *keys);
  if (!keys) return snprintf(err, errlen, "out of memory"), -1;
  for (int i = 0; i < n; i++) {
    const kn_row *r = &rows[i];
    if (r->slot < 0 || r->slot >= m->n_slots || r->pos < 0 || r->pos >= m->n_ctx) {
      free(keys);
      return snprintf(err, errlen, "batch row %d: slot %d position %d is outside the %d slots of %d positions", i,
                      r->slot, r->pos, m->n_slots, m->n_ctx), -1;
    }
    if (check_token(m, r->token, i, err, errlen)) return free(keys), -1;
    keys[i] = (int64_t)r->slot * m->n_ctx + r->pos;
  }
  qsort(keys, (size_t)n, sizeof *keys, cmp_key);
  for (int i = 1; i < n; i++)
    if (keys[i] == keys[i - 1]) {
      int s = (int)(keys[i] / m->n_ctx), p = (int)(keys[i] % m->n_ctx);
      free(keys);
      return snprintf(err, errlen, "batch: slot %d position %d appears twice", s, p), -1;
    }
  free(keys);
  for (int j = 0; j < n_out; j++)
    if (out[j] < 0 || out[j] >= n) return snprintf(err, errlen, "batch: logits of row %d of %d rows", out[j], n), -1;
  const size_t V = (size_t)m->hp.n_vocab;
  int cap = KN_MAX_PASS;
  int32_t *buf = malloc(4 * (size_t)cap * sizeof *buf);
  int rc = buf ? 0 : (snprintf(err, errlen, "out of memory"), -1);
  for (int done = 0; done < n && !rc;) {
    /* the largest power of two that fits, or the next one up when the padding is small */
    int rem = n - done, c = KN_MAX_PASS;
    while (c > rem) c /= 2;
    int size = c < rem && c * 2 <= KN_MAX_PASS && c * 2 - rem <= KN_PAD_ROWS ? c * 2 : c, take = size < rem ? size : rem;
    int pad = size - take; /* padding rows first, so the last row is a real one */
    int32_t *ids = buf, *pos = buf + cap, *crow = buf + 2 * cap, *sel = buf + 3 * cap;
    for (int i = 0; i < pad; i++) ids[i] = 0, pos[i] = i % m->n_ctx, crow[i] = m->n_slots * m->n_ctx + i;
    for (int i = 0; i < take; i++) {
      const kn_row *r = &rows[done + i];
      ids[pad + i] = r->token, pos[pad + i] = r->pos, crow[pad + i] = r->slot * m->n_ctx + r->pos;
    }
    /* the logits this pass owes: out[j] in [done, done + take) */
    int want = 0, last_j = -1;
    for (int j = 0; j < n_out; j++)
      if (out[j] >= done && out[j] < done + take) want++, last_j = j;
    int mode, n_sel = 1;
    if (want == 0 || (want == 1 && out[last_j] == done + take - 1)) mode = OUT_LAST;
    else if (want * 2 > size) mode = OUT_ALL, n_sel = size;
    else {
      mode = OUT_GATHER;
      while (n_sel < want) n_sel *= 2;
      int k = 0;
      for (int j = 0; j < n_out; j++)
        if (out[j] >= done && out[j] < done + take) sel[k++] = pad + out[j] - done;
      for (; k < n_sel; k++) sel[k] = sel[k - 1];
    }
    if ((size_t)n_sel * V > m->pass_logits_cap) { /* kept: a page-faulted buffer per step would cost time */
      free(m->pass_logits);
      m->pass_logits_cap = 0;
      if (!(m->pass_logits = malloc((size_t)n_sel * V * sizeof *m->pass_logits))) {
        rc = (snprintf(err, errlen, "out of memory"), -1);
        break;
      }
      m->pass_logits_cap = (size_t)n_sel * V;
    }
    float *tmp = m->pass_logits;
    rc = run_pass(m, size, ids, pos, crow, mode, sel, n_sel, tmp, err, errlen);
    for (int j = 0, k = 0; !rc && j < n_out; j++) {
      if (out[j] < done || out[j] >= done + take) continue;
      int at = mode == OUT_LAST ? 0 : mode == OUT_ALL ? pad + out[j] - done : k++;
      memcpy(logits + (size_t)j * V, tmp + (size_t)at * V, V * sizeof *tmp);
    }
    done += take;
  }
  free(buf);
  return rc;
}
