/* Converting float32 data to and from the GGUF storage formats on the host: quantizers that follow the reference
 * implementation's rounding rules (so files we write load anywhere and requantizing is stable) and block
 * dequantizers. Used by `kiln quantize`, by tools that write GGUF files, and by tests. Pure functions: callers may
 * split work by rows (whole blocks) across threads. */
#ifndef KN_QUANTIZE_H
#define KN_QUANTIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../device/base/dtype.h"

float kn_f16_to_f32(uint16_t h);
uint16_t kn_f32_to_f16(float f);    /* round to nearest even */
float kn_bf16_to_f32(uint16_t h);
uint16_t kn_f32_to_bf16(float f);   /* round to nearest even */

/* Targets: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. */
bool kn_quantize_supported(kn_dtype t);
/* Sources: the same list. */
bool kn_dequantize_supported(kn_dtype t);

/* Quantize n floats (a whole number of blocks of t) into dst, which holds kn_dtype_nbytes(t, n) bytes. Returns 0,
 * or -1 with a message (unsupported type, n not whole blocks, a non-finite input naming its index). */
int kn_quantize(kn_dtype t, const float *src, int64_t n, void *dst, char *err, size_t errlen);

/* Dequantize n elements of t into dst. 0, or -1 (unsupported type, n not whole blocks). */
int kn_dequantize(kn_dtype t, const void *src, int64_t n, float *dst);

#endif
