/* The llama family (llama, qwen2, qwen3) as a lazy graph: hyper-parameters, weights kept in their GGUF storage
 * formats, a KV cache, and a forward pass that turns token ids into logits. */
#ifndef KN_LLAMA_H
#define KN_LLAMA_H

#include "../ops/ops.h"
#include "tokenizer.h"

typedef struct {
  char arch[32];
  int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
  int n_ctx_train;
  float eps, rope_theta;
  bool rope_neox;     /* qwen2/qwen3 rotate halves; llama rotates pairs */
  bool qk_norm;       /* qwen3: RMSNorm of each head of q and k */
} kn_hparams;

typedef struct {
  kn_t attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm;
  kn_t ffn_norm, w_gate, w_up, w_down;
} kn_layer;

/* One KV cache ("slot"): per layer, keys and values [n_ctx][n_head_kv][head_dim]. Slots share the weights, so a
 * server runs several conversations with one copy of the model. */
typedef struct {
  kn_t *k, *v;
} kn_kvcache;

typedef struct kn_step kn_step;

typedef struct kn_model {
  kn_hparams hp;
  kn_device *dev;
  kn_ctx *wctx;              /* weights, caches, rope tables */
  kn_t tok_embd, output_norm, output;
  kn_layer *layers;
  kn_t rope_cos, rope_sin;   /* [n_ctx][head_dim/2] float32, computed once */
  float *freq_factors;       /* llama3 rope scaling (rope_freqs.weight), or NULL */
  int n_ctx;                 /* KV cache length */
  int n_slots;
  kn_kvcache *slots;
  kn_dtype kv_dtype;
  kn_step *steps;            /* captured forward passes, one per batch length */
  bool attn_primitive;       /* attention from graph primitives instead of the fused kernel (KILN_ATTENTION=0) */
  int64_t weight_bytes, kv_bytes;
  struct kn_gguf *file;      /* the GGUF file (kept open: weights point into it) */
  kn_tokenizer *tok;
  char *chat_template;       /* tokenizer.chat_template, or NULL */
  char name[128];            /* general.name, else the file name */
} kn_model;

/* Tokens of one forward pass at most: bounds activation memory for 16k-token prompts. Passes have power-of-two
 * sizes (1, 2, 4, ..., KN_MAX_PASS), KN_PASS_SIZES of them, each compiled once. */
#define KN_MAX_PASS 512
#define KN_PASS_SIZES 10

/* Build n_slots KV caches of n_ctx positions and the rope tables (hp and weights must be set). */
int kn_model_init_cache(kn_model *m, int n_ctx, int n_slots, kn_dtype kv_dtype, char *err, size_t errlen);
/* Run n tokens at positions start_pos.. of a slot's cache and write logits: the last position's (n_vocab floats),
 * or every position's ([n][n_vocab]) when all is set. Any n runs as passes of power-of-two sizes, so the kernels
 * of a new prompt length are the ones already compiled. 0 or -1 with err. Not thread-safe: one call at a time. */
int kn_model_forward(kn_model *m, int slot, const int32_t *tokens, int n, int start_pos, bool all, float *logits,
                     char *err, size_t errlen);
/* Capture (compile or load from the cache) every pass a prompt of up to max_n tokens needs on a slot, without
 * running any: after it, the first prompt of any length up to max_n starts computing at once. */
int kn_model_prepare(kn_model *m, int slot, int max_n, char *err, size_t errlen);
void kn_model_free_steps(kn_model *m);

#endif
