/* Vector ALU issue: VOP1, VOP2, VOPC and VOP3(SD) words decoded into one kn_valu form, DPP lane selection, and the
 * lane loop, which evaluates every active lane (rdna3_alu.c) before writing any result, so an instruction whose
 * destination is also a DPP source reads the old values as the hardware does. */
#include "rdna3_ops.h"
#include "rdna3_valu.h"

/* ---- operand access ---- */

uint32_t kn_raw32(const kn_lane *x, int i, int t) {
  unsigned s = x->in->src[i];
  if (i == 0 && x->in->dpp) return x->w->v[x->in->dppw & 255][x->dpp_lane];
  if (s >= OP_VGPR0) return x->w->v[s - OP_VGPR0][x->l];
  if (s == OP_LITERAL) return x->in->lit;
  return kn_sread(x->cu, x->w, s, t);
}

uint64_t kn_raw64(const kn_lane *x, int i, int t) {
  unsigned s = x->in->src[i];
  if (i == 0 && x->in->dpp) {
    unsigned v = x->in->dppw & 255;
    return x->w->v[v][x->dpp_lane] | (uint64_t)x->w->v[(v + 1) & 255][x->dpp_lane] << 32;
  }
  if (s >= OP_VGPR0) return x->w->v[s - OP_VGPR0][x->l] | (uint64_t)x->w->v[(s - OP_VGPR0 + 1) & 255][x->l] << 32;
  if (s == OP_LITERAL) return t == T_F64 ? (uint64_t)x->in->lit << 32 : x->in->lit;
  return kn_sread64(x->cu, x->w, s, t);
}

static float omod_clamp(const kn_valu *in, float f) {
  if (in->omod == 1) f *= 2.0f;
  else if (in->omod == 2) f *= 4.0f;
  else if (in->omod == 3) f *= 0.5f;
  if (in->clamp) f = f != f ? 0.0f : f < 0.0f ? 0.0f : f > 1.0f ? 1.0f : f;
  return f;
}

void kn_put32(kn_lane *x, uint32_t v) { x->r = v, x->rbits = 32; }
void kn_put64(kn_lane *x, uint64_t v) { x->r = v, x->rbits = 64; }
void kn_putf32(kn_lane *x, float f) { kn_put32(x, f2u(omod_clamp(x->in, f))); }
void kn_putf64(kn_lane *x, double f) {
  const kn_valu *in = x->in;
  if (in->omod == 1) f *= 2.0;
  else if (in->omod == 2) f *= 4.0;
  else if (in->omod == 3) f *= 0.5;
  if (in->clamp) f = f != f ? 0.0 : f < 0.0 ? 0.0 : f > 1.0 ? 1.0 : f;
  kn_put64(x, d2u(f));
}
void kn_put16(kn_lane *x, uint16_t v) { x->r = v, x->rbits = 16; }
void kn_putf16(kn_lane *x, float f) { kn_put16(x, kn_f2h(omod_clamp(x->in, f))); }

/* ---- DPP ---- */

/* The lane src0 reads for lane l, or -1 when that lane is out of its row or disabled (rdna3_wave.h). */
static int dpp_lane(const kn_valu *in, uint32_t exec, int l) {
  bool fi = in->dpp == 8 ? in->src[0] == OP_DPP8FI : bits(in->dppw, 18, 18);
  return kn_dpp_lane(in->dpp, in->dppw, fi, exec, l);
}

static bool dpp_writes(const kn_valu *in, int l) { return kn_dpp_writes(in->dpp, in->dppw, l); }

/* ---- cross-lane and scalar-result opcodes ---- */

/* v_movrel*: a VGPR index relative to M0 (an array held in registers, indexed by a wave-uniform value). movrels
 * reads v[src0 + M0], movreld writes v[vdst + M0], movrelsd both, movrelsd_2 with M0[9:0] for the source and
 * M0[25:16] for the destination. Source operands other than a VGPR move the value as is (movreld). An index past the
 * 256 VGPRs is an error naming it. */
static int movrel(kn_cu *cu, kn_wave *w, const kn_valu *in) {
  uint32_t m0 = w->s[OP_M0], exec = exec_mask(w);
  uint32_t soff = 0, doff = 0;
  switch (in->op) {
  case V_MOVRELS_B32: soff = m0; break;
  case V_MOVRELD_B32: doff = m0; break;
  case V_MOVRELSD_B32: soff = doff = m0; break;
  default: soff = m0 & 0x3ff, doff = m0 >> 16 & 0x3ff; break;
  }
  if (in->dpp) return kn_cu_fail(cu, w, "DPP on a relative move");
  bool vsrc = in->src[0] >= OP_VGPR0;
  uint64_t s = vsrc ? (uint64_t)(in->src[0] - OP_VGPR0) + soff : 0, d = (uint64_t)in->vdst + doff;
  if ((vsrc && s >= KN_NVGPR) || d >= KN_NVGPR)
    return kn_cu_fail(cu, w, "relative VGPR index past v255 (source v%llu, destination v%llu, M0 0x%x)",
                      (unsigned long long)s, (unsigned long long)d, m0);
  if (!vsrc && in->op != V_MOVRELD_B32) return kn_cu_fail(cu, w, "relative source that is not a VGPR");
  uint32_t val[KN_LANES];
  kn_lane x = {.cu = cu, .w = w, .in = in};
  for (int l = 0; l < KN_LANES; l++) {
    x.l = l;
    val[l] = vsrc ? w->v[s][l] : U32(&x, 0);
  }
  for (int l = 0; l < KN_LANES; l++)
    if (exec >> l & 1) w->v[d][l] = val[l];
  return 0;
}

static int cross_lane(kn_cu *cu, kn_wave *w, const kn_valu *in, bool *done) {
  *done = true;
  kn_lane x = {.cu = cu, .w = w, .in = in};
  uint32_t exec = exec_mask(w);
  switch (in->op) {
  case V_READFIRSTLANE_B32:
    x.l = exec ? __builtin_ctz(exec) : 0;
    return kn_swrite(cu, w, in->vdst, U32(&x, 0));
  case V_READLANE_B32:
    x.l = (int)(kn_sread(cu, w, in->src[1], T_B32) & 31);
    return kn_swrite(cu, w, in->vdst, U32(&x, 0));
  case V_WRITELANE_B32: {
    uint32_t lane = kn_sread(cu, w, in->src[1], T_B32) & 31;
    w->v[in->vdst][lane] = kn_sread(cu, w, in->src[0], T_B32);
    return 0;
  }
  case V_PERMLANE16_B32: case V_PERMLANEX16_B32: {
    uint64_t sel = kn_sread(cu, w, in->src[1], T_B32) | (uint64_t)kn_sread(cu, w, in->src[2], T_B32) << 32;
    uint32_t out[KN_LANES];
    for (int l = 0; l < KN_LANES; l++) {
      int row = l >> 4, srow = in->op == V_PERMLANEX16_B32 ? row ^ 1 : row;
      int s = srow * 16 + (int)((sel >> (4 * (l & 15))) & 15);
      bool fi = in->opsel & 1, bc = in->opsel >> 1 & 1;
      out[l] = (exec >> s & 1) || fi ? w->v[in->src[0] - OP_VGPR0][s] : bc ? 0 : w->v[in->vdst][l];
    }
    for (int l = 0; l < KN_LANES; l++)
      if (exec >> l & 1) w->v[in->vdst][l] = out[l];
    return 0;
  }
  case V_MOVRELS_B32: case V_MOVRELD_B32: case V_MOVRELSD_B32: case V_MOVRELSD_2_B32:
    return movrel(cu, w, in);
  default: *done = false; return 0;
  }
}

static bool writes_carry(unsigned op) {
  switch (op) {
  case V_ADD_CO_U32: case V_SUB_CO_U32: case V_SUBREV_CO_U32: case V_ADD_CO_CI_U32: case V_SUB_CO_CI_U32:
  case V_SUBREV_CO_CI_U32: case V_DIV_SCALE_F32: case V_DIV_SCALE_F64: case V_MAD_U64_U32: case V_MAD_I64_I32:
    return true;
  default: return false;
  }
}

static bool is_cmpx(unsigned op) { return (op >= V_CMPX_F_F16 && op <= V_CMPX_CLASS_F64); }

static int run_valu(kn_cu *cu, kn_wave *w, kn_valu *in) {
  bool done;
  int xrc = cross_lane(cu, w, in, &done);
  if (done) {
    if (!xrc) w->pc += cu->len;
    return xrc;
  }
  uint32_t exec = exec_mask(w), mask = 0, wmask = 0;
  uint64_t out[KN_LANES];
  int rbits = 0;
  bool cmp = in->op < 256;
  for (int l = 0; l < KN_LANES; l++) {
    if (!(exec >> l & 1)) continue;
    kn_lane x = {.cu = cu, .w = w, .in = in, .l = l, .dpp_lane = (uint32_t)l};
    if (in->dpp) {
      int s = dpp_lane(in, exec, l);
      if (s == -2) return kn_cu_fail(cu, w, "reserved DPP control 0x%x", bits(in->dppw, 16, 8));
      if (!dpp_writes(in, l)) continue;
      bool bound_zero = in->dpp == 16 ? bits(in->dppw, 19, 19) : 1;
      if (s < 0 && !bound_zero) continue;
      x.dpp_lane = s < 0 ? (uint32_t)l : (uint32_t)s;
      if (s < 0) { /* an invalid source lane reads 0 */
        kn_valu zin = *in;
        zin.dpp = 0, zin.src[0] = 128;
        x.in = &zin;
        int bit = 0;
        if (cmp ? !kn_cmp_lane(&x, &bit) : kn_alu_lane(&x)) return kn_cu_unimplemented(cu, w);
        mask |= (uint32_t)(cmp ? bit : x.cc) << l;
        if (x.rbits) out[l] = x.r, rbits = x.rbits, wmask |= 1u << l;
        continue;
      }
    }
    if (cmp) {
      int bit;
      if (!kn_cmp_lane(&x, &bit)) return kn_cu_unimplemented(cu, w);
      mask |= (uint32_t)bit << l;
      continue;
    }
    if (kn_alu_lane(&x)) return kn_cu_unimplemented(cu, w);
    mask |= (uint32_t)x.cc << l;
    if (x.rbits) out[l] = x.r, rbits = x.rbits, wmask |= 1u << l;
  }
  unsigned d = in->vdst;
  for (int l = 0; l < KN_LANES; l++) {
    if (!(wmask >> l & 1)) continue;
    if (rbits == 64) {
      w->v[d][l] = (uint32_t)out[l];
      w->v[(d + 1) & 255][l] = (uint32_t)(out[l] >> 32);
    } else if (rbits == 16) { /* 16-bit results: op_sel[3] picks the half; the low-half form zeroes the high */
      w->v[d][l] = (in->opsel >> 3 & 1) ? (w->v[d][l] & 0xffff) | (uint32_t)out[l] << 16 : (uint32_t)out[l] & 0xffff;
    } else {
      w->v[d][l] = (uint32_t)out[l];
    }
  }
  int rc = 0;
  if (cmp) {
    if (is_cmpx(in->op)) w->s[OP_EXEC_LO] = mask;
    else rc = kn_swrite(cu, w, in->sdst, mask);
  } else if (writes_carry(in->op)) {
    rc = kn_swrite(cu, w, in->sdst, mask);
  }
  w->pc += cu->len;
  return rc;
}

/* ---- encodings ---- */

static void short_src0(kn_cu *cu, kn_valu *in) {
  uint32_t s0 = bits(cu->w[0], 8, 0);
  in->src[0] = s0;
  if (s0 == OP_DPP16 || s0 == OP_DPP8 || s0 == OP_DPP8FI) {
    in->dpp = s0 == OP_DPP16 ? 16 : 8;
    in->dppw = cu->w[1];
    if (in->dpp == 16) { /* DPP16 carries src0/src1 modifiers */
      in->neg = bits(in->dppw, 20, 20) | bits(in->dppw, 22, 22) << 1;
      in->abs = bits(in->dppw, 21, 21) | bits(in->dppw, 23, 23) << 1;
    }
  }
  in->lit = cu->len > 4 ? kn_literal(cu) : 0;
}

int kn_exec_vop1(kn_cu *cu, kn_wave *w) {
  if (cu->op == 0) { /* v_nop */
    w->pc += cu->len;
    return 0;
  }
  int op = kn_rdna3_vop3_of("vop1", cu->op);
  if (op < 0) return kn_cu_unimplemented(cu, w);
  kn_valu in = {.op = (unsigned)op, .vdst = bits(cu->w[0], 24, 17)};
  short_src0(cu, &in);
  return run_valu(cu, w, &in);
}

int kn_exec_vop2(kn_cu *cu, kn_wave *w) {
  int op = kn_rdna3_vop3_of("vop2", cu->op);
  if (op < 0) return kn_cu_unimplemented(cu, w);
  kn_valu in = {.op = (unsigned)op, .vdst = bits(cu->w[0], 24, 17), .sdst = OP_VCC_LO};
  short_src0(cu, &in);
  in.src[1] = OP_VGPR0 + bits(cu->w[0], 16, 9);
  switch (op) {
  case V_CNDMASK_B32: case V_ADD_CO_CI_U32: case V_SUB_CO_CI_U32: case V_SUBREV_CO_CI_U32: in.src[2] = OP_VCC_LO; break;
  case V_FMAC_F32: case V_FMAC_F16: case V_FMAC_DX9_ZERO_F32: case V_PK_FMAC_F16: case V_DOT2ACC_F32_F16:
    in.src[2] = OP_VGPR0 + in.vdst;
    break;
  default: break;
  }
  return run_valu(cu, w, &in);
}

int kn_exec_vopc(kn_cu *cu, kn_wave *w) {
  kn_valu in = {.op = cu->op, .sdst = OP_VCC_LO};
  short_src0(cu, &in);
  in.src[1] = OP_VGPR0 + bits(cu->w[0], 16, 9);
  return run_valu(cu, w, &in);
}

static bool vop3sd(unsigned op) { return writes_carry(op); }

int kn_exec_vop3(kn_cu *cu, kn_wave *w) {
  uint32_t w0 = cu->w[0], w1 = cu->w[1];
  kn_valu in = {.op = cu->op, .vdst = bits(w0, 7, 0), .e64 = true, .clamp = bits(w0, 15, 15),
                .src = {bits(w1, 8, 0), bits(w1, 17, 9), bits(w1, 26, 18)}, .omod = bits(w1, 28, 27),
                .neg = bits(w1, 31, 29)};
  if (vop3sd(in.op)) {
    in.sdst = bits(w0, 14, 8);
  } else {
    in.abs = bits(w0, 10, 8), in.opsel = bits(w0, 14, 11);
    in.sdst = in.vdst; /* compares write their mask to the scalar operand in vdst */
  }
  if (in.src[0] == OP_DPP16 || in.src[0] == OP_DPP8 || in.src[0] == OP_DPP8FI) {
    in.dpp = in.src[0] == OP_DPP16 ? 16 : 8;
    in.dppw = cu->w[2];
  }
  in.lit = cu->len > 8 && !in.dpp ? kn_literal(cu) : 0;
  switch (in.op) { /* the accumulating ops add into vdst in their VOP3 form too; src2's field is unused there */
  case V_FMAC_F32: case V_FMAC_F16: case V_FMAC_DX9_ZERO_F32: case V_DOT2ACC_F32_F16: in.src[2] = OP_VGPR0 + in.vdst; break;
  default: break;
  }
  return run_valu(cu, w, &in);
}
