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

typedef struct kn_arch kn_arch;

typedef struct kn_model {
  kn_hparams hp;
  const kn_arch *arch;       /* the architecture's row of the table */
  void *arch_data;           /* its weights and extra hyper-parameters */
  kn_device *dev;
  kn_ctx *wctx;              /* weights, caches, rope tables */
  int n_ctx;                 /* KV cache length */
  int n_slots;
  /* The KV caches, per layer keys and values [n_slots * n_ctx + KN_PAD_ROWS][n_head_kv][head_dim]: slot s (one
   * conversation) owns rows s * n_ctx ... s * n_ctx + n_ctx - 1, and the last KN_PAD_ROWS rows take the padding
   * rows of batched passes. Slots share the weights, so a server runs several conversations with one copy of the
   * model, and one pass carries rows of several slots (kn_model_forward_rows). */
  kn_t *kcache, *vcache;
  kn_dtype kv_dtype;
  kn_capture *steps;         /* captured forward passes, one per pass size and logits selection (graph/capture.c) */
  float *pass_logits;        /* a batched pass's logits before they are handed out (kn_model_forward_rows) */
  size_t pass_logits_cap;
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
/* Rows of padding a batched pass may carry (a batch of 5 rows runs as one pass of 8 rather than 4 + 1) */
#define KN_PAD_ROWS 64

/* Run n tokens at positions start_pos.. of a slot's cache and write logits: the last position's (n_vocab floats),
 * or every position's ([n][n_vocab]) when all is set. Any n runs as passes of power-of-two sizes, so the kernels
 * of a new prompt length are the ones already compiled. 0 or -1 with err. Not thread-safe: one call at a time. */
int kn_model_forward(kn_model *m, int slot, const int32_t *tokens, int n, int start_pos, bool all, float *logits,
                     char *err, size_t errlen);
/* One row of a batched pass: token `token` at position `pos` of slot `slot`'s sequence. */
typedef struct {
  int slot, pos;
  int32_t token;
} kn_row;
/* Continuous batching: one forward pass carries rows of several sequences (each its own slot and position), so the
 * weights are read once for all of them. Rows of one slot must be in position order and its earlier positions
 * already in the cache or earlier in rows; no (slot, pos) twice. Logits of rows out[0..n_out) go to
 * logits[i][n_vocab]. A sequence's logits equal those of the same tokens run alone (kn_model_forward) up to the
 * summation order. Runs as few power-of-two passes as it can (n rows padded by at most KN_PAD_ROWS). 0 or -1 with
 * err. Not thread-safe. */
int kn_model_forward_rows(kn_model *m, const kn_row *rows, int n, const int *out, int n_out, float *logits, char *err,
                          size_t errlen);
/* Capture (compile or load from the cache) every pass a prompt of up to max_n tokens needs, without running any:
 * after it, the first prompt of any length up to max_n starts computing at once. The steps are shared by all slots
 * (slot is checked only). */
int kn_model_prepare(kn_model *m, int slot, int max_n, char *err, size_t errlen);
void kn_model_free_steps(kn_model *m);
/* Build n_slots KV caches of n_ctx positions (part of loading). */
int kn_model_init_cache(kn_model *m, int n_ctx, int n_slots, kn_dtype kv_dtype, char *err, size_t errlen);

#endif
