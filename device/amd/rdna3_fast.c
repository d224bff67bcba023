/* Whole-wave fast paths for the vector ALU opcodes that dominate kiln's kernels (integer bit work, f32 arithmetic,
 * conversions, compares, v_cndmask, carries, VOPD pairs): operands are resolved once when the code object is decoded
 * (a VGPR row, an SGPR index or a constant), and each opcode is one loop over the 32 lanes that the compiler
 * vectorizes, with EXEC applied when results are written. (v_min/v_max_f32 are left out: which NaN libm's fminf
 * returns for two NaNs is not what a vectorized loop returns.) DPP16/DPP8 on src0 (the source lanes gathered first,
 * those of a full EXEC decoded once) and the abs/neg input modifiers (where the executors apply them: f32 arithmetic
 * and compares, v_mov_b32, v_cndmask_b32) take this path too; output modifiers, clamp, op_sel and SCC/VCCZ/EXECZ
 * operands do not: those forms run through the per-lane executors of rdna3_valu.c. The semantics are the executors' (rdna3_alu.c, rdna3_cmp.c): kn_rdna3_check_fast runs both on random
 * wave states and compares every register, which tests/test_rdna3.c does for every opcode listed here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../base/env.h"
#include "rdna3_ops.h"
#include "rdna3_wave.h"

enum { FS_NONE, FS_V, FS_S, FS_C };

/* the VOP3 opcodes with a fast path, and their number of sources */
static int arity(unsigned op) {
  switch (op) {
  case V_MOV_B32: case V_NOT_B32: case V_CVT_F32_I32: case V_CVT_F32_U32: case V_CVT_F32_UBYTE0:
  case V_CVT_F32_UBYTE1: case V_CVT_F32_UBYTE2: case V_CVT_F32_UBYTE3: case V_CVT_F32_F16: case V_READFIRSTLANE_B32:
    return 1;
  case V_AND_B32: case V_OR_B32: case V_XOR_B32: case V_LSHLREV_B32: case V_LSHRREV_B32: case V_ASHRREV_I32:
  case V_ADD_NC_U32: case V_SUB_NC_U32: case V_MUL_LO_U32: case V_MUL_U32_U24: case V_MIN_U32: case V_MAX_U32:
  case V_MIN_I32: case V_MAX_I32: case V_LSHRREV_B16: case V_ASHRREV_I16: case V_ADD_F32: case V_SUB_F32:
  case V_SUBREV_F32: case V_MUL_F32: case V_ADD_CO_U32:
    return 2;
  case V_FMA_F32: case V_FMAC_F32: case V_FMAAK_F32: case V_FMAMK_F32: case V_BFE_U32: case V_BFE_I32:
  case V_BFI_B32: case V_AND_OR_B32: case V_OR3_B32: case V_XOR3_B32: case V_LSHL_OR_B32: case V_LSHL_ADD_U32:
  case V_ADD3_U32: case V_MAD_U32_U24: case V_ALIGNBIT_B32: case V_CNDMASK_B32: case V_ADD_CO_CI_U32:
  case V_MAD_U64_U32:
    return 3;
  default:
    if (op >= V_CMPX_F_F16) op -= V_CMPX_F_F16 - V_CMP_F_F16;
    if ((op >= V_CMP_F_F32 && op <= V_CMP_T_F32) || (op >= V_CMP_F_I32 && op <= V_CMP_T_I32) ||
        (op >= V_CMP_F_U32 && op <= V_CMP_T_U32))
      return 2;
    return 0;
  }
}

static bool is_cmp(unsigned op) { return op < 256; }

/* Operand i from a source operand number; false for the forms left to the per-lane executors. */
static bool operand(kn_fop *f, int i, unsigned src, uint32_t lit, bool f16, bool b64) {
  static const float fc[] = {0.5f, -0.5f, 1.0f, -1.0f, 2.0f, -2.0f, 4.0f, -4.0f};
  f->kind[i] = FS_C, f->idx[i] = 0, f->val[i] = 0;
  if (src >= OP_VGPR0) {
    f->kind[i] = FS_V, f->idx[i] = (uint8_t)(src - OP_VGPR0);
    return !b64 || src - OP_VGPR0 < 255;
  }
  if (src == OP_NULL) return true;
  if (src < 128) {
    f->kind[i] = FS_S, f->idx[i] = (uint8_t)src;
    return !b64 || src < 127;
  }
  if (src <= 192) return f->val[i] = src - 128, true;
  if (src <= 208) return f->val[i] = (uint32_t)(192 - (int)src), f->neg64 |= (uint8_t)(b64 << i), true;
  if (src >= 240 && src <= 248) {
    if (f16 || b64) return false;
    f->val[i] = src == 248 ? 0x3e22f983u : f2u(fc[src - 240]);
    return true;
  }
  if (src == OP_LITERAL) return f->val[i] = lit, true;
  return false;
}

/* A scalar destination the fast path may write: SGPRs, VCC, null, M0, EXEC (as kn_swrite accepts them). */
static bool sdst_ok(unsigned d) { return d <= OP_VCC_HI || (d >= OP_NULL && d <= OP_EXEC_HI); }

/* The opcodes whose sources take the float input modifiers (abs, neg) as sign-bit operations in the per-lane
 * executors: f32 arithmetic and compares (F32), v_mov_b32 and v_cndmask_b32's two data sources (M32). */
static bool takes_fmods(unsigned op) {
  switch (op) {
  case V_ADD_F32: case V_SUB_F32: case V_SUBREV_F32: case V_MUL_F32: case V_FMA_F32: case V_FMAC_F32: case V_MOV_B32:
  case V_CNDMASK_B32:
    return true;
  default:
    if (op >= V_CMPX_F_F16) op -= V_CMPX_F_F16 - V_CMP_F_F16;
    return op >= V_CMP_F_F32 && op <= V_CMP_T_F32;
  }
}

static bool finish(kn_fop *f, unsigned op) {
  f->op = (uint16_t)op;
  if (f->fneg || f->fabs) { /* modifiers only where the executors apply them, on the sources they apply them to */
    if (!takes_fmods(op)) return false;
    uint8_t keep = op == V_CNDMASK_B32 ? 3 : (uint8_t)((1u << arity(op)) - 1);
    f->fneg &= keep, f->fabs &= keep;
  }
  if (f->dpp) { /* DPP on src0: not for the scalar-result and 64-bit opcodes, nor a reserved control */
    if (op == V_READFIRSTLANE_B32 || op == V_MAD_U64_U32 || f->kind[0] != FS_V) return false;
    if (f->dpp == 16 && kn_dpp_lane(16, f->dppw, false, ~0u, 0) == -2) return false;
    bool bound_zero = f->dpp == 16 ? bits(f->dppw, 19, 19) : 1;
    f->dppwm = 0;
    for (int l = 0; l < KN_LANES; l++) { /* under a full EXEC: the source lane (KN_LANES: reads 0), the lanes written */
      int s = kn_dpp_lane(f->dpp, f->dppw, f->dppfi, ~0u, l);
      f->dppsrc[l] = (uint8_t)(s < 0 ? KN_LANES : s);
      if (kn_dpp_writes(f->dpp, f->dppw, l) && (s >= 0 || bound_zero)) f->dppwm |= 1u << l;
    }
  }
  if (op == V_READFIRSTLANE_B32) return sdst_ok(f->vdst);
  if (is_cmp(op)) {
    f->cmpx = op >= V_CMPX_F_F16;
    return f->cmpx || sdst_ok(f->sdst);
  }
  if (op == V_ADD_CO_U32 || op == V_ADD_CO_CI_U32 || op == V_MAD_U64_U32) return sdst_ok(f->sdst);
  return true;
}

/* The short encodings (VOP1, VOP2, VOPC): src0 in [8:0], vsrc1 in [16:9], vdst in [24:17]. */
static bool decode_short(kn_fop *f, const uint32_t *w, unsigned len, int fam, unsigned op) {
  uint32_t w0 = w[0], lit = len > 4 ? w[len / 4 - 1] : 0;
  unsigned s0 = bits(w0, 8, 0), v3;
  memset(f, 0, sizeof *f);
  if (s0 == OP_DPP16 || s0 == OP_DPP8 || s0 == OP_DPP8FI) { /* src0 is the VGPR in the DPP dword */
    f->dpp = s0 == OP_DPP16 ? 16 : 8, f->dppw = w[1];
    f->dppfi = (uint8_t)(f->dpp == 8 ? s0 == OP_DPP8FI : bits(w[1], 18, 18));
    if (f->dpp == 16) { /* DPP16 carries src0/src1 modifiers */
      f->fneg = (uint8_t)(bits(w[1], 20, 20) | bits(w[1], 22, 22) << 1);
      f->fabs = (uint8_t)(bits(w[1], 21, 21) | bits(w[1], 23, 23) << 1);
    }
    s0 = OP_VGPR0 + (w[1] & 255), lit = 0;
  }
  f->vdst = (uint8_t)bits(w0, 24, 17), f->sdst = OP_VCC_LO;
  if (fam == KN_FAM_VOPC) {
    v3 = op;
    if (!arity(v3)) return false;
    return operand(f, 0, s0, lit, false, false) && operand(f, 1, OP_VGPR0 + bits(w0, 16, 9), lit, false, false) &&
           finish(f, v3);
  }
  int m = kn_rdna3_vop3_of(fam == KN_FAM_VOP1 ? "vop1" : "vop2", op);
  if (m < 0 || (fam == KN_FAM_VOP1 && op == 0) || !arity((unsigned)m)) return false;
  v3 = (unsigned)m;
  bool f16 = v3 == V_CVT_F32_F16;
  if (!operand(f, 0, s0, lit, f16, false)) return false;
  if (fam == KN_FAM_VOP1) return finish(f, v3);
  unsigned v1 = OP_VGPR0 + bits(w0, 16, 9);
  switch (v3) {
  case V_FMAMK_F32: /* src0 * K + vsrc1 */
    if (f->dpp) return false;
    return operand(f, 1, OP_LITERAL, lit, false, false) && operand(f, 2, v1, lit, false, false) &&
           finish(f, V_FMA_F32);
  case V_FMAAK_F32: /* src0 * vsrc1 + K */
    if (f->dpp) return false;
    return operand(f, 1, v1, lit, false, false) && operand(f, 2, OP_LITERAL, lit, false, false) &&
           finish(f, V_FMA_F32);
  case V_FMAC_F32: return operand(f, 1, v1, lit, false, false) && operand(f, 2, OP_VGPR0 + f->vdst, lit, false, false) &&
                          finish(f, v3);
  case V_CNDMASK_B32: case V_ADD_CO_CI_U32:
    return operand(f, 1, v1, lit, false, false) && operand(f, 2, OP_VCC_LO, lit, false, false) && finish(f, v3);
  default:
    if (arity(v3) != 2) return false;
    return operand(f, 1, v1, lit, false, false) && finish(f, v3);
  }
}

/* VOP3 and VOP3SD: forms without op_sel/clamp/omod; abs/neg where the opcode takes them (finish); DPP on src0. */
static bool decode_vop3(kn_fop *f, const uint32_t *w, unsigned len, unsigned op) {
  uint32_t w0 = w[0], w1 = w[1], lit = len > 8 ? w[len / 4 - 1] : 0;
  unsigned src[3] = {bits(w1, 8, 0), bits(w1, 17, 9), bits(w1, 26, 18)};
  int n = arity(op);
  if (!n || op >= 1024 || op == V_FMAAK_F32 || op == V_FMAMK_F32) return false;
  if (bits(w0, 15, 15) || bits(w1, 28, 27)) return false; /* clamp, omod */
  bool sd = op == V_ADD_CO_U32 || op == V_ADD_CO_CI_U32 || op == V_MAD_U64_U32;
  if (sd && bits(w1, 31, 29)) return false; /* neg on a carry op */
  if (!sd && bits(w0, 14, 11)) return false; /* op_sel */
  memset(f, 0, sizeof *f);
  if (!sd) f->fneg = (uint8_t)bits(w1, 31, 29), f->fabs = (uint8_t)bits(w0, 10, 8);
  if (src[0] == OP_DPP16 || src[0] == OP_DPP8 || src[0] == OP_DPP8FI) { /* the DPP dword follows; no literal */
    f->dpp = src[0] == OP_DPP16 ? 16 : 8, f->dppw = w[2];
    f->dppfi = (uint8_t)(f->dpp == 8 ? src[0] == OP_DPP8FI : bits(w[2], 18, 18));
    src[0] = OP_VGPR0 + (w[2] & 255), lit = 0;
  }
  f->vdst = (uint8_t)bits(w0, 7, 0);
  f->sdst = (uint8_t)(sd ? bits(w0, 14, 8) : bits(w0, 7, 0));
  if (op == V_FMAC_F32) src[2] = OP_VGPR0 + f->vdst;
  bool f16 = op == V_CVT_F32_F16;
  for (int i = 0; i < n; i++)
    if (!operand(f, i, src[i], lit, f16, op == V_MAD_U64_U32 && i == 2)) return false;
  return finish(f, op);
}

static const unsigned vopd_ops[32] = {
  [VOPD_FMAC_F32] = V_FMAC_F32, [VOPD_FMAAK_F32] = V_FMAAK_F32, [VOPD_FMAMK_F32] = V_FMAMK_F32,
  [VOPD_MUL_F32] = V_MUL_F32, [VOPD_ADD_F32] = V_ADD_F32, [VOPD_SUB_F32] = V_SUB_F32,
  [VOPD_SUBREV_F32] = V_SUBREV_F32, [VOPD_MOV_B32] = V_MOV_B32, [VOPD_CNDMASK_B32] = V_CNDMASK_B32,
  [VOPD_ADD_NC_U32] = V_ADD_NC_U32,
  [VOPD_LSHLREV_B32] = V_LSHLREV_B32, [VOPD_AND_B32] = V_AND_B32,
};

static bool vopd_half(kn_fop *f, unsigned o, unsigned src0, unsigned vsrc1, unsigned vdst, uint32_t lit) {
  unsigned op = o < 32 ? vopd_ops[o] : 0;
  if (!op && o != VOPD_FMAC_F32) return false;
  memset(f, 0, sizeof *f);
  f->vdst = (uint8_t)vdst;
  unsigned v1 = OP_VGPR0 + vsrc1;
  if (!operand(f, 0, src0, lit, false, false)) return false;
  switch (op) {
  case V_MOV_B32: return finish(f, op);
  case V_FMAC_F32: return operand(f, 1, v1, lit, false, false) && operand(f, 2, OP_VGPR0 + vdst, lit, false, false) &&
                          finish(f, op);
  case V_FMAMK_F32:
    return operand(f, 1, OP_LITERAL, lit, false, false) && operand(f, 2, v1, lit, false, false) && finish(f, V_FMA_F32);
  case V_FMAAK_F32:
    return operand(f, 1, v1, lit, false, false) && operand(f, 2, OP_LITERAL, lit, false, false) && finish(f, V_FMA_F32);
  case V_CNDMASK_B32:
    return operand(f, 1, v1, lit, false, false) && operand(f, 2, OP_VCC_LO, lit, false, false) && finish(f, op);
  default: return operand(f, 1, v1, lit, false, false) && finish(f, op);
  }
}

/* ---- execution ---- */

#define LANES for (int l = 0; l < KN_LANES; l++)

static inline __attribute__((always_inline)) const uint32_t *src(const kn_wave *w, const kn_fop *f, int i, uint32_t *tmp) {
  if (f->kind[i] == FS_V) return w->v[f->idx[i]];
  uint32_t x = f->kind[i] == FS_S ? w->s[f->idx[i]] : f->val[i];
  LANES tmp[l] = x;
  return tmp;
}

/* f16 bits to f32 bits, exactly as the (float)_Float16 conversion (NaNs quieted), without a library call */
static inline uint32_t h2f(uint32_t h) {
  uint32_t a = h & 0x7fff, r = f2u(u2f(a << 13) * 0x1p112f);
  if (a >= 0x7c00) r = a == 0x7c00 ? 0x7f800000u : 0x7fc00000u | (a & 0x1ff) << 13;
  return r | (h & 0x8000) << 16;
}

static inline float F(uint32_t u) { return u2f(u); }
static inline uint32_t U(float f) { return f2u(f); }



#define MASK(cond) LANES m |= (uint32_t)(cond) << l

/* A compare's lane mask (before EXEC): one loop per condition. */
static inline __attribute__((always_inline)) uint32_t compare(unsigned op, const uint32_t *a, const uint32_t *b) {
  uint32_t m = 0;
  if (op >= V_CMPX_F_F16) op -= V_CMPX_F_F16 - V_CMP_F_F16;
  if (op <= V_CMP_T_F32) {
    int c = (int)(op - V_CMP_F_F32);
    if (c == 0 || c == 15) return c ? ~0u : 0;
    float x[KN_LANES], y[KN_LANES];
    LANES x[l] = F(a[l]), y[l] = F(b[l]);
    switch (c) {
    case 1: MASK(x[l] < y[l]); break;
    case 2: MASK(x[l] == y[l]); break;
    case 3: MASK(x[l] <= y[l]); break;
    case 4: MASK(x[l] > y[l]); break;
    case 6: MASK(x[l] >= y[l]); break;
    case 9: MASK(!(x[l] >= y[l])); break;
    case 11: MASK(!(x[l] > y[l])); break;
    case 12: MASK(!(x[l] <= y[l])); break;
    case 13: MASK(!(x[l] == y[l])); break;
    case 14: MASK(!(x[l] < y[l])); break;
    default: LANES m |= (uint32_t)kn_fcmp(c, x[l], y[l]) << l; break;
    }
    return m;
  }
  bool sign = op <= V_CMP_T_I32;
  int c = (int)(op - (sign ? V_CMP_F_I32 : V_CMP_F_U32));
  const int32_t *sa = (const int32_t *)a, *sb = (const int32_t *)b;
  switch (c) {
  case 0: return 0;
  case 1: if (sign) MASK(sa[l] < sb[l]); else MASK(a[l] < b[l]); return m;
  case 2: MASK(a[l] == b[l]); return m;
  case 3: if (sign) MASK(sa[l] <= sb[l]); else MASK(a[l] <= b[l]); return m;
  case 4: if (sign) MASK(sa[l] > sb[l]); else MASK(a[l] > b[l]); return m;
  case 5: MASK(a[l] != b[l]); return m;
  case 6: if (sign) MASK(sa[l] >= sb[l]); else MASK(a[l] >= b[l]); return m;
  default: return ~0u;
  }
}

enum { R_V32, R_V64, R_MASK };

/* Evaluates f on every lane: the 32-bit result (or low half) in o, the high half in hi, a compare or carry mask in
 * *m. Returns what the instruction writes. Lanes outside EXEC are computed too and never written. */
/* the lane loops are compiled for AVX-512 and AVX2 too, picked at run time */
#if defined(__x86_64__) && defined(__GNUC__)
#define LANE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LANE_CLONES
#endif

/* source i with the float input modifiers applied to its sign bit */
static inline __attribute__((always_inline)) const uint32_t *src_mod(const kn_fop *f, int i, const uint32_t *x, uint32_t *tmp) {
  uint32_t keep = (f->fabs >> i & 1) ? 0x7fffffffu : ~0u, flip = (f->fneg >> i & 1) ? 0x80000000u : 0;
  if (keep == ~0u && !flip) return x;
  LANES tmp[l] = (x[l] & keep) ^ flip;
  return tmp;
}

/* a0: src0's lanes as DPP selected them (NULL: src0 as decoded) */
static inline __attribute__((always_inline)) int eval(const kn_wave *w, const kn_fop *f, const uint32_t *a0, uint32_t *o,
                                                      uint32_t *hi, uint32_t *m) {
  uint32_t t0[KN_LANES], t1[KN_LANES], t2[KN_LANES];
  const uint32_t *a = a0 ? a0 : src(w, f, 0, t0);
  const uint32_t *b = f->kind[1] ? src(w, f, 1, t1) : a, *c = f->kind[2] ? src(w, f, 2, t2) : a;
  uint32_t m0[KN_LANES], m1[KN_LANES];
  if (f->fneg | f->fabs) a = src_mod(f, 0, a, m0), b = src_mod(f, 1, b, m1), c = src_mod(f, 2, c, t2);
  uint32_t mm = 0;
  switch (f->op) {
  case V_MOV_B32: LANES o[l] = a[l]; break;
  case V_NOT_B32: LANES o[l] = ~a[l]; break;
  case V_CVT_F32_I32: LANES o[l] = U((float)(int32_t)a[l]); break;
  case V_CVT_F32_U32: LANES o[l] = U((float)a[l]); break;
  case V_CVT_F32_UBYTE0: LANES o[l] = U((float)(a[l] & 0xff)); break;
  case V_CVT_F32_UBYTE1: LANES o[l] = U((float)(a[l] >> 8 & 0xff)); break;
  case V_CVT_F32_UBYTE2: LANES o[l] = U((float)(a[l] >> 16 & 0xff)); break;
  case V_CVT_F32_UBYTE3: LANES o[l] = U((float)(a[l] >> 24)); break;
  case V_CVT_F32_F16: LANES o[l] = h2f(a[l]); break;
  case V_AND_B32: LANES o[l] = a[l] & b[l]; break;
  case V_OR_B32: LANES o[l] = a[l] | b[l]; break;
  case V_XOR_B32: LANES o[l] = a[l] ^ b[l]; break;
  case V_LSHLREV_B32:
    if (f->kind[0] != FS_V) { uint32_t k = a[0] & 31; LANES o[l] = b[l] << k; }
    else LANES o[l] = b[l] << (a[l] & 31);
    break;
  case V_LSHRREV_B32:
    if (f->kind[0] != FS_V) { uint32_t k = a[0] & 31; LANES o[l] = b[l] >> k; }
    else LANES o[l] = b[l] >> (a[l] & 31);
    break;
  case V_ASHRREV_I32:
    if (f->kind[0] != FS_V) { uint32_t k = a[0] & 31; LANES o[l] = (uint32_t)((int32_t)b[l] >> k); }
    else LANES o[l] = (uint32_t)((int32_t)b[l] >> (a[l] & 31));
    break;
  case V_ADD_NC_U32: LANES o[l] = a[l] + b[l]; break;
  case V_SUB_NC_U32: LANES o[l] = a[l] - b[l]; break;
  case V_MUL_LO_U32: LANES o[l] = a[l] * b[l]; break;
  case V_MUL_U32_U24: LANES o[l] = (a[l] & 0xffffff) * (b[l] & 0xffffff); break;
  case V_MIN_U32: LANES o[l] = a[l] < b[l] ? a[l] : b[l]; break;
  case V_MAX_U32: LANES o[l] = a[l] > b[l] ? a[l] : b[l]; break;
  case V_MIN_I32: LANES o[l] = (int32_t)a[l] < (int32_t)b[l] ? a[l] : b[l]; break;
  case V_MAX_I32: LANES o[l] = (int32_t)a[l] > (int32_t)b[l] ? a[l] : b[l]; break;
  case V_LSHRREV_B16: LANES o[l] = (uint16_t)((uint16_t)b[l] >> (a[l] & 15)); break;
  case V_ASHRREV_I16: LANES o[l] = (uint16_t)((int16_t)b[l] >> (a[l] & 15)); break;
  case V_ADD_F32: LANES o[l] = U(F(a[l]) + F(b[l])); break;
  case V_SUB_F32: LANES o[l] = U(F(a[l]) - F(b[l])); break;
  case V_SUBREV_F32: LANES o[l] = U(F(b[l]) - F(a[l])); break;
  case V_MUL_F32: LANES o[l] = U(F(a[l]) * F(b[l])); break;
  case V_FMA_F32: case V_FMAC_F32: LANES o[l] = U(fmaf(F(a[l]), F(b[l]), F(c[l]))); break;
  case V_BFE_U32: case V_BFE_I32: {
    bool sign = f->op == V_BFE_I32;
    if (f->kind[1] == FS_V || f->kind[2] == FS_V) {
      LANES o[l] = kn_bfe32(a[l], b[l], c[l], sign);
      break;
    }
    uint32_t off = b[0] & 31, wd = c[0] & 31; /* the same field in every lane: shifts by one amount */
    if (!wd) LANES o[l] = 0;
    else if (off + wd > 32) LANES o[l] = a[l] >> off; /* the field runs off the top: no sign to extend */
    else if (sign) LANES o[l] = (uint32_t)((int32_t)(a[l] << (32 - off - wd)) >> (32 - wd));
    else LANES o[l] = (a[l] >> off) & (wd == 32 ? ~0u : (1u << wd) - 1);
    break;
  }
  case V_BFI_B32: LANES o[l] = (a[l] & b[l]) | (~a[l] & c[l]); break;
  case V_AND_OR_B32: LANES o[l] = (a[l] & b[l]) | c[l]; break;
  case V_OR3_B32: LANES o[l] = a[l] | b[l] | c[l]; break;
  case V_XOR3_B32: LANES o[l] = a[l] ^ b[l] ^ c[l]; break;
  case V_LSHL_OR_B32: LANES o[l] = (a[l] << (b[l] & 31)) | c[l]; break;
  case V_LSHL_ADD_U32: LANES o[l] = (a[l] << (b[l] & 31)) + c[l]; break;
  case V_ADD3_U32: LANES o[l] = a[l] + b[l] + c[l]; break;
  case V_MAD_U32_U24: LANES o[l] = (a[l] & 0xffffff) * (b[l] & 0xffffff) + c[l]; break;
  case V_ALIGNBIT_B32: LANES o[l] = (uint32_t)((((uint64_t)a[l] << 32) | b[l]) >> (c[l] & 31)); break;
  case V_CNDMASK_B32: LANES o[l] = (c[l] >> l & 1) ? b[l] : a[l]; break;
  case V_ADD_CO_U32:
    LANES {
      uint64_t s = (uint64_t)a[l] + b[l];
      o[l] = (uint32_t)s, mm |= (uint32_t)(s >> 32) << l;
    }
    *m = mm;
    return R_V32 | R_MASK << 4;
  case V_ADD_CO_CI_U32:
    LANES {
      uint64_t s = (uint64_t)a[l] + b[l] + (c[l] >> l & 1);
      o[l] = (uint32_t)s, mm |= (uint32_t)(s >> 32) << l;
    }
    *m = mm;
    return R_V32 | R_MASK << 4;
  case V_MAD_U64_U32: {
    uint32_t c1[KN_LANES];
    if (f->kind[2] == FS_V) memcpy(c1, w->v[f->idx[2] + 1], sizeof c1);
    else {
      uint32_t x = f->kind[2] == FS_S ? w->s[f->idx[2] + 1] : (f->neg64 >> 2 & 1) ? ~0u : 0;
      LANES c1[l] = x;
    }
    LANES {
      unsigned __int128 s = (unsigned __int128)((uint64_t)a[l] * b[l]) + ((uint64_t)c1[l] << 32 | c[l]);
      o[l] = (uint32_t)s, hi[l] = (uint32_t)((uint64_t)s >> 32), mm |= (uint32_t)(s >> 64) << l;
    }
    *m = mm;
    return R_V64 | R_MASK << 4;
  }
  default: /* compares */
    *m = compare(f->op, a, b);
    return R_MASK;
  }
  return R_V32;
}

static inline __attribute__((always_inline)) void vwrite(uint32_t *dst, const uint32_t *o, uint32_t exec) {
  if (exec == ~0u) memcpy(dst, o, KN_LANES * 4);
  else LANES dst[l] = (exec >> l & 1) ? o[l] : dst[l];
}

/* Scalar destinations were checked at decode time (sdst_ok), so these writes cannot fail. */
static inline void swrite(kn_wave *w, unsigned d, uint32_t v) {
  if (d != OP_NULL) w->s[d] = v;
}

/* DPP: src0's lanes as the control selects them (0 where the source lane is invalid and bound_ctrl is set); the lanes
 * that may write (EXEC, the row and bank masks, and not an invalid source without bound_ctrl), as the per-lane
 * executor (rdna3_valu.c) has them. */
static uint32_t dpp_src0(const kn_wave *w, const kn_fop *f, uint32_t exec, uint32_t *a0) {
  const uint32_t *v = w->v[f->idx[0]];
  if (exec == ~0u) { /* every lane active: the lanes the control selects, decoded once (kn_fast_decode) */
    LANES a0[l] = f->dppsrc[l] < KN_LANES ? v[f->dppsrc[l]] : 0;
    return f->dppwm;
  }
  bool bound_zero = f->dpp == 16 ? bits(f->dppw, 19, 19) : 1;
  uint32_t wm = 0;
  LANES {
    a0[l] = 0;
    if (!(exec >> l & 1) || !kn_dpp_writes(f->dpp, f->dppw, l)) continue;
    int s = kn_dpp_lane(f->dpp, f->dppw, f->dppfi, exec, l);
    if (s < 0 && !bound_zero) continue;
    wm |= 1u << l;
    if (s >= 0) a0[l] = v[s];
  }
  return wm;
}

LANE_CLONES static int run_fop(kn_wave *w, const kn_fop *f) {
  uint32_t exec = exec_mask(w), o[KN_LANES], hi[KN_LANES], m = 0, d0[KN_LANES];
  if (f->op == V_READFIRSTLANE_B32) {
    uint32_t t[KN_LANES];
    swrite(w, f->vdst, src(w, f, 0, t)[exec ? __builtin_ctz(exec) : 0]);
    return 0;
  }
  if (f->dpp) exec = dpp_src0(w, f, exec, d0);
  int r = eval(w, f, f->dpp ? d0 : NULL, o, hi, &m);
  if ((r & 15) == R_MASK) {
    if (f->cmpx) w->s[OP_EXEC_LO] = m & exec;
    else swrite(w, f->sdst, m & exec);
    return 0;
  }
  vwrite(w->v[f->vdst], o, exec);
  if ((r & 15) == R_V64) vwrite(w->v[(f->vdst + 1) & 255], hi, exec);
  if (r >> 4 == R_MASK) swrite(w, f->sdst, m & exec);
  return 0;
}

static int fast_valu(kn_cu *cu, kn_wave *w, const kn_inst *in) {
  run_fop(w, &in->x);
  w->pc += in->len;
  return 0;
}

/* VOPD: both halves read their operands before either writes. */
LANE_CLONES static void run_vopd(kn_wave *w, const kn_inst *in) {
  uint32_t exec = exec_mask(w), ox[KN_LANES], oy[KN_LANES], hi[KN_LANES], m;
  eval(w, &in->x, NULL, ox, hi, &m);
  eval(w, &in->y, NULL, oy, hi, &m);
  vwrite(w->v[in->x.vdst], ox, exec);
  vwrite(w->v[in->y.vdst], oy, exec);
}

static int fast_vopd(kn_cu *cu, kn_wave *w, const kn_inst *in) {
  run_vopd(w, in);
  w->pc += in->len;
  return 0;
}

int kn_fast_kind(const kn_inst *in) {
  kn_inst_fn fn = in->fn;
  return fn == fast_valu ? 1 : fn == fast_vopd ? 2 : fn == kn_inst_nop ? 3 : 0;
}

bool kn_fast_decode(kn_inst *in) {
  const uint32_t *w = in->w;
  bool ok = false;
  switch (in->fam) {
  case KN_FAM_VOP1: case KN_FAM_VOP2: case KN_FAM_VOPC: ok = decode_short(&in->x, w, in->len, in->fam, in->op); break;
  case KN_FAM_VOP3: ok = decode_vop3(&in->x, w, in->len, in->op); break;
  case KN_FAM_GLOBAL: case KN_FAM_FLAT: return kn_fast_mem_decode(in);
  case KN_FAM_VOPD: {
    uint32_t lit = in->len > 8 ? w[in->len / 4 - 1] : 0;
    unsigned vdstx = bits(w[1], 31, 24), vdsty = bits(w[1], 23, 17) << 1 | ((vdstx & 1) ^ 1);
    ok = vopd_half(&in->x, bits(w[0], 25, 22), bits(w[0], 8, 0), bits(w[0], 16, 9), vdstx, lit) &&
         vopd_half(&in->y, bits(w[0], 21, 17), bits(w[1], 8, 0), bits(w[1], 16, 9), vdsty, lit);
    if (ok) in->fn = fast_vopd;
    return ok;
  }
  default: return false;
  }
  if (ok) in->fn = fast_valu;
  return ok;
}

/* ---- checking the fast path against the per-lane executors ---- */

static uint32_t rng_next(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*s >> 33);
}

/* random register contents that exercise the opcodes: small and large integers, floats of every kind */
static uint32_t rnd_value(uint64_t *s) {
  static const uint32_t special[] = {0, 1, 0x80000000u, 0x7fffffffu, 0xffffffffu, 0x7f800000u, 0xff800000u,
                                     0x7fc00000u, 0x00000001u, 0x80000001u, 0x3f800000u, 0x4f800000u, 31, 32, 16};
  uint32_t r = rng_next(s);
  switch (r % 6) {
  case 0: return special[rng_next(s) % (sizeof special / sizeof special[0])];
  case 1: return rng_next(s) % 64;
  case 2: return f2u((float)((int32_t)rng_next(s) % 20000) / 64.0f);
  case 3: return (uint32_t)kn_f2h((float)((int32_t)rng_next(s) % 2000) / 16.0f) | rng_next(s) << 16;
  default: return rng_next(s);
  }
}

/* f32 arithmetic: with two NaN operands, which payload comes out depends on the operand order the host compiler
 * chose (the executors' results are the host's, not the hardware's), so any NaN equals any NaN in its result. */
static bool nan_result(const kn_fop *f, int r) {
  switch (f->op) {
  case V_ADD_F32: case V_SUB_F32: case V_SUBREV_F32: case V_MUL_F32: case V_FMA_F32: case V_FMAC_F32:
    return r == f->vdst;
  default: return false;
  }
}

static bool is_nan(uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; }

int kn_rdna3_check_fast(const uint32_t *words, size_t n, uint64_t seed, char *err, size_t errlen) {
  kn_inst in = {0};
  uint32_t code[8] = {0};
  memcpy(code, words, (n > 4 ? 4 : n) * 4);
  const char *famname;
  unsigned op;
  unsigned len = kn_rdna3_decode(code, n > 4 ? 4 : n, &famname, &op, NULL);
  if (!len) return kn_errf(err, errlen, "word 0x%08x does not decode", words[0]);
  in.w = code, in.len = (uint8_t)len, in.op = (uint16_t)op, in.fam = (uint8_t)kn_rdna3_family(famname);
  if (!kn_fast_decode(&in)) return 0;
  kn_wave *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  if (!a || !b) return free(a), free(b), kn_errf(err, errlen, "out of memory");
  uint64_t s = seed * 2654435761u + 1;
  memset(a, 0, sizeof *a);
  for (int i = 0; i < 106; i++) a->s[i] = rnd_value(&s);
  a->s[OP_VCC_LO] = rng_next(&s), a->s[OP_VCC_HI] = rng_next(&s), a->s[OP_M0] = rnd_value(&s);
  uint32_t execs[] = {~0u, rng_next(&s), 0x0000ffffu, 1u << (rng_next(&s) & 31)};
  a->s[OP_EXEC_LO] = execs[seed % 4];
  for (int r = 0; r < KN_NVGPR; r++)
    for (int l = 0; l < KN_LANES; l++) a->v[r][l] = rnd_value(&s);
  a->scc = rng_next(&s) & 1, a->pc = 0x1000, a->state = WAVE_RUN;
  memcpy(b, a, sizeof *a);
  kn_rdna3_dispatch d = {.name = "fastcheck"};
  kn_rdna3_stats st = {0};
  char e1[256] = "";
  kn_cu cu = {.d = &d, .st = &st, .err = e1, .errlen = sizeof e1, .entry = 0x1000};
  int rc = kn_inst_generic(&cu, a, &in);
  int result = 1;
  if (rc) result = kn_errf(err, errlen, "the per-lane executor fails where the fast path runs: %s", e1);
  else {
    in.fn(&cu, b, &in);
    if (memcmp(a->s, b->s, sizeof a->s) || a->scc != b->scc || a->pc != b->pc) {
      int i = 0;
      while (i < 128 && a->s[i] == b->s[i]) i++;
      result = kn_errf(err, errlen, "fast path differs in scalar state (s%d: 0x%08x, want 0x%08x)", i, i < 128 ? b->s[i] : 0,
                       i < 128 ? a->s[i] : 0);
    } else {
      for (int r = 0; r < KN_NVGPR && result == 1; r++)
        for (int l = 0; l < KN_LANES; l++)
          if (a->v[r][l] != b->v[r][l] && !(is_nan(a->v[r][l]) && is_nan(b->v[r][l]) &&
                                             (nan_result(&in.x, r) || (in.fam == KN_FAM_VOPD && nan_result(&in.y, r))))) {
            result = kn_errf(err, errlen, "fast path differs in v%d lane %d: 0x%08x, want 0x%08x (exec 0x%08x)", r, l,
                             b->v[r][l], a->v[r][l], a->s[OP_EXEC_LO]);
            break;
          }
    }
  }
  free(a), free(b);
  return result;
}
