/* Every front-end op against a plain C reference on random shapes and random data: elementwise ops in every dtype
 * they apply to (with broadcasting), casts and bitcasts, chains of views (reshape, permute, expand, pad, shrink,
 * flip) including views of views, reductions over one and several axes, matmul, arange and rand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

/* ---------- a tiny reference tensor: values as doubles, row-major ---------- */
typedef struct {
  kn_dtype dt;
  int nd;
  int64_t sh[KN_MAXDIM];
  double *v;
} ref;

static uint64_t rng = 0x1234567887654321ull;
static uint64_t rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}
static double urand(double lo, double hi) { return lo + (hi - lo) * (double)(rnd() >> 11) / 9007199254740992.0; }
static int64_t irand(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }

static int passed, failed;
static char casename[256];

static int64_t numel(const ref *r) {
  int64_t n = 1;
  for (int i = 0; i < r->nd; i++) n *= r->sh[i];
  return n;
}

static double bf16_round(double x) {
  float f = (float)x;
  uint32_t u;
  memcpy(&u, &f, 4);
  u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
  memcpy(&f, &u, 4);
  return f;
}

/* Wrap/round a value to what dtype dt stores. */
static double fit(kn_dtype dt, double x) {
  switch (dt) {
  case KN_BOOL: return x != 0;
  case KN_I8: return (int8_t)(int64_t)x;
  case KN_U8: return (uint8_t)(int64_t)x;
  case KN_I16: return (int16_t)(int64_t)x;
  case KN_U16: return (uint16_t)(int64_t)x;
  case KN_I32: return (int32_t)(int64_t)x;
  case KN_U32: return (uint32_t)(int64_t)x;
  case KN_I64: return (double)(int64_t)x;
  case KN_U64: return (double)(uint64_t)(int64_t)x;
  case KN_F16: return (double)(_Float16)x;
  case KN_BF16: return bf16_round(x);
  default: return (float)x;
  }
}

static ref mk(kn_dtype dt, int nd, const int64_t *sh) {
  ref r = {dt, nd, {0}, NULL};
  memcpy(r.sh, sh, nd * sizeof *sh);
  r.v = calloc(numel(&r) ? numel(&r) : 1, sizeof(double));
  return r;
}

static ref rand_ref(kn_dtype dt, int nd, const int64_t *sh, bool positive) {
  ref r = mk(dt, nd, sh);
  for (int64_t i = 0; i < numel(&r); i++) {
    double x;
    if (kn_dtype_is_float(dt)) x = positive ? urand(0.1, 3.0) : urand(-3.0, 3.0);
    else if (dt == KN_BOOL) x = (double)(rnd() & 1);
    else if (kn_dtype_get(dt)->is_signed) x = (double)irand(positive ? 1 : -100, 100);
    else x = (double)irand(positive ? 1 : 0, 200);
    r.v[i] = fit(dt, x);
  }
  return r;
}

static void pack(kn_dtype dt, const double *v, int64_t n, void *out) {
  for (int64_t i = 0; i < n; i++) {
    double x = v[i];
    switch (dt) {
    case KN_BOOL: ((uint8_t *)out)[i] = x != 0; break;
    case KN_I8: ((int8_t *)out)[i] = (int8_t)x; break;
    case KN_U8: ((uint8_t *)out)[i] = (uint8_t)x; break;
    case KN_I16: ((int16_t *)out)[i] = (int16_t)x; break;
    case KN_U16: ((uint16_t *)out)[i] = (uint16_t)x; break;
    case KN_I32: ((int32_t *)out)[i] = (int32_t)x; break;
    case KN_U32: ((uint32_t *)out)[i] = (uint32_t)x; break;
    case KN_I64: ((int64_t *)out)[i] = (int64_t)x; break;
    case KN_U64: ((uint64_t *)out)[i] = (uint64_t)x; break;
    case KN_F16: ((_Float16 *)out)[i] = (_Float16)x; break;
    case KN_BF16: {
      float f = (float)bf16_round(x);
      uint32_t u;
      memcpy(&u, &f, 4);
      ((uint16_t *)out)[i] = (uint16_t)(u >> 16);
      break;
    }
    default: ((float *)out)[i] = (float)x; break;
    }
  }
}

static double unpack1(kn_dtype dt, const void *p, int64_t i) {
  switch (dt) {
  case KN_BOOL: return ((const uint8_t *)p)[i] != 0;
  case KN_I8: return ((const int8_t *)p)[i];
  case KN_U8: return ((const uint8_t *)p)[i];
  case KN_I16: return ((const int16_t *)p)[i];
  case KN_U16: return ((const uint16_t *)p)[i];
  case KN_I32: return ((const int32_t *)p)[i];
  case KN_U32: return ((const uint32_t *)p)[i];
  case KN_I64: return (double)((const int64_t *)p)[i];
  case KN_U64: return (double)((const uint64_t *)p)[i];
  case KN_F16: return ((const _Float16 *)p)[i];
  case KN_BF16: {
    uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  default: return ((const float *)p)[i];
  }
}

static kn_t dev(const ref *r) {
  int64_t n = numel(r);
  size_t bytes = (size_t)kn_dtype_nbytes(r->dt, n);
  void *buf = malloc(bytes ? bytes : 1);
  pack(r->dt, r->v, n, buf);
  kn_t t = kn_from_host(r->dt, r->nd, r->sh, buf);
  free(buf);
  return t;
}

static double tol_for(kn_dtype dt, double base) {
  if (dt == KN_F16) return base > 2e-3 ? base : 2e-3;
  if (dt == KN_BF16) return base > 1.6e-2 ? base : 1.6e-2;
  return base;
}

/* Compare a lazy result with the reference; rel/abs tolerance for floats, exact for the rest. */
static void check(kn_t t, const ref *want, double tol) {
  kn_ctx *c = kn_ctx_current();
  bool ok = t != NULL;
  char why[512] = "";
  if (!ok) snprintf(why, sizeof why, "graph error: %s", kn_ctx_error(c) ? kn_ctx_error(c) : "?");
  if (ok && (kn_ndim(t) != want->nd || memcmp(kn_shape(t), want->sh, want->nd * sizeof(int64_t)))) {
    ok = false;
    snprintf(why, sizeof why, "shape mismatch");
  }
  if (ok && kn_dtype_scalar(kn_dtype_of(t)) != want->dt) {
    ok = false;
    snprintf(why, sizeof why, "dtype %s, want %s", kn_dtype_name(kn_dtype_of(t)), kn_dtype_name(want->dt));
  }
  int64_t n = numel(want);
  void *buf = NULL;
  if (ok) {
    size_t bytes = (size_t)kn_dtype_nbytes(want->dt, n);
    buf = malloc(bytes ? bytes : 1);
    if (kn_to_host(t, buf, bytes ? bytes : 1)) {
      ok = false;
      snprintf(why, sizeof why, "realize failed: %s", kn_ctx_error(c) ? kn_ctx_error(c) : "?");
    }
  }
  tol = tol_for(want->dt, tol);
  for (int64_t i = 0; ok && i < n; i++) {
    double got = unpack1(want->dt, buf, i), exp = want->v[i];
    bool good;
    if (kn_dtype_is_float(want->dt)) {
      if (isnan(exp)) good = isnan(got);
      else if (isinf(exp)) good = got == exp;
      else good = fabs(got - exp) <= tol * (1 + fabs(exp));
    } else
      good = got == exp;
    if (!good) {
      ok = false;
      snprintf(why, sizeof why, "element %lld: got %.9g, want %.9g", (long long)i, got, exp);
    }
  }
  free(buf);
  if (ok) passed++;
  else {
    failed++;
    printf("FAIL %s: %s\n", casename, why);
    kn_ctx_clear_error(c);
  }
}

/* ---------- reference ops ---------- */
static void unravel(int64_t i, int nd, const int64_t *sh, int64_t *idx) {
  for (int d = nd - 1; d >= 0; d--) idx[d] = sh[d] ? i % sh[d] : 0, i = sh[d] ? i / sh[d] : 0;
}
static int64_t ravel(int nd, const int64_t *sh, const int64_t *idx) {
  int64_t o = 0;
  for (int d = 0; d < nd; d++) o = o * sh[d] + idx[d];
  return o;
}

typedef double (*binf)(kn_dtype dt, double a, double b);

static ref ref_binary(const ref *a, const ref *b, kn_dtype outdt, kn_dtype opdt, binf f) {
  int nd = a->nd > b->nd ? a->nd : b->nd;
  int64_t sh[KN_MAXDIM];
  for (int i = 0; i < nd; i++) {
    int64_t da = i - (nd - a->nd) >= 0 ? a->sh[i - (nd - a->nd)] : 1;
    int64_t db = i - (nd - b->nd) >= 0 ? b->sh[i - (nd - b->nd)] : 1;
    sh[i] = da == 1 ? db : da;
  }
  ref r = mk(outdt, nd, sh);
  int64_t idx[KN_MAXDIM], ia[KN_MAXDIM], ib[KN_MAXDIM];
  for (int64_t i = 0; i < numel(&r); i++) {
    unravel(i, nd, sh, idx);
    for (int d = 0; d < a->nd; d++) ia[d] = a->sh[d] == 1 ? 0 : idx[d + nd - a->nd];
    for (int d = 0; d < b->nd; d++) ib[d] = b->sh[d] == 1 ? 0 : idx[d + nd - b->nd];
    double x = fit(opdt, a->v[ravel(a->nd, a->sh, ia)]), y = fit(opdt, b->v[ravel(b->nd, b->sh, ib)]);
    r.v[i] = fit(outdt, f(opdt, x, y));
  }
  return r;
}

static int bits(kn_dtype dt) { return kn_dtype_get(dt)->itemsize * 8; }
static int64_t as_i(kn_dtype dt, double x) { return (int64_t)x; }
static double f_add(kn_dtype dt, double a, double b) { return a + b; }
static double f_sub(kn_dtype dt, double a, double b) { return a - b; }
static double f_mul(kn_dtype dt, double a, double b) { return kn_dtype_is_float(dt) ? (double)((float)a * (float)b) : a * b; }
static double f_div(kn_dtype dt, double a, double b) {
  return kn_dtype_is_float(dt) ? a / b : (double)(as_i(dt, a) / as_i(dt, b));
}
static double f_mod(kn_dtype dt, double a, double b) { return (double)(as_i(dt, a) % as_i(dt, b)); }
static double f_max(kn_dtype dt, double a, double b) { return a > b ? a : b; }
static double f_min(kn_dtype dt, double a, double b) { return a < b ? a : b; }
static double f_lt(kn_dtype dt, double a, double b) { return a < b; }
static double f_gt(kn_dtype dt, double a, double b) { return a > b; }
static double f_le(kn_dtype dt, double a, double b) { return a <= b; }
static double f_ge(kn_dtype dt, double a, double b) { return a >= b; }
static double f_eq(kn_dtype dt, double a, double b) { return a == b; }
static double f_ne(kn_dtype dt, double a, double b) { return a != b; }
static double f_and(kn_dtype dt, double a, double b) { return (double)(as_i(dt, a) & as_i(dt, b)); }
static double f_or(kn_dtype dt, double a, double b) { return (double)(as_i(dt, a) | as_i(dt, b)); }
static double f_xor(kn_dtype dt, double a, double b) { return (double)(as_i(dt, a) ^ as_i(dt, b)); }
static double f_shl(kn_dtype dt, double a, double b) { return (double)(int64_t)((uint64_t)as_i(dt, a) << as_i(dt, b)); }
static double f_shr(kn_dtype dt, double a, double b) {
  int64_t x = as_i(dt, a);
  return kn_dtype_get(dt)->is_signed ? (double)(x >> as_i(dt, b)) : (double)((uint64_t)x >> as_i(dt, b));
}
static double f_pow(kn_dtype dt, double a, double b) { return pow(a, b); }

typedef struct {
  const char *name;
  kn_t (*op)(kn_t, kn_t);
  binf f;
  int kind; /* 0 arith, 1 compare, 2 int/bool logic, 3 int only (shifts, mod), 4 float only */
} binop;

static const binop binops[] = {
  {"add", kn_add, f_add, 0}, {"sub", kn_sub, f_sub, 0}, {"mul", kn_mul, f_mul, 0}, {"div", kn_div, f_div, 0},
  {"maximum", kn_maximum, f_max, 0}, {"minimum", kn_minimum, f_min, 0}, {"lt", kn_lt, f_lt, 1},
  {"gt", kn_gt, f_gt, 1}, {"le", kn_le, f_le, 1}, {"ge", kn_ge, f_ge, 1}, {"eq", kn_eq, f_eq, 1},
  {"ne", kn_ne, f_ne, 1}, {"and", kn_and, f_and, 2}, {"or", kn_or, f_or, 2}, {"xor", kn_xor, f_xor, 2},
  {"shl", kn_shl, f_shl, 3}, {"shr", kn_shr, f_shr, 3}, {"mod", kn_mod, f_mod, 3}, {"pow", kn_pow, f_pow, 4},
};

static void random_shape(int *nd, int64_t *sh, int maxnd, int64_t maxdim) {
  *nd = (int)irand(1, maxnd);
  for (int i = 0; i < *nd; i++) sh[i] = irand(1, maxdim);
}

/* b's shape: a's with some axes set to 1 and maybe leading axes dropped (broadcasting) */
static void bcast_shape(int nd, const int64_t *sh, int *nd2, int64_t *sh2) {
  int drop = (int)irand(0, nd - 1);
  *nd2 = nd - drop;
  for (int i = 0; i < *nd2; i++) sh2[i] = (rnd() % 3 == 0) ? 1 : sh[i + drop];
}

static void test_binary(void) {
  const kn_dtype dts[] = {KN_F32, KN_F16, KN_BF16, KN_I8, KN_U8, KN_I16, KN_I32, KN_U32, KN_I64, KN_BOOL};
  for (size_t o = 0; o < sizeof binops / sizeof *binops; o++)
    for (size_t d = 0; d < sizeof dts / sizeof *dts; d++) {
      const binop *op = &binops[o];
      kn_dtype dt = dts[d];
      bool fl = kn_dtype_is_float(dt), bo = dt == KN_BOOL;
      if ((op->kind == 2 && fl) || (op->kind == 3 && (fl || bo)) || (op->kind == 4 && !fl)) continue;
      if (bo && (op->kind == 0 || op->kind == 1) && strcmp(op->name, "eq") && strcmp(op->name, "ne") &&
          strcmp(op->name, "maximum") && strcmp(op->name, "minimum"))
        continue;
      if (dt == KN_BF16 && op->kind != 0 && op->kind != 1) continue;
      int nd, nd2;
      int64_t sh[KN_MAXDIM], sh2[KN_MAXDIM];
      random_shape(&nd, sh, 4, 9);
      bcast_shape(nd, sh, &nd2, sh2);
      bool swap = rnd() & 1;
      bool pos = !strcmp(op->name, "div") || !strcmp(op->name, "mod") || !strcmp(op->name, "pow");
      ref a = rand_ref(dt, nd, sh, !strcmp(op->name, "pow")), b = rand_ref(dt, nd2, sh2, pos);
      if (op->kind == 3 && strcmp(op->name, "mod"))
        for (int64_t i = 0; i < numel(&b); i++) b.v[i] = (double)irand(0, bits(dt) - 1);
      if (!strcmp(op->name, "pow"))
        for (int64_t i = 0; i < numel(&b); i++) b.v[i] = fit(dt, urand(-2, 2));
      if (!strcmp(op->name, "shl"))
        for (int64_t i = 0; i < numel(&a); i++) a.v[i] = fabs(a.v[i]);
      const ref *x = swap && op->kind != 3 && !pos ? &b : &a, *y = swap && op->kind != 3 && !pos ? &a : &b;
      kn_dtype outdt = op->kind == 1 ? KN_BOOL : dt;
      ref want = ref_binary(x, y, outdt, dt, op->f);
      snprintf(casename, sizeof casename, "binary %s %s", op->name, kn_dtype_name(dt));
      check(op->op(dev(x), dev(y)), &want, op->f == f_pow ? 2e-5 : 1e-6);
      free(a.v), free(b.v), free(want.v);
    }
}

typedef struct {
  const char *name;
  kn_t (*op)(kn_t);
  double (*f)(double);
  int domain; /* 0 any, 1 positive, 2 int too */
  double tol;
} unop;

static double u_neg(double x) { return -x; }
static double u_recip(double x) { return 1 / x; }
static double u_rsqrt(double x) { return 1 / sqrt(x); }
static double u_exp2(double x) { return exp2(x); }
static double u_sig(double x) { return 1 / (1 + exp(-x)); }
static double u_relu(double x) { return x > 0 ? x : 0; }
static double u_sq(double x) { return x * x; }
static double u_not(double x) { return !x; }

static const unop unops[] = {
  {"neg", kn_neg, u_neg, 2, 1e-6}, {"recip", kn_recip, u_recip, 1, 1e-6}, {"sqrt", kn_sqrt, sqrt, 1, 1e-6},
  {"rsqrt", kn_rsqrt, u_rsqrt, 1, 1e-6}, {"exp", kn_exp, exp, 0, 1e-5}, {"exp2", kn_exp2, u_exp2, 0, 1e-5},
  {"log", kn_log, log, 1, 1e-5}, {"log2", kn_log2, log2, 1, 1e-5}, {"sin", kn_sin, sin, 0, 1e-5},
  {"cos", kn_cos, cos, 0, 1e-5}, {"tanh", kn_tanh, tanh, 0, 1e-5}, {"sigmoid", kn_sigmoid, u_sig, 0, 1e-5},
  {"relu", kn_relu, u_relu, 2, 1e-6}, {"abs", kn_abs, fabs, 2, 1e-6}, {"trunc", kn_trunc, trunc, 0, 1e-6},
  {"floor", kn_floor, floor, 0, 1e-6}, {"square", kn_square, u_sq, 2, 1e-6},
};

static void test_unary(void) {
  const kn_dtype dts[] = {KN_F32, KN_F16, KN_I32, KN_I8};
  for (size_t o = 0; o < sizeof unops / sizeof *unops; o++)
    for (size_t d = 0; d < sizeof dts / sizeof *dts; d++)
      for (int rep = 0; rep < 2; rep++) {
        const unop *op = &unops[o];
        kn_dtype dt = dts[d];
        if (!kn_dtype_is_float(dt) && op->domain != 2) continue;
        int nd;
        int64_t sh[KN_MAXDIM];
        random_shape(&nd, sh, 3, rep ? 40 : 7);
        ref a = rand_ref(dt, nd, sh, op->domain == 1), want = mk(dt, nd, sh);
        if (!strcmp(op->name, "sin") || !strcmp(op->name, "cos"))
          for (int64_t i = 0; i < numel(&a); i++) a.v[i] = fit(dt, urand(-40, 40));
        for (int64_t i = 0; i < numel(&a); i++) want.v[i] = fit(dt, op->f(a.v[i]));
        snprintf(casename, sizeof casename, "unary %s %s", op->name, kn_dtype_name(dt));
        check(op->op(dev(&a)), &want, op->tol);
        free(a.v), free(want.v);
      }
  for (int rep = 0; rep < 3; rep++) { /* logical not on bool and ints */
    kn_dtype dt = rep == 0 ? KN_BOOL : rep == 1 ? KN_I32 : KN_U8;
    int64_t sh[1] = {irand(1, 50)};
    ref a = rand_ref(dt, 1, sh, false), want = mk(dt, 1, sh);
    for (int64_t i = 0; i < sh[0]; i++) want.v[i] = dt == KN_BOOL ? u_not(a.v[i]) : fit(dt, (double)~(int64_t)a.v[i]);
    snprintf(casename, sizeof casename, "not %s", kn_dtype_name(dt));
    check(kn_not(dev(&a)), &want, 0);
    free(a.v), free(want.v);
  }
}

static void test_where_cast(void) {
  const kn_dtype dts[] = {KN_BOOL, KN_I8, KN_U8, KN_I16, KN_U16, KN_I32, KN_U32, KN_I64, KN_F16, KN_BF16, KN_F32};
  int n = sizeof dts / sizeof *dts;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      int64_t sh[2] = {irand(1, 6), irand(1, 33)};
      ref a = rand_ref(dts[i], 2, sh, false), want = mk(dts[j], 2, sh);
      for (int64_t k = 0; k < numel(&a); k++) {
        double x = a.v[k];
        if (!kn_dtype_is_float(dts[j]) && dts[j] != KN_BOOL) x = trunc(x);
        if (!kn_dtype_get(dts[j])->is_signed && dts[j] != KN_BOOL && x < 0) x = -x, a.v[k] = fit(dts[i], -a.v[k]);
        want.v[k] = fit(dts[j], x);
      }
      snprintf(casename, sizeof casename, "cast %s -> %s", kn_dtype_name(dts[i]), kn_dtype_name(dts[j]));
      check(kn_cast(dev(&a), dts[j]), &want, 0);
      free(a.v), free(want.v);
    }
  const kn_dtype pairs[][2] = {{KN_F32, KN_I32}, {KN_I32, KN_F32}, {KN_F32, KN_U32}, {KN_F16, KN_I16}, {KN_U16, KN_F16}, {KN_I8, KN_U8}};
  for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
    int64_t sh[1] = {irand(1, 40)};
    ref a = rand_ref(pairs[p][0], 1, sh, true), want = mk(pairs[p][1], 1, sh);
    size_t isz = kn_dtype_get(pairs[p][0])->itemsize;
    unsigned char *raw = malloc(isz * sh[0]);
    pack(pairs[p][0], a.v, sh[0], raw);
    for (int64_t k = 0; k < sh[0]; k++) want.v[k] = unpack1(pairs[p][1], raw, k);
    free(raw);
    snprintf(casename, sizeof casename, "bitcast %s -> %s", kn_dtype_name(pairs[p][0]), kn_dtype_name(pairs[p][1]));
    check(kn_bitcast(dev(&a), pairs[p][1]), &want, 0);
    free(a.v), free(want.v);
  }
  for (int rep = 0; rep < 12; rep++) {
    kn_dtype dt = dts[rep % n];
    int nd;
    int64_t sh[KN_MAXDIM], sh2[KN_MAXDIM];
    int nd2;
    random_shape(&nd, sh, 3, 8);
    bcast_shape(nd, sh, &nd2, sh2);
    ref c = rand_ref(KN_BOOL, nd2, sh2, false), a = rand_ref(dt, nd, sh, false), b = rand_ref(dt, nd, sh, false);
    ref want = mk(dt, nd, sh);
    int64_t idx[KN_MAXDIM], ic[KN_MAXDIM];
    for (int64_t k = 0; k < numel(&a); k++) {
      unravel(k, nd, sh, idx);
      for (int d = 0; d < nd2; d++) ic[d] = sh2[d] == 1 ? 0 : idx[d + nd - nd2];
      want.v[k] = c.v[ravel(nd2, sh2, ic)] ? a.v[k] : b.v[k];
    }
    snprintf(casename, sizeof casename, "where %s", kn_dtype_name(dt));
    check(kn_where(dev(&c), dev(&a), dev(&b)), &want, 0);
    free(c.v), free(a.v), free(b.v), free(want.v);
  }
}

/* ---------- movement: random chains applied to a tensor and its reference ---------- */
typedef struct {
  int nd;
  int64_t sh[KN_MAXDIM];
  /* source index for each output index: computed by composing maps; -1 = padding */
  int64_t *src;
} vref;

static vref vr_new(int nd, const int64_t *sh) {
  vref v = {nd, {0}, NULL};
  memcpy(v.sh, sh, nd * sizeof *sh);
  int64_t n = kn_shape_numel(nd, sh);
  v.src = malloc((n ? n : 1) * sizeof *v.src);
  for (int64_t i = 0; i < n; i++) v.src[i] = i;
  return v;
}

static char move_log[256];

static kn_t random_move(kn_t t, vref *v) {
  int kind = (int)irand(0, 5);
  size_t ml = strlen(move_log);
  snprintf(move_log + ml, sizeof move_log - ml, "%s%s", ml ? "," : "", (const char *[]){"reshape", "permute", "pad", "shrink", "flip", "expand"}[kind]);
  int nd = v->nd;
  int64_t n = kn_shape_numel(nd, v->sh), idx[KN_MAXDIM], j[KN_MAXDIM];
  vref o = {nd, {0}, NULL};
  memcpy(o.sh, v->sh, sizeof o.sh);
  if (kind == 0) { /* reshape: split or merge axes */
    int64_t ns[KN_MAXDIM];
    int nn = 0;
    for (int i = 0; i < nd; i++) {
      if (v->sh[i] % 2 == 0 && v->sh[i] > 2 && nn < 6 && (rnd() & 1)) ns[nn++] = 2, ns[nn++] = v->sh[i] / 2;
      else if (i + 1 < nd && (rnd() & 1)) ns[nn++] = v->sh[i] * v->sh[i + 1], i++;
      else ns[nn++] = v->sh[i];
    }
    o.nd = nn;
    memcpy(o.sh, ns, sizeof ns);
    o.src = malloc((n ? n : 1) * sizeof *o.src);
    memcpy(o.src, v->src, n * sizeof *o.src);
    t = kn_reshape(t, nn, ns);
  } else if (kind == 1) { /* permute */
    int order[KN_MAXDIM];
    for (int i = 0; i < nd; i++) order[i] = i;
    for (int i = nd - 1; i > 0; i--) {
      int k = (int)irand(0, i), tmp = order[i];
      order[i] = order[k], order[k] = tmp;
    }
    for (int i = 0; i < nd; i++) o.sh[i] = v->sh[order[i]];
    o.src = malloc((n ? n : 1) * sizeof *o.src);
    for (int64_t i = 0; i < n; i++) {
      unravel(i, nd, o.sh, idx);
      for (int d = 0; d < nd; d++) j[order[d]] = idx[d];
      o.src[i] = v->src[ravel(nd, v->sh, j)];
    }
    t = kn_permute(t, order);
  } else if (kind == 2) { /* pad */
    int64_t b[KN_MAXDIM], a[KN_MAXDIM];
    for (int i = 0; i < nd; i++) b[i] = irand(0, 2), a[i] = irand(0, 2), o.sh[i] = v->sh[i] + b[i] + a[i];
    int64_t m = kn_shape_numel(nd, o.sh);
    o.src = malloc(m * sizeof *o.src);
    for (int64_t i = 0; i < m; i++) {
      unravel(i, nd, o.sh, idx);
      bool in = true;
      for (int d = 0; d < nd; d++) j[d] = idx[d] - b[d], in &= j[d] >= 0 && j[d] < v->sh[d];
      o.src[i] = in ? v->src[ravel(nd, v->sh, j)] : -1;
    }
    t = kn_pad(t, b, a);
  } else if (kind == 3) { /* shrink */
    int64_t b[KN_MAXDIM], e[KN_MAXDIM];
    for (int i = 0; i < nd; i++) b[i] = irand(0, (v->sh[i] - 1) / 2), e[i] = irand(b[i] + 1, v->sh[i]), o.sh[i] = e[i] - b[i];
    int64_t m = kn_shape_numel(nd, o.sh);
    o.src = malloc(m * sizeof *o.src);
    for (int64_t i = 0; i < m; i++) {
      unravel(i, nd, o.sh, idx);
      for (int d = 0; d < nd; d++) j[d] = idx[d] + b[d];
      o.src[i] = v->src[ravel(nd, v->sh, j)];
    }
    t = kn_shrink(t, b, e);
  } else if (kind == 4) { /* flip */
    int ax = (int)irand(0, nd - 1);
    o.src = malloc((n ? n : 1) * sizeof *o.src);
    for (int64_t i = 0; i < n; i++) {
      unravel(i, nd, o.sh, idx);
      memcpy(j, idx, sizeof j);
      j[ax] = v->sh[ax] - 1 - idx[ax];
      o.src[i] = v->src[ravel(nd, v->sh, j)];
    }
    t = kn_flip(t, ax);
  } else { /* expand a size-1 axis (after inserting one) */
    int ax = (int)irand(0, nd);
    if (nd >= 6) ax = -1;
    int64_t us[KN_MAXDIM], es[KN_MAXDIM];
    int un = 0;
    for (int i = 0; i <= nd; i++) {
      if (i == ax) us[un++] = 1;
      if (i < nd) us[un++] = v->sh[i];
    }
    memcpy(es, us, sizeof es);
    if (ax >= 0) es[ax] = irand(2, 3);
    o.nd = un;
    memcpy(o.sh, es, sizeof es);
    int64_t m = kn_shape_numel(un, es);
    o.src = malloc(m * sizeof *o.src);
    for (int64_t i = 0; i < m; i++) {
      unravel(i, un, es, idx);
      int k = 0;
      for (int d = 0; d < un; d++)
        if (d != ax) j[k++] = idx[d];
      o.src[i] = v->src[ravel(nd, v->sh, j)];
    }
    t = kn_expand(kn_reshape(t, un, us), un, es);
  }
  free(v->src);
  *v = o;
  return t;
}

static void test_movement(void) {
  const kn_dtype dts[] = {KN_F32, KN_I32, KN_F16, KN_U8};
  for (int rep = 0; rep < 100; rep++) {
    kn_dtype dt = dts[rep % 4];
    int nd;
    int64_t sh[KN_MAXDIM];
    random_shape(&nd, sh, 4, 6);
    ref a = rand_ref(dt, nd, sh, true);
    kn_t t = dev(&a);
    vref v = vr_new(nd, sh);
    int steps = (int)irand(1, 5);
    move_log[0] = 0;
    for (int s = 0; s < steps; s++) t = random_move(t, &v);
    /* half the cases realize the view directly, half through an elementwise op (fused view) */
    bool through_op = rep & 1;
    ref want = mk(dt, v.nd, v.sh);
    for (int64_t i = 0; i < kn_shape_numel(v.nd, v.sh); i++)
      want.v[i] = v.src[i] < 0 ? (through_op ? 1 : 0) : fit(dt, a.v[v.src[i]] + (through_op ? 1 : 0));
    if (through_op) t = kn_add(t, kn_scalar(dt, 1)); /* the padding is 0 before the add, 1 after */
    snprintf(casename, sizeof casename, "movement chain %d (%s, %s)", rep, move_log, kn_dtype_name(dt));
    check(kn_contiguous(t), &want, 0);
    free(a.v), free(want.v), free(v.src);
  }
  /* padding applied to an expression must be zero at the padding, not f(0) */
  for (int rep = 0; rep < 10; rep++) {
    int64_t sh[2] = {irand(1, 5), irand(1, 7)}, b[2] = {irand(0, 2), irand(1, 2)}, af[2] = {irand(0, 2), 0};
    ref a = rand_ref(KN_F32, 2, sh, false);
    int64_t osh[2] = {sh[0] + b[0] + af[0], sh[1] + b[1] + af[1]};
    ref want = mk(KN_F32, 2, osh);
    for (int64_t i = 0; i < osh[0]; i++)
      for (int64_t k = 0; k < osh[1]; k++) {
        int64_t si = i - b[0], sk = k - b[1];
        bool in = si >= 0 && si < sh[0] && sk >= 0 && sk < sh[1];
        want.v[i * osh[1] + k] = in ? fit(KN_F32, exp(a.v[si * sh[1] + sk]) + 2) : 0;
      }
    snprintf(casename, sizeof casename, "pad of exp(x)+2 %d", rep);
    check(kn_pad(kn_adds(kn_exp(dev(&a)), 2), b, af), &want, 1e-5);
    free(a.v), free(want.v);
  }
}

/* ---------- reductions ---------- */
static void test_reduce(void) {
  const kn_dtype dts[] = {KN_F32, KN_I32, KN_F16, KN_U8, KN_I8};
  for (int rep = 0; rep < 70; rep++) {
    kn_dtype dt = dts[rep % 5];
    int which = (rep / 5) % 4; /* sum max prod mean */
    if (which == 3 && !kn_dtype_is_float(dt)) which = 0;
    int nd;
    int64_t sh[KN_MAXDIM];
    random_shape(&nd, sh, 4, which == 2 ? 4 : 12);
    int axes[KN_MAXDIM], na = 0;
    for (int i = 0; i < nd; i++)
      if (rnd() & 1) axes[na++] = i;
    if (!na) axes[na++] = (int)irand(0, nd - 1);
    bool keep = rnd() & 1;
    ref a = rand_ref(dt, nd, sh, which == 2);
    if (which == 2 && kn_dtype_is_float(dt))
      for (int64_t i = 0; i < numel(&a); i++) a.v[i] = fit(dt, urand(0.5, 1.5));
    if (which == 2 && !kn_dtype_is_float(dt))
      for (int64_t i = 0; i < numel(&a); i++) a.v[i] = (double)irand(1, 2);
    uint32_t mask = 0;
    for (int i = 0; i < na; i++) mask |= 1u << axes[i];
    int64_t osh[KN_MAXDIM], ksh[KN_MAXDIM];
    int ond = 0;
    for (int i = 0; i < nd; i++) {
      ksh[i] = (mask >> i & 1) ? 1 : sh[i];
      if (!(mask >> i & 1) || keep) osh[ond++] = ksh[i];
    }
    kn_dtype odt = dt;
    if (which == 0 || which == 2) odt = dt == KN_I8 ? KN_I32 : dt == KN_U8 ? KN_U32 : dt;
    ref want = mk(which == 3 ? dt : odt, ond, osh);
    int64_t cnt = numel(&a) / kn_shape_numel(nd, ksh);
    for (int64_t i = 0; i < numel(&want); i++) want.v[i] = which == 1 ? -INFINITY : which == 2 ? 1 : 0;
    int64_t idx[KN_MAXDIM];
    for (int64_t i = 0; i < numel(&a); i++) {
      unravel(i, nd, sh, idx);
      for (int d = 0; d < nd; d++)
        if (mask >> d & 1) idx[d] = 0;
      int64_t o = ravel(nd, ksh, idx);
      if (which == 1) want.v[o] = want.v[o] > a.v[i] ? want.v[o] : a.v[i];
      else if (which == 2) want.v[o] *= a.v[i];
      else want.v[o] += a.v[i];
    }
    for (int64_t i = 0; i < numel(&want); i++) {
      if (which == 3) want.v[i] /= (double)cnt;
      want.v[i] = fit(want.dt, want.v[i]);
    }
    kn_t t = dev(&a), r;
    const char *nm = which == 0 ? "sum" : which == 1 ? "max" : which == 2 ? "prod" : "mean";
    if (which == 0) r = kn_sum(t, na, axes, keep);
    else if (which == 1) r = kn_max(t, na, axes, keep);
    else if (which == 2) r = kn_prod(t, na, axes, keep);
    else r = kn_mean(t, na, axes, keep);
    snprintf(casename, sizeof casename, "%s over %d of %d axes %s keepdim=%d", nm, na, nd, kn_dtype_name(dt), keep);
    check(r, &want, 2e-5);
    free(a.v), free(want.v);
  }
  /* a reduce of an elementwise expression of a permuted view (prologue fusion) and an epilogue */
  for (int rep = 0; rep < 10; rep++) {
    int64_t sh[3] = {irand(1, 9), irand(1, 9), irand(1, 9)};
    ref a = rand_ref(KN_F32, 3, sh, false), b = rand_ref(KN_F32, 3, sh, false);
    int order[3] = {2, 0, 1}, ax = (int)irand(0, 2);
    int64_t psh[3] = {sh[2], sh[0], sh[1]};
    int64_t osh[3];
    memcpy(osh, psh, sizeof osh);
    osh[ax] = 1;
    ref want = mk(KN_F32, 3, osh);
    int64_t idx[3], p[3];
    for (int64_t i = 0; i < kn_shape_numel(3, psh); i++) {
      unravel(i, 3, psh, p);
      idx[0] = p[1], idx[1] = p[2], idx[2] = p[0];
      int64_t s = ravel(3, sh, idx);
      p[ax] = 0;
      want.v[ravel(3, osh, p)] += a.v[s] * b.v[s];
    }
    for (int64_t i = 0; i < numel(&want); i++) want.v[i] = fit(KN_F32, want.v[i] * 0.5 + 1);
    kn_t prod = kn_mul(kn_permute(dev(&a), order), kn_permute(dev(&b), order));
    snprintf(casename, sizeof casename, "fused reduce of permuted product, axis %d", ax);
    check(kn_adds(kn_muls(kn_sum(prod, 1, &ax, true), 0.5), 1), &want, 1e-5);
    free(a.v), free(b.v), free(want.v);
  }
}

static void test_matmul(void) {
  for (int rep = 0; rep < 24; rep++) {
    int64_t m = irand(1, 40), k = irand(1, 70), n = irand(1, 40), batch = rep % 3 == 2 ? irand(2, 3) : 0;
    kn_dtype dt = rep % 4 == 3 ? KN_F16 : KN_F32;
    int64_t sa[3], sb[2];
    int nda = 0;
    if (batch) sa[nda++] = batch;
    sa[nda++] = m, sa[nda++] = k;
    sb[0] = k, sb[1] = n;
    ref a = rand_ref(dt, nda, sa, false), b = rand_ref(dt, 2, sb, false);
    int64_t so[3];
    int ndo = 0;
    if (batch) so[ndo++] = batch;
    so[ndo++] = m, so[ndo++] = n;
    ref want = mk(dt, ndo, so);
    for (int64_t z = 0; z < (batch ? batch : 1); z++)
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
          double s = 0;
          for (int64_t q = 0; q < k; q++) s += a.v[(z * m + i) * k + q] * b.v[q * n + j];
          want.v[(z * m + i) * n + j] = fit(dt, s);
        }
    snprintf(casename, sizeof casename, "matmul %s%lldx%lldx%lld %s", batch ? "batched " : "", (long long)m,
             (long long)k, (long long)n, kn_dtype_name(dt));
    check(kn_matmul(dev(&a), dev(&b)), &want, 1e-5 * (double)(k > 10 ? k / 10 : 1));
    free(a.v), free(b.v), free(want.v);
  }
}

static void test_creation(void) {
  for (int rep = 0; rep < 6; rep++) {
    kn_dtype dt = rep % 2 ? KN_I32 : KN_F32;
    int64_t n = irand(1, 300);
    ref want = mk(dt, 1, &n);
    for (int64_t i = 0; i < n; i++) want.v[i] = (double)i;
    snprintf(casename, sizeof casename, "arange %lld %s", (long long)n, kn_dtype_name(dt));
    check(kn_arange(n, dt), &want, 0);
    free(want.v);
    int64_t sh[2] = {irand(1, 9), irand(1, 9)};
    double val = (double)irand(-50, 50);
    ref w2 = mk(dt, 2, sh);
    for (int64_t i = 0; i < numel(&w2); i++) w2.v[i] = val;
    snprintf(casename, sizeof casename, "full %g %s", val, kn_dtype_name(dt));
    check(kn_contiguous(kn_full(dt, val, 2, sh)), &w2, 0);
    free(w2.v);
  }
  /* rand: in [0,1), mean near 0.5, different seeds differ, same seed repeats */
  int64_t sh[2] = {64, 129};
  int64_t n = sh[0] * sh[1];
  float *x = malloc(n * 4), *y = malloc(n * 4), *z = malloc(n * 4);
  snprintf(casename, sizeof casename, "rand");
  bool ok = !kn_to_host(kn_rand(2, sh, 7), x, n * 4) && !kn_to_host(kn_rand(2, sh, 7), y, n * 4) &&
            !kn_to_host(kn_rand(2, sh, 8), z, n * 4);
  double mean = 0;
  int same = 0, diff = 0;
  for (int64_t i = 0; ok && i < n; i++) {
    ok &= x[i] >= 0 && x[i] < 1;
    mean += x[i];
    same += x[i] == y[i];
    diff += x[i] != z[i];
  }
  mean /= (double)n;
  ok &= fabs(mean - 0.5) < 0.02 && same == n && diff > n * 0.99;
  if (ok) passed++;
  else failed++, printf("FAIL rand: mean %.4f, repeat %d/%lld, seed change %d\n", mean, same, (long long)n, diff);
  free(x), free(y), free(z);
}

int main(void) {
  char err[256];
  kn_device *d = kn_device_open(NULL, err, sizeof err); /* $DEVICE, else CPU */
  if (!d) {
    printf("cannot open the CPU device: %s\n", err);
    return 1;
  }
  kn_ctx *c = kn_ctx_new(d);
  kn_ctx_set(c);
  test_binary();
  test_unary();
  test_where_cast();
  test_movement();
  test_reduce();
  test_matmul();
  test_creation();
  printf("%d passed, %d failed\n", passed, failed);
  kn_ctx_free(c);
  kn_device_close(d);
  return failed ? 1 : 0;
}
