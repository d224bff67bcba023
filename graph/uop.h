/* Private to graph/: the node type, its op codes, contexts and the hash-consing table. */
#ifndef KN_UOP_H
#define KN_UOP_H

#include <uthash.h>

#include "../codegen/codegen.h"
#include "../device/device.h"
#include "graph.h"

typedef enum {
  KN_OP_BUFFER,   /* realized storage: arg.buf (owned or borrowed) */
  KN_OP_CONST,    /* scalar broadcast to shape: arg.f / arg.i */
  KN_OP_VARVAL,   /* 0-d value of a symbolic variable: arg.var */
  KN_OP_ARANGE,   /* 0..n-1 (realized on its own) */
  KN_OP_RAND,     /* uniform [0,1): arg.i seed (realized on its own) */
  KN_OP_ALU,      /* arg.alu: a kernel ALU op code (kn_kop_type) applied elementwise to srcs of equal shape */
  KN_OP_REDUCE,   /* arg.red: rop and axes mask; reduced axes kept as size 1 */
  KN_OP_VIEW,     /* arg.st: a view chain over src[0]'s contiguous layout */
  KN_OP_CONTIGUOUS,
  KN_OP_ASSIGN,   /* src[0] target buffer node, src[1] value; arg.st: where in the target (over value's shape) */
  KN_OP_GATHER,   /* src[0] table [V, D], src[1] ids [T] -> [T, D] */
  KN_OP_ATTENTION,/* src q, k cache, v cache; arg.attn */
} kn_opcode;

/* A symbolic integer of one context: its id indexes that context's variables (views and kernels refer to it by id);
 * its value is not kept here but passed to each run (kn_plan_run's bindings). */
struct kn_var {
  char name[32];
  int64_t min, max;
  int id;
};
#define KN_CTX_MAXVARS 64 /* variables per context (ids fit the int8 symbolic-extent tags) */

struct kn_uop {
  kn_opcode op;
  kn_dtype dtype;
  int ndim;
  int64_t shape[KN_MAXDIM];
  int8_t symvar[KN_MAXDIM]; /* axis i has the symbolic extent of variable symvar[i] (shape[i] is its maximum), or -1 */
  int nsrc;
  kn_uop *src[4];
  union {
    double f;
    int64_t i;
    kn_kop_type alu;
    struct {
      kn_kop_type rop;
      uint32_t axes;
    } red;
    kn_st *st;
    kn_var *var;
    kn_attn *attn;
  } arg;
  uint64_t hash;     /* structural hash (key for interning and caches) */
  int64_t id;        /* creation order within the context */
  kn_ctx *ctx;
  /* mutable side state, not part of identity */
  kn_buf *buf;       /* the realized buffer (BUFFER nodes always; others once realized) */
  char name[48];     /* kn_name: weights by their GGUF name, op results by the op ("" = derived, see kn_uop_label) */
  bool owns_buf;
  UT_hash_handle hh; /* interning table, keyed by the node's identity bytes */
};

struct kn_ctx {
  kn_device *dev;
  kn_uop *table;     /* uthash: interned nodes */
  kn_uop **nodes;    /* all nodes, for freeing */
  size_t nnodes, cap;
  char err[512];
  bool has_err;
  int64_t next_buffer_id;
  kn_var *vars[KN_CTX_MAXVARS];
  int nvars;
};

/* A node's name for people: its own, else a view's or cast's source's, else its op ("add", "sum", ...). */
const char *kn_uop_label(const kn_uop *u);

/* Create (or find) the node with these fields; shape given. Returns NULL and sets the context error on failure.
 * Symbolic extents are derived from the sources (elementwise ops keep them, axes of size 1 drop them). */
kn_uop *kn_uop_make(kn_opcode op, kn_dtype dt, int ndim, const int64_t *shape, int nsrc, kn_uop *const *src,
                    const void *arg, size_t argsize);
/* The same with explicit symbolic extents (movement ops compute them). */
kn_uop *kn_uop_make_sym(kn_opcode op, kn_dtype dt, int ndim, const int64_t *shape, const int8_t *symvar, int nsrc,
                        kn_uop *const *src, const void *arg, size_t argsize);
bool kn_uop_symbolic(const kn_uop *u); /* any axis with a symbolic extent */
/* Set the current context's error (first error wins) and return NULL, printf-style. */
kn_uop *kn_graph_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
kn_ctx *kn_ctx_need(void);
/* Structural helpers */
bool kn_uop_is_elementwise(const kn_uop *u);

/* view algebra (view.c) */
void kn_st_contiguous(kn_st *st, int ndim, const int64_t *shape);
bool kn_st_is_contiguous(const kn_st *st); /* single unmasked view, row-major strides, offset 0 */
const int64_t *kn_st_shape(const kn_st *st);
int kn_st_ndim(const kn_st *st);
int kn_st_reshape(kn_st *st, int ndim, const int64_t *shape); /* 0 or -1 (only if the views overflow) */
void kn_st_permute(kn_st *st, const int *order);
void kn_st_expand(kn_st *st, const int64_t *shape);
void kn_st_pad(kn_st *st, const int64_t *before, const int64_t *after);
void kn_st_shrink(kn_st *st, const int64_t *begin, const int64_t *end);
void kn_st_shrink_var(kn_st *st, int axis, int var, int64_t len);
void kn_st_flip(kn_st *st, int axis);
/* st = top applied on bottom: index through top (whose innermost view addresses the contiguous layout of
 * bottom's shape), then through bottom. -1 if the chain gets too long to represent. */
int kn_st_compose(kn_st *out, const kn_st *bottom, const kn_st *top);
void kn_st_simplify(kn_st *st);
bool kn_st_has_mask(const kn_st *st);
bool kn_st_equal(const kn_st *a, const kn_st *b);
/* Maximum element offset the chain can address in its buffer + 1 given the vars' max values (bounds checks). */
int64_t kn_st_extent(const kn_st *st, const kn_var *const *vars);

#endif
