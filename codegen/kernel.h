/* The kernel AST: what the scheduler (graph/) hands to codegen. One kernel computes one output buffer from an
 * expression tree of loads, constants, ALU ops and at most one level of reductions, over an iteration space.
 * It is the "kernel AST" stage of the pipeline (DEBUG=5 prints it). */
#ifndef KN_KERNEL_H
#define KN_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../device/base/dtype.h"

#define KN_MAXVIEWS 6
#define KN_MAXBUFS 24
#define KN_MAXVARS 4

/* A symbolic integer, c + k * vars[v]; v < 0 means the constant c. Symbolic variables (start_pos, ...) are
 * kernel arguments bound at launch, so one compiled kernel serves every value. */
typedef struct {
  int64_t c, k;
  int v;
} kn_sint;

/* One view: index tuple over `shape` -> element offset = offset + sum(idx[i] * strides[i]) in the layer below
 * (the previous view, or the buffer for v[0]). When `masked`, an index outside [mask_lo, mask_hi) on any axis
 * is padding and reads as 0 (the load is skipped). */
typedef struct {
  int ndim;
  int64_t shape[KN_MAXDIM];
  int64_t strides[KN_MAXDIM];
  kn_sint offset;
  bool masked;
  int64_t mask_lo[KN_MAXDIM], mask_hi[KN_MAXDIM];
} kn_view;

/* A chain of views (tinygrad's ShapeTracker). v[nviews-1] is the shape the kernel indexes; v[0] addresses the
 * buffer. To index: take the offset in view i, unravel it row-major into view i-1's shape, repeat down to v[0].
 * A masked-out index in any view makes the element padding (0). */
typedef struct {
  int nviews;
  kn_view v[KN_MAXVIEWS];
} kn_st;

typedef enum {
  /* leaves */
  KN_KOP_LOAD,  /* element of bufs[buf] through st; block formats decode to f32 (per-format template) */
  KN_KOP_CONST, /* val, in dtype */
  KN_KOP_VAR,   /* value of symbolic variable `var`, dtype i64 or i32 */
  KN_KOP_IDX,   /* index along axis `axis` of the kernel's full shape, dtype i32 or i64 (arange) */
  /* unary */
  KN_KOP_NEG, KN_KOP_RECIP, KN_KOP_SQRT, KN_KOP_EXP2, KN_KOP_LOG2, KN_KOP_SIN, KN_KOP_TRUNC,
  KN_KOP_NOT, /* logical not for bool, bitwise not for ints */
  KN_KOP_CAST, KN_KOP_BITCAST, /* to dtype */
  /* binary; comparisons produce bool */
  KN_KOP_ADD, KN_KOP_SUB, KN_KOP_MUL, KN_KOP_DIV, /* DIV: float division, or C truncating division for ints */
  KN_KOP_MOD, /* C remainder (ints only) */
  KN_KOP_MAX, KN_KOP_MIN,
  KN_KOP_CMPLT, KN_KOP_CMPEQ, KN_KOP_CMPNE,
  KN_KOP_AND, KN_KOP_OR, KN_KOP_XOR, KN_KOP_SHL, KN_KOP_SHR,
  KN_KOP_POW,
  /* ternary */
  KN_KOP_WHERE, /* src[0] ? src[1] : src[2] */
  /* reduction over the kernel's reduce axes; rop is KN_KOP_ADD, KN_KOP_MAX or KN_KOP_MUL */
  KN_KOP_REDUCE,
  KN_KOP_COUNT
} kn_kop_type;

typedef struct kn_kop kn_kop;
struct kn_kop {
  kn_kop_type op;
  kn_dtype dtype; /* dtype of the value this node produces (LOAD of a block format: KN_F32) */
  int nsrc;
  kn_kop *src[3];
  int buf;   /* LOAD */
  kn_st st;  /* LOAD: over the full shape inside a REDUCE, over the output shape elsewhere */
  /* LOAD gather (embedding rows): when nsrc == 1, src[0] is an integer expression r and the element read is
   * the one st addresses plus r * gather_stride (bounds: the caller guarantees the index is in the buffer). */
  int64_t gather_stride;
  union {
    double f;
    int64_t i;
  } val;            /* CONST: f for float dtypes, i for ints and bool */
  kn_kop_type rop;  /* REDUCE */
  int axis;         /* IDX */
  int var;          /* VAR */
};

typedef struct {
  kn_dtype dtype;  /* storage dtype (may be a block format for inputs) */
  int64_t nelems;  /* elements in the buffer; bytes = kn_dtype_nbytes(dtype, nelems) */
} kn_kbuf;

typedef struct {
  char name[32];
  int64_t min, max;
} kn_kvar;

typedef enum { KN_KERNEL_EXPR, KN_KERNEL_ATTENTION } kn_kernel_kind;

/* The fused attention template (flash-style: no score matrix in memory). Buffers: 0 out [n_q][n_head][head_dim]
 * f32, 1 q [n_q][n_head][head_dim] f32, 2 k cache [max_ctx][n_kv_head][head_dim], 3 v cache (same), both f16 or
 * f32. Query t sits at absolute position vars[pos_var] + t and attends keys 0 ... that position (causal), with kv
 * head h / (n_head / n_kv_head). window > 0 limits it to the last `window` keys (sliding-window layers: position p
 * sees p - window + 1 ... p).
 * Per-row mode (seg > 0, pos_var -1; batched rows of different sequences): buffer 4 is an int32 table [n_q] of
 * cache rows; the caches hold segments of seg rows (one sequence each), and query t is the key at row r = table[t]:
 * position r % seg of the segment starting at r - r % seg, attending that segment's rows up to r. */
typedef struct {
  int n_q, n_head, n_kv_head, head_dim;
  int64_t max_ctx;
  float scale;
  int pos_var;
  int window;
  int64_t seg;
} kn_attn;

typedef struct kn_kernel {
  kn_kernel_kind kind;
  char label[24]; /* from the name of the tensor it realizes ([a-z_], digits dropped; "" none): the start of its name */
  int nbufs;
  kn_kbuf bufs[KN_MAXBUFS]; /* bufs[0] is the output */
  int nvars;
  kn_kvar vars[KN_MAXVARS];
  /* The iteration space. The scheduler puts reduce axes last: shape[0..ndim-nreduce) are output axes,
   * the last nreduce are reduced. The output shape is shape with the reduce axes set to 1. */
  int ndim, nreduce;
  int64_t shape[KN_MAXDIM];
  /* Symbolic extents: 0 = axis i runs over shape[i]; s > 0 = it runs over [0, vars[s - 1]), shape[i] being the
   * variable's maximum (buffers are laid out for the maximum). */
  int shape_sym[KN_MAXDIM];
  kn_st out_st; /* over the output shape: where each result element goes in bufs[0] */
  /* Row scatter (an assign into rows chosen at run time, e.g. KV cache rows of batched sequences): when out_row is
   * set, the element goes where out_st says plus out_row * out_row_stride (out_row an integer expression over the
   * output space; the caller guarantees the rows are in the buffer). */
  kn_kop *out_row;
  int64_t out_row_stride;
  kn_kop *root; /* the value stored, dtype == bufs[0].dtype */
  kn_attn attn; /* KN_KERNEL_ATTENTION only */
  /* node storage, owned by the kernel */
  kn_kop **nodes;
  int nnodes, capnodes;
} kn_kernel;

/* Construction. Nodes belong to the kernel and are freed with it. All return NULL on allocation failure. */
kn_kernel *kn_kernel_new(void);
void kn_kernel_free(kn_kernel *k);
kn_kop *kn_kop_load(kn_kernel *k, int buf, kn_dtype dtype, const kn_st *st);
kn_kop *kn_kop_const_f(kn_kernel *k, kn_dtype dtype, double v);
kn_kop *kn_kop_const_i(kn_kernel *k, kn_dtype dtype, int64_t v);
kn_kop *kn_kop_var(kn_kernel *k, int var, kn_dtype dtype);
kn_kop *kn_kop_idx(kn_kernel *k, int axis, kn_dtype dtype);
kn_kop *kn_kop_alu(kn_kernel *k, kn_kop_type op, kn_dtype dtype, int nsrc, kn_kop *a, kn_kop *b, kn_kop *c);
kn_kop *kn_kop_reduce(kn_kernel *k, kn_kop_type rop, kn_kop *src);

/* Printing (DEBUG=5) and a structural hash of everything that affects the generated code. */
const char *kn_kop_name(kn_kop_type op);
void kn_kernel_print(const kn_kernel *k, FILE *f);
void kn_st_print(const kn_st *st, FILE *f);
uint64_t kn_kernel_hash(const kn_kernel *k);

#endif
