/* ops/: neural-network building blocks made from graph primitives (softmax, rmsnorm, activations, rope,
 * attention, embedding lookup). Model code includes this header. */
#ifndef KN_OPS_H
#define KN_OPS_H

#include "../graph/graph.h"

kn_t kn_softmax(kn_t x, int axis);       /* numerically stable: exp(x - max) / sum */
kn_t kn_rmsnorm(kn_t x, kn_t w, float eps); /* over the last axis; w may be NULL */
kn_t kn_silu(kn_t x);
kn_t kn_gelu(kn_t x);                    /* tanh approximation */
/* x [T, H, D] rotated by the angles in cos/sin tables [T, D/2]; neox: rotate halves (Qwen) instead of pairs
 * (llama's interleaved "normal" mode). */
kn_t kn_rope(kn_t x, kn_t cos, kn_t sin, bool neox);
/* x [T, in] @ w^T where w is stored [out][in] (GGUF/HF layout, any dtype incl. block formats) -> [T, out] */
kn_t kn_linear(kn_t x, kn_t w, kn_t bias);

#endif
