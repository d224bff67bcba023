/* Per-lane semantics of the division macro's helpers: v_div_scale_f32 (pre-scale, sets VCC), v_div_fmas_f32 (the
 * last Newton-Raphson step, post-scaled under VCC) and v_div_fixup_f32/f16 (the special cases of n/d), following
 * the pseudo-code of the RDNA3 ISA manual. LLVM divides f32 as
 *
 *   d' = div_scale(d, d, n);  n', vcc = div_scale(n, d, n);  r = rcp(d');  ...two Newton-Raphson steps...;
 *   q' = div_fmas(e, r, q);   q = div_fixup(q', d, n)
 *
 * Three places where the manual's text cannot be taken literally (each would make that macro return NaN or a
 * quotient off by 2^32 or 2^64 for ordinary operands) are read as the macro needs them, and say so below:
 *   - div_scale leaves D0 = S0 when no branch assigns it (the macro relies on it for every ordinary operand);
 *   - div_scale's "S2 / S1 == DENORM" is the exact quotient being below the normal range, including quotients that
 *     round to zero (else 1e-35 / 1e30 scales d past the f32 range: NaN instead of 0);
 *   - its "1.0 / 64'F(S1) == DENORM.f64" (which the reciprocal of an f32 never is) is the reciprocal being below
 *     the f32 normal range, |d| > 2^126: both operands are scaled by 2^-64 so v_rcp_f32 keeps its bits (else
 *     2^64 / 0x1.fffffep127 is an ulp off); when the quotient is below the normal range too, d alone is scaled by
 *     2^-64 (the manual prints +64, which overflows such a d) and VCC set;
 *   - div_fmas scales by 2^+64 when the quotient estimate S2 is >= 2 (exponent > 127: the numerator was near the
 *     top of the range and d was scaled up) and by 2^-64 otherwise (n was scaled up), where the manual prints a
 *     fixed 2^32; the scale is applied before the one rounding, so denormal quotients round once;
 *   - div_fixup turns a NaN quotient of finite non-zero operands into +-inf: it comes from the scaled quotient
 *     overflowing, whose rounded result is infinite (the manual's last branch would pass the NaN on).
 * tests/test_rdna3.c checks each instruction and the whole f32/f16 division against C's correctly rounded a/b. */
#include <math.h>

#include "rdna3_ops.h"
#include "rdna3_valu.h"

static int exp32(float f) { return (int)(f2u(f) >> 23 & 0xff); }
static bool denorm32(float f) { return exp32(f) == 0 && (f2u(f) & 0x7fffff); }

/* "S2 / S1 == DENORM": the exact quotient (both finite and non-zero) lies below the smallest normal f32. The
 * quotient of two floats in double is within an ulp of double, far from the f32 boundary's rounding. */
static bool quotient_denorm32(float n, float d) {
  double q = fabs((double)n / (double)d);
  return isfinite(n) && isfinite(d) && q < 0x1p-126;
}

/* "1.0 / S1 == DENORM": the reciprocal of the denominator is below the f32 normal range (|d| > 2^126), where
 * v_rcp_f32 would lose bits */
static bool rcp_denorm32(float d) { return isfinite(d) && fabs(1.0 / (double)d) < 0x1p-126; }

static float div_scale_f32(float s0, float d, float n, int *vcc) {
  *vcc = 0;
  if (n == 0 || d == 0) return NAN;
  if (exp32(n) - exp32(d) >= 96) { /* n/d near the top of the range: scale the denominator only */
    *vcc = 1;
    return s0 == d ? ldexpf(s0, 64) : s0;
  }
  if (denorm32(d)) return ldexpf(s0, 64);
  if (rcp_denorm32(d) && quotient_denorm32(n, d)) { /* a huge denominator and a tiny quotient: scale d down */
    *vcc = 1;
    return s0 == d ? ldexpf(s0, -64) : s0;
  }
  if (rcp_denorm32(d)) return ldexpf(s0, -64); /* a huge denominator: scale both down */
  if (quotient_denorm32(n, d)) { /* a quotient below the normal range: scale the numerator only */
    *vcc = 1;
    return s0 == n ? ldexpf(s0, 64) : s0;
  }
  if (exp32(n) <= 23) return ldexpf(s0, 64); /* a tiny numerator: scale both */
  return s0;
}

/* fma(a, b, c) * 2^k rounded once to f32 (denormal results included): a*b is exact in double, TwoSum gives the
 * exact sum as s + e, and rounding to odd at 53 bits before the final rounding to nearest keeps it one rounding. */
static float fma_scaled(float a, float b, float c, int k) {
  double p = (double)a * (double)b, s = p + (double)c;
  if (!isfinite(s)) return (float)ldexp(s, k);
  double bb = s - p, e = (p - (s - bb)) + ((double)c - bb);
  if (e != 0) {
    double t = (e > 0) == (s > 0) ? s : nextafter(s, 0.0); /* the exact value truncated to 53 bits */
    s = u2d(d2u(t) | 1);                                    /* ... with a sticky bit */
  }
  return (float)ldexp(s, k);
}

static uint32_t quiet32(uint32_t u) { return u | 0x400000u; }
static uint16_t quiet16(uint16_t u) { return (uint16_t)(u | 0x200u); }

static uint32_t div_fixup_f32(float q, float d, float n) {
  uint32_t sign = (f2u(d) ^ f2u(n)) & 0x80000000u;
  if (isnan(n)) return quiet32(f2u(n));
  if (isnan(d)) return quiet32(f2u(d));
  if (d == 0 && n == 0) return 0xffc00000u;                 /* 0/0 */
  if (isinf(d) && isinf(n)) return 0xffc00000u;             /* inf/inf */
  if (d == 0 || isinf(n)) return sign | 0x7f800000u;       /* x/0, inf/y */
  if (isinf(d) || n == 0) return sign;                      /* x/inf, 0/y */
  if (exp32(n) - exp32(d) < -150) return sign;              /* below half the smallest denormal: rounds to 0 */
  if (exp32(d) == 255) return sign | 0x7f7fffffu;           /* OVERFLOW_F32 (unreachable: d is finite here) */
  if (isnan(q)) return sign | 0x7f800000u;                  /* the scaled quotient overflowed */
  return sign | (f2u(q) & 0x7fffffffu);
}

static uint16_t div_fixup_f16(uint16_t q, uint16_t d, uint16_t n) {
  uint16_t sign = (uint16_t)((d ^ n) & 0x8000u);
  bool dnan = (d & 0x7fff) > 0x7c00, nnan = (n & 0x7fff) > 0x7c00;
  bool dinf = (d & 0x7fff) == 0x7c00, ninf = (n & 0x7fff) == 0x7c00;
  bool dzero = !(d & 0x7fff), nzero = !(n & 0x7fff);
  if (nnan) return quiet16(n);
  if (dnan) return quiet16(d);
  if (dzero && nzero) return 0xfe00;                        /* 0/0 */
  if (dinf && ninf) return 0xfe00;                          /* inf/inf */
  if (dzero || ninf) return (uint16_t)(sign | 0x7c00u);     /* x/0, inf/y */
  if (dinf || nzero) return sign;                           /* x/inf, 0/y */
  return (uint16_t)(sign | (q & 0x7fffu));
}

/* the 16 bits of operand i as op_sel picks them, with the neg/abs input modifiers */
static uint16_t h16_mod(const kn_lane *x, int i) {
  uint16_t h = H16(x, i, T_F16);
  if (x->in->abs >> i & 1) h &= 0x7fff;
  if (x->in->neg >> i & 1) h ^= 0x8000;
  return h;
}

int kn_alu_div(kn_lane *x, unsigned op) {
  switch (op) {
  case V_DIV_SCALE_F32: {
    int vcc;
    float r = div_scale_f32(F32(x, 0), F32(x, 1), F32(x, 2), &vcc);
    kn_putf32(x, r), x->cc = vcc;
    return 0;
  }
  case V_DIV_FMAS_F32: {
    float a = F32(x, 0), b = F32(x, 1), c = F32(x, 2);
    /* VCC, read per lane (the VOP3 encoding has no carry-in field: always VCC) */
    if (!(x->w->s[OP_VCC_LO] >> x->l & 1)) kn_putf32(x, fmaf(a, b, c));
    else kn_putf32(x, fma_scaled(a, b, c, exp32(c) > 127 ? 64 : -64));
    return 0;
  }
  case V_DIV_FIXUP_F32: {
    uint32_t r = div_fixup_f32(F32(x, 0), F32(x, 1), F32(x, 2));
    if (isnan(u2f(r))) kn_put32(x, r); /* the NaN's payload as is (omod/clamp do not apply to NaN bits) */
    else kn_putf32(x, u2f(r));
    return 0;
  }
  case V_DIV_FIXUP_F16: {
    uint16_t r = div_fixup_f16(h16_mod(x, 0), h16_mod(x, 1), h16_mod(x, 2));
    if ((r & 0x7fff) > 0x7c00) kn_put16(x, r);
    else kn_putf16(x, kn_h2f(r));
    return 0;
  }
  default: return 1;
  }
}
