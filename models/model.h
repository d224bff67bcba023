/* A loaded GGUF language model: the hyper-parameters every architecture shares, weights as lazy tensors over the
 * mapped file (never dequantized, never copied on the CPU), the KV caches, the tokenizer, and the memory plan checked
 * before loading. What an architecture computes lives in its own file behind the table of models/arch.h. */
#ifndef KN_MODEL_H
#define KN_MODEL_H

#include <stdio.h>

#include "../ops/ops.h"
#include "text/tokenizer.h"

/* What every architecture has, read from "<arch>.*" keys; an architecture reads the rest itself (models/arch.h). */
typedef struct {
  char arch[32];
  int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
  int n_ctx_train;
  float eps, rope_theta;
} kn_hparams;

/* One KV cache ("slot"): per layer, keys and values [n_ctx][n_head_kv][head_dim]. Slots share the weights, so a
 * server runs several conversations with one copy of the model. */
typedef struct {
  kn_t *k, *v;
} kn_kvcache;

typedef struct kn_arch kn_arch;

typedef struct kn_model {
  kn_hparams hp;
  const kn_arch *arch;       /* the architecture's row of the table */
  void *arch_data;           /* its weights and extra hyper-parameters */
  kn_device *dev;
  kn_ctx *wctx;              /* weights, caches, rope tables */
  int n_ctx;                 /* KV cache length */
  int n_slots;
  kn_kvcache *slots;
  kn_dtype kv_dtype;
  kn_capture *steps;         /* captured forward passes, one per slot and batch length (graph/capture.c) */
  bool attn_primitive;       /* attention from graph primitives instead of the fused kernel (KILN_ATTENTION=0) */
  int64_t weight_bytes, kv_bytes;
  struct kn_gguf *file;      /* the GGUF file (kept open: weights point into it) */
  kn_tokenizer *tok;
  char *chat_template;       /* tokenizer.chat_template, or NULL */
  char name[128];            /* general.name, else the file name */
  char err[512];             /* the first error while loading (kn_model_fail) */
} kn_model;

typedef struct {
  int n_ctx;          /* KV cache positions; 0: the model's trained context, capped by memory */
  kn_dtype kv_dtype;  /* KN_F16 (default) or KN_F32 */
  int n_slots;        /* KV caches (parallel conversations), default 1 */
} kn_load_opts;

typedef struct {
  int64_t weights;   /* the file's tensor bytes */
  int64_t resident;  /* of those, the bytes that become resident (CPU: the embedding table is read a row at a time) */
  int64_t kv_cache, scratch, runtime, total, device_total, device_avail;
  int n_ctx;
  bool fits;
} kn_mem_plan;

kn_load_opts kn_load_defaults(void);
/* The memory a model would need on dev with these options, computed from the file's header alone. */
int kn_model_mem_plan(const char *path, kn_device *dev, const kn_load_opts *o, kn_mem_plan *plan, char *err, size_t errlen);
void kn_mem_plan_print(const kn_mem_plan *p, FILE *f);
/* Load a model. NULL and a message naming the file and the problem on failure (a model that does not fit is
 * refused with its memory plan in the message). */
kn_model *kn_model_load(const char *path, kn_device *dev, const kn_load_opts *o, char *err, size_t errlen);
void kn_model_free(kn_model *m);

/* Tokens of one forward pass at most: bounds activation memory for 16k-token prompts. Passes have power-of-two
 * sizes (1, 2, 4, ..., KN_MAX_PASS), KN_PASS_SIZES of them, each compiled once. */
#define KN_MAX_PASS 512
#define KN_PASS_SIZES 10

/* Run n tokens at positions start_pos.. of a slot's cache and write logits: the last position's (n_vocab floats),
 * or every position's ([n][n_vocab]) when all is set. Any n runs as passes of power-of-two sizes, so the kernels
 * of a new prompt length are the ones already compiled. 0 or -1 with err. Not thread-safe: one call at a time. */
int kn_model_forward(kn_model *m, int slot, const int32_t *tokens, int n, int start_pos, bool all, float *logits,
                     char *err, size_t errlen);
/* Capture (compile or load from the cache) every pass a prompt of up to max_n tokens needs on a slot, without
 * running any: after it, the first prompt of any length up to max_n starts computing at once. */
int kn_model_prepare(kn_model *m, int slot, int max_n, char *err, size_t errlen);
void kn_model_free_steps(kn_model *m);
/* Build n_slots KV caches of n_ctx positions (part of loading). */
int kn_model_init_cache(kn_model *m, int n_ctx, int n_slots, kn_dtype kv_dtype, char *err, size_t errlen);

#endif
