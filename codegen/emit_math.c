/* Transcendentals as inline polynomials on float registers (scalar or vector), so kernel objects never call libm
 * and the loader needs no external symbols. Accuracy is a few ulp for f32 over the ranges models use. */
#include <math.h>

#include "emit.h"

static LLVMTypeRef like(LLVMTypeRef v, LLVMTypeRef elem) {
  return LLVMGetTypeKind(v) == LLVMVectorTypeKind ? LLVMVectorType(elem, LLVMGetVectorSize(v)) : elem;
}

static LLVMValueRef horner(kn_emit *e, LLVMValueRef x, const double *c, int n) {
  LLVMTypeRef t = LLVMTypeOf(x);
  LLVMValueRef r = kn_e_fconst(t, c[n - 1]);
  for (int i = n - 2; i >= 0; i--) r = kn_e_fadd(e, kn_e_fmul(e, r, x), kn_e_fconst(t, c[i]));
  return r;
}

static LLVMValueRef fsel(kn_emit *e, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b, LLVMValueRef yes, LLVMValueRef no) {
  return LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, p, a, b, ""), yes, no, "");
}

/* 2^n for integer n in [-126, 127] (i32 lanes) as float */
static LLVMValueRef pow2i(kn_emit *e, LLVMValueRef n) {
  LLVMTypeRef ti = LLVMTypeOf(n);
  LLVMValueRef bits = LLVMBuildShl(e->b, LLVMBuildAdd(e->b, n, kn_e_iconst(ti, 127), ""), kn_e_iconst(ti, 23), "");
  return LLVMBuildBitCast(e->b, bits, like(ti, e->f32), "");
}

/* 2^x = 2^n * 2^f with n = round(x), |f| <= 1/2; 2^f by its Taylor series to degree 7 (error < 1e-8). The scale
 * 2^n is applied as two factors so results down to the denormal range and up to overflow come out right. */
LLVMValueRef kn_e_exp2(kn_emit *e, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x), ti = like(t, e->i32);
  LLVMValueRef xc = fsel(e, LLVMRealOLT, x, kn_e_fconst(t, -160.0), kn_e_fconst(t, -160.0), x);
  xc = fsel(e, LLVMRealOGT, xc, kn_e_fconst(t, 160.0), kn_e_fconst(t, 160.0), xc);
  xc = fsel(e, LLVMRealUNO, xc, xc, kn_e_fconst(t, 0.0), xc);
  LLVMValueRef half = fsel(e, LLVMRealOLT, xc, kn_e_fconst(t, 0.0), kn_e_fconst(t, -0.5), kn_e_fconst(t, 0.5));
  LLVMValueRef n = LLVMBuildFPToSI(e->b, kn_e_fadd(e, xc, half), ti, "");
  LLVMValueRef f = kn_e_fsub(e, xc, LLVMBuildSIToFP(e->b, n, t, ""));
  double c[8];
  double l = M_LN2, fact = 1.0, pw = 1.0;
  for (int i = 0; i < 8; i++) {
    if (i) fact *= i, pw *= l;
    c[i] = pw / fact;
  }
  LLVMValueRef p = horner(e, f, c, 8);
  LLVMValueRef n1 = LLVMBuildAShr(e->b, n, kn_e_iconst(ti, 1), "");
  LLVMValueRef n2 = LLVMBuildSub(e->b, n, n1, "");
  LLVMValueRef r = kn_e_fmul(e, kn_e_fmul(e, p, pow2i(e, n1)), pow2i(e, n2));
  return fsel(e, LLVMRealUNO, x, x, x, r);
}

/* log2 x = e + log2 m with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(t), t = (m-1)/(m+1), |t| < 0.172, by its odd
 * series to t^9. Denormal inputs are scaled by 2^23 first. */
LLVMValueRef kn_e_log2(kn_emit *e, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x), ti = like(t, e->i32);
  LLVMValueRef den = fsel(e, LLVMRealOLT, x, kn_e_fconst(t, 0x1p-126), kn_e_iconst(ti, 1), kn_e_iconst(ti, 0));
  LLVMValueRef isden = LLVMBuildTrunc(e->b, den, like(t, e->i1), "");
  LLVMValueRef xs = LLVMBuildSelect(e->b, isden, kn_e_fmul(e, x, kn_e_fconst(t, 0x1p23)), x, "");
  LLVMValueRef bits = LLVMBuildBitCast(e->b, xs, ti, "");
  LLVMValueRef ex = LLVMBuildSub(e->b, LLVMBuildAnd(e->b, LLVMBuildLShr(e->b, bits, kn_e_iconst(ti, 23), ""), kn_e_iconst(ti, 255), ""),
                                 kn_e_iconst(ti, 127), "");
  ex = LLVMBuildSub(e->b, ex, LLVMBuildMul(e->b, den, kn_e_iconst(ti, 23), ""), "");
  LLVMValueRef mb = LLVMBuildOr(e->b, LLVMBuildAnd(e->b, bits, kn_e_iconst(ti, 0x7fffff), ""), kn_e_iconst(ti, 0x3f800000), "");
  LLVMValueRef m = LLVMBuildBitCast(e->b, mb, t, "");
  LLVMValueRef big = LLVMBuildFCmp(e->b, LLVMRealOGT, m, kn_e_fconst(t, M_SQRT2), "");
  m = LLVMBuildSelect(e->b, big, kn_e_fmul(e, m, kn_e_fconst(t, 0.5)), m, "");
  ex = LLVMBuildAdd(e->b, ex, LLVMBuildZExt(e->b, big, ti, ""), "");
  LLVMValueRef tt = LLVMBuildFDiv(e->b, kn_e_fsub(e, m, kn_e_fconst(t, 1.0)), kn_e_fadd(e, m, kn_e_fconst(t, 1.0)), "");
  LLVMValueRef t2 = kn_e_fmul(e, tt, tt);
  const double c[5] = {2.0 / 1, 2.0 / 3, 2.0 / 5, 2.0 / 7, 2.0 / 9};
  LLVMValueRef ln = kn_e_fmul(e, tt, horner(e, t2, c, 5));
  LLVMValueRef r = kn_e_fadd(e, LLVMBuildSIToFP(e->b, ex, t, ""), kn_e_fmul(e, ln, kn_e_fconst(t, M_LOG2E)));
  r = fsel(e, LLVMRealOEQ, x, kn_e_fconst(t, INFINITY), x, r);
  r = fsel(e, LLVMRealOEQ, x, kn_e_fconst(t, 0.0), kn_e_fconst(t, -INFINITY), r);
  return fsel(e, LLVMRealULT, x, kn_e_fconst(t, 0.0), kn_e_fconst(t, NAN), r);
}

/* sin x: k = round(x * 2/pi), r = x - k pi/2 in three exact-product steps (Cody-Waite), then the sin or cos series
 * on |r| <= pi/4 picked by the quadrant k mod 4. */
LLVMValueRef kn_e_sin(kn_emit *e, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x), ti = like(t, e->i32);
  LLVMValueRef ax = fsel(e, LLVMRealOLT, x, kn_e_fconst(t, 0.0), LLVMBuildFNeg(e->b, x, ""), x);
  LLVMValueRef xk = fsel(e, LLVMRealOLT, ax, kn_e_fconst(t, 1e7), x, kn_e_fconst(t, 0.0));
  LLVMValueRef q = kn_e_fmul(e, xk, kn_e_fconst(t, M_2_PI));
  LLVMValueRef half = fsel(e, LLVMRealOLT, q, kn_e_fconst(t, 0.0), kn_e_fconst(t, -0.5), kn_e_fconst(t, 0.5));
  LLVMValueRef k = LLVMBuildFPToSI(e->b, kn_e_fadd(e, q, half), ti, "");
  LLVMValueRef kf = LLVMBuildSIToFP(e->b, k, t, "");
  LLVMValueRef r = LLVMBuildFSub(e->b, x, LLVMBuildFMul(e->b, kf, kn_e_fconst(t, 1.5703125), ""), "");
  r = LLVMBuildFSub(e->b, r, LLVMBuildFMul(e->b, kf, kn_e_fconst(t, 4.837512969970703125e-4), ""), "");
  r = LLVMBuildFSub(e->b, r, LLVMBuildFMul(e->b, kf, kn_e_fconst(t, 7.54978995489188216e-8), ""), "");
  LLVMValueRef r2 = kn_e_fmul(e, r, r);
  const double cs[5] = {1.0, -1.0 / 6, 1.0 / 120, -1.0 / 5040, 1.0 / 362880};
  const double cc[6] = {1.0, -1.0 / 2, 1.0 / 24, -1.0 / 720, 1.0 / 40320, -1.0 / 3628800};
  LLVMValueRef s = kn_e_fmul(e, r, horner(e, r2, cs, 5));
  LLVMValueRef c = horner(e, r2, cc, 6);
  LLVMValueRef odd = LLVMBuildTrunc(e->b, LLVMBuildAnd(e->b, k, kn_e_iconst(ti, 1), ""), like(t, e->i1), "");
  LLVMValueRef neg = LLVMBuildTrunc(e->b, LLVMBuildLShr(e->b, LLVMBuildAnd(e->b, k, kn_e_iconst(ti, 2), ""), kn_e_iconst(ti, 1), ""),
                                    like(t, e->i1), "");
  LLVMValueRef v = LLVMBuildSelect(e->b, odd, c, s, "");
  v = LLVMBuildSelect(e->b, neg, LLVMBuildFNeg(e->b, v, ""), v, "");
  /* inf and NaN give NaN */
  return fsel(e, LLVMRealOEQ, ax, kn_e_fconst(t, INFINITY), kn_e_fconst(t, NAN), v);
}
