/* The reference interpreter of kernel ASTs for test_codegen (see kernel_ref.h). */
#include <math.h>
#include <string.h>

#include "tests/kernel_ref.h"
#include "tests/ref_quant.h"

/* ---- values ---- */


static double round_f(kn_dtype dt, double x) {
  if (dt == KN_F16) return kn_ref_f16_to_f32(kn_ref_f32_to_f16((float)x));
  if (dt == KN_BF16) return kn_ref_bf16_to_f32(kn_ref_f32_to_bf16((float)x));
  return (float)x;
}

static int64_t wrap_i(kn_dtype dt, int64_t x) {
  switch (dt) {
  case KN_BOOL: return x != 0;
  case KN_I8: return (int8_t)x;
  case KN_U8: return (uint8_t)x;
  case KN_I16: return (int16_t)x;
  case KN_U16: return (uint16_t)x;
  case KN_I32: return (int32_t)x;
  case KN_U32: return (uint32_t)x;
  default: return x;
  }
}

val kn_kref_mk(kn_dtype dt, double f, int64_t i) {
  val v = {0, 0};
  if (kn_dtype_is_float(dt)) v.f = round_f(dt, f);
  else v.i = wrap_i(dt, i);
  return v;
}

/* f16/bf16 math happens in f32: only stores and explicit casts round to the dtype */
static val fr(double x) { return (val){(float)x, 0}; }

val kn_kref_read(kn_dtype dt, const void *p, int64_t i) {
  const unsigned char *b = p;
  switch (dt) {
  case KN_F32: return (val){((const float *)p)[i], 0};
  case KN_F16: return (val){kn_ref_f16_to_f32(((const uint16_t *)p)[i]), 0};
  case KN_BF16: return (val){kn_ref_bf16_to_f32(((const uint16_t *)p)[i]), 0};
  case KN_BOOL: return (val){0, b[i] != 0};
  case KN_I8: return (val){0, ((const int8_t *)p)[i]};
  case KN_U8: return (val){0, b[i]};
  case KN_I16: return (val){0, ((const int16_t *)p)[i]};
  case KN_U16: return (val){0, ((const uint16_t *)p)[i]};
  case KN_I32: return (val){0, ((const int32_t *)p)[i]};
  case KN_U32: return (val){0, ((const uint32_t *)p)[i]};
  case KN_I64: case KN_U64: return (val){0, ((const int64_t *)p)[i]};
  default: return (val){kn_ref_dequant_one(dt, p, i), 0};
  }
}

/* ---- the interpreter ---- */


bool kn_kref_index(const kn_st *st, const int64_t *idx, const int64_t *vars, int64_t *out) {
  int64_t cur[KN_MAXDIM], L = 0;
  const kn_view *top = &st->v[st->nviews - 1];
  memcpy(cur, idx, sizeof(int64_t) * (size_t)top->ndim);
  for (int vi = st->nviews - 1; vi >= 0; vi--) {
    const kn_view *v = &st->v[vi];
    if (vi < st->nviews - 1)
      for (int j = v->ndim - 1; j >= 0; j--) cur[j] = j ? L % v->shape[j] : L, L /= v->shape[j];
    if (v->masked)
      for (int j = 0; j < v->ndim; j++)
        if (cur[j] < v->mask_lo[j] || cur[j] >= v->mask_hi[j]) return false;
    L = v->offset.c + (v->offset.v >= 0 ? v->offset.k * vars[v->offset.v] : 0);
    for (int j = 0; j < v->ndim; j++) L += cur[j] * v->strides[j];
  }
  *out = L;
  return true;
}



static val reduce(const kn_kref *r, const kn_kop *x, const int64_t *idx) {
  const kn_kernel *k = r->k;
  int nout = k->ndim - k->nreduce;
  int64_t full[KN_MAXDIM];
  memcpy(full, idx, sizeof full);
  for (int a = nout; a < k->ndim; a++) full[a] = 0;
  kn_dtype dt = x->dtype;
  bool f = kn_dtype_is_float(dt);
  val acc = x->rop == KN_KOP_ADD ? kn_kref_mk(dt, 0, 0) : x->rop == KN_KOP_MUL ? kn_kref_mk(dt, 1, 1) : (val){-INFINITY, INT64_MIN};
  if (x->rop == KN_KOP_MAX && !f && !kn_dtype_get(dt)->is_signed) acc.i = 0;
  for (;;) {
    val v = kn_kref_eval(r, x->src[0], full);
    if (x->rop == KN_KOP_ADD) acc = f ? fr((float)acc.f + (float)v.f) : kn_kref_mk(dt, 0, (int64_t)((uint64_t)acc.i + (uint64_t)v.i));
    else if (x->rop == KN_KOP_MUL) acc = f ? fr((float)acc.f * (float)v.f) : kn_kref_mk(dt, 0, (int64_t)((uint64_t)acc.i * (uint64_t)v.i));
    else if (f) acc.f = v.f > acc.f ? v.f : acc.f;
    else if (kn_dtype_get(dt)->is_signed) acc.i = v.i > acc.i ? v.i : acc.i;
    else acc.i = (uint64_t)v.i > (uint64_t)acc.i ? v.i : acc.i;
    int a = k->ndim - 1;
    for (; a >= nout; a--) {
      if (++full[a] < k->shape[a]) break;
      full[a] = 0;
    }
    if (a < nout) break;
  }
  return acc;
}

static val cast_val(val v, kn_dtype from, kn_dtype to) {
  bool ff = kn_dtype_is_float(from), tf = kn_dtype_is_float(to);
  if (to == KN_BOOL) return (val){0, ff ? v.f != 0 : v.i != 0};
  if (ff && tf) return kn_kref_mk(to, v.f, 0);
  if (ff) return kn_kref_mk(to, 0, kn_dtype_get(to)->is_signed ? (int64_t)v.f : (int64_t)(uint64_t)v.f);
  if (tf) return kn_kref_mk(to, kn_dtype_get(from)->is_signed || from == KN_BOOL ? (double)v.i : (double)(uint64_t)v.i, 0);
  return kn_kref_mk(to, 0, v.i);
}

static uint64_t bits_of(val v, kn_dtype dt) {
  if (dt == KN_F32) {
    float f = (float)v.f;
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
  }
  if (dt == KN_F16) return kn_ref_f32_to_f16((float)v.f);
  if (dt == KN_BF16) return kn_ref_f32_to_bf16((float)v.f);
  return (uint64_t)v.i;
}

static val from_bits(uint64_t u, kn_dtype dt) {
  if (dt == KN_F32) {
    uint32_t w = (uint32_t)u;
    float f;
    memcpy(&f, &w, 4);
    return (val){f, 0};
  }
  if (dt == KN_F16) return (val){kn_ref_f16_to_f32((uint16_t)u), 0};
  if (dt == KN_BF16) return (val){kn_ref_bf16_to_f32((uint16_t)u), 0};
  return kn_kref_mk(dt, 0, (int64_t)u);
}

static val alu_f(kn_kop_type op, kn_dtype dt, val a, val b, val c, kn_dtype sdt) {
  float x = (float)a.f, y = (float)b.f;
  switch (op) {
  case KN_KOP_NEG: return fr(-x);
  case KN_KOP_RECIP: return fr(1.0f / x);
  case KN_KOP_SQRT: return fr(sqrtf(x));
  case KN_KOP_EXP2: return fr(exp2f(x));
  case KN_KOP_LOG2: return fr(log2f(x));
  case KN_KOP_SIN: return fr(sinf(x));
  case KN_KOP_TRUNC: return fr(truncf(x));
  case KN_KOP_ADD: return fr(x + y);
  case KN_KOP_SUB: return fr(x - y);
  case KN_KOP_MUL: return fr(x * y);
  case KN_KOP_DIV: return fr(x / y);
  case KN_KOP_MAX: return fr(x > y ? x : y);
  case KN_KOP_MIN: return fr(x < y ? x : y);
  case KN_KOP_CMPLT: return (val){0, x < y};
  case KN_KOP_CMPEQ: return (val){0, x == y};
  case KN_KOP_CMPNE: return (val){0, x != y};
  case KN_KOP_POW: return fr(powf(x, y));
  default: (void)c, (void)sdt; return (val){NAN, 0};
  }
}

static val alu_i(kn_kop_type op, kn_dtype dt, val a, val b, kn_dtype sdt) {
  bool s = kn_dtype_get(sdt)->is_signed && sdt != KN_BOOL;
  uint64_t x = (uint64_t)a.i, y = (uint64_t)b.i;
  int bits = 8 * kn_dtype_get(sdt)->itemsize;
  switch (op) {
  case KN_KOP_NEG: return kn_kref_mk(dt, 0, (int64_t)(0 - x));
  case KN_KOP_NOT: return sdt == KN_BOOL ? (val){0, !a.i} : kn_kref_mk(dt, 0, (int64_t)~x);
  case KN_KOP_ADD: return sdt == KN_BOOL ? (val){0, a.i | b.i} : kn_kref_mk(dt, 0, (int64_t)(x + y));
  case KN_KOP_SUB: return kn_kref_mk(dt, 0, (int64_t)(x - y));
  case KN_KOP_MUL: return sdt == KN_BOOL ? (val){0, a.i & b.i} : kn_kref_mk(dt, 0, (int64_t)(x * y));
  case KN_KOP_DIV: return kn_kref_mk(dt, 0, s ? a.i / b.i : (int64_t)(x / y));
  case KN_KOP_MOD: return kn_kref_mk(dt, 0, s ? a.i % b.i : (int64_t)(x % y));
  case KN_KOP_MAX: return (s ? a.i > b.i : x > y) ? a : b;
  case KN_KOP_MIN: return (s ? a.i < b.i : x < y) ? a : b;
  case KN_KOP_CMPLT: return (val){0, s ? a.i < b.i : x < y};
  case KN_KOP_CMPEQ: return (val){0, a.i == b.i};
  case KN_KOP_CMPNE: return (val){0, a.i != b.i};
  case KN_KOP_AND: return kn_kref_mk(dt, 0, a.i & b.i);
  case KN_KOP_OR: return kn_kref_mk(dt, 0, a.i | b.i);
  case KN_KOP_XOR: return kn_kref_mk(dt, 0, a.i ^ b.i);
  case KN_KOP_SHL: return kn_kref_mk(dt, 0, (int64_t)(x << y));
  case KN_KOP_SHR: return kn_kref_mk(dt, 0, s ? a.i >> y : (int64_t)((bits == 64 ? x : x & ((1ull << bits) - 1)) >> y));
  default: return (val){0, 0};
  }
}

val kn_kref_eval(const kn_kref *r, const kn_kop *x, const int64_t *idx) {
  const kn_kernel *k = r->k;
  switch (x->op) {
  case KN_KOP_LOAD: {
    int64_t L;
    if (!kn_kref_index(&x->st, idx, r->vars, &L)) return kn_kref_mk(x->dtype, 0, 0);
    if (x->nsrc == 1) L += kn_kref_eval(r, x->src[0], idx).i * x->gather_stride;
    return kn_kref_read(k->bufs[x->buf].dtype, r->host[x->buf], L);
  }
  case KN_KOP_CONST: return kn_dtype_is_float(x->dtype) ? fr(x->val.f) : kn_kref_mk(x->dtype, 0, x->val.i);
  case KN_KOP_VAR: return kn_kref_mk(x->dtype, 0, r->vars[x->var]);
  case KN_KOP_IDX: return kn_kref_mk(x->dtype, 0, idx[x->axis]);
  case KN_KOP_REDUCE: return reduce(r, x, idx);
  default: break;
  }
  val s[3] = {{0, 0}, {0, 0}, {0, 0}};
  for (int i = 0; i < x->nsrc; i++) s[i] = kn_kref_eval(r, x->src[i], idx);
  kn_dtype sdt = x->src[0]->dtype;
  switch (x->op) {
  case KN_KOP_CAST: return cast_val(s[0], sdt, x->dtype);
  case KN_KOP_BITCAST: return from_bits(bits_of(s[0], sdt), x->dtype);
  case KN_KOP_WHERE: return s[0].i ? s[1] : s[2];
  default: break;
  }
  return kn_dtype_is_float(sdt) ? alu_f(x->op, x->dtype, s[0], s[1], s[2], sdt) : alu_i(x->op, x->dtype, s[0], s[1], sdt);
}


kn_st kn_kref_st_strided(int nd, const int64_t *shape, const int64_t *strides, int64_t off) {
  kn_st s;
  memset(&s, 0, sizeof s);
  s.nviews = 1;
  s.v[0].ndim = nd;
  s.v[0].offset.c = off, s.v[0].offset.v = -1;
  for (int i = 0; i < nd; i++) s.v[0].shape[i] = shape[i], s.v[0].strides[i] = shape[i] == 1 ? 0 : strides[i];
  return s;
}
