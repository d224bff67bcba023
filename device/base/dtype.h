/* kiln dtypes: the plain scalar types and the GGUF block formats as storage types, described in one table.
 * In device/base/, what every layer shares (below everything, including nothing of kiln's), so codegen reasons
 * about types with it and graph/graph.h exposes it to model code without exposing codegen. */
#ifndef KN_DTYPE_H
#define KN_DTYPE_H

#include <stdbool.h>
#include <stdint.h>

/* The most axes a tensor has (and a kernel's iteration space). */
#define KN_MAXDIM 8

typedef enum {
  KN_BOOL,
  KN_I8, KN_U8, KN_I16, KN_U16, KN_I32, KN_U32, KN_I64, KN_U64,
  KN_F16, KN_BF16, KN_F32,
  /* GGUF block formats: storage types only. Reading an element dequantizes it to float32. */
  KN_Q4_0, KN_Q4_1, KN_Q5_0, KN_Q5_1, KN_Q8_0, KN_Q8_1,
  KN_Q2_K, KN_Q3_K, KN_Q4_K, KN_Q5_K, KN_Q6_K, KN_Q8_K,
  KN_DTYPE_COUNT
} kn_dtype;

typedef struct {
  const char *name;    /* "float32", "q4_k", ... (GGUF-style lower case for block formats) */
  const char *short_name; /* for kernel names and printing: "f32", "q4_k" */
  int itemsize;        /* bytes per element for scalar types, 0 for block formats */
  int block_elems;     /* 1 for scalar types, 32 or 256 for block formats */
  int block_bytes;     /* itemsize for scalar types, bytes per block for block formats */
  int ggml_type;       /* GGML type id (F32=0, F16=1, Q4_0=2, ...), -1 if GGUF has none (bool, unsigned) */
  bool is_float, is_int, is_signed, is_quant;
  /* block formats: one block of block_elems floats into block_bytes on the host and back (formats.c, formats_k.c;
   * NULL for scalar types, which formats.h converts directly). The kernels decode a block with codegen/quant.c and
   * the tests with tests/ref_quant.c; tests/test_formats.c fails on a format kiln reads from GGUF that lacks any. */
  void (*quantize)(const float *x, uint8_t *y);
  void (*dequantize)(const uint8_t *b, float *y);
} kn_dtype_info;

const kn_dtype_info *kn_dtype_get(kn_dtype t);
static inline const char *kn_dtype_name(kn_dtype t) { return kn_dtype_get(t)->name; }
static inline bool kn_dtype_is_float(kn_dtype t) { return kn_dtype_get(t)->is_float; }
static inline bool kn_dtype_is_int(kn_dtype t) { return kn_dtype_get(t)->is_int; }
static inline bool kn_dtype_is_quant(kn_dtype t) { return kn_dtype_get(t)->is_quant; }
/* Bytes needed to store n elements; -1 when n is not a whole number of blocks or the size overflows. */
int64_t kn_dtype_nbytes(kn_dtype t, int64_t n);
/* The dtype for a GGML type id, or -1 if kiln does not know it. */
int kn_dtype_from_ggml(int ggml_type);
/* The value type an element reads as: the dtype itself for scalar types, KN_F32 for block formats. */
kn_dtype kn_dtype_scalar(kn_dtype t);
/* Promotion for binary ops (tinygrad-like lattice: bool < ints < floats). */
kn_dtype kn_dtype_promote(kn_dtype a, kn_dtype b);

#endif
