/* Plain-C reference attention (causal softmax over a KV cache, in double), the oracle for the fused attention
 * kernel: tests/test_attention.c, the aarch64 test (tests/aarch64/gen.c) and bench/attention.c. Tests only. */
#ifndef KN_REF_ATTENTION_H
#define KN_REF_ATTENTION_H

/* out[t][h][d] = sum_j softmax_j(q.k_j * scale) v_j over keys j <= pos + t (and j > pos + t - window when
 * window > 0), KV head h / (H / KV); q and out [T][H][D], k and v [keys][KV][D] (an f16 cache widened first) */
void kn_ref_attention(const float *q, const float *k, const float *v, float *out, int T, int H, int KV, int D, int pos,
                      float scale, int window);

#endif
