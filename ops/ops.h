/* ops/: neural-network building blocks made from graph primitives (softmax, rmsnorm, activations, rope,
 * attention, argmax/top-k/cumsum, joins). Model code includes this header. */
#ifndef KN_OPS_H
#define KN_OPS_H

#include "../graph/graph.h"

kn_t kn_softmax(kn_t x, int axis);       /* numerically stable: exp(x - max) / sum */
kn_t kn_rmsnorm(kn_t x, kn_t w, float eps); /* over the last axis; w may be NULL */
kn_t kn_silu(kn_t x);
kn_t kn_gelu(kn_t x);                    /* tanh approximation (GPT-2's gelu_new, Gemma's GELU) */
kn_t kn_erf(kn_t x);                     /* the error function (|error| < 1.5e-7), elementwise */
kn_t kn_gelu_erf(kn_t x);                /* exact GELU: x/2 * (1 + erf(x / sqrt 2)) (BERT, PyTorch's default) */
/* LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * w + b; w and b may be NULL */
kn_t kn_layernorm(kn_t x, kn_t w, kn_t b, float eps);
kn_t kn_var_last(kn_t x);                /* population variance over the last axis (kept as size 1) */
kn_t kn_std_last(kn_t x);                /* its square root */
kn_t kn_log_softmax(kn_t x, int axis);   /* x - max - log(sum(exp(x - max))) */
kn_t kn_softcap(kn_t x, float cap);      /* cap * tanh(x / cap): Gemma 2's logit soft-capping */
/* x [T, H, D] rotated by the angles in cos/sin tables [T, D/2]; neox: rotate halves (Qwen) instead of pairs
 * (llama's interleaved "normal" mode). */
kn_t kn_rope(kn_t x, kn_t cos, kn_t sin, bool neox);
/* x [T, in] @ w^T where w is stored [out][in] (GGUF/HF layout, any dtype incl. block formats) -> [T, out] */
kn_t kn_linear(kn_t x, kn_t w, kn_t bias);

/* ---- joining and cutting (ops/shape.c) ---- */
kn_t kn_concat(const kn_t *parts, int n, int axis); /* parts equal on every other axis */
kn_t kn_stack(const kn_t *parts, int n, int axis);  /* along a new axis */
/* n views of x along axis with the given sizes (adding up to its length) into out[]; 0, or -1 (context error) */
int kn_split(kn_t x, int axis, const int64_t *sizes, int n, kn_t *out);

/* ---- positions along an axis (ops/select.c, ops/scan.c) ---- */
/* The index (int32) of the largest value along axis, the first one on ties; keepdim keeps the axis as size 1. */
kn_t kn_argmax(kn_t x, int axis, bool keepdim);
/* The k largest values of the last axis, largest first, into *values (float32) and their indices into *indices
 * (int32), both [..., k]; equal values in index order. 1 <= k <= min(n, 256): each pick is a pass over the axis.
 * 0, or -1 (context error). */
int kn_topk(kn_t x, int k, kn_t *values, kn_t *indices);
/* Running sum along axis (inclusive: out[i] = x[0] + ... + x[i]); bool counts as int32. n * n work for an axis of
 * n, in one kernel. */
kn_t kn_cumsum(kn_t x, int axis);

/* ---- attention (ops/attention.c) ---- */
/* bool [T, C]: query t, at absolute position start + t, sees key c when c <= start + t and, with window > 0, also
 * c > start + t - window (sliding-window layers). start: an integer 0-d tensor (kn_var_tensor) or NULL for 0. */
kn_t kn_causal_mask(int64_t T, int64_t C, kn_t start, int window);
/* Scaled dot-product attention without a KV cache: q [T, H, D], k [C, KV, D], v [C, KV, Dv] with H a multiple of KV
 * (grouped-query heads share kv head h / (H / KV)), mask bool [T, C] or NULL -> [T, H, Dv]. */
kn_t kn_attention(kn_t q, kn_t k, kn_t v, kn_t mask, float scale);
/* RoPE angle tables cos/sin [n_pos][dim/2] (float32, on the current context's device): angle(p, i) =
 * p * base^(-2i/dim) / factors[i] * freq_scale, with factors (llama 3's rope_freqs) NULL for 1 and freq_scale 1/f
 * for linear scaling by f. 0, or -1 when out of memory (or the context's error). */
int kn_rope_tables(int64_t n_pos, int dim, float base, float freq_scale, const float *factors, kn_t *cos, kn_t *sin);

#endif
