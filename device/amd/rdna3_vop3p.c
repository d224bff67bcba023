/* Packed and dual-issue vector ALU: VOP3P (two 16-bit lanes per register with op_sel/op_sel_hi/neg_hi, the mixed
 * f16/f32 FMA, integer dot products) and VOPD (two independent VOP2-style operations issued together: every operand
 * of both is read before either result is written). */
#include <math.h>

#include "rdna3_ops.h"
#include "rdna3_valu.h"

typedef struct {
  unsigned op, vdst, src[3], opsel, opsel_hi, neg, neg_hi, clamp;
} vop3p_inst;

/* the 32 bits of packed operand i in lane l */
static uint32_t p_raw(kn_cu *cu, kn_wave *w, const vop3p_inst *in, int i, int l, int t) {
  unsigned s = in->src[i];
  if (s >= OP_VGPR0) return w->v[s - OP_VGPR0][l];
  return kn_sread(cu, w, s, t);
}

/* half h (0 lo, 1 hi) of the result takes operand i's half chosen by op_sel (lo) or op_sel_hi (hi) */
static uint16_t p_half(uint32_t raw, const vop3p_inst *in, int i, int h) {
  int sel = h ? (int)(in->opsel_hi >> i & 1) : (int)(in->opsel >> i & 1);
  return (uint16_t)(raw >> (sel ? 16 : 0));
}

static float p_f16(uint32_t raw, const vop3p_inst *in, int i, int h) {
  uint16_t v = p_half(raw, in, i, h);
  if ((h ? in->neg_hi : in->neg) >> i & 1) v ^= 0x8000;
  return kn_h2f(v);
}

static float clampf(const vop3p_inst *in, float f) {
  return in->clamp ? (f != f ? 0.0f : f < 0 ? 0.0f : f > 1 ? 1.0f : f) : f;
}

/* a mixed-precision operand: f32 unless op_sel_hi marks it f16 (then op_sel picks the half); neg_hi is abs */
static float mix_src(uint32_t raw, const vop3p_inst *in, int i) {
  float f = (in->opsel_hi >> i & 1) ? kn_h2f((uint16_t)(raw >> ((in->opsel >> i & 1) ? 16 : 0))) : u2f(raw);
  if (in->neg_hi >> i & 1) f = fabsf(f);
  if (in->neg >> i & 1) f = -f;
  return f;
}

static int dot4(uint32_t a, uint32_t b, bool sa, bool sb) {
  int s = 0;
  for (int k = 0; k < 4; k++) {
    int x = sa ? (int8_t)(a >> (8 * k)) : (int)((a >> (8 * k)) & 0xff);
    int y = sb ? (int8_t)(b >> (8 * k)) : (int)((b >> (8 * k)) & 0xff);
    s += x * y;
  }
  return s;
}

static int dot8(uint32_t a, uint32_t b, bool sa, bool sb) {
  int s = 0;
  for (int k = 0; k < 8; k++) {
    int x = (int)((a >> (4 * k)) & 15), y = (int)((b >> (4 * k)) & 15);
    if (sa && x > 7) x -= 16;
    if (sb && y > 7) y -= 16;
    s += x * y;
  }
  return s;
}

/* one lane: 0 and *out, or -1 for an opcode not implemented */
static int p_lane(kn_cu *cu, kn_wave *w, const vop3p_inst *in, int l, uint32_t *out) {
  int t = in->op == V_FMA_MIX_F32 || in->op == V_FMA_MIXLO_F16 || in->op == V_FMA_MIXHI_F16 ? T_F32 : T_F16;
  uint32_t r0 = p_raw(cu, w, in, 0, l, t), r1 = p_raw(cu, w, in, 1, l, t), r2 = p_raw(cu, w, in, 2, l, t);
  uint32_t raw[3] = {r0, r1, r2};
  uint16_t h[2];
  switch (in->op) {
  case V_PK_FMA_F16: case V_PK_ADD_F16: case V_PK_MUL_F16: case V_PK_MIN_F16: case V_PK_MAX_F16:
    for (int k = 0; k < 2; k++) {
      float a = p_f16(r0, in, 0, k), b = p_f16(r1, in, 1, k), r;
      if (in->op == V_PK_FMA_F16) r = (float)fma(a, b, p_f16(r2, in, 2, k));
      else if (in->op == V_PK_ADD_F16) r = a + b;
      else if (in->op == V_PK_MUL_F16) r = a * b;
      else if (in->op == V_PK_MIN_F16) r = fminf(a, b);
      else r = fmaxf(a, b);
      h[k] = kn_f2h(clampf(in, r));
    }
    break;
  case V_PK_ADD_U16: case V_PK_SUB_U16: case V_PK_ADD_I16: case V_PK_SUB_I16: case V_PK_MUL_LO_U16:
  case V_PK_LSHLREV_B16: case V_PK_LSHRREV_B16: case V_PK_ASHRREV_I16: case V_PK_MAX_I16: case V_PK_MIN_I16:
  case V_PK_MAX_U16: case V_PK_MIN_U16: case V_PK_MAD_U16: case V_PK_MAD_I16:
    for (int k = 0; k < 2; k++) {
      uint16_t a = p_half(r0, in, 0, k), b = p_half(r1, in, 1, k), c = p_half(r2, in, 2, k);
      int16_t sa = (int16_t)a, sb = (int16_t)b;
      switch (in->op) {
      case V_PK_ADD_U16: case V_PK_ADD_I16: h[k] = (uint16_t)(a + b); break;
      case V_PK_SUB_U16: case V_PK_SUB_I16: h[k] = (uint16_t)(a - b); break;
      case V_PK_MUL_LO_U16: h[k] = (uint16_t)(a * b); break;
      case V_PK_LSHLREV_B16: h[k] = (uint16_t)(b << (a & 15)); break;
      case V_PK_LSHRREV_B16: h[k] = (uint16_t)(b >> (a & 15)); break;
      case V_PK_ASHRREV_I16: h[k] = (uint16_t)(sb >> (a & 15)); break;
      case V_PK_MAX_I16: h[k] = (uint16_t)(sa > sb ? sa : sb); break;
      case V_PK_MIN_I16: h[k] = (uint16_t)(sa < sb ? sa : sb); break;
      case V_PK_MAX_U16: h[k] = a > b ? a : b; break;
      case V_PK_MIN_U16: h[k] = a < b ? a : b; break;
      default: h[k] = (uint16_t)(a * b + c); break; /* mad_u16 / mad_i16: the low 16 bits agree */
      }
    }
    break;
  case V_FMA_MIX_F32:
    *out = f2u(clampf(in, fmaf(mix_src(r0, in, 0), mix_src(r1, in, 1), mix_src(r2, in, 2))));
    return 0;
  case V_FMA_MIXLO_F16: case V_FMA_MIXHI_F16: {
    uint16_t v = kn_f2h(clampf(in, fmaf(mix_src(r0, in, 0), mix_src(r1, in, 1), mix_src(r2, in, 2))));
    uint32_t old = w->v[in->vdst][l];
    *out = in->op == V_FMA_MIXLO_F16 ? (old & 0xffff0000u) | v : (old & 0xffff) | (uint32_t)v << 16;
    return 0;
  }
  case V_DOT2_F32_F16: {
    float s = u2f(r2);
    if (in->neg >> 2 & 1) s = -s;
    for (int k = 0; k < 2; k++) s += p_f16(r0, in, 0, k) * p_f16(r1, in, 1, k);
    *out = f2u(clampf(in, s));
    return 0;
  }
  case V_DOT4_I32_IU8: *out = (uint32_t)(dot4(r0, r1, in->neg & 1, in->neg >> 1 & 1) + (int32_t)r2); return 0;
  case V_DOT4_U32_U8: *out = (uint32_t)dot4(r0, r1, false, false) + r2; return 0;
  case V_DOT8_I32_IU4: *out = (uint32_t)(dot8(r0, r1, in->neg & 1, in->neg >> 1 & 1) + (int32_t)r2); return 0;
  case V_DOT8_U32_U4: *out = (uint32_t)dot8(r0, r1, false, false) + r2; return 0;
  default: return -1;
  }
  (void)raw;
  *out = h[0] | (uint32_t)h[1] << 16;
  return 0;
}

int kn_exec_vop3p(kn_cu *cu, kn_wave *w) {
  uint32_t w0 = cu->w[0], w1 = cu->w[1];
  vop3p_inst in = {.op = cu->op, .vdst = bits(w0, 7, 0), .src = {bits(w1, 8, 0), bits(w1, 17, 9), bits(w1, 26, 18)},
                   .opsel = bits(w0, 13, 11), .opsel_hi = bits(w1, 28, 27) | bits(w0, 14, 14) << 2,
                   .neg = bits(w1, 31, 29), .neg_hi = bits(w0, 10, 8), .clamp = bits(w0, 15, 15)};
  if (in.src[0] == OP_DPP16 || in.src[0] == OP_DPP8 || in.src[0] == OP_DPP8FI)
    return kn_cu_fail(cu, w, "VOP3P with DPP is not emulated");
  uint32_t exec = exec_mask(w), out[KN_LANES];
  for (int l = 0; l < KN_LANES; l++)
    if (exec >> l & 1 && p_lane(cu, w, &in, l, &out[l])) return kn_cu_unimplemented(cu, w);
  for (int l = 0; l < KN_LANES; l++)
    if (exec >> l & 1) w->v[in.vdst][l] = out[l];
  w->pc += cu->len;
  return 0;
}

/* ---- VOPD ---- */

static const unsigned vopd_to_vop3[32] = {
  [VOPD_FMAC_F32] = V_FMAC_F32, [VOPD_FMAAK_F32] = V_FMAAK_F32, [VOPD_FMAMK_F32] = V_FMAMK_F32,
  [VOPD_MUL_F32] = V_MUL_F32, [VOPD_ADD_F32] = V_ADD_F32, [VOPD_SUB_F32] = V_SUB_F32,
  [VOPD_SUBREV_F32] = V_SUBREV_F32, [VOPD_MUL_DX9_ZERO_F32] = V_MUL_DX9_ZERO_F32, [VOPD_MOV_B32] = V_MOV_B32,
  [VOPD_CNDMASK_B32] = V_CNDMASK_B32, [VOPD_MAX_F32] = V_MAX_F32, [VOPD_MIN_F32] = V_MIN_F32,
  [VOPD_DOT2ACC_F32_F16] = V_DOT2ACC_F32_F16, [VOPD_ADD_NC_U32] = V_ADD_NC_U32,
  [VOPD_LSHLREV_B32] = V_LSHLREV_B32, [VOPD_AND_B32] = V_AND_B32,
};

static void vopd_half(kn_valu *v, unsigned op, unsigned src0, unsigned vsrc1, unsigned vdst, uint32_t lit) {
  memset(v, 0, sizeof *v);
  v->op = vopd_to_vop3[op];
  v->vdst = vdst;
  v->src[0] = src0, v->src[1] = OP_VGPR0 + vsrc1, v->lit = lit;
  if (v->op == V_FMAC_F32 || v->op == V_DOT2ACC_F32_F16) v->src[2] = OP_VGPR0 + vdst;
  if (v->op == V_CNDMASK_B32) v->src[2] = OP_VCC_LO;
}

int kn_exec_vopd(kn_cu *cu, kn_wave *w) {
  uint32_t w0 = cu->w[0], w1 = cu->w[1];
  unsigned opx = bits(w0, 25, 22), opy = bits(w0, 21, 17);
  unsigned vdstx = bits(w1, 31, 24), vdsty = bits(w1, 23, 17) << 1 | ((vdstx & 1) ^ 1);
  uint32_t lit = cu->len > 8 ? kn_literal(cu) : 0;
  if (opy >= 32 || (!vopd_to_vop3[opx] && opx != VOPD_FMAC_F32)) return kn_cu_unimplemented(cu, w);
  if (!vopd_to_vop3[opy] && opy != VOPD_FMAC_F32) {
    cu->op = opy;
    cu->fam = "vopdy";
    return kn_cu_unimplemented(cu, w);
  }
  kn_valu vx, vy;
  vopd_half(&vx, opx, bits(w0, 8, 0), bits(w0, 16, 9), vdstx, lit);
  vopd_half(&vy, opy, bits(w1, 8, 0), bits(w1, 16, 9), vdsty, lit);
  uint32_t exec = exec_mask(w), ox[KN_LANES], oy[KN_LANES];
  for (int l = 0; l < KN_LANES; l++) {
    if (!(exec >> l & 1)) continue;
    kn_lane a = {.cu = cu, .w = w, .in = &vx, .l = l}, b = {.cu = cu, .w = w, .in = &vy, .l = l};
    if (kn_alu_lane(&a) || kn_alu_lane(&b)) return kn_cu_unimplemented(cu, w);
    ox[l] = (uint32_t)a.r, oy[l] = (uint32_t)b.r;
  }
  for (int l = 0; l < KN_LANES; l++)
    if (exec >> l & 1) w->v[vdstx][l] = ox[l], w->v[vdsty][l] = oy[l];
  w->pc += cu->len;
  return 0;
}
