/* Attention from graph primitives, with no KV cache of its own: the causal (optionally sliding-window) mask and
 * scaled dot-product attention with grouped query heads. Models with a cache write keys and values into it and pass
 * the cache here; the fused template kernel (kn_custom_attention) is the fast path for the same computation. */
#include <math.h>
#include <stdlib.h>

#include "ops.h"

kn_t kn_causal_mask(int64_t T, int64_t C, kn_t start, int window) {
  kn_t kpos = kn_reshape(kn_arange(C, KN_I32), 2, (int64_t[]){1, C});
  kn_t qpos = kn_reshape(kn_arange(T, KN_I32), 2, (int64_t[]){T, 1});
  if (start) qpos = kn_add(qpos, kn_cast(start, KN_I32));
  kn_t visible = kn_le(kpos, qpos); /* [T, C] */
  if (window > 0) visible = kn_and(visible, kn_gt(kpos, kn_adds(qpos, -window)));
  return visible;
}

kn_t kn_attention(kn_t q, kn_t k, kn_t v, kn_t mask, float scale) {
  if (!q || !k || !v) return NULL;
  if (kn_ndim(q) != 3 || kn_ndim(k) != 3 || kn_ndim(v) != 3 || kn_dim(k, 1) <= 0 || kn_dim(q, 1) % kn_dim(k, 1) ||
      kn_dim(k, 0) != kn_dim(v, 0) || kn_dim(k, 1) != kn_dim(v, 1) || kn_dim(q, 2) != kn_dim(k, 2)) {
    char a[96], b[96], c[96];
    kn_print_shape(q, a, sizeof a), kn_print_shape(k, b, sizeof b), kn_print_shape(v, c, sizeof c);
    return kn_fail("attention: q %s, k %s, v %s: need q [T, H, D], k [C, KV, D], v [C, KV, Dv] with H a multiple of KV",
                   a, b, c);
  }
  int64_t T = kn_dim(q, 0), H = kn_dim(q, 1), D = kn_dim(q, 2), C = kn_dim(k, 0), KV = kn_dim(k, 1), G = H / KV;
  /* heads grouped by the kv head they share: [KV, G, T, D] against keys [KV, 1, C, D] */
  kn_t qg = kn_permute(kn_reshape(q, 4, (int64_t[]){T, KV, G, D}), (int[]){1, 2, 0, 3});
  kn_t kk = kn_reshape(kn_permute(k, (int[]){1, 0, 2}), 4, (int64_t[]){KV, 1, C, kn_dim(k, 2)});
  kn_t vv = kn_reshape(kn_permute(v, (int[]){1, 0, 2}), 4, (int64_t[]){KV, 1, C, kn_dim(v, 2)});
  kn_t scores = kn_name(kn_muls(kn_matmul(qg, kn_transpose(kk, -1, -2)), scale), "attention_scores"); /* [KV, G, T, C] */
  if (mask) scores = kn_where(mask, scores, kn_scalar(KN_F32, -INFINITY));
  kn_t out = kn_matmul(kn_softmax(scores, -1), vv); /* [KV, G, T, Dv] */
  return kn_name(kn_reshape(kn_permute(out, (int[]){2, 0, 1, 3}), 3, (int64_t[]){T, H, kn_dim(v, 2)}), "attention");
}

int kn_rope_tables(int64_t n_pos, int dim, float base, float freq_scale, const float *factors, kn_t *cos_t,
                   kn_t *sin_t) {
  int64_t half = dim / 2;
  float *c = malloc((size_t)(n_pos * half) * sizeof *c), *s = malloc((size_t)(n_pos * half) * sizeof *s);
  if (!c || !s) return free(c), free(s), -1;
  /* angles as the reference computes them: theta_i = pos * base^(-2i/d) in float32 steps, then the per-frequency
   * divisor (llama 3) and the linear scale (Gemma 3 global layers) */
  float step = powf(base, -2.0f / (float)dim);
  for (int64_t p = 0; p < n_pos; p++) {
    float theta = (float)p;
    for (int64_t i = 0; i < half; i++) {
      float t = factors ? theta / factors[i] : theta;
      t *= freq_scale;
      c[p * half + i] = (float)cos((double)t), s[p * half + i] = (float)sin((double)t);
      theta *= step;
    }
  }
  *cos_t = kn_from_host(KN_F32, 2, (int64_t[]){n_pos, half}, c);
  *sin_t = kn_from_host(KN_F32, 2, (int64_t[]){n_pos, half}, s);
  free(c), free(s);
  return *cos_t && *sin_t ? 0 : -1;
}
