/* Private to codegen/: the lowering context shared by lower.c (expressions, reductions) and index.c (index
 * arithmetic of view chains, loads and stores). Indices are kept as affine sums of loop IR ops so that upcast
 * instances and vector lanes differ only in the constant term. */
#ifndef KN_INDEX_H
#define KN_INDEX_H

#include <stdarg.h>
#include <stddef.h>

#include "loopir.h"

#define KN_MAXLANES 64
#define KN_MAXREDS 16
#define KN_MAXTERMS (KN_MAXPIECES + 8)

typedef struct {
  int n;
  int op[KN_MAXTERMS];
  int64_t k[KN_MAXTERMS];
  int64_t c;
} kn_aff;

typedef struct {
  const kn_kernel *k;
  const kn_sched *s;
  kn_lprog *p;
  int params[KN_MAXBUFS];
  int vars[KN_MAXVARS];
  int piece_op[KN_MAXPIECES];  /* counter of GLOBAL/LOOP/REDUCE pieces */
  int64_t inst[KN_MAXPIECES];  /* current value of UPCAST/UNROLL pieces */
  bool in_reduce;              /* reduce axes are live (inside the reduce loop nest) */
  char *err;
  size_t errlen;
} kn_lctx;

int kn_lfail(kn_lctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Vector lanes of values at this point: the VEC piece's size, or the RVEC piece's inside the reduce. */
int kn_lanes(const kn_lctx *c);
/* Index along kernel axis `axis` for vector lane `lane` of the current instance. */
void kn_axis_aff(kn_lctx *c, int axis, int lane, kn_aff *a);
int kn_aff_op(kn_lctx *c, const kn_aff *a);
/* Parameters, variables and the work-item id unravelled into the GLOBAL pieces. */
int kn_lower_prologue(kn_lctx *c);
/* ... in two steps: the parameters and variables; the work-item id (ops between them run once per call on a CPU) */
int kn_lower_params(kn_lctx *c);
int kn_lower_work_items(kn_lctx *c);
/* how many work items the schedule's GLOBAL pieces make (kn_lower_work_items' global size) */
int64_t kn_lower_items(const kn_lctx *c);
/* How far ahead (in blocks; elements for scalar types) a GEMV's loads of buffer buf prefetch: whole work items
 * (*per: the buffer's blocks per item) covering at least KILN_PREFETCH_BYTES; 0: none. */
int64_t kn_lower_prefetch_ahead(const kn_lctx *c, int buf, int64_t *per);
/* Instances of the UPCAST (reduce false) or UNROLL (reduce true) pieces, and selecting one of each. */
int kn_inst_count(const kn_lctx *c, bool reduce);
void kn_set_inst(kn_lctx *c, int out_inst, int red_inst);
/* LOAD node (gather: the lowered index op or -1) and the final store of value v through out_st (row: the lowered
 * out_row or -1). */
int kn_lower_load(kn_lctx *c, const kn_kop *x, int gather);
int kn_lower_store(kn_lctx *c, int v, int row);
/* The block index of a block-format LOAD at the current instance when its first lane is the first element of an
 * ungated block (the integer-dot template's operand); -1 otherwise. */
int kn_lower_qblock(kn_lctx *c, const kn_kop *x);

#endif
