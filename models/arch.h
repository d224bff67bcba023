/* Writing a model architecture for kiln: the table of architectures and what an architecture file uses. An
 * architecture is one file (models/arch/<name>.c) with a kn_arch row: `load` reads its hyper-parameters and weights
 * by GGUF name, `forward` builds one step of the forward pass on the graph API. kiln captures each step once and
 * replays it for every position (the start position is a symbolic variable). docs/models.md walks through one. */
#ifndef KN_ARCH_H
#define KN_ARCH_H

#include "model.h"

/* What one forward pass is built from. Its rows may belong to different sequences (continuous batching): each
 * has its own position and KV cache row, filled at run time. */
typedef struct {
  int n_tokens;   /* rows in this step */
  kn_t ids;       /* int32 [n_tokens]: the token ids */
  kn_t pos;       /* int32 [n_tokens]: each row's position in its sequence (kn_gather_rows of a RoPE table) */
  kn_t rows;      /* int32 [n_tokens]: each row's KV cache row (kn_model_attention) */
  int n_out;      /* rows whose logits the step returns */
  kn_t out;       /* int32 [n_out]: which rows; NULL: every row (n_out == n_tokens) or the last one (n_out == 1) */
} kn_fwd;

struct kn_arch {
  const char *name;                           /* general.architecture */
  int (*load)(kn_model *m);                   /* 0, or -1 after kn_model_fail */
  kn_t (*forward)(kn_model *m, const kn_fwd *f); /* logits [n_out][n_vocab]; NULL with a graph error */
  void (*free)(kn_model *m);                  /* frees m->arch_data; may be NULL when that is one malloc */
};

/* The built-in table plus what a program registered; NULL when name is unknown. */
const kn_arch *kn_arch_find(const char *name);
/* Register an architecture at run time (before loading a model of it); a name already present is replaced.
 * 0, or -1 when the table is full. */
int kn_arch_register(const kn_arch *a);
/* "llama, qwen2, ..." for error messages. */
void kn_arch_names(char *buf, size_t n);

/* ---- for load(): GGUF tensors and metadata by name ---- */
/* Record the first load error (printf style) and return -1. */
int kn_model_fail(kn_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A GGUF tensor by name as a lazy tensor over the file, in its storage format (block formats stay quantized and
 * are decoded inside the kernels that read them). Shape is GGUF's ne reversed: [rows][cols] for a matrix. NULL and
 * an error (kn_model_fail) when absent. */
kn_t kn_model_tensor(kn_model *m, const char *name);
/* The same with the name printf-style and the shape checked (ndim entries); flags KN_OPTIONAL: an absent tensor
 * is NULL without an error. A wrong shape is always an error that names the tensor and both shapes. */
enum { KN_REQUIRED = 0, KN_OPTIONAL = 1 };
kn_t kn_model_weight(kn_model *m, int flags, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Metadata: key as written in the file ("general.name"), or with a leading '.' relative to the architecture
 * (".rope.freq_base" reads "gemma3.rope.freq_base"); def when absent. */
int64_t kn_model_meta_int(const kn_model *m, const char *key, int64_t def);
double kn_model_meta_float(const kn_model *m, const char *key, double def);
const char *kn_model_meta_str(const kn_model *m, const char *key, const char *def);
/* A float32 tensor's values copied to the host (e.g. llama 3's rope_freqs.weight), n of them (malloc'd); NULL if
 * absent, and NULL with an error (kn_model_fail) if present with another type or size. */
float *kn_model_tensor_f32(kn_model *m, const char *name, int64_t n);

/* ---- for forward(): positions, the KV cache, the rows whose logits are returned ---- */
/* This step's rows of a per-position table [n_ctx, ...] (RoPE cos/sin): table[pos[t]] for each row t. */
kn_t kn_model_pos_rows(const kn_fwd *f, kn_t table);
/* Write k and v ([T, n_head_kv, head_dim]) into layer's cache at each row's cache row, then attend q
 * ([T, n_head, head_dim]) over every cached key of the row's own sequence up to its position (with window > 0:
 * the last `window`). Returns [T, n_head * head_dim]. Fused template kernel by default; graph primitives with
 * KILN_ATTENTION=0. */
kn_t kn_model_attention(kn_model *m, const kn_fwd *f, int layer, kn_t q, kn_t k, kn_t v, float scale, int window);
/* The rows of x [T, n_embd] whose logits the step returns: [n_out, n_embd] (apply before the final norm). */
kn_t kn_model_out_rows(const kn_fwd *f, kn_t x);

#endif
