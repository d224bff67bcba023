/* Private to the host format code: the block functions the dtype table's rows point at (formats.c: the 32-element
 * formats and Q8_K, formats_k.c: the K-quants) and the helpers they share. */
#ifndef KN_FORMATS_IMPL_H
#define KN_FORMATS_IMPL_H

#include <math.h>
#include <string.h>

#include "formats.h"

#define QK 256

/* Round to nearest, ties to even (the reference's rounding for scale searches): adding 1.5 * 2^23 leaves the
 * rounded integer in the low mantissa bits. Every caller clamps to a few levels, so larger inputs saturate. */
static inline int q_round(float x) {
  if (!(fabsf(x) < 4194303.0f)) return x > 0 ? 4194303 : -4194303;
  float v = x + 12582912.0f;
  int32_t i;
  memcpy(&i, &v, 4);
  return (i & 0x7fffff) - 0x400000;
}
static inline int q_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline void put_f16(uint8_t *p, float f) {
  uint16_t h = kn_f32_to_f16(f);
  p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}
static inline float get_f16(const uint8_t *p) { return kn_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* One block of floats into one block (32 or 256 elements). */
void kn_quant_q4_0(const float *x, uint8_t *y);
void kn_quant_q4_1(const float *x, uint8_t *y);
void kn_quant_q5_0(const float *x, uint8_t *y);
void kn_quant_q5_1(const float *x, uint8_t *y);
void kn_quant_q8_0(const float *x, uint8_t *y);
void kn_quant_q8_1(const float *x, uint8_t *y);
void kn_quant_q8_k(const float *x, uint8_t *y);
void kn_quant_q2_k(const float *x, uint8_t *y);
void kn_quant_q3_k(const float *x, uint8_t *y);
void kn_quant_q4_k(const float *x, uint8_t *y);
void kn_quant_q5_k(const float *x, uint8_t *y);
void kn_quant_q6_k(const float *x, uint8_t *y);

/* One block into its floats. */
void kn_dequant_q4_0(const uint8_t *b, float *y);
void kn_dequant_q4_1(const uint8_t *b, float *y);
void kn_dequant_q5_0(const uint8_t *b, float *y);
void kn_dequant_q5_1(const uint8_t *b, float *y);
void kn_dequant_q8_0(const uint8_t *b, float *y);
void kn_dequant_q8_1(const uint8_t *b, float *y);
void kn_dequant_q8_k(const uint8_t *b, float *y);
void kn_dequant_q2_k(const uint8_t *b, float *y);
void kn_dequant_q3_k(const uint8_t *b, float *y);
void kn_dequant_q4_k(const uint8_t *b, float *y);
void kn_dequant_q5_k(const uint8_t *b, float *y);
void kn_dequant_q6_k(const uint8_t *b, float *y);

#endif
