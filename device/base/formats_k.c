/* The K-quants (256-element super-blocks of 16 or 32-element sub-blocks): each sub-block gets a scale (and for
 * Q2_K/Q4_K/Q5_K a minimum) found by a small search that minimizes weighted squared (or absolute) error, the
 * sub-block scales are themselves quantized against one f16 super-scale, and then every element is re-quantized
 * with the scales as stored, so rounding in the stored scales never leaves an element on a worse level. */
#include <string.h>

#include "formats_impl.h"

#define ALL_ZERO 1e-15f

/* ---- scale searches ---- */

/* Symmetric levels -nmax..nmax-1 for n values: start from the level grid that maps the extreme element to -nmax,
 * then try 18 nearby grids and keep the least-squares scale with the best weighted fit (weights x^2). L gets
 * level + nmax. Returns the scale. */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++)
    if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
  if (amax < ALL_ZERO) {
    memset(L, 0, (size_t)n);
    return 0;
  }
  float best_scale, best;
  /* first pass: the extreme element on -nmax */
  float iscale = -(float)nmax / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = q_clamp(q_round(iscale * x[i]), -nmax, nmax - 1);
    L[i] = (int8_t)(l + nmax);
    float w = x[i] * x[i];
    sumlx += w * x[i] * (float)l, suml2 += w * (float)l * (float)l;
  }
  best_scale = suml2 ? sumlx / suml2 : 0;
  best = best_scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (!is) continue;
    iscale = -((float)nmax + 0.1f * (float)is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      int l = q_clamp(q_round(iscale * x[i]), -nmax, nmax - 1);
      float w = x[i] * x[i];
      sumlx += w * x[i] * (float)l, suml2 += w * (float)l * (float)l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + q_clamp(q_round(iscale * x[i]), -nmax, nmax - 1));
      best_scale = sumlx / suml2;
      best = best_scale * sumlx;
    }
  }
  return best_scale;
}

/* Q3_K's variant: levels -nmax..nmax-1 from the extreme element, then up to 5 rounds of moving single elements to
 * the level that improves the weighted least-squares fit. L gets level + nmax. */
static float fit_q3(int n, int nmax, const float *x, int8_t *L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++)
    if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
  if (amax < ALL_ZERO) {
    memset(L, 0, (size_t)n);
    return 0;
  }
  float iscale = -(float)nmax / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    L[i] = (int8_t)q_clamp(q_round(iscale * x[i]), -nmax, nmax - 1);
    float w = x[i] * x[i];
    sumlx += w * x[i] * (float)L[i], suml2 += w * (float)L[i] * (float)L[i];
  }
  for (int round = 0; round < 5; round++) {
    int changed = 0;
    for (int i = 0; i < n; i++) {
      float w = x[i] * x[i], slx = sumlx - w * x[i] * (float)L[i];
      if (slx <= 0) continue;
      float sl2 = suml2 - w * (float)L[i] * (float)L[i];
      int nl = q_clamp(q_round(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (nl == L[i]) continue;
      slx += w * x[i] * (float)nl, sl2 += w * (float)nl * (float)nl;
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) L[i] = (int8_t)nl, sumlx = slx, suml2 = sl2, changed++;
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
  return suml2 > 0 ? sumlx / suml2 : 0;
}

/* Levels 0..nmax with value = scale * l - min (min >= 0 is returned in *the_min): start from the block's range,
 * then try nstep+1 grids, solving the weighted least-squares (scale, min) for each, keeping the best by weighted
 * squared error (or absolute error when use_mad). */
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, float rmin,
                        float rdelta, int nstep, bool use_mad) {
  float mn = x[0], mx = x[0], sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
    sum_w += w[i], sum_x += w[i] * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx == mn) {
    memset(L, 0, (size_t)n);
    *the_min = -mn;
    return 0;
  }
  float iscale = (float)nmax / (mx - mn), scale = 1 / iscale, best = 0;
  for (int i = 0; i < n; i++) {
    L[i] = (uint8_t)q_clamp(q_round(iscale * (x[i] - mn)), 0, nmax);
    float diff = scale * (float)L[i] + mn - x[i];
    best += w[i] * (use_mad ? fabsf(diff) : diff * diff);
  }
  uint8_t Laux[32];
  for (int is = 0; is <= nstep; is++) {
    iscale = (rmin + rdelta * (float)is + (float)nmax) / (mx - mn);
    float sl = 0, sl2 = 0, sxl = 0;
    for (int i = 0; i < n; i++) {
      int l = q_clamp(q_round(iscale * (x[i] - mn)), 0, nmax);
      Laux[i] = (uint8_t)l;
      sl += w[i] * (float)l, sl2 += w[i] * (float)l * (float)l, sxl += w[i] * (float)l * x[i];
    }
    float D = sum_w * sl2 - sl * sl;
    if (D <= 0) continue;
    float this_scale = (sum_w * sxl - sum_x * sl) / D, this_min = (sl2 * sum_x - sl * sxl) / D;
    if (this_min > 0) this_min = 0, this_scale = sxl / sl2;
    float e = 0;
    for (int i = 0; i < n; i++) {
      float diff = this_scale * (float)Laux[i] + this_min - x[i];
      e += w[i] * (use_mad ? fabsf(diff) : diff * diff);
    }
    if (e < best) memcpy(L, Laux, (size_t)n), best = e, scale = this_scale, mn = this_min;
  }
  *the_min = -mn;
  return scale;
}

/* ---- packing ---- */

/* 2-bit levels of 256 elements into 64 bytes: element 128h + 32g + l at bits 2g of byte 32h + l. */
static void pack2(const uint8_t *L, uint8_t *qs) {
  for (int h = 0; h < 2; h++)
    for (int l = 0; l < 32; l++) {
      const uint8_t *p = L + 128 * h + l;
      qs[32 * h + l] = (uint8_t)(p[0] | p[32] << 2 | p[64] << 4 | p[96] << 6);
    }
}

/* Eight 6-bit scales and mins into 12 bytes (see the reference dequantizer for the layout). */
static void pack_scale_min(uint8_t *q, const uint8_t *ls, const uint8_t *lm) {
  memset(q, 0, 12);
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      q[j] = ls[j], q[j + 4] = lm[j];
    } else {
      q[j + 4] = (uint8_t)((ls[j] & 15) | (lm[j] & 15) << 4);
      q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
      q[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
  }
}

static void scale_min(const uint8_t *q, int j, int *sc, int *m) {
  if (j < 4) *sc = q[j] & 63, *m = q[j + 4] & 63;
  else *sc = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4, *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
}

/* ---- Q2_K: scales[16] @0, qs[64] @16, d @80, dmin @82 ---- */

void kn_quant_q2_k(const float *x, uint8_t *y) {
  uint8_t L[QK];
  float scales[16], mins[16], w[16], max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; j++) {
    for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
    scales[j] = fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  memset(y, 0, 84);
  if (max_scale > 0) {
    for (int j = 0; j < 16; j++) y[j] = (uint8_t)q_round(15 / max_scale * scales[j]);
    put_f16(y + 80, max_scale / 15);
  }
  if (max_min > 0) {
    for (int j = 0; j < 16; j++) y[j] |= (uint8_t)(q_round(15 / max_min * mins[j]) << 4);
    put_f16(y + 82, max_min / 15);
  }
  for (int j = 0; j < 16; j++) {
    float d = get_f16(y + 80) * (float)(y[j] & 15);
    if (!d) continue;
    float dm = get_f16(y + 82) * (float)(y[j] >> 4);
    for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)q_clamp(q_round((x[16 * j + i] + dm) / d), 0, 3);
  }
  pack2(L, y + 16);
}

void kn_dequant_q2_k(const uint8_t *b, float *y) {
  float d = get_f16(b + 80), dmin = get_f16(b + 82);
  for (int h = 0; h < 2; h++)
    for (int g = 0; g < 4; g++)
      for (int l = 0; l < 32; l++) {
        int e = 128 * h + 32 * g + l, sc = b[e / 16], q = (b[16 + 32 * h + l] >> (2 * g)) & 3;
        float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
        y[e] = dl * (float)q - ml;
      }
}

/* ---- Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108 ---- */

static int q3_scale(const uint8_t *s, int j) {
  int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
  return (lo | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}

void kn_quant_q3_k(const float *x, uint8_t *y) {
  int8_t L[QK];
  float scales[16], max_scale = 0, amax = 0;
  for (int j = 0; j < 16; j++) {
    scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
    if (fabsf(scales[j]) > amax) amax = fabsf(scales[j]), max_scale = scales[j];
  }
  memset(y, 0, 110);
  uint8_t *s = y + 96;
  if (max_scale) {
    float iscale = -32 / max_scale;
    for (int j = 0; j < 16; j++) {
      int l = q_clamp(q_round(iscale * scales[j]), -32, 31) + 32;
      if (j < 8) s[j] = (uint8_t)(l & 15);
      else s[j - 8] |= (uint8_t)((l & 15) << 4);
      s[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
    put_f16(y + 108, 1 / iscale);
  }
  for (int j = 0; j < 16; j++) {
    float d = get_f16(y + 108) * (float)q3_scale(s, j);
    if (!d) continue;
    for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(q_clamp(q_round(x[16 * j + i] / d), -4, 3) + 4);
  }
  uint8_t low[QK];
  for (int e = 0; e < QK; e++) {
    int l = L[e];
    if (l > 3) y[e % 32] |= (uint8_t)(1 << (e / 32)), l -= 4;
    low[e] = (uint8_t)l;
  }
  pack2(low, y + 32);
}

void kn_dequant_q3_k(const uint8_t *b, float *y) {
  float d = get_f16(b + 108);
  for (int e = 0; e < QK; e++) {
    int h = e / 128, g = (e % 128) / 32, l = e % 32;
    int q = ((b[32 + 32 * h + l] >> (2 * g)) & 3) - ((b[l] >> (e / 32)) & 1 ? 0 : 4);
    float dl = d * (float)q3_scale(b + 96, e / 16);
    y[e] = dl * (float)q;
  }
}

/* ---- Q4_K / Q5_K: d @0, dmin @2, scales[12] @4, then (Q5_K) qh[32] @16, qs[128] ---- */

static void quant_k_affine(const float *x, uint8_t *y, int nmax, float rmin, float rdelta, int nstep, uint8_t *L) {
  float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; j++) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
    float av_x = sqrtf(sum_x2 / 32);
    for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
    scales[j] = fit_affine(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], rmin, rdelta, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  float inv_scale = max_scale > 0 ? 63 / max_scale : 0, inv_min = max_min > 0 ? 63 / max_min : 0;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; j++) {
    ls[j] = (uint8_t)q_clamp(q_round(inv_scale * scales[j]), 0, 63);
    lm[j] = (uint8_t)q_clamp(q_round(inv_min * mins[j]), 0, 63);
  }
  pack_scale_min(y + 4, ls, lm);
  put_f16(y, max_scale / 63), put_f16(y + 2, max_min / 63);
  for (int j = 0; j < 8; j++) {
    int sc, m;
    scale_min(y + 4, j, &sc, &m);
    float d = get_f16(y) * (float)sc;
    if (!d) continue;
    float dm = get_f16(y + 2) * (float)m;
    for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)q_clamp(q_round((x[32 * j + i] + dm) / d), 0, nmax);
  }
}

void kn_quant_q4_k(const float *x, uint8_t *y) {
  uint8_t L[QK];
  quant_k_affine(x, y, 15, -1.0f, 0.1f, 20, L);
  for (int c = 0; c < 4; c++)
    for (int l = 0; l < 32; l++) y[16 + 32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
}

void kn_quant_q5_k(const float *x, uint8_t *y) {
  uint8_t L[QK];
  quant_k_affine(x, y, 31, -0.5f, 0.1f, 15, L);
  memset(y + 16, 0, 32);
  for (int e = 0; e < QK; e++)
    if (L[e] > 15) y[16 + e % 32] |= (uint8_t)(1 << (e / 32));
  for (int c = 0; c < 4; c++)
    for (int l = 0; l < 32; l++)
      y[48 + 32 * c + l] = (uint8_t)((L[64 * c + l] & 15) | (L[64 * c + 32 + l] & 15) << 4);
}

static void dequant_k_affine(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y) {
  float d = get_f16(b), dmin = get_f16(b + 2);
  for (int j = 0; j < 8; j++) {
    int sc, m;
    scale_min(b + 4, j, &sc, &m);
    float d1 = d * (float)sc, m1 = dmin * (float)m;
    for (int l = 0; l < 32; l++) {
      int byte = qs[32 * (j / 2) + l], q = j % 2 ? byte >> 4 : byte & 15;
      if (qh) q += ((qh[l] >> j) & 1) << 4;
      y[32 * j + l] = d1 * (float)q - m1;
    }
  }
}

void kn_dequant_q4_k(const uint8_t *b, float *y) { dequant_k_affine(b, NULL, b + 16, y); }
void kn_dequant_q5_k(const uint8_t *b, float *y) { dequant_k_affine(b, b + 16, b + 48, y); }

/* ---- Q6_K: ql[128] @0, qh[64] @128, scales int8[16] @192, d @208 ---- */

void kn_quant_q6_k(const float *x, uint8_t *y) {
  int8_t L[QK];
  float scales[16], max_scale = 0, amax = 0;
  for (int j = 0; j < 16; j++) {
    scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
    if (fabsf(scales[j]) > amax) amax = fabsf(scales[j]), max_scale = scales[j];
  }
  memset(y, 0, 210);
  if (amax < ALL_ZERO) return;
  float iscale = -128 / max_scale;
  put_f16(y + 208, 1 / iscale);
  for (int j = 0; j < 16; j++) {
    int l = q_round(iscale * scales[j]);
    y[192 + j] = (uint8_t)(int8_t)(l < 127 ? l : 127);
  }
  for (int j = 0; j < 16; j++) {
    float d = get_f16(y + 208) * (float)(int8_t)y[192 + j];
    if (!d) continue;
    for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(q_clamp(q_round(x[16 * j + i] / d), -32, 31) + 32);
  }
  for (int h = 0; h < 2; h++)
    for (int l = 0; l < 32; l++) {
      const int8_t *p = L + 128 * h + l;
      y[64 * h + l] = (uint8_t)((p[0] & 15) | (p[64] & 15) << 4);
      y[64 * h + 32 + l] = (uint8_t)((p[32] & 15) | (p[96] & 15) << 4);
      y[128 + 32 * h + l] = (uint8_t)((p[0] >> 4) | (p[32] >> 4) << 2 | (p[64] >> 4) << 4 | (p[96] >> 4) << 6);
    }
}

void kn_dequant_q6_k(const uint8_t *b, float *y) {
  float d = get_f16(b + 208);
  for (int h = 0; h < 2; h++)
    for (int l = 0; l < 32; l++) {
      int lo0 = b[64 * h + l], lo1 = b[64 * h + 32 + l], hi = b[128 + 32 * h + l];
      int q[4] = {(lo0 & 15) | (hi & 3) << 4, (lo1 & 15) | (hi >> 2 & 3) << 4, (lo0 >> 4) | (hi >> 4 & 3) << 4,
                  (lo1 >> 4) | (hi >> 6 & 3) << 4};
      for (int g = 0; g < 4; g++) {
        int e = 128 * h + 32 * g + l;
        y[e] = d * (float)(int8_t)b[192 + e / 16] * (float)(q[g] - 32);
      }
    }
}
