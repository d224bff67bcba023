/* The gfx11 instruction decoder: which encoding family a word belongs to, the opcode field of that family, and the
 * instruction's length (fixed words, then one literal dword when an operand is 255 or the opcode carries one, and
 * one DPP dword when src0 selects DPP). Checked against LLVM's disassembler by tests/test_rdna3.c. */
#include "rdna3.h"
#include "rdna3_ops.h"
#include "rdna3_wave.h"

static bool is_lit(uint32_t src) { return src == OP_LITERAL; }
static bool is_dpp(uint32_t src) { return src == OP_DPP16 || src == OP_DPP8 || src == OP_DPP8FI; }

/* a VOP1/VOP2/VOPC word: src0 in [8:0] */
static unsigned vop_short_len(uint32_t w, bool always_lit) {
  uint32_t s0 = bits(w, 8, 0);
  return 4 + ((is_lit(s0) || always_lit) ? 4 : 0) + (is_dpp(s0) ? 4 : 0);
}

static unsigned vop3_len(uint32_t w1) {
  uint32_t s0 = bits(w1, 8, 0), s1 = bits(w1, 17, 9), s2 = bits(w1, 26, 18);
  return 8 + ((is_lit(s0) || is_lit(s1) || is_lit(s2)) ? 4 : 0) + (is_dpp(s0) ? 4 : 0);
}

static bool vopd_has_lit(unsigned o) { return o == VOPD_FMAAK_F32 || o == VOPD_FMAMK_F32; }

unsigned kn_rdna3_decode(const uint32_t *words, size_t n, const char **family, unsigned *op, const char **mnemonic) {
  if (!n) return 0;
  uint32_t w = words[0];
  const char *f = NULL;
  unsigned o = 0, len = 0;
  if (w >> 30 == 2) {
    uint32_t top9 = w >> 23;
    if (top9 == 0x17d) f = "sop1", o = bits(w, 15, 8), len = 4 + (is_lit(bits(w, 7, 0)) ? 4 : 0);
    else if (top9 == 0x17e) f = "sopc", o = bits(w, 22, 16), len = 4 + (is_lit(bits(w, 7, 0)) || is_lit(bits(w, 15, 8)) ? 4 : 0);
    else if (top9 == 0x17f) f = "sopp", o = bits(w, 22, 16), len = 4;
    else if (w >> 28 == 0xb) f = "sopk", o = bits(w, 27, 23), len = o == S_SETREG_IMM32_B32 ? 8 : 4;
    else f = "sop2", o = bits(w, 29, 23), len = 4 + (is_lit(bits(w, 7, 0)) || is_lit(bits(w, 15, 8)) ? 4 : 0);
  } else if (w >> 25 == 0x3f) { /* VOP1 and VOPC sit in the top of the VOP2 opcode space: test them first */
    f = "vop1", o = bits(w, 16, 9), len = vop_short_len(w, false);
  } else if (w >> 25 == 0x3e) {
    f = "vopc", o = bits(w, 24, 17), len = vop_short_len(w, false);
  } else if (w >> 31 == 0) {
    f = "vop2", o = bits(w, 30, 25);
    int v3 = kn_rdna3_vop3_of("vop2", o);
    len = vop_short_len(w, v3 == V_FMAAK_F32 || v3 == V_FMAMK_F32 || v3 == V_FMAAK_F16 || v3 == V_FMAMK_F16);
  } else if (w >> 24 == 0xcc) {
    f = "vop3p", o = bits(w, 22, 16), len = n >= 2 ? vop3_len(words[1]) : 8;
  } else {
    switch (w >> 26) {
    case 0x3d: f = "smem", o = bits(w, 25, 18), len = 8; break;
    case 0x35: f = "vop3", o = bits(w, 25, 16), len = n >= 2 ? vop3_len(words[1]) : 8; break;
    case 0x32: {
      f = "vopd", o = bits(w, 25, 22);
      unsigned oy = bits(w, 21, 17);
      bool lit = vopd_has_lit(o) || vopd_has_lit(oy) || is_lit(bits(w, 8, 0)) || (n >= 2 && is_lit(bits(words[1], 8, 0)));
      len = 8 + (lit ? 4 : 0);
      break;
    }
    case 0x36: f = "ds", o = bits(w, 25, 18), len = 8; break;
    case 0x37: { /* one opcode space, three segments: flat, scratch, global */
      static const char *const seg[4] = {"flat", "scratch", "global", "flat"};
      f = seg[bits(w, 17, 16)], o = bits(w, 24, 18), len = 8;
      break;
    }
    case 0x38: f = "mubuf", o = bits(w, 25, 18), len = 8; break;
    default: return 0;
    }
  }
  if (len > 4 * n) return 0;
  if (family) *family = f;
  if (op) *op = o;
  if (mnemonic) *mnemonic = kn_rdna3_opname(!__builtin_strcmp(f, "vopd") ? "vopdx" : f, o);
  return len;
}
