/* Host-side conversion between float32 and the GGUF formats: half-precision conversions, the 32-element block
 * formats (Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1) and Q8_K in both directions, and the conversion of whole arrays
 * through the dtype table's rows (the 256-element K-quants are in formats_k.c). The rounding follows the reference quantizer so files agree with llama.cpp's. */
#include <float.h>
#include <stdio.h>
#include <string.h>

#include "formats_impl.h"

/* ---- half precision ---- */

float kn_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 31, mant = h & 1023, bits;
  if (exp == 31) bits = sign | 0x7f800000u | mant << 13;
  else if (exp) bits = sign | (exp + 112) << 23 | mant << 13;
  else if (!mant) bits = sign;
  else { /* subnormal: shift the mantissa up until its leading bit is the implicit one */
    int e = 113;
    while (!(mant & 1024)) mant <<= 1, e--;
    bits = sign | (uint32_t)e << 23 | (mant & 1023) << 13;
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t kn_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 255, m = x & 0x7fffff;
  if (e == 255) return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
  int he = (int)e - 112; /* exponent in half's bias */
  if (he >= 31) return (uint16_t)(sign | 0x7c00);
  uint32_t full, shift;
  if (he > 0) full = (uint32_t)he << 23 | m, shift = 13;  /* normal: keep exponent and top 10 mantissa bits */
  else {
    if (he < -10) return (uint16_t)sign;                   /* below half the smallest subnormal */
    full = m | 0x800000, shift = (uint32_t)(14 - he);       /* subnormal: explicit leading one, shifted further */
  }
  uint32_t h = full >> shift, rem = full & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

float kn_bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

uint16_t kn_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* keep NaN a NaN */
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* ---- 32-element blocks ---- */

/* The element of largest magnitude, with its sign (symmetric formats map it to the most negative quant). */
static float signed_absmax(const float *x, int n) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; i++)
    if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
  return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
  *mn = FLT_MAX, *mx = -FLT_MAX;
  for (int i = 0; i < n; i++) {
    if (x[i] < *mn) *mn = x[i];
    if (x[i] > *mx) *mx = x[i];
  }
}

void kn_quant_q8_0(const float *x, uint8_t *y) {
  float amax = 0;
  for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
  float d = amax / 127, id = d ? 1 / d : 0;
  put_f16(y, d);
  for (int i = 0; i < 32; i++) y[2 + i] = (uint8_t)(int8_t)roundf(x[i] * id);
}

/* Q4_0 and Q5_0: scale = extreme / -(2^(bits-1)); quants truncate x/d + bias + 0.5. */
static void quant_sym(const float *x, uint8_t *y, int bits) {
  int bias = 1 << (bits - 1), qmax = (1 << bits) - 1;
  float d = signed_absmax(x, 32) / (float)-bias, id = d ? 1 / d : 0;
  put_f16(y, d);
  uint8_t *qs = y + (bits == 4 ? 2 : 6);
  uint32_t qh = 0;
  for (int j = 0; j < 16; j++) {
    int a = (int8_t)(x[j] * id + (float)bias + 0.5f), b = (int8_t)(x[j + 16] * id + (float)bias + 0.5f);
    a = a < qmax ? a : qmax, b = b < qmax ? b : qmax;
    qs[j] = (uint8_t)((a & 15) | (b & 15) << 4);
    qh |= (uint32_t)(a >> 4 & 1) << j | (uint32_t)(b >> 4 & 1) << (j + 16);
  }
  if (bits == 5) memcpy(y + 2, &qh, 4);
}

/* Q4_1 and Q5_1: value = q * d + min over the block's range. */
static void quant_affine(const float *x, uint8_t *y, int bits) {
  int qmax = (1 << bits) - 1;
  float mn, mx;
  min_max(x, 32, &mn, &mx);
  float d = (mx - mn) / (float)qmax, id = d ? 1 / d : 0;
  put_f16(y, d), put_f16(y + 2, mn);
  uint8_t *qs = y + (bits == 4 ? 4 : 8);
  uint32_t qh = 0;
  for (int j = 0; j < 16; j++) {
    int a = (int)((x[j] - mn) * id + 0.5f), b = (int)((x[j + 16] - mn) * id + 0.5f);
    a = q_clamp(a, 0, qmax), b = q_clamp(b, 0, qmax);
    qs[j] = (uint8_t)((a & 15) | (b & 15) << 4);
    qh |= (uint32_t)(a >> 4 & 1) << j | (uint32_t)(b >> 4 & 1) << (j + 16);
  }
  if (bits == 5) memcpy(y + 4, &qh, 4);
}

static void dequant_32(kn_dtype t, const uint8_t *b, float *y) {
  float d = get_f16(b);
  if (t == KN_Q8_0) {
    for (int i = 0; i < 32; i++) y[i] = (float)(int8_t)b[2 + i] * d;
    return;
  }
  bool affine = t == KN_Q4_1 || t == KN_Q5_1, five = t == KN_Q5_0 || t == KN_Q5_1;
  float m = affine ? get_f16(b + 2) : 0;
  const uint8_t *qh = b + (affine ? 4 : 2), *qs = b + 2 + (affine ? 2 : 0) + (five ? 4 : 0);
  uint32_t h = 0;
  if (five) memcpy(&h, qh, 4);
  int bias = affine ? 0 : five ? 16 : 8;
  for (int j = 0; j < 16; j++) {
    int a = (qs[j] & 15) | (int)((h >> j) & 1) << 4, c = (qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
    if (affine) y[j] = (float)a * d + m, y[j + 16] = (float)c * d + m;
    else y[j] = (float)(a - bias) * d, y[j + 16] = (float)(c - bias) * d;
  }
}

/* q8_1: q8_0's quants after d and s = d * sum(quants) */
void kn_quant_q8_1(const float *x, uint8_t *y) {
  float amax = 0;
  for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
  float d = amax / 127, id = d ? 1 / d : 0;
  int sum = 0;
  for (int i = 0; i < 32; i++) {
    int q = (int)roundf(x[i] * id);
    y[4 + i] = (uint8_t)(int8_t)q, sum += q;
  }
  put_f16(y, d), put_f16(y + 2, d * (float)sum);
}

/* q8_k: a float32 scale, 256 quants, then the sum of each 16 quants (int16) */
void kn_quant_q8_k(const float *x, uint8_t *y) {
  float amax = 0;
  for (int i = 0; i < 256; i++) amax = fmaxf(amax, fabsf(x[i]));
  float d = amax / 127, id = d ? 1 / d : 0;
  memcpy(y, &d, 4);
  for (int g = 0; g < 16; g++) {
    int16_t sum = 0;
    for (int i = g * 16; i < g * 16 + 16; i++) {
      int q = (int)roundf(x[i] * id);
      y[4 + i] = (uint8_t)(int8_t)q, sum = (int16_t)(sum + q);
    }
    memcpy(y + 260 + 2 * g, &sum, 2);
  }
}

void kn_dequant_q8_1(const uint8_t *b, float *y) {
  float d = get_f16(b);
  for (int i = 0; i < 32; i++) y[i] = (float)(int8_t)b[4 + i] * d;
}

void kn_dequant_q8_k(const uint8_t *b, float *y) {
  float d;
  memcpy(&d, b, 4);
  for (int i = 0; i < 256; i++) y[i] = d * (float)(int8_t)b[4 + i];
}

/* ---- the rows of the dtype table (dtype.c) ---- */

void kn_quant_q4_0(const float *x, uint8_t *y) { quant_sym(x, y, 4); }
void kn_quant_q5_0(const float *x, uint8_t *y) { quant_sym(x, y, 5); }
void kn_quant_q4_1(const float *x, uint8_t *y) { quant_affine(x, y, 4); }
void kn_quant_q5_1(const float *x, uint8_t *y) { quant_affine(x, y, 5); }
void kn_dequant_q4_0(const uint8_t *b, float *y) { dequant_32(KN_Q4_0, b, y); }
void kn_dequant_q4_1(const uint8_t *b, float *y) { dequant_32(KN_Q4_1, b, y); }
void kn_dequant_q5_0(const uint8_t *b, float *y) { dequant_32(KN_Q5_0, b, y); }
void kn_dequant_q5_1(const uint8_t *b, float *y) { dequant_32(KN_Q5_1, b, y); }
void kn_dequant_q8_0(const uint8_t *b, float *y) { dequant_32(KN_Q8_0, b, y); }

/* ---- whole arrays ---- */

static bool scalar_float(kn_dtype t) { return t == KN_F32 || t == KN_F16 || t == KN_BF16; }

bool kn_quantize_supported(kn_dtype t) { return scalar_float(t) || kn_dtype_get(t)->quantize; }
bool kn_dequantize_supported(kn_dtype t) { return scalar_float(t) || kn_dtype_get(t)->dequantize; }

int kn_quantize(kn_dtype t, const float *src, int64_t n, void *dst, char *err, size_t errlen) {
  if (!kn_quantize_supported(t)) return snprintf(err, errlen, "cannot quantize to %s", kn_dtype_name(t)), -1;
  const kn_dtype_info *d = kn_dtype_get(t);
  if (n < 0 || n % d->block_elems)
    return snprintf(err, errlen, "%lld elements are not whole %d-element blocks of %s", (long long)n,
                    d->block_elems, d->name), -1;
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(src[i])) return snprintf(err, errlen, "element %lld is %g", (long long)i, (double)src[i]), -1;
  uint8_t *y = dst;
  if (scalar_float(t)) {
    for (int64_t i = 0; i < n; i++) {
      if (t == KN_F32) memcpy(y + 4 * i, &src[i], 4);
      else {
        uint16_t h = t == KN_F16 ? kn_f32_to_f16(src[i]) : kn_f32_to_bf16(src[i]);
        y[2 * i] = (uint8_t)h, y[2 * i + 1] = (uint8_t)(h >> 8);
      }
    }
    return 0;
  }
  for (int64_t b = 0; b < n / d->block_elems; b++) d->quantize(src + b * d->block_elems, y + b * d->block_bytes);
  return 0;
}

int kn_dequantize(kn_dtype t, const void *src, int64_t n, float *dst) {
  if (!kn_dequantize_supported(t)) return -1;
  const kn_dtype_info *d = kn_dtype_get(t);
  if (n < 0 || n % d->block_elems) return -1;
  const uint8_t *p = src;
  if (scalar_float(t)) {
    for (int64_t i = 0; i < n; i++) {
      if (t == KN_F32) memcpy(&dst[i], p + 4 * i, 4);
      else {
        uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
        dst[i] = t == KN_F16 ? kn_f16_to_f32(h) : kn_bf16_to_f32(h);
      }
    }
    return 0;
  }
  for (int64_t b = 0; b < n / d->block_elems; b++) d->dequantize(p + b * d->block_bytes, dst + b * d->block_elems);
  return 0;
}
