/* Reference dequantizers: for each format, where element e of a block lives (byte, bits) and which scale and
 * minimum apply to it, spelled out one element at a time so that a reader can check each line against the format's
 * definition. Slow on purpose; this is the oracle, not a kernel. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref_quant.h"

/* ---- f16 / bf16 ---- */

float kn_ref_f16_to_f32(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
  float v;
  if (exp == 31) v = mant ? NAN : INFINITY;
  else if (exp == 0) v = ldexpf((float)mant, -24);            /* subnormal: mant * 2^-24 */
  else v = ldexpf((float)(1024 + mant), exp - 25);            /* (1 + mant/1024) * 2^(exp-15) */
  return sign ? -v : v;
}

uint16_t kn_ref_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00;                 /* NaN */
  if (ax >= 0x477ff000u) return sign | 0x7c00;                /* >= 65520 rounds to inf */
  if (ax < 0x38800000u) {                                     /* below 2^-14: subnormal half */
    float a;
    memcpy(&a, &ax, 4);
    return sign | (uint16_t)nearbyintf(a * 16777216.0f);      /* ties to even; 1024 is the smallest normal */
  }
  uint32_t mant = ax & 0x7fffff, h = ((((ax >> 23) - 127 + 15)) << 10) | (mant >> 13), rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;        /* a carry moves into the exponent, as it should */
  return sign | (uint16_t)h;
}

float kn_ref_bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

uint16_t kn_ref_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

static float f16_at(const uint8_t *p) { return kn_ref_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* ---- 32-element blocks ---- */

/* Q4_0 / Q4_1: 16 bytes of nibbles; element e < 16 is the low nibble of byte e, e >= 16 the high nibble of e-16. */
static int nibble32(const uint8_t *qs, int e) { return e < 16 ? qs[e] & 15 : qs[e - 16] >> 4; }

/* Q5_0 / Q5_1: the nibble as above plus bit e of a little-endian u32 as the fifth bit. */
static int five32(const uint8_t *qh, const uint8_t *qs, int e) {
  int hb = (qh[e / 8] >> (e % 8)) & 1;
  return nibble32(qs, e) | hb << 4;
}

static float q4_0(const uint8_t *b, int e) { return (float)(nibble32(b + 2, e) - 8) * f16_at(b); }
static float q4_1(const uint8_t *b, int e) { return (float)nibble32(b + 4, e) * f16_at(b) + f16_at(b + 2); }
static float q5_0(const uint8_t *b, int e) { return (float)(five32(b + 2, b + 6, e) - 16) * f16_at(b); }
static float q5_1(const uint8_t *b, int e) { return (float)five32(b + 4, b + 8, e) * f16_at(b) + f16_at(b + 2); }
static float q8_0(const uint8_t *b, int e) { return (float)(int8_t)b[2 + e] * f16_at(b); }
/* q8_1: d, then s = d * sum(quants) (for dot products; not needed for the value), then 32 quants */
static float q8_1(const uint8_t *b, int e) { return (float)(int8_t)b[4 + e] * f16_at(b); }
/* q8_k: a float32 d, 256 quants, then 16 int16 sums of 16 quants each (for dot products) */
static float q8_k(const uint8_t *b, int e) {
  float d;
  memcpy(&d, b, 4);
  return d * (float)(int8_t)b[4 + e];
}

/* ---- 256-element super-blocks ---- */

/* Q2_K: scales[16] @0, qs[64] @16, d @80, dmin @82. The 256 elements are two halves of 128; within a half, element
 * r takes bits 2*(r/32) of byte r%32 of that half's 32 bytes. Sub-block e/16 has a 4-bit scale (low nibble) and a
 * 4-bit min (high nibble). */
static float q2_k(const uint8_t *b, int e) {
  int h = e / 128, r = e % 128, q = (b[16 + h * 32 + r % 32] >> (2 * (r / 32))) & 3, sc = b[e / 16];
  float dl = f16_at(b + 80) * (float)(sc & 15), ml = f16_at(b + 82) * (float)(sc >> 4);
  return dl * (float)q - ml;
}

/* Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108. Low two bits as in Q2_K; the third bit of element e is
 * bit e/32 of hmask[e%32], and when it is CLEAR the value is lowered by 4 (range -4..3). Sub-block s = e/16 has a
 * 6-bit scale biased by 32: low 4 bits in nibble s/8 of byte s%8, high 2 bits at bit 2*(s/4) of byte 8 + s%4. */
static float q3_k(const uint8_t *b, int e) {
  int h = e / 128, r = e % 128, lo = (b[32 + h * 32 + r % 32] >> (2 * (r / 32))) & 3;
  int hb = (b[e % 32] >> (e / 32)) & 1, q = lo - (hb ? 0 : 4);
  int s = e / 16, low4 = s < 8 ? b[96 + s] & 15 : b[96 + s - 8] >> 4, hi2 = (b[96 + 8 + s % 4] >> (2 * (s / 4))) & 3;
  float dl = f16_at(b + 108) * (float)((low4 | hi2 << 4) - 32);
  return dl * (float)q;
}

/* K-quants with 8 sub-blocks of 32 (Q4_K, Q5_K): 12 bytes hold eight 6-bit scales and eight 6-bit mins. For s < 4
 * scale and min are the low 6 bits of bytes s and s+4; for s >= 4 the low 4 bits come from byte s+4 (scale: low
 * nibble, min: high nibble) and the top 2 bits from bits 6..7 of bytes s-4 (scale) and s (min). */
static void scale_min_k4(const uint8_t *q, int s, int *sc, int *m) {
  if (s < 4) {
    *sc = q[s] & 63, *m = q[s + 4] & 63;
  } else {
    *sc = (q[s + 4] & 15) | (q[s - 4] >> 6) << 4;
    *m = (q[s + 4] >> 4) | (q[s] >> 6) << 4;
  }
}

/* Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16. Element e sits in 64-element chunk e/64: the low nibbles of the
 * chunk's 32 bytes are its first 32 elements, the high nibbles the next 32. */
static float q4_k(const uint8_t *b, int e) {
  int c = e / 64, r = e % 64, byte = b[16 + c * 32 + r % 32], q = r < 32 ? byte & 15 : byte >> 4, sc, m;
  scale_min_k4(b + 4, e / 32, &sc, &m);
  float d1 = f16_at(b) * (float)sc, m1 = f16_at(b + 2) * (float)m;
  return d1 * (float)q - m1;
}

/* Q5_K: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48. Nibbles as in Q4_K; the fifth bit of element e is
 * bit e/32 of qh[e%32]. */
static float q5_k(const uint8_t *b, int e) {
  int c = e / 64, r = e % 64, byte = b[48 + c * 32 + r % 32], q = r < 32 ? byte & 15 : byte >> 4, sc, m;
  q += ((b[16 + e % 32] >> (e / 32)) & 1) * 16;
  scale_min_k4(b + 4, e / 32, &sc, &m);
  float d1 = f16_at(b) * (float)sc, m1 = f16_at(b + 2) * (float)m;
  return d1 * (float)q - m1;
}

/* Q6_K: ql[128] @0, qh[64] @128, scales int8[16] @192, d @208. In half h (128 elements), group g = r/32 and
 * lane l = r%32: the low 4 bits are the low (g = 0, 1) or high (g = 2, 3) nibble of ql[h*64 + (g&1)*32 + l], the
 * top 2 bits are bits 2g..2g+1 of qh[h*32 + l]; the 6-bit value is biased by 32. Sub-block e/16 has an int8 scale. */
static float q6_k(const uint8_t *b, int e) {
  int h = e / 128, r = e % 128, g = r / 32, l = r % 32;
  int byte = b[h * 64 + (g & 1) * 32 + l], lo = g < 2 ? byte & 15 : byte >> 4;
  int hi = (b[128 + h * 32 + l] >> (2 * g)) & 3, q = (lo | hi << 4) - 32;
  return f16_at(b + 208) * (float)(int8_t)b[192 + e / 16] * (float)q;
}

/* ---- dispatch ---- */

typedef float (*elem_fn)(const uint8_t *block, int e);

static elem_fn elem_of(kn_dtype t) {
  switch (t) {
  case KN_Q4_0: return q4_0;
  case KN_Q4_1: return q4_1;
  case KN_Q5_0: return q5_0;
  case KN_Q5_1: return q5_1;
  case KN_Q8_0: return q8_0;
  case KN_Q8_1: return q8_1;
  case KN_Q2_K: return q2_k;
  case KN_Q3_K: return q3_k;
  case KN_Q4_K: return q4_k;
  case KN_Q5_K: return q5_k;
  case KN_Q6_K: return q6_k;
  case KN_Q8_K: return q8_k;
  default: return NULL;
  }
}

bool kn_ref_supported(kn_dtype t) { return t == KN_F32 || t == KN_F16 || t == KN_BF16 || elem_of(t); }

float kn_ref_dequant_one(kn_dtype t, const void *blocks, int64_t i) {
  const uint8_t *p = blocks;
  if (t == KN_F32) {
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
  }
  if (t == KN_F16) return f16_at(p + 2 * i);
  if (t == KN_BF16) return kn_ref_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
  elem_fn fn = elem_of(t);
  if (!fn) return NAN;
  const kn_dtype_info *d = kn_dtype_get(t);
  return fn(p + (i / d->block_elems) * d->block_bytes, (int)(i % d->block_elems));
}

int kn_ref_dequant(kn_dtype t, const void *blocks, int64_t n, float *out) {
  if (!kn_ref_supported(t) || n < 0 || n % kn_dtype_get(t)->block_elems) return -1;
  for (int64_t i = 0; i < n; i++) out[i] = kn_ref_dequant_one(t, blocks, i);
  return 0;
}

/* ---- random blocks ---- */

uint64_t kn_ref_rand(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

float kn_ref_uniform(uint64_t *s) { return (float)(kn_ref_rand(s) >> 40) * (1.0f / 16777216.0f); }

float kn_ref_normal(uint64_t *s) {
  float u = kn_ref_uniform(s), v = kn_ref_uniform(s);
  return sqrtf(-2.0f * logf(1.0f - u)) * cosf(6.2831853f * v);
}

/* An f16 scale with magnitude log-uniform in [lo, hi], negative half the time when sign is set. */
static void put_scale(uint8_t *p, uint64_t *s, float lo, float hi, bool sign) {
  float v = lo * expf(kn_ref_uniform(s) * logf(hi / lo));
  if (sign && (kn_ref_rand(s) & 1)) v = -v;
  uint16_t h = kn_ref_f32_to_f16(v);
  p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

/* Scale fields of one block (offsets and ranges chosen so values land roughly within [-4, 4]). */
static void block_scales(kn_dtype t, uint8_t *b, uint64_t *s) {
  switch (t) {
  case KN_Q4_0: put_scale(b, s, 0.05f, 0.5f, true); break;
  case KN_Q4_1: put_scale(b, s, 0.05f, 0.25f, false), put_scale(b + 2, s, 0.01f, 2.0f, true); break;
  case KN_Q5_0: put_scale(b, s, 0.02f, 0.25f, true); break;
  case KN_Q5_1: put_scale(b, s, 0.02f, 0.12f, false), put_scale(b + 2, s, 0.01f, 2.0f, true); break;
  case KN_Q8_0: put_scale(b, s, 0.005f, 0.03f, true); break;
  case KN_Q2_K: put_scale(b + 80, s, 0.005f, 0.08f, false), put_scale(b + 82, s, 0.005f, 0.08f, false); break;
  case KN_Q3_K: put_scale(b + 108, s, 0.002f, 0.03f, true); break;
  case KN_Q4_K: case KN_Q5_K:
    put_scale(b, s, 0.0003f, 0.004f, false), put_scale(b + 2, s, 0.0003f, 0.004f, false);
    break;
  case KN_Q6_K: put_scale(b + 208, s, 0.0001f, 0.001f, true); break;
  case KN_Q8_1: put_scale(b, s, 0.005f, 0.03f, true), put_scale(b + 2, s, 0.01f, 1.0f, true); break;
  case KN_Q8_K: {
    float d = 0.005f + 0.025f * kn_ref_uniform(s);
    memcpy(b, &d, 4);
    break;
  }
  default: break;
  }
}

int kn_ref_fill_random(kn_dtype t, void *blocks, int64_t n, uint64_t *state) {
  if (!kn_ref_supported(t) || n < 0 || n % kn_dtype_get(t)->block_elems) return -1;
  uint8_t *p = blocks;
  if (!kn_dtype_is_quant(t)) {
    for (int64_t i = 0; i < n; i++) {
      float v = 1.5f * kn_ref_normal(state);
      if (t == KN_F32) memcpy(p + 4 * i, &v, 4);
      else {
        uint16_t h = t == KN_F16 ? kn_ref_f32_to_f16(v) : kn_ref_f32_to_bf16(v);
        p[2 * i] = (uint8_t)h, p[2 * i + 1] = (uint8_t)(h >> 8);
      }
    }
    return 0;
  }
  const kn_dtype_info *d = kn_dtype_get(t);
  int64_t nb = n / d->block_elems;
  for (int64_t i = 0; i < nb; i++) {
    uint8_t *b = p + i * d->block_bytes;
    for (int k = 0; k < d->block_bytes; k++) b[k] = (uint8_t)kn_ref_rand(state);
    block_scales(t, b, state);
  }
  return 0;
}

double kn_ref_qdot_row(kn_dtype t, const void *w, int64_t n, int64_t K, const float *x, const float *g, bool exact,
                       double *mag) {
  int64_t QK = kn_dtype_get(t)->block_elems;
  float *row = malloc((size_t)K * sizeof *row), *xb = malloc((size_t)QK * sizeof *xb);
  double want = 0, m = 0;
  if (row && xb && !kn_ref_dequant(t, (const char *)w + kn_dtype_nbytes(t, n * K), K, row))
    for (int64_t b0 = 0; b0 < K; b0 += QK) {
      float amax = 0;
      for (int64_t i = 0; i < QK; i++) {
        xb[i] = g ? x[b0 + i] * g[b0 + i] : x[b0 + i];
        amax = fmaxf(amax, fabsf(xb[i]));
      }
      float dx = exact ? 1 : amax / 127.0f, id = 127.0f / fmaxf(amax, FLT_MIN);
      double s = 0, sa = 0;
      for (int64_t i = 0; i < QK; i++) {
        float xq = exact ? xb[i] : nearbyintf(xb[i] * id);
        s += (double)row[b0 + i] * xq, sa += fabs((double)row[b0 + i] * xq);
      }
      want += dx * s, m += dx * sa;
    }
  else want = NAN; /* out of memory or a format the reference lacks: no comparison passes */
  free(row), free(xb);
  if (mag) *mag = m;
  return want;
}
