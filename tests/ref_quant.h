/* Plain-C reference dequantizers for the GGUF storage formats, written element by element from each format's
 * definition (which byte and bits hold element e, which scale applies to it), as the oracle for kiln's kernels.
 * Float operations follow the reference implementation's order (scale products first, then the quant), so results
 * match it bit for bit. Also: random but sane blocks of any format, and f16/bf16 conversions. Tests only. */
#ifndef KN_REF_QUANT_H
#define KN_REF_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "device/base/dtype.h"

/* F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K. */
bool kn_ref_supported(kn_dtype t);

/* Dequantize n elements (a whole number of blocks) stored in format t into out. 0, or -1 when t is not supported
 * or n is not a whole number of blocks. */
int kn_ref_dequant(kn_dtype t, const void *blocks, int64_t n, float *out);

/* Element i alone (same value as kn_ref_dequant gives at i). */
float kn_ref_dequant_one(kn_dtype t, const void *blocks, int64_t i);

/* Fill n elements' worth of blocks of format t with random quants and finite f16 scales of reasonable magnitude
 * (block values land roughly in [-4, 4]); scalar formats get random values of that range. *state is an RNG state
 * (any value; advanced). Returns 0, or -1 like kn_ref_dequant. */
int kn_ref_fill_random(kn_dtype t, void *blocks, int64_t n, uint64_t *state);

/* The RNG behind fill_random: 64 random bits, a uniform float in [0, 1), a standard normal. */
uint64_t kn_ref_rand(uint64_t *state);
float kn_ref_uniform(uint64_t *state);
float kn_ref_normal(uint64_t *state);

/* The integer-dot mode's reference for one output: row n of W (format t, K elements a row, whole blocks) dotted with
 * the activations x * g (g NULL: x alone), each block of activations quantized to int8 with one scale amax / 127
 * (round to nearest even) as the integer-dot kernels do; exact: the activations as they are (the exact decode).
 * *mag (may be NULL) gets the sum of the terms' magnitudes, the scale of a tolerance. */
double kn_ref_qdot_row(kn_dtype t, const void *w, int64_t n, int64_t K, const float *x, const float *g, bool exact,
                       double *mag);

float kn_ref_f16_to_f32(uint16_t h);
uint16_t kn_ref_f32_to_f16(float f);   /* round to nearest even; overflow to inf */
float kn_ref_bf16_to_f32(uint16_t h);
uint16_t kn_ref_f32_to_bf16(float f);  /* round to nearest even; NaN stays NaN */

#endif
