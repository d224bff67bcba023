/* Per-format load templates for the GGUF block formats: `vec` contiguous elements (vec a power of two <= 16,
 * the start a multiple of vec) always share one sub-block scale and sit at consecutive byte offsets of each
 * quant array, so one template serves the scalar and the vector case: a few scalar loads for the block's scales,
 * one <vec x i8> load per quant array, shifts and masks in registers, one multiply-add to f32. The K formats decode
 * all sub-block scales of a super-block as one vector (identical in every unrolled instance, so LLVM computes it once
 * per block) and pick a lane. Layouts follow GGML's block formats (QK = 32 or 256 elements per block). */
#include <string.h>

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

/* y = v * s for integer lanes v (|v| < 2^22) and a scale s whose product with 1.5 * 2^23 is exact in f32 (s has
 * at most 22 significant bits: an f16 times a small integer). The bits of the float 1.5 * 2^23 + v are the integer
 * 0x4B400000 + v, and one fma with -1.5 * 2^23 * s removes the offset exactly, so the result is round(v * s), what
 * sitofp then fmul give, with an integer add in place of the conversion. Without FMA: the plain conversion. */
static LLVMValueRef finish_exact(qctx *q, LLVMValueRef vi, LLVMValueRef s) {
  kn_emit *e = q->e;
  if (!strstr(e->t->features, "+fma")) return finish(q, vi, s, NULL);
  LLVMTypeRef vf = kn_e_vec(e->f32, q->vec);
  LLVMValueRef f = LLVMBuildBitCast(e->b, LLVMBuildAdd(e->b, vi, ci32(q, 0x4B400000), ""), vf, "");
  LLVMValueRef c = LLVMBuildFMul(e->b, s, LLVMConstReal(e->f32, -12582912.0), "");
  LLVMValueRef args[3] = {f, kn_e_splat(e, s, q->vec), kn_e_splat(e, c, q->vec)};
  return kn_e_intrinsic(e, "llvm.fma", vf, args, 3);
}

/* Lane `is` (i64) of a vector of per-sub-block values. */
static LLVMValueRef lane(qctx *q, LLVMValueRef v, LLVMValueRef is) {
  return LLVMBuildExtractElement(q->e->b, v, LLVMBuildTrunc(q->e->b, is, q->e->i32, ""), "");
}

/* n consecutive bytes at a constant offset, shuffled by idx (n_out lanes), zero-extended to <n_out x i32>. */
static LLVMValueRef byte_lanes(qctx *q, long long off, int n, const int *idx, int n_out, bool sign) {
  kn_emit *e = q->e;
  LLVMValueRef v = ld(q, kn_e_vec(e->i8, n), c64(q, off)), m[16];
  for (int i = 0; i < n_out; i++) m[i] = LLVMConstInt(e->i32, (unsigned)idx[i], 0);
  v = LLVMBuildShuffleVector(e->b, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(m, (unsigned)n_out), "");
  LLVMTypeRef t = kn_e_vec(e->i32, n_out);
  return sign ? LLVMBuildSExt(e->b, v, t, "") : LLVMBuildZExt(e->b, v, t, "");
}

static LLVMValueRef ivec(qctx *q, const int *v, int n) {
  LLVMValueRef a[16];
  for (int i = 0; i < n; i++) a[i] = LLVMConstInt(q->e->i32, (unsigned long long)(long long)v[i], 1);
  return LLVMConstVector(a, (unsigned)n);
}

/* d * float(integer lanes) */
static LLVMValueRef scale_vec(qctx *q, LLVMValueRef d, LLVMValueRef iv, bool sign) {
  kn_emit *e = q->e;
  int n = (int)LLVMGetVectorSize(LLVMTypeOf(iv));
  LLVMTypeRef t = kn_e_vec(e->f32, n);
  LLVMValueRef f = sign ? LLVMBuildSIToFP(e->b, iv, t, "") : LLVMBuildUIToFP(e->b, iv, t, "");
  return kn_e_fmul(e, kn_e_splat(e, d, n), f);
}

/* Q4_0 / Q4_1: 16 bytes of nibbles, element j in byte j%16, high nibble for j >= 16 */
static LLVMValueRef q4(qctx *q, bool with_min) {
  int qs = with_min ? 4 : 2;
  LLVMValueRef p = band(q, q->j0, 15), half = shr(q, q->j0, 4);
  LLVMValueRef b = bytes(q, add64(q, p, c64(q, qs)), false);
  LLVMValueRef v = band(q, shr_by(q, b, LLVMBuildMul(q->e->b, half, c64(q, 4), "")), 15);
  if (!with_min) return finish_exact(q, LLVMBuildSub(q->e->b, v, ci32(q, 8), ""), ld_f16(q, 0));
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
  if (!with_min) return finish_exact(q, LLVMBuildSub(q->e->b, v, ci32(q, 16), ""), ld_f16(q, 0));
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
  static const int id[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  LLVMValueRef sc = byte_lanes(q, 0, 16, id, 16, false);
  LLVMValueRef d = lane(q, scale_vec(q, ld_f16(q, 80), band(q, sc, 15), false), is);
  LLVMValueRef m = lane(q, scale_vec(q, ld_f16(q, 82), shr(q, sc, 4), false), is);
  return finish(q, v, d, LLVMBuildFNeg(B, m, ""));
}

/* Q3_K: hmask[32], qs[64], scales[12] (16 six-bit scales), d. Element j = 128h + 32g + p: low bits in byte
 * 32h + p at 2g, high bit in hmask[p] bit 4h + g (clear means -4); scale 8h + 2g + p/16, biased by 32: its low
 * four bits are bits 4(is / 8) of byte 96 + is % 8, its high two bits 2(is / 4) of byte 104 + is % 4. */
static LLVMValueRef q3k(qctx *q) {
  LLVMBuilderRef B = q->e->b;
  LLVMValueRef h = shr(q, q->j0, 7), g = band(q, shr(q, q->j0, 5), 3), p = band(q, q->j0, 31);
  LLVMValueRef b = bytes(q, add64(q, c64(q, 32), add64(q, LLVMBuildMul(B, h, c64(q, 32), ""), p)), false);
  LLVMValueRef lo = band(q, shr_by(q, b, LLVMBuildMul(B, g, c64(q, 2), "")), 3);
  LLVMValueRef hm = bytes(q, p, false);
  LLVMValueRef hb = band(q, shr_by(q, hm, add64(q, LLVMBuildMul(B, h, c64(q, 4), ""), g)), 1);
  LLVMValueRef v = LLVMBuildSub(B, LLVMBuildOr(B, lo, LLVMBuildShl(B, hb, ci32(q, 2), ""), ""), ci32(q, 4), "");
  LLVMValueRef is = add64(q, add64(q, LLVMBuildMul(B, h, c64(q, 8), ""), LLVMBuildMul(B, g, c64(q, 2), "")), shr(q, p, 4));
  static const int il[16] = {0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7}, ih[16] = {8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11};
  static const int sl[16] = {0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4}, sh[16] = {0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6};
  LLVMValueRef low = LLVMBuildLShr(B, byte_lanes(q, 96, 12, il, 16, false), ivec(q, sl, 16), "");
  LLVMValueRef high = LLVMBuildLShr(B, byte_lanes(q, 96, 12, ih, 16, false), ivec(q, sh, 16), "");
  LLVMTypeRef v16 = kn_e_vec(q->e->i32, 16);
  LLVMValueRef sc = LLVMBuildOr(B, LLVMBuildAnd(B, low, kn_e_iconst(v16, 15), ""),
                                LLVMBuildShl(B, LLVMBuildAnd(B, high, kn_e_iconst(v16, 3), ""), kn_e_iconst(v16, 4), ""), "");
  sc = LLVMBuildSub(B, sc, kn_e_iconst(v16, 32), "");
  return finish(q, v, lane(q, scale_vec(q, ld_f16(q, 108), sc, true), is), NULL);
}

/* The eight 6-bit scales and mins of Q4_K/Q5_K (12 packed bytes at offset 4), each as d * scale, dmin * min in
 * <8 x float>: sub-block i < 4 has them in the low six bits of bytes i and 4 + i; i >= 4 in the nibbles of byte
 * 4 + i with the top two bits of bytes i - 4 and i. */
static void scales_k4(qctx *q, LLVMValueRef *ds, LLVMValueRef *dm) {
  LLVMBuilderRef B = q->e->b;
  static const int ia[8] = {0, 1, 2, 3, 0, 1, 2, 3}, ib[8] = {4, 5, 6, 7, 4, 5, 6, 7}, ic[8] = {8, 9, 10, 11, 8, 9, 10, 11};
  LLVMValueRef a = byte_lanes(q, 4, 12, ia, 8, false), bq = byte_lanes(q, 4, 12, ib, 8, false);
  LLVMValueRef cq = byte_lanes(q, 4, 12, ic, 8, false);
  LLVMTypeRef t = LLVMTypeOf(a);
  LLVMValueRef first[8];
  for (int i = 0; i < 8; i++) first[i] = LLVMConstInt(q->e->i1, i < 4, 0);
  LLVMValueRef lo4 = LLVMConstVector(first, 8);
  LLVMValueRef s_lo = LLVMBuildAnd(B, a, kn_e_iconst(t, 63), ""), m_lo = LLVMBuildAnd(B, bq, kn_e_iconst(t, 63), "");
  LLVMValueRef s_hi = LLVMBuildOr(B, LLVMBuildAnd(B, cq, kn_e_iconst(t, 15), ""),
                                  LLVMBuildShl(B, LLVMBuildLShr(B, a, kn_e_iconst(t, 6), ""), kn_e_iconst(t, 4), ""), "");
  LLVMValueRef m_hi = LLVMBuildOr(B, LLVMBuildLShr(B, cq, kn_e_iconst(t, 4), ""),
                                  LLVMBuildShl(B, LLVMBuildLShr(B, bq, kn_e_iconst(t, 6), ""), kn_e_iconst(t, 4), ""), "");
  *ds = scale_vec(q, ld_f16(q, 0), LLVMBuildSelect(B, lo4, s_lo, s_hi, ""), false);
  *dm = scale_vec(q, ld_f16(q, 2), LLVMBuildSelect(B, lo4, m_lo, m_hi, ""), false);
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
  LLVMValueRef ds, dm;
  scales_k4(q, &ds, &dm);
  return finish(q, v, lane(q, ds, is), LLVMBuildFNeg(B, lane(q, dm, is), ""));
}

/* Q6_K: ql[128], qh[64], int8 scales[16], d. Element j = 128h + 32k + p: low nibble (k >> 1) of ql byte
 * 64h + 32(k & 1) + p, two high bits 2k of qh byte 32h + p, value biased by 32; scale 8h + 2k + p/16. */
static LLVMValueRef q6k(qctx *q) {
  LLVMBuilderRef B = q->e->b;
  LLVMValueRef h = shr(q, q->j0, 7), k = band(q, shr(q, q->j0, 5), 3), p = band(q, q->j0, 31);
  LLVMValueRef lo_off = add64(q, add64(q, LLVMBuildMul(B, h, c64(q, 64), ""), LLVMBuildMul(B, band(q, k, 1), c64(q, 32), "")), p);
  LLVMValueRef lo = band(q, shr_by(q, bytes(q, lo_off, false), LLVMBuildMul(B, shr(q, k, 1), c64(q, 4), "")), 15);
  /* the high bits minus the bias: with bit 1 of the pair flipped, the pair read as a signed 2-bit number is
   * hb - 2, so a shift to the top and an arithmetic shift down give (hb - 2) * 16 above bit 4 (lower pairs land
   * in bits 0..3, which lo replaces: one bitwise select) */
  LLVMValueRef hb = bytes(q, add64(q, c64(q, 128), add64(q, LLVMBuildMul(B, h, c64(q, 32), ""), p)), false);
  hb = LLVMBuildXor(B, hb, ci32(q, 0xAA), "");
  LLVMValueRef up = LLVMBuildTrunc(B, LLVMBuildSub(B, c64(q, 30), LLVMBuildMul(B, k, c64(q, 2), ""), ""), q->e->i32, "");
  hb = LLVMBuildAShr(B, LLVMBuildShl(B, hb, kn_e_splat(q->e, up, q->vec), ""), ci32(q, 26), "");
  LLVMValueRef v = LLVMBuildOr(B, lo, band(q, hb, ~15LL), "");
  LLVMValueRef is = add64(q, add64(q, LLVMBuildMul(B, h, c64(q, 8), ""), LLVMBuildMul(B, k, c64(q, 2), "")), shr(q, p, 4));
  static const int id[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return finish(q, v, lane(q, scale_vec(q, ld_f16(q, 208), byte_lanes(q, 192, 16, id, 16, true), true), is), NULL);
}

bool kn_quant_load_supported(kn_dtype fmt) {
  switch (fmt) {
  case KN_Q4_0: case KN_Q4_1: case KN_Q5_0: case KN_Q5_1: case KN_Q8_0: case KN_Q8_1: case KN_Q2_K: case KN_Q3_K:
  case KN_Q4_K: case KN_Q5_K: case KN_Q6_K: case KN_Q8_K: return true;
  default: return false;
  }
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
