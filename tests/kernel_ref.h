/* A plain C interpreter of kernel ASTs (the oracle of test_codegen): view chains, every ALU op with kiln's dtype
 * semantics (ints wrap; f16/bf16 math in f32, rounded only by stores and casts), reductions, IDX/VAR, gathers and
 * block-format loads through the reference dequantizers. Tests only. */
#ifndef KN_KERNEL_REF_H
#define KN_KERNEL_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "codegen/kernel.h"

typedef struct {
  double f;  /* float dtypes: the exact value (already rounded to the dtype) */
  int64_t i; /* ints and bool: the value wrapped to the dtype */
} val;

typedef struct {
  const kn_kernel *k;
  void **host;          /* the kernel's buffers */
  const int64_t *vars;  /* variable values */
} kn_kref;

/* A value of dtype dt from a float (float dtypes) or an integer (others), rounded/wrapped to dt. */
val kn_kref_mk(kn_dtype dt, double f, int64_t i);
/* Element i of a buffer stored as dt (block formats dequantize). */
val kn_kref_read(kn_dtype dt, const void *p, int64_t i);
/* Element index a view chain gives for a kernel index; false when the index is masked out. */
bool kn_kref_index(const kn_st *st, const int64_t *idx, const int64_t *vars, int64_t *out);
/* Value of node x at kernel index idx (reduce axes 0 outside a REDUCE). */
val kn_kref_eval(const kn_kref *r, const kn_kop *x, const int64_t *idx);
/* One plain view: shape, strides (0 where the size is 1) and a constant offset. */
kn_st kn_kref_st_strided(int nd, const int64_t *shape, const int64_t *strides, int64_t off);

#endif
