/* Nodes and contexts: every node is interned in its context's table, so building the same subgraph twice yields
 * the same node (and the same structural hash, which keys the schedule and kernel caches). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uop.h"

static __thread kn_ctx *current;

kn_ctx *kn_ctx_new(kn_device *dev) {
  kn_ctx *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->dev = dev;
  return c;
}

static void uop_free(kn_uop *u) {
  if (u->op == KN_OP_VIEW || u->op == KN_OP_ASSIGN) free(u->arg.st);
  if (u->op == KN_OP_ATTENTION) free(u->arg.attn);
  if (u->buf && u->owns_buf) kn_buf_free(u->buf);
  free(u);
}

void kn_ctx_free(kn_ctx *c) {
  if (!c) return;
  HASH_CLEAR(hh, c->table);
  for (size_t i = 0; i < c->nnodes; i++) uop_free(c->nodes[i]);
  free(c->nodes);
  for (int i = 0; i < c->nvars; i++) free(c->vars[i]);
  if (current == c) current = NULL;
  free(c);
}

kn_ctx *kn_ctx_set(kn_ctx *c) {
  kn_ctx *prev = current;
  current = c;
  return prev;
}

kn_ctx *kn_ctx_current(void) { return current; }
kn_device *kn_ctx_device(kn_ctx *c) { return c ? c->dev : NULL; }
const char *kn_ctx_error(kn_ctx *c) { return c && c->has_err ? c->err : NULL; }
void kn_ctx_clear_error(kn_ctx *c) {
  if (c) c->has_err = false, c->err[0] = 0;
}
size_t kn_ctx_nodes(kn_ctx *c) { return c ? c->nnodes : 0; }

kn_ctx *kn_ctx_need(void) {
  if (!current) fprintf(stderr, "kiln: graph op called with no current context (kn_ctx_set)\n");
  return current;
}

static void vfail(const char *fmt, va_list ap) {
  kn_ctx *c = current;
  if (!c || c->has_err) return;
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  c->has_err = true;
}

kn_uop *kn_graph_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(fmt, ap);
  va_end(ap);
  return NULL;
}

kn_t kn_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(fmt, ap);
  va_end(ap);
  return NULL;
}

int64_t kn_shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

bool kn_uop_is_elementwise(const kn_uop *u) { return u->op == KN_OP_ALU || u->op == KN_OP_CONST; }

/* 64-bit mixing (splitmix64 finalizer) folded over words */
static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  return h;
}

static uint64_t hash_st(uint64_t h, const kn_st *st) {
  h = mix(h, st->nviews);
  for (int i = 0; i < st->nviews; i++) {
    const kn_view *v = &st->v[i];
    h = mix(h, v->ndim);
    for (int d = 0; d < v->ndim; d++) {
      h = mix(h, v->shape[d]);
      h = mix(h, v->strides[d]);
      if (v->masked) h = mix(mix(h, v->mask_lo[d]), v->mask_hi[d]);
    }
    h = mix(mix(mix(mix(h, v->masked), v->offset.c), v->offset.k), v->offset.v);
  }
  return h;
}

static bool same_identity(const kn_uop *u, kn_opcode op, kn_dtype dt, int ndim, const int64_t *shape,
                          const int8_t *symvar, int nsrc, kn_uop *const *src, const void *arg, size_t argsize) {
  if (u->op != op || u->dtype != dt || u->ndim != ndim || u->nsrc != nsrc) return false;
  if (ndim && (memcmp(u->shape, shape, ndim * sizeof *shape) || memcmp(u->symvar, symvar, ndim))) return false;
  for (int i = 0; i < nsrc; i++)
    if (u->src[i] != src[i]) return false;
  if (op == KN_OP_VIEW || op == KN_OP_ASSIGN) return kn_st_equal(u->arg.st, arg);
  if (op == KN_OP_ATTENTION) return !memcmp(u->arg.attn, arg, sizeof(kn_attn));
  return argsize == 0 || !memcmp(&u->arg, arg, argsize);
}

bool kn_uop_symbolic(const kn_uop *u) {
  for (int i = 0; i < u->ndim; i++)
    if (u->symvar[i] >= 0) return true;
  return false;
}

kn_uop *kn_uop_make(kn_opcode op, kn_dtype dt, int ndim, const int64_t *shape, int nsrc, kn_uop *const *src,
                    const void *arg, size_t argsize) {
  int8_t sv[KN_MAXDIM];
  memset(sv, -1, sizeof sv);
  /* elementwise-shaped ops carry their sources' symbolic extents; a size-1 axis (reduced) has none */
  bool same_shape = op == KN_OP_ALU || op == KN_OP_CONTIGUOUS || op == KN_OP_REDUCE;
  for (int k = 0; same_shape && k < nsrc; k++)
    for (int i = 0; src[k] && i < ndim && i < src[k]->ndim; i++)
      if (src[k]->symvar[i] >= 0 && shape[i] > 1) {
        if (sv[i] >= 0 && sv[i] != src[k]->symvar[i])
          return kn_graph_fail("axis %d has two different symbolic extents (%d and %d)", i, sv[i], src[k]->symvar[i]);
        sv[i] = src[k]->symvar[i];
      }
  return kn_uop_make_sym(op, dt, ndim, shape, sv, nsrc, src, arg, argsize);
}

kn_uop *kn_uop_make_sym(kn_opcode op, kn_dtype dt, int ndim, const int64_t *shape, const int8_t *symvar, int nsrc,
                        kn_uop *const *src, const void *arg, size_t argsize) {
  kn_ctx *c = kn_ctx_need();
  if (!c || c->has_err) return NULL;
  for (int i = 0; i < nsrc; i++)
    if (!src[i]) return NULL;
  if (ndim > KN_MAXDIM) return kn_graph_fail("tensor of %d dims: kiln supports at most %d", ndim, KN_MAXDIM);
  int8_t sv[KN_MAXDIM];
  memset(sv, -1, sizeof sv);
  if (symvar && ndim) memcpy(sv, symvar, ndim);
  uint64_t h = mix(mix(mix(0x6b696c6eull, op), dt), ndim);
  for (int i = 0; i < ndim; i++) h = mix(mix(h, shape[i]), (uint64_t)(sv[i] + 1));
  for (int i = 0; i < nsrc; i++) h = mix(h, src[i]->hash);
  if (op == KN_OP_VIEW || op == KN_OP_ASSIGN) h = hash_st(h, arg);
  else if (op == KN_OP_ATTENTION) {
    const kn_attn *a = arg;
    h = mix(mix(mix(mix(mix(h, a->n_q), a->n_head), a->n_kv_head), a->head_dim), a->pos_var);
    h = mix(mix(h, a->max_ctx), (uint64_t)(a->scale * 1e6));
  } else if (argsize) {
    uint64_t w[2] = {0, 0};
    memcpy(w, arg, argsize > 16 ? 16 : argsize);
    h = mix(mix(h, w[0]), w[1]);
  }
  kn_uop *found = NULL;
  HASH_FIND(hh, c->table, &h, sizeof h, found);
  if (found && same_identity(found, op, dt, ndim, shape, sv, nsrc, src, arg, argsize)) return found;
  kn_uop *u = calloc(1, sizeof *u);
  if (!u || (c->nnodes == c->cap && !(c->nodes = realloc(c->nodes, (c->cap = c->cap ? c->cap * 2 : 256) * sizeof *c->nodes)))) {
    free(u);
    return kn_graph_fail("out of memory building the graph");
  }
  u->op = op, u->dtype = dt, u->ndim = ndim, u->nsrc = nsrc, u->hash = h, u->ctx = c, u->id = (int64_t)c->nnodes;
  if (ndim) memcpy(u->shape, shape, ndim * sizeof *shape);
  memcpy(u->symvar, sv, sizeof sv);
  for (int i = 0; i < nsrc; i++) u->src[i] = src[i];
  if (op == KN_OP_VIEW || op == KN_OP_ASSIGN || op == KN_OP_ATTENTION) {
    size_t sz = op == KN_OP_ATTENTION ? sizeof(kn_attn) : sizeof(kn_st);
    void *p = malloc(sz);
    if (!p) return free(u), kn_graph_fail("out of memory building the graph");
    memcpy(p, arg, sz);
    if (op == KN_OP_ATTENTION) u->arg.attn = p;
    else u->arg.st = p;
  } else if (argsize)
    memcpy(&u->arg, arg, argsize);
  c->nodes[c->nnodes++] = u;
  if (!found) { /* on a (vanishingly rare) hash collision the new node simply stays out of the table */
    HASH_ADD(hh, c->table, hash, sizeof u->hash, u);
  }
  return u;
}

/* ---- properties ---- */
int kn_ndim(kn_t t) { return t ? t->ndim : -1; }
int64_t kn_dim(kn_t t, int axis) {
  if (!t) return -1;
  if (axis < 0) axis += t->ndim;
  return axis >= 0 && axis < t->ndim ? t->shape[axis] : -1;
}
const int64_t *kn_shape(kn_t t) { return t ? t->shape : NULL; }
int64_t kn_numel(kn_t t) { return t ? kn_shape_numel(t->ndim, t->shape) : -1; }
kn_dtype kn_dtype_of(kn_t t) { return t ? t->dtype : KN_F32; }
int kn_symvar(kn_t t, int axis) {
  if (!t) return -1;
  if (axis < 0) axis += t->ndim;
  return axis >= 0 && axis < t->ndim ? t->symvar[axis] : -1;
}

void kn_print_shape(kn_t t, char *buf, size_t n) {
  size_t o = 0;
  if (!t) {
    snprintf(buf, n, "(null)");
    return;
  }
  o += snprintf(buf + o, n - o, "(");
  for (int i = 0; i < t->ndim && o < n; i++) o += snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  if (o < n) snprintf(buf + o, n - o, ")");
}

kn_t kn_name(kn_t t, const char *fmt, ...) {
  if (!t || !fmt) return t;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->name, sizeof t->name, fmt, ap);
  va_end(ap);
  /* the unnamed computation under views and casts takes the name too: it is what a kernel realizes */
  for (kn_uop *u = t; u->op == KN_OP_VIEW || (u->op == KN_OP_ALU && u->arg.alu == KN_KOP_CAST);) {
    u = u->src[0];
    if (!u || u->name[0] || (u->op != KN_OP_VIEW && u->op != KN_OP_REDUCE && u->op != KN_OP_ALU)) break;
    snprintf(u->name, sizeof u->name, "%s", t->name);
  }
  return t;
}

const char *kn_get_name(kn_t t) { return t ? kn_uop_label(t) : "(null)"; }

const char *kn_uop_label(const kn_uop *u) {
  static const char *ops[] = {"buffer", "const", "var", "arange", "rand", "alu", "reduce", "view", "contiguous",
                              "assign", "gather", "attention"};
  for (int d = 0; d < 64 && u; d++) {
    if (u->name[0]) return u->name;
    if (u->op == KN_OP_VIEW || (u->op == KN_OP_ALU && u->arg.alu == KN_KOP_CAST) || u->op == KN_OP_CONTIGUOUS)
      u = u->src[0];
    else if (u->op == KN_OP_ASSIGN)
      u = u->src[0]; /* a write is named after the buffer it writes */
    else if (u->op == KN_OP_ALU) {
      static _Thread_local char b[24];
      snprintf(b, sizeof b, "%s", kn_kop_name(u->arg.alu));
      for (char *p = b; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
      return b;
    } else if (u->op == KN_OP_REDUCE)
      return u->arg.red.rop == KN_KOP_ADD ? "sum" : u->arg.red.rop == KN_KOP_MAX ? "max" : "prod";
    else
      return ops[u->op];
  }
  return "?";
}
