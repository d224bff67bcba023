/* codegen end to end: kernel ASTs built by hand (every ALU op and dtype, casts, bitcasts, views with permutes,
 * masks, multi-view chains and symbolic offsets, reductions, IDX, VAR, gathers, matmul shapes, quantized-weight
 * GEMV/GEMM for every block format) on random shapes and data, compiled with kn_compile, run on the CPU device and
 * compared with a plain C interpreter of the same AST. Each case runs optimized and with NOOPT=1. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "codegen/loopir.h"
#include "device/base/env.h"
#include "device/device.h"
#include "tests/kernel_ref.h"
#include "tests/ref_quant.h"
#include "check.h"

static kn_device *dev;
static uint64_t rs = 0x243f6a8885a308d3ull;

static uint64_t rnd(void) { return kn_ref_rand(&rs); }
static int64_t rint_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }
static float runif(float lo, float hi) { return lo + (hi - lo) * kn_ref_uniform(&rs); }

/* ---------------- running a case ---------------- */

#define GUARD 64

typedef struct {
  char name[96];
  kn_kernel *k;
  void *host[KN_MAXBUFS];
  size_t bytes[KN_MAXBUFS];
  int64_t vars[KN_MAXVARS];
  double rtol, atol;
} tcase;

static void fill_buf(kn_dtype dt, void *p, int64_t n, float lo, float hi) {
  if (kn_dtype_is_quant(dt)) {
    kn_ref_fill_random(dt, p, n, &rs);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    float f = runif(lo, hi);
    switch (dt) {
    case KN_F32: ((float *)p)[i] = f; break;
    case KN_F16: ((uint16_t *)p)[i] = kn_ref_f32_to_f16(f); break;
    case KN_BF16: ((uint16_t *)p)[i] = kn_ref_f32_to_bf16(f); break;
    case KN_BOOL: ((uint8_t *)p)[i] = rnd() & 1; break;
    case KN_I8: case KN_U8: ((uint8_t *)p)[i] = (uint8_t)rnd(); break;
    case KN_I16: case KN_U16: ((uint16_t *)p)[i] = (uint16_t)rnd(); break;
    case KN_I32: case KN_U32: ((uint32_t *)p)[i] = (uint32_t)rnd(); break;
    default: ((uint64_t *)p)[i] = rnd(); break;
    }
  }
}

static tcase *tc_new(const char *fmt, ...) {
  tcase *c = calloc(1, sizeof *c);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->name, sizeof c->name, fmt, ap);
  va_end(ap);
  c->k = kn_kernel_new();
  c->rtol = 1e-5, c->atol = 1e-6;
  return c;
}

/* Declare buffer i of n elements, filled with random values in [lo, hi) (ints: random bits). */
static void tc_buf(tcase *c, int i, kn_dtype dt, int64_t n, float lo, float hi) {
  c->k->bufs[i] = (kn_kbuf){dt, n};
  if (c->k->nbufs <= i) c->k->nbufs = i + 1;
  int64_t nb = kn_dtype_nbytes(dt, n);
  c->bytes[i] = (size_t)nb;
  c->host[i] = aligned_alloc(64, ((size_t)nb + GUARD + 63) / 64 * 64);
  fill_buf(dt, c->host[i], n, lo, hi);
  memset((char *)c->host[i] + nb, 0xA5, GUARD);
}

static void tc_free(tcase *c) {
  for (int i = 0; i < KN_MAXBUFS; i++) free(c->host[i]);
  kn_kernel_free(c->k);
  free(c);
}

static bool close_enough(kn_dtype dt, val got, val want, double rtol, double atol) {
  if (!kn_dtype_is_float(dt)) return got.i == want.i;
  if (isnan(want.f)) return isnan(got.f);
  if (isinf(want.f)) return got.f == want.f;
  return fabs(got.f - want.f) <= atol + rtol * fabs(want.f);
}

#define fail fail_line

/* Compile, launch and compare; returns true when every output element matches. */
/* A GPU whose queue faulted stays faulted (as the hardware's does): the next case gets a fresh device. */
static void reopen_device(void) {
  char err[256];
  kn_device_close(dev);
  if (!(dev = kn_device_open(NULL, err, sizeof err))) {
    printf("FAIL: cannot reopen the device: %s\n", err);
    exit(1);
  }
}

static bool reads_buf(const kn_kop *o, int b) {
  if (!o) return false;
  if (o->op == KN_KOP_LOAD && o->buf == b) return true;
  for (int i = 0; i < o->nsrc; i++)
    if (reads_buf(o->src[i], b)) return true;
  return false;
}

/* Launches p over n host arrays (buffer 0 the output): wrapped where the device takes host memory (the CPU), else
 * device buffers with the inputs copied in and the output copied back. false, with err, on any failure. */
static bool launch_host(kn_program *p, const kn_compiled *comp, void *const *host, const size_t *bytes, int n,
                        const int64_t *vars, int nvars, char *err, size_t errlen) {
  kn_buf *bufs[KN_MAXBUFS] = {0};
  bool ok = n <= KN_MAXBUFS, copied = false;
  for (int i = 0; ok && i < n; i++)
    if (!(bufs[i] = kn_buf_wrap_host(dev, host[i], bytes[i]))) {
      copied = true;
      ok = (bufs[i] = kn_buf_alloc(dev, bytes[i], err, errlen)) && !kn_buf_copyin(bufs[i], 0, host[i], bytes[i]);
    }
  ok = ok && !kn_program_launch(p, bufs, n, vars, nvars, comp->global, comp->local, err, errlen);
  if (kn_device_sync(dev)) ok = false;
  if (ok && copied && kn_buf_copyout(bufs[0], 0, host[0], bytes[0])) ok = false, snprintf(err, errlen, "copy out");
  for (int i = 0; i < n; i++) kn_buf_free(bufs[i]);
  return ok;
}

static bool run_once(tcase *c, const char *mode) {
  kn_kernel *k = c->k;
  char err[512] = "";
  /* an output the kernel does not read starts as NaN (all ones: -1 in integers), so an element it should write and
   * does not shows; in-place kernels keep their random contents (and the check below that elements the kernel must
   * not write stay unchanged) */
  if (k->kind == KN_KERNEL_EXPR && !reads_buf(k->root, 0)) memset(c->host[0], 0xff, c->bytes[0]);
  kn_compiled comp;
  if (kn_compile(k, kn_device_target(dev), &comp, err, sizeof err)) {
    fail("%s [%s]: compile: %s", c->name, mode, err);
    return false;
  }
  size_t ob = c->bytes[0];
  unsigned char *out0 = malloc(ob + GUARD);
  memcpy(out0, c->host[0], ob + GUARD);
  kn_program *p = kn_program_load(dev, comp.entry, comp.obj, comp.obj_size, err, sizeof err);
  bool ok = p != NULL;
  if (!p) fail("%s [%s]: load: %s", c->name, mode, err);
  kn_buf *bufs[KN_MAXBUFS] = {0};
  bool copied = false; /* a GPU: device buffers, inputs copied in, the output copied back */
  for (int i = 0; ok && i < k->nbufs; i++)
    if (!(bufs[i] = kn_buf_wrap_host(dev, c->host[i], c->bytes[i]))) {
      copied = true;
      if (!(bufs[i] = kn_buf_alloc(dev, c->bytes[i] ? c->bytes[i] : 1, err, sizeof err)) ||
          kn_buf_copyin(bufs[i], 0, c->host[i], c->bytes[i])) {
        fail("%s [%s]: device buffer %d: %s", c->name, mode, i, err);
        ok = false;
      }
    }
  if (ok && kn_program_launch(p, bufs, k->nbufs, c->vars, k->nvars, comp.global, comp.local, err, sizeof err)) {
    fail("%s [%s %s]: launch: %s", c->name, mode, comp.name, err);
    ok = false;
  }
  if (kn_device_sync(dev)) ok = false;
  if (ok && copied && kn_buf_copyout(bufs[0], 0, c->host[0], c->bytes[0])) {
    fail("%s [%s]: copying the output back failed", c->name, mode);
    ok = false;
  }
  for (int i = 0; i < k->nbufs; i++) kn_buf_free(bufs[i]);
  bool faulted = !ok && copied;
  if (ok && memcmp((char *)c->host[0] + ob, out0 + ob, GUARD)) {
    fail("%s [%s %s]: wrote past the end of the output", c->name, mode, comp.name);
    ok = false;
  }
  /* reference: every output element, written over a copy of the original output */
  int nout = k->ndim - k->nreduce, bad = 0;
  int64_t idx[KN_MAXDIM] = {0};
  kn_kref r = {k, c->host, c->vars};
  void *orig = c->host[0];
  r.host[0] = out0; /* reads of buf0 (in-place kernels) see the original contents */
  kn_dtype odt = k->bufs[0].dtype;
  unsigned char *written = calloc((size_t)k->bufs[0].nelems, 1);
  for (bool more = ok; more;) {
    int64_t L;
    if (kn_kref_index(&k->out_st, idx, c->vars, &L)) {
      val want = kn_kref_eval(&r, k->root, idx), got = kn_kref_read(odt, orig, L);
      if (kn_dtype_is_float(odt)) want = kn_kref_mk(odt, want.f, 0); /* the store rounds */
      written[L] = 1;
      if (!close_enough(odt, got, want, c->rtol, c->atol) && bad++ < 3)
        fail("%s [%s %s]: out[%lld] = %.9g/%lld, want %.9g/%lld", c->name, mode, comp.name, (long long)L, got.f,
             (long long)got.i, want.f, (long long)want.i);
    }
    int a = nout - 1;
    for (; a >= 0; a--) {
      if (++idx[a] < k->shape[a]) break;
      idx[a] = 0;
    }
    more = a >= 0;
  }
  int isz = kn_dtype_get(odt)->itemsize;
  for (int64_t i = 0; ok && i < k->bufs[0].nelems; i++)
    if (!written[i] && memcmp((char *)orig + i * isz, out0 + i * isz, (size_t)isz) && bad++ < 3)
      fail("%s [%s]: out[%lld] changed but the kernel does not write it", c->name, mode, (long long)i);
  r.host[0] = orig;
  memcpy(orig, out0, ob); /* restore for the next mode */
  free(written), free(out0);
  kn_program_free(p);
  kn_compiled_free(&comp);
  if (faulted) reopen_device();
  return ok && bad == 0;
}

static void run(tcase *c) {
  if (!c->k->root) {
    fail("%s: building the kernel failed", c->name);
    failed++;
    tc_free(c);
    return;
  }
  bool a = run_once(c, "opt");
  setenv("NOOPT", "1", 1);
  bool b = run_once(c, "noopt");
  unsetenv("NOOPT");
  if (a && b) passed++;
  else failed++;
  tc_free(c);
}

/* ---------------- view helpers ---------------- */

static kn_st st_strided(int nd, const int64_t *shape, const int64_t *strides, int64_t off) { return kn_kref_st_strided(nd, shape, strides, off); }

static kn_st st_contig(int nd, const int64_t *shape) {
  int64_t st[KN_MAXDIM], s = 1;
  for (int i = nd - 1; i >= 0; i--) st[i] = s, s *= shape[i];
  return st_strided(nd, shape, st, 0);
}

static int64_t numel(int nd, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= shape[i];
  return n;
}

static void rand_shape(int nd, int64_t *shape, int64_t maxd) {
  for (int i = 0; i < nd; i++) shape[i] = rnd() % 3 == 0 ? 16 * rint_in(1, 4) : rint_in(1, maxd);
}

/* out = op(inputs...) over a contiguous shape */
static void set_space(kn_kernel *k, int nd, const int64_t *shape, int nreduce) {
  k->ndim = nd, k->nreduce = nreduce;
  memcpy(k->shape, shape, sizeof(int64_t) * (size_t)nd);
  int64_t os[KN_MAXDIM];
  for (int i = 0; i < nd; i++) os[i] = i < nd - nreduce ? shape[i] : 1;
  k->out_st = st_contig(nd, os);
}

/* ---------------- cases ---------------- */

static const kn_dtype int_types[] = {KN_I8, KN_U8, KN_I16, KN_U16, KN_I32, KN_U32, KN_I64, KN_U64};
static const kn_dtype float_types[] = {KN_F32, KN_F16, KN_BF16};

static void unary_float(kn_kop_type op, kn_dtype dt, float lo, float hi, double rtol, double atol) {
  int nd = (int)rint_in(1, 3);
  int64_t sh[KN_MAXDIM];
  rand_shape(nd, sh, 40);
  tcase *c = tc_new("%s %s", kn_kop_name(op), kn_dtype_name(dt));
  int64_t n = numel(nd, sh);
  tc_buf(c, 0, dt, n, 0, 0);
  tc_buf(c, 1, dt, n, lo, hi);
  set_space(c->k, nd, sh, 0);
  kn_st st = st_contig(nd, sh);
  c->k->root = kn_kop_alu(c->k, op, dt, 1, kn_kop_load(c->k, 1, dt, &st), NULL, NULL);
  c->rtol = rtol, c->atol = atol;
  run(c);
}

static void binary(kn_kop_type op, kn_dtype dt, kn_dtype odt, float lo, float hi) {
  int nd = (int)rint_in(1, 3);
  int64_t sh[KN_MAXDIM];
  rand_shape(nd, sh, 40);
  tcase *c = tc_new("%s %s", kn_kop_name(op), kn_dtype_name(dt));
  int64_t n = numel(nd, sh);
  tc_buf(c, 0, odt, n, 0, 0);
  tc_buf(c, 1, dt, n, lo, hi);
  tc_buf(c, 2, dt, n, lo, hi);
  if (op == KN_KOP_DIV || op == KN_KOP_MOD || op == KN_KOP_SHL || op == KN_KOP_SHR) {
    int bits = 8 * kn_dtype_get(dt)->itemsize;
    for (int64_t i = 0; i < n; i++) {
      int64_t v = op == KN_KOP_SHL || op == KN_KOP_SHR ? rint_in(0, bits - 1) : rint_in(2, 100) * (rnd() & 1 && kn_dtype_get(dt)->is_signed ? -1 : 1);
      switch (kn_dtype_get(dt)->itemsize) {
      case 1: ((int8_t *)c->host[2])[i] = (int8_t)v; break;
      case 2: ((int16_t *)c->host[2])[i] = (int16_t)v; break;
      case 4: ((int32_t *)c->host[2])[i] = (int32_t)v; break;
      default: ((int64_t *)c->host[2])[i] = v; break;
      }
    }
  }
  if (rnd() % 4 == 0 && kn_dtype_is_float(dt)) /* equal values sometimes, for the comparisons */
    memcpy(c->host[2], c->host[1], (size_t)c->bytes[1] / 2);
  set_space(c->k, nd, sh, 0);
  kn_st st = st_contig(nd, sh);
  kn_kop *a = kn_kop_load(c->k, 1, dt, &st), *b = kn_kop_load(c->k, 2, dt, &st);
  c->k->root = kn_kop_alu(c->k, op, odt, 2, a, b, NULL);
  if (op == KN_KOP_POW) c->rtol = dt == KN_F32 ? 2e-5 : 2e-3;
  run(c);
}

static void test_alu(void) {
  for (int r = 0; r < 2; r++)
    for (size_t t = 0; t < 3; t++) {
      kn_dtype dt = float_types[t];
      double rt = dt == KN_F32 ? 1e-5 : 1e-2;
      unary_float(KN_KOP_NEG, dt, -4, 4, 0, 0);
      unary_float(KN_KOP_RECIP, dt, 0.1f, 4, rt, 0);
      unary_float(KN_KOP_SQRT, dt, 0, 100, rt, 0);
      unary_float(KN_KOP_EXP2, dt, -30, 30, dt == KN_F32 ? 3e-6 : 1e-2, 0);
      unary_float(KN_KOP_EXP2, dt, -149, 127, dt == KN_F32 ? 3e-6 : 1e-2, 1e-44);
      unary_float(KN_KOP_LOG2, dt, 1e-6f, 1e6f, dt == KN_F32 ? 2e-6 : 1e-2, 1e-6);
      unary_float(KN_KOP_LOG2, dt, 0.5f, 2.0f, dt == KN_F32 ? 2e-6 : 1e-2, 2e-7);
      unary_float(KN_KOP_SIN, dt, -100, 100, dt == KN_F32 ? 2e-6 : 1e-2, 2e-6);
      unary_float(KN_KOP_SIN, dt, -3, 3, dt == KN_F32 ? 2e-6 : 1e-2, 2e-7);
      unary_float(KN_KOP_TRUNC, dt, -100, 100, 0, 0);
      kn_kop_type fops[] = {KN_KOP_ADD, KN_KOP_SUB, KN_KOP_MUL, KN_KOP_DIV, KN_KOP_MAX, KN_KOP_MIN};
      for (size_t o = 0; o < sizeof fops / sizeof *fops; o++) binary(fops[o], dt, dt, -4, 4);
      binary(KN_KOP_POW, dt, dt, 0.1f, 3);
      kn_kop_type cmps[] = {KN_KOP_CMPLT, KN_KOP_CMPEQ, KN_KOP_CMPNE};
      for (size_t o = 0; o < 3; o++) binary(cmps[o], dt, KN_BOOL, -2, 2);
    }
  kn_kop_type iops[] = {KN_KOP_ADD, KN_KOP_SUB, KN_KOP_MUL, KN_KOP_DIV, KN_KOP_MOD, KN_KOP_MAX, KN_KOP_MIN,
                        KN_KOP_AND, KN_KOP_OR, KN_KOP_XOR, KN_KOP_SHL, KN_KOP_SHR};
  for (size_t t = 0; t < sizeof int_types / sizeof *int_types; t++) {
    kn_dtype dt = int_types[t];
    for (size_t o = 0; o < sizeof iops / sizeof *iops; o++) binary(iops[o], dt, dt, 0, 0);
    kn_kop_type cmps[] = {KN_KOP_CMPLT, KN_KOP_CMPEQ, KN_KOP_CMPNE};
    for (size_t o = 0; o < 3; o++) binary(cmps[o], dt, KN_BOOL, 0, 0);
    unary_float(KN_KOP_NEG, dt, 0, 0, 0, 0);
    unary_float(KN_KOP_NOT, dt, 0, 0, 0, 0);
  }
  kn_kop_type bops[] = {KN_KOP_AND, KN_KOP_OR, KN_KOP_XOR, KN_KOP_CMPNE, KN_KOP_CMPEQ, KN_KOP_CMPLT, KN_KOP_MAX};
  for (size_t o = 0; o < sizeof bops / sizeof *bops; o++) binary(bops[o], KN_BOOL, KN_BOOL, 0, 0);
  unary_float(KN_KOP_NOT, KN_BOOL, 0, 0, 0, 0);
}

/* WHERE(a < b, a*c, b - c) and a longer float chain */
static void test_where_chain(void) {
  for (int r = 0; r < 6; r++) {
    kn_dtype dt = float_types[r % 3];
    int nd = (int)rint_in(1, 3);
    int64_t sh[KN_MAXDIM];
    rand_shape(nd, sh, 50);
    int64_t n = numel(nd, sh);
    tcase *c = tc_new("where/chain %s", kn_dtype_name(dt));
    tc_buf(c, 0, dt, n, 0, 0);
    for (int i = 1; i <= 3; i++) tc_buf(c, i, dt, n, -3, 3);
    set_space(c->k, nd, sh, 0);
    kn_kernel *k = c->k;
    kn_st st = st_contig(nd, sh);
    kn_kop *a = kn_kop_load(k, 1, dt, &st), *b = kn_kop_load(k, 2, dt, &st), *cc = kn_kop_load(k, 3, dt, &st);
    kn_kop *w = kn_kop_alu(k, KN_KOP_WHERE, dt, 3, kn_kop_alu(k, KN_KOP_CMPLT, KN_BOOL, 2, a, b, NULL),
                           kn_kop_alu(k, KN_KOP_MUL, dt, 2, a, cc, NULL), kn_kop_alu(k, KN_KOP_SUB, dt, 2, b, cc, NULL));
    kn_kop *e = kn_kop_alu(k, KN_KOP_EXP2, dt, 1, kn_kop_alu(k, KN_KOP_MUL, dt, 2, w, kn_kop_const_f(k, dt, 0.5), NULL), NULL, NULL);
    k->root = kn_kop_alu(k, KN_KOP_ADD, dt, 2, e, kn_kop_alu(k, KN_KOP_MAX, dt, 2, a, kn_kop_const_f(k, dt, 0.25), NULL), NULL);
    c->rtol = dt == KN_F32 ? 1e-5 : 2e-2, c->atol = 1e-5;
    run(c);
  }
}

static void test_casts(void) {
  kn_dtype all[] = {KN_BOOL, KN_I8, KN_U8, KN_I16, KN_U16, KN_I32, KN_U32, KN_I64, KN_U64, KN_F16, KN_BF16, KN_F32};
  int na = sizeof all / sizeof *all;
  for (int i = 0; i < na; i++)
    for (int j = 0; j < na; j++) {
      kn_dtype from = all[i], to = all[j];
      if (from == to) continue;
      int nd = (int)rint_in(1, 2);
      int64_t sh[KN_MAXDIM];
      rand_shape(nd, sh, 40);
      int64_t n = numel(nd, sh);
      tcase *c = tc_new("CAST %s -> %s", kn_dtype_name(from), kn_dtype_name(to));
      tc_buf(c, 0, to, n, 0, 0);
      /* floats into ints: values the target can hold */
      float lo = -100, hi = 100;
      if (kn_dtype_is_int(to) && !kn_dtype_get(to)->is_signed) lo = 0, hi = 200;
      if (to == KN_I8) lo = -100, hi = 100;
      if (to == KN_U8) hi = 250;
      tc_buf(c, 1, from, n, lo, hi);
      set_space(c->k, nd, sh, 0);
      kn_st st = st_contig(nd, sh);
      c->k->root = kn_kop_alu(c->k, KN_KOP_CAST, to, 1, kn_kop_load(c->k, 1, from, &st), NULL, NULL);
      run(c);
    }
  kn_dtype pairs[][2] = {{KN_F32, KN_I32}, {KN_I32, KN_F32}, {KN_F32, KN_U32}, {KN_U32, KN_F32}, {KN_F16, KN_I16},
                         {KN_I16, KN_F16}, {KN_U16, KN_F16}, {KN_BF16, KN_U16}, {KN_I16, KN_BF16}, {KN_I64, KN_U64}};
  for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
    kn_dtype from = pairs[p][0], to = pairs[p][1];
    int64_t sh[1] = {rint_in(1, 100)};
    tcase *c = tc_new("BITCAST %s -> %s", kn_dtype_name(from), kn_dtype_name(to));
    tc_buf(c, 0, to, sh[0], 0, 0);
    tc_buf(c, 1, from, sh[0], -1000, 1000);
    if (to == KN_F16 || to == KN_BF16 || to == KN_F32) /* keep NaN payloads out: compare finite values */
      for (int64_t i = 0; i < sh[0]; i++) {
        if (kn_dtype_get(from)->itemsize == 2) ((uint16_t *)c->host[1])[i] &= 0x3fff;
        else ((uint32_t *)c->host[1])[i] &= 0x3fffffff;
      }
    set_space(c->k, 1, sh, 0);
    kn_st st = st_contig(1, sh);
    c->k->root = kn_kop_alu(c->k, KN_KOP_BITCAST, to, 1, kn_kop_load(c->k, 1, from, &st), NULL, NULL);
    run(c);
  }
}

/* Random permutes, broadcasts, flips, pads, multi-view chains and symbolic offsets on an f32 or f16 input. */
static void test_views(void) {
  for (int r = 0; r < 84; r++) {
    kn_dtype dt = r % 5 == 4 ? KN_F16 : KN_F32;
    int nd = (int)rint_in(2, 4);
    int64_t sh[KN_MAXDIM];
    rand_shape(nd, sh, 24);
    int64_t n = numel(nd, sh);
    tcase *c = tc_new("view #%d %s nd %d", r, kn_dtype_name(dt), nd);
    kn_kernel *k = c->k;
    int kind = r % 7;
    /* the source buffer is a contiguous array of shape src[] = permutation of sh (plus padding shrink) */
    int perm[KN_MAXDIM];
    for (int i = 0; i < nd; i++) perm[i] = i;
    for (int i = nd - 1; i > 0; i--) {
      int j = (int)(rnd() % (uint64_t)(i + 1)), t = perm[i];
      perm[i] = perm[j], perm[j] = t;
    }
    int64_t src[KN_MAXDIM], cs[KN_MAXDIM], s = 1;
    for (int i = 0; i < nd; i++) src[i] = sh[perm[i]];
    for (int i = nd - 1; i >= 0; i--) cs[i] = s, s *= src[i];
    int64_t strides[KN_MAXDIM];
    for (int i = 0; i < nd; i++) strides[perm[i]] = cs[i]; /* kernel axis perm[i] walks source axis i */
    int64_t bufn = n, off = 0;
    kn_st st;
    if (kind == 0) { /* permute */
      st = st_strided(nd, sh, strides, 0);
    } else if (kind == 1) { /* broadcast one axis + flip another */
      int b = (int)(rnd() % (uint64_t)nd), f = (b + 1) % nd;
      strides[b] = 0;
      off = (sh[f] - 1) * strides[f];
      strides[f] = -strides[f];
      st = st_strided(nd, sh, strides, off);
    } else if (kind == 2) { /* pad: the kernel space is larger than the data on some axes */
      st = st_strided(nd, sh, strides, 0);
      st.v[0].masked = true;
      for (int i = 0; i < nd; i++) {
        int64_t lo = rint_in(0, sh[i] / 3), hi = sh[i] - rint_in(0, sh[i] / 3);
        st.v[0].mask_lo[i] = lo, st.v[0].mask_hi[i] = hi > lo ? hi : lo + 1;
        if (st.v[0].mask_hi[i] > sh[i]) st.v[0].mask_hi[i] = sh[i];
        st.v[0].offset.c -= lo * strides[i];
      }
      /* valid elements address [0, n) shifted: keep offsets inside by padding the buffer in front */
      int64_t minoff = 0;
      for (int i = 0; i < nd; i++) minoff += st.v[0].mask_lo[i] * strides[i];
      st.v[0].offset.c += minoff;
      bufn = n + minoff;
    } else if (kind == 3 || kind == 6) { /* two views: a permuted array reshaped (merge the first two axes), the
                                             top flipped for kind 6 (negative indices before the modulo) */
      int64_t tsh[KN_MAXDIM];
      int tn = nd - 1;
      tsh[0] = sh[0] * sh[1];
      for (int i = 2; i < nd; i++) tsh[i - 1] = sh[i];
      memset(&st, 0, sizeof st);
      st.nviews = 2;
      st.v[0] = st_strided(nd, sh, strides, 0).v[0];
      kn_st top = st_contig(tn, tsh);
      (void)top;
      /* kernel space is tsh: rebuild the kernel shape for this case */
      st.v[1] = top.v[0];
      if (kind == 6) {
        int fa = (int)(rnd() % (uint64_t)tn);
        st.v[1].offset.c = (tsh[fa] - 1) * st.v[1].strides[fa];
        st.v[1].strides[fa] = -st.v[1].strides[fa];
      }
      nd = tn;
      memcpy(sh, tsh, sizeof tsh);
    } else if (kind == 4) { /* symbolic offset: a window at row v0 of a taller array */
      k->nvars = 1;
      snprintf(k->vars[0].name, sizeof k->vars[0].name, "start_pos");
      k->vars[0].min = 0, k->vars[0].max = 7;
      c->vars[0] = rint_in(0, 7);
      int64_t cs0[KN_MAXDIM];
      s = 1;
      for (int i = nd - 1; i >= 0; i--) cs0[i] = s, s *= sh[i];
      st = st_strided(nd, sh, cs0, 3);
      st.v[0].offset.v = 0, st.v[0].offset.k = cs0[0];
      bufn = n + 3 + 7 * cs0[0];
    } else { /* three views: contiguous -> reshape to 1-D -> reshape back, then a masked top */
      memset(&st, 0, sizeof st);
      st.nviews = 2;
      st.v[0] = st_strided(nd, sh, strides, 0).v[0];
      int64_t one[1] = {n};
      st.v[1] = st_contig(1, one).v[0];
      kn_st top = st_contig(nd, sh);
      st.nviews = 3;
      st.v[2] = top.v[0];
      /* view 1 is 1-D, view 2 is the kernel shape again: exercises unravel through a flat view */
      st.v[1] = st_contig(1, one).v[0];
      st.v[2].masked = true;
      for (int i = 0; i < nd; i++) st.v[2].mask_lo[i] = 0, st.v[2].mask_hi[i] = sh[i] - (i == nd - 1 && sh[i] > 1);
    }
    int64_t nn = numel(nd, sh);
    tc_buf(c, 0, KN_F32, nn, 0, 0);
    tc_buf(c, 1, dt, bufn, -2, 2);
    tc_buf(c, 2, KN_F32, nn, -2, 2);
    set_space(k, nd, sh, 0);
    kn_st cst = st_contig(nd, sh);
    kn_kop *a = kn_kop_alu(k, KN_KOP_CAST, KN_F32, 1, kn_kop_load(k, 1, dt, &st), NULL, NULL);
    k->root = kn_kop_alu(k, KN_KOP_ADD, KN_F32, 2, a, kn_kop_load(k, 2, KN_F32, &cst), NULL);
    run(c);
  }
  /* transposed output store */
  for (int r = 0; r < 6; r++) {
    int64_t sh[2] = {rint_in(1, 40), rint_in(1, 40)};
    tcase *c = tc_new("transposed store #%d", r);
    tc_buf(c, 0, KN_F32, sh[0] * sh[1], 0, 0);
    tc_buf(c, 1, KN_F32, sh[0] * sh[1], -1, 1);
    set_space(c->k, 2, sh, 0);
    int64_t ts[2] = {1, sh[0]};
    c->k->out_st = st_strided(2, sh, ts, 0);
    kn_st st = st_contig(2, sh);
    c->k->root = kn_kop_alu(c->k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(c->k, 1, KN_F32, &st), kn_kop_const_f(c->k, KN_F32, 3), NULL);
    run(c);
  }
}

/* reductions: random split of axes into output and reduced, one or several REDUCE nodes, an epilogue */
static void test_reduce(void) {
  kn_kop_type rops[] = {KN_KOP_ADD, KN_KOP_MAX, KN_KOP_MUL};
  for (int r = 0; r < 60; r++) {
    kn_kop_type rop = rops[r % 3];
    kn_dtype dt = r % 7 == 5 ? KN_I32 : r % 7 == 6 ? KN_F16 : KN_F32;
    int nd = (int)rint_in(1, 4), nred = (int)rint_in(1, nd);
    int64_t sh[KN_MAXDIM];
    rand_shape(nd, sh, rop == KN_KOP_MUL ? 8 : 30);
    while (numel(nd, sh) > 40000) sh[rnd() % (uint64_t)nd] = rint_in(1, 8);
    tcase *c = tc_new("reduce %s %s nd %d nred %d #%d", kn_kop_name(rop), kn_dtype_name(dt), nd, nred, r);
    kn_kernel *k = c->k;
    int64_t on = 1;
    for (int i = 0; i < nd - nred; i++) on *= sh[i];
    tc_buf(c, 0, dt, on, 0, 0);
    /* the input is stored with its axes in a random order (the reduce axes need not be contiguous) */
    int perm[KN_MAXDIM];
    for (int i = 0; i < nd; i++) perm[i] = i;
    if (r % 2)
      for (int i = nd - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
      }
    int64_t cs[KN_MAXDIM], strides[KN_MAXDIM], s = 1;
    for (int i = nd - 1; i >= 0; i--) cs[i] = s, s *= sh[perm[i]];
    for (int i = 0; i < nd; i++) strides[perm[i]] = cs[i];
    float lo = rop == KN_KOP_MUL ? 0.5f : -2, hi = rop == KN_KOP_MUL ? 1.5f : 2;
    tc_buf(c, 1, dt, numel(nd, sh), lo, hi);
    if (dt == KN_I32)
      for (int64_t i = 0; i < numel(nd, sh); i++) ((int32_t *)c->host[1])[i] = (int32_t)rint_in(-50, 50);
    tc_buf(c, 2, dt, on, -1, 1);
    if (dt == KN_I32)
      for (int64_t i = 0; i < on; i++) ((int32_t *)c->host[2])[i] = (int32_t)rint_in(-50, 50);
    set_space(k, nd, sh, nred);
    kn_st st = st_strided(nd, sh, strides, 0);
    int64_t os[KN_MAXDIM];
    for (int i = 0; i < nd; i++) os[i] = i < nd - nred ? sh[i] : 1;
    kn_st ost = st_contig(nd, os);
    kn_kop *x = kn_kop_load(k, 1, dt, &st);
    kn_kop *red = kn_kop_reduce(k, rop, x);
    kn_kop *bias = kn_kop_load(k, 2, dt, &ost);
    if (r % 4 == 3) { /* two reduces sharing the loop: sum(x*x) and max(x) */
      kn_kop *r2 = kn_kop_reduce(k, KN_KOP_MAX, x);
      kn_kop *r1 = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, dt, 2, x, x, NULL));
      red = kn_kop_alu(k, KN_KOP_ADD, dt, 2, kn_kop_alu(k, KN_KOP_ADD, dt, 2, r1, r2, NULL), red, NULL);
    }
    k->root = kn_kop_alu(k, KN_KOP_ADD, dt, 2, red, bias, NULL);
    int64_t rn = numel(nd, sh) / on;
    c->rtol = dt == KN_F16 ? 1e-2 : 1e-5 * (1 + sqrt((double)rn)), c->atol = dt == KN_F16 ? 5e-2 : 1e-5 * (1 + sqrt((double)rn));
    if (rop == KN_KOP_MUL && dt == KN_I32)
      for (int64_t i = 0; i < numel(nd, sh); i++) ((int32_t *)c->host[1])[i] = (int32_t)rint_in(-3, 3);
    run(c);
  }
}

/* Row reductions whose split over a GPU workgroup is narrower than a wave (several rows per wave, each reduced in
 * its own lanes) or wider (LDS between the waves): sum, max and an i32 sum, rows of 192 (a group of 16) and 8192
 * (a group of 256). */
static void test_reduce_split(void) {
  static const struct { kn_kop_type rop; kn_dtype dt; int64_t rows, len; } cases[] = {
      {KN_KOP_ADD, KN_F32, 8, 192}, {KN_KOP_MAX, KN_F32, 6, 192}, {KN_KOP_ADD, KN_I32, 4, 192},
      {KN_KOP_ADD, KN_F32, 3, 8192}, {KN_KOP_MAX, KN_F32, 1, 192}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    kn_dtype dt = cases[i].dt;
    int64_t R = cases[i].rows, L = cases[i].len, sh[2] = {R, L};
    tcase *c = tc_new("split reduce %s %s %lldx%lld", kn_kop_name(cases[i].rop), kn_dtype_name(dt), (long long)R, (long long)L);
    kn_kernel *k = c->k;
    tc_buf(c, 0, dt, R, 0, 0);
    tc_buf(c, 1, dt, R * L, -2, 2);
    if (dt == KN_I32)
      for (int64_t j = 0; j < R * L; j++) ((int32_t *)c->host[1])[j] = (int32_t)rint_in(-50, 50);
    set_space(k, 2, sh, 1);
    kn_st st = st_contig(2, sh);
    k->root = kn_kop_reduce(k, cases[i].rop, kn_kop_load(k, 1, dt, &st));
    c->rtol = c->atol = 1e-5 * (1 + sqrt((double)L));
    run(c);
  }
}

/* arange and variables: out[i, j] = (i * C + j) * v0 + v1, in i32 and i64; and a float use of IDX */
static void test_idx_var(void) {
  for (int r = 0; r < 8; r++) {
    kn_dtype dt = r % 2 ? KN_I64 : KN_I32;
    int64_t sh[2] = {rint_in(1, 50), rint_in(1, 70)};
    tcase *c = tc_new("IDX/VAR %s #%d", kn_dtype_name(dt), r);
    kn_kernel *k = c->k;
    tc_buf(c, 0, dt, sh[0] * sh[1], 0, 0);
    set_space(k, 2, sh, 0);
    k->nvars = 2;
    snprintf(k->vars[0].name, 32, "a");
    snprintf(k->vars[1].name, 32, "b");
    k->vars[0].min = k->vars[1].min = -100, k->vars[0].max = k->vars[1].max = 100;
    c->vars[0] = rint_in(-100, 100), c->vars[1] = rint_in(-100, 100);
    kn_kop *i = kn_kop_idx(k, 0, dt), *j = kn_kop_idx(k, 1, dt);
    kn_kop *lin = kn_kop_alu(k, KN_KOP_ADD, dt, 2, kn_kop_alu(k, KN_KOP_MUL, dt, 2, i, kn_kop_const_i(k, dt, sh[1]), NULL), j, NULL);
    k->root = kn_kop_alu(k, KN_KOP_ADD, dt, 2, kn_kop_alu(k, KN_KOP_MUL, dt, 2, lin, kn_kop_var(k, 0, dt), NULL), kn_kop_var(k, 1, dt), NULL);
    run(c);
  }
  for (int r = 0; r < 4; r++) { /* sum over k of (k < v0 ? x[k] : 0): a causal-mask shaped reduce */
    int64_t sh[2] = {rint_in(1, 20), rint_in(1, 100)};
    tcase *c = tc_new("masked reduce by IDX<VAR #%d", r);
    kn_kernel *k = c->k;
    tc_buf(c, 0, KN_F32, sh[0], 0, 0);
    tc_buf(c, 1, KN_F32, sh[0] * sh[1], -1, 1);
    set_space(k, 2, sh, 1);
    k->nvars = 1;
    k->vars[0].min = 0, k->vars[0].max = sh[1];
    c->vars[0] = rint_in(0, sh[1]);
    kn_st st = st_contig(2, sh);
    kn_kop *cond = kn_kop_alu(k, KN_KOP_CMPLT, KN_BOOL, 2, kn_kop_idx(k, 1, KN_I64), kn_kop_var(k, 0, KN_I64), NULL);
    kn_kop *v = kn_kop_alu(k, KN_KOP_WHERE, KN_F32, 3, cond, kn_kop_load(k, 1, KN_F32, &st), kn_kop_const_f(k, KN_F32, 0));
    k->root = kn_kop_reduce(k, KN_KOP_ADD, v);
    c->atol = 1e-5 * 11;
    run(c);
  }
}

/* embedding gather: out[t, d] = table[ids[t], d] (f32, f16 and block-format tables) */
static void test_gather(void) {
  kn_dtype tabs[] = {KN_F32, KN_F16, KN_Q8_0, KN_Q4_K, KN_Q6_K};
  for (size_t r = 0; r < sizeof tabs / sizeof *tabs * 2; r++) {
    kn_dtype tt = tabs[r % 5];
    int64_t rows = rint_in(2, 20), dim = kn_dtype_get(tt)->block_elems * rint_in(1, 3), nt = rint_in(1, 9);
    if (!kn_dtype_is_quant(tt)) dim = rint_in(1, 80);
    tcase *c = tc_new("gather %s rows %lld dim %lld", kn_dtype_name(tt), (long long)rows, (long long)dim);
    kn_kernel *k = c->k;
    tc_buf(c, 0, KN_F32, nt * dim, 0, 0);
    tc_buf(c, 1, tt, rows * dim, -2, 2);
    tc_buf(c, 2, KN_I32, nt, 0, 0);
    for (int64_t i = 0; i < nt; i++) ((int32_t *)c->host[2])[i] = (int32_t)rint_in(0, rows - 1);
    int64_t sh[2] = {nt, dim};
    set_space(k, 2, sh, 0);
    int64_t s1[2] = {0, 1}, s2[2] = {1, 0};
    kn_st a = st_strided(2, sh, s1, 0), b = st_strided(2, sh, s2, 0);
    kn_kop *row = kn_kop_load(k, 1, kn_dtype_scalar(tt), &a);
    row->nsrc = 1, row->src[0] = kn_kop_load(k, 2, KN_I32, &b), row->gather_stride = dim;
    k->root = row->dtype == KN_F32 ? row : kn_kop_alu(k, KN_KOP_CAST, KN_F32, 1, row, NULL, NULL);
    run(c);
  }
}

/* out[m, n] = sum_k a[m, k] * b[k, n] (b transposed sometimes), the scheduler's matmul AST */
static void test_matmul(void) {
  for (int r = 0; r < 16; r++) {
    int64_t M = r < 4 ? 16 * rint_in(1, 4) : rint_in(1, 40), N = r < 8 ? 16 * rint_in(1, 6) : rint_in(1, 70),
            K = rint_in(1, 90);
    bool bt = r % 3 == 2;
    kn_dtype dt = r % 5 == 4 ? KN_F16 : KN_F32;
    tcase *c = tc_new("matmul %lldx%lldx%lld%s %s", (long long)M, (long long)N, (long long)K, bt ? " b^T" : "", kn_dtype_name(dt));
    kn_kernel *k = c->k;
    tc_buf(c, 0, KN_F32, M * N, 0, 0);
    tc_buf(c, 1, dt, M * K, -1, 1);
    tc_buf(c, 2, dt, K * N, -1, 1);
    int64_t sh[3] = {M, N, K}, sa[3] = {K, 0, 1}, sb[3] = {0, 1, N}, sbt[3] = {0, K, 1};
    set_space(k, 3, sh, 1);
    kn_st a = st_strided(3, sh, sa, 0), b = st_strided(3, sh, bt ? sbt : sb, 0);
    kn_kop *x = kn_kop_load(k, 1, dt, &a), *y = kn_kop_load(k, 2, dt, &b);
    if (dt != KN_F32) x = kn_kop_alu(k, KN_KOP_CAST, KN_F32, 1, x, NULL, NULL), y = kn_kop_alu(k, KN_KOP_CAST, KN_F32, 1, y, NULL, NULL);
    k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, x, y, NULL));
    c->rtol = 1e-5, c->atol = 1e-5 * (1 + sqrt((double)K));
    run(c);
  }
}

/* the fused dequant-matmul: out[m, n] = sum_k x[m, k] * W[n, k], W [N, K] in a block format; plus a plain
 * dequantizing copy of the whole tensor */
static void test_quant(void) {
  kn_dtype fmts[] = {KN_Q4_0, KN_Q4_1, KN_Q5_0, KN_Q5_1, KN_Q8_0, KN_Q2_K, KN_Q3_K, KN_Q4_K, KN_Q5_K, KN_Q6_K};
  for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
    kn_dtype q = fmts[f];
    if (!kn_ref_supported(q)) {
      fail("reference dequantizer does not support %s", kn_dtype_name(q));
      failed++;
      continue;
    }
    for (int r = 0; r < 5; r++) {
      int64_t QK = kn_dtype_get(q)->block_elems;
      int64_t M = r < 2 ? 1 : rint_in(2, 6), N = rint_in(1, 24), K = QK * rint_in(1, QK == 32 ? 8 : 3);
      tcase *c = tc_new("%s %s M %lld N %lld K %lld", r < 2 ? "gemv" : "gemm", kn_dtype_name(q), (long long)M, (long long)N, (long long)K);
      kn_kernel *k = c->k;
      tc_buf(c, 0, KN_F32, M * N, 0, 0);
      tc_buf(c, 1, KN_F32, M * K, -1, 1);
      tc_buf(c, 2, q, N * K, 0, 0);
      int64_t sh[3] = {M, N, K}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1};
      set_space(k, 3, sh, 1);
      kn_st a = st_strided(3, sh, sx, 0), b = st_strided(3, sh, sw, 0);
      kn_kop *x = kn_kop_load(k, 1, KN_F32, &a), *w = kn_kop_load(k, 2, KN_F32, &b);
      k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, x, w, NULL));
      c->rtol = 1e-5, c->atol = 1e-4 * (1 + sqrt((double)K));
      run(c);
    }
    /* dequantize: out[i, j] = W[i, j] (2-D so rows start at block boundaries), and a transposed read */
    for (int r = 0; r < 2; r++) {
      int64_t QK = kn_dtype_get(q)->block_elems, R = rint_in(1, 5), C = QK * rint_in(1, 3);
      tcase *c = tc_new("dequant %s %lldx%lld%s", kn_dtype_name(q), (long long)R, (long long)C, r ? " transposed" : "");
      kn_kernel *k = c->k;
      tc_buf(c, 0, KN_F32, R * C, 0, 0);
      tc_buf(c, 1, q, R * C, 0, 0);
      int64_t sh[2] = {R, C}, sht[2] = {C, R}, st_t[2] = {1, C};
      set_space(k, 2, r ? sht : sh, 0);
      kn_st st = r ? st_strided(2, sht, st_t, 0) : st_contig(2, sh);
      k->root = kn_kop_load(k, 1, KN_F32, &st);
      run(c);
    }
  }
  /* shapes that split the reduction over a workgroup on a GPU (random ones above stay short): a group of 16 work
   * items (two row blocks per wave32), 16 with an odd number of row blocks (one per wave), 32 (one wave each), and
   * 256 (eight waves, the partials merged through LDS) */
  static const struct { kn_dtype q; int64_t N, blocks; } split[] = {
      {KN_Q4_0, 8, 48}, {KN_Q8_0, 12, 80}, {KN_Q4_K, 8, 5}, {KN_Q6_K, 4, 16}, {KN_Q5_K, 16, 2}};
  for (size_t i = 0; i < sizeof split / sizeof *split; i++) {
    int64_t N = split[i].N, K = kn_dtype_get(split[i].q)->block_elems * split[i].blocks;
    tcase *c = tc_new("split gemv %s N %lld K %lld", kn_dtype_name(split[i].q), (long long)N, (long long)K);
    kn_kernel *k = c->k;
    tc_buf(c, 0, KN_F32, N, 0, 0);
    tc_buf(c, 1, KN_F32, K, -1, 1);
    tc_buf(c, 2, split[i].q, N * K, 0, 0);
    int64_t sh[3] = {1, N, K}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1};
    set_space(k, 3, sh, 1);
    kn_st a = st_strided(3, sh, sx, 0), b = st_strided(3, sh, sw, 0);
    k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &a),
                                                      kn_kop_load(k, 2, KN_F32, &b), NULL));
    c->rtol = 1e-5, c->atol = 1e-4 * (1 + sqrt((double)K));
    run(c);
  }
  /* f16 / bf16 weights through the same matmul AST */
  kn_dtype hw[] = {KN_F16, KN_BF16};
  for (int h = 0; h < 2; h++) {
    int64_t M = 1, N = rint_in(1, 40), K = 16 * rint_in(1, 20);
    tcase *c = tc_new("gemv %s N %lld K %lld", kn_dtype_name(hw[h]), (long long)N, (long long)K);
    kn_kernel *k = c->k;
    tc_buf(c, 0, KN_F32, M * N, 0, 0);
    tc_buf(c, 1, KN_F32, M * K, -1, 1);
    tc_buf(c, 2, hw[h], N * K, -1, 1);
    int64_t sh[3] = {M, N, K}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1};
    set_space(k, 3, sh, 1);
    kn_st a = st_strided(3, sh, sx, 0), b = st_strided(3, sh, sw, 0);
    kn_kop *w = kn_kop_alu(k, KN_KOP_CAST, KN_F32, 1, kn_kop_load(k, 2, hw[h], &b), NULL, NULL);
    k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &a), w, NULL));
    c->atol = 1e-5 * (1 + sqrt((double)K));
    run(c);
  }
}

/* out[m, n] = sum_k x[m, k] * g[k] * W[n, k] with W of format q (buffers out, x, W, g): the activations are an
 * expression, as a normed matmul's are. */
static kn_kernel *normed_qdot_kernel(kn_dtype q, int64_t M, int64_t N, int64_t K) {
  kn_kernel *k = kn_kernel_new();
  k->nbufs = 4;
  k->bufs[0] = (kn_kbuf){KN_F32, M * N}, k->bufs[1] = (kn_kbuf){KN_F32, M * K};
  k->bufs[2] = (kn_kbuf){q, N * K}, k->bufs[3] = (kn_kbuf){KN_F32, K};
  int64_t sh[3] = {M, N, K}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1}, sg[3] = {0, 0, 1};
  set_space(k, 3, sh, 1);
  kn_st a = st_strided(3, sh, sx, 0), b = st_strided(3, sh, sw, 0), gs = st_strided(3, sh, sg, 0);
  kn_kop *xe = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &a), kn_kop_load(k, 3, KN_F32, &gs), NULL);
  k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, xe, kn_kop_load(k, 2, KN_F32, &b), NULL));
  return k;
}

/* The integer-dot mode (the default; KILN_EXACT=1 is the exact one): per block of the weight, the activations are
 * quantized to int8 with scale amax / 127 (round to nearest even), so the reference here is
 * out[m, n] = sum over blocks of dx * sum_i W[n, i] * xq[m, i], with W dequantized exactly (kn_ref_qdot_row). The
 * activations are an expression (x * g), so the template's operands come through the normal lowering. With several
 * rows of such activations (M > 1) the general lowering keeps the exact decode (it would quantize them once per group
 * of weight rows), which the reference then is; a model's prefill reads plain f32 activations (the RMSNorm is its own
 * kernel) and goes through the tiled integer-dot template instead, which test_qmm checks. */
static void test_qdot(void) {
  kn_dtype fmts[] = {KN_Q4_0, KN_Q4_1, KN_Q5_0, KN_Q5_1, KN_Q8_0, KN_Q2_K, KN_Q3_K, KN_Q4_K, KN_Q5_K, KN_Q6_K};
  unsetenv("KILN_EXACT");
  for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
    kn_dtype q = fmts[f];
    int64_t QK = kn_dtype_get(q)->block_elems;
    for (int r = 0; r < 4; r++) {
      int64_t M = r < 2 ? 1 : rint_in(2, 5), N = r == 0 ? 16 * rint_in(1, 3) : rint_in(1, 24);
      /* 32-element formats: a multiple of four blocks (the nibble formats' 4-block groups on AVX-512), an even
       * block count (pairs of blocks per template on 64-byte vectors) and odd ones */
      int64_t K = QK * (QK == 32 ? (r % 2 ? 2 * rint_in(0, 3) + 1 : r == 0 ? 4 * rint_in(1, 3) : 4 * rint_in(0, 2) + 2) : rint_in(1, 3));
      char name[96];
      snprintf(name, sizeof name, "qdot %s M %lld N %lld K %lld", kn_dtype_name(q), (long long)M, (long long)N, (long long)K);
      kn_kernel *k = normed_qdot_kernel(q, M, N, K);
      float *out = calloc((size_t)(M * N), 4), *x = malloc((size_t)(M * K) * 4), *g = malloc((size_t)K * 4);
      void *w = malloc((size_t)kn_dtype_nbytes(q, N * K));
      for (int64_t i = 0; i < M * K; i++) x[i] = runif(-1, 1) * (i % 7 == 0 ? 3.0f : 1.0f);
      for (int64_t i = 0; i < K; i++) g[i] = runif(0.5f, 1.5f);
      kn_ref_fill_random(q, w, N * K, &rs);
      char err[512] = "";
      kn_compiled comp;
      kn_program *p = NULL;
      bool ok = !kn_compile(k, kn_device_target(dev), &comp, err, sizeof err) &&
                (p = kn_program_load(dev, comp.entry, comp.obj, comp.obj_size, err, sizeof err));
      memset(out, 0xff, (size_t)(M * N) * 4); /* NaN: an element the kernel does not write shows */
      if (ok) {
        void *host[4] = {out, x, w, g};
        size_t bytes[4] = {(size_t)(M * N) * 4, (size_t)(M * K) * 4, (size_t)kn_dtype_nbytes(q, N * K), (size_t)K * 4};
        ok = launch_host(p, &comp, host, bytes, 4, NULL, 0, err, sizeof err);
      }
      int bad = 0;
      /* the integer-dot templates are the CPU's (x86/NEON multiply-adds): a GPU keeps the exact decode, and so does
       * the general lowering of several rows */
      bool exact = M > 1 || kn_device_target(dev)->kind != KN_TARGET_CPU;
      for (int64_t n = 0; ok && n < N; n++)
        for (int64_t m = 0; m < M; m++) {
          double mag, want = kn_ref_qdot_row(q, w, n, K, x + m * K, g, exact, &mag);
          float got = out[m * N + n];
          if (!(fabs(got - want) <= (exact ? 1e-5 : 2e-6) * mag + 1e-6) && bad++ < 3)
            fail_line("%s (%s): out[%lld, %lld] = %.9g, want %.9g (magnitude %.3g)", name, comp.name, (long long)m,
                      (long long)n, got, want, mag);
        }
      if (!ok) fail_line("%s: %s", name, err);
      if (ok && !bad) passed++;
      else failed++;
      free(out), free(x), free(g), free(w);
      kn_program_free(p);
      if (ok) kn_compiled_free(&comp);
      kn_kernel_free(k);
      if (!ok && kn_device_target(dev)->kind != KN_TARGET_CPU) reopen_device(); /* a faulted GPU stays faulted */
    }
  }
  setenv("KILN_EXACT", "1", 1);
}

/* Two integer-dot reductions over the same activations in one kernel (the fused SiLU(x Wg) * (x Wu) of a decode
 * step): out[n] = (x g . W1[n]) * (x g . W2[n]). The activations are quantized once per call and shared by both
 * (one record set) when the formats agree, one set each when they differ (q4_k with q6_k, q5_0 with q8_0). */
static void test_qdot_pair(void) {
  kn_dtype fa[] = {KN_Q5_0, KN_Q4_K, KN_Q5_0, KN_Q4_K, KN_Q8_0}, fb[] = {KN_Q5_0, KN_Q4_K, KN_Q8_0, KN_Q6_K, KN_Q8_0};
  unsetenv("KILN_EXACT");
  for (size_t f = 0; f < sizeof fa / sizeof *fa; f++) {
    kn_dtype q1 = fa[f], q2 = fb[f];
    int64_t QK = kn_dtype_get(q1)->block_elems, N = 8 * rint_in(1, 6) + (f % 2 ? rint_in(1, 7) : 0);
    int64_t K = QK * (QK == 32 ? 2 * rint_in(1, 8) + (int64_t)(f % 2) : rint_in(1, 4));
    char name[96];
    snprintf(name, sizeof name, "qdot pair %s %s N %lld K %lld", kn_dtype_name(q1), kn_dtype_name(q2), (long long)N, (long long)K);
    kn_kernel *k = kn_kernel_new();
    k->nbufs = 5;
    k->bufs[0] = (kn_kbuf){KN_F32, N}, k->bufs[1] = (kn_kbuf){KN_F32, K}, k->bufs[2] = (kn_kbuf){q1, N * K};
    k->bufs[3] = (kn_kbuf){KN_F32, K}, k->bufs[4] = (kn_kbuf){q2, N * K};
    float *out = calloc((size_t)N, 4), *x = malloc((size_t)K * 4), *g = malloc((size_t)K * 4);
    void *w1 = malloc((size_t)kn_dtype_nbytes(q1, N * K)), *w2 = malloc((size_t)kn_dtype_nbytes(q2, N * K));
    for (int64_t i = 0; i < K; i++) x[i] = runif(-1, 1) * (i % 7 == 0 ? 3.0f : 1.0f), g[i] = runif(0.5f, 1.5f);
    kn_ref_fill_random(q1, w1, N * K, &rs);
    kn_ref_fill_random(q2, w2, N * K, &rs);
    int64_t sh[3] = {1, N, K}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1}, sg[3] = {0, 0, 1};
    set_space(k, 3, sh, 1);
    kn_st a = st_strided(3, sh, sx, 0), b = st_strided(3, sh, sw, 0), gs = st_strided(3, sh, sg, 0);
    kn_kop *xe = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &a), kn_kop_load(k, 3, KN_F32, &gs), NULL);
    kn_kop *r1 = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, xe, kn_kop_load(k, 2, KN_F32, &b), NULL));
    kn_kop *r2 = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, xe, kn_kop_load(k, 4, KN_F32, &b), NULL));
    k->root = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, r1, r2, NULL);
    char err[512] = "";
    kn_compiled comp;
    kn_program *p = NULL;
    bool ok = !kn_compile(k, kn_device_target(dev), &comp, err, sizeof err) &&
              (p = kn_program_load(dev, comp.entry, comp.obj, comp.obj_size, err, sizeof err));
    memset(out, 0xff, (size_t)N * 4);
    void *host[5] = {out, x, w1, g, w2};
    size_t bytes[5] = {(size_t)N * 4, (size_t)K * 4, (size_t)kn_dtype_nbytes(q1, N * K), (size_t)K * 4, (size_t)kn_dtype_nbytes(q2, N * K)};
    ok = ok && launch_host(p, &comp, host, bytes, 5, NULL, 0, err, sizeof err);
    int bad = 0;
    for (int64_t n = 0; ok && n < N; n++) {
      double m1, m2, d1 = kn_ref_qdot_row(q1, w1, n, K, x, g, false, &m1),
             d2 = kn_ref_qdot_row(q2, w2, n, K, x, g, false, &m2);
      double want = d1 * d2, tol = 2e-6 * (m1 * fabs(d2) + m2 * fabs(d1) + m1 * m2) + 1e-6;
      if (!(fabs(out[n] - want) <= tol) && bad++ < 3)
        fail_line("%s (%s): out[%lld] = %.9g, want %.9g (tolerance %.3g)", name, comp.name, (long long)n, out[n], want, tol);
    }
    if (!ok) fail_line("%s: %s", name, err);
    if (ok && !bad) passed++;
    else failed++;
    free(out), free(x), free(g), free(w1), free(w2);
    kn_program_free(p);
    if (ok) kn_compiled_free(&comp);
    kn_kernel_free(k);
  }
  setenv("KILN_EXACT", "1", 1);
}

/* A GEMV with RoPE's pair swap pushed into it (docs/graph-api.md): over [1, H, 2, J, K], output (h, s, j) sums row
 * h*2J + s*J + j of W and, through a mirrored view, row h*2J + (1-s)*J + j; here out = first + second / 2. The
 * decode schedule keeps both halves s of a pair in one work item (opt.c mirrored_along), where lower.c's shared
 * accumulators dot each row once: the QDOTRs per step are those of one half. Checked against plain C per row. */
static void test_qdot_rope_pair(void) {
  kn_dtype fmts[] = {KN_Q5_0, KN_Q8_0, KN_Q4_K, KN_Q6_K};
  unsetenv("KILN_EXACT");
  for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
    kn_dtype q = fmts[f];
    int64_t QK = kn_dtype_get(q)->block_elems, H = rint_in(1, 4), J = 2 * rint_in(1, 8), N = H * 2 * J;
    int64_t K = QK * (QK == 32 ? 2 * rint_in(1, 6) + (int64_t)(f % 2) : rint_in(1, 3));
    char name[96];
    snprintf(name, sizeof name, "qdot rope pair %s H %lld J %lld K %lld", kn_dtype_name(q), (long long)H, (long long)J, (long long)K);
    kn_kernel *k = kn_kernel_new();
    k->nbufs = 4;
    k->bufs[0] = (kn_kbuf){KN_F32, N}, k->bufs[1] = (kn_kbuf){KN_F32, K}, k->bufs[2] = (kn_kbuf){q, N * K};
    k->bufs[3] = (kn_kbuf){KN_F32, K};
    int64_t sh[5] = {1, H, 2, J, K}, sx[5] = {0, 0, 0, 0, 1}, sa[5] = {0, 2 * J * K, J * K, K, 1}, sb[5] = {0, 2 * J * K, -J * K, K, 1};
    int64_t osh[5] = {1, H, 2, J, 1}, so[5] = {0, 2 * J, J, 1, 0};
    set_space(k, 5, sh, 1);
    k->out_st = st_strided(5, osh, so, 0);
    kn_st xs = st_strided(5, sh, sx, 0), wa = st_strided(5, sh, sa, 0), wb = st_strided(5, sh, sb, J * K);
    kn_kop *xe = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &xs), kn_kop_load(k, 3, KN_F32, &xs), NULL);
    kn_kop *r1 = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, xe, kn_kop_load(k, 2, KN_F32, &wa), NULL));
    kn_kop *r2 = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, xe, kn_kop_load(k, 2, KN_F32, &wb), NULL));
    k->root = kn_kop_alu(k, KN_KOP_ADD, KN_F32, 2, r1, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, r2, kn_kop_const_f(k, KN_F32, 0.5), NULL), NULL);
    float *out = calloc((size_t)N, 4), *x = malloc((size_t)K * 4), *g = malloc((size_t)K * 4);
    void *w = malloc((size_t)kn_dtype_nbytes(q, N * K));
    for (int64_t i = 0; i < K; i++) x[i] = runif(-1, 1) * (i % 7 == 0 ? 3.0f : 1.0f), g[i] = runif(0.5f, 1.5f);
    kn_ref_fill_random(q, w, N * K, &rs);
    char err[512] = "";
    kn_sched s;
    bool paired = false;
    if (!kn_opt_schedule(k, kn_device_target(dev), &s, err, sizeof err))
      for (int i = 0; i < s.n; i++) paired |= s.p[i].kind == KN_AX_UPCAST && s.p[i].axis == 2 && s.p[i].size == 2;
    if (!paired) fail_line("%s: the halves of a pair are not one work item's", name);
    kn_compiled comp;
    kn_program *p = NULL;
    bool ok = !kn_compile(k, kn_device_target(dev), &comp, err, sizeof err) &&
              (p = kn_program_load(dev, comp.entry, comp.obj, comp.obj_size, err, sizeof err));
    memset(out, 0xff, (size_t)N * 4);
    void *host[4] = {out, x, w, g};
    size_t bytes[4] = {(size_t)N * 4, (size_t)K * 4, (size_t)kn_dtype_nbytes(q, N * K), (size_t)K * 4};
    ok = ok && launch_host(p, &comp, host, bytes, 4, NULL, 0, err, sizeof err);
    int bad = 0;
    for (int64_t n = 0; ok && n < N; n++) {
      int64_t h = n / (2 * J), half = n / J % 2, j = n % J, partner = h * 2 * J + (1 - half) * J + j;
      double m1, m2, d1 = kn_ref_qdot_row(q, w, n, K, x, g, false, &m1), d2 = kn_ref_qdot_row(q, w, partner, K, x, g, false, &m2);
      double want = d1 + 0.5 * d2, tol = 2e-6 * (m1 + 0.5 * m2) + 1e-6;
      if (!(fabs(out[n] - want) <= tol) && bad++ < 3)
        fail_line("%s (%s): out[%lld] = %.9g, want %.9g (tolerance %.3g)", name, comp.name, (long long)n, out[n], want, tol);
    }
    if (!ok) fail_line("%s: %s", name, err);
    if (ok && !bad && paired) passed++;
    else failed++;
    free(out), free(x), free(g), free(w);
    kn_program_free(p);
    if (ok) kn_compiled_free(&comp);
    kn_kernel_free(k);
  }
  setenv("KILN_EXACT", "1", 1);
}

/* The GEMV's weight prefetch (codegen/lower.c): beside each QDOTR of the decode path a PREFETCH of the same weight,
 * its block index that of the QDOTR plus the blocks of one work item (the rows of the item's register block times
 * the blocks of a row: exactly the blocks the next work item dots there) times the items that make it
 * KILN_PREFETCH_BYTES (8 KB) or more (the same blocks of a later item), covering the QDOTR's bytes; and before the
 * work-item loop one PREFETCH of those leading blocks, from the call's first item's (SPECIAL first_gidx times the
 * blocks of an item) on; none with KILN_PREFETCH=0. A prefetch cannot change a result (test_qdot and test_qdot_pair
 * run with it), so this checks its address: a distance off by a row or a block would still pass those. */
static int prefetch_count(const kn_kernel *k, const kn_sched *s, int64_t rows, int64_t K, kn_dtype q, const char *name) {
  char err[256] = "";
  kn_lprog *lp = kn_lower(k, s, err, sizeof err);
  if (!lp) return fail_line("%s: lowering: %s", name, err), -1;
  const kn_dtype_info *di = kn_dtype_get(q);
  int64_t items = lp->global[0], item = rows * K / di->block_elems / items; /* blocks per work item */
  int64_t bytes = kn_getenv_int("KILN_PREFETCH_BYTES", 8192);
  int64_t ahead = item * ((bytes + item * (int64_t)di->block_bytes - 1) / (item * (int64_t)di->block_bytes)); /* >= 8 KB */
  int n = 0, nq = 0, bad = 0, lead = 0;
  bool in_items = false;
  for (int i = 0; i < lp->n; i++) {
    const kn_lop *o = &lp->ops[i];
    if (o->op == KN_L_QDOTR) nq++;
    in_items |= o->op == KN_L_SPECIAL && o->arg == KN_SP_GLOBAL0;
    if (o->op == KN_L_PREFETCH && !in_items) { /* the call's leading items */
      const kn_lop *a = &lp->ops[o->src[1]], *f = NULL, *m = NULL;
      if (a->op == KN_L_ALU && a->alu == KN_KOP_MUL && a->nsrc == 2)
        for (int j = 0; j < 2; j++)
          if (lp->ops[a->src[j]].op == KN_L_SPECIAL && lp->ops[a->src[j]].arg == KN_SP_FIRST0) f = &lp->ops[a->src[j]], m = &lp->ops[a->src[1 - j]];
      bool one = item == 1 && a->op == KN_L_SPECIAL && a->arg == KN_SP_FIRST0; /* times 1: folded away */
      if ((!(one || (f && m->op == KN_L_CONST && m->val.i == item)) || o->size != ahead * di->block_bytes) && bad++ < 2)
        fail_line("%s: PREFETCH %d before the work items is not the %lld blocks from the first item's", name, i, (long long)ahead);
      lead++;
      continue;
    }
    if (o->op != KN_L_PREFETCH) continue;
    n++;
    const kn_lop *a = &lp->ops[o->src[1]], *qd = NULL;
    for (int j = i + 1; j < lp->n && !qd; j++) /* the QDOTR it serves follows it */
      if (lp->ops[j].op == KN_L_QDOTR) qd = &lp->ops[j];
    int64_t elems = qd ? lp->ops[qd->src[4]].val.i : 0;
    bool at = a->op == KN_L_ALU && a->alu == KN_KOP_ADD && qd && qd->src[0] == o->src[0] &&
              ((a->src[0] == qd->src[1] && lp->ops[a->src[1]].op == KN_L_CONST && lp->ops[a->src[1]].val.i == ahead) ||
               (a->src[1] == qd->src[1] && lp->ops[a->src[0]].op == KN_L_CONST && lp->ops[a->src[0]].val.i == ahead));
    if ((!at || o->size != elems / di->block_elems * di->block_bytes) && bad++ < 2)
      fail_line("%s: PREFETCH %d is not the next QDOTR's blocks %lld blocks (%lld rows of %lld work items) ahead, %lld bytes",
                name, i, (long long)ahead, (long long)(rows / items), (long long)items,
                (long long)(elems / di->block_elems * di->block_bytes));
  }
  if (n && (n != nq || lead != 1 || rows % items || (rows / items) * K / di->block_elems != item) && bad++ < 2)
    fail_line("%s: %d PREFETCH for %d QDOTR and %d before the items, %lld rows on %lld work items", name, n, nq, lead,
              (long long)rows, (long long)items);
  if (!n && lead && bad++ < 2) fail_line("%s: a PREFETCH before the work items but none in them", name);
  kn_lprog_free(lp);
  return bad ? -1 : n;
}

static void test_prefetch(void) {
  kn_dtype fmts[] = {KN_Q8_0, KN_Q5_0, KN_Q4_K, KN_Q6_K};
  unsetenv("KILN_EXACT");
  for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
    kn_dtype q = fmts[f];
    int64_t QK = kn_dtype_get(q)->block_elems, N = 8 * rint_in(1, 40) + (f % 2 ? rint_in(1, 7) : 0);
    int64_t K = QK * (QK == 32 ? rint_in(2, 30) : rint_in(1, 4));
    char name[96];
    snprintf(name, sizeof name, "prefetch %s N %lld K %lld", kn_dtype_name(q), (long long)N, (long long)K);
    kn_kernel *k = normed_qdot_kernel(q, 1, N, K);
    char err[256] = "";
    kn_sched s;
    int on = -1, off = -1;
    if (kn_opt_schedule(k, kn_device_target(dev), &s, err, sizeof err)) fail_line("%s: schedule: %s", name, err);
    else if (!s.qdot_hoist) fail_line("%s: not the hoisted integer-dot GEMV (qdot %d)", name, (int)s.qdot);
    else if ((on = prefetch_count(k, &s, N, K, q, name)) == 0) fail_line("%s: no PREFETCH", name), on = -1;
    setenv("KILN_PREFETCH", "0", 1);
    if (on > 0 && !kn_opt_schedule(k, kn_device_target(dev), &s, err, sizeof err) &&
        (off = prefetch_count(k, &s, N, K, q, name)) != 0 && off > 0)
      fail_line("%s: %d PREFETCH with KILN_PREFETCH=0", name, off);
    unsetenv("KILN_PREFETCH");
    if (on > 0 && off == 0) passed++;
    else failed++;
    kn_kernel_free(k);
  }
  setenv("KILN_EXACT", "1", 1);
}

/* The tiled prefill templates (codegen/quant_mm.c on CPUs: the integer-dot mode with T >= 2 tokens of plain f32
 * activations, quantized once per launch with the GEMV template's rounding, so the reference is that of test_qdot's
 * GEMV case, per token; codegen/amdgpu_qmm.c on GPUs: the exact decode, tiles of 16 tokens and 16 rows, K in chunks of
 * 256). T runs past one token tile (64) and past whole groups of tokens; each case checks that the template compiled
 * it (the kernel's name) and an epilogue: none, a bias, a residual, a SiLU gate, or an f16 store at a variable row
 * (the KV cache), the same scattered to rows chosen at run time, or through a chain of two views (a batched pass's V
 * projection: [T, N] reshaped to [T, heads, head_dim] cache rows; here stored head-minor, so a wrong unravel shows).
 * Outputs start as NaN, so an element a tile does not write shows. */
static void test_qmm(void) {
  bool cpu = kn_device_target(dev)->kind == KN_TARGET_CPU;
  kn_dtype fmts[] = {KN_Q4_0, KN_Q4_1, KN_Q5_0, KN_Q5_1, KN_Q8_0, KN_Q2_K, KN_Q3_K, KN_Q4_K, KN_Q5_K, KN_Q6_K};
  unsetenv("KILN_EXACT");
  for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
    kn_dtype q = fmts[f];
    int64_t QK = kn_dtype_get(q)->block_elems;
    for (int r = 0; r < 8; r++) {
      int64_t T = r == 0 ? rint_in(65, 140) : rint_in(2, 20), N = rint_in(1, 24), K = QK * rint_in(1, QK == 32 ? 8 : 3);
      int64_t H = rint_in(1, 4), D = rint_in(1, 8);
      if (r == 7) N = H * D;
      /* 0 none, 1 bias, 2 residual, 3 silu gate, 4 f16 row store at a variable position, 5 f16 rows scattered to
       * rows chosen at run time (out_row: batched KV caches), 6 a fused SiLU-gated MLP: two reduces over the same
       * activations, silu(x W) * (x W2), W2 in buffer 4; 7 the V projection of a batched pass: a bias through two views
       * ([N] as [H, D]), f16 rows at run-time rows through two views ([T, N] as [T, H, D], element (h, d) at d * H + h
       * of its row), the rows' load through three */
      int epi = r;
      bool tiled = true, intdot = cpu; /* both templates take every epilogue; GPUs: the exact decode */
      int64_t ctx = T + 5, pos = epi == 4 ? rint_in(0, 5) : 0;
      char name[96];
      snprintf(name, sizeof name, "qmm %s T %lld N %lld K %lld epilogue %d", kn_dtype_name(q), (long long)T, (long long)N, (long long)K, epi);
      kn_kernel *k = kn_kernel_new();
      k->nbufs = epi >= 5 ? 5 : 4;
      kn_dtype od = epi == 4 || epi == 5 || epi == 7 ? KN_F16 : KN_F32;
      int64_t osz = epi == 4 || epi == 5 || epi == 7 ? ctx * N : T * N;
      int32_t *rows = malloc((size_t)T * 4);
      for (int64_t t = 0; t < T; t++) rows[t] = (int32_t)((t * 7 + 3) % ctx);
      for (int64_t t = 0; t < T && (epi == 5 || epi == 7); t++) /* distinct rows: a permutation of a few */
        for (int64_t u = 0; u < t; u++)
          if (rows[u] == rows[t]) rows[t] = (rows[t] + 1) % (int32_t)ctx, u = -1;
      if (epi == 5 || epi == 7) k->bufs[4] = (kn_kbuf){KN_I32, T};
      if (epi == 6) k->bufs[4] = (kn_kbuf){q, N * K};
      k->bufs[0] = (kn_kbuf){od, osz}, k->bufs[1] = (kn_kbuf){KN_F32, T * K};
      k->bufs[2] = (kn_kbuf){q, N * K}, k->bufs[3] = (kn_kbuf){KN_F32, T * N};
      void *out = calloc((size_t)osz, 4);
      float *x = malloc((size_t)(T * K) * 4), *ad = malloc((size_t)(T * N) * 4);
      void *w = malloc((size_t)kn_dtype_nbytes(q, N * K)), *w2 = malloc((size_t)kn_dtype_nbytes(q, N * K));
      for (int64_t i = 0; i < T * K; i++) x[i] = runif(-1, 1) * (i % 7 == 0 ? 3.0f : 1.0f);
      for (int64_t i = 0; i < T * N; i++) ad[i] = runif(-2, 2);
      kn_ref_fill_random(q, w, N * K, &rs);
      kn_ref_fill_random(q, w2, N * K, &rs);
      int64_t sh[3] = {T, N, K}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1}, sa[3] = {N, 1, 0}, sb[3] = {0, 1, 0};
      set_space(k, 3, sh, 1);
      kn_st a = st_strided(3, sh, sx, 0), b = st_strided(3, sh, sw, 0);
      int64_t osh[3] = {T, N, 1};
      kn_st as = st_strided(3, osh, epi == 1 ? sb : sa, 0);
      kn_kop *mm = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &a), kn_kop_load(k, 2, KN_F32, &b), NULL));
      kn_kop *extra = kn_kop_load(k, 3, KN_F32, &as);
      if (epi == 1 || epi == 2) mm = kn_kop_alu(k, KN_KOP_ADD, KN_F32, 2, extra, mm, NULL);
      if (epi == 7) { /* the bias [N] read as [H, D] under the output's shape; the store and the rows as the model's */
        int64_t hd[2] = {H, D}, hs[2] = {D, 1}, tn[3] = {T, N, 1}, tnb[3] = {0, 1, 0}, thd[3] = {T, H, D}, ot[3] = {N, 1, 0};
        int64_t oh[3] = {0, 1, H}, rs3[3] = {1, 0, 0};
        kn_st bias = st_strided(2, hd, hs, 0);
        bias.nviews = 2, bias.v[1] = st_strided(3, tn, tnb, 0).v[0];
        mm = kn_kop_alu(k, KN_KOP_ADD, KN_F32, 2, kn_kop_load(k, 3, KN_F32, &bias), mm, NULL);
        mm = kn_kop_alu(k, KN_KOP_CAST, KN_F16, 1, mm, NULL, NULL);
        k->out_st = st_strided(3, thd, oh, 0);
        k->out_st.nviews = 2, k->out_st.v[1] = st_strided(3, tn, ot, 0).v[0];
        kn_st rst = st_strided(1, &T, (int64_t[]){1}, 0);
        rst.nviews = 3, rst.v[1] = st_strided(3, thd, rs3, 0).v[0], rst.v[2] = k->out_st.v[1];
        k->out_row = kn_kop_load(k, 4, KN_I32, &rst), k->out_row_stride = N;
      }
      if (epi == 3) { /* silu(g) * mm, silu(g) = g / (1 + 2^(-g log2 e)) as the model writes it */
        kn_kop *e2 = kn_kop_alu(k, KN_KOP_EXP2, KN_F32, 1, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_alu(k, KN_KOP_NEG, KN_F32, 1, extra, NULL, NULL), kn_kop_const_f(k, KN_F32, 1.4426950408889634), NULL), NULL, NULL);
        kn_kop *sg = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, extra, kn_kop_alu(k, KN_KOP_RECIP, KN_F32, 1, kn_kop_alu(k, KN_KOP_ADD, KN_F32, 2, e2, kn_kop_const_f(k, KN_F32, 1), NULL), NULL, NULL), NULL);
        mm = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, sg, mm, NULL);
      }
      if (epi == 6) { /* silu(mm) * (x W2), sharing mm's activation load */
        kn_kop *up = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, mm->src[0]->src[0], kn_kop_load(k, 4, KN_F32, &b), NULL));
        kn_kop *e2 = kn_kop_alu(k, KN_KOP_EXP2, KN_F32, 1, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_alu(k, KN_KOP_NEG, KN_F32, 1, mm, NULL, NULL), kn_kop_const_f(k, KN_F32, 1.4426950408889634), NULL), NULL, NULL);
        kn_kop *sg = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, mm, kn_kop_alu(k, KN_KOP_RECIP, KN_F32, 1, kn_kop_alu(k, KN_KOP_ADD, KN_F32, 2, e2, kn_kop_const_f(k, KN_F32, 1), NULL), NULL, NULL), NULL);
        mm = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, sg, up, NULL);
      }
      if (epi == 5) {
        mm = kn_kop_alu(k, KN_KOP_CAST, KN_F16, 1, mm, NULL, NULL);
        int64_t so[3] = {0, 1, 0}, sr[3] = {1, 0, 0};
        k->out_st = st_strided(3, osh, so, 0);
        kn_st rs_st = st_strided(3, osh, sr, 0);
        k->out_row = kn_kop_load(k, 4, KN_I32, &rs_st), k->out_row_stride = N;
      }
      if (epi == 4) {
        mm = kn_kop_alu(k, KN_KOP_CAST, KN_F16, 1, mm, NULL, NULL);
        k->nvars = 1;
        snprintf(k->vars[0].name, sizeof k->vars[0].name, "start_pos");
        k->vars[0].min = 0, k->vars[0].max = ctx - T;
        int64_t so[3] = {N, 1, 0};
        k->out_st = st_strided(3, osh, so, 0);
        k->out_st.v[0].offset.v = 0, k->out_st.v[0].offset.k = N;
      }
      k->root = mm;
      char err[512] = "";
      kn_compiled comp;
      kn_program *p = NULL;
      bool ok = !kn_compile(k, kn_device_target(dev), &comp, err, sizeof err) &&
                (p = kn_program_load(dev, comp.entry, comp.obj, comp.obj_size, err, sizeof err));
      if (ok && (strncmp(comp.name, "qmm_", 4) == 0) != tiled)
        ok = false, snprintf(err, sizeof err, "compiled as %s, %s", comp.name, tiled ? "not by the tiled template" : "which is the CPU's tiled template");
      if (ok) { /* host memory where the device takes it, else device buffers and copies */
        void *host[5] = {out, x, w, ad, epi == 6 ? w2 : (void *)rows};
        size_t nb[5] = {(size_t)kn_dtype_nbytes(od, osz), (size_t)(T * K) * 4, (size_t)kn_dtype_nbytes(q, N * K),
                        (size_t)(T * N) * 4, epi == 6 ? (size_t)kn_dtype_nbytes(q, N * K) : (size_t)T * 4};
        memset(out, 0xff, nb[0]); /* NaN */
        int64_t vars[1] = {pos};
        ok = k->nbufs <= 5 && launch_host(p, &comp, host, nb, k->nbufs, vars, k->nvars, err, sizeof err);
      }
      int bad = 0;
      for (int64_t n = 0; ok && n < N; n++) {
        for (int64_t t = 0; t < T; t++) {
          /* the general lowering and the GPU's template: the exact decode; f32 sums in another order than the
           * reference's (a GPU: 256-element chunks, lanes, then a butterfly) */
          double mag, mag2, want = kn_ref_qdot_row(q, w, n, K, x + t * K, NULL, !intdot, &mag),
                            want2 = kn_ref_qdot_row(q, w2, n, K, x + t * K, NULL, !intdot, &mag2);
          double e = ad[epi == 1 || epi == 7 ? n : t * N + n], tol = (cpu ? 2e-6 : 1e-5) * mag + 1e-6;
          if (epi == 1 || epi == 2 || epi == 7) want += e, tol += 1e-6 * fabs(e);
          if (epi == 3) {
            double sg = e / (1 + exp(-e));
            want *= sg, tol = tol * fabs(sg) + 1e-5 * fabs(want);
          }
          if (epi == 6) { /* d silu(g) / dg is within [-0.1, 1.1] */
            double sg = want / (1 + exp(-want)), tol2 = (cpu ? 2e-6 : 1e-5) * mag2 + 1e-6;
            want = sg * want2, tol = 1.1 * tol * fabs(want2) + fabs(sg) * tol2 + 1e-5 * fabs(want);
          }
          double got;
          if (epi == 4) got = kn_ref_f16_to_f32(((uint16_t *)out)[(pos + t) * N + n]), tol += fabs(want) / 1024;
          else if (epi == 5) got = kn_ref_f16_to_f32(((uint16_t *)out)[rows[t] * N + n]), tol += fabs(want) / 1024;
          else if (epi == 7) got = kn_ref_f16_to_f32(((uint16_t *)out)[rows[t] * N + n % D * H + n / D]), tol += fabs(want) / 1024;
          else got = ((float *)out)[t * N + n];
          if (!(fabs(got - want) <= tol) && bad++ < 3)
            fail_line("%s (%s): out[%lld, %lld] = %.9g, want %.9g (magnitude %.3g)", name, comp.name, (long long)t, (long long)n,
                      got, want, mag);
        }
      }
      if (!ok) fail_line("%s: %s", name, err);
      if (ok && !bad) passed++;
      else failed++;
      free(out), free(x), free(ad), free(w), free(w2), free(rows);
      kn_program_free(p);
      if (ok || comp.obj) kn_compiled_free(&comp);
      kn_kernel_free(k);
    }
  }
  setenv("KILN_EXACT", "1", 1);
}

/* The kernel out[T, N] = x[T, K] . W[N, K], W in format q (f32 x; buffers 0 out, 1 x, 2 W) */
static kn_kernel *mm_kernel(kn_dtype q, int64_t T, int64_t N, int64_t K) {
  kn_kernel *k = kn_kernel_new();
  k->nbufs = 3;
  k->bufs[0] = (kn_kbuf){KN_F32, T * N}, k->bufs[1] = (kn_kbuf){KN_F32, T * K}, k->bufs[2] = (kn_kbuf){q, N * K};
  int64_t sh[3] = {T, N, K}, sx[3] = {K, 0, 1}, sw[3] = {0, K, 1};
  set_space(k, 3, sh, 1);
  kn_st a = st_strided(3, sh, sx, 0), b = st_strided(3, sh, sw, 0);
  k->root = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, kn_kop_load(k, 1, KN_F32, &a), kn_kop_load(k, 2, KN_F32, &b), NULL));
  return k;
}

/* out[T, N] = x[T, K] . W[N, K] compiled for dev and run; the kernel's name in *name; false with err */
static bool run_mm(kn_dtype q, int64_t T, int64_t N, int64_t K, const float *x, const void *w, float *out, char *name, char *err, size_t errlen) {
  kn_kernel *k = mm_kernel(q, T, N, K);
  kn_compiled comp = {0};
  kn_program *p = NULL;
  bool ok = !kn_compile(k, kn_device_target(dev), &comp, err, errlen) && (p = kn_program_load(dev, comp.entry, comp.obj, comp.obj_size, err, errlen));
  if (ok) snprintf(name, 64, "%s", comp.name);
  void *host[3] = {out, (void *)x, (void *)w};
  size_t nb[3] = {(size_t)(T * N) * 4, (size_t)(T * K) * 4, (size_t)kn_dtype_nbytes(q, N * K)};
  ok = ok && launch_host(p, &comp, host, nb, 3, NULL, 0, err, errlen);
  kn_program_free(p);
  if (comp.obj) kn_compiled_free(&comp);
  kn_kernel_free(k);
  return ok;
}

/* The integer-dot mode's promise to continuous batching: a row's dot is the same whatever else its pass holds. Each
 * of T tokens alone (T = 1: the GEMV, its activations quantized once per call) and all of them in one launch (the
 * tiled template, quant_mm.c) give the same bits, N past a register block, T of a batched decode pass and past 16
 * (Q8_0's records change there), every format at block counts that take each of the GEMV's record shapes (one
 * block, pairs, groups of four, and odd counts where a row's last record is narrower), on 64-, 32- and 16-byte
 * vectors (Q2_K and Q3_K on AVX-512 in both in the 2-bit fields' chunk order, Q3_K on AVX2 in its dword-pair order,
 * kn_quant_x_order; AVX2 Q2_K/Q3_K with fields masked in place, their sums 16 times and dx / 16). */
static void test_qmm_alone(void) {
  const kn_target *tg = kn_device_target(dev);
  if (tg->kind != KN_TARGET_CPU) return;
  kn_dtype fmts[] = {KN_Q4_0, KN_Q4_1, KN_Q5_0, KN_Q5_1, KN_Q8_0, KN_Q2_K, KN_Q3_K, KN_Q4_K, KN_Q5_K, KN_Q6_K};
  /* blocks per row: 32-element formats an odd count (one block per QDOT), 2 and 6 (pairs), 4, 8, 28 (groups of
   * four); the K formats 1, 3, 4 */
  const int64_t nb32[] = {1, 3, 5, 2, 6, 4, 8, 28}, nbk[] = {1, 3, 4};
  unsetenv("KILN_EXACT");
  for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++)
    for (int r = 0; r < 8; r++) {
      kn_dtype q = fmts[f];
      int64_t QK = kn_dtype_get(q)->block_elems;
      if (QK != 32 && r >= 3) continue;
      int64_t T = r == 2 || r == 7 ? rint_in(17, 40) : rint_in(2, 9), N = rint_in(1, 70);
      int64_t K = QK * (QK == 32 ? nb32[r] : nbk[r]);
      char name[96], n1[64] = "", nt[64] = "", err[512] = "";
      snprintf(name, sizeof name, "qmm alone %s T %lld N %lld K %lld", kn_dtype_name(q), (long long)T, (long long)N, (long long)K);
      float *x = malloc((size_t)(T * K) * 4), *one = malloc((size_t)(T * N) * 4), *all = malloc((size_t)(T * N) * 4);
      void *w = malloc((size_t)kn_dtype_nbytes(q, N * K));
      for (int64_t i = 0; i < T * K; i++) x[i] = runif(-1, 1) * (i % 7 == 0 ? 3.0f : 1.0f);
      kn_ref_fill_random(q, w, N * K, &rs);
      bool ok = run_mm(q, T, N, K, x, w, all, nt, err, sizeof err);
      for (int64_t t = 0; t < T && ok; t++) ok = run_mm(q, 1, N, K, x + t * K, w, one + t * N, n1, err, sizeof err);
      if (ok && strncmp(nt, "qmm_", 4)) ok = false, snprintf(err, sizeof err, "%lld tokens compiled as %s, not by the tiled template", (long long)T, nt);
      int bad = 0;
      for (int64_t i = 0; ok && i < T * N; i++)
        if (memcmp(&one[i], &all[i], 4) && bad++ < 3)
          fail_line("%s (%s, alone %s): out[%lld, %lld] = %.9g in the launch of %lld tokens, %.9g alone", name, nt, n1,
                    (long long)(i / N), (long long)(i % N), all[i], (long long)T, one[i]);
      if (!ok) fail_line("%s: %s", name, err);
      if (ok && !bad) passed++;
      else failed++;
      free(x), free(one), free(all), free(w);
    }
  setenv("KILN_EXACT", "1", 1);
}

/* The float GEMV (decode over f32, f16 or bf16 weights; codegen/opt.c, lower.c, index.c): one row per work item, the
 * reduce unrolled to a 64-byte line of weights per step with an accumulator per step (red_split: 64 / (lanes x item
 * size), at most 4, where K allows, halved until it does), each step's line prefetched one work item ahead (KILN_PREFETCH_BYTES
 * or more, whole items) and the call's first items before the item loop; KILN_PREFETCH=0: no prefetch, rows in
 * register blocks again. A batched decode's matmul (T = 3: the weight reused along the tokens) splits its
 * accumulators alike, so each of its rows is the same bits as the GEMV's; and every result is within the f32
 * tolerance of a double-precision reference. */
static void test_stream_gemv(void) {
  const kn_target *tg = kn_device_target(dev);
  if (tg->kind != KN_TARGET_CPU) return;
  kn_dtype dts[] = {KN_F32, KN_F16, KN_BF16};
  for (int r = 0; r < 12; r++) {
    kn_dtype dt = dts[r % 3];
    int isz = kn_dtype_get(dt)->itemsize;
    int64_t N = rint_in(1, 45), K = r < 6 ? 64 * rint_in(1, 40) : 8 * rint_in(1, 90), T = 3;
    char name[96], mm[64] = "", err[256] = "";
    snprintf(name, sizeof name, "stream gemv %s N %lld K %lld", kn_dtype_name(dt), (long long)N, (long long)K);
    float *x = malloc((size_t)(T * K) * 4), *one = malloc((size_t)(T * N) * 4), *all = malloc((size_t)(T * N) * 4);
    void *w = malloc((size_t)(N * K * isz));
    fill_buf(KN_F32, x, T * K, -1, 1);
    fill_buf(dt, w, N * K, -1, 1);
    int bad = 0;
    /* the schedule and its loop IR */
    for (int64_t t = 1; t <= T + 1; t += t == 1 ? T - 1 : 1) { /* 1, 3 and 4 tokens */
      kn_kernel *k = mm_kernel(dt, t, N, K);
      kn_sched s;
      for (int pf = 1; pf >= 0; pf--) {
        if (!pf) setenv("KILN_PREFETCH", "0", 1);
        if (kn_opt_schedule(k, tg, &s, err, sizeof err)) {
          bad++, fail_line("%s T %lld: schedule: %s", name, (long long)t, err);
          break;
        }
        int64_t lanes = s.vec >= 0 ? s.p[s.vec].size : 1, want = lanes > 1 ? 64 / (lanes * isz) : 1, up = 1;
        if (want > 4) want = 4;
        while (want > 1 && K % (lanes * want)) want /= 2;
        for (int i = 0; i < s.n; i++)
          if (s.p[i].kind == KN_AX_UPCAST) up *= s.p[i].size;
        int split = s.red_split > 1 ? s.red_split : 1;
        bool streamed = pf && t == 1;
        if ((s.stream_bufs != (streamed ? 4u : 0u) || split != want || (streamed && up != 1) || (s.vec >= 0 && s.p[s.vec].kind != KN_AX_RVEC)) && bad++ < 3)
          fail_line("%s T %lld prefetch %d: streamed %#x split %d rows %lld (want %#x, %lld, 1)", name, (long long)t, pf,
                    s.stream_bufs, split, (long long)up, streamed ? 4u : 0u, (long long)want);
        bool tokens_up = false; /* 4 tokens: in registers, the weights read once for all of them */
        for (int i = 0; i < s.n; i++) tokens_up |= s.p[i].kind == KN_AX_UPCAST && s.p[i].axis == 0;
        if (t == 4 && !tokens_up && bad++ < 3) fail_line("%s T 4: the tokens are not in a register block (split %d)", name, split);
        kn_lprog *lp = kn_lower(k, &s, err, sizeof err);
        if (!lp) {
          bad++, fail_line("%s T %lld: lowering: %s", name, (long long)t, err);
          break;
        }
        int64_t items = lp->global[0], per = t * N * K / items, ahead = per * ((8192 + per * isz - 1) / (per * isz));
        int64_t unroll = 1, want_pf = 0; /* a prefetch for each unrolled step whose offset is a whole line */
        for (int i = 0; i < s.n; i++)
          if (s.p[i].kind == KN_AX_UNROLL) unroll *= s.p[i].size;
        for (int64_t u = 0; u < unroll && streamed; u++) want_pf += u * lanes * isz % 64 == 0;
        int lead = 0, in = 0;
        bool in_items = false;
        for (int i = 0; i < lp->n; i++) {
          const kn_lop *o = &lp->ops[i];
          in_items |= o->op == KN_L_SPECIAL && o->arg == KN_SP_GLOBAL0;
          if (o->op != KN_L_PREFETCH) continue;
          if (!in_items) {
            lead++;
            if (o->size != ahead * isz && bad++ < 3) fail_line("%s: lead PREFETCH of %lld bytes, want %lld", name, (long long)o->size, (long long)(ahead * isz));
            continue;
          }
          in++;
          const kn_lop *ad = &lp->ops[o->src[1]], *ld = NULL; /* the weight's load it runs ahead of follows it */
          for (int j = i + 1; j < lp->n && !ld; j++)
            if (lp->ops[j].op == KN_L_LOAD && lp->ops[j].src[0] == o->src[0]) ld = &lp->ops[j];
          bool at = ld && ad->op == KN_L_ALU && ad->alu == KN_KOP_ADD &&
                    ((ad->src[0] == ld->src[1] && lp->ops[ad->src[1]].op == KN_L_CONST && lp->ops[ad->src[1]].val.i == ahead) ||
                     (ad->src[1] == ld->src[1] && lp->ops[ad->src[0]].op == KN_L_CONST && lp->ops[ad->src[0]].val.i == ahead));
          if (!at && bad++ < 3) fail_line("%s: PREFETCH %d is not its load's address %lld elements ahead", name, i, (long long)ahead);
        }
        if ((in != want_pf || lead != (streamed && ahead > 0)) && bad++ < 3)
          fail_line("%s T %lld prefetch %d: %d PREFETCH per step (want %lld), %d before the items", name, (long long)t, pf, in,
                    (long long)want_pf, lead);
        kn_lprog_free(lp);
      }
      unsetenv("KILN_PREFETCH");
      kn_kernel_free(k);
    }
    /* results: each token alone, and all three in one launch */
    bool ok = run_mm(dt, T, N, K, x, w, all, mm, err, sizeof err);
    for (int64_t t = 0; t < T && ok; t++) ok = run_mm(dt, 1, N, K, x + t * K, w, one + t * N, mm, err, sizeof err);
    if (!ok) bad++, fail_line("%s: %s", name, err);
    for (int64_t t = 0; t < T && ok; t++)
      for (int64_t n = 0; n < N; n++) {
        double ref = 0, mag = 0;
        for (int64_t j = 0; j < K; j++) {
          double wv = dt == KN_F32 ? ((float *)w)[n * K + j] : dt == KN_F16 ? kn_ref_f16_to_f32(((uint16_t *)w)[n * K + j])
                                                                               : kn_ref_bf16_to_f32(((uint16_t *)w)[n * K + j]);
          ref += (double)x[t * K + j] * wv, mag += fabs((double)x[t * K + j] * wv);
        }
        float g = one[t * N + n];
        if (fabs(g - ref) > 1e-5 * mag + 1e-30 && bad++ < 3)
          fail_line("%s: token %lld row %lld = %.9g, want %.9g", name, (long long)t, (long long)n, g, ref);
        if (memcmp(&g, &all[t * N + n], 4) && bad++ < 3)
          fail_line("%s: token %lld row %lld alone %.9g, in the batch %.9g (not the same bits)", name, (long long)t, (long long)n, g, all[t * N + n]);
      }
    if (bad) failed++;
    else passed++;
    free(x), free(one), free(all), free(w);
  }
}

/* an in-place update (the output buffer is also read) and an elementwise op over a reduce result of f16 */
static void test_misc(void) {
  for (int r = 0; r < 4; r++) {
    int64_t sh[2] = {rint_in(1, 30), rint_in(1, 50)};
    tcase *c = tc_new("in-place add #%d", r);
    kn_kernel *k = c->k;
    tc_buf(c, 0, KN_F32, sh[0] * sh[1], -1, 1);
    tc_buf(c, 1, KN_F32, sh[0] * sh[1], -1, 1);
    set_space(k, 2, sh, 0);
    kn_st st = st_contig(2, sh);
    k->root = kn_kop_alu(k, KN_KOP_ADD, KN_F32, 2, kn_kop_load(k, 0, KN_F32, &st), kn_kop_load(k, 1, KN_F32, &st), NULL);
    run(c);
  }
  /* KV-cache write: rows [pos, pos + T) of a [ctx, D] cache, pos a variable of the out_st offset; and a store
   * through a masked output view (only a window is written) */
  for (int r = 0; r < 8; r++) {
    int64_t T = rint_in(1, 5), D = r % 2 ? 16 * rint_in(1, 4) : rint_in(1, 40), ctx = 16;
    bool masked = r >= 4;
    tcase *c = tc_new("%s #%d T %lld D %lld", masked ? "masked store" : "kv write at pos", r, (long long)T, (long long)D);
    kn_kernel *k = c->k;
    tc_buf(c, 0, KN_F16, ctx * D, -1, 1);
    tc_buf(c, 1, KN_F32, T * D, -1, 1);
    int64_t sh[2] = {T, D}, cs[2] = {D, 1};
    set_space(k, 2, sh, 0);
    k->out_st = st_strided(2, sh, cs, 0);
    if (masked) {
      k->out_st.v[0].masked = true;
      k->out_st.v[0].mask_lo[0] = 0, k->out_st.v[0].mask_hi[0] = T;
      k->out_st.v[0].mask_lo[1] = rint_in(0, D - 1), k->out_st.v[0].mask_hi[1] = D;
    } else {
      k->nvars = 1;
      k->vars[0].min = 0, k->vars[0].max = ctx - T;
      c->vars[0] = rint_in(0, ctx - T);
      k->out_st.v[0].offset.v = 0, k->out_st.v[0].offset.k = D;
    }
    kn_st st = st_contig(2, sh);
    k->root = kn_kop_alu(k, KN_KOP_CAST, KN_F16, 1, kn_kop_load(k, 1, KN_F32, &st), NULL, NULL);
    run(c);
  }
  /* rmsnorm-like: out[i] = x[i, :] . x[i, :] / n then rsqrt, in one kernel with the epilogue */
  for (int r = 0; r < 4; r++) {
    int64_t sh[2] = {rint_in(1, 9), 16 * rint_in(1, 20)};
    tcase *c = tc_new("sumsq-rsqrt #%d", r);
    kn_kernel *k = c->k;
    tc_buf(c, 0, KN_F32, sh[0], 0, 0);
    tc_buf(c, 1, KN_F32, sh[0] * sh[1], -1, 1);
    set_space(k, 2, sh, 1);
    kn_st st = st_contig(2, sh);
    kn_kop *x = kn_kop_load(k, 1, KN_F32, &st);
    kn_kop *ss = kn_kop_reduce(k, KN_KOP_ADD, kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, x, x, NULL));
    kn_kop *m = kn_kop_alu(k, KN_KOP_MUL, KN_F32, 2, ss, kn_kop_const_f(k, KN_F32, 1.0 / (double)sh[1]), NULL);
    k->root = kn_kop_alu(k, KN_KOP_RECIP, KN_F32, 1, kn_kop_alu(k, KN_KOP_SQRT, KN_F32, 1, kn_kop_alu(k, KN_KOP_ADD, KN_F32, 2, m, kn_kop_const_f(k, KN_F32, 1e-5), NULL), NULL, NULL), NULL, NULL);
    c->rtol = 1e-4;
    run(c);
  }
}

/* argv[1] "quant": only the block-format cases (tests/meson.build runs them again under KILN_CPU=x86-64-v3) */
int main(int argc, char **argv) {
  char err[256];
  bool quant_only = argc > 1 && !strcmp(argv[1], "quant");
  setenv("KILN_EXACT", "1", 1); /* the interpreter's oracle is the exact decode; test_qdot covers the default mode */
  if (!(dev = kn_device_open(NULL, err, sizeof err))) { /* $DEVICE, else the CPU */
    if (getenv("KILN_CPU") && strstr(err, "KILN_CPU")) {
      printf("SKIP: %s\n", err);
      return 77;
    }
    printf("FAIL: cannot open the device: %s\n", err);
    return 1;
  }
  printf("target %s %s, %d-byte vectors\n", kn_device_target(dev)->cpu, kn_device_target(dev)->triple, kn_device_target(dev)->vector_bytes);
  if (argc > 1 && !strcmp(argv[1], "alone")) { /* only the batched-vs-lone equality (quick to rerun) */
    test_qmm_alone();
    printf("%d passed, %d failed\n", passed, failed);
    kn_device_close(dev);
    return failed ? 1 : 0;
  }
  if (quant_only) {
    test_quant();
    test_qdot();
    if (kn_device_target(dev)->kind == KN_TARGET_CPU) test_qdot_pair(), test_qdot_rope_pair(), test_prefetch();
    test_qmm();
    test_qmm_alone();
    printf("%d passed, %d failed\n", passed, failed);
    kn_device_close(dev);
    return failed ? 1 : 0;
  }
  test_alu();
  test_where_chain();
  test_casts();
  test_views();
  test_reduce();
  test_reduce_split();
  test_idx_var();
  test_gather();
  test_matmul();
  test_stream_gemv();
  test_quant();
  test_qdot();
  if (kn_device_target(dev)->kind == KN_TARGET_CPU) test_qdot_pair(), test_qdot_rope_pair(), test_prefetch();
  test_qmm();
  test_qmm_alone();
  test_misc();
  kn_cache_stats s = kn_cache_process_stats();
  printf("compiles: %lld cache hits, %lld misses\n", (long long)s.hits, (long long)s.misses);
  printf("%d passed, %d failed\n", passed, failed);
  kn_device_close(dev);
  return failed ? 1 : 0;
}
