/* Gemma 3, read top to bottom: embeddings scaled by sqrt(n_embd); per layer attention with per-head q/k RMSNorm,
 * NEOX RoPE and a norm after the output projection, and a GELU(tanh)-gated feed-forward with a norm after it too.
 * Layers alternate sliding-window attention (the last `sliding_window` keys, rope base freq_base_swa) with a global
 * layer every `sliding_window_pattern` (6 unless the file says otherwise: every key, rope base freq_base with the
 * file's linear scaling). Norm weights are used as stored (the GGUF conversion folds Gemma's 1 + w in). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../arch.h"

typedef struct {
  kn_t attn_norm, wq, wk, wv, wo, q_norm, k_norm, post_attn_norm;
  kn_t ffn_norm, w_gate, w_up, w_down, post_ffn_norm;
  bool global; /* attends every earlier key; the others see the last `window` */
} layer;

typedef struct {
  int window;
  float softcap; /* final logit soft-capping (0: none; Gemma 3 files have none) */
  kn_t tok_embd, output_norm, output;
  kn_t cos_local, sin_local, cos_global, sin_global; /* rope tables [n_ctx][head_dim/2] */
  layer *layers;
} gemma3;

static int load(kn_model *m) {
  const kn_hparams *hp = &m->hp;
  gemma3 *a = calloc(1, sizeof *a);
  if (!a || !(a->layers = calloc(hp->n_layer, sizeof *a->layers))) return free(a), kn_model_fail(m, "out of memory");
  m->arch_data = a;
  a->window = (int)kn_model_meta_int(m, ".attention.sliding_window", 0);
  int pattern = (int)kn_model_meta_int(m, ".attention.sliding_window_pattern", 6);
  a->softcap = (float)kn_model_meta_float(m, ".final_logit_softcapping", 0.0);
  if (a->window < 0 || pattern < 0) return kn_model_fail(m, "%s.attention.sliding_window(_pattern) is negative", hp->arch);
  if (kn_model_meta_int(m, ".attention.value_length", hp->head_dim) != hp->head_dim)
    return kn_model_fail(m, "%s.attention.value_length differs from key_length: not supported", hp->arch);
  int64_t E = hp->n_embd, V = hp->n_vocab, Q = (int64_t)hp->n_head * hp->head_dim,
          K = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, D = hp->head_dim;
  a->tok_embd = kn_model_weight(m, 0, 2, (int64_t[]){V, E}, "token_embd.weight");
  a->output_norm = kn_model_weight(m, 0, 1, &E, "output_norm.weight");
  a->output = kn_model_weight(m, KN_OPTIONAL, 2, (int64_t[]){V, E}, "output.weight"); /* absent: tied */
  for (int l = 0; l < hp->n_layer && !m->err[0]; l++) {
    layer *L = &a->layers[l];
    L->global = a->window == 0 || pattern == 0 || (l + 1) % pattern == 0;
    L->attn_norm = kn_model_weight(m, 0, 1, &E, "blk.%d.attn_norm.weight", l);
    L->wq = kn_model_weight(m, 0, 2, (int64_t[]){Q, E}, "blk.%d.attn_q.weight", l);
    L->wk = kn_model_weight(m, 0, 2, (int64_t[]){K, E}, "blk.%d.attn_k.weight", l);
    L->wv = kn_model_weight(m, 0, 2, (int64_t[]){K, E}, "blk.%d.attn_v.weight", l);
    L->wo = kn_model_weight(m, 0, 2, (int64_t[]){E, Q}, "blk.%d.attn_output.weight", l);
    L->q_norm = kn_model_weight(m, 0, 1, &D, "blk.%d.attn_q_norm.weight", l);
    L->k_norm = kn_model_weight(m, 0, 1, &D, "blk.%d.attn_k_norm.weight", l);
    L->post_attn_norm = kn_model_weight(m, 0, 1, &E, "blk.%d.post_attention_norm.weight", l);
    L->ffn_norm = kn_model_weight(m, 0, 1, &E, "blk.%d.ffn_norm.weight", l);
    L->w_gate = kn_model_weight(m, 0, 2, (int64_t[]){F, E}, "blk.%d.ffn_gate.weight", l);
    L->w_up = kn_model_weight(m, 0, 2, (int64_t[]){F, E}, "blk.%d.ffn_up.weight", l);
    L->w_down = kn_model_weight(m, 0, 2, (int64_t[]){E, F}, "blk.%d.ffn_down.weight", l);
    L->post_ffn_norm = kn_model_weight(m, 0, 1, &E, "blk.%d.post_ffw_norm.weight", l);
  }
  if (m->err[0]) return -1;
  float base_local = (float)kn_model_meta_float(m, ".rope.freq_base_swa", 10000.0), scale = 1.0f;
  const char *scaling = kn_model_meta_str(m, ".rope.scaling.type", "none");
  if (!strcmp(scaling, "linear")) scale = 1.0f / (float)kn_model_meta_float(m, ".rope.scaling.factor", 1.0);
  else if (strcmp(scaling, "none"))
    return kn_model_fail(m, "%s.rope.scaling.type '%s' is not supported (linear or none)", hp->arch, scaling);
  if (!(scale > 0) || !isfinite(scale)) return kn_model_fail(m, "%s.rope.scaling.factor is invalid", hp->arch);
  if (!(base_local > 0) || !isfinite(base_local)) return kn_model_fail(m, "%s.rope.freq_base_swa is invalid", hp->arch);
  kn_ctx *prev = kn_ctx_set(m->wctx);
  int rc = kn_rope_tables(m->n_ctx, (int)D, base_local, 1.0f, NULL, &a->cos_local, &a->sin_local);
  if (!rc) rc = kn_rope_tables(m->n_ctx, (int)D, hp->rope_theta, scale, NULL, &a->cos_global, &a->sin_global);
  if (!rc) /* named, so their rows at a step's positions read as rope_cos_local_rows in DEBUG=3, not buffer_rows */
    kn_name(a->cos_local, "rope_cos_local"), kn_name(a->sin_local, "rope_sin_local"),
        kn_name(a->cos_global, "rope_cos_global"), kn_name(a->sin_global, "rope_sin_global");
  kn_ctx_set(prev);
  return rc ? kn_model_fail(m, "rope tables: %s", kn_ctx_error(m->wctx) ? kn_ctx_error(m->wctx) : "out of memory") : 0;
}

static kn_t forward(kn_model *m, const kn_fwd *f) {
  const kn_hparams *hp = &m->hp;
  const gemma3 *a = m->arch_data;
  int T = f->n_tokens;
  int64_t D = hp->head_dim, H = hp->n_head, KV = hp->n_head_kv;
  kn_t x = kn_muls(kn_gather_rows(a->tok_embd, f->ids), sqrtf((float)hp->n_embd)); /* [T, n_embd] */
  kn_t cos_l = kn_model_pos_rows(f, a->cos_local), sin_l = kn_model_pos_rows(f, a->sin_local);
  kn_t cos_g = kn_model_pos_rows(f, a->cos_global), sin_g = kn_model_pos_rows(f, a->sin_global);
  for (int l = 0; l < hp->n_layer; l++) {
    const layer *L = &a->layers[l];
    /* attention */
    kn_t h = kn_rmsnorm(x, L->attn_norm, hp->eps);
    kn_t q = kn_reshape(kn_linear(h, L->wq, NULL), 3, (int64_t[]){T, H, D});
    kn_t k = kn_reshape(kn_linear(h, L->wk, NULL), 3, (int64_t[]){T, KV, D});
    kn_t v = kn_reshape(kn_linear(h, L->wv, NULL), 3, (int64_t[]){T, KV, D});
    q = kn_rmsnorm(q, L->q_norm, hp->eps), k = kn_rmsnorm(k, L->k_norm, hp->eps);
    q = kn_rope(q, L->global ? cos_g : cos_l, L->global ? sin_g : sin_l, true);
    k = kn_rope(k, L->global ? cos_g : cos_l, L->global ? sin_g : sin_l, true);
    kn_t att = kn_model_attention(m, f, l, q, k, v, 1.0f / sqrtf((float)D), L->global ? 0 : a->window);
    /* the residual stream is realized once per half-layer: after a post-norm it is an elementwise expression of
     * several buffers, which every later layer would otherwise recompute */
    x = kn_contiguous(kn_add(x, kn_rmsnorm(kn_linear(att, L->wo, NULL), L->post_attn_norm, hp->eps)));
    /* feed-forward */
    h = kn_rmsnorm(x, L->ffn_norm, hp->eps);
    kn_t g = kn_mul(kn_gelu(kn_linear(h, L->w_gate, NULL)), kn_linear(h, L->w_up, NULL));
    x = kn_contiguous(kn_add(x, kn_rmsnorm(kn_linear(g, L->w_down, NULL), L->post_ffn_norm, hp->eps)));
  }
  x = kn_model_out_rows(f, x);
  x = kn_rmsnorm(x, a->output_norm, hp->eps);
  kn_t logits = kn_linear(x, a->output ? a->output : a->tok_embd, NULL);
  return a->softcap > 0 ? kn_softcap(logits, a->softcap) : logits;
}

static void release(kn_model *m) {
  gemma3 *a = m->arch_data;
  if (a) free(a->layers), free(a);
  m->arch_data = NULL;
}

const kn_arch kn_arch_gemma3 = {"gemma3", load, forward, release};
