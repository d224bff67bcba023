/* The loop IR builder: appends ops, shares equal pure ops (CSE through a hash table), folds integer constants,
 * tracks value bounds of index arithmetic so div/mod by constants simplify, and prints the program (DEBUG=6). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "loopir.h"

static const char *lop_names[KN_L_COUNT] = {
  [KN_L_PARAM] = "PARAM", [KN_L_VAR] = "VAR", [KN_L_CONST] = "CONST", [KN_L_SPECIAL] = "SPECIAL",
  [KN_L_RANGE] = "RANGE", [KN_L_ENDRANGE] = "ENDRANGE", [KN_L_ACC] = "ACC", [KN_L_ACCSET] = "ACCSET",
  [KN_L_LOAD] = "LOAD", [KN_L_QLOAD] = "QLOAD", [KN_L_QDOT] = "QDOT", [KN_L_SCRATCH] = "SCRATCH",
  [KN_L_QX] = "QX", [KN_L_QDOTR] = "QDOTR", [KN_L_STORE] = "STORE", [KN_L_ALU] = "ALU", [KN_L_CAST] = "CAST",
  [KN_L_BITCAST] = "BITCAST", [KN_L_VECTORIZE] = "VECTORIZE", [KN_L_GEP] = "GEP", [KN_L_HREDUCE] = "HREDUCE",
  [KN_L_IF] = "IF", [KN_L_ENDIF] = "ENDIF", [KN_L_BARRIER] = "BARRIER", [KN_L_LOCAL] = "LOCAL",
  [KN_L_GROUPREDUCE] = "GROUPREDUCE", [KN_L_PREFETCH] = "PREFETCH",
};

int kn_l_group_reduce(kn_lprog *p, int a, kn_kop_type rop, int64_t group) {
  if (a < 0) return -1;
  int r = kn_l_add(p, KN_L_GROUPREDUCE, p->ops[a].dtype, p->ops[a].vec, 1, &a, rop, 0);
  if (r >= 0) p->ops[r].size = group;
  return r;
}

const char *kn_lop_name(kn_lop_type op) { return (unsigned)op < KN_L_COUNT ? lop_names[op] : "?"; }

kn_lprog *kn_lprog_new(const kn_kernel *k) {
  kn_lprog *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->k = k;
  p->tcap = 1024;
  p->table = malloc((size_t)p->tcap * sizeof *p->table);
  if (!p->table) return free(p), NULL;
  memset(p->table, -1, (size_t)p->tcap * sizeof *p->table);
  p->global[0] = p->global[1] = p->global[2] = 1;
  p->local[0] = p->local[1] = p->local[2] = 1;
  return p;
}

void kn_lprog_free(kn_lprog *p) {
  if (!p) return;
  for (int i = 0; i < p->n; i++) free(p->ops[i].src);
  free(p->ops);
  free(p->table);
  free(p);
}

static bool pure(kn_lop_type op) {
  switch (op) {
  case KN_L_PARAM: case KN_L_VAR: case KN_L_CONST: case KN_L_SPECIAL: case KN_L_LOAD: case KN_L_QLOAD: case KN_L_QDOT:
  case KN_L_QDOTR: case KN_L_ALU: case KN_L_CAST: case KN_L_BITCAST: case KN_L_VECTORIZE: case KN_L_GEP: case KN_L_HREDUCE:
    return true;
  default: return false;
  }
}

static uint64_t mix(uint64_t h, int64_t x) { return (h ^ (uint64_t)x) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull; }

static uint64_t lop_hash(const kn_lop *o) {
  uint64_t h = 0xcbf29ce484222325ull;
  h = mix(h, o->op), h = mix(h, o->dtype), h = mix(h, o->vec), h = mix(h, o->alu), h = mix(h, o->arg);
  h = mix(h, o->size), h = mix(h, o->val.i), h = mix(h, o->nsrc);
  for (int i = 0; i < o->nsrc; i++) h = mix(h, o->src[i]);
  return h;
}

static bool lop_equal(const kn_lop *a, const kn_lop *b) {
  if (a->hash != b->hash || a->op != b->op || a->dtype != b->dtype || a->vec != b->vec || a->alu != b->alu ||
      a->arg != b->arg || a->size != b->size || a->val.i != b->val.i || a->nsrc != b->nsrc)
    return false;
  return !memcmp(a->src, b->src, (size_t)a->nsrc * sizeof *a->src);
}

static int rehash(kn_lprog *p) {
  int cap = p->tcap * 2;
  int *t = malloc((size_t)cap * sizeof *t);
  if (!t) return -1;
  memset(t, -1, (size_t)cap * sizeof *t);
  for (int i = 0; i < p->tcap; i++) {
    int id = p->table[i];
    if (id < 0) continue;
    size_t j = p->ops[id].hash & (size_t)(cap - 1);
    while (t[j] >= 0) j = (j + 1) & (size_t)(cap - 1);
    t[j] = id;
  }
  free(p->table);
  p->table = t, p->tcap = cap;
  return 0;
}

/* Does an op read an accumulator, directly or through its sources? Such values change over a loop, so they
 * must not be shared with an equal-looking op elsewhere. */
static bool reads_acc(const kn_lprog *p, const kn_lop *o) {
  for (int i = 0; i < o->nsrc; i++) {
    const kn_lop *s = &p->ops[o->src[i]];
    if (s->op == KN_L_ACC || (s->hash & 1)) return true;
  }
  return false;
}

static int append(kn_lprog *p, kn_lop *o) {
  bool cse = pure(o->op) && !reads_acc(p, o);
  o->hash = lop_hash(o) & ~1ull;
  if (!cse) o->hash |= reads_acc(p, o) || o->op == KN_L_ACC ? 1 : 0;
  if (cse) {
    size_t j = o->hash & (size_t)(p->tcap - 1);
    for (; p->table[j] >= 0; j = (j + 1) & (size_t)(p->tcap - 1))
      if (lop_equal(&p->ops[p->table[j]], o)) return free(o->src), p->table[j];
  }
  if (p->n == p->cap) {
    int cap = p->cap ? 2 * p->cap : 256;
    kn_lop *n = realloc(p->ops, (size_t)cap * sizeof *n);
    if (!n) return free(o->src), p->failed = true, -1;
    p->ops = n, p->cap = cap;
  }
  int id = p->n++;
  p->ops[id] = *o;
  if (cse) {
    if (2 * p->n > p->tcap && rehash(p)) return p->failed = true, -1;
    size_t j = o->hash & (size_t)(p->tcap - 1);
    while (p->table[j] >= 0) j = (j + 1) & (size_t)(p->tcap - 1);
    p->table[j] = id;
  }
  return id;
}

static int add_full(kn_lprog *p, kn_lop *o, const int *src) {
  if (p->failed) return -1;
  for (int i = 0; i < o->nsrc; i++)
    if (src[i] < 0 || src[i] >= p->n) return p->failed = true, -1;
  o->src = malloc((size_t)(o->nsrc ? o->nsrc : 1) * sizeof *o->src);
  if (!o->src) return p->failed = true, -1;
  if (o->nsrc && src) memcpy(o->src, src, (size_t)o->nsrc * sizeof *src);
  if (o->lo > o->hi || o->vec != 1 || !kn_dtype_is_int(o->dtype)) o->lo = 1, o->hi = 0;
  return append(p, o);
}

int kn_l_add(kn_lprog *p, kn_lop_type op, kn_dtype dt, int vec, int nsrc, const int *src, kn_kop_type alu, int64_t arg) {
  kn_lop o = {.op = op, .dtype = dt, .vec = vec, .nsrc = nsrc, .alu = alu, .arg = arg, .lo = 1, .hi = 0};
  return add_full(p, &o, src);
}

int kn_l_const_i(kn_lprog *p, kn_dtype dt, int64_t v) {
  kn_lop o = {.op = KN_L_CONST, .dtype = dt, .vec = 1, .lo = v, .hi = v};
  if (kn_dtype_is_float(dt)) o.val.f = (double)v;
  else o.val.i = v;
  return add_full(p, &o, NULL);
}

int kn_l_const_f(kn_lprog *p, kn_dtype dt, double v) {
  if (!kn_dtype_is_float(dt)) return kn_l_const_i(p, dt, (int64_t)v);
  kn_lop o = {.op = KN_L_CONST, .dtype = dt, .vec = 1, .lo = 1, .hi = 0};
  o.val.f = v;
  return add_full(p, &o, NULL);
}

int kn_l_range(kn_lprog *p, int64_t size) {
  kn_lop o = {.op = KN_L_RANGE, .dtype = KN_I64, .vec = 1, .size = size, .lo = 0, .hi = size - 1};
  return add_full(p, &o, NULL);
}

int kn_l_range_to(kn_lprog *p, int64_t size, int bound) {
  kn_lop o = {.op = KN_L_RANGE, .dtype = KN_I64, .vec = 1, .nsrc = 1, .size = size, .lo = 0, .hi = size - 1};
  return add_full(p, &o, &bound);
}

static bool is_const(const kn_lprog *p, int a) { return a >= 0 && p->ops[a].op == KN_L_CONST && p->ops[a].vec == 1; }
static bool known(const kn_lop *o) { return o->lo <= o->hi; }

static int64_t fold_int(kn_kop_type alu, int64_t x, int64_t y, bool *ok) {
  *ok = true;
  switch (alu) {
  case KN_KOP_ADD: return x + y;
  case KN_KOP_SUB: return x - y;
  case KN_KOP_MUL: return x * y;
  case KN_KOP_DIV: if (y) return x / y; break;
  case KN_KOP_MOD: if (y) return x % y; break;
  case KN_KOP_MAX: return x > y ? x : y;
  case KN_KOP_MIN: return x < y ? x : y;
  case KN_KOP_CMPLT: return x < y;
  case KN_KOP_CMPEQ: return x == y;
  case KN_KOP_CMPNE: return x != y;
  case KN_KOP_AND: return x & y;
  case KN_KOP_OR: return x | y;
  default: break;
  }
  *ok = false;
  return 0;
}

/* Integer index arithmetic (i64/i32 scalars): fold constants, drop identities, use bounds to remove div/mod and
 * to decide comparisons. Floats and vectors are left to LLVM. */
static int simplify_int(kn_lprog *p, kn_kop_type alu, kn_dtype dt, int a, int b, int64_t *lo, int64_t *hi) {
  const kn_lop *A = &p->ops[a], *B = &p->ops[b];
  bool ok, bool_out = alu == KN_KOP_CMPLT || alu == KN_KOP_CMPEQ || alu == KN_KOP_CMPNE;
  if (dt != KN_I64 && dt != KN_I32 && !(bool_out && (A->dtype == KN_I64 || A->dtype == KN_I32))) return -2;
  if (is_const(p, a) && is_const(p, b)) {
    int64_t v = fold_int(alu, A->val.i, B->val.i, &ok);
    if (ok) return kn_l_const_i(p, dt, dt == KN_I32 ? (int32_t)v : v);
  }
  int64_t cb = is_const(p, b) ? B->val.i : 0;
  if (is_const(p, b)) {
    if ((alu == KN_KOP_ADD || alu == KN_KOP_SUB) && cb == 0) return a;
    if ((alu == KN_KOP_MUL || alu == KN_KOP_DIV) && cb == 1) return a;
    if (alu == KN_KOP_MUL && cb == 0) return b;
    if (alu == KN_KOP_MOD && cb == 1) return kn_l_const_i(p, dt, 0);
  }
  if (is_const(p, a) && A->val.i == 0 && alu == KN_KOP_ADD) return b;
  if (is_const(p, a) && A->val.i == 1 && alu == KN_KOP_MUL) return b;
  if (is_const(p, a) && A->val.i == 0 && alu == KN_KOP_MUL) return a;
  if (!known(A)) return -2;
  if (alu == KN_KOP_DIV && cb > 0 && A->lo >= 0) {
    if (A->hi < cb) return kn_l_const_i(p, dt, 0);
    *lo = A->lo / cb, *hi = A->hi / cb;
  } else if (alu == KN_KOP_MOD && cb > 0 && A->lo >= 0) {
    if (A->hi < cb) return a;
    *lo = 0, *hi = cb - 1;
  } else if (bool_out && known(B)) {
    if (alu == KN_KOP_CMPLT && A->hi < B->lo) return kn_l_const_i(p, KN_BOOL, 1);
    if (alu == KN_KOP_CMPLT && A->lo >= B->hi) return kn_l_const_i(p, KN_BOOL, 0);
  } else if (known(B)) {
    if (alu == KN_KOP_ADD) *lo = A->lo + B->lo, *hi = A->hi + B->hi;
    else if (alu == KN_KOP_SUB) *lo = A->lo - B->hi, *hi = A->hi - B->lo;
    else if (alu == KN_KOP_MUL && B->lo == B->hi && B->lo >= 0) *lo = A->lo * B->lo, *hi = A->hi * B->lo;
  }
  return -2;
}

int kn_l_alu(kn_lprog *p, kn_kop_type alu, kn_dtype dt, int a, int b) {
  if (p->failed || a < 0 || b < 0) return p->failed = true, -1;
  int64_t lo = 1, hi = 0;
  if (p->ops[a].vec == 1 && p->ops[b].vec == 1) {
    int r = simplify_int(p, alu, dt, a, b, &lo, &hi);
    if (r != -2) return r;
  }
  int vec = p->ops[a].vec > p->ops[b].vec ? p->ops[a].vec : p->ops[b].vec;
  kn_lop o = {.op = KN_L_ALU, .dtype = dt, .vec = vec, .nsrc = 2, .alu = alu, .lo = lo, .hi = hi};
  return add_full(p, &o, (int[]){a, b});
}

int kn_l_alu3(kn_lprog *p, kn_kop_type alu, kn_dtype dt, int a, int b, int c) {
  if (p->failed || a < 0 || b < 0 || c < 0) return p->failed = true, -1;
  if (alu == KN_KOP_WHERE && is_const(p, a)) return p->ops[a].val.i ? b : c;
  int vec = 1;
  for (int i = 0; i < 3; i++) {
    int s = (int[]){a, b, c}[i];
    if (p->ops[s].vec > vec) vec = p->ops[s].vec;
  }
  kn_lop o = {.op = KN_L_ALU, .dtype = dt, .vec = vec, .nsrc = 3, .alu = alu, .lo = 1, .hi = 0};
  return add_full(p, &o, (int[]){a, b, c});
}

int kn_l_cast(kn_lprog *p, int a, kn_dtype to) {
  if (p->failed || a < 0) return p->failed = true, -1;
  const kn_lop *A = &p->ops[a];
  if (A->dtype == to) return a;
  if (is_const(p, a) && kn_dtype_is_int(A->dtype) && (to == KN_I64 || to == KN_I32)) return kn_l_const_i(p, to, A->val.i);
  kn_lop o = {.op = KN_L_CAST, .dtype = to, .vec = A->vec, .nsrc = 1, .lo = 1, .hi = 0};
  if (to == KN_I64 && A->dtype == KN_I32 && known(A)) o.lo = A->lo, o.hi = A->hi;
  return add_full(p, &o, (int[]){a});
}

/* ---- printing ---- */

void kn_lprog_print(const kn_lprog *p, FILE *f) {
  fprintf(f, "loop IR %s global [%" PRId64 ",%" PRId64 ",%" PRId64 "] local [%" PRId64 ",%" PRId64 ",%" PRId64 "]\n",
          p->name, p->global[0], p->global[1], p->global[2], p->local[0], p->local[1], p->local[2]);
  int depth = 1;
  for (int i = 0; i < p->n; i++) {
    const kn_lop *o = &p->ops[i];
    if (o->op == KN_L_ENDRANGE || o->op == KN_L_ENDIF) depth--;
    char ty[24];
    if (o->vec > 1) snprintf(ty, sizeof ty, "%sx%d", kn_dtype_get(o->dtype)->short_name, o->vec);
    else snprintf(ty, sizeof ty, "%s", kn_dtype_get(o->dtype)->short_name);
    fprintf(f, "%5d %*s%-9s %-8s", i, 2 * depth, "", o->op == KN_L_ALU || o->op == KN_L_HREDUCE ? kn_kop_name(o->alu)
                                                                                                  : kn_lop_name(o->op), ty);
    switch (o->op) {
    case KN_L_PARAM: fprintf(f, " buf%" PRId64 " (%s)", o->arg, kn_dtype_name(p->k->bufs[o->arg].dtype)); break;
    case KN_L_VAR: fprintf(f, " v%" PRId64, o->arg); break;
    case KN_L_CONST:
      if (kn_dtype_is_float(o->dtype)) fprintf(f, " %.9g", o->val.f);
      else fprintf(f, " %" PRId64, o->val.i);
      break;
    case KN_L_SPECIAL:
      fprintf(f, " %s%d [0,%" PRId64 ")", o->arg == KN_SP_FIRST0 ? "first_gidx" : o->arg < KN_SP_LOCAL0 ? "gidx" : "lidx",
              (int)(o->arg % 3), o->size);
      break;
    case KN_L_RANGE: fprintf(f, " [0,%" PRId64 ")", o->size); break;
    case KN_L_SCRATCH: fprintf(f, " %" PRId64 " bytes", o->size); break;
    case KN_L_PREFETCH: fprintf(f, " %s %%%d %%%d, %" PRId64 " bytes", kn_dtype_name((kn_dtype)o->arg), o->src[0], o->src[1], o->size); break;
    case KN_L_GEP: fprintf(f, " %%%d lane %" PRId64, o->src[0], o->arg); break;
    case KN_L_QLOAD: case KN_L_QDOT: case KN_L_QX: case KN_L_QDOTR: fprintf(f, " %s", kn_dtype_name((kn_dtype)o->arg)); /* fallthrough */
    default:
      for (int s = 0; s < o->nsrc; s++) fprintf(f, " %%%d", o->src[s]);
    }
    if (o->lo <= o->hi && o->op != KN_L_CONST) fprintf(f, "   ; [%" PRId64 ",%" PRId64 "]", o->lo, o->hi);
    fputc('\n', f);
    if (o->op == KN_L_RANGE || o->op == KN_L_IF) depth++;
  }
}
