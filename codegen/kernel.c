/* The kernel AST: node constructors, the DEBUG=5 printer and the structural hash that keys the in-process
 * compile memo. Nodes live in the kernel's node array and are freed with it. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

kn_kernel *kn_kernel_new(void) {
  kn_kernel *k = calloc(1, sizeof *k);
  if (!k) return NULL;
  k->kind = KN_KERNEL_EXPR;
  k->out_st.nviews = 1;
  k->out_st.v[0].offset.v = -1;
  return k;
}

void kn_kernel_free(kn_kernel *k) {
  if (!k) return;
  for (int i = 0; i < k->nnodes; i++) free(k->nodes[i]);
  free(k->nodes);
  free(k);
}

static kn_kop *node(kn_kernel *k, kn_kop_type op, kn_dtype dtype) {
  if (!k) return NULL;
  if (k->nnodes == k->capnodes) {
    int cap = k->capnodes ? 2 * k->capnodes : 32;
    kn_kop **n = realloc(k->nodes, (size_t)cap * sizeof *n);
    if (!n) return NULL;
    k->nodes = n, k->capnodes = cap;
  }
  kn_kop *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->op = op, x->dtype = dtype, x->var = -1, x->axis = -1, x->buf = -1;
  k->nodes[k->nnodes++] = x;
  return x;
}

kn_kop *kn_kop_load(kn_kernel *k, int buf, kn_dtype dtype, const kn_st *st) {
  kn_kop *x = node(k, KN_KOP_LOAD, kn_dtype_scalar(dtype));
  if (!x) return NULL;
  x->buf = buf;
  x->st = *st;
  return x;
}

kn_kop *kn_kop_const_f(kn_kernel *k, kn_dtype dtype, double v) {
  kn_kop *x = node(k, KN_KOP_CONST, dtype);
  if (!x) return NULL;
  if (kn_dtype_is_float(dtype)) x->val.f = v;
  else x->val.i = (int64_t)v;
  return x;
}

kn_kop *kn_kop_const_i(kn_kernel *k, kn_dtype dtype, int64_t v) {
  kn_kop *x = node(k, KN_KOP_CONST, dtype);
  if (!x) return NULL;
  if (kn_dtype_is_float(dtype)) x->val.f = (double)v;
  else x->val.i = dtype == KN_BOOL ? v != 0 : v;
  return x;
}

kn_kop *kn_kop_var(kn_kernel *k, int var, kn_dtype dtype) {
  kn_kop *x = node(k, KN_KOP_VAR, dtype);
  if (x) x->var = var;
  return x;
}

kn_kop *kn_kop_idx(kn_kernel *k, int axis, kn_dtype dtype) {
  kn_kop *x = node(k, KN_KOP_IDX, dtype);
  if (x) x->axis = axis;
  return x;
}

kn_kop *kn_kop_alu(kn_kernel *k, kn_kop_type op, kn_dtype dtype, int nsrc, kn_kop *a, kn_kop *b, kn_kop *c) {
  kn_kop *s[3] = {a, b, c};
  if (nsrc < 1 || nsrc > 3) return NULL;
  for (int i = 0; i < nsrc; i++)
    if (!s[i]) return NULL;
  kn_kop *x = node(k, op, dtype);
  if (!x) return NULL;
  x->nsrc = nsrc;
  for (int i = 0; i < nsrc; i++) x->src[i] = s[i];
  return x;
}

kn_kop *kn_kop_reduce(kn_kernel *k, kn_kop_type rop, kn_kop *src) {
  if (!src) return NULL;
  kn_kop *x = node(k, KN_KOP_REDUCE, src->dtype);
  if (!x) return NULL;
  x->rop = rop;
  x->nsrc = 1;
  x->src[0] = src;
  return x;
}

static const char *kop_names[KN_KOP_COUNT] = {
  [KN_KOP_LOAD] = "LOAD", [KN_KOP_CONST] = "CONST", [KN_KOP_VAR] = "VAR", [KN_KOP_IDX] = "IDX",
  [KN_KOP_NEG] = "NEG", [KN_KOP_RECIP] = "RECIP", [KN_KOP_SQRT] = "SQRT", [KN_KOP_EXP2] = "EXP2",
  [KN_KOP_LOG2] = "LOG2", [KN_KOP_SIN] = "SIN", [KN_KOP_TRUNC] = "TRUNC", [KN_KOP_NOT] = "NOT",
  [KN_KOP_CAST] = "CAST", [KN_KOP_BITCAST] = "BITCAST", [KN_KOP_ADD] = "ADD", [KN_KOP_SUB] = "SUB",
  [KN_KOP_MUL] = "MUL", [KN_KOP_DIV] = "DIV", [KN_KOP_MOD] = "MOD", [KN_KOP_MAX] = "MAX", [KN_KOP_MIN] = "MIN",
  [KN_KOP_CMPLT] = "CMPLT", [KN_KOP_CMPEQ] = "CMPEQ", [KN_KOP_CMPNE] = "CMPNE", [KN_KOP_AND] = "AND",
  [KN_KOP_OR] = "OR", [KN_KOP_XOR] = "XOR", [KN_KOP_SHL] = "SHL", [KN_KOP_SHR] = "SHR", [KN_KOP_POW] = "POW",
  [KN_KOP_WHERE] = "WHERE", [KN_KOP_REDUCE] = "REDUCE",
};

const char *kn_kop_name(kn_kop_type op) {
  if ((unsigned)op >= KN_KOP_COUNT || !kop_names[op]) return "?";
  return kop_names[op];
}

static void print_sint(kn_sint s, FILE *f) {
  if (s.v >= 0 && s.k) fprintf(f, "%" PRId64 "+%" PRId64 "*v%d", s.c, s.k, s.v);
  else fprintf(f, "%" PRId64, s.c);
}

static void print_list(const int64_t *a, int n, FILE *f) {
  fputc('(', f);
  for (int i = 0; i < n; i++) fprintf(f, "%s%" PRId64, i ? "," : "", a[i]);
  fputc(')', f);
}

void kn_st_print(const kn_st *st, FILE *f) {
  fputc('[', f);
  for (int i = 0; i < st->nviews; i++) {
    const kn_view *v = &st->v[i];
    fprintf(f, "%sview(shape=", i ? ", " : "");
    print_list(v->shape, v->ndim, f);
    fprintf(f, " strides=");
    print_list(v->strides, v->ndim, f);
    fprintf(f, " off=");
    print_sint(v->offset, f);
    if (v->masked) {
      fprintf(f, " mask=(");
      for (int d = 0; d < v->ndim; d++)
        fprintf(f, "%s%" PRId64 ":%" PRId64, d ? "," : "", v->mask_lo[d], v->mask_hi[d]);
      fputc(')', f);
    }
    fputc(')', f);
  }
  fputc(']', f);
}

/* ---- printing: each shared node once, numbered in post-order ---- */

typedef struct {
  const kn_kop **seen;
  int n, cap;
} visit;

static int seen_index(visit *v, const kn_kop *x) {
  for (int i = 0; i < v->n; i++)
    if (v->seen[i] == x) return i;
  return -1;
}

static int print_node(visit *v, const kn_kop *x, FILE *f) {
  int id = seen_index(v, x);
  if (id >= 0) return id;
  int s[3] = {-1, -1, -1};
  for (int i = 0; i < x->nsrc && i < 3; i++) s[i] = x->src[i] ? print_node(v, x->src[i], f) : -1;
  if (v->n == v->cap) {
    int cap = v->cap ? v->cap * 2 : 64;
    const kn_kop **n = realloc(v->seen, (size_t)cap * sizeof *n);
    if (!n) return -1;
    v->seen = n, v->cap = cap;
  }
  id = v->n;
  v->seen[v->n++] = x;
  fprintf(f, "  %%%d = %-7s %-8s", id, kn_kop_name(x->op), kn_dtype_get(x->dtype)->short_name);
  switch (x->op) {
  case KN_KOP_LOAD:
    fprintf(f, " buf%d ", x->buf);
    kn_st_print(&x->st, f);
    if (x->nsrc == 1) fprintf(f, " + %%%d*%" PRId64, s[0], x->gather_stride);
    break;
  case KN_KOP_CONST:
    if (kn_dtype_is_float(x->dtype)) fprintf(f, " %.9g", x->val.f);
    else fprintf(f, " %" PRId64, x->val.i);
    break;
  case KN_KOP_VAR: fprintf(f, " v%d", x->var); break;
  case KN_KOP_IDX: fprintf(f, " axis %d", x->axis); break;
  case KN_KOP_REDUCE: fprintf(f, " %s %%%d", kn_kop_name(x->rop), s[0]); break;
  default:
    for (int i = 0; i < x->nsrc; i++) fprintf(f, " %%%d", s[i]);
  }
  fputc('\n', f);
  return id;
}

void kn_kernel_print(const kn_kernel *k, FILE *f) {
  fprintf(f, "kernel %s shape [", k->kind == KN_KERNEL_ATTENTION ? "attention" : "expr");
  for (int i = 0; i < k->ndim; i++)
    fprintf(f, "%s%" PRId64 "%s", i ? ", " : "", k->shape[i], i >= k->ndim - k->nreduce ? "r" : "");
  fprintf(f, "]");
  for (int i = 0; i < k->ndim; i++)
    if (k->shape_sym[i]) fprintf(f, " axis%d<v%d", i, k->shape_sym[i] - 1);
  fprintf(f, "\n");
  for (int i = 0; i < k->nbufs; i++)
    fprintf(f, "  buf%d %s[%" PRId64 "]%s\n", i, kn_dtype_name(k->bufs[i].dtype), k->bufs[i].nelems,
            i == 0 ? " (output)" : "");
  for (int i = 0; i < k->nvars; i++)
    fprintf(f, "  v%d %s in [%" PRId64 ", %" PRId64 "]\n", i, k->vars[i].name, k->vars[i].min, k->vars[i].max);
  if (k->kind == KN_KERNEL_ATTENTION) {
    const kn_attn *a = &k->attn;
    fprintf(f, "  attention n_q %d n_head %d n_kv_head %d head_dim %d max_ctx %" PRId64 " scale %g pos v%d window %d",
            a->n_q, a->n_head, a->n_kv_head, a->head_dim, a->max_ctx, a->scale, a->pos_var, a->window);
    if (a->seg > 0) fprintf(f, " rows buf4 segments %" PRId64, a->seg);
    fputc('\n', f);
    return;
  }
  fprintf(f, "  out_st ");
  kn_st_print(&k->out_st, f);
  fputc('\n', f);
  visit v = {0};
  if (k->out_row) fprintf(f, "  out row %%%d * %" PRId64 "\n", print_node(&v, k->out_row, f), k->out_row_stride);
  int r = k->root ? print_node(&v, k->root, f) : -1;
  fprintf(f, "  store %%%d -> buf0\n", r);
  free(v.seen);
}

/* ---- structural hash (FNV-1a over every field that changes the generated code) ---- */

typedef struct {
  uint64_t h;
} hasher;

static void hbytes(hasher *h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h->h = (h->h ^ b[i]) * 1099511628211ull;
}
static void hint(hasher *h, int64_t x) { hbytes(h, &x, sizeof x); }

static void hash_st(hasher *h, const kn_st *st) {
  hint(h, st->nviews);
  for (int i = 0; i < st->nviews; i++) {
    const kn_view *v = &st->v[i];
    hint(h, v->ndim);
    for (int d = 0; d < v->ndim; d++) {
      hint(h, v->shape[d]), hint(h, v->strides[d]);
      if (v->masked) hint(h, v->mask_lo[d]), hint(h, v->mask_hi[d]);
    }
    hint(h, v->masked), hint(h, v->offset.c);
    hint(h, v->offset.v >= 0 ? v->offset.k : 0), hint(h, v->offset.v >= 0 ? v->offset.v : -1);
  }
}

typedef struct {
  const kn_kop *p;
  uint64_t h;
} hmemo;

typedef struct {
  hmemo *m;
  int n, cap;
} hmemos;

static uint64_t hash_node(hmemos *ms, const kn_kop *x, int depth) {
  for (int i = ms->n - 1; i >= 0; i--)
    if (ms->m[i].p == x) return ms->m[i].h;
  hasher h = {1469598103934665603ull};
  if (!x || depth > 10000) return 0;
  hint(&h, x->op), hint(&h, x->dtype), hint(&h, x->nsrc);
  for (int i = 0; i < x->nsrc && i < 3; i++) hint(&h, (int64_t)hash_node(ms, x->src[i], depth + 1));
  switch (x->op) {
  case KN_KOP_LOAD:
    hint(&h, x->buf), hash_st(&h, &x->st);
    if (x->nsrc) hint(&h, x->gather_stride);
    break;
  case KN_KOP_CONST: hbytes(&h, &x->val, sizeof x->val); break;
  case KN_KOP_VAR: hint(&h, x->var); break;
  case KN_KOP_IDX: hint(&h, x->axis); break;
  case KN_KOP_REDUCE: hint(&h, x->rop); break;
  default: break;
  }
  if (ms->n == ms->cap) {
    int cap = ms->cap ? 2 * ms->cap : 64;
    hmemo *n = realloc(ms->m, (size_t)cap * sizeof *n);
    if (!n) return h.h;
    ms->m = n, ms->cap = cap;
  }
  ms->m[ms->n++] = (hmemo){x, h.h};
  return h.h;
}

uint64_t kn_kernel_hash(const kn_kernel *k) {
  hasher h = {1469598103934665603ull};
  hint(&h, k->kind), hint(&h, k->nbufs);
  hbytes(&h, k->label, strlen(k->label));
  for (int i = 0; i < k->nbufs; i++) hint(&h, k->bufs[i].dtype);
  hint(&h, k->nvars);
  for (int i = 0; i < k->nvars; i++) hint(&h, k->vars[i].min), hint(&h, k->vars[i].max);
  hint(&h, k->ndim), hint(&h, k->nreduce);
  for (int i = 0; i < k->ndim; i++) hint(&h, k->shape[i]), hint(&h, k->shape_sym[i]);
  if (k->kind == KN_KERNEL_ATTENTION) {
    const kn_attn *a = &k->attn;
    hint(&h, a->n_q), hint(&h, a->n_head), hint(&h, a->n_kv_head), hint(&h, a->head_dim), hint(&h, a->max_ctx);
    hbytes(&h, &a->scale, sizeof a->scale), hint(&h, a->pos_var), hint(&h, a->window), hint(&h, a->seg);
    return h.h;
  }
  hash_st(&h, &k->out_st);
  hmemos ms = {0};
  hint(&h, (int64_t)hash_node(&ms, k->root, 0));
  if (k->out_row) hint(&h, (int64_t)hash_node(&ms, k->out_row, 0)), hint(&h, k->out_row_stride);
  free(ms.m);
  return h.h;
}
