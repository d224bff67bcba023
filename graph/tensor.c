/* The tensor front end: creation, elementwise ops with broadcasting and dtype promotion, movement ops (views) and
 * reductions. Every function only builds nodes; kn_realize (runner.c) runs them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "uop.h"

#define SHAPE_STR(t, name) \
  char name[128];          \
  kn_print_shape(t, name, sizeof name)

/* ---- creation ---- */
static kn_t make_buffer(kn_dtype dt, int ndim, const int64_t *shape, kn_buf *buf, bool owns) {
  kn_ctx *c = kn_ctx_need();
  if (!c) return NULL;
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0) return kn_graph_fail("tensor shape has a negative dimension (%lld)", (long long)shape[i]);
  int64_t id = ++c->next_buffer_id;
  kn_t u = kn_uop_make(KN_OP_BUFFER, dt, ndim, shape, 0, NULL, &id, sizeof id);
  if (u) u->buf = buf, u->owns_buf = owns;
  return u;
}

kn_t kn_empty(kn_dtype dt, int ndim, const int64_t *shape) { return make_buffer(dt, ndim, shape, NULL, true); }

static kn_buf *alloc_for(kn_dtype dt, int ndim, const int64_t *shape) {
  kn_ctx *c = kn_ctx_need();
  if (!c) return NULL;
  int64_t nbytes = kn_dtype_nbytes(dt, kn_shape_numel(ndim, shape));
  if (nbytes < 0) return (kn_buf *)kn_graph_fail("%lld elements are not a whole number of %s blocks",
                                                 (long long)kn_shape_numel(ndim, shape), kn_dtype_name(dt));
  char err[256];
  kn_buf *b = kn_buf_alloc(c->dev, nbytes ? (size_t)nbytes : 1, err, sizeof err);
  if (!b) kn_graph_fail("allocating %lld bytes: %s", (long long)nbytes, err);
  return b;
}

kn_t kn_from_host(kn_dtype dt, int ndim, const int64_t *shape, const void *data) {
  kn_buf *b = alloc_for(dt, ndim, shape);
  if (!b) return NULL;
  size_t nbytes = (size_t)kn_dtype_nbytes(dt, kn_shape_numel(ndim, shape));
  if (nbytes && kn_buf_copyin(b, 0, data, nbytes)) {
    kn_buf_free(b);
    return kn_graph_fail("copying %zu bytes to the device failed", nbytes);
  }
  kn_t t = make_buffer(dt, ndim, shape, b, true);
  if (!t) kn_buf_free(b);
  return t;
}

kn_t kn_from_buf(kn_buf *buf, kn_dtype dt, int ndim, const int64_t *shape) {
  int64_t nbytes = kn_dtype_nbytes(dt, kn_shape_numel(ndim, shape));
  if (!buf || nbytes < 0 || (size_t)nbytes > buf->nbytes)
    return kn_graph_fail("kn_from_buf: a %s tensor of %lld elements does not fit a %zu-byte buffer", kn_dtype_name(dt),
                         (long long)kn_shape_numel(ndim, shape), buf ? buf->nbytes : 0);
  return make_buffer(dt, ndim, shape, buf, true);
}

kn_t kn_from_host_mem(kn_dtype dt, int ndim, const int64_t *shape, const void *data, size_t nbytes) {
  kn_ctx *c = kn_ctx_current();
  kn_device *d = c ? kn_ctx_device(c) : NULL;
  if (!d) return kn_graph_fail("kn_from_host_mem: no current context");
  int64_t need = kn_dtype_nbytes(dt, kn_shape_numel(ndim, shape));
  if (need < 0 || (size_t)need > nbytes)
    return kn_graph_fail("kn_from_host_mem: a %s tensor of %lld elements does not fit %zu bytes", kn_dtype_name(dt),
                         (long long)kn_shape_numel(ndim, shape), nbytes);
  kn_buf *b = kn_buf_wrap_host(d, (void *)data, nbytes);
  if (!b) { /* a device that cannot see host memory: a copy of this tensor only */
    char err[256];
    if (!(b = kn_buf_alloc(d, nbytes, err, sizeof err))) return kn_graph_fail("kn_from_host_mem: %s", err);
    if (kn_buf_copyin(b, 0, data, nbytes)) {
      kn_buf_free(b);
      return kn_graph_fail("kn_from_host_mem: copying %zu bytes to the device failed", nbytes);
    }
  }
  kn_t t = make_buffer(dt, ndim, shape, b, true);
  if (!t) kn_buf_free(b);
  return t;
}

static kn_t make_const(kn_dtype dt, double v, int ndim, const int64_t *shape) {
  if (kn_dtype_is_quant(dt)) return kn_graph_fail("a constant cannot have the block format %s", kn_dtype_name(dt));
  union {
    double f;
    int64_t i;
  } a = {0};
  if (kn_dtype_is_float(dt)) a.f = v;
  else if (dt == KN_BOOL) a.i = v != 0;
  else a.i = (int64_t)v;
  return kn_uop_make(KN_OP_CONST, dt, ndim, shape, 0, NULL, &a, sizeof a);
}

kn_t kn_full(kn_dtype dt, double v, int ndim, const int64_t *shape) { return make_const(dt, v, ndim, shape); }
kn_t kn_scalar(kn_dtype dt, double v) { return make_const(dt, v, 0, NULL); }

kn_t kn_arange(int64_t n, kn_dtype dt) {
  if (n < 0) return kn_graph_fail("arange(%lld): negative length", (long long)n);
  return kn_uop_make(KN_OP_ARANGE, dt, 1, &n, 0, NULL, NULL, 0);
}

kn_t kn_rand(int ndim, const int64_t *shape, uint64_t seed) {
  return kn_uop_make(KN_OP_RAND, KN_F32, ndim, shape, 0, NULL, &seed, sizeof seed);
}

/* ---- symbolic variables: owned by the current context; values come with each run ---- */
kn_var *kn_var_new(const char *name, int64_t min, int64_t max) {
  kn_ctx *c = kn_ctx_need();
  if (!c) return NULL;
  if (!name || !name[0] || strlen(name) >= sizeof ((kn_var *)0)->name)
    return (kn_var *)kn_graph_fail("kn_var_new: a variable needs a name of 1 to 31 characters");
  if (min > max)
    return (kn_var *)kn_graph_fail("kn_var_new(%s): min %lld is above max %lld", name, (long long)min, (long long)max);
  for (int i = 0; i < c->nvars; i++)
    if (!strcmp(c->vars[i]->name, name))
      return (kn_var *)kn_graph_fail("kn_var_new: this context already has a variable named '%s'", name);
  if (c->nvars == KN_CTX_MAXVARS)
    return (kn_var *)kn_graph_fail("kn_var_new(%s): a context holds at most %d variables", name, KN_CTX_MAXVARS);
  kn_var *v = calloc(1, sizeof *v);
  if (!v) return (kn_var *)kn_graph_fail("out of memory");
  snprintf(v->name, sizeof v->name, "%s", name);
  v->min = min, v->max = max, v->id = c->nvars;
  c->vars[c->nvars++] = v;
  return v;
}

kn_var *kn_var_by_id(int id) {
  kn_ctx *c = kn_ctx_current();
  return c && id >= 0 && id < c->nvars ? c->vars[id] : NULL;
}

const char *kn_var_name(const kn_var *v) { return v ? v->name : "?"; }

kn_t kn_var_tensor(kn_var *v, kn_dtype dt) {
  if (!v) return kn_graph_fail("kn_var_tensor: no variable");
  kn_t t = kn_uop_make(KN_OP_VARVAL, KN_I64, 0, NULL, 0, NULL, &v, sizeof v);
  return dt == KN_I64 ? t : kn_cast(t, dt);
}

/* ---- elementwise ---- */
static kn_dtype vdt(kn_t t) { return kn_dtype_scalar(t->dtype); }

static kn_t alu(kn_kop_type op, kn_dtype dt, int n, kn_t *s) {
  for (int i = 0; i < n; i++)
    if (!s[i]) return NULL;
  return kn_uop_make(KN_OP_ALU, dt, s[0]->ndim, s[0]->shape, n, s, &op, sizeof op);
}

kn_t kn_cast(kn_t a, kn_dtype dt) {
  if (!a) return NULL;
  if (kn_dtype_is_quant(dt)) return kn_graph_fail("cannot cast to the block format %s (use kiln quantize)", kn_dtype_name(dt));
  if (a->dtype == dt) return a;
  if (a->op == KN_OP_CONST) return make_const(dt, kn_dtype_is_float(a->dtype) ? a->arg.f : (double)a->arg.i, a->ndim, a->shape);
  kn_t s[1] = {a};
  return alu(KN_KOP_CAST, dt, 1, s);
}

kn_t kn_bitcast(kn_t a, kn_dtype dt) {
  if (!a) return NULL;
  if (kn_dtype_get(a->dtype)->itemsize != kn_dtype_get(dt)->itemsize || kn_dtype_is_quant(a->dtype))
    return kn_graph_fail("bitcast %s -> %s: item sizes differ", kn_dtype_name(a->dtype), kn_dtype_name(dt));
  if (a->dtype == dt) return a;
  kn_t s[1] = {a};
  return alu(KN_KOP_BITCAST, dt, 1, s);
}

/* Broadcast a and b to one shape (numpy rules). */
static int broadcast(kn_t *a, kn_t *b, const char *opname) {
  int nd = (*a)->ndim > (*b)->ndim ? (*a)->ndim : (*b)->ndim;
  int64_t out[KN_MAXDIM];
  kn_t *ts[2] = {a, b};
  for (int i = 0; i < nd; i++) {
    int64_t da = i - (nd - (*a)->ndim) >= 0 ? (*a)->shape[i - (nd - (*a)->ndim)] : 1;
    int64_t db = i - (nd - (*b)->ndim) >= 0 ? (*b)->shape[i - (nd - (*b)->ndim)] : 1;
    if (da != db && da != 1 && db != 1) {
      SHAPE_STR(*a, sa);
      SHAPE_STR(*b, sb);
      kn_graph_fail("%s: shapes %s and %s do not broadcast (axis %d: %lld vs %lld)", opname, sa, sb, i, (long long)da,
                    (long long)db);
      return -1;
    }
    out[i] = da == 1 ? db : da;
  }
  for (int k = 0; k < 2; k++) {
    kn_t t = *ts[k];
    if (t->ndim < nd) {
      int64_t sh[KN_MAXDIM];
      for (int i = 0; i < nd; i++) sh[i] = i - (nd - t->ndim) >= 0 ? t->shape[i - (nd - t->ndim)] : 1;
      t = kn_reshape(t, nd, sh);
    }
    if (t && memcmp(t->shape, out, nd * sizeof *out)) t = kn_expand(t, nd, out);
    if (!t) return -1;
    *ts[k] = t;
  }
  return 0;
}

static kn_t binary(kn_kop_type op, kn_t a, kn_t b, const char *name) {
  if (!a || !b) return NULL;
  if (broadcast(&a, &b, name)) return NULL;
  kn_dtype dt = kn_dtype_promote(vdt(a), vdt(b));
  bool cmp = op == KN_KOP_CMPLT || op == KN_KOP_CMPEQ || op == KN_KOP_CMPNE;
  bool intonly = op == KN_KOP_MOD || op == KN_KOP_AND || op == KN_KOP_OR || op == KN_KOP_XOR || op == KN_KOP_SHL ||
                 op == KN_KOP_SHR;
  if (intonly && kn_dtype_is_float(dt)) return kn_graph_fail("%s needs integer or bool tensors, got %s", name, kn_dtype_name(dt));
  if ((op == KN_KOP_SHL || op == KN_KOP_SHR || op == KN_KOP_MOD) && dt == KN_BOOL)
    return kn_graph_fail("%s needs integer tensors, got bool", name);
  a = kn_cast(a, dt), b = kn_cast(b, dt);
  kn_t s[2] = {a, b};
  return alu(op, cmp ? KN_BOOL : dt, 2, s);
}

kn_t kn_add(kn_t a, kn_t b) { return binary(KN_KOP_ADD, a, b, "add"); }
kn_t kn_sub(kn_t a, kn_t b) { return binary(KN_KOP_SUB, a, b, "sub"); }
kn_t kn_mul(kn_t a, kn_t b) { return binary(KN_KOP_MUL, a, b, "mul"); }
kn_t kn_div(kn_t a, kn_t b) { return binary(KN_KOP_DIV, a, b, "div"); }
kn_t kn_mod(kn_t a, kn_t b) { return binary(KN_KOP_MOD, a, b, "mod"); }
kn_t kn_maximum(kn_t a, kn_t b) { return binary(KN_KOP_MAX, a, b, "maximum"); }
kn_t kn_minimum(kn_t a, kn_t b) { return binary(KN_KOP_MIN, a, b, "minimum"); }
kn_t kn_pow(kn_t a, kn_t b) { return binary(KN_KOP_POW, a, b, "pow"); }
kn_t kn_lt(kn_t a, kn_t b) { return binary(KN_KOP_CMPLT, a, b, "lt"); }
kn_t kn_gt(kn_t a, kn_t b) { return binary(KN_KOP_CMPLT, b, a, "gt"); }
kn_t kn_le(kn_t a, kn_t b) { return kn_not(kn_gt(a, b)); }
kn_t kn_ge(kn_t a, kn_t b) { return kn_not(kn_lt(a, b)); }
kn_t kn_eq(kn_t a, kn_t b) { return binary(KN_KOP_CMPEQ, a, b, "eq"); }
kn_t kn_ne(kn_t a, kn_t b) { return binary(KN_KOP_CMPNE, a, b, "ne"); }
kn_t kn_and(kn_t a, kn_t b) { return binary(KN_KOP_AND, a, b, "and"); }
kn_t kn_or(kn_t a, kn_t b) { return binary(KN_KOP_OR, a, b, "or"); }
kn_t kn_xor(kn_t a, kn_t b) { return binary(KN_KOP_XOR, a, b, "xor"); }
kn_t kn_shl(kn_t a, kn_t b) { return binary(KN_KOP_SHL, a, b, "shl"); }
kn_t kn_shr(kn_t a, kn_t b) { return binary(KN_KOP_SHR, a, b, "shr"); }

kn_t kn_where(kn_t c, kn_t a, kn_t b) {
  if (!c || !a || !b) return NULL;
  if (broadcast(&a, &b, "where") || broadcast(&c, &a, "where") || broadcast(&c, &b, "where")) return NULL;
  kn_dtype dt = kn_dtype_promote(vdt(a), vdt(b));
  kn_t s[3] = {kn_cast(c, KN_BOOL), kn_cast(a, dt), kn_cast(b, dt)};
  return alu(KN_KOP_WHERE, dt, 3, s);
}

static kn_t scalar_like(kn_t a, double v) { return a ? kn_scalar(vdt(a), v) : NULL; }
kn_t kn_adds(kn_t a, double s) { return kn_add(a, scalar_like(a, s)); }
kn_t kn_muls(kn_t a, double s) { return kn_mul(a, scalar_like(a, s)); }


static bool is_half(kn_t a) { return a && (vdt(a) == KN_F16 || vdt(a) == KN_BF16); }
/* A primitive unary op. Transcendentals (need_float) of integers compute in float32, and of half-precision values
 * in float32 rounded once at the end. */
static kn_t unary(kn_kop_type op, kn_t a, bool need_float) {
  if (!a) return NULL;
  kn_dtype dt = vdt(a);
  if (need_float && is_half(a)) {
    kn_t s[1] = {kn_cast(a, KN_F32)};
    return kn_cast(alu(op, KN_F32, 1, s), dt);
  }
  if (need_float && !kn_dtype_is_float(dt)) a = kn_cast(a, dt = KN_F32);
  kn_t s[1] = {a};
  return alu(op, dt, 1, s);
}

/* Composite functions of half-precision values run entirely in float32 (their intermediate steps, such as
 * x * log2(e), would otherwise each round to 11 bits). */
#define HALF_IN_F32(a, expr)                              \
  do {                                                    \
    if (is_half(a)) {                                     \
      kn_dtype h_ = vdt(a);                               \
      kn_t x_ = kn_cast(a, KN_F32);                       \
      return kn_cast(expr(x_), h_);                       \
    }                                                     \
  } while (0)

kn_t kn_neg(kn_t a) { return a && vdt(a) == KN_BOOL ? kn_not(a) : unary(KN_KOP_NEG, a, false); }
kn_t kn_not(kn_t a) { return unary(KN_KOP_NOT, a, false); }
kn_t kn_recip(kn_t a) { return unary(KN_KOP_RECIP, a, true); }
kn_t kn_sqrt(kn_t a) { return unary(KN_KOP_SQRT, a, true); }
static kn_t rsqrt_f(kn_t a) { return kn_recip(kn_sqrt(a)); }
kn_t kn_rsqrt(kn_t a) {
  HALF_IN_F32(a, rsqrt_f);
  return rsqrt_f(a);
}
kn_t kn_exp2(kn_t a) { return unary(KN_KOP_EXP2, a, true); }
kn_t kn_log2(kn_t a) { return unary(KN_KOP_LOG2, a, true); }
kn_t kn_sin(kn_t a) { return unary(KN_KOP_SIN, a, true); }
kn_t kn_trunc(kn_t a) { return a && !kn_dtype_is_float(vdt(a)) ? a : unary(KN_KOP_TRUNC, a, true); }
kn_t kn_exp(kn_t a) {
  HALF_IN_F32(a, kn_exp);
  if (a && !kn_dtype_is_float(vdt(a))) a = kn_cast(a, KN_F32);
  return kn_exp2(kn_muls(a, 1.0 / M_LN2));
}
kn_t kn_log(kn_t a) {
  HALF_IN_F32(a, kn_log);
  return kn_muls(kn_log2(a), M_LN2);
}
kn_t kn_cos(kn_t a) {
  HALF_IN_F32(a, kn_cos);
  if (a && !kn_dtype_is_float(vdt(a))) a = kn_cast(a, KN_F32);
  return kn_sin(kn_sub(scalar_like(a, M_PI / 2), a));
}
kn_t kn_sigmoid(kn_t a) {
  HALF_IN_F32(a, kn_sigmoid);
  return kn_recip(kn_adds(kn_exp(kn_neg(a)), 1.0));
}
kn_t kn_tanh(kn_t a) {
  HALF_IN_F32(a, kn_tanh);
  return kn_adds(kn_muls(kn_sigmoid(kn_muls(a, 2.0)), 2.0), -1.0);
}
kn_t kn_relu(kn_t a) { return kn_maximum(a, scalar_like(a, 0)); }
kn_t kn_abs(kn_t a) { return a && vdt(a) == KN_BOOL ? a : kn_where(kn_lt(a, scalar_like(a, 0)), kn_neg(a), a); }
kn_t kn_square(kn_t a) { return kn_mul(a, a); }
kn_t kn_floor(kn_t a) {
  if (!a || !kn_dtype_is_float(vdt(a))) return a;
  kn_t t = kn_trunc(a);
  return kn_where(kn_lt(a, t), kn_adds(t, -1.0), t);
}
