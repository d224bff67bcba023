/* Vector compares (VOPC opcodes 0..255, also reached through VOP3): the condition and operand type follow from the
 * opcode's position in the gfx11 table, so each family (f16, f32, f64, i/u 16, 32, 64, class) is one range. */
#include <math.h>

#include "rdna3_ops.h"
#include "rdna3_valu.h"


/* f, lt, eq, le, gt, ne, ge, t on a signed or unsigned 64-bit view */
static int icmp(int c, int64_t a, int64_t b, bool sign) {
  uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
  switch (c) {
  case 0: return 0;
  case 1: return sign ? a < b : ua < ub;
  case 2: return a == b;
  case 3: return sign ? a <= b : ua <= ub;
  case 4: return sign ? a > b : ua > ub;
  case 5: return a != b;
  case 6: return sign ? a >= b : ua >= ub;
  default: return 1;
  }
}

static int fclass(double v, bool denorm, uint32_t mask) {
  int bit;
  if (v != v) bit = 1; /* quiet NaN (signalling NaNs are not distinguished) */
  else if (isinf(v)) bit = v < 0 ? 2 : 9;
  else if (v == 0) bit = signbit(v) ? 5 : 6;
  else if (denorm) bit = v < 0 ? 4 : 7;
  else bit = v < 0 ? 3 : 8;
  return (int)(mask >> bit & 1) | (bit == 1 && (mask & 1));
}

int kn_cmp_lane(const kn_lane *x, int *bit) {
  unsigned op = x->in->op;
  if (op >= V_CMPX_F_F16) op -= V_CMPX_F_F16 - V_CMP_F_F16; /* cmpx: same compare, EXEC destination */
  if (op <= V_CMP_T_F16) *bit = kn_fcmp((int)(op - V_CMP_F_F16), F16(x, 0), F16(x, 1));
  else if (op <= V_CMP_T_F32) *bit = kn_fcmp((int)(op - V_CMP_F_F32), F32(x, 0), F32(x, 1));
  else if (op <= V_CMP_T_F64) *bit = kn_fcmp((int)(op - V_CMP_F_F64), F64(x, 0), F64(x, 1));
  else if (op >= V_CMP_LT_I16 && op <= V_CMP_GE_I16)
    *bit = icmp((int)(op - V_CMP_LT_I16) + 1, (int16_t)H16(x, 0, T_B32), (int16_t)H16(x, 1, T_B32), true);
  else if (op >= V_CMP_LT_U16 && op <= V_CMP_GE_U16)
    *bit = icmp((int)(op - V_CMP_LT_U16) + 1, H16(x, 0, T_B32), H16(x, 1, T_B32), false);
  else if (op >= V_CMP_F_I32 && op <= V_CMP_T_I32) *bit = icmp((int)(op - V_CMP_F_I32), I32(x, 0), I32(x, 1), true);
  else if (op >= V_CMP_F_U32 && op <= V_CMP_T_U32) *bit = icmp((int)(op - V_CMP_F_U32), U32(x, 0), U32(x, 1), false);
  else if (op >= V_CMP_F_I64 && op <= V_CMP_T_I64)
    *bit = icmp((int)(op - V_CMP_F_I64), (int64_t)U64(x, 0), (int64_t)U64(x, 1), true);
  else if (op >= V_CMP_F_U64 && op <= V_CMP_T_U64)
    *bit = icmp((int)(op - V_CMP_F_U64), (int64_t)U64(x, 0), (int64_t)U64(x, 1), false);
  else if (op == V_CMP_CLASS_F16) {
    uint16_t h = H16(x, 0, T_F16);
    *bit = fclass(F16(x, 0), (h & 0x7c00) == 0 && (h & 0x3ff), U32(x, 1));
  } else if (op == V_CMP_CLASS_F32) {
    uint32_t u = kn_raw32(x, 0, T_F32);
    *bit = fclass(F32(x, 0), (u & 0x7f800000u) == 0 && (u & 0x7fffff), U32(x, 1));
  } else if (op == V_CMP_CLASS_F64) {
    uint64_t u = kn_raw64(x, 0, T_F64);
    *bit = fclass(F64(x, 0), (u >> 52 & 0x7ff) == 0 && (u & ((1ull << 52) - 1)), U32(x, 1));
  } else {
    return 0;
  }
  return 1;
}
