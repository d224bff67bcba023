/* Per-format load templates for the GGUF block formats: `vec` contiguous elements (vec a power of two <= 16,
 * the start a multiple of vec) always share one sub-block scale and sit at consecutive byte offsets of each
 * quant array, so one template serves the scalar and the vector case: a few scalar loads for the block's scales,
 * one <vec x i8> load per quant array, shifts and masks in registers, one multiply-add to f32. Layouts follow
 * GGML's block formats (QK = 32 or 256 elements per block). */
#include "emit.h"

typedef struct {
  kn_emit *e;
  LLVMValueRef bp;  /* i8 pointer to the block */
  LLVMValueRef j0;  /* i64 index of the first element inside the block */
  int vec;
  LLVMTypeRef vi32; /* i32 or <vec x i32> */
} qctx;

static LLVMValueRef c64(qctx *q, long long v) { return LLVMConstInt(q->e->i64, (unsigned long long)v, 1); }
static LLVMValueRef ci32(qctx *q, long long v) { return kn_e_iconst(q->vi32, v); }
static LLVMValueRef band(qctx *q, LLVMValueRef a, long long m) { return LLVMBuildAnd(q->e->b, a, kn_e_iconst(LLVMTypeOf(a), m), ""); }
static LLVMValueRef shr(qctx *q, LLVMValueRef a, long long s) { return LLVMBuildLShr(q->e->b, a, kn_e_iconst(LLVMTypeOf(a), s), ""); }
static LLVMValueRef add64(qctx *q, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(q->e->b, a, b, ""); }

static LLVMValueRef at(qctx *q, LLVMValueRef off) { return LLVMBuildGEP2(q->e->b, q->e->i8, q->bp, &off, 1, ""); }

/* A scalar field of the block at a byte offset (i64 value). */
static LLVMValueRef ld(qctx *q, LLVMTypeRef t, LLVMValueRef off) {
  LLVMValueRef v = LLVMBuildLoad2(q->e->b, t, at(q, off), "");
  LLVMSetAlignment(v, 1);
  return v;
}
static LLVMValueRef ld_f16(qctx *q, long long off) { return LLVMBuildFPExt(q->e->b, ld(q, q->e->f16, c64(q, off)), q->e->f32, ""); }
static LLVMValueRef ld_u8(qctx *q, LLVMValueRef off) { return LLVMBuildZExt(q->e->b, ld(q, q->e->i8, off), q->e->i32, ""); }

/* vec consecutive bytes at off, zero- or sign-extended to i32 lanes. */
static LLVMValueRef bytes(qctx *q, LLVMValueRef off, bool sign) {
  LLVMValueRef v = ld(q, kn_e_vec(q->e->i8, q->vec), off);
  return sign ? LLVMBuildSExt(q->e->b, v, q->vi32, "") : LLVMBuildZExt(q->e->b, v, q->vi32, "");
}

/* per-lane shift by a runtime scalar amount (i64) */
static LLVMValueRef shr_by(qctx *q, LLVMValueRef v, LLVMValueRef amt64) {
  LLVMValueRef a = LLVMBuildTrunc(q->e->b, amt64, q->e->i32, "");
  return LLVMBuildLShr(q->e->b, v, kn_e_splat(q->e, a, q->vec), "");
}

static LLVMValueRef lanes_iota(qctx *q) {
  if (q->vec == 1) return ci32(q, 0);
  LLVMValueRef a[16];
  for (int i = 0; i < q->vec; i++) a[i] = LLVMConstInt(q->e->i32, (unsigned)i, 0);
  return LLVMConstVector(a, (unsigned)q->vec);
}

/* y = q * d + m (m may be NULL) with q integer lanes */
static LLVMValueRef finish(qctx *q, LLVMValueRef qi, LLVMValueRef d, LLVMValueRef m) {
  kn_emit *e = q->e;
  LLVMValueRef f = LLVMBuildSIToFP(e->b, qi, kn_e_vec(e->f32, q->vec), "");
  LLVMValueRef y = kn_e_fmul(e, f, kn_e_splat(e, d, q->vec));
  return m ? kn_e_fadd(e, y, kn_e_splat(e, m, q->vec)) : y;
}

/* Q4_0 / Q4_1: 16 bytes of nibbles, element j in byte j%16, high nibble for j >= 16 */
static LLVMValueRef q4(qctx *q, bool with_min) {
  int qs = with_min ? 4 : 2;
  LLVMValueRef p = band(q, q->j0, 15), half = shr(q, q->j0, 4);
  LLVMValueRef b = bytes(q, add64(q, p, c64(q, qs)), false);
  LLVMValueRef v = band(q, shr_by(q, b, LLVMBuildMul(q->e->b, half, c64(q, 4), "")), 15);
  if (!with_min) return finish(q, LLVMBuildSub(q->e->b, v, ci32(q, 8), ""), ld_f16(q, 0), NULL);
  return finish(q, v, ld_f16(q, 0), ld_f16(q, 2));
}

/* Q5_0 / Q5_1: as Q4 plus a 32-bit word whose bit j is element j's fifth bit */
static LLVMValueRef q5(qctx *q, bool with_min) {
  int qh = with_min ? 4 : 2, qs = with_min ? 8 : 6;
  LLVMValueRef p = band(q, q->j0, 15), half = shr(q, q->j0, 4);
  LLVMValueRef b = bytes(q, add64(q, p, c64(q, qs)), false);
  LLVMValueRef v = band(q, shr_by(q, b, LLVMBuildMul(q->e->b, half, c64(q, 4), "")), 15);
  LLVMValueRef h = kn_e_splat(q->e, ld(q, q->e->i32, c64(q, qh)), q->vec);
  LLVMValueRef sh = LLVMBuildAdd(q->e->b, kn_e_splat(q->e, LLVMBuildTrunc(q->e->b, q->j0, q->e->i32, ""), q->vec), lanes_iota(q), "");
  LLVMValueRef hb = band(q, LLVMBuildLShr(q->e->b, h, sh, ""), 1);
  v = LLVMBuildOr(q->e->b, v, LLVMBuildShl(q->e->b, hb, ci32(q, 4), ""), "");
  if (!with_min) return finish(q, LLVMBuildSub(q->e->b, v, ci32(q, 16), ""), ld_f16(q, 0), NULL);
  return finish(q, v, ld_f16(q, 0), ld_f16(q, 2));
}

static LLVMValueRef q8(qctx *q, int qs) { return finish(q, bytes(q, add64(q, q->j0, c64(q, qs)), true), ld_f16(q, 0), NULL); }

static LLVMValueRef q8k(qctx *q) {
  LLVMValueRef d = ld(q, q->e->f32, c64(q, 0));
  return finish(q, bytes(q, add64(q, q->j0, c64(q, 4)), true), d, NULL);
}

/* Q2_K: scales[16] (4-bit scale | 4-bit min), qs[64] (four 2-bit planes), d, dmin. Element j = 128h + 32g + p:
 * byte 32h + p, bits 2g; sub-block 8h + 2g + p/16. */
static LLVMValueRef q2k(qctx *q) {
  LLVMBuilderRef B = q->e->b;
  LLVMValueRef h = shr(q, q->j0, 7), g = band(q, shr(q, q->j0, 5), 3), p = band(q, q->j0, 31);
  LLVMValueRef b = bytes(q, add64(q, c64(q, 16), add64(q, LLVMBuildMul(B, h, c64(q, 32), ""), p)), false);
  LLVMValueRef v = band(q, shr_by(q, b, LLVMBuildMul(B, g, c64(q, 2), "")), 3);
  LLVMValueRef is = add64(q, add64(q, LLVMBuildMul(B, h, c64(q, 8), ""), LLVMBuildMul(B, g, c64(q, 2), "")), shr(q, p, 4));
  LLVMValueRef sc = ld_u8(q, is);
  LLVMValueRef d = kn_e_fmul(q->e, ld_f16(q, 80), LLVMBuildUIToFP(B, band(q, sc, 15), q->e->f32, ""));
  LLVMValueRef m = kn_e_fmul(q->e, ld_f16(q, 82), LLVMBuildUIToFP(B, shr(q, sc, 4), q->e->f32, ""));
  return finish(q, v, d, LLVMBuildFNeg(B, m, ""));
}

/* Q3_K: hmask[32], qs[64], scales[12] (16 six-bit scales), d. Element j = 128h + 32g + p: low bits in byte
 * 32h + p at 2g, high bit in hmask[p] bit 4h + g (clear means -4); scale 8h + 2g + p/16, biased by 32. */
static LLVMValueRef q3k(qctx *q) {
  LLVMBuilderRef B = q->e->b;
  LLVMValueRef h = shr(q, q->j0, 7), g = band(q, shr(q, q->j0, 5), 3), p = band(q, q->j0, 31);
  LLVMValueRef b = bytes(q, add64(q, c64(q, 32), add64(q, LLVMBuildMul(B, h, c64(q, 32), ""), p)), false);
  LLVMValueRef lo = band(q, shr_by(q, b, LLVMBuildMul(B, g, c64(q, 2), "")), 3);
  LLVMValueRef hm = bytes(q, p, false);
  LLVMValueRef hb = band(q, shr_by(q, hm, add64(q, LLVMBuildMul(B, h, c64(q, 4), ""), g)), 1);
  LLVMValueRef v = LLVMBuildSub(B, LLVMBuildOr(B, lo, LLVMBuildShl(B, hb, ci32(q, 2), ""), ""), ci32(q, 4), "");
  LLVMValueRef is = add64(q, add64(q, LLVMBuildMul(B, h, c64(q, 8), ""), LLVMBuildMul(B, g, c64(q, 2), "")), shr(q, p, 4));
  LLVMValueRef low = ld_u8(q, add64(q, c64(q, 96), band(q, is, 7)));
  low = band(q, LLVMBuildLShr(B, low, LLVMBuildTrunc(B, LLVMBuildMul(B, shr(q, is, 3), c64(q, 4), ""), q->e->i32, ""), ""), 15);
  LLVMValueRef high = ld_u8(q, add64(q, c64(q, 104), band(q, is, 3)));
  high = band(q, LLVMBuildLShr(B, high, LLVMBuildTrunc(B, LLVMBuildMul(B, shr(q, is, 2), c64(q, 2), ""), q->e->i32, ""), ""), 3);
  LLVMValueRef sc = LLVMBuildSub(B, LLVMBuildOr(B, low, LLVMBuildShl(B, high, LLVMConstInt(q->e->i32, 4, 0), ""), ""),
                                 LLVMConstInt(q->e->i32, 32, 0), "");
  LLVMValueRef d = kn_e_fmul(q->e, ld_f16(q, 108), LLVMBuildSIToFP(B, sc, q->e->f32, ""));
  return finish(q, v, d, NULL);
}

/* The 6-bit scale and min of sub-block `is` (0..7) of Q4_K/Q5_K from the 12 packed bytes at offset 4. */
static void scale_min_k4(qctx *q, LLVMValueRef is, LLVMValueRef *sc, LLVMValueRef *mn) {
  LLVMBuilderRef B = q->e->b;
  LLVMValueRef lo4 = LLVMBuildICmp(B, LLVMIntULT, is, c64(q, 4), "");
  LLVMValueRef i4 = band(q, is, 3); /* is mod 4 */
  LLVMValueRef a = ld_u8(q, add64(q, c64(q, 4), i4));      /* scales[is % 4] */
  LLVMValueRef bq = ld_u8(q, add64(q, c64(q, 8), i4));     /* scales[is % 4 + 4] */
  LLVMValueRef cq = ld_u8(q, add64(q, c64(q, 12), i4));    /* scales[is % 4 + 8] */
  LLVMValueRef s_lo = band(q, a, 63), m_lo = band(q, bq, 63);
  LLVMValueRef s_hi = LLVMBuildOr(B, band(q, cq, 15), LLVMBuildShl(B, shr(q, a, 6), LLVMConstInt(q->e->i32, 4, 0), ""), "");
  LLVMValueRef m_hi = LLVMBuildOr(B, shr(q, cq, 4), LLVMBuildShl(B, shr(q, bq, 6), LLVMConstInt(q->e->i32, 4, 0), ""), "");
  *sc = LLVMBuildSelect(B, lo4, s_lo, s_hi, "");
  *mn = LLVMBuildSelect(B, lo4, m_lo, m_hi, "");
}

/* Q4_K / Q5_K: d, dmin, 12 scale bytes, [qh[32] for Q5_K], qs[128]. Element j = 64g + 32hi + p: nibble hi of byte
 * 32g + p, sub-block 2g + hi; Q5_K's fifth bit is qh[p] bit 2g + hi. */
static LLVMValueRef qk45(qctx *q, bool five) {
  LLVMBuilderRef B = q->e->b;
  LLVMValueRef g = shr(q, q->j0, 6), hi = band(q, shr(q, q->j0, 5), 1), p = band(q, q->j0, 31);
  LLVMValueRef b = bytes(q, add64(q, c64(q, five ? 48 : 16), add64(q, LLVMBuildMul(B, g, c64(q, 32), ""), p)), false);
  LLVMValueRef is = add64(q, LLVMBuildMul(B, g, c64(q, 2), ""), hi);
  LLVMValueRef v = band(q, shr_by(q, b, LLVMBuildMul(B, hi, c64(q, 4), "")), 15);
  if (five) {
    LLVMValueRef hb = band(q, shr_by(q, bytes(q, add64(q, c64(q, 16), p), false), is), 1);
    v = LLVMBuildOr(B, v, LLVMBuildShl(B, hb, ci32(q, 4), ""), "");
  }
  LLVMValueRef sc, mn;
  scale_min_k4(q, is, &sc, &mn);
  LLVMValueRef d = kn_e_fmul(q->e, ld_f16(q, 0), LLVMBuildUIToFP(B, sc, q->e->f32, ""));
  LLVMValueRef m = kn_e_fmul(q->e, ld_f16(q, 2), LLVMBuildUIToFP(B, mn, q->e->f32, ""));
  return finish(q, v, d, LLVMBuildFNeg(B, m, ""));
}

/* Q6_K: ql[128], qh[64], int8 scales[16], d. Element j = 128h + 32k + p: low nibble (k >> 1) of ql byte
 * 64h + 32(k & 1) + p, two high bits 2k of qh byte 32h + p, value biased by 32; scale 8h + 2k + p/16. */
static LLVMValueRef q6k(qctx *q) {
  LLVMBuilderRef B = q->e->b;
  LLVMValueRef h = shr(q, q->j0, 7), k = band(q, shr(q, q->j0, 5), 3), p = band(q, q->j0, 31);
  LLVMValueRef lo_off = add64(q, add64(q, LLVMBuildMul(B, h, c64(q, 64), ""), LLVMBuildMul(B, band(q, k, 1), c64(q, 32), "")), p);
  LLVMValueRef lo = band(q, shr_by(q, bytes(q, lo_off, false), LLVMBuildMul(B, shr(q, k, 1), c64(q, 4), "")), 15);
  LLVMValueRef hb = bytes(q, add64(q, c64(q, 128), add64(q, LLVMBuildMul(B, h, c64(q, 32), ""), p)), false);
  hb = band(q, shr_by(q, hb, LLVMBuildMul(B, k, c64(q, 2), "")), 3);
  LLVMValueRef v = LLVMBuildSub(B, LLVMBuildOr(B, lo, LLVMBuildShl(B, hb, ci32(q, 4), ""), ""), ci32(q, 32), "");
  LLVMValueRef is = add64(q, add64(q, LLVMBuildMul(B, h, c64(q, 8), ""), LLVMBuildMul(B, k, c64(q, 2), "")), shr(q, p, 4));
  LLVMValueRef sc = LLVMBuildSExt(B, ld(q, q->e->i8, add64(q, c64(q, 192), is)), q->e->i32, "");
  LLVMValueRef d = kn_e_fmul(q->e, ld_f16(q, 208), LLVMBuildSIToFP(B, sc, q->e->f32, ""));
  return finish(q, v, d, NULL);
}

LLVMValueRef kn_quant_load(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, LLVMValueRef j0, int vec) {
  const kn_dtype_info *di = kn_dtype_get(fmt);
  if (!di->is_quant || vec < 1 || vec > 16 || (vec & (vec - 1))) {
    kn_efail(e, "no load template for %s with %d lanes", di->name, vec);
    return LLVMGetPoison(kn_e_vec(e->f32, vec));
  }
  LLVMValueRef off = LLVMBuildMul(e->b, blk, LLVMConstInt(e->i64, (unsigned)di->block_bytes, 0), "");
  qctx q = {.e = e, .vec = vec, .vi32 = kn_e_vec(e->i32, vec)};
  q.bp = LLVMBuildGEP2(e->b, e->i8, base, &off, 1, "");
  q.j0 = j0;
  switch (fmt) {
  case KN_Q4_0: return q4(&q, false);
  case KN_Q4_1: return q4(&q, true);
  case KN_Q5_0: return q5(&q, false);
  case KN_Q5_1: return q5(&q, true);
  case KN_Q8_0: return q8(&q, 2);
  case KN_Q8_1: return q8(&q, 4);
  case KN_Q2_K: return q2k(&q);
  case KN_Q3_K: return q3k(&q);
  case KN_Q4_K: return qk45(&q, false);
  case KN_Q5_K: return qk45(&q, true);
  case KN_Q6_K: return q6k(&q);
  case KN_Q8_K: return q8k(&q);
  default:
    kn_efail(e, "no load template for %s", di->name);
    return LLVMGetPoison(kn_e_vec(e->f32, vec));
  }
}
