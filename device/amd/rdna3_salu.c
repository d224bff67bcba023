/* Scalar ALU and program control: SOP2, SOP1, SOPK, SOPC and SOPP. Scalar instructions run once per wave; SCC is
 * the scalar condition code, EXEC and VCC are SGPR pairs of which wave32 uses the low half. */
#include "rdna3_ops.h"
#include "rdna3_wave.h"

static uint32_t sext(uint32_t x, int b) { return b >= 32 ? x : (uint32_t)((int32_t)(x << (32 - b)) >> (32 - b)); }

/* s_bfe: src1 = offset [4:0] (or [5:0] for 64-bit) | width [22:16] */
static uint64_t bfe(uint64_t x, uint32_t ctl, int w64, int sign) {
  uint32_t off = ctl & (w64 ? 63 : 31), wid = (ctl >> 16) & 127, n = w64 ? 64 : 32;
  if (!wid) return 0;
  if (off + wid > n) wid = n - off;
  uint64_t v = (x >> off) & (wid == 64 ? ~0ull : ((1ull << wid) - 1));
  if (sign && wid < 64 && (v >> (wid - 1) & 1)) v |= ~0ull << wid;
  return w64 ? v : (uint32_t)v;
}

int kn_exec_sop2(kn_cu *cu, kn_wave *w) {
  uint32_t i = cu->w[0], dst = bits(i, 22, 16), s0 = bits(i, 7, 0), s1 = bits(i, 15, 8);
  uint32_t a = kn_sread(cu, w, s0, T_B32), b = kn_sread(cu, w, s1, T_B32), r = 0;
  uint64_t A = 0, B = 0, R = 0;
  int w64 = 0, scc = w->scc;
  switch (cu->op) {
  case S_LSHL_B64: case S_LSHR_B64: case S_ASHR_I64: case S_BFE_U64: case S_BFE_I64: A = kn_sread64(cu, w, s0, T_B64); break;
  case S_AND_B64: case S_OR_B64: case S_XOR_B64: case S_NAND_B64: case S_NOR_B64: case S_XNOR_B64:
  case S_AND_NOT1_B64: case S_OR_NOT1_B64: case S_CSELECT_B64:
    A = kn_sread64(cu, w, s0, T_B64), B = kn_sread64(cu, w, s1, T_B64);
    break;
  }
  switch (cu->op) {
  case S_ADD_U32: R = (uint64_t)a + b, r = (uint32_t)R, scc = R >> 32; break;
  case S_SUB_U32: r = a - b, scc = b > a; break;
  case S_ADD_I32: r = a + b, scc = ((~(a ^ b)) & (a ^ r)) >> 31; break;
  case S_SUB_I32: r = a - b, scc = ((a ^ b) & (a ^ r)) >> 31; break;
  case S_ADDC_U32: R = (uint64_t)a + b + (uint64_t)w->scc, r = (uint32_t)R, scc = R >> 32; break;
  case S_SUBB_U32: R = (uint64_t)a - b - (uint64_t)w->scc, r = (uint32_t)R, scc = (uint64_t)b + w->scc > a; break;
  case S_ABSDIFF_I32: r = (int32_t)a > (int32_t)b ? a - b : b - a, scc = r != 0; break;
  case S_LSHL_B32: r = a << (b & 31), scc = r != 0; break;
  case S_LSHR_B32: r = a >> (b & 31), scc = r != 0; break;
  case S_ASHR_I32: r = (uint32_t)((int32_t)a >> (b & 31)), scc = r != 0; break;
  case S_LSHL_B64: R = A << (b & 63), w64 = 1, scc = R != 0; break;
  case S_LSHR_B64: R = A >> (b & 63), w64 = 1, scc = R != 0; break;
  case S_ASHR_I64: R = (uint64_t)((int64_t)A >> (b & 63)), w64 = 1, scc = R != 0; break;
  case S_LSHL1_ADD_U32: case S_LSHL2_ADD_U32: case S_LSHL3_ADD_U32: case S_LSHL4_ADD_U32: {
    int sh = (int)(cu->op - S_LSHL1_ADD_U32) + 1;
    R = ((uint64_t)a << sh) + b, r = (uint32_t)R, scc = R >> 32 != 0;
    break;
  }
  case S_MIN_I32: scc = (int32_t)a < (int32_t)b, r = scc ? a : b; break;
  case S_MIN_U32: scc = a < b, r = scc ? a : b; break;
  case S_MAX_I32: scc = (int32_t)a > (int32_t)b, r = scc ? a : b; break;
  case S_MAX_U32: scc = a > b, r = scc ? a : b; break;
  case S_AND_B32: r = a & b, scc = r != 0; break;
  case S_OR_B32: r = a | b, scc = r != 0; break;
  case S_XOR_B32: r = a ^ b, scc = r != 0; break;
  case S_NAND_B32: r = ~(a & b), scc = r != 0; break;
  case S_NOR_B32: r = ~(a | b), scc = r != 0; break;
  case S_XNOR_B32: r = ~(a ^ b), scc = r != 0; break;
  case S_AND_NOT1_B32: r = a & ~b, scc = r != 0; break;
  case S_OR_NOT1_B32: r = a | ~b, scc = r != 0; break;
  case S_AND_B64: R = A & B, w64 = 1, scc = R != 0; break;
  case S_OR_B64: R = A | B, w64 = 1, scc = R != 0; break;
  case S_XOR_B64: R = A ^ B, w64 = 1, scc = R != 0; break;
  case S_NAND_B64: R = ~(A & B), w64 = 1, scc = R != 0; break;
  case S_NOR_B64: R = ~(A | B), w64 = 1, scc = R != 0; break;
  case S_XNOR_B64: R = ~(A ^ B), w64 = 1, scc = R != 0; break;
  case S_AND_NOT1_B64: R = A & ~B, w64 = 1, scc = R != 0; break;
  case S_OR_NOT1_B64: R = A | ~B, w64 = 1, scc = R != 0; break;
  case S_BFE_U32: r = (uint32_t)bfe(a, b, 0, 0), scc = r != 0; break;
  case S_BFE_I32: r = (uint32_t)bfe(a, b, 0, 1), scc = r != 0; break;
  case S_BFE_U64: R = bfe(A, b, 1, 0), w64 = 1, scc = R != 0; break;
  case S_BFE_I64: R = bfe(A, b, 1, 1), w64 = 1, scc = R != 0; break;
  case S_BFM_B32: r = ((1u << (a & 31)) - 1) << (b & 31); break;
  case S_MUL_I32: r = a * b; break;
  case S_MUL_HI_U32: r = (uint32_t)(((uint64_t)a * b) >> 32); break;
  case S_MUL_HI_I32: r = (uint32_t)(((int64_t)(int32_t)a * (int32_t)b) >> 32); break;
  case S_CSELECT_B32: r = w->scc ? a : b; break;
  case S_CSELECT_B64: R = w->scc ? A : B, w64 = 1; break;
  case S_PACK_LL_B32_B16: r = (a & 0xffff) | b << 16; break;
  case S_PACK_LH_B32_B16: r = (a & 0xffff) | (b & 0xffff0000u); break;
  case S_PACK_HH_B32_B16: r = a >> 16 | (b & 0xffff0000u); break;
  case S_PACK_HL_B32_B16: r = a >> 16 | b << 16; break;
  default: return kn_cu_unimplemented(cu, w);
  }
  int rc = w64 ? kn_swrite64(cu, w, dst, R) : kn_swrite(cu, w, dst, r);
  w->scc = scc;
  w->pc += cu->len;
  return rc;
}

int kn_exec_sopk(kn_cu *cu, kn_wave *w) {
  uint32_t i = cu->w[0], dst = bits(i, 22, 16), imm = i & 0xffff, simm = sext(imm, 16);
  uint32_t d = dst < 128 ? w->s[dst] : 0;
  int rc = 0;
  switch (cu->op) {
  case S_MOVK_I32: rc = kn_swrite(cu, w, dst, simm); break;
  case S_CMOVK_I32: if (w->scc) rc = kn_swrite(cu, w, dst, simm); break;
  case S_CMPK_EQ_I32: w->scc = (int32_t)d == (int32_t)simm; break;
  case S_CMPK_LG_I32: w->scc = (int32_t)d != (int32_t)simm; break;
  case S_CMPK_GT_I32: w->scc = (int32_t)d > (int32_t)simm; break;
  case S_CMPK_GE_I32: w->scc = (int32_t)d >= (int32_t)simm; break;
  case S_CMPK_LT_I32: w->scc = (int32_t)d < (int32_t)simm; break;
  case S_CMPK_LE_I32: w->scc = (int32_t)d <= (int32_t)simm; break;
  case S_CMPK_EQ_U32: w->scc = d == imm; break;
  case S_CMPK_LG_U32: w->scc = d != imm; break;
  case S_CMPK_GT_U32: w->scc = d > imm; break;
  case S_CMPK_GE_U32: w->scc = d >= imm; break;
  case S_CMPK_LT_U32: w->scc = d < imm; break;
  case S_CMPK_LE_U32: w->scc = d <= imm; break;
  case S_ADDK_I32: {
    uint32_t r = d + simm;
    w->scc = ((~(d ^ simm)) & (d ^ r)) >> 31;
    rc = kn_swrite(cu, w, dst, r);
    break;
  }
  case S_MULK_I32: rc = kn_swrite(cu, w, dst, d * simm); break;
  case S_WAITCNT_VSCNT: case S_WAITCNT_VMCNT: case S_WAITCNT_EXPCNT: case S_WAITCNT_LGKMCNT: break; /* in order */
  default: return kn_cu_unimplemented(cu, w);
  }
  w->pc += cu->len;
  return rc;
}

static int saveexec(kn_cu *cu, kn_wave *w, uint32_t dst, uint32_t s) {
  uint32_t e = exec_mask(w), n;
  switch (cu->op) {
  case S_AND_SAVEEXEC_B32: n = s & e; break;
  case S_OR_SAVEEXEC_B32: n = s | e; break;
  case S_XOR_SAVEEXEC_B32: n = s ^ e; break;
  case S_NAND_SAVEEXEC_B32: n = ~(s & e); break;
  case S_NOR_SAVEEXEC_B32: n = ~(s | e); break;
  case S_XNOR_SAVEEXEC_B32: n = ~(s ^ e); break;
  case S_AND_NOT0_SAVEEXEC_B32: n = ~s & e; break;
  case S_OR_NOT0_SAVEEXEC_B32: n = ~s | e; break;
  case S_AND_NOT1_SAVEEXEC_B32: n = s & ~e; break;
  case S_OR_NOT1_SAVEEXEC_B32: n = s | ~e; break;
  case S_AND_NOT0_WREXEC_B32: n = ~s & e; break;
  case S_AND_NOT1_WREXEC_B32: n = s & ~e; break;
  default: return kn_cu_unimplemented(cu, w);
  }
  bool wrexec = cu->op == S_AND_NOT0_WREXEC_B32 || cu->op == S_AND_NOT1_WREXEC_B32;
  w->s[OP_EXEC_LO] = n;
  w->scc = n != 0;
  return kn_swrite(cu, w, dst, wrexec ? n : e);
}

/* s_cls: how many bits after the sign bit equal it (the first differing bit's distance from bit 31 or 63); -1 when
 * every bit is the same */
static uint32_t cls32(uint32_t a) {
  uint32_t t = (int32_t)a < 0 ? ~a : a;
  return t ? (uint32_t)__builtin_clz(t) : ~0u;
}
static uint32_t cls64(uint64_t a) {
  uint64_t t = (int64_t)a < 0 ? ~a : a;
  return t ? (uint32_t)__builtin_clzll(t) : ~0u;
}

/* s_movrels/s_movreld: an SGPR index relative to M0 (movrels reads s[src0 + M0], movreld writes s[dst + M0]) */
static int smovrel(kn_cu *cu, kn_wave *w, uint32_t dst, uint32_t src) {
  bool b64 = cu->op == S_MOVRELS_B64 || cu->op == S_MOVRELD_B64, rel_src = cu->op <= S_MOVRELS_B64;
  uint64_t m0 = w->s[OP_M0], s = rel_src ? src + m0 : src, d = rel_src ? dst : dst + m0;
  if ((rel_src && s + b64 >= 106) || (!rel_src && d + b64 >= 106))
    return kn_cu_fail(cu, w, "relative SGPR index past s105 (s%llu, M0 0x%llx)",
                      (unsigned long long)(rel_src ? s : d), (unsigned long long)m0);
  uint64_t v = b64 ? kn_sread64(cu, w, (unsigned)s, T_B64) : kn_sread(cu, w, (unsigned)s, T_B32);
  return b64 ? kn_swrite64(cu, w, (unsigned)d, v) : kn_swrite(cu, w, (unsigned)d, (uint32_t)v);
}

int kn_exec_sop1(kn_cu *cu, kn_wave *w) {
  uint32_t i = cu->w[0], dst = bits(i, 22, 16), s0 = bits(i, 7, 0);
  uint32_t a = kn_sread(cu, w, s0, T_B32);
  uint64_t A = kn_sread64(cu, w, s0, T_B64);
  uint64_t pc_next = w->pc + cu->len;
  int rc = 0;
  switch (cu->op) {
  case S_MOV_B32: rc = kn_swrite(cu, w, dst, a); break;
  case S_MOV_B64: rc = kn_swrite64(cu, w, dst, A); break;
  case S_CMOV_B32: if (w->scc) rc = kn_swrite(cu, w, dst, a); break;
  case S_CMOV_B64: if (w->scc) rc = kn_swrite64(cu, w, dst, A); break;
  case S_BREV_B32: {
    uint32_t r = 0;
    for (int b = 0; b < 32; b++) r |= ((a >> b) & 1) << (31 - b);
    rc = kn_swrite(cu, w, dst, r);
    break;
  }
  case S_CTZ_I32_B32: rc = kn_swrite(cu, w, dst, a ? (uint32_t)__builtin_ctz(a) : ~0u); break;
  case S_CLZ_I32_U32: rc = kn_swrite(cu, w, dst, a ? (uint32_t)__builtin_clz(a) : ~0u); break;
  case S_CTZ_I32_B64: rc = kn_swrite(cu, w, dst, A ? (uint32_t)__builtin_ctzll(A) : ~0u); break;
  case S_CLZ_I32_U64: rc = kn_swrite(cu, w, dst, A ? (uint32_t)__builtin_clzll(A) : ~0u); break;
  case S_CLS_I32: rc = kn_swrite(cu, w, dst, cls32(a)); break;
  case S_CLS_I32_I64: rc = kn_swrite(cu, w, dst, cls64(A)); break;
  case S_MOVRELS_B32: case S_MOVRELS_B64: case S_MOVRELD_B32: case S_MOVRELD_B64: rc = smovrel(cu, w, dst, s0); break;
  case S_SEXT_I32_I8: rc = kn_swrite(cu, w, dst, sext(a, 8)); break;
  case S_SEXT_I32_I16: rc = kn_swrite(cu, w, dst, sext(a, 16)); break;
  case S_BITSET0_B32: rc = kn_swrite(cu, w, dst, (dst < 128 ? w->s[dst] : 0) & ~(1u << (a & 31))); break;
  case S_BITSET1_B32: rc = kn_swrite(cu, w, dst, (dst < 128 ? w->s[dst] : 0) | (1u << (a & 31))); break;
  case S_ABS_I32: {
    uint32_t r = (int32_t)a < 0 ? -a : a;
    w->scc = r != 0;
    rc = kn_swrite(cu, w, dst, r);
    break;
  }
  case S_BCNT0_I32_B32: w->scc = a != ~0u, rc = kn_swrite(cu, w, dst, 32 - (uint32_t)__builtin_popcount(a)); break;
  case S_BCNT1_I32_B32: w->scc = a != 0, rc = kn_swrite(cu, w, dst, (uint32_t)__builtin_popcount(a)); break;
  case S_BCNT1_I32_B64: w->scc = A != 0, rc = kn_swrite(cu, w, dst, (uint32_t)__builtin_popcountll(A)); break;
  case S_NOT_B32: w->scc = ~a != 0, rc = kn_swrite(cu, w, dst, ~a); break;
  case S_NOT_B64: w->scc = ~A != 0, rc = kn_swrite64(cu, w, dst, ~A); break;
  case S_WQM_B32: {
    uint32_t r = 0;
    for (int q = 0; q < 32; q += 4) r |= ((a >> q) & 15) ? 15u << q : 0;
    w->scc = r != 0, rc = kn_swrite(cu, w, dst, r);
    break;
  }
  case S_GETPC_B64: rc = kn_swrite64(cu, w, dst, pc_next); break;
  case S_SETPC_B64: pc_next = A; break;
  case S_SWAPPC_B64: rc = kn_swrite64(cu, w, dst, pc_next), pc_next = A; break;
  default:
    if (cu->op >= S_AND_SAVEEXEC_B32 && cu->op <= S_AND_NOT1_WREXEC_B64 && !(cu->op & 1)) {
      rc = saveexec(cu, w, dst, a);
      break;
    }
    return kn_cu_unimplemented(cu, w);
  }
  w->pc = pc_next;
  return rc;
}

int kn_exec_sopc(kn_cu *cu, kn_wave *w) {
  uint32_t i = cu->w[0], s0 = bits(i, 7, 0), s1 = bits(i, 15, 8);
  uint32_t a = kn_sread(cu, w, s0, T_B32), b = kn_sread(cu, w, s1, T_B32);
  int32_t x = (int32_t)a, y = (int32_t)b;
  switch (cu->op) {
  case S_CMP_EQ_I32: case S_CMP_EQ_U32: w->scc = a == b; break;
  case S_CMP_LG_I32: case S_CMP_LG_U32: w->scc = a != b; break;
  case S_CMP_GT_I32: w->scc = x > y; break;
  case S_CMP_GE_I32: w->scc = x >= y; break;
  case S_CMP_LT_I32: w->scc = x < y; break;
  case S_CMP_LE_I32: w->scc = x <= y; break;
  case S_CMP_GT_U32: w->scc = a > b; break;
  case S_CMP_GE_U32: w->scc = a >= b; break;
  case S_CMP_LT_U32: w->scc = a < b; break;
  case S_CMP_LE_U32: w->scc = a <= b; break;
  case S_BITCMP0_B32: w->scc = !((a >> (b & 31)) & 1); break;
  case S_BITCMP1_B32: w->scc = (a >> (b & 31)) & 1; break;
  case S_BITCMP0_B64: w->scc = !((kn_sread64(cu, w, s0, T_B64) >> (b & 63)) & 1); break;
  case S_BITCMP1_B64: w->scc = (kn_sread64(cu, w, s0, T_B64) >> (b & 63)) & 1; break;
  case S_CMP_EQ_U64: w->scc = kn_sread64(cu, w, s0, T_B64) == kn_sread64(cu, w, s1, T_B64); break;
  case S_CMP_LG_U64: w->scc = kn_sread64(cu, w, s0, T_B64) != kn_sread64(cu, w, s1, T_B64); break;
  default: return kn_cu_unimplemented(cu, w);
  }
  w->pc += cu->len;
  return 0;
}

int kn_exec_sopp(kn_cu *cu, kn_wave *w) {
  uint32_t imm = cu->w[0] & 0xffff;
  uint64_t next = w->pc + 4, target = next + (uint64_t)(int64_t)(int16_t)imm * 4;
  bool take = false;
  switch (cu->op) {
  case S_NOP: case S_SLEEP: case S_SET_INST_PREFETCH_DISTANCE: case S_CLAUSE: case S_DELAY_ALU:
  case S_WAITCNT_DEPCTR: case S_WAITCNT: case S_WAIT_IDLE: case S_SETPRIO: case S_ICACHE_INV: case S_INCPERFLEVEL:
  case S_DECPERFLEVEL: case S_TTRACEDATA: case S_TTRACEDATA_IMM: case S_WAKEUP:
    break; /* timing only: the interpreter executes in order, one wave at a time */
  case S_SENDMSG:
    if ((imm & 0xff) != 3) return kn_cu_unimplemented(cu, w); /* 3 = MSG_DEALLOC_VGPRS, a hint */
    break;
  case S_ENDPGM: w->state = WAVE_DONE; return 0;
  case S_BARRIER: w->state = WAVE_BARRIER; break;
  case S_BRANCH: take = true; break;
  case S_CBRANCH_SCC0: take = !w->scc; break;
  case S_CBRANCH_SCC1: take = w->scc; break;
  case S_CBRANCH_VCCZ: take = vcc_mask(w) == 0; break;
  case S_CBRANCH_VCCNZ: take = vcc_mask(w) != 0; break;
  case S_CBRANCH_EXECZ: take = exec_mask(w) == 0; break;
  case S_CBRANCH_EXECNZ: take = exec_mask(w) != 0; break;
  default: return kn_cu_unimplemented(cu, w);
  }
  w->pc = take ? target : next;
  return 0;
}
