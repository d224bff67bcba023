/* Integer-dot templates for the GGUF block formats (the default, fast mode of the fused dequant-matmul; KILN_EXACT=1
 * keeps quant.c's exact f32 decode). The activations of one block are quantized to int8 with one scale (amax / 127,
 * rounded to nearest even, as tests/kernel_ref.c does), the block's quants are decoded to unsigned bytes in element
 * order, and each chunk of the vector width is dotted with u8 x s8 multiply-adds (vpmaddubsw, then vpmaddwd by the
 * integer sub-block scales; vpdpbusd for one-scale blocks where AVX512-VNNI/AVX-VNNI exist): the block becomes one
 * i32 vector, converted and scaled once. A format's offset or min
 * (q - 8, d * sc * q - dmin * m) is a second multiply-add of the activations' pair sums, which depend on the
 * activations only, so LLVM computes them once for all the rows that share them. */
#include <string.h>

#include "../device/base/env.h"
#include "emit.h"

typedef struct {
  kn_emit *e;
  LLVMValueRef bp; /* i8 pointer to the block */
  bool korder;     /* Q2_K/Q3_K: decode in the K record's order of k_elem (64-byte chunks on AVX-512, dword pairs on
                    * 32-byte vectors) */
} qd;

/* A decoded block: unsigned quants in element order, and per sub-block of S elements the integer multipliers of
 * sum(u * x) (scl, NULL = 1) and of sum(x) (mnl, NULL = none) as <nsub x i16>. The block's dot is
 * dx * (dA * sum_s scl_s * sum(u x) + dB * sum_s mnl_s * sum(x)); dB NULL means dB = dA (one integer accumulator).
 * signed_w: uq holds signed bytes (Q8_0); the dot then takes |w| and moves the sign onto x. Formats of one scale per
 * block give the multiplier of sum(x) as the constant off (the sums then stay a vector of partial sums). */
typedef struct {
  LLVMValueRef uq, scl, mnl, dA, dB;
  int qk, S;
  int off; /* one-sub-block formats: the multiplier of sum(x) instead of mnl (0: none) */
  int dA_at, dB_at; /* byte offsets of dA and (one-sub-block formats with a min) dB as float16 in the block */
  bool signed_w;
  /* ish > 0 (the K record's Q2_K/Q3_K on AVX2, k_ish): the quants of W-byte chunk c are 2^(ish - csh[c]) times their
   * value (masked in place, not shifted), so chunk c's multipliers count 2^csh[c] times: the integer dot and mnl's
   * are 2^ish times the block's, and dx is taken 2^-ish times (exact) */
  int ish;
  signed char csh[8];
} qblock;

static bool tfeat(const kn_target *t, const char *f) {
  size_t n = strlen(f);
  for (const char *p = t->features; (p = strstr(p, f)); p += n)
    if (p > t->features && p[-1] == '+' && (p[n] == ',' || !p[n])) return true;
  return false;
}
static bool feat(kn_emit *e, const char *f) { return tfeat(e->t, f); }

static LLVMTypeRef vt(LLVMTypeRef t, int n) { return LLVMVectorType(t, (unsigned)n); }
static LLVMValueRef c64(qd *q, long long v) { return LLVMConstInt(q->e->i64, (unsigned long long)v, 1); }

static LLVMValueRef bytes(qd *q, long long off, int n) {
  LLVMValueRef o = c64(q, off);
  LLVMValueRef v = LLVMBuildLoad2(q->e->b, vt(q->e->i8, n), LLVMBuildGEP2(q->e->b, q->e->i8, q->bp, &o, 1, ""), "");
  LLVMSetAlignment(v, 1);
  return v;
}

static int int_width(kn_emit *e);
static LLVMValueRef shuf(kn_emit *e, LLVMValueRef a, LLVMValueRef b, const int *idx, int n);

/* Dword i of the 32-byte K record order's vector (k_pair) is dword (i % 2) * 4 + i / 2 of the block's 32 bytes:
 * lane j holds dwords 2j and 2j + 1 of each 16-byte half, interleaved, so every dword's two words come from the two
 * halves (two sub-blocks of 16) in the same order in both lanes. */
static int pair_src(int l) { return 4 * (l / 4 % 2 * 4 + l / 8) + l % 4; }

/* 32 bytes of the block at off, in the K record's order on 32-byte vectors when q->korder and perm (one vpermd) */
static LLVMValueRef kbytes(qd *q, long long off, bool perm) {
  LLVMValueRef v = bytes(q, off, 32);
  if (!perm || !q->korder || int_width(q->e) != 32) return v;
  int idx[32];
  for (int l = 0; l < 32; l++) idx[l] = pair_src(l);
  return shuf(q->e, v, NULL, idx, 32);
}

static LLVMValueRef f16_at(qd *q, long long off) {
  LLVMValueRef o = c64(q, off);
  LLVMValueRef v = LLVMBuildLoad2(q->e->b, q->e->f16, LLVMBuildGEP2(q->e->b, q->e->i8, q->bp, &o, 1, ""), "");
  LLVMSetAlignment(v, 1);
  return LLVMBuildFPExt(q->e->b, v, q->e->f32, "");
}

/* the float16 at off in every lane of <n x float>: one broadcast load and one conversion (vpbroadcastw, vcvtph2ps) */
static LLVMValueRef f16_splat(qd *q, long long off, int n) {
  kn_emit *e = q->e;
  LLVMValueRef o = c64(q, off);
  LLVMValueRef v = LLVMBuildLoad2(e->b, e->f16, LLVMBuildGEP2(e->b, e->i8, q->bp, &o, 1, ""), "");
  LLVMSetAlignment(v, 1);
  LLVMTypeRef ht = vt(e->f16, n);
  v = LLVMBuildInsertElement(e->b, LLVMGetPoison(ht), v, LLVMConstInt(e->i32, 0, 0), "");
  v = LLVMBuildShuffleVector(e->b, v, LLVMGetPoison(ht), LLVMConstNull(vt(e->i32, n)), "");
  return LLVMBuildFPExt(e->b, v, vt(e->f32, n), "");
}

static LLVMValueRef shuf(kn_emit *e, LLVMValueRef a, LLVMValueRef b, const int *idx, int n) {
  LLVMValueRef m[256];
  for (int i = 0; i < n; i++) m[i] = LLVMConstInt(e->i32, (unsigned)idx[i], 0);
  return LLVMBuildShuffleVector(e->b, a, b ? b : LLVMGetPoison(LLVMTypeOf(a)), LLVMConstVector(m, (unsigned)n), "");
}

/* lanes [lo, lo + n) of v */
static LLVMValueRef slice(kn_emit *e, LLVMValueRef v, int lo, int n) {
  int idx[256];
  for (int i = 0; i < n; i++) idx[i] = lo + i;
  return shuf(e, v, NULL, idx, n);
}

/* parts[0..n) of equal width, concatenated */
static LLVMValueRef concat(kn_emit *e, LLVMValueRef *parts, int n) {
  while (n > 1) {
    int w = (int)LLVMGetVectorSize(LLVMTypeOf(parts[0])), idx[256];
    for (int i = 0; i < 2 * w; i++) idx[i] = i;
    for (int i = 0; i < n / 2; i++) parts[i] = shuf(e, parts[2 * i], parts[2 * i + 1], idx, 2 * w);
    n /= 2;
  }
  return parts[0];
}

static LLVMValueRef band(kn_emit *e, LLVMValueRef v, long long m) { return LLVMBuildAnd(e->b, v, kn_e_iconst(LLVMTypeOf(v), m), ""); }
static LLVMValueRef lshr(kn_emit *e, LLVMValueRef v, long long s) { return s ? LLVMBuildLShr(e->b, v, kn_e_iconst(LLVMTypeOf(v), s), "") : v; }
static LLVMValueRef shl(kn_emit *e, LLVMValueRef v, long long s) { return s ? LLVMBuildShl(e->b, v, kn_e_iconst(LLVMTypeOf(v), s), "") : v; }
static LLVMValueRef bor(kn_emit *e, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildOr(e->b, a, b, ""); }
static LLVMValueRef i16s(kn_emit *e, LLVMValueRef v, bool sign) {
  LLVMTypeRef t = vt(e->i16, (int)LLVMGetVectorSize(LLVMTypeOf(v)));
  return sign ? LLVMBuildSExt(e->b, v, t, "") : LLVMBuildZExt(e->b, v, t, "");
}
static LLVMValueRef splat16(kn_emit *e, int n, long long v) { return kn_e_iconst(vt(e->i16, n), v); }

static bool x86(kn_emit *e);
static LLVMValueRef call(kn_emit *e, const char *name, LLVMValueRef a, LLVMValueRef b);

/* ((v >> from) & (2^n - 1)) << to in every byte of v. With GFNI one affine transform (vgf2p8affineqb: output bit
 * to + i is input bit from + i), where shifts of bytes take a word shift and a mask, and a field a shift, a mask and
 * another shift. */
static LLVMValueRef bits(kn_emit *e, LLVMValueRef v, int from, int n, int to) {
  int W = (int)LLVMGetVectorSize(LLVMTypeOf(v));
  const char *nm = NULL;
  if (x86(e) && feat(e, "gfni") && (from || to)) {
    if (W == 64 && feat(e, "avx512bw")) nm = "llvm.x86.vgf2p8affineqb.512";
    else if (W == 32 && feat(e, "avx")) nm = "llvm.x86.vgf2p8affineqb.256";
    else if (W == 16) nm = "llvm.x86.vgf2p8affineqb.128";
  }
  if (!nm) return shl(e, band(e, lshr(e, v, from), (1 << n) - 1), to);
  unsigned char row[8] = {0}; /* byte 7 - k of each quadword: the input bits that make output bit k */
  for (int i = 0; i < n && from + i < 8 && to + i < 8; i++) row[7 - (to + i)] = (unsigned char)(1u << (from + i));
  LLVMValueRef m[64];
  for (int l = 0; l < W; l++) m[l] = LLVMConstInt(e->i8, row[l % 8], 0);
  unsigned id = LLVMLookupIntrinsicID(nm, strlen(nm));
  LLVMValueRef args[3] = {v, LLVMConstVector(m, (unsigned)W), LLVMConstInt(e->i8, 0, 0)};
  return LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, NULL, 0), LLVMGetIntrinsicDeclaration(e->mod, id, NULL, 0), args, 3, "");
}

/* The GF(2) affine transform of every byte of v (vgf2p8affineqb), quadword i of v by matrix rows[i % nmat]: output
 * bit k of a byte is the parity of its bits in mask rows[.][k] (a gather of single bits where each mask has at most
 * one bit). NULL where the target has no GFNI at v's width. */
static LLVMValueRef gf_affine(kn_emit *e, LLVMValueRef v, const unsigned char (*rows)[8], int nmat) {
  int W = (int)LLVMGetVectorSize(LLVMTypeOf(v));
  const char *nm = NULL;
  if (x86(e) && feat(e, "gfni")) {
    if (W == 64 && feat(e, "avx512bw")) nm = "llvm.x86.vgf2p8affineqb.512";
    else if (W == 32 && feat(e, "avx")) nm = "llvm.x86.vgf2p8affineqb.256";
    else if (W == 16) nm = "llvm.x86.vgf2p8affineqb.128";
  }
  if (!nm) return NULL;
  LLVMValueRef m[64];
  for (int l = 0; l < W; l++) m[l] = LLVMConstInt(e->i8, rows[(l / 8) % nmat][7 - l % 8], 0);
  unsigned id = LLVMLookupIntrinsicID(nm, strlen(nm));
  LLVMValueRef args[3] = {v, LLVMConstVector(m, (unsigned)W), LLVMConstInt(e->i8, 0, 0)};
  return LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, NULL, 0), LLVMGetIntrinsicDeclaration(e->mod, id, NULL, 0), args, 3, "");
}

/* (bit `bit` of each byte of v) << to */
static LLVMValueRef bitplane(kn_emit *e, LLVMValueRef v, int bit, int to) { return bits(e, v, bit, 1, to); }

/* ---- per-format decoders ---- */

/* 32-element blocks with 16 bytes of nibbles at qs (element j: low nibble of byte j, j >= 16: high nibble of j - 16)
 * and, for the five-bit formats, a 32-bit word at qh whose bit j is element j's fifth bit. */
static LLVMValueRef nib32(qd *q, int qs, int qh) {
  kn_emit *e = q->e;
  /* the 16 bytes twice (a broadcast load), 16-bit lanes of the upper copy shifted by 4, then the low nibbles: the
   * same three operations decode a pair of blocks in one 64-byte vector */
  int dup[32];
  LLVMValueRef sh[16];
  for (int j = 0; j < 32; j++) dup[j] = j % 16;
  for (int j = 0; j < 16; j++) sh[j] = LLVMConstInt(e->i16, j < 8 ? 0 : 4, 0);
  LLVMValueRef v = LLVMBuildBitCast(e->b, shuf(e, bytes(q, qs, 16), NULL, dup, 32), vt(e->i16, 16), "");
  v = LLVMBuildLShr(e->b, v, LLVMConstVector(sh, 16), "");
  LLVMValueRef u = band(e, LLVMBuildBitCast(e->b, v, vt(e->i8, 32), ""), 15);
  if (qh < 0) return u;
  if (x86(e) && feat(e, "avx512bw")) { /* the 32-bit word as 32 lane flags: one mask load (kmovd) and a select */
    LLVMValueRef o = c64(q, qh);
    LLVMValueRef w = LLVMBuildLoad2(e->b, e->i32, LLVMBuildGEP2(e->b, e->i8, q->bp, &o, 1, ""), "");
    LLVMSetAlignment(w, 1);
    LLVMValueRef set = LLVMBuildBitCast(e->b, w, vt(e->i1, 32), "");
    return LLVMBuildSelect(e->b, set, bor(e, u, kn_e_iconst(vt(e->i8, 32), 16)), u, "");
  }
  /* elsewhere byte j / 8 of the word in lane j (vpbroadcastd, vpshufb), all other bits set, compared with all ones:
   * 0xff where bit j is set, and 16 of it joins the low nibble (no variable blend) */
  int idx[32];
  LLVMValueRef m[32];
  for (int j = 0; j < 32; j++) idx[j] = 16 * (j / 16) + (j / 8), m[j] = LLVMConstInt(e->i8, (unsigned)(~(1u << (j % 8)) & 0xff), 0);
  LLVMValueRef o = c64(q, qh);
  LLVMValueRef w = LLVMBuildLoad2(e->b, e->i32, LLVMBuildGEP2(e->b, e->i8, q->bp, &o, 1, ""), "");
  LLVMSetAlignment(w, 1);
  /* the word in every 32-bit lane (a broadcast load), then bytes picked inside each 16-byte half (vpshufb) */
  LLVMValueRef wb = LLVMBuildBitCast(e->b, kn_e_splat(e, w, 8), vt(e->i8, 32), "");
  LLVMValueRef hb = bor(e, shuf(e, wb, NULL, idx, 32), LLVMConstVector(m, 32));
  LLVMValueRef set = LLVMBuildSExt(e->b, LLVMBuildICmp(e->b, LLVMIntEQ, hb, kn_e_iconst(vt(e->i8, 32), -1), ""), vt(e->i8, 32), "");
  return bor(e, u, band(e, set, 16));
}

static void q4_5(qd *q, qblock *b, bool five, bool with_min) {
  int qs = with_min ? (five ? 8 : 4) : (five ? 6 : 2), qh = five ? (with_min ? 4 : 2) : -1;
  b->uq = nib32(q, qs, qh);
  b->qk = b->S = 32;
  b->dA = f16_at(q, 0), b->dA_at = 0;
  if (with_min) b->off = 1, b->dB = f16_at(q, 2), b->dB_at = 2;
  else b->off = five ? -16 : -8;
}

/* Q2_K and the low bits of Q3_K: 64 bytes at qs; element 128h + 32g + p is bits 2g of byte 32h + p. */
static void twobit(qd *q, int qs, LLVMValueRef *parts, bool perm) {
  for (int h = 0; h < 2; h++) {
    LLVMValueRef v = kbytes(q, qs + 32 * h, perm);
    for (int g = 0; g < 4; g++) parts[4 * h + g] = bits(q->e, v, 2 * g, 2, 0);
  }
}

static LLVMValueRef u32_at(qd *q, long long off);
static LLVMValueRef words_i16(kn_emit *e, LLVMValueRef lo, LLVMValueRef hi);

/* Q2_K and Q3_K's low bits in the 64-byte chunk order (chunk64): the 64 bytes at qs in one vector, chunk g holds
 * bits 2g of every byte, i.e. lane l is element 128 (l / 32) + 32 g + l % 32 (k_elem): three shifts and four masks
 * per block, where element order takes two 32-byte halves per chunk and an insert. */
static void twobit64(qd *q, int qs, LLVMValueRef *parts) {
  LLVMValueRef v = bytes(q, qs, 64);
  for (int g = 0; g < 4; g++) parts[g] = bits(q->e, v, 2 * g, 2, 0);
}

/* The K record's Q2_K and Q3_K on AVX2 take their 2-bit fields masked in place where they can (k_dot, qblock's ish):
 * their loops are bound by the count of vector operations on the four FP pipes (llvm-mca), and a probe with masks
 * only (wrong values) ran Q2_K 15 % faster than its shifts and masks. */
static int k_ish(kn_emit *e, kn_dtype fmt) { return int_width(e) == 32 && x86(e) && feat(e, "avx2") && (fmt == KN_Q2_K || fmt == KN_Q3_K) ? 4 : 0; }

static void q2k(qd *q, qblock *b) {
  kn_emit *e = q->e;
  LLVMValueRef parts[8], sc;
  if (q->korder && int_width(e) == 64) twobit64(q, 16, parts), b->uq = concat(e, parts, 4);
  else if (q->korder && k_ish(e, KN_Q2_K)) { /* fields 0-2 masked in place (1, 4, 16 times), field 3 at bits 4-5: one
                                             * shift per 32 bytes, where element order takes three; the mins 16 m
                                             * (masked, not shifted) */
    static const signed char sh[4] = {4, 2, 0, 0};
    for (int h = 0; h < 2; h++) {
      LLVMValueRef v = bytes(q, 16 + 32 * h, 32);
      parts[4 * h] = band(e, v, 0x03), parts[4 * h + 1] = band(e, v, 0x0c), parts[4 * h + 2] = band(e, v, 0x30);
      parts[4 * h + 3] = band(e, lshr(e, v, 2), 0x30);
      for (int g = 0; g < 4; g++) b->csh[4 * h + g] = sh[g];
    }
    b->uq = concat(e, parts, 8), b->ish = 4;
  } else twobit(q, 16, parts, false), b->uq = concat(e, parts, 8);
  sc = bytes(q, 0, 16);
  b->scl = i16s(e, band(e, sc, 15), false);
  b->mnl = b->ish ? band(e, i16s(e, sc, false), 0xf0) : lshr(e, i16s(e, sc, false), 4); /* words: one mask or shift */
  b->qk = 256, b->S = 16;
  b->dA = f16_at(q, 80), b->dA_at = 80, b->dB = LLVMBuildFNeg(e->b, f16_at(q, 82), "");
}

/* Q3_K: high bit of element 128h + 32g + p is bit 4h + g of hmask[p] (clear: -4); scales as in quant.c */
static void q3k(qd *q, qblock *b) {
  kn_emit *e = q->e;
  LLVMValueRef parts[8], hm = kbytes(q, 0, true);
  bool k64 = q->korder && int_width(e) == 64;
  /* with GFNI, chunk64: hmask twice (a broadcast load) gives in one transform H, each byte's four high bits of its
   * lane's half (bits 0-3 for lanes 0-31, 4-7 above: one matrix per quadword) at bits 4, 5 (chunks 0, 1) and 0, 1
   * (chunks 2, 3); the 2-bit fields' bytes take them in their free nibble (two bit selects), and each chunk's 3-bit
   * value is one more transform: seven operations per block, where planes and ORs take fourteen */
  unsigned char hrow[8][8] = {{0}}, crow[4][1][8] = {{{0}}};
  for (int i = 0; i < 8; i++) {
    int b0 = i < 4 ? 0 : 4;
    hrow[i][4] = (unsigned char)(1u << b0), hrow[i][5] = (unsigned char)(1u << (b0 + 1));
    hrow[i][0] = (unsigned char)(1u << (b0 + 2)), hrow[i][1] = (unsigned char)(1u << (b0 + 3));
  }
  for (int g = 0; g < 4; g++) {
    int f = 2 * g, h = g < 2 ? 4 + g : g - 2; /* the field's bits and its high bit in QA / QB */
    crow[g][0][0] = (unsigned char)(1u << f), crow[g][0][1] = (unsigned char)(1u << (f + 1)), crow[g][0][2] = (unsigned char)(1u << h);
  }
  LLVMValueRef H = NULL;
  if (k64) {
    LLVMValueRef hv[2] = {hm, hm};
    H = gf_affine(e, concat(e, hv, 2), (const unsigned char(*)[8])hrow, 8);
  }
  if (H) {
    LLVMValueRef qs = bytes(q, 32, 64);
    LLVMValueRef QA = bor(e, band(e, qs, 0x0f), band(e, H, 0xf0)), QB = bor(e, band(e, qs, 0xf0), band(e, H, 0x0f));
    for (int g = 0; g < 4; g++) parts[g] = gf_affine(e, g < 2 ? QA : QB, (const unsigned char(*)[8])crow[g], 1);
    b->uq = concat(e, parts, 4);
  } else if (k64) { /* lanes 32-63 (h = 1) take hmask's high nibbles: chunk g's high bits are then bit g of each */
    LLVMValueRef hv[2] = {hm, lshr(e, hm, 4)}, hx = concat(e, hv, 2);
    twobit64(q, 32, parts);
    for (int g = 0; g < 4; g++) parts[g] = bor(e, parts[g], bitplane(e, hx, g, 2));
    b->uq = concat(e, parts, 4);
  } else if (x86(e) && int_width(e) == 32) {
    /* AVX2: each half's fields 0 and 2 (the bytes & 0x33) and 1 and 3 (>> 2) take their high bits at bits 2 and 6,
     * looked up (vpshufb) from the hmask nibble of the half, and each chunk is then a mask or a shift and a mask:
     * 29 operations per block, where a shift, a mask and an OR per chunk's high bits and the fields' shifts took 37 */
    LLVMValueRef tE[32], tO[32];
    for (int l = 0; l < 32; l++) {
      int n = l % 16;
      tE[l] = LLVMConstInt(e->i8, (unsigned)(((n & 1) << 2) | ((n >> 2 & 1) << 6)), 0);
      tO[l] = LLVMConstInt(e->i8, (unsigned)(((n >> 1 & 1) << 2) | ((n >> 3 & 1) << 6)), 0);
    }
    for (int h = 0; h < 2; h++) {
      LLVMValueRef v = kbytes(q, 32 + 32 * h, true), n = band(e, lshr(e, hm, 4 * h), 15);
      LLVMValueRef QE = bor(e, band(e, v, 0x33), call(e, "llvm.x86.avx2.pshuf.b", LLVMConstVector(tE, 32), n));
      LLVMValueRef QO = bor(e, band(e, lshr(e, v, 2), 0x33), call(e, "llvm.x86.avx2.pshuf.b", LLVMConstVector(tO, 32), n));
      /* bits 3 and 7 are clear: the nibble mask (a register fewer than a mask of 7); in the K record (k_ish) the high
       * nibbles masked in place, 16 times their value (no shift) */
      parts[4 * h] = band(e, QE, 15), parts[4 * h + 1] = band(e, QO, 15);
      if (q->korder && k_ish(e, KN_Q3_K)) {
        parts[4 * h + 2] = band(e, QE, 0xf0), parts[4 * h + 3] = band(e, QO, 0xf0);
        b->csh[4 * h] = b->csh[4 * h + 1] = 4, b->ish = 4;
      } else parts[4 * h + 2] = band(e, lshr(e, QE, 4), 15), parts[4 * h + 3] = band(e, lshr(e, QO, 4), 15);
    }
    b->uq = concat(e, parts, 8);
  } else {
    twobit(q, 32, parts, true);
    for (int i = 0; i < 8; i++) parts[i] = bor(e, parts[i], bitplane(e, hm, i, 2));
    b->uq = concat(e, parts, 8);
  }
  /* the sixteen 6-bit scales: with A, B, C the words at 96, 100 and 104, scales 0-3 are A's low nibbles with bits 0-1
   * of C's bytes on top, 4-7 B's with bits 2-3, 8-11 A's high nibbles with bits 4-5, 12-15 B's with bits 6-7 */
  LLVMValueRef sc;
  LLVMValueRef ab = int_width(e) == 64 ? bytes(q, 96, 8) : NULL, L = NULL;
  unsigned char nrow[2][8] = {{1, 2, 4, 8}, {16, 32, 64, 128}};
  if (ab) { /* AVX-512: the bytes A B twice, low nibbles of the first copy, high of the second (GFNI: a matrix per
             * quadword) */
    int d2[16];
    for (int l = 0; l < 16; l++) d2[l] = l % 8;
    L = gf_affine(e, shuf(e, ab, NULL, d2, 16), (const unsigned char(*)[8])nrow, 2);
  }
  if (L) { /* then C in every 32-bit lane rotated by 4, 2, 0, 30 (vprolvd) and masked to bits 4-5: a few vector
            * operations where the general-purpose registers take some 25 (measured 96 -> 120 GFLOP per CPU second
            * with the high-bit transforms below; on AVX2, without GFNI and rotates, the vector form was slower) */
    LLVMValueRef C = kn_e_splat(e, u32_at(q, 104), 4), rc[4];
    for (int i = 0; i < 4; i++) rc[i] = LLVMConstInt(e->i32, (unsigned)(i < 3 ? 4 - 2 * i : 30), 0);
    LLVMValueRef fa[3] = {C, C, LLVMConstVector(rc, 4)};
    LLVMValueRef Hs = band(e, kn_e_intrinsic(e, "llvm.fshl", vt(e->i32, 4), fa, 3), 0x30303030);
    sc = bor(e, L, LLVMBuildBitCast(e->b, Hs, vt(e->i8, 16), ""));
    sc = LLVMBuildSub(e->b, i16s(e, sc, false), splat16(e, 16, 32), "");
  } else { /* on 64-bit words (general-purpose registers, beside the vector work): A B's low and high nibbles, C's
            * bits for scales 0-7 as C << 4 | C << 34 and for 8-15 as C | C << 30, masked */
    LLVMValueRef o = c64(q, 96), ab64 = LLVMBuildLoad2(e->b, e->i64, LLVMBuildGEP2(e->b, e->i8, q->bp, &o, 1, ""), "");
    LLVMSetAlignment(ab64, 1);
    LLVMValueRef C = LLVMBuildZExt(e->b, u32_at(q, 104), e->i64, ""), nib = kn_e_iconst(e->i64, 0x0f0f0f0f0f0f0f0fll);
    LLVMValueRef m30 = kn_e_iconst(e->i64, 0x3030303030303030ll);
    LLVMValueRef w0 = bor(e, LLVMBuildAnd(e->b, ab64, nib, ""), LLVMBuildAnd(e->b, bor(e, shl(e, C, 4), shl(e, C, 34)), m30, ""));
    LLVMValueRef w1 = bor(e, LLVMBuildAnd(e->b, lshr(e, ab64, 4), nib, ""), LLVMBuildAnd(e->b, bor(e, C, shl(e, C, 30)), m30, ""));
    LLVMValueRef wv = LLVMBuildInsertElement(e->b, LLVMGetPoison(vt(e->i64, 2)), w0, LLVMConstInt(e->i32, 0, 0), "");
    wv = LLVMBuildInsertElement(e->b, wv, w1, LLVMConstInt(e->i32, 1, 0), "");
    sc = LLVMBuildSub(e->b, i16s(e, LLVMBuildBitCast(e->b, wv, vt(e->i8, 16), ""), false), splat16(e, 16, 32), "");
  }
  b->scl = sc, b->mnl = LLVMBuildMul(e->b, sc, splat16(e, 16, -4 * (1 << b->ish)), "");
  b->qk = 256, b->S = 16;
  b->dA = f16_at(q, 108), b->dA_at = 108;
}

static LLVMValueRef u32_at(qd *q, long long off) {
  LLVMValueRef o = c64(q, off);
  LLVMValueRef v = LLVMBuildLoad2(q->e->b, q->e->i32, LLVMBuildGEP2(q->e->b, q->e->i8, q->bp, &o, 1, ""), "");
  LLVMSetAlignment(v, 1);
  return v;
}

/* two 32-bit words of bytes (lo: bytes 0-3, hi: 4-7) as <8 x i16> */
static LLVMValueRef words_i16(kn_emit *e, LLVMValueRef lo, LLVMValueRef hi) {
  LLVMValueRef w = bor(e, LLVMBuildZExt(e->b, lo, e->i64, ""), shl(e, LLVMBuildZExt(e->b, hi, e->i64, ""), 32));
  return i16s(e, LLVMBuildBitCast(e->b, w, vt(e->i8, 8), ""), false);
}

/* Q4_K / Q5_K: eight 6-bit scales and mins packed in 12 bytes at 4 (sub-block i < 4: low six bits of bytes i and
 * 4 + i; i >= 4: nibbles of byte 4 + i with the top two bits of bytes i - 4 and i); element 64g + 32hi + p is
 * nibble hi of qs byte 32g + p, and for Q5_K bit 2g + hi of qh[p] is its fifth bit. */
static void qk45(qd *q, qblock *b, bool five) {
  kn_emit *e = q->e;
  /* the unpack on 32-bit words (general-purpose registers, beside the vector work): with A, B, C the words at 4, 8
   * and 12, scales 0-3 are A & 0x3f per byte, 4-7 the low nibbles of C with A's top two bits; mins likewise from B
   * and C's high nibbles */
  LLVMValueRef A = u32_at(q, 4), B = u32_at(q, 8), C = u32_at(q, 12);
  LLVMValueRef s_hi = bor(e, band(e, C, 0x0f0f0f0f), band(e, lshr(e, A, 2), 0x30303030));
  LLVMValueRef m_hi = bor(e, band(e, lshr(e, C, 4), 0x0f0f0f0f), band(e, lshr(e, B, 2), 0x30303030));
  b->scl = words_i16(e, band(e, A, 0x3f3f3f3f), s_hi);
  b->mnl = words_i16(e, band(e, B, 0x3f3f3f3f), m_hi);
  LLVMValueRef parts[8], qh = five ? bytes(q, 16, 32) : NULL;
  b->qk = 256, b->S = 32;
  b->dA = f16_at(q, 0), b->dA_at = 0, b->dB = LLVMBuildFNeg(e->b, f16_at(q, 2), "");
  if (int_width(e) == 64 && x86(e) && feat(e, "gfni")) {
    /* AVX-512 with GFNI: group g's 32 bytes twice (a broadcast load), low nibbles in the lower half and high in the
     * upper by one transform with a matrix per quadword, and Q5_K's fifth bits likewise from qh twice (bit 2g below,
     * 2g + 1 above): one or three operations per 64 elements, where masks, shifts, planes, ORs and 256-bit inserts
     * took three or seven */
    int d2[64];
    for (int l = 0; l < 64; l++) d2[l] = l % 32;
    LLVMValueRef qh2 = five ? shuf(e, qh, NULL, d2, 64) : NULL;
    for (int g = 0; g < 4; g++) {
      unsigned char nrow[8][8] = {{0}}, hrow[8][8] = {{0}};
      for (int i = 0; i < 8; i++)
        for (int k = 0; k < 4; k++) nrow[i][k] = (unsigned char)(1u << (i < 4 ? k : k + 4));
      for (int i = 0; i < 8; i++) hrow[i][4] = (unsigned char)(1u << (2 * g + (i >= 4)));
      parts[g] = gf_affine(e, shuf(e, bytes(q, (five ? 48 : 16) + 32 * g, 32), NULL, d2, 64), (const unsigned char(*)[8])nrow, 8);
      if (five) parts[g] = bor(e, parts[g], gf_affine(e, qh2, (const unsigned char(*)[8])hrow, 8));
    }
    b->uq = concat(e, parts, 4);
    return;
  }
  for (int g = 0; g < 4; g++) {
    LLVMValueRef v = bytes(q, (five ? 48 : 16) + 32 * g, 32);
    parts[2 * g] = band(e, v, 15), parts[2 * g + 1] = lshr(e, v, 4);
    if (five)
      for (int hi = 0; hi < 2; hi++) parts[2 * g + hi] = bor(e, parts[2 * g + hi], bitplane(e, qh, 2 * g + hi, 4));
  }
  b->uq = concat(e, parts, 8);
}

/* Q6_K: element 128h + 32k + p: low nibble (k >> 1) of ql byte 64h + 32(k & 1) + p, bits 2k of qh byte 32h + p,
 * value biased by 32; int8 scales per 16 elements at 192, d at 208. */
static void q6k(qd *q, qblock *b) {
  kn_emit *e = q->e;
  LLVMValueRef parts[8];
  for (int h = 0; h < 2; h++) {
    LLVMValueRef l0 = bytes(q, 64 * h, 32), l1 = bytes(q, 64 * h + 32, 32), hb = bytes(q, 128 + 32 * h, 32);
    for (int k = 0; k < 4; k++) {
      LLVMValueRef lo = bits(e, k & 1 ? l1 : l0, 4 * (k >> 1), 4, 0);
      parts[4 * h + k] = bor(e, lo, bits(e, hb, 2 * k, 2, 4));
    }
  }
  b->uq = concat(e, parts, 8);
  b->scl = i16s(e, bytes(q, 192, 16), true);
  b->mnl = LLVMBuildMul(e->b, b->scl, splat16(e, 16, -32), "");
  b->qk = 256, b->S = 16;
  b->dA = f16_at(q, 208), b->dA_at = 208;
}

static bool decode(qd *q, kn_dtype fmt, qblock *b) {
  memset(b, 0, sizeof *b);
  switch (fmt) {
  case KN_Q4_0: q4_5(q, b, false, false); return true;
  case KN_Q4_1: q4_5(q, b, false, true); return true;
  case KN_Q5_0: q4_5(q, b, true, false); return true;
  case KN_Q5_1: q4_5(q, b, true, true); return true;
  case KN_Q8_0:
    b->uq = bytes(q, 2, 32), b->qk = b->S = 32, b->signed_w = true, b->dA = f16_at(q, 0), b->dA_at = 0;
    return true;
  case KN_Q2_K: q2k(q, b); return true;
  case KN_Q3_K: q3k(q, b); return true;
  case KN_Q4_K: qk45(q, b, false); return true;
  case KN_Q5_K: qk45(q, b, true); return true;
  case KN_Q6_K: q6k(q, b); return true;
  default: return false;
  }
}

bool kn_qdot_mode(void) { return kn_getenv_int("KILN_EXACT", 0) <= 0; }

/* the target's integer vector width in bytes (64 only with AVX-512BW) */
static int t_int_width(const kn_target *t) {
  return t->vector_bytes >= 64 && tfeat(t, "avx512bw") && !strncmp(t->triple, "x86_64", 6) ? 64 : t->vector_bytes >= 32 ? 32 : 16;
}

/* The four-/five-bit 32-element formats whose activations, quantized once per call, are stored in the weights'
 * nibble order (split_layout below). */
static bool split_fmt(kn_dtype fmt) { return fmt == KN_Q4_0 || fmt == KN_Q4_1 || fmt == KN_Q5_0 || fmt == KN_Q5_1; }

/* Blocks per QDOT: two for the 32-element formats where 64-byte integer vectors exist (AVX-512BW: both blocks of
 * a pair in one register, one multiply-add chain, a full vector of lanes for the accumulator), else one. With the
 * activations quantized once per call (hoisted), the nibble formats take a vector's 16-byte lanes' worth: 4 blocks
 * on AVX-512, 2 on AVX2, 1 on 16-byte vectors. */
int kn_quant_dot_blocks(const kn_target *t, kn_dtype fmt, bool hoisted) {
  if (hoisted && split_fmt(fmt)) return t_int_width(t) / 16;
  return kn_dtype_get(fmt)->block_elems == 32 && t_int_width(t) == 64 ? 2 : 1;
}

/* Rows of a GEMV register block. With the activations quantized per register block (hoisted false) they share that
 * work (per block: amax, scale, rounding, packing, sums), which costs about as much as a row's decode and dot.
 * llvm-mca -mcpu=znver4, bytes of weights per cycle per core of the inner loop at 8 / 16 / 32 rows: AVX-512 q8_0
 * 6.8 / 9.6 / 10.0, q5_0 4.1 / 5.0 / 5.8, q5_1 3.6 / 4.2 / 3.9, q4_k 3.7 / 5.1 / 5.8, q6_k 5.4 / 6.7 / 8.6, q2_k
 * 2.5 / 3.3 / 3.8; AVX2 (16 registers) at 8 / 16: q4_k 3.7 / 4.4, q6_k 4.6 / 5.3, q2_k 1.9 / 2.6, q4_0 2.7 / 3.3,
 * but q5_0 2.8 / 2.4 (spills).
 * Quantized once per call (hoisted: decode), the rows share only the loads of their activation records, which come
 * from L1 anyway, and one row per work item is the fastest for weights streamed from DRAM: the work items then read
 * the weight in memory order, one stream per thread whose prefetches (lower.c) go out evenly, where a block of R
 * rows reads R interleaved streams and issues R rows' prefetches at once. Alternating configs pass by pass
 * (bench_stream, 200 passes, the 0.5B models' shapes each in 24 copies (gate, down) or the 145 MB logits, loaded
 * host), GB/s at the old rows / one row: AVX-512 logits q8_0 17.1 / 27.5 (16 rows), q8_0 4864x896 21.2 / 28.9 (16),
 * q6_k 896x4864 24.5 / 30.0 (2), q4_k 4864x1024 31.3 / 34.8 (2); AVX2 q5_0 4864x896 17.2 / 21.6 (2), logits
 * q8_0 35.3 / 36.5 (8), q4_0 20.6 / 21.8 (8). Cache-resident, one row costs little or nothing: THREADS=1
 * bench_matmul 64 31 gemv, 1024- and 9728-row weights, GB/s at the old rows / one row: AVX-512 q5_0 53.0 / 55.2 and
 * 46.9 / 51.9, q4_k 49.6 / 51.1 and 47.3 / 48.2, q6_k 67.9 / 67.7 and 64.0 / 66.9, q4_0 63.9 / 64.0, q8_0 70.8 /
 * 61.4 and 64.4 / 62.7; AVX2 q5_0 25.8 / 26.3, q4_0 32.7 / 31.0, the K formats one row already, but q8_0 53.3 /
 * 43.9 and 52.0 / 43.1: one row's loop there waits on the row's one chain of multiply-adds (two 34-byte blocks per
 * two FMA latencies; the order of a row's additions is fixed, the batched tile repeats it; 4096x4096 at 1 / 2 / 4 /
 * 8 rows: 37.2 / 50.5 / 50.8 / 47.7 GB/s per core). It still takes one row: streamed it is the faster (bench_stream
 * 150 passes, 1 / 2 rows: logits 39.6 / 34.6 GB/s, 4864x896 x24 30.6 / 26.4), and two cores compute ~75 GB/s.
 * KILN_QROWS=N overrides. */
int kn_quant_dot_rows(const kn_target *t, kn_dtype fmt, bool hoisted) {
  if (hoisted && kn_getenv_int("KILN_QROWS", 0) > 0) return (int)kn_getenv_int("KILN_QROWS", 0);
  if (hoisted && t_int_width(t) >= 32) return 1;
  if (hoisted) return fmt == KN_Q4_1 || fmt == KN_Q5_0 || fmt == KN_Q5_1 ? 2 : 8; /* SSE, NEON: not measured at one */
  if (t->vector_bytes >= 64) return fmt == KN_Q5_1 ? 16 : 32;
  if (t->vector_bytes >= 32) return fmt == KN_Q5_0 ? 8 : 16;
  return 8;
}

bool kn_quant_dot_supported(kn_dtype fmt) {
  switch (fmt) {
  case KN_Q4_0: case KN_Q4_1: case KN_Q5_0: case KN_Q5_1: case KN_Q8_0:
  case KN_Q2_K: case KN_Q3_K: case KN_Q4_K: case KN_Q5_K: case KN_Q6_K: return true;
  default: return false;
  }
}

/* ---- the multiply-adds: x86 instructions where the target has them, plain IR elsewhere ---- */

static LLVMValueRef call(kn_emit *e, const char *name, LLVMValueRef a, LLVMValueRef b) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(e->mod, id, NULL, 0);
  LLVMValueRef args[2] = {a, b};
  return LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, NULL, 0), fn, args, 2, "");
}

static LLVMValueRef call1(kn_emit *e, const char *name, LLVMValueRef a) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(e->mod, id, NULL, 0);
  return LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, NULL, 0), fn, &a, 1, "");
}

/* even + odd lanes of a <2n x T> vector */
static LLVMValueRef pairsum(kn_emit *e, LLVMValueRef v) {
  int n = (int)LLVMGetVectorSize(LLVMTypeOf(v)) / 2, ev[128], od[128];
  for (int i = 0; i < n; i++) ev[i] = 2 * i, od[i] = 2 * i + 1;
  return LLVMBuildAdd(e->b, shuf(e, v, NULL, ev, n), shuf(e, v, NULL, od, n), "");
}

static bool x86(kn_emit *e) { return !strncmp(e->t->triple, "x86_64", 6); }

/* u (unsigned bytes) x s (signed bytes), adjacent pairs summed: <W/2 x i16>. The operands here never saturate. */
static LLVMValueRef maddubs(kn_emit *e, LLVMValueRef u, LLVMValueRef s) {
  int W = (int)LLVMGetVectorSize(LLVMTypeOf(u));
  if (x86(e) && W == 64 && feat(e, "avx512bw")) return call(e, "llvm.x86.avx512.pmaddubs.w.512", u, s);
  if (x86(e) && W == 32 && feat(e, "avx2")) return call(e, "llvm.x86.avx2.pmadd.ub.sw", u, s);
  if (x86(e) && W == 16 && feat(e, "ssse3")) return call(e, "llvm.x86.ssse3.pmadd.ub.sw.128", u, s);
  return pairsum(e, LLVMBuildMul(e->b, i16s(e, u, false), i16s(e, s, true), ""));
}

/* i16 x i16, adjacent pairs summed: <W/4 x i32> */
static LLVMValueRef maddwd(kn_emit *e, LLVMValueRef a, LLVMValueRef b) {
  int n = (int)LLVMGetVectorSize(LLVMTypeOf(a));
  if (x86(e) && n == 32 && feat(e, "avx512bw")) return call(e, "llvm.x86.avx512.pmaddw.d.512", a, b);
  if (x86(e) && n == 16 && feat(e, "avx2")) return call(e, "llvm.x86.avx2.pmadd.wd", a, b);
  if (x86(e) && n == 8) return call(e, "llvm.x86.sse2.pmadd.wd", a, b);
  LLVMTypeRef t = vt(e->i32, n);
  return pairsum(e, LLVMBuildMul(e->b, LLVMBuildSExt(e->b, a, t, ""), LLVMBuildSExt(e->b, b, t, ""), ""));
}

/* acc + u (unsigned bytes) . s (signed bytes) by groups of four into <W/4 x i32> lanes with one instruction
 * (vpdpbusd) where the target has AVX512-VNNI or AVX-VNNI; NULL where it has not. acc NULL: zero. */
static const char *dpbusd_name(kn_emit *e, int W) {
  if (x86(e) && W == 64 && feat(e, "avx512vnni")) return "llvm.x86.avx512.vpdpbusd.512";
  if (x86(e) && W == 32 && ((feat(e, "avx512vnni") && feat(e, "avx512vl")) || feat(e, "avxvnni"))) return "llvm.x86.avx512.vpdpbusd.256";
  return NULL;
}

static LLVMValueRef dpbusd(kn_emit *e, LLVMValueRef acc, LLVMValueRef u, LLVMValueRef s) {
  const char *name = dpbusd_name(e, (int)LLVMGetVectorSize(LLVMTypeOf(u)));
  if (!name) return NULL;
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMTypeRef ft = LLVMIntrinsicGetType(e->ctx, id, NULL, 0), pt[3];
  LLVMGetParamTypes(ft, pt);
  LLVMValueRef args[3] = {acc ? acc : LLVMConstNull(pt[0]), LLVMBuildBitCast(e->b, u, pt[1], ""), LLVMBuildBitCast(e->b, s, pt[2], "")};
  return LLVMBuildCall2(e->b, ft, LLVMGetIntrinsicDeclaration(e->mod, id, NULL, 0), args, 3, "");
}

/* dpbusd's sum of groups of four, where u holds bytes below 128: also aarch64's sdot (+dotprod), which takes both
 * operands signed. NULL where the target has neither. */
static LLVMValueRef dot4(kn_emit *e, LLVMValueRef acc, LLVMValueRef u, LLVMValueRef s, bool u7) {
  int W = (int)LLVMGetVectorSize(LLVMTypeOf(u));
  if (!strncmp(e->t->triple, "aarch64", 7) && u7 && feat(e, "dotprod") && (W == 16 || W == 8)) {
    LLVMTypeRef tys[2] = {vt(e->i32, W / 4), vt(e->i8, W)};
    const char *name = "llvm.aarch64.neon.sdot";
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef args[3] = {acc ? acc : LLVMConstNull(tys[0]), u, s};
    return LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, tys, 2), LLVMGetIntrinsicDeclaration(e->mod, id, tys, 2), args, 3, "");
  }
  return dpbusd(e, acc, u, s);
}

/* <W/2 x i16>: lane l holds per-sub-block value v[(c0 + 2l) / S] (v NULL: one; v of one lane: that value) */
static LLVMValueRef per_pair(kn_emit *e, LLVMValueRef v, int c0, int W, int S) {
  if (!v) return splat16(e, W / 2, 1);
  int idx[128];
  for (int l = 0; l < W / 2; l++) idx[l] = LLVMGetVectorSize(LLVMTypeOf(v)) == 1 ? 0 : (c0 + 2 * l) / S;
  return shuf(e, v, NULL, idx, W / 2);
}

/* ---- activations: one int8 scale per block ---- */

static LLVMValueRef hmax(kn_emit *e, LLVMValueRef v) {
  int n = (int)LLVMGetVectorSize(LLVMTypeOf(v));
  while (n > 1) {
    LLVMValueRef a = slice(e, v, 0, n / 2), b = slice(e, v, n / 2, n / 2);
    v = LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, LLVMRealOGT, a, b, ""), a, b, "");
    n /= 2;
  }
  return LLVMBuildExtractElement(e->b, v, LLVMConstInt(e->i32, 0, 0), "");
}

/* xs: nx vectors of vec floats (the block in order) -> *xq <qk x i8> and *dx = amax / 127 */
static void quantize_x(kn_emit *e, const LLVMValueRef *xs, int nx, int vec, LLVMValueRef *xq, LLVMValueRef *dx) {
  LLVMTypeRef vf = vt(e->f32, vec);
  LLVMValueRef parts[256];
  for (int i = 0; i < nx; i++) {
    LLVMValueRef x = xs[i];
    parts[i] = kn_e_intrinsic(e, "llvm.fabs", vf, &x, 1);
  }
  for (int n = nx; n > 1; n = (n + 1) / 2) /* a tree: the chain to the scale is short */
    for (int i = 0; i < n / 2; i++) {
      LLVMValueRef a = parts[2 * i], b = parts[2 * i + 1];
      parts[i] = LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, LLVMRealOGT, a, b, ""), a, b, "");
      if (n % 2 && i == n / 2 - 1) parts[i + 1] = parts[n - 1];
    }
  LLVMValueRef amax = hmax(e, parts[0]);
  *dx = LLVMBuildFDiv(e->b, amax, LLVMConstReal(e->f32, 127.0), "");
  /* 127 / max(amax, FLT_MIN): all-zero activations quantize to zeros whatever the divisor, and a max keeps the
   * division branch-free */
  LLVMValueRef tiny = LLVMConstReal(e->f32, 1.17549435e-38);
  LLVMValueRef den = LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, LLVMRealOGT, amax, tiny, ""), amax, tiny, "");
  LLVMValueRef inv = LLVMBuildFDiv(e->b, LLVMConstReal(e->f32, 127.0), den, "");
  LLVMValueRef vinv = kn_e_splat(e, inv, vec);
  for (int i = 0; i < nx; i++) {
    LLVMValueRef y = LLVMBuildFMul(e->b, xs[i], vinv, ""), yi;
    if (x86(e) && vec == 16 && feat(e, "avx512f")) { /* vcvtps2dq zmm in the current (nearest even) rounding */
      const char *nm = "llvm.x86.avx512.mask.cvtps2dq.512";
      unsigned id = LLVMLookupIntrinsicID(nm, strlen(nm));
      LLVMValueRef args[4] = {y, LLVMGetPoison(vt(e->i32, 16)), LLVMConstInt(e->i16, 0xffff, 0), LLVMConstInt(e->i32, 4, 0)};
      yi = LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, NULL, 0), LLVMGetIntrinsicDeclaration(e->mod, id, NULL, 0), args, 4, "");
    } else if (x86(e) && vec == 8 && feat(e, "avx")) yi = call1(e, "llvm.x86.avx.cvt.ps2dq.256", y); /* nearest even */
    else if (x86(e) && vec == 4) yi = call1(e, "llvm.x86.sse2.cvtps2dq", y);
    else yi = LLVMBuildFPToSI(e->b, kn_e_intrinsic(e, "llvm.roundeven", vf, &y, 1), vt(e->i32, vec), "");
    parts[i] = LLVMBuildTrunc(e->b, yi, vt(e->i8, vec), "");
  }
  *xq = concat(e, parts, nx);
}

/* <n x float> -> <vec x float> with the same lane total */
static LLVMValueRef fit(kn_emit *e, LLVMValueRef v, int vec) {
  int n = (int)LLVMGetVectorSize(LLVMTypeOf(v));
  while (n > vec) {
    v = kn_e_fadd(e, slice(e, v, 0, n / 2), slice(e, v, n / 2, n / 2));
    n /= 2;
  }
  if (n == vec) return vec == 1 ? LLVMBuildExtractElement(e->b, v, LLVMConstInt(e->i32, 0, 0), "") : v;
  int idx[64];
  for (int i = 0; i < vec; i++) idx[i] = i < n ? i : n; /* lanes past n read the zero vector's first lane */
  return shuf(e, v, LLVMConstNull(LLVMTypeOf(v)), idx, vec);
}

static LLVMValueRef ifit(kn_emit *e, LLVMValueRef v, int n);

/* sitofp(I) * s as <vec x float>. Where vec is wider than I, both are widened with zero lanes before the multiply,
 * not the product after it: the accumulator's add then takes the product itself and fuses with it (one rounding),
 * as the tile's add of the same product does; an add of a widened product would round the product first. */
static LLVMValueRef scaled(kn_emit *e, LLVMValueRef I, LLVMValueRef s, int vec) {
  int n = (int)LLVMGetVectorSize(LLVMTypeOf(I));
  if (n < vec) I = ifit(e, I, vec), s = fit(e, s, vec), n = vec;
  return fit(e, kn_e_fmul(e, LLVMBuildSIToFP(e->b, I, vt(e->f32, n), ""), s), vec);
}

/* a * b + c with one rounding where the target has FMA (llvm.fma), else two. A sum of two products left to the
 * backend's contraction fuses whichever it picks (it picked differently for rows of one kernel), so where the
 * GEMV and the tile must agree bit for bit, the fused product is named. */
static LLVMValueRef fmadd(kn_emit *e, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  if (x86(e) ? feat(e, "fma") : !strncmp(e->t->triple, "aarch64", 7)) {
    LLVMValueRef args[3] = {a, b, c};
    return kn_e_intrinsic(e, "llvm.fma", LLVMTypeOf(a), args, 3);
  }
  return LLVMBuildFAdd(e->b, LLVMBuildFMul(e->b, a, b, ""), c, ""); /* no contract flags: nothing to fuse with */
}

/* the per-block scalars s[0..nblk) (f16 at byte `at` of each block, or NULL: one) times dx[i], as <n x float> with
 * n / nblk lanes per block */
static LLVMValueRef block_scales(qd *q, int nblk, int at, const LLVMValueRef *dx, int n) {
  kn_emit *e = q->e;
  if (nblk == 1) return kn_e_fmul(e, f16_splat(q, at, n), kn_e_splat(e, dx[0], n));
  /* several blocks: their scalars side by side, converted and scaled once, then spread over the lanes */
  LLVMTypeRef ht = vt(e->f16, nblk), ft = vt(e->f32, nblk);
  LLVMValueRef h = LLVMGetPoison(ht), d = LLVMGetPoison(ft);
  int idx[64];
  for (int i = 0; i < nblk; i++) {
    LLVMValueRef o = c64(&q[i], at);
    LLVMValueRef v = LLVMBuildLoad2(e->b, e->f16, LLVMBuildGEP2(e->b, e->i8, q[i].bp, &o, 1, ""), "");
    LLVMSetAlignment(v, 1);
    h = LLVMBuildInsertElement(e->b, h, v, LLVMConstInt(e->i32, (unsigned)i, 0), "");
    d = LLVMBuildInsertElement(e->b, d, dx[i], LLVMConstInt(e->i32, (unsigned)i, 0), "");
  }
  for (int l = 0; l < n; l++) idx[l] = l / (n / nblk);
  return shuf(e, kn_e_fmul(e, LLVMBuildFPExt(e->b, h, ft, ""), d), NULL, idx, n);
}

/* the integer vector width (bytes) of the target */
static int int_width(kn_emit *e) { return e->t->vector_bytes >= 64 && feat(e, "avx512bw") ? 64 : e->t->vector_bytes >= 32 ? 32 : 16; }

/* The activations of one QDOT (nblk blocks of a row, qk elements in all): int8 values in element order, one scale
 * per block, and per chunk of W bytes (the multiply-adds' width) the sums of groups of four values as <W/4 x i32>
 * (what the offsets and mins need). Computed in place, or (kn_quant_x_store) once per launch into a record that
 * every row block then loads (kn_quant_dot_rec). */
typedef struct {
  LLVMValueRef xq, dx[4], xsum[64];
  int qk, nblk, W;
} qact;

static int act_width(kn_emit *e, int qk) { return int_width(e) < qk ? int_width(e) : qk; }

static void act_compute(kn_emit *e, const LLVMValueRef *xs, int nx, int vec, int nblk, qact *a) {
  LLVMValueRef xqs[4];
  for (int i = 0; i < nblk; i++) quantize_x(e, xs + i * (nx / nblk), nx / nblk, vec, &xqs[i], &a->dx[i]);
  a->xq = concat(e, xqs, nblk);
  a->qk = nx * vec, a->nblk = nblk, a->W = act_width(e, a->qk);
  LLVMValueRef ones = kn_e_iconst(vt(e->i8, a->W), 1);
  for (int c = 0; c < a->qk / a->W; c++) { /* unused sums are dead code */
    LLVMValueRef x = slice(e, a->xq, c * a->W, a->W);
    if (!(a->xsum[c] = dot4(e, NULL, ones, x, true))) a->xsum[c] = maddwd(e, maddubs(e, ones, x), splat16(e, a->W / 2, 1));
  }
}

/* record layout: xq [qk bytes], the chunks' sums [qk bytes: qk / W chunks of <W/4 x i32>], dx [nblk floats], padded
 * to 64 bytes */
int kn_quant_x_record_bytes(int qk, int nblk) { return (2 * qk + 4 * nblk + 63) / 64 * 64; }

static LLVMValueRef at(kn_emit *e, LLVMValueRef p, long long off) {
  LLVMValueRef o = LLVMConstInt(e->i64, (unsigned long long)off, 1);
  return LLVMBuildGEP2(e->b, e->i8, p, &o, 1, "");
}

static void st(kn_emit *e, LLVMValueRef v, LLVMValueRef p, unsigned align) { LLVMSetAlignment(LLVMBuildStore(e->b, v, p), align); }

static LLVMValueRef ld(kn_emit *e, LLVMTypeRef t, LLVMValueRef p, unsigned align) {
  LLVMValueRef v = LLVMBuildLoad2(e->b, t, p, "");
  LLVMSetAlignment(v, align);
  return v;
}

static unsigned al(int bytes) { return bytes >= 64 ? 64 : (unsigned)bytes; }

/* ---- the split layout: nblk blocks of a nibble format in one W = 16 * nblk byte vector pair ----
 * A block's 16 bytes of nibbles hold elements j (low nibble) and 16 + j (high nibble). The nblk blocks' bytes side
 * by side (16-byte loads) give L = v & 15 (elements 0-15 of each block) and H = v >> 4 (16-31) with no shuffle, and
 * the record holds the activations in that order: xL (elements 0-15 of each block), xH, the sums of groups of
 * four of xL + xH as <W/4 x i32> (lanes 4k..4k+3: block k), and each block's scale spread over its lanes. The
 * multiply-adds of L and H then land in the same lanes, block k's in lanes 4k..4k+3, which take its scale. */
static bool split_layout(kn_emit *e, kn_dtype fmt, int nblk) {
  return split_fmt(fmt) && (nblk == 1 || nblk == 2 || nblk == 4) && 16 * nblk <= int_width(e);
}

/* lane l of a split vector of nblk blocks <- element (hi ? 16 : 0) + 32 (l / 16) + l % 16 */
static void split_idx(int nblk, bool hi, int *idx) {
  for (int l = 0; l < 16 * nblk; l++) idx[l] = 32 * (l / 16) + (hi ? 16 : 0) + l % 16;
}

/* <n x float> with lane l = s[l / (n / nblk)] */
static LLVMValueRef spread(kn_emit *e, const LLVMValueRef *s, int nblk, int n) {
  LLVMValueRef v = LLVMGetPoison(vt(e->f32, nblk));
  for (int k = 0; k < nblk; k++) v = LLVMBuildInsertElement(e->b, v, s[k], LLVMConstInt(e->i32, (unsigned)k, 0), "");
  int idx[64];
  for (int l = 0; l < n; l++) idx[l] = l / (n / nblk);
  return nblk == 1 ? kn_e_splat(e, s[0], n) : shuf(e, v, NULL, idx, n);
}

/* the sums of groups of four of xL + xH: <W/4 x i32> */
static LLVMValueRef split_sums(kn_emit *e, LLVMValueRef xL, LLVMValueRef xH, int W) {
  LLVMValueRef ones = kn_e_iconst(vt(e->i8, W), 1), s = dot4(e, NULL, ones, xL, true);
  if (s) return dot4(e, s, ones, xH, true);
  LLVMValueRef p = LLVMBuildAdd(e->b, maddubs(e, ones, xL), maddubs(e, ones, xH), "");
  return maddwd(e, p, splat16(e, W / 2, 1));
}

/* the multiplier of the activations' sums a format's dot needs: q - 8, q - 16 (the offsets), or a min (1) */
static int split_off(kn_dtype fmt) { return fmt == KN_Q4_0 ? -8 : fmt == KN_Q5_0 ? -16 : 1; }

static void split_store(kn_emit *e, kn_dtype fmt, const qact *a, LLVMValueRef rec) {
  int nblk = a->nblk, W = 16 * nblk, idx[64] = {0};
  split_idx(nblk, false, idx);
  LLVMValueRef xL = shuf(e, a->xq, NULL, idx, W);
  split_idx(nblk, true, idx);
  LLVMValueRef xH = shuf(e, a->xq, NULL, idx, W);
  st(e, xL, rec, al(W));
  st(e, xH, at(e, rec, W), al(W));
  /* the sums times the offset (i32), or for a min their float value times the blocks' scales */
  LLVMValueRef sums = split_sums(e, xL, xH, W), dxv = spread(e, a->dx, nblk, W / 4);
  if (split_off(fmt) != 1) sums = LLVMBuildMul(e->b, sums, kn_e_iconst(vt(e->i32, W / 4), split_off(fmt)), "");
  else sums = kn_e_fmul(e, LLVMBuildSIToFP(e->b, sums, vt(e->f32, W / 4), ""), dxv);
  st(e, sums, at(e, rec, 2 * W), al(W));
  st(e, dxv, at(e, rec, 3 * W), al(W));
}

/* The scale d (the f16 at byte 0 of each block) and, with m non-NULL, the min (byte 2) as floats spread over the
 * blocks' lanes (n / nblk each). One 32-bit load per block holds both: each word broadcast (a pure load) over two
 * dwords, the blocks side by side (a blend), converted once to [d m d m] per 16-byte lane, and d and m picked with
 * one in-lane permute each; a 16-bit insert per scale would cost two load-pipe micro-ops. Two blocks over 8 lanes
 * (AVX2): the two words as [d0 m0 d1 m1], converted in one 16-byte vector (vcvtph2ps xmm, one micro-op against the
 * 32-byte form's two) and spread by one cross-lane permute each (vpermps). */
static void split_scales(kn_emit *e, qd *q, int nblk, int n, LLVMValueRef *d, LLVMValueRef *m) {
  LLVMValueRef parts[4];
  int idx[64] = {0};
  if (nblk == 2 && n == 8) {
    LLVMValueRef w = LLVMGetPoison(vt(e->i32, 2));
    for (int k = 0; k < 2; k++) {
      LLVMValueRef o = c64(&q[k], 0);
      w = LLVMBuildInsertElement(e->b, w, ld(e, e->i32, LLVMBuildGEP2(e->b, e->i8, q[k].bp, &o, 1, ""), 1), LLVMConstInt(e->i32, (unsigned)k, 0), "");
    }
    LLVMValueRef f = LLVMBuildFPExt(e->b, LLVMBuildBitCast(e->b, w, vt(e->f16, 4), ""), vt(e->f32, 4), "");
    for (int l = 0; l < n; l++) idx[l] = 2 * (l / 4);
    *d = shuf(e, f, NULL, idx, n);
    if (!m) return;
    for (int l = 0; l < n; l++) idx[l]++;
    *m = shuf(e, f, NULL, idx, n);
    return;
  }
  for (int k = 0; k < nblk; k++) {
    LLVMValueRef o = c64(&q[k], 0);
    parts[k] = kn_e_splat(e, ld(e, e->i32, LLVMBuildGEP2(e->b, e->i8, q[k].bp, &o, 1, ""), 1), n / nblk / 2);
  }
  LLVMValueRef h = LLVMBuildBitCast(e->b, concat(e, parts, nblk), vt(e->f16, n), "");
  LLVMValueRef f = LLVMBuildFPExt(e->b, h, vt(e->f32, n), ""); /* lanes of block k: d m d m ... */
  for (int l = 0; l < n; l++) idx[l] = l / (n / nblk) * (n / nblk);
  *d = shuf(e, f, NULL, idx, n);
  if (!m) return;
  for (int l = 0; l < n; l++) idx[l]++;
  *m = shuf(e, f, NULL, idx, n);
}

/* L (hi false) or H |= 16 where the block's fifth bit of the element is set: qh is a 32-bit word at byte `qh` of
 * each block (bb bytes each), bit j for element j. */
static LLVMValueRef split_high(kn_emit *e, qd *q, int nblk, int bb, int qh, LLVMValueRef u, bool hi) {
  int W = 16 * nblk, idx[64] = {0};
  LLVMValueRef mk[64];
  if (x86(e) && feat(e, "avx512bw") && (W == 64 || feat(e, "avx512vl"))) {
    /* the 16-bit halves of the words side by side as one W-bit lane mask (kmov) and a masked or */
    LLVMValueRef w = LLVMGetPoison(vt(e->i32, nblk));
    for (int k = 0; k < nblk; k++)
      w = LLVMBuildInsertElement(e->b, w, ld(e, e->i32, at(e, q[k].bp, qh), 1), LLVMConstInt(e->i32, (unsigned)k, 0), "");
    int bi[16];
    for (int k = 0; k < nblk; k++) bi[2 * k] = 4 * k + (hi ? 2 : 0), bi[2 * k + 1] = 4 * k + (hi ? 3 : 1);
    LLVMValueRef half = shuf(e, LLVMBuildBitCast(e->b, w, vt(e->i8, 4 * nblk), ""), NULL, bi, 2 * nblk); /* <2 nblk x i8> */
    LLVMValueRef m = LLVMBuildBitCast(e->b, LLVMBuildBitCast(e->b, half, LLVMIntTypeInContext(e->ctx, (unsigned)W), ""), vt(e->i1, W), "");
    return LLVMBuildSelect(e->b, m, bor(e, u, kn_e_iconst(vt(e->i8, W), 16)), u, "");
  }
  /* elsewhere byte (16k + j) takes byte 2 hi + j / 8 of block k's word with one in-lane vpshufb: the words come
   * broadcast over their blocks' 16-byte lanes (pure loads and a blend), or for two blocks in one 32-byte load from
   * the first word, which puts the second block's word at byte bb - 16 of the upper lane (no blend; qh + 32 <= 2 bb:
   * the load stays inside the two blocks) */
  LLVMValueRef lanes, bw[4];
  int at1 = 0;
  if (nblk == 2 && x86(e) && feat(e, "avx2")) {
    lanes = ld(e, vt(e->i8, 32), at(e, q[0].bp, qh), 1), at1 = bb - 16;
  } else {
    for (int k = 0; k < nblk; k++) bw[k] = kn_e_splat(e, ld(e, e->i32, at(e, q[k].bp, qh), 1), 4);
    lanes = LLVMBuildBitCast(e->b, concat(e, bw, nblk), vt(e->i8, W), "");
  }
  for (int l = 0; l < W; l++) idx[l] = 16 * (l / 16) + (l >= 16 ? at1 : 0) + (hi ? 2 : 0) + l % 16 / 8;
  LLVMValueRef hb = shuf(e, lanes, NULL, idx, W);
  if (x86(e) && (W == 16 ? feat(e, "ssse3") : W == 32 && feat(e, "avx2"))) {
    /* bit j % 8 of the picked byte kept (vpand), and 16 where that is nonzero: vpsignb of 16 (of -16 in the lanes of
     * bit 7, whose kept byte is negative); four operations where a compare takes five */
    LLVMValueRef c[64];
    for (int l = 0; l < W; l++) {
      mk[l] = LLVMConstInt(e->i8, 1u << (l % 8), 0);
      c[l] = LLVMConstInt(e->i8, l % 8 == 7 ? 0xf0 : 16, 0);
    }
    LLVMValueRef b = LLVMBuildAnd(e->b, hb, LLVMConstVector(mk, (unsigned)W), "");
    return bor(e, u, call(e, W == 32 ? "llvm.x86.avx2.psign.b" : "llvm.x86.ssse3.psign.b.128", LLVMConstVector(c, (unsigned)W), b));
  }
  /* all other bits set, compared with all ones */
  for (int l = 0; l < W; l++) mk[l] = LLVMConstInt(e->i8, (unsigned)(~(1u << (l % 8)) & 0xff), 0);
  hb = bor(e, hb, LLVMConstVector(mk, (unsigned)W));
  LLVMValueRef set = LLVMBuildSExt(e->b, LLVMBuildICmp(e->b, LLVMIntEQ, hb, kn_e_iconst(vt(e->i8, W), -1), ""), vt(e->i8, W), "");
  return bor(e, u, band(e, set, 16));
}

/* AVX-512BW, four blocks: the group's bytes in two registers (the second a masked load, so nothing past the group
 * is read), and every field gathered from them with one two-source word permute (vpermt2w; all offsets are even):
 * the 4 x 16 bytes of nibbles, the scales (and mins) spread over their blocks' lanes, and the fifth bits' 16-bit
 * halves as two 64-bit lane masks (vpshufbitqmb where BITALG exists). */
static void split_fields_bw4(kn_emit *e, kn_dtype fmt, LLVMValueRef p0, int qs, int qh, bool with_min, LLVMValueRef *v,
                             LLVMValueRef *d, LLVMValueRef *m, LLVMValueRef *mL, LLVMValueRef *mH) {
  int bb = (int)kn_dtype_get(fmt)->block_bytes, span = 4 * bb, idx[64];
  LLVMTypeRef b64 = vt(e->i8, 64), w32 = vt(e->i16, 32);
  LLVMValueRef z0 = ld(e, b64, p0, 1);
  LLVMValueRef msk[64];
  for (int l = 0; l < 64; l++) msk[l] = LLVMConstInt(e->i1, l < span - 64, 0);
  LLVMTypeRef mt[2] = {b64, e->ptr};
  unsigned id = LLVMLookupIntrinsicID("llvm.masked.load", 16);
  LLVMValueRef margs[4] = {at(e, p0, 64), LLVMConstInt(e->i32, 1, 0), LLVMConstVector(msk, 64), LLVMConstNull(b64)};
  LLVMValueRef z1 = LLVMBuildCall2(e->b, LLVMIntrinsicGetType(e->ctx, id, mt, 2), LLVMGetIntrinsicDeclaration(e->mod, id, mt, 2), margs, 4, "");
  LLVMValueRef a = LLVMBuildBitCast(e->b, z0, w32, ""), b = LLVMBuildBitCast(e->b, z1, w32, "");
  for (int l = 0; l < 32; l++) idx[l] = (bb * (l / 8) + qs) / 2 + l % 8;
  *v = LLVMBuildBitCast(e->b, shuf(e, a, b, idx, 32), b64, "");
  for (int l = 0; l < 16; l++) idx[l] = bb * (l / 4) / 2;
  *d = LLVMBuildFPExt(e->b, LLVMBuildBitCast(e->b, shuf(e, a, b, idx, 16), vt(e->f16, 16), ""), vt(e->f32, 16), "");
  if (with_min) {
    for (int l = 0; l < 16; l++) idx[l] = (bb * (l / 4) + 2) / 2;
    *m = LLVMBuildFPExt(e->b, LLVMBuildBitCast(e->b, shuf(e, a, b, idx, 16), vt(e->f16, 16), ""), vt(e->f32, 16), "");
  }
  if (qh < 0) return;
  if (feat(e, "avx512vbmi")) {
    /* each half's 64 bits in every quadword (one permute), then vpmultishiftqb puts bit l at bit 4 of lane l; the
     * caller keeps bit 4 (*mL, *mH are then bytes, not masks) */
    LLVMValueRef ctl[64];
    for (int l = 0; l < 64; l++) ctl[l] = LLVMConstInt(e->i8, (unsigned)((l - 4) & 63), 0);
    for (int h = 0; h < 2; h++) {
      for (int l = 0; l < 32; l++) idx[l] = (bb * (l % 4) + qh) / 2 + h;
      LLVMValueRef src = LLVMBuildBitCast(e->b, shuf(e, a, b, idx, 32), b64, "");
      *(h ? mH : mL) = call(e, "llvm.x86.avx512.pmultishift.qb.512", LLVMConstVector(ctl, 64), src);
    }
    return;
  }
  for (int l = 0; l < 8; l++) idx[l] = (bb * (l % 4) + qh) / 2 + l / 4; /* lo halves of the 4 words, then hi halves */
  LLVMValueRef halves = LLVMBuildBitCast(e->b, shuf(e, a, b, idx, 8), vt(e->i64, 2), "");
  for (int h = 0; h < 2; h++) {
    LLVMValueRef *out = h ? mH : mL;
    if (feat(e, "avx512bitalg")) { /* the 64 bits in every quadword, bit l picked into lane l */
      int bi[8];
      LLVMValueRef sel[64];
      for (int l = 0; l < 8; l++) bi[l] = h;
      for (int l = 0; l < 64; l++) sel[l] = LLVMConstInt(e->i8, (unsigned)l, 0);
      LLVMValueRef bc = LLVMBuildBitCast(e->b, shuf(e, halves, NULL, bi, 8), b64, "");
      *out = call(e, "llvm.x86.avx512.vpshufbitqmb.512", bc, LLVMConstVector(sel, 64));
    } else
      *out = LLVMBuildBitCast(e->b, LLVMBuildExtractElement(e->b, halves, LLVMConstInt(e->i32, (unsigned)h, 0), ""), vt(e->i1, 64), "");
  }
}

/* nblk blocks of a nibble format from blk on, decoded for the split layout: L (elements 0-15 of each block), H (16-31),
 * their scales and (with_min) mins spread over the blocks' lanes of an n-lane vector; GEMV and tile alike */
static void split_decode(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, int nblk, qd *q, LLVMValueRef *Lo,
                         LLVMValueRef *Ho, LLVMValueRef *d, LLVMValueRef *m) {
  const kn_dtype_info *di = kn_dtype_get(fmt);
  bool five = fmt == KN_Q5_0 || fmt == KN_Q5_1, with_min = fmt == KN_Q4_1 || fmt == KN_Q5_1;
  int qs = with_min ? (five ? 8 : 4) : (five ? 6 : 2), qh = five ? (with_min ? 4 : 2) : -1, W = 16 * nblk, n = W / 4;
  int bb = (int)di->block_bytes;
  LLVMValueRef parts[4], v, L, H;
  *d = *m = NULL;
  for (int k = 0; k < nblk; k++) {
    LLVMValueRef off = LLVMBuildMul(e->b, LLVMBuildAdd(e->b, blk, LLVMConstInt(e->i64, (unsigned)k, 0), ""),
                                    LLVMConstInt(e->i64, (unsigned)di->block_bytes, 0), "");
    q[k] = (qd){.e = e, .bp = LLVMBuildGEP2(e->b, e->i8, base, &off, 1, "")};
  }
  if (nblk == 4 && x86(e) && feat(e, "avx512bw")) {
    LLVMValueRef mL = NULL, mH = NULL, sixteen = kn_e_iconst(vt(e->i8, W), 16);
    split_fields_bw4(e, fmt, q[0].bp, qs, qh, with_min, &v, d, m, &mL, &mH);
    L = band(e, v, 15), H = band(e, lshr(e, v, 4), 15);
    if (five && feat(e, "avx512vbmi")) /* bit 4 of the shifted bytes: one vpternlog per half */
      L = bor(e, L, band(e, mL, 16)), H = bor(e, H, band(e, mH, 16));
    else if (five) /* | 16 where the bit is set */
      L = LLVMBuildSelect(e->b, mL, bor(e, L, sixteen), L, ""), H = LLVMBuildSelect(e->b, mH, bor(e, H, sixteen), H, "");
  } else {
    if (nblk == 2 && x86(e) && feat(e, "avx2")) {
      /* two 32-byte loads blended (vpblendd, any vector pipe) where a 16-byte insert takes a shuffle pipe: the
       * nibbles end each block, so the first block's 16 bytes and what follows, and the 16 bytes before the second
       * block's and those, both lie inside the two blocks */
      int sel[32];
      for (int l = 0; l < 32; l++) sel[l] = l < 16 ? l : 32 + l;
      v = shuf(e, bytes(&q[0], qs, 32), bytes(&q[1], qs - 16, 32), sel, 32);
    } else {
      for (int k = 0; k < nblk; k++) parts[k] = bytes(&q[k], qs, 16);
      v = concat(e, parts, nblk);
    }
    L = band(e, v, 15), H = band(e, lshr(e, v, 4), 15);
    if (five) L = split_high(e, q, nblk, bb, qh, L, false), H = split_high(e, q, nblk, bb, qh, H, true);
    split_scales(e, q, nblk, n, d, with_min ? m : NULL);
  }
  *Lo = L, *Ho = H;
}

/* One token's dot with nblk decoded blocks of a split record (W = 16 * nblk nibbles in L and H, their scales d and
 * mins m spread over each block's 4 lanes): the GEMV and the tile both take it, so a row's arithmetic in a batched
 * pass is the lone decode's operation for operation. xsum: the offset times the activations' sums (i32, no min) or
 * their sums (f32, with a min); dxv: the token's scale spread alike. */
static LLVMValueRef split_term(kn_emit *e, bool with_min, int W, LLVMValueRef L, LLVMValueRef H, LLVMValueRef d, LLVMValueRef m,
                               LLVMValueRef xL, LLVMValueRef xH, LLVMValueRef xsum, LLVMValueRef dxv, int vec) {
  int n = W / 4;
  /* q - 8 / q - 16: the offset times the sums (stored so) starts the integer sum */
  LLVMValueRef I0 = with_min ? NULL : xsum;
  LLVMValueRef I = dot4(e, I0, L, xL, true);
  if (I) I = dot4(e, I, H, xH, true);
  else { /* u * x pair sums of L and H added as i16: 2 * 2 * 31 * 127 fits */
    I = maddwd(e, LLVMBuildAdd(e->b, maddubs(e, L, xL), maddubs(e, H, xH), ""), splat16(e, W / 2, 1));
    if (I0) I = LLVMBuildAdd(e->b, I, I0, "");
  }
  if (!with_min) return scaled(e, I, kn_e_fmul(e, d, dxv), vec);
  /* d * q + m: m times the activations' sums fused with the rounded d * q term */
  LLVMValueRef r = LLVMBuildFMul(e->b, LLVMBuildSIToFP(e->b, I, vt(e->f32, n), ""), kn_e_fmul(e, d, dxv), "");
  return fit(e, fmadd(e, m, xsum, r), vec);
}

/* The dot of nblk blocks blk.. of a nibble format with a split record. */
static LLVMValueRef split_dot(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, LLVMValueRef rec, int nblk, int vec) {
  bool with_min = fmt == KN_Q4_1 || fmt == KN_Q5_1;
  int W = 16 * nblk, n = W / 4;
  qd q[4];
  LLVMValueRef d, m, L, H;
  split_decode(e, fmt, base, blk, nblk, q, &L, &H, &d, &m);
  LLVMValueRef xL = ld(e, vt(e->i8, W), rec, al(W)), xH = ld(e, vt(e->i8, W), at(e, rec, W), al(W));
  LLVMValueRef xsum = ld(e, vt(with_min ? e->f32 : e->i32, n), at(e, rec, 2 * W), al(W)), dxv = ld(e, vt(e->f32, n), at(e, rec, 3 * W), al(W));
  return split_term(e, with_min, W, L, H, d, m, xL, xH, xsum, dxv, vec);
}

/* ---- the K formats' record (256-element blocks, integer vectors of 32 or 64 bytes) ----
 * xq in element order (256 bytes, the decode order of every K template at these widths), at K_SUMS the sums of each
 * sub-block of S elements as <nsub x i16>, at K_DX the scale. A row's min (or offset) term is then one vpmaddwd of
 * the block's integer mins with the stored sums, with no per-row reduction of the activations. */
enum { K_SUMS = 256, K_DX = 288 };

static bool decode_blocks_in(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, int nblk, int qk, qd *q, qblock *bb,
                             bool korder);

static bool k_layout(kn_emit *e, kn_dtype fmt) { return kn_dtype_get(fmt)->block_elems == 256 && int_width(e) >= 32; }

/* The K record's order of the activations: lane l of the W-byte chunk c holds element k_elem(c, l). Element order,
 * except Q2_K/Q3_K: with 64-byte vectors their 64 bytes of 2-bit fields give four chunks of 64 lanes with no
 * shuffle (twobit64); with 32-byte vectors (k_pair) each 32 bytes of the block are taken with the dwords of their
 * two 16-byte halves interleaved (pair_src, one vpermd per 32 bytes), so that every dword of a chunk's pair sums
 * holds sub-blocks 2c and 2c + 1 in the same two words in both lanes: its multipliers are then one 8-byte broadcast
 * load (k_dot), where element order takes a vpshufb per chunk. */
static bool k_chunk64(kn_dtype fmt, int W) { return W == 64 && (fmt == KN_Q2_K || fmt == KN_Q3_K); }
static bool k_pair(kn_dtype fmt, int W) { return W == 32 && fmt == KN_Q3_K; }
static bool k_order(kn_dtype fmt, int W) { return W >= 32 && (fmt == KN_Q2_K || fmt == KN_Q3_K); }
static int k_elem(kn_dtype fmt, int W, int c, int l) {
  return k_chunk64(fmt, W) ? 128 * (l / 32) + 32 * c + l % 32 : k_pair(fmt, W) ? 32 * c + pair_src(l) : c * W + l;
}

LLVMValueRef kn_quant_x_order(kn_emit *e, kn_dtype fmt, LLVMValueRef xq) {
  int W = int_width(e), idx[256];
  if (!k_order(fmt, W)) return xq;
  for (int c = 0; c < 256 / W; c++)
    for (int l = 0; l < W; l++) idx[c * W + l] = k_elem(fmt, W, c, l);
  return shuf(e, xq, NULL, idx, 256);
}

static void k_store(kn_emit *e, kn_dtype fmt, const LLVMValueRef *xs, int nx, int vec, LLVMValueRef rec) {
  LLVMValueRef xq, dx, sums;
  kn_quant_x_block(e, fmt, xs, nx, vec, &xq, &dx, &sums); /* the sums per sub-block: before any reordering */
  if (fmt == KN_Q3_K) sums = LLVMBuildMul(e->b, sums, splat16(e, 16, -4), ""); /* its offset: k_dot */
  st(e, kn_quant_x_order(e, fmt, xq), rec, 64);
  st(e, sums, at(e, rec, K_SUMS), 32);
  if (k_ish(e, fmt)) dx = LLVMBuildFMul(e->b, dx, LLVMConstReal(e->f32, 1.0 / (1 << k_ish(e, fmt))), ""); /* qblock's ish */
  st(e, dx, at(e, rec, K_DX), 4);
}

/* <n x i32> from <m x i32>: zero lanes added, or halves summed */
static LLVMValueRef ifit(kn_emit *e, LLVMValueRef v, int n) {
  int m = (int)LLVMGetVectorSize(LLVMTypeOf(v)), idx[64];
  for (; m > n; m /= 2) v = LLVMBuildAdd(e->b, slice(e, v, 0, m / 2), slice(e, v, m / 2, m / 2), "");
  if (m == n) return v;
  for (int i = 0; i < n; i++) idx[i] = i < m ? i : m;
  return shuf(e, v, LLVMConstNull(LLVMTypeOf(v)), idx, n);
}

/* The sub-block multipliers of a block, spread once per row so that each W-byte chunk's pair multipliers are one
 * in-lane word broadcast: 16-byte lane j of the table holds at word c the value of chunk c's lane j, which is
 * sub-block k_elem(c, 16 j) / S (a 16-byte lane never straddles sub-blocks: S >= 16). */
static LLVMValueRef k_table(kn_emit *e, kn_dtype fmt, LLVMValueRef v, int W, int S) {
  int idx[32], nch = 256 / W;
  for (int j = 0; j < W / 16; j++)
    for (int c = 0; c < 8; c++) idx[8 * j + c] = c < nch ? k_elem(fmt, W, c, 16 * j) / S : 0;
  return shuf(e, v, NULL, idx, W / 2);
}

/* word c of each 16-byte lane of t in the whole lane: one vpshufb */
static LLVMValueRef k_word(kn_emit *e, LLVMValueRef t, int c) {
  int W = 2 * (int)LLVMGetVectorSize(LLVMTypeOf(t)), idx[32];
  const char *nm = x86(e) && W == 32 && feat(e, "avx2") ? "llvm.x86.avx2.pshuf.b" : x86(e) && W == 64 && feat(e, "avx512bw") ? "llvm.x86.avx512.pshuf.b.512" : NULL;
  if (nm) {
    LLVMValueRef m[64];
    for (int l = 0; l < W; l++) m[l] = LLVMConstInt(e->i8, (unsigned)(2 * c + l % 2), 0);
    LLVMValueRef r = call(e, nm, LLVMBuildBitCast(e->b, t, vt(e->i8, W), ""), LLVMConstVector(m, (unsigned)W));
    return LLVMBuildBitCast(e->b, r, vt(e->i16, W / 2), "");
  }
  for (int l = 0; l < W / 2; l++) idx[l] = 8 * (l / 8) + c;
  return shuf(e, t, NULL, idx, W / 2);
}

static LLVMValueRef k_dot(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, LLVMValueRef rec, int vec) {
  qd q;
  qblock b;
  int W = int_width(e);
  if (!decode_blocks_in(e, fmt, base, blk, 1, 256, &q, &b, k_order(fmt, W))) return LLVMGetPoison(kn_e_vec(e->f32, vec));
  int n = W / 4, nsub = 256 / b.S;
  bool pair = k_pair(fmt, W);
  LLVMValueRef tab = b.scl && fmt != KN_Q2_K && !pair ? k_table(e, fmt, b.scl, W, b.S) : NULL, I = NULL, scb = NULL, buf = NULL;
  if (pair) { /* each sub-block's multiplier twice, in a stack buffer: chunk c's words (s 2c, s 2c, s 2c + 1, s 2c + 1)
               * in every quadword are one broadcast load, in the order of the two in-lane unpacks that double the
               * words. Volatile stores and loads: LLVM would else forward the stored vector to the loads as register
               * shuffles (measured 15 % slower). Element order's per-chunk vpshufb of a word table (k_word) took
               * eight mask registers, and the loop spilled. */
    buf = kn_e_entry_alloca(e, LLVMArrayType2(e->i8, 64), 32, "kscales");
    for (int hi = 0; hi < 2; hi++) {
      int idx[16];
      for (int w = 0; w < 16; w++) idx[w] = 8 * (w / 8) + 4 * hi + w % 8 / 2;
      LLVMValueRef s = LLVMBuildStore(e->b, shuf(e, b.scl, NULL, idx, 16), at(e, buf, 32 * hi));
      LLVMSetAlignment(s, 32), LLVMSetVolatile(s, 1);
    }
  } else if (fmt == KN_Q2_K) { /* the 16 4-bit scales as bytes in every 16-byte lane (a broadcast load and a mask) */
    int dup[64];
    for (int l = 0; l < W; l++) dup[l] = l % 16;
    scb = band(e, shuf(e, bytes(&q, 0, 16), NULL, dup, W), 15);
  }
  LLVMValueRef G[8] = {NULL};
  for (int c = 0; c < 256 / W; c++) {
    LLVMValueRef x = ld(e, vt(e->i8, W), at(e, rec, c * W), al(W)), sw;
    if (buf) {
      LLVMValueRef w = ld(e, e->i64, at(e, buf, 8 * (c % 2) + 16 * (c / 4) + 32 * (c / 2 % 2)), 8);
      LLVMSetVolatile(w, 1);
      sw = LLVMBuildBitCast(e->b, kn_e_splat(e, w, W / 8), vt(e->i16, W / 2), "");
    } else if (scb) { /* chunk c's multiplier words straight from the bytes, zero-extended: one in-lane vpshufb */
      int idx[64];
      for (int l = 0; l < W; l++) idx[l] = l % 2 ? W : 16 * (l / 16) + k_elem(fmt, W, c, 16 * (l / 16)) / b.S;
      sw = LLVMBuildBitCast(e->b, shuf(e, scb, LLVMConstNull(LLVMTypeOf(scb)), idx, W), vt(e->i16, W / 2), "");
    } else sw = tab ? k_word(e, tab, c) : splat16(e, W / 2, 1);
    LLVMValueRef t = maddwd(e, maddubs(e, slice(e, b.uq, c * W, W), x), sw);
    int sh = b.ish ? b.csh[c] : 0; /* chunks summed by their multipliers' shift, the sums shifted once (ish) */
    G[sh] = G[sh] ? LLVMBuildAdd(e->b, G[sh], t, "") : t;
  }
  LLVMValueRef M = NULL, dx = ld(e, e->f32, at(e, rec, K_DX), 4);
  /* Q3_K's record holds -4 times the sums (|sum| <= 16 * 127: fits i16), so its offset's multipliers are the scales */
  if (b.mnl) M = ifit(e, maddwd(e, fmt == KN_Q3_K ? b.scl : b.mnl, ld(e, vt(e->i16, nsub), at(e, rec, K_SUMS), 32)), n);
  if (M && !b.dB) /* offsets of the quants (Q3_K, Q6_K): same scale (Q3_K's the record's, unshifted) */
    G[b.ish] = G[b.ish] ? LLVMBuildAdd(e->b, G[b.ish], M, "") : M, M = NULL;
  int last = 0;
  for (int sh = 7; sh >= 0; sh--)
    if (G[sh]) I = I ? LLVMBuildAdd(e->b, shl(e, I, last - sh), G[sh], "") : G[sh], last = sh;
  I = shl(e, I, last);
  LLVMTypeRef vf = vt(e->f32, n);
  if (M) { /* d and dmin side by side (Q2_K at 80, Q4_K/Q5_K at 0): one 32-bit load, one conversion, one multiply by
            * dx for both, and the min term subtracted (dB is -dmin) */
    LLVMValueRef o = c64(&q, b.dA_at);
    LLVMValueRef h = ld(e, vt(e->f16, 2), LLVMBuildGEP2(e->b, e->i8, q.bp, &o, 1, ""), 1);
    LLVMValueRef s2 = kn_e_fmul(e, LLVMBuildFPExt(e->b, h, vt(e->f32, 2), ""), kn_e_splat(e, dx, 2));
    int i0[64] = {0}, i1[64];
    for (int l = 0; l < n; l++) i1[l] = 1;
    LLVMValueRef r = kn_e_fmul(e, LLVMBuildSIToFP(e->b, I, vf, ""), shuf(e, s2, NULL, i0, n));
    return fit(e, kn_e_fsub(e, r, kn_e_fmul(e, LLVMBuildSIToFP(e->b, M, vf, ""), shuf(e, s2, NULL, i1, n))), vec);
  }
  return fit(e, kn_e_fmul(e, LLVMBuildSIToFP(e->b, I, vf, ""), kn_e_splat(e, LLVMBuildFMul(e->b, b.dA, dx, ""), n)), vec);
}

/* rec: the record of this group of activations (64-byte aligned) */
void kn_quant_x_store(kn_emit *e, kn_dtype fmt, const LLVMValueRef *xs, int nx, int vec, LLVMValueRef rec) {
  int qk = nx * vec, nblk = qk / (int)kn_dtype_get(fmt)->block_elems;
  if (nblk < 1 || nblk > 4 || (nblk > 2 && !split_layout(e, fmt, nblk))) {
    kn_efail(e, "no integer-dot record for %d %s blocks", nblk, kn_dtype_name(fmt));
    return;
  }
  if (nblk == 1 && k_layout(e, fmt)) {
    k_store(e, fmt, xs, nx, vec, rec);
    return;
  }
  qact a;
  act_compute(e, xs, nx, vec, nblk, &a);
  if (split_layout(e, fmt, nblk)) {
    split_store(e, fmt, &a, rec);
    return;
  }
  st(e, a.xq, rec, al(qk));
  for (int c = 0; c < qk / a.W; c++) st(e, a.xsum[c], at(e, rec, qk + c * a.W), al(a.W));
  for (int i = 0; i < nblk; i++) st(e, a.dx[i], at(e, rec, 2 * qk + 4 * i), 4);
}

static void act_load(kn_emit *e, LLVMValueRef rec, int qk, int nblk, qact *a) {
  a->qk = qk, a->nblk = nblk, a->W = act_width(e, qk);
  a->xq = ld(e, vt(e->i8, qk), rec, al(qk));
  for (int c = 0; c < qk / a->W; c++) a->xsum[c] = ld(e, vt(e->i32, a->W / 4), at(e, rec, qk + c * a->W), al(a->W));
  for (int i = 0; i < nblk; i++) a->dx[i] = ld(e, e->f32, at(e, rec, 2 * qk + 4 * i), 4);
}

/* the blocks blk .. blk + nblk - 1 of the row at base, decoded; false (and an error) if fmt has no template for them */
static bool decode_blocks_in(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, int nblk, int qk, qd *q, qblock *bb,
                             bool korder) {
  const kn_dtype_info *di = kn_dtype_get(fmt);
  bool ok = (nblk == 1 || (nblk == 2 && di->block_elems == 32)) && qk <= 256;
  for (int i = 0; ok && i < nblk; i++) {
    LLVMValueRef off = LLVMBuildMul(e->b, LLVMBuildAdd(e->b, blk, LLVMConstInt(e->i64, (unsigned)i, 0), ""),
                                    LLVMConstInt(e->i64, (unsigned)di->block_bytes, 0), "");
    q[i] = (qd){.e = e, .bp = LLVMBuildGEP2(e->b, e->i8, base, &off, 1, ""), .korder = korder};
    ok = decode(&q[i], fmt, &bb[i]) && qk == nblk * bb[i].qk && (nblk == 1 || (!bb[i].scl && !bb[i].mnl));
  }
  if (!ok) kn_efail(e, "no integer-dot template for %d %s block(s) over %d elements", nblk, di->name, qk);
  return ok;
}

static bool decode_blocks(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, int nblk, int qk, qd *q, qblock *bb) {
  return decode_blocks_in(e, fmt, base, blk, nblk, qk, q, bb, false);
}

/* The dot of the decoded blocks with the activations: one <vec x float> of partial sums. */
static LLVMValueRef qdot_core(kn_emit *e, qd *q, qblock *bb, int nblk, const qact *a, int vec) {
  qblock b = bb[0];
  LLVMValueRef uqs[2] = {bb[0].uq, nblk > 1 ? bb[1].uq : NULL};
  LLVMValueRef xq = a->xq;
  const LLVMValueRef *dx = a->dx, *xsum = a->xsum;
  b.uq = concat(e, uqs, nblk);
  b.qk *= nblk;
  int W = a->W;
  if (W < b.qk && nblk > 1) { /* the chunks would sum the blocks' products before their scales */
    kn_efail(e, "integer-dot pair of blocks needs %d-byte vectors", b.qk);
    return LLVMGetPoison(kn_e_vec(e->f32, vec));
  }
  LLVMValueRef I = NULL, ones = kn_e_iconst(vt(e->i8, W), 1);
  int nch = b.qk / W;
  /* with vpdpbusd, Q8_0's signed quants become unsigned by w + 128 (one xor) and -128 sum(x) starts the sum */
  bool vnni = dpbusd(e, NULL, ones, slice(e, xq, 0, W)) != NULL;
  bool bias_w = b.signed_w && vnni;
  /* a constant offset of every quant (q - 8, q - 16, w + 128) as the sum's start, where the sum is one chain */
  int off0 = bias_w ? -128 : b.off && !b.dB && !b.scl ? b.off : 0;
  if (off0 && vnni)
    for (int c = 0; c < nch; c++) {
      LLVMValueRef t = LLVMBuildMul(e->b, xsum[c], kn_e_iconst(LLVMTypeOf(xsum[c]), off0), "");
      I = I ? LLVMBuildAdd(e->b, I, t, "") : t;
    }
  for (int c = 0; c < nch; c++) {
    int c0 = c * W;
    LLVMValueRef u = slice(e, b.uq, c0, W), x = slice(e, xq, c0, W);
    if (bias_w) u = LLVMBuildXor(e->b, u, kn_e_iconst(LLVMTypeOf(u), 0x80), "");
    else if (b.signed_w) { /* |w| * (x with w's sign): vpsignb where there is one */
      if (x86(e) && W == 32 && feat(e, "avx2")) x = call(e, "llvm.x86.avx2.psign.b", x, u);
      else if (x86(e) && W == 16 && feat(e, "ssse3")) x = call(e, "llvm.x86.ssse3.psign.b.128", x, u);
      else {
        LLVMValueRef neg = LLVMBuildICmp(e->b, LLVMIntSLT, u, LLVMConstNull(LLVMTypeOf(u)), "");
        x = LLVMBuildSelect(e->b, neg, LLVMBuildNeg(e->b, x, ""), x, "");
      }
      LLVMValueRef args[2] = {u, LLVMConstInt(e->i1, 0, 0)};
      u = kn_e_intrinsic(e, "llvm.abs", LLVMTypeOf(u), args, 2);
    }
    LLVMValueRef t = b.scl ? NULL : dot4(e, I, u, x, !b.signed_w);
    if (t) I = t;
    else {
      t = maddwd(e, maddubs(e, u, x), per_pair(e, b.scl, c0, W, b.S));
      I = I ? LLVMBuildAdd(e->b, I, t, "") : t;
    }
  }
  int n = W / 4;
  LLVMTypeRef vf = vt(e->f32, n);
  if (b.off && !b.dB && !(off0 && vnni)) /* q - 8: off times the sums, the same for every row, joins the integer sum */
    for (int c = 0; c < nch; c++)
      I = LLVMBuildAdd(e->b, I, LLVMBuildMul(e->b, xsum[c], kn_e_iconst(LLVMTypeOf(xsum[c]), b.off), ""), "");
  /* the block's scale as a vector: a broadcast f16 load and a conversion, times the activations' shared scale */
  if (!(b.off && b.dB) && !b.mnl) return scaled(e, I, block_scales(q, nblk, b.dA_at, dx, n), vec);
  LLVMValueRef r = kn_e_fmul(e, LLVMBuildSIToFP(e->b, I, vf, ""), block_scales(q, nblk, b.dA_at, dx, n));
  if (b.off && b.dB) { /* d * q + m: the sums as a vector, converted once for all rows */
    LLVMValueRef md = block_scales(q, nblk, b.dB_at, dx, n); /* off is 1: d * q + m */
    LLVMValueRef S = xsum[0];
    for (int c = 1; c < nch; c++) S = LLVMBuildAdd(e->b, S, xsum[c], ""); /* every chunk's sums (16-byte vectors: two) */
    r = kn_e_fadd(e, r, kn_e_fmul(e, LLVMBuildSIToFP(e->b, S, vf, ""), md));
  }
  if (b.mnl) {
    /* sum_s mnl_s * (sum of the activations of sub-block s): the sums are per block of activations, shared by the rows */
    LLVMValueRef parts[64];
    memcpy(parts, xsum, (size_t)nch * sizeof *parts);
    LLVMValueRef xs_all = concat(e, parts, nch);
    int nsub = b.qk / b.S;
    for (int lanes = b.qk / 4; lanes > nsub; lanes /= 2) xs_all = pairsum(e, xs_all);
    LLVMValueRef md = LLVMBuildFMul(e->b, b.dB ? b.dB : b.dA, dx[0], "");
    LLVMValueRef M = maddwd(e, b.mnl, LLVMBuildTrunc(e->b, xs_all, vt(e->i16, nsub), ""));
    int mn = nsub / 2;
    LLVMValueRef mf = kn_e_fmul(e, LLVMBuildSIToFP(e->b, M, vt(e->f32, mn), ""), kn_e_splat(e, md, mn));
    r = kn_e_fadd(e, r, fit(e, mf, n));
  }
  return fit(e, r, vec);
}

LLVMValueRef kn_quant_dot(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, const LLVMValueRef *xs, int nx,
                          int vec) {
  const kn_dtype_info *di = kn_dtype_get(fmt);
  /* one block, or (32-element formats on 64-byte vectors) two consecutive blocks of a row in one vector */
  int qk = nx * vec, nblk = di->block_elems > 0 ? (int)(qk / di->block_elems) : 0;
  qd q[2];
  qblock bb[2];
  if (nx > 256 || (nblk == 2 && nx % 2) || !decode_blocks(e, fmt, base, blk, nblk, qk, q, bb)) return LLVMGetPoison(kn_e_vec(e->f32, vec));
  qact a;
  act_compute(e, xs, nx, vec, nblk, &a);
  return qdot_core(e, q, bb, nblk, &a, vec);
}

LLVMValueRef kn_quant_dot_rec(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, LLVMValueRef rec, int qk, int vec) {
  const kn_dtype_info *di = kn_dtype_get(fmt);
  int nblk = di->block_elems > 0 ? (int)(qk / di->block_elems) : 0;
  if (split_layout(e, fmt, nblk)) return split_dot(e, fmt, base, blk, rec, nblk, vec);
  if (nblk == 1 && k_layout(e, fmt)) return k_dot(e, fmt, base, blk, rec, vec);
  qd q[2];
  qblock bb[2];
  if (!decode_blocks(e, fmt, base, blk, nblk, qk, q, bb)) return LLVMGetPoison(kn_e_vec(e->f32, vec));
  qact a;
  act_load(e, rec, qk, nblk, &a);
  return qdot_core(e, q, bb, nblk, &a, vec);
}

/* ---- the tiled prefill path (quant_mm.c): activations quantized once per launch ----
 * The same int8 rounding as above (one scale per weight block). A record of U tokens' block b holds their int8
 * values (U x qk bytes), their scales as one <U x float>, and what the block's offset or mins need, laid out so that
 * one vector op serves all U tokens: for one-sub-block formats dx * sum(xq) as <U x float>; for the K formats the
 * sums of each sub-block of S elements as i16, pairs of sub-blocks interleaved per token ([nsub/2][U][2]), so that
 * vpmaddwd with the block's pair of integer mins gives all U tokens' mins dot at once. */

int kn_quant_dot_sub(kn_dtype fmt) {
  switch (fmt) {
  case KN_Q2_K: case KN_Q3_K: case KN_Q6_K: return 16;
  default: return 32;
  }
}

void kn_quant_x_block(kn_emit *e, kn_dtype fmt, const LLVMValueRef *xs, int nx, int vec, LLVMValueRef *xq, LLVMValueRef *dx,
                      LLVMValueRef *sums) {
  quantize_x(e, xs, nx, vec, xq, dx);
  int qk = nx * vec, nsub = qk / kn_quant_dot_sub(fmt);
  LLVMValueRef s = i16s(e, *xq, true); /* |sum| <= 32 * 127 fits i16 */
  for (int lanes = qk; lanes > nsub; lanes /= 2) s = pairsum(e, s);
  *sums = s;
}

bool kn_quant_dot_tile_biased(const kn_target *t, kn_dtype fmt, int nblk) {
  int W = t_int_width(t) < 32 * nblk ? t_int_width(t) : 32 * nblk;
  bool x = !strncmp(t->triple, "x86_64", 6);
  return fmt == KN_Q8_0 && x && ((W == 64 && tfeat(t, "avx512vnni")) ||
                                 (W == 32 && ((tfeat(t, "avx512vnni") && tfeat(t, "avx512vl")) || tfeat(t, "avxvnni"))));
}

LLVMValueRef kn_quant_x_sums4(kn_emit *e, LLVMValueRef xq) {
  LLVMValueRef s = LLVMBuildSExt(e->b, xq, vt(e->i32, (int)LLVMGetVectorSize(LLVMTypeOf(xq))), "");
  return pairsum(e, pairsum(e, s));
}

int kn_quant_dot_lanes(kn_emit *e, kn_dtype fmt, int nblk) {
  if (split_fmt(fmt)) return 4 * nblk;
  int W = int_width(e), qk = (int)kn_dtype_get(fmt)->block_elems * nblk;
  return (W > qk ? qk : W) / 4;
}

int kn_quant_dot_tile_blocks(const kn_target *t, kn_dtype fmt, int64_t nb, bool *split) {
  int pb = split_fmt(fmt) ? t_int_width(t) / 16 : kn_dtype_get(fmt)->block_elems == 32 && t_int_width(t) == 64 ? 2 : 1;
  while (pb > 1 && nb % pb) pb /= 2;
  *split = split_fmt(fmt);
  return pb;
}

/* The nibble formats' tile (split records): nblk blocks' nibbles side by side give L (elements 0-15 of each block)
 * and H (16-31) with no shuffle, decoded once; per token two multiply-adds with its xL and xH land block k in lanes
 * 4k..4k+3, which take the block's scale times the token's dx (stored spread over those lanes): a few operations per
 * token for nblk blocks, where the element-order tile spends a multiply-add chain, a conversion, a scale broadcast
 * and an add per block. */
static void tile_split(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, int nblk, int u0, int u1, LLVMValueRef xq,
                       LLVMValueRef dxp, LLVMValueRef xi, LLVMValueRef *acc) {
  bool with_min = fmt == KN_Q4_1 || fmt == KN_Q5_1;
  int W = 16 * nblk, n = W / 4;
  qd q[4];
  LLVMValueRef L, H, d, mn;
  split_decode(e, fmt, base, blk, nblk, q, &L, &H, &d, &mn);
  for (int u = u0; u < u1; u++) { /* split_dot's term, per token */
    LLVMValueRef xL = ld(e, vt(e->i8, W), at(e, xq, (long long)u * 2 * W), al(W));
    LLVMValueRef xH = ld(e, vt(e->i8, W), at(e, xq, (long long)u * 2 * W + W), al(W));
    LLVMValueRef xs = ld(e, vt(with_min ? e->f32 : e->i32, n), at(e, xi, (long long)u * 4 * n), al(4 * n));
    LLVMValueRef dxv = ld(e, vt(e->f32, n), at(e, dxp, (long long)u * 4 * n), al(4 * n));
    acc[u] = kn_e_fadd(e, acc[u], split_term(e, with_min, W, L, H, d, mn, xL, xH, xs, dxv, n));
  }
}

/* v in every lane of <n x float>, a vector also for n = 1 (KILN_QMM_U=1: one token per tile group) */
static LLVMValueRef vsplat(kn_emit *e, LLVMValueRef v, int n) {
  return n > 1 ? kn_e_splat(e, v, n) : LLVMBuildInsertElement(e->b, LLVMGetPoison(vt(e->f32, 1)), v, LLVMConstInt(e->i32, 0, 0), "");
}

LLVMValueRef kn_quant_split_sums(kn_emit *e, kn_dtype fmt, LLVMValueRef xq, LLVMValueRef dx) {
  LLVMValueRef s = LLVMBuildSExt(e->b, xq, vt(e->i32, 32), "");
  s = LLVMBuildAdd(e->b, slice(e, s, 0, 16), slice(e, s, 16, 16), ""); /* element j + element 16 + j */
  s = pairsum(e, pairsum(e, s));
  if (split_off(fmt) != 1) return LLVMBuildMul(e->b, s, kn_e_iconst(vt(e->i32, 4), split_off(fmt)), "");
  return kn_e_fmul(e, LLVMBuildSIToFP(e->b, s, vt(e->f32, 4), ""), kn_e_splat(e, dx, 4));
}

void kn_quant_dot_tile(kn_emit *e, kn_dtype fmt, LLVMValueRef base, LLVMValueRef blk, int nblk, int ntok, int u0, int u1,
                       LLVMValueRef xq, LLVMValueRef dxp, LLVMValueRef sp, LLVMValueRef xi, LLVMValueRef *acc, LLVMValueRef *accv) {
  const kn_dtype_info *di = kn_dtype_get(fmt);
  if (split_fmt(fmt)) {
    if (!split_layout(e, fmt, nblk) || ntok > 16) {
      kn_efail(e, "no split integer-dot tile for %s over %d blocks and %d tokens", di->name, nblk, ntok);
      return;
    }
    if (!xi) {
      kn_efail(e, "the split integer-dot tile of %s needs its records' sums", di->name);
      return;
    }
    tile_split(e, fmt, base, blk, nblk, u0, u1, xq, dxp, xi, acc);
    return;
  }
  qblock bs[2];
  for (int k = 0; k < nblk && k < 2; k++) {
    LLVMValueRef bi = k ? LLVMBuildAdd(e->b, blk, LLVMConstInt(e->i64, (unsigned)k, 0), "") : blk;
    LLVMValueRef off = LLVMBuildMul(e->b, bi, LLVMConstInt(e->i64, (unsigned)di->block_bytes, 0), "");
    qd q = {.e = e, .bp = LLVMBuildGEP2(e->b, e->i8, base, &off, 1, ""), .korder = k_order(fmt, int_width(e))};
    if (!decode(&q, fmt, &bs[k])) nblk = 0;
  }
  if (nblk < 1 || nblk > 2 || bs[0].qk > 256 || ntok > 16 || (nblk == 2 && (bs[0].qk != 32 || bs[0].scl || bs[0].mnl))) {
    kn_efail(e, "no integer-dot template for %s over %d blocks and %d tokens", di->name, nblk, ntok);
    return;
  }
  qblock b = bs[0];
  qd q = {.e = e};
  int qk = b.qk * nblk, W = kn_quant_dot_lanes(e, fmt, nblk) * 4, nch = qk / W, n = W / 4, U = ntok, nsub = b.qk / kn_quant_dot_sub(fmt);
  if (nblk == 2) {
    LLVMValueRef parts[2] = {bs[0].uq, bs[1].uq};
    b.uq = concat(e, parts, 2);
  }
  LLVMValueRef us[16], sg[16], ps[16];
  /* biased records (kn_quant_dot_tile_biased): Q8_0's signed quants become unsigned by w + 128 (one xor per block,
   * not a sign move per token), each token's integer sum starts at its stored -128 * sums of four, and its scale is
   * stored spread over its blocks' lanes */
  bool bias = xi != NULL;
  if (bias && (!b.signed_w || b.off || !dpbusd_name(e, W))) {
    kn_efail(e, "no biased integer-dot tile for %s over %d blocks", di->name, nblk);
    return;
  }
  int off = b.off;
  for (int c = 0; c < nch; c++) { /* the block's operands, decoded once for every token */
    us[c] = sg[c] = slice(e, b.uq, c * W, W);
    if (bias) us[c] = LLVMBuildXor(e->b, us[c], kn_e_iconst(LLVMTypeOf(us[c]), 0x80), "");
    else if (b.signed_w) {
      LLVMValueRef args[2] = {us[c], LLVMConstInt(e->i1, 0, 0)};
      us[c] = kn_e_intrinsic(e, "llvm.abs", LLVMTypeOf(us[c]), args, 2);
    }
    if (b.scl && k_order(fmt, W)) { /* the GEMV's chunk order: lane l of chunk c is element k_elem(c, l) */
      int idx[32];
      for (int l = 0; l < W / 2; l++) idx[l] = k_elem(fmt, W, c, 2 * l) / b.S;
      ps[c] = shuf(e, b.scl, NULL, idx, W / 2);
      if (b.ish) ps[c] = shl(e, ps[c], b.csh[c]); /* k_dot's multipliers of chunks masked in place */
    } else ps[c] = b.scl ? per_pair(e, b.scl, c * W, W, b.S) : NULL;
  }
  /* dA * dx of every token (and block): [nblk][U] */
  LLVMTypeRef vb = vt(e->f32, nblk * U);
  LLVMValueRef dxv = bias ? NULL : LLVMBuildLoad2(e->b, vb, dxp, ""), dav = vsplat(e, b.dA, U);
  if (dxv) LLVMSetAlignment(dxv, 4);
  if (nblk == 2) {
    LLVMValueRef parts[2] = {dav, vsplat(e, bs[1].dA, U)};
    dav = concat(e, parts, 2);
  }
  LLVMValueRef scv = bias ? NULL : kn_e_fmul(e, dav, dxv), dsp = NULL;
  if (bias) { /* the blocks' scales spread over their lanes */
    int idx[64];
    for (int l = 0; l < n; l++) idx[l] = (l * nblk / n) * U;
    dsp = shuf(e, dav, NULL, idx, n);
  }
  for (int u = u0; u < u1; u++) {
    LLVMValueRef I = NULL;
    if (bias) {
      LLVMValueRef o = c64(&q, (long long)u * n);
      I = LLVMBuildLoad2(e->b, vt(e->i32, n), LLVMBuildGEP2(e->b, e->i32, xi, &o, 1, ""), "");
      LLVMSetAlignment(I, 4);
    }
    for (int c = 0; c < nch; c++) {
      LLVMValueRef o = c64(&q, (long long)u * qk + c * W);
      LLVMValueRef x = LLVMBuildLoad2(e->b, vt(e->i8, W), LLVMBuildGEP2(e->b, e->i8, xq, &o, 1, ""), "");
      LLVMSetAlignment(x, 16);
      if (b.signed_w && !bias) { /* |w| * (x with w's sign) */
        if (x86(e) && W == 32 && feat(e, "avx2")) x = call(e, "llvm.x86.avx2.psign.b", x, sg[c]);
        else if (x86(e) && W == 16 && feat(e, "ssse3")) x = call(e, "llvm.x86.ssse3.psign.b.128", x, sg[c]);
        else {
          LLVMValueRef neg = LLVMBuildICmp(e->b, LLVMIntSLT, sg[c], LLVMConstNull(LLVMTypeOf(sg[c])), "");
          x = LLVMBuildSelect(e->b, neg, LLVMBuildNeg(e->b, x, ""), x, "");
        }
      }
      LLVMValueRef t = ps[c] ? NULL : dot4(e, I, us[c], x, !b.signed_w);
      if (t) I = t;
      else {
        t = maddwd(e, maddubs(e, us[c], x), ps[c] ? ps[c] : splat16(e, W / 2, 1));
        I = I ? LLVMBuildAdd(e->b, I, t, "") : t;
      }
    }
    if (nsub > 1) { /* the K formats: k_dot's arithmetic per token (the mins as its integer lanes or their own term) */
      LLVMValueRef dxu = LLVMBuildExtractElement(e->b, dxv, LLVMConstInt(e->i32, (unsigned)u, 0), ""), M = NULL, sv = NULL;
      if (b.ish) dxu = LLVMBuildFMul(e->b, dxu, LLVMConstReal(e->f32, 1.0 / (1 << b.ish)), ""); /* k_store's */
      if (b.mnl) {
        LLVMValueRef o = c64(&q, (long long)u * nsub);
        sv = LLVMBuildLoad2(e->b, vt(e->i16, nsub), LLVMBuildGEP2(e->b, e->i16, sp, &o, 1, ""), "");
        LLVMSetAlignment(sv, 2);
      }
      if (!k_layout(e, fmt)) { /* 16-byte vectors: qdot_core's (the mins' term in float, over pairs of sub-blocks) */
        LLVMValueRef r = kn_e_fmul(e, LLVMBuildSIToFP(e->b, I, vt(e->f32, n), ""), kn_e_splat(e, LLVMBuildFMul(e->b, b.dA, dxu, ""), n));
        if (b.mnl) {
          LLVMValueRef Mp = maddwd(e, b.mnl, sv), md = LLVMBuildFMul(e->b, b.dB ? b.dB : b.dA, dxu, "");
          int mn = nsub / 2;
          r = kn_e_fadd(e, r, fit(e, kn_e_fmul(e, LLVMBuildSIToFP(e->b, Mp, vt(e->f32, mn), ""), kn_e_splat(e, md, mn)), n));
        }
        acc[u] = kn_e_fadd(e, acc[u], r);
        continue;
      }
      if (b.mnl) M = ifit(e, maddwd(e, b.mnl, sv), n);
      if (M && !b.dB) I = LLVMBuildAdd(e->b, I, M, ""), M = NULL;
      LLVMTypeRef vf = vt(e->f32, n);
      LLVMValueRef r = kn_e_fmul(e, LLVMBuildSIToFP(e->b, I, vf, ""), kn_e_splat(e, LLVMBuildFMul(e->b, b.dA, dxu, ""), n));
      if (M) r = kn_e_fadd(e, r, kn_e_fmul(e, LLVMBuildSIToFP(e->b, M, vf, ""), kn_e_splat(e, LLVMBuildFMul(e->b, b.dB, dxu, ""), n)));
      acc[u] = kn_e_fadd(e, acc[u], r);
      continue;
    }
    LLVMValueRef sc;
    if (bias) {
      LLVMValueRef o = c64(&q, (long long)u * n);
      LLVMValueRef dxu = LLVMBuildLoad2(e->b, vt(e->f32, n), LLVMBuildGEP2(e->b, e->f32, dxp, &o, 1, ""), "");
      LLVMSetAlignment(dxu, 4);
      sc = kn_e_fmul(e, dsp, dxu);
    } else {
      int idx[64]; /* lanes of block k take token u's scale of block k */
      for (int l = 0; l < n; l++) idx[l] = (l * nblk / n) * U + u;
      sc = shuf(e, scv, NULL, idx, n);
    }
    acc[u] = kn_e_fadd(e, acc[u], kn_e_fmul(e, LLVMBuildSIToFP(e->b, I, vt(e->f32, n), ""), sc));
  }
  if (off && nsub == 1 && u0 == 0) { /* q - 8 or d * q + m: the stored dx * sum(xq) of every token times the block's offset or min */
    LLVMValueRef cv = LLVMBuildLoad2(e->b, vb, sp, "");
    LLVMSetAlignment(cv, 4);
    for (int k = 0; k < nblk; k++) {
      LLVMValueRef m = bs[k].dB ? bs[k].dB : LLVMBuildFMul(e->b, bs[k].dA, LLVMConstReal(e->f32, off), "");
      *accv = kn_e_fadd(e, *accv, kn_e_fmul(e, nblk > 1 ? slice(e, cv, k * U, U) : cv, vsplat(e, m, U)));
    }
  }
}

/* Lane u of the result: token u's accumulator summed to one lane as fit(acc[u], 1) does, plus accv's lane u. Each
 * token's lanes are summed in fit's tree (lane i + lane i + s / 2 within groups of s) with the tokens side by side,
 * two accumulators' groups per vector while there are several, so the U sums take a few shuffles and adds on full
 * vectors, not U horizontal sums. */
LLVMValueRef kn_quant_dot_hsums(kn_emit *e, const LLVMValueRef *acc, int U, LLVMValueRef accv) {
  int cnt = 1, s = (int)LLVMGetVectorSize(LLVMTypeOf(acc[0])), lo[64], hi[64];
  while (cnt < U) cnt *= 2;
  LLVMValueRef v[16];
  for (int u = 0; u < cnt; u++) v[u] = u < U ? acc[u] : LLVMConstNull(LLVMTypeOf(acc[0]));
  for (; s > 1; s /= 2) {
    int w = (int)LLVMGetVectorSize(LLVMTypeOf(v[0])), n = 0;
    for (int src = 0; src < (cnt > 1 ? 2 : 1); src++) /* groups of v[2i], then of v[2i + 1] (second operand: w + lane) */
      for (int g = 0; g < w / s; g++)
        for (int l = 0; l < s / 2; l++, n++) lo[n] = src * w + g * s + l, hi[n] = lo[n] + s / 2;
    int half = cnt > 1 ? cnt / 2 : 1;
    for (int i = 0; i < half; i++) {
      LLVMValueRef a = v[cnt > 1 ? 2 * i : 0], b = cnt > 1 ? v[2 * i + 1] : NULL;
      v[i] = kn_e_fadd(e, shuf(e, a, b, lo, n), shuf(e, a, b, hi, n));
    }
    cnt = half;
  }
  LLVMValueRef r = concat(e, v, cnt);
  if ((int)LLVMGetVectorSize(LLVMTypeOf(r)) > U) r = slice(e, r, 0, U);
  return LLVMBuildFAdd(e->b, r, accv, "");
}
