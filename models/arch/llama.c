/* The llama family, read top to bottom: embed, then per layer attention (RMSNorm, q/k/v projections with optional
 * bias, optional per-head q/k RMSNorm, RoPE, KV cache, causal grouped-query attention, output projection, residual)
 * and a SwiGLU feed-forward (RMSNorm, gate/up, SiLU, down, residual), then the final norm and the vocabulary
 * projection (tied to the embeddings when output.weight is absent). Three rows share it: llama (pairwise "normal"
 * RoPE; Llama 3 adds per-frequency divisors in rope_freqs.weight), qwen2 (q/k/v bias, NEOX RoPE) and qwen3 (per-head
 * q/k norms, NEOX RoPE). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../arch.h"

typedef struct {
  kn_t attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm;
  kn_t ffn_norm, w_gate, w_up, w_down;
} layer;

typedef struct {
  bool neox, qk_norm;
  kn_t tok_embd, output_norm, output;
  kn_t rope_cos, rope_sin; /* [n_ctx][head_dim/2] */
  layer *layers;
} llama;

static int load(kn_model *m) {
  const kn_hparams *hp = &m->hp;
  llama *a = calloc(1, sizeof *a);
  if (!a || !(a->layers = calloc(hp->n_layer, sizeof *a->layers))) return free(a), kn_model_fail(m, "out of memory");
  m->arch_data = a;
  a->neox = strcmp(hp->arch, "llama") != 0;
  a->qk_norm = !strcmp(hp->arch, "qwen3");
  int64_t E = hp->n_embd, V = hp->n_vocab, Q = (int64_t)hp->n_head * hp->head_dim,
          K = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, D = hp->head_dim;
  a->tok_embd = kn_model_weight(m, 0, 2, (int64_t[]){V, E}, "token_embd.weight");
  a->output_norm = kn_model_weight(m, 0, 1, &E, "output_norm.weight");
  a->output = kn_model_weight(m, KN_OPTIONAL, 2, (int64_t[]){V, E}, "output.weight"); /* absent: tied */
  for (int l = 0; l < hp->n_layer && !m->err[0]; l++) {
    layer *L = &a->layers[l];
    L->attn_norm = kn_model_weight(m, 0, 1, &E, "blk.%d.attn_norm.weight", l);
    L->wq = kn_model_weight(m, 0, 2, (int64_t[]){Q, E}, "blk.%d.attn_q.weight", l);
    L->wk = kn_model_weight(m, 0, 2, (int64_t[]){K, E}, "blk.%d.attn_k.weight", l);
    L->wv = kn_model_weight(m, 0, 2, (int64_t[]){K, E}, "blk.%d.attn_v.weight", l);
    L->wo = kn_model_weight(m, 0, 2, (int64_t[]){E, Q}, "blk.%d.attn_output.weight", l);
    L->bq = kn_model_weight(m, KN_OPTIONAL, 1, &Q, "blk.%d.attn_q.bias", l);
    L->bk = kn_model_weight(m, KN_OPTIONAL, 1, &K, "blk.%d.attn_k.bias", l);
    L->bv = kn_model_weight(m, KN_OPTIONAL, 1, &K, "blk.%d.attn_v.bias", l);
    if (a->qk_norm) {
      L->q_norm = kn_model_weight(m, 0, 1, &D, "blk.%d.attn_q_norm.weight", l);
      L->k_norm = kn_model_weight(m, 0, 1, &D, "blk.%d.attn_k_norm.weight", l);
    }
    L->ffn_norm = kn_model_weight(m, 0, 1, &E, "blk.%d.ffn_norm.weight", l);
    L->w_gate = kn_model_weight(m, 0, 2, (int64_t[]){F, E}, "blk.%d.ffn_gate.weight", l);
    L->w_up = kn_model_weight(m, 0, 2, (int64_t[]){F, E}, "blk.%d.ffn_up.weight", l);
    L->w_down = kn_model_weight(m, 0, 2, (int64_t[]){E, F}, "blk.%d.ffn_down.weight", l);
  }
  if (m->err[0]) return -1;
  /* Llama 3 rope scaling ships as per-frequency divisors */
  float *factors = kn_model_tensor_f32(m, "rope_freqs.weight", D / 2);
  if (m->err[0]) return -1;
  kn_ctx *prev = kn_ctx_set(m->wctx);
  int rc = kn_rope_tables(m->n_ctx, (int)D, hp->rope_theta, 1.0f, factors, &a->rope_cos, &a->rope_sin);
  if (!rc) kn_name(a->rope_cos, "rope_cos"), kn_name(a->rope_sin, "rope_sin");
  kn_ctx_set(prev);
  free(factors);
  return rc ? kn_model_fail(m, "rope tables: %s", kn_ctx_error(m->wctx) ? kn_ctx_error(m->wctx) : "out of memory") : 0;
}

static kn_t forward(kn_model *m, const kn_fwd *f) {
  const kn_hparams *hp = &m->hp;
  const llama *a = m->arch_data;
  int T = f->n_tokens;
  int64_t D = hp->head_dim, H = hp->n_head, KV = hp->n_head_kv;
  kn_t x = kn_gather_rows(a->tok_embd, f->ids); /* [T, n_embd] */
  kn_t cos = kn_model_pos_rows(f, a->rope_cos), sin = kn_model_pos_rows(f, a->rope_sin);
  for (int l = 0; l < hp->n_layer; l++) {
    const layer *L = &a->layers[l];
    /* attention */
    kn_t h = kn_rmsnorm(x, L->attn_norm, hp->eps);
    kn_t q = kn_reshape(kn_linear(h, L->wq, L->bq), 3, (int64_t[]){T, H, D});
    kn_t k = kn_reshape(kn_linear(h, L->wk, L->bk), 3, (int64_t[]){T, KV, D});
    kn_t v = kn_reshape(kn_linear(h, L->wv, L->bv), 3, (int64_t[]){T, KV, D});
    if (a->qk_norm) q = kn_rmsnorm(q, L->q_norm, hp->eps), k = kn_rmsnorm(k, L->k_norm, hp->eps);
    q = kn_name(kn_rope(q, cos, sin, a->neox), "blk.%d.q", l);
    k = kn_name(kn_rope(k, cos, sin, a->neox), "blk.%d.k", l);
    kn_t att = kn_model_attention(m, f, l, q, k, v, 1.0f / sqrtf((float)D), 0);
    x = kn_name(kn_add(x, kn_linear(att, L->wo, NULL)), "blk.%d.attn_out", l);
    /* feed-forward */
    h = kn_rmsnorm(x, L->ffn_norm, hp->eps);
    kn_t g = kn_name(kn_mul(kn_silu(kn_linear(h, L->w_gate, NULL)), kn_linear(h, L->w_up, NULL)), "blk.%d.ffn_gate_up", l);
    x = kn_name(kn_add(x, kn_linear(g, L->w_down, NULL)), "blk.%d.ffn_out", l);
  }
  x = kn_model_out_rows(f, x);
  x = kn_rmsnorm(x, a->output_norm, hp->eps);
  return kn_name(kn_linear(x, a->output ? a->output : a->tok_embd, NULL), "logits");
}

static void release(kn_model *m) {
  llama *a = m->arch_data;
  if (a) free(a->layers), free(a);
  m->arch_data = NULL;
}

const kn_arch kn_arch_llama = {"llama", load, forward, release};
const kn_arch kn_arch_qwen2 = {"qwen2", load, forward, release};
const kn_arch kn_arch_qwen3 = {"qwen3", load, forward, release};
