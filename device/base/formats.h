/* Converting float32 data to and from the GGUF storage formats on the host: quantizers that follow the reference
 * implementation's rounding rules (so files we write load anywhere and requantizing is stable) and block
 * dequantizers, each format's pair a row of the dtype table (dtype.h: quantize, dequantize). Used by `kiln quantize`,
 * by tools that write GGUF files, and by tests. Pure functions: callers may split work by rows (whole blocks)
 * across threads. */
#ifndef KN_FORMATS_H
#define KN_FORMATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

float kn_f16_to_f32(uint16_t h);
uint16_t kn_f32_to_f16(float f);    /* round to nearest even */
float kn_bf16_to_f32(uint16_t h);
uint16_t kn_f32_to_bf16(float f);   /* round to nearest even */

/* F32, F16, BF16 and every block format whose dtype table row has a quantizer (a dequantizer). */
bool kn_quantize_supported(kn_dtype t);
bool kn_dequantize_supported(kn_dtype t);

/* Quantize n floats (a whole number of blocks of t) into dst, which holds kn_dtype_nbytes(t, n) bytes. Returns 0,
 * or -1 with a message (unsupported type, n not whole blocks, a non-finite input naming its index). */
int kn_quantize(kn_dtype t, const float *src, int64_t n, void *dst, char *err, size_t errlen);

/* Dequantize n elements of t into dst. 0, or -1 (unsupported type, n not whole blocks). */
int kn_dequantize(kn_dtype t, const void *src, int64_t n, float *dst);

#endif
