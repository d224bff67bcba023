/* Per-lane semantics of the vector ALU opcodes (VOP1/VOP2/VOP3 numbering): integer, f32, f16 and f64 arithmetic,
 * conversions and the transcendental approximations (computed with libm: results can differ from the hardware's in
 * the last bits, which tests compare with ULP tolerances). */
#include <math.h>

#include "rdna3_ops.h"
#include "rdna3_valu.h"

float kn_h2f(uint16_t h) {
  _Float16 f;
  memcpy(&f, &h, 2);
  return (float)f;
}

uint16_t kn_f2h(float f) {
  _Float16 h = (_Float16)f;
  uint16_t u;
  memcpy(&u, &h, 2);
  return u;
}

static uint32_t sat_u32(double v) { return v != v || v <= 0 ? 0 : v >= 4294967295.0 ? 0xffffffffu : (uint32_t)v; }
static int32_t sat_i32(double v) {
  return v != v ? 0 : v <= -2147483648.0 ? INT32_MIN : v >= 2147483647.0 ? INT32_MAX : (int32_t)v;
}
static int32_t sext24(uint32_t x) { return (int32_t)(x << 8) >> 8; }
static float med3f(float a, float b, float c) { return fmaxf(fminf(a, b), fminf(fmaxf(a, b), c)); }
static int32_t med3i(int32_t a, int32_t b, int32_t c) {
  int32_t lo = a < b ? a : b, hi = a < b ? b : a;
  return c < lo ? lo : c > hi ? hi : c;
}
static uint32_t med3u(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t lo = a < b ? a : b, hi = a < b ? b : a;
  return c < lo ? lo : c > hi ? hi : c;
}
static bool carry_in(const kn_lane *x) { return kn_raw32(x, 2, T_B32) >> x->l & 1; }
/* v_perm_b32 byte select: 0-7 bytes of {src0,src1}, 8-11 sign replication, 12 = 0x00, >= 13 = 0xff */
static uint8_t perm_byte(uint64_t v, uint32_t sel) {
  if (sel < 8) return (uint8_t)(v >> (8 * sel));
  if (sel < 12) return (v >> (16 * (sel - 8) + 15) & 1) ? 0xff : 0;
  return sel == 12 ? 0 : 0xff;
}

static int alu_int(kn_lane *x, unsigned op) {
  uint32_t a, b;
  switch (op) {
  case V_MOV_B32: kn_put32(x, M32(x, 0)); return 0;
  case V_CNDMASK_B32: kn_put32(x, carry_in(x) ? M32(x, 1) : M32(x, 0)); return 0;
  case V_MUL_I32_I24: kn_put32(x, (uint32_t)(sext24(U32(x, 0)) * sext24(U32(x, 1)))); return 0;
  case V_MUL_HI_I32_I24: kn_put32(x, (uint32_t)(((int64_t)sext24(U32(x, 0)) * sext24(U32(x, 1))) >> 32)); return 0;
  case V_MUL_U32_U24: kn_put32(x, (U32(x, 0) & 0xffffff) * (U32(x, 1) & 0xffffff)); return 0;
  case V_MUL_HI_U32_U24:
    kn_put32(x, (uint32_t)(((uint64_t)(U32(x, 0) & 0xffffff) * (U32(x, 1) & 0xffffff)) >> 32));
    return 0;
  case V_MIN_I32: kn_put32(x, (uint32_t)(I32(x, 0) < I32(x, 1) ? I32(x, 0) : I32(x, 1))); return 0;
  case V_MAX_I32: kn_put32(x, (uint32_t)(I32(x, 0) > I32(x, 1) ? I32(x, 0) : I32(x, 1))); return 0;
  case V_MIN_U32: kn_put32(x, U32(x, 0) < U32(x, 1) ? U32(x, 0) : U32(x, 1)); return 0;
  case V_MAX_U32: kn_put32(x, U32(x, 0) > U32(x, 1) ? U32(x, 0) : U32(x, 1)); return 0;
  case V_LSHLREV_B32: kn_put32(x, U32(x, 1) << (U32(x, 0) & 31)); return 0;
  case V_LSHRREV_B32: kn_put32(x, U32(x, 1) >> (U32(x, 0) & 31)); return 0;
  case V_ASHRREV_I32: kn_put32(x, (uint32_t)(I32(x, 1) >> (U32(x, 0) & 31))); return 0;
  case V_AND_B32: kn_put32(x, U32(x, 0) & U32(x, 1)); return 0;
  case V_OR_B32: kn_put32(x, U32(x, 0) | U32(x, 1)); return 0;
  case V_XOR_B32: kn_put32(x, U32(x, 0) ^ U32(x, 1)); return 0;
  case V_XNOR_B32: kn_put32(x, ~(U32(x, 0) ^ U32(x, 1))); return 0;
  case V_NOT_B32: kn_put32(x, ~U32(x, 0)); return 0;
  case V_ADD_NC_U32: {
    uint64_t s = (uint64_t)U32(x, 0) + U32(x, 1);
    kn_put32(x, x->in->clamp && s >> 32 ? ~0u : (uint32_t)s);
    return 0;
  }
  case V_SUB_NC_U32: a = U32(x, 0), b = U32(x, 1); kn_put32(x, x->in->clamp && b > a ? 0 : a - b); return 0;
  case V_SUBREV_NC_U32: a = U32(x, 1), b = U32(x, 0); kn_put32(x, x->in->clamp && b > a ? 0 : a - b); return 0;
  case V_ADD_NC_I32: kn_put32(x, U32(x, 0) + U32(x, 1)); return 0;
  case V_SUB_NC_I32: kn_put32(x, U32(x, 0) - U32(x, 1)); return 0;
  case V_ADD_CO_U32: {
    uint64_t s = (uint64_t)U32(x, 0) + U32(x, 1);
    kn_put32(x, (uint32_t)s), x->cc = (int)(s >> 32);
    return 0;
  }
  case V_SUB_CO_U32: a = U32(x, 0), b = U32(x, 1); kn_put32(x, a - b), x->cc = b > a; return 0;
  case V_SUBREV_CO_U32: a = U32(x, 1), b = U32(x, 0); kn_put32(x, a - b), x->cc = b > a; return 0;
  case V_ADD_CO_CI_U32: {
    uint64_t s = (uint64_t)U32(x, 0) + U32(x, 1) + carry_in(x);
    kn_put32(x, (uint32_t)s), x->cc = (int)(s >> 32);
    return 0;
  }
  case V_SUB_CO_CI_U32: case V_SUBREV_CO_CI_U32: {
    int i = op == V_SUB_CO_CI_U32 ? 0 : 1;
    uint64_t A = U32(x, i), B = (uint64_t)U32(x, 1 - i) + carry_in(x);
    kn_put32(x, (uint32_t)(A - B)), x->cc = B > A;
    return 0;
  }
  case V_MUL_LO_U32: kn_put32(x, U32(x, 0) * U32(x, 1)); return 0;
  case V_MUL_HI_U32: kn_put32(x, (uint32_t)(((uint64_t)U32(x, 0) * U32(x, 1)) >> 32)); return 0;
  case V_MUL_HI_I32: kn_put32(x, (uint32_t)(((int64_t)I32(x, 0) * I32(x, 1)) >> 32)); return 0;
  case V_MAD_U32_U24: kn_put32(x, (U32(x, 0) & 0xffffff) * (U32(x, 1) & 0xffffff) + U32(x, 2)); return 0;
  case V_MAD_I32_I24: kn_put32(x, (uint32_t)(sext24(U32(x, 0)) * sext24(U32(x, 1))) + U32(x, 2)); return 0;
  case V_MAD_U64_U32: {
    unsigned __int128 s = (unsigned __int128)((uint64_t)U32(x, 0) * U32(x, 1)) + U64(x, 2);
    kn_put64(x, (uint64_t)s), x->cc = (int)(s >> 64);
    return 0;
  }
  case V_MAD_I64_I32: {
    __int128 s = (__int128)((int64_t)I32(x, 0) * I32(x, 1)) + (int64_t)U64(x, 2);
    kn_put64(x, (uint64_t)s), x->cc = s < INT64_MIN || s > INT64_MAX;
    return 0;
  }
  case V_BFE_U32: kn_put32(x, kn_bfe32(U32(x, 0), U32(x, 1), U32(x, 2), false)); return 0;
  case V_BFE_I32: kn_put32(x, kn_bfe32(U32(x, 0), U32(x, 1), U32(x, 2), true)); return 0;
  case V_BFI_B32: a = U32(x, 0); kn_put32(x, (a & U32(x, 1)) | (~a & U32(x, 2))); return 0;
  case V_BFM_B32: kn_put32(x, ((1u << (U32(x, 0) & 31)) - 1) << (U32(x, 1) & 31)); return 0;
  case V_ALIGNBIT_B32: kn_put32(x, (uint32_t)((((uint64_t)U32(x, 0) << 32) | U32(x, 1)) >> (U32(x, 2) & 31))); return 0;
  case V_ALIGNBYTE_B32:
    kn_put32(x, (uint32_t)((((uint64_t)U32(x, 0) << 32) | U32(x, 1)) >> (8 * (U32(x, 2) & 3))));
    return 0;
  case V_MIN3_I32: {
    int32_t m = I32(x, 0) < I32(x, 1) ? I32(x, 0) : I32(x, 1);
    kn_put32(x, (uint32_t)(m < I32(x, 2) ? m : I32(x, 2)));
    return 0;
  }
  case V_MAX3_I32: {
    int32_t m = I32(x, 0) > I32(x, 1) ? I32(x, 0) : I32(x, 1);
    kn_put32(x, (uint32_t)(m > I32(x, 2) ? m : I32(x, 2)));
    return 0;
  }
  case V_MIN3_U32: a = U32(x, 0) < U32(x, 1) ? U32(x, 0) : U32(x, 1); kn_put32(x, a < U32(x, 2) ? a : U32(x, 2)); return 0;
  case V_MAX3_U32: a = U32(x, 0) > U32(x, 1) ? U32(x, 0) : U32(x, 1); kn_put32(x, a > U32(x, 2) ? a : U32(x, 2)); return 0;
  case V_MED3_I32: kn_put32(x, (uint32_t)med3i(I32(x, 0), I32(x, 1), I32(x, 2))); return 0;
  case V_MED3_U32: kn_put32(x, med3u(U32(x, 0), U32(x, 1), U32(x, 2))); return 0;
  case V_MAXMIN_I32: { int32_t m = I32(x, 0) > I32(x, 1) ? I32(x, 0) : I32(x, 1); kn_put32(x, (uint32_t)(m < I32(x, 2) ? m : I32(x, 2))); return 0; }
  case V_MINMAX_I32: { int32_t m = I32(x, 0) < I32(x, 1) ? I32(x, 0) : I32(x, 1); kn_put32(x, (uint32_t)(m > I32(x, 2) ? m : I32(x, 2))); return 0; }
  case V_MAXMIN_U32: a = U32(x, 0) > U32(x, 1) ? U32(x, 0) : U32(x, 1); kn_put32(x, a < U32(x, 2) ? a : U32(x, 2)); return 0;
  case V_MINMAX_U32: a = U32(x, 0) < U32(x, 1) ? U32(x, 0) : U32(x, 1); kn_put32(x, a > U32(x, 2) ? a : U32(x, 2)); return 0;
  case V_XOR3_B32: kn_put32(x, U32(x, 0) ^ U32(x, 1) ^ U32(x, 2)); return 0;
  case V_OR3_B32: kn_put32(x, U32(x, 0) | U32(x, 1) | U32(x, 2)); return 0;
  case V_AND_OR_B32: kn_put32(x, (U32(x, 0) & U32(x, 1)) | U32(x, 2)); return 0;
  case V_LSHL_OR_B32: kn_put32(x, (U32(x, 0) << (U32(x, 1) & 31)) | U32(x, 2)); return 0;
  case V_LSHL_ADD_U32: kn_put32(x, (U32(x, 0) << (U32(x, 1) & 31)) + U32(x, 2)); return 0;
  case V_ADD_LSHL_U32: kn_put32(x, (U32(x, 0) + U32(x, 1)) << (U32(x, 2) & 31)); return 0;
  case V_ADD3_U32: kn_put32(x, U32(x, 0) + U32(x, 1) + U32(x, 2)); return 0;
  case V_XAD_U32: kn_put32(x, (U32(x, 0) ^ U32(x, 1)) + U32(x, 2)); return 0;
  case V_PERM_B32: {
    uint64_t v = (uint64_t)U32(x, 0) << 32 | U32(x, 1);
    uint32_t sel = U32(x, 2), r = 0;
    for (int k = 0; k < 4; k++) r |= (uint32_t)perm_byte(v, (sel >> (8 * k)) & 0xff) << (8 * k);
    kn_put32(x, r);
    return 0;
  }
  case V_BFREV_B32: {
    a = U32(x, 0), b = 0;
    for (int k = 0; k < 32; k++) b |= ((a >> k) & 1) << (31 - k);
    kn_put32(x, b);
    return 0;
  }
  case V_CLZ_I32_U32: a = U32(x, 0); kn_put32(x, a ? (uint32_t)__builtin_clz(a) : ~0u); return 0;
  case V_CTZ_I32_B32: a = U32(x, 0); kn_put32(x, a ? (uint32_t)__builtin_ctz(a) : ~0u); return 0;
  case V_CLS_I32: {
    a = U32(x, 0);
    uint32_t t = (int32_t)a < 0 ? ~a : a;
    kn_put32(x, (a == 0 || a == ~0u) ? ~0u : (uint32_t)__builtin_clz(t));
    return 0;
  }
  case V_BCNT_U32_B32: kn_put32(x, (uint32_t)__builtin_popcount(U32(x, 0)) + U32(x, 1)); return 0;
  case V_MBCNT_LO_U32_B32: kn_put32(x, (uint32_t)__builtin_popcount(U32(x, 0) & ((1u << x->l) - 1)) + U32(x, 1)); return 0;
  case V_MBCNT_HI_U32_B32: kn_put32(x, U32(x, 1)); return 0; /* wave32: no lanes above 31 */
  case V_LSHLREV_B64: kn_put64(x, U64(x, 1) << (U32(x, 0) & 63)); return 0;
  case V_LSHRREV_B64: kn_put64(x, U64(x, 1) >> (U32(x, 0) & 63)); return 0;
  case V_ASHRREV_I64: kn_put64(x, (uint64_t)((int64_t)U64(x, 1) >> (U32(x, 0) & 63))); return 0;
  case V_CVT_PK_U16_U32: kn_put32(x, (U32(x, 0) > 0xffff ? 0xffff : U32(x, 0)) | (U32(x, 1) > 0xffff ? 0xffff : U32(x, 1)) << 16); return 0;
  case V_CVT_PK_I16_I32: {
    int32_t p = med3i(I32(x, 0), -32768, 32767), q = med3i(I32(x, 1), -32768, 32767);
    kn_put32(x, ((uint32_t)p & 0xffff) | (uint32_t)q << 16);
    return 0;
  }
  case V_CVT_I32_I16: kn_put32(x, (uint32_t)(int32_t)(int16_t)H16(x, 0, T_B32)); return 0;
  case V_CVT_U32_U16: kn_put32(x, H16(x, 0, T_B32)); return 0;
  /* 16-bit integer */
  case V_ADD_NC_U16: kn_put16(x, (uint16_t)(H16(x, 0, T_B32) + H16(x, 1, T_B32))); return 0;
  case V_SUB_NC_U16: kn_put16(x, (uint16_t)(H16(x, 0, T_B32) - H16(x, 1, T_B32))); return 0;
  case V_ADD_NC_I16: kn_put16(x, (uint16_t)(H16(x, 0, T_B32) + H16(x, 1, T_B32))); return 0;
  case V_SUB_NC_I16: kn_put16(x, (uint16_t)(H16(x, 0, T_B32) - H16(x, 1, T_B32))); return 0;
  case V_MUL_LO_U16: kn_put16(x, (uint16_t)(H16(x, 0, T_B32) * H16(x, 1, T_B32))); return 0;
  case V_MAD_U16: kn_put16(x, (uint16_t)(H16(x, 0, T_B32) * H16(x, 1, T_B32) + H16(x, 2, T_B32))); return 0;
  case V_MAD_U32_U16: kn_put32(x, (uint32_t)H16(x, 0, T_B32) * H16(x, 1, T_B32) + U32(x, 2)); return 0;
  case V_MAD_I32_I16: kn_put32(x, (uint32_t)((int16_t)H16(x, 0, T_B32) * (int16_t)H16(x, 1, T_B32)) + U32(x, 2)); return 0;
  case V_LSHLREV_B16: kn_put16(x, (uint16_t)(H16(x, 1, T_B32) << (H16(x, 0, T_B32) & 15))); return 0;
  case V_LSHRREV_B16: kn_put16(x, (uint16_t)(H16(x, 1, T_B32) >> (H16(x, 0, T_B32) & 15))); return 0;
  case V_ASHRREV_I16: kn_put16(x, (uint16_t)((int16_t)H16(x, 1, T_B32) >> (H16(x, 0, T_B32) & 15))); return 0;
  case V_AND_B16: kn_put16(x, H16(x, 0, T_B32) & H16(x, 1, T_B32)); return 0;
  case V_OR_B16: kn_put16(x, H16(x, 0, T_B32) | H16(x, 1, T_B32)); return 0;
  case V_XOR_B16: kn_put16(x, H16(x, 0, T_B32) ^ H16(x, 1, T_B32)); return 0;
  case V_NOT_B16: kn_put16(x, (uint16_t)~H16(x, 0, T_B32)); return 0;
  case V_MAX_U16: { uint16_t p = H16(x, 0, T_B32), q = H16(x, 1, T_B32); kn_put16(x, p > q ? p : q); return 0; }
  case V_MIN_U16: { uint16_t p = H16(x, 0, T_B32), q = H16(x, 1, T_B32); kn_put16(x, p < q ? p : q); return 0; }
  case V_MAX_I16: { int16_t p = (int16_t)H16(x, 0, T_B32), q = (int16_t)H16(x, 1, T_B32); kn_put16(x, (uint16_t)(p > q ? p : q)); return 0; }
  case V_MIN_I16: { int16_t p = (int16_t)H16(x, 0, T_B32), q = (int16_t)H16(x, 1, T_B32); kn_put16(x, (uint16_t)(p < q ? p : q)); return 0; }
  case V_CNDMASK_B16: kn_put16(x, carry_in(x) ? H16(x, 1, T_B32) : H16(x, 0, T_B32)); return 0;
  case V_MAD_I16: kn_put16(x, (uint16_t)((int16_t)H16(x, 0, T_B32) * (int16_t)H16(x, 1, T_B32) + (int16_t)H16(x, 2, T_B32))); return 0;
  case V_MIN3_U16: case V_MAX3_U16: case V_MED3_U16: {
    uint32_t p = H16(x, 0, T_B32), q = H16(x, 1, T_B32), r = H16(x, 2, T_B32);
    uint32_t m = op == V_MED3_U16 ? med3u(p, q, r) : op == V_MIN3_U16 ? (p < q ? p : q) : (p > q ? p : q);
    if (op == V_MIN3_U16) m = m < r ? m : r;
    if (op == V_MAX3_U16) m = m > r ? m : r;
    kn_put16(x, (uint16_t)m);
    return 0;
  }
  case V_MIN3_I16: case V_MAX3_I16: case V_MED3_I16: {
    int32_t p = (int16_t)H16(x, 0, T_B32), q = (int16_t)H16(x, 1, T_B32), r = (int16_t)H16(x, 2, T_B32);
    int32_t m = op == V_MED3_I16 ? med3i(p, q, r) : op == V_MIN3_I16 ? (p < q ? p : q) : (p > q ? p : q);
    if (op == V_MIN3_I16) m = m < r ? m : r;
    if (op == V_MAX3_I16) m = m > r ? m : r;
    kn_put16(x, (uint16_t)m);
    return 0;
  }
  default: return 1; /* not an integer opcode */
  }
}

static float fract(float f) { return isinf(f) ? (f != f ? f : 0.0f) : fminf(f - floorf(f), 0x1.fffffep-1f); }

static int alu_f32(kn_lane *x, unsigned op) {
  switch (op) {
  case V_ADD_F32: kn_putf32(x, F32(x, 0) + F32(x, 1)); return 0;
  case V_SUB_F32: kn_putf32(x, F32(x, 0) - F32(x, 1)); return 0;
  case V_SUBREV_F32: kn_putf32(x, F32(x, 1) - F32(x, 0)); return 0;
  case V_MUL_F32: kn_putf32(x, F32(x, 0) * F32(x, 1)); return 0;
  case V_MUL_DX9_ZERO_F32: {
    float a = F32(x, 0), b = F32(x, 1);
    kn_putf32(x, (a == 0 || b == 0) ? 0.0f : a * b);
    return 0;
  }
  case V_FMAC_DX9_ZERO_F32: case V_FMA_DX9_ZERO_F32: {
    float a = F32(x, 0), b = F32(x, 1);
    kn_putf32(x, (a == 0 || b == 0) ? F32(x, 2) : fmaf(a, b, F32(x, 2)));
    return 0;
  }
  case V_MIN_F32: kn_putf32(x, fminf(F32(x, 0), F32(x, 1))); return 0;
  case V_MAX_F32: kn_putf32(x, fmaxf(F32(x, 0), F32(x, 1))); return 0;
  case V_FMAC_F32: case V_FMA_F32: kn_putf32(x, fmaf(F32(x, 0), F32(x, 1), F32(x, 2))); return 0;
  case V_FMAMK_F32: kn_putf32(x, fmaf(F32(x, 0), u2f(x->in->lit), F32(x, 1))); return 0;
  case V_FMAAK_F32: kn_putf32(x, fmaf(F32(x, 0), F32(x, 1), u2f(x->in->lit))); return 0;
  case V_MIN3_F32: kn_putf32(x, fminf(fminf(F32(x, 0), F32(x, 1)), F32(x, 2))); return 0;
  case V_MAX3_F32: kn_putf32(x, fmaxf(fmaxf(F32(x, 0), F32(x, 1)), F32(x, 2))); return 0;
  case V_MED3_F32: kn_putf32(x, med3f(F32(x, 0), F32(x, 1), F32(x, 2))); return 0;
  case V_MAXMIN_F32: kn_putf32(x, fminf(fmaxf(F32(x, 0), F32(x, 1)), F32(x, 2))); return 0;
  case V_MINMAX_F32: kn_putf32(x, fmaxf(fminf(F32(x, 0), F32(x, 1)), F32(x, 2))); return 0;
  case V_LDEXP_F32: kn_putf32(x, ldexpf(F32(x, 0), I32(x, 1))); return 0;
  case V_TRUNC_F32: kn_putf32(x, truncf(F32(x, 0))); return 0;
  case V_CEIL_F32: kn_putf32(x, ceilf(F32(x, 0))); return 0;
  case V_RNDNE_F32: kn_putf32(x, nearbyintf(F32(x, 0))); return 0;
  case V_FLOOR_F32: kn_putf32(x, floorf(F32(x, 0))); return 0;
  case V_FRACT_F32: kn_putf32(x, fract(F32(x, 0))); return 0;
  case V_EXP_F32: kn_putf32(x, exp2f(F32(x, 0))); return 0;
  case V_LOG_F32: kn_putf32(x, log2f(F32(x, 0))); return 0;
  case V_RCP_F32: case V_RCP_IFLAG_F32: kn_putf32(x, 1.0f / F32(x, 0)); return 0;
  case V_RSQ_F32: kn_putf32(x, 1.0f / sqrtf(F32(x, 0))); return 0;
  case V_SQRT_F32: kn_putf32(x, sqrtf(F32(x, 0))); return 0;
  case V_SIN_F32: kn_putf32(x, (float)sin(F32(x, 0) * 6.283185307179586)); return 0;
  case V_COS_F32: kn_putf32(x, (float)cos(F32(x, 0) * 6.283185307179586)); return 0;
  case V_FREXP_MANT_F32: {
    float f = F32(x, 0);
    int e;
    kn_putf32(x, isinf(f) || f != f ? f : frexpf(f, &e));
    return 0;
  }
  case V_FREXP_EXP_I32_F32: {
    float f = F32(x, 0);
    int e = 0;
    if (!isinf(f) && f == f) frexpf(f, &e);
    kn_put32(x, (uint32_t)e);
    return 0;
  }
  case V_CVT_F32_I32: kn_putf32(x, (float)I32(x, 0)); return 0;
  case V_CVT_F32_U32: kn_putf32(x, (float)U32(x, 0)); return 0;
  case V_CVT_U32_F32: kn_put32(x, sat_u32(F32(x, 0))); return 0;
  case V_CVT_I32_F32: kn_put32(x, (uint32_t)sat_i32(F32(x, 0))); return 0;
  case V_CVT_NEAREST_I32_F32: kn_put32(x, (uint32_t)sat_i32(floorf(F32(x, 0) + 0.5f))); return 0;
  case V_CVT_FLOOR_I32_F32: kn_put32(x, (uint32_t)sat_i32(floorf(F32(x, 0)))); return 0;
  case V_CVT_F32_UBYTE0: case V_CVT_F32_UBYTE1: case V_CVT_F32_UBYTE2: case V_CVT_F32_UBYTE3:
    kn_putf32(x, (float)((U32(x, 0) >> (8 * (op - V_CVT_F32_UBYTE0))) & 0xff));
    return 0;
  case V_CVT_OFF_F32_I4: kn_putf32(x, (float)((int32_t)(U32(x, 0) << 28) >> 28) / 16.0f); return 0;
  case V_CVT_F16_F32: kn_putf16(x, F32(x, 0)); return 0;
  case V_CVT_F32_F16: kn_putf32(x, F16(x, 0)); return 0;
  case V_CVT_PK_RTZ_F16_F32: {
    float a = F32(x, 0), b = F32(x, 1);
    /* round toward zero: convert, then step back when the rounding went away from zero */
    uint16_t h[2];
    float v[2] = {a, b};
    for (int k = 0; k < 2; k++) {
      h[k] = kn_f2h(v[k]);
      float back = kn_h2f(h[k]);
      if (v[k] == v[k] && !isinf(back) && fabsf(back) > fabsf(v[k])) h[k]--;
      else if (isinf(back) && !isinf(v[k])) h[k] = (uint16_t)((h[k] & 0x8000) | 0x7bff);
    }
    kn_put32(x, h[0] | (uint32_t)h[1] << 16);
    return 0;
  }
  case V_CVT_PK_U8_F32: {
    uint32_t byte = U32(x, 1) & 3, v = sat_u32(nearbyintf(F32(x, 0)));
    if (v > 255) v = 255;
    kn_put32(x, (U32(x, 2) & ~(0xffu << (8 * byte))) | v << (8 * byte));
    return 0;
  }
  default: return 1;
  }
}

static int alu_f16(kn_lane *x, unsigned op) {
  switch (op) {
  case V_ADD_F16: kn_putf16(x, F16(x, 0) + F16(x, 1)); return 0;
  case V_SUB_F16: kn_putf16(x, F16(x, 0) - F16(x, 1)); return 0;
  case V_SUBREV_F16: kn_putf16(x, F16(x, 1) - F16(x, 0)); return 0;
  case V_MUL_F16: kn_putf16(x, F16(x, 0) * F16(x, 1)); return 0;
  case V_FMAC_F16: case V_FMA_F16: kn_putf16(x, (float)fma(F16(x, 0), F16(x, 1), F16(x, 2))); return 0;
  case V_FMAMK_F16: kn_putf16(x, (float)fma(F16(x, 0), kn_h2f((uint16_t)x->in->lit), F16(x, 1))); return 0;
  case V_FMAAK_F16: kn_putf16(x, (float)fma(F16(x, 0), F16(x, 1), kn_h2f((uint16_t)x->in->lit))); return 0;
  case V_MAX_F16: kn_putf16(x, fmaxf(F16(x, 0), F16(x, 1))); return 0;
  case V_MIN_F16: kn_putf16(x, fminf(F16(x, 0), F16(x, 1))); return 0;
  case V_LDEXP_F16: kn_putf16(x, ldexpf(F16(x, 0), (int16_t)H16(x, 1, T_B32))); return 0;
  case V_MIN3_F16: kn_putf16(x, fminf(fminf(F16(x, 0), F16(x, 1)), F16(x, 2))); return 0;
  case V_MAX3_F16: kn_putf16(x, fmaxf(fmaxf(F16(x, 0), F16(x, 1)), F16(x, 2))); return 0;
  case V_MED3_F16: kn_putf16(x, med3f(F16(x, 0), F16(x, 1), F16(x, 2))); return 0;
  case V_MAXMIN_F16: kn_putf16(x, fminf(fmaxf(F16(x, 0), F16(x, 1)), F16(x, 2))); return 0;
  case V_MINMAX_F16: kn_putf16(x, fmaxf(fminf(F16(x, 0), F16(x, 1)), F16(x, 2))); return 0;
  case V_RCP_F16: kn_putf16(x, 1.0f / F16(x, 0)); return 0;
  case V_SQRT_F16: kn_putf16(x, sqrtf(F16(x, 0))); return 0;
  case V_RSQ_F16: kn_putf16(x, 1.0f / sqrtf(F16(x, 0))); return 0;
  case V_LOG_F16: kn_putf16(x, log2f(F16(x, 0))); return 0;
  case V_EXP_F16: kn_putf16(x, exp2f(F16(x, 0))); return 0;
  case V_SIN_F16: kn_putf16(x, (float)sin(F16(x, 0) * 6.283185307179586)); return 0;
  case V_COS_F16: kn_putf16(x, (float)cos(F16(x, 0) * 6.283185307179586)); return 0;
  case V_FLOOR_F16: kn_putf16(x, floorf(F16(x, 0))); return 0;
  case V_CEIL_F16: kn_putf16(x, ceilf(F16(x, 0))); return 0;
  case V_TRUNC_F16: kn_putf16(x, truncf(F16(x, 0))); return 0;
  case V_RNDNE_F16: kn_putf16(x, nearbyintf(F16(x, 0))); return 0;
  case V_FRACT_F16: kn_putf16(x, fminf(fract(F16(x, 0)), 0x1.ffcp-1f)); return 0;
  case V_CVT_F16_U16: kn_putf16(x, (float)H16(x, 0, T_B32)); return 0;
  case V_CVT_F16_I16: kn_putf16(x, (float)(int16_t)H16(x, 0, T_B32)); return 0;
  case V_CVT_U16_F16: { float f = F16(x, 0); kn_put16(x, (uint16_t)(f != f || f <= 0 ? 0 : f >= 65535 ? 65535 : (uint16_t)f)); return 0; }
  case V_CVT_I16_F16: { float f = F16(x, 0); kn_put16(x, (uint16_t)(int16_t)(f != f ? 0 : f <= -32768 ? -32768 : f >= 32767 ? 32767 : (int16_t)f)); return 0; }
  case V_PACK_B32_F16: {
    kn_lane y = *x;
    kn_valu in = *x->in;
    in.opsel &= 3; /* the destination op_sel bit does not apply */
    y.in = &in;
    kn_put32(x, (uint32_t)kn_f2h(F16(&y, 0)) | (uint32_t)kn_f2h(F16(&y, 1)) << 16);
    return 0;
  }
  case V_DOT2_F16_F16: {
    uint32_t a = kn_raw32(x, 0, T_B32), b = kn_raw32(x, 1, T_B32);
    float s = F16(x, 2) + kn_h2f((uint16_t)a) * kn_h2f((uint16_t)b) + kn_h2f((uint16_t)(a >> 16)) * kn_h2f((uint16_t)(b >> 16));
    kn_putf16(x, s);
    return 0;
  }
  case V_DOT2ACC_F32_F16: {
    uint32_t a = kn_raw32(x, 0, T_B32), b = kn_raw32(x, 1, T_B32);
    kn_putf32(x, F32(x, 2) + kn_h2f((uint16_t)a) * kn_h2f((uint16_t)b) +
                     kn_h2f((uint16_t)(a >> 16)) * kn_h2f((uint16_t)(b >> 16)));
    return 0;
  }
  default: return 1;
  }
}

static int alu_f64(kn_lane *x, unsigned op) {
  switch (op) {
  case V_ADD_F64: kn_putf64(x, F64(x, 0) + F64(x, 1)); return 0;
  case V_MUL_F64: kn_putf64(x, F64(x, 0) * F64(x, 1)); return 0;
  case V_MIN_F64: kn_putf64(x, fmin(F64(x, 0), F64(x, 1))); return 0;
  case V_MAX_F64: kn_putf64(x, fmax(F64(x, 0), F64(x, 1))); return 0;
  case V_FMA_F64: kn_putf64(x, fma(F64(x, 0), F64(x, 1), F64(x, 2))); return 0;
  case V_LDEXP_F64: kn_putf64(x, ldexp(F64(x, 0), I32(x, 1))); return 0;
  case V_TRUNC_F64: kn_putf64(x, trunc(F64(x, 0))); return 0;
  case V_CEIL_F64: kn_putf64(x, ceil(F64(x, 0))); return 0;
  case V_RNDNE_F64: kn_putf64(x, nearbyint(F64(x, 0))); return 0;
  case V_FLOOR_F64: kn_putf64(x, floor(F64(x, 0))); return 0;
  case V_RCP_F64: kn_putf64(x, 1.0 / F64(x, 0)); return 0;
  case V_RSQ_F64: kn_putf64(x, 1.0 / sqrt(F64(x, 0))); return 0;
  case V_SQRT_F64: kn_putf64(x, sqrt(F64(x, 0))); return 0;
  case V_CVT_F64_I32: kn_putf64(x, (double)I32(x, 0)); return 0;
  case V_CVT_F64_U32: kn_putf64(x, (double)U32(x, 0)); return 0;
  case V_CVT_F64_F32: kn_putf64(x, (double)F32(x, 0)); return 0;
  case V_CVT_F32_F64: kn_putf32(x, (float)F64(x, 0)); return 0;
  case V_CVT_I32_F64: kn_put32(x, (uint32_t)sat_i32(F64(x, 0))); return 0;
  case V_CVT_U32_F64: kn_put32(x, sat_u32(F64(x, 0))); return 0;
  default: return 1;
  }
}

int kn_alu_lane(kn_lane *x) {
  unsigned op = x->in->op;
  if (!alu_int(x, op) || !alu_f32(x, op) || !alu_f16(x, op) || !alu_f64(x, op) || !kn_alu_div(x, op)) return 0;
  return -1;
}
