/* Private to the RDNA3 interpreter: one vector ALU instruction in a form common to its encodings (VOP1, VOP2, VOPC,
 * VOP3, VOP3SD, and their DPP variants), and the per-lane operand access that rdna3_alu.c's semantics use. */
#ifndef KN_AMD_RDNA3_VALU_H
#define KN_AMD_RDNA3_VALU_H

#include "rdna3_wave.h"

typedef struct {
  unsigned op;     /* VOP3 opcode number, or >= 1024 for a VOP1/VOP2-only opcode (rdna3_ops.h) */
  unsigned vdst;   /* VGPR index (or an SGPR operand for v_readlane/v_readfirstlane) */
  unsigned sdst;   /* scalar destination of a compare or a carry-out (VCC for the short encodings) */
  unsigned src[3]; /* operand numbers; VGPRs are 256 + index */
  unsigned abs, neg, opsel, clamp, omod;
  bool e64;        /* VOP3 encoding */
  int dpp;         /* 0, 16 (DPP16) or 8 (DPP8) on src0 */
  uint32_t dppw;   /* the DPP dword */
  uint32_t lit;
} kn_valu;

/* Per-lane evaluation context of one instruction. */
typedef struct {
  kn_cu *cu;
  kn_wave *w;
  const kn_valu *in;
  int l;
  uint32_t dpp_lane; /* lane src0 reads from under DPP */
  /* results */
  uint64_t r;
  int rbits;       /* 0 (no VGPR write), 16, 32 or 64 */
  int cc;          /* compare result / carry-out bit */
} kn_lane;

uint32_t kn_raw32(const kn_lane *x, int i, int t);
uint64_t kn_raw64(const kn_lane *x, int i, int t);

static inline uint32_t U32(const kn_lane *x, int i) { return kn_raw32(x, i, T_B32); }
static inline uint64_t U64(const kn_lane *x, int i) { return kn_raw64(x, i, T_B64); }
static inline int32_t I32(const kn_lane *x, int i) { return (int32_t)U32(x, i); }
static inline float F32(const kn_lane *x, int i) {
  uint32_t u = kn_raw32(x, i, T_F32);
  if (x->in->abs >> i & 1) u &= 0x7fffffffu;
  if (x->in->neg >> i & 1) u ^= 0x80000000u;
  return u2f(u);
}
/* a 32-bit operand with the float input modifiers applied to its sign bit (v_mov_b32, v_cndmask_b32 take them) */
static inline uint32_t M32(const kn_lane *x, int i) {
  uint32_t u = kn_raw32(x, i, T_F32);
  if (x->in->abs >> i & 1) u &= 0x7fffffffu;
  if (x->in->neg >> i & 1) u ^= 0x80000000u;
  return u;
}
static inline double F64(const kn_lane *x, int i) {
  uint64_t u = kn_raw64(x, i, T_F64);
  if (x->in->abs >> i & 1) u &= ~(1ull << 63);
  if (x->in->neg >> i & 1) u ^= 1ull << 63;
  return u2d(u);
}
/* the 16 bits of operand i that op_sel picks (low half unless its op_sel bit is set) */
static inline uint16_t H16(const kn_lane *x, int i, int t) {
  return (uint16_t)(kn_raw32(x, i, t) >> ((x->in->opsel >> i & 1) ? 16 : 0));
}
static inline float F16(const kn_lane *x, int i) {
  uint16_t h = H16(x, i, T_F16);
  if (x->in->abs >> i & 1) h &= 0x7fff;
  if (x->in->neg >> i & 1) h ^= 0x8000;
  return kn_h2f(h);
}

/* Results: float results get the output modifier and clamp. */
void kn_put32(kn_lane *x, uint32_t v);
void kn_put64(kn_lane *x, uint64_t v);
void kn_putf32(kn_lane *x, float f);
void kn_putf64(kn_lane *x, double f);
void kn_putf16(kn_lane *x, float f);
void kn_put16(kn_lane *x, uint16_t v);

/* Semantics of one lane (rdna3_alu.c): 0, or -1 when the opcode is not implemented. */
int kn_alu_lane(kn_lane *x);
/* The division macro's scale/fmas/fixup (rdna3_div.c): 0, or 1 when op is not one of them. */
int kn_alu_div(kn_lane *x, unsigned op);
/* Compare opcodes (0..255): 1 when op is a compare, with the lane's result in *bit. */
int kn_cmp_lane(const kn_lane *x, int *bit);

#endif
