/* The one dtype table: every scalar type and GGUF block format with its geometry, GGML id and, for the block
 * formats, its host quantizer and dequantizer (formats.c, formats_k.c). */
#include "dtype.h"

#include "formats_impl.h"

static const kn_dtype_info table[KN_DTYPE_COUNT] = {
  /*               name        short    isz blk  bytes ggml   flt    int    sgn    quant  quantize, dequantize */
  [KN_BOOL] = {"bool", "bool", 1, 1, 1, -1, false, false, false, false},
  [KN_I8] = {"int8", "i8", 1, 1, 1, 24, false, true, true, false},
  [KN_U8] = {"uint8", "u8", 1, 1, 1, -1, false, true, false, false},
  [KN_I16] = {"int16", "i16", 2, 1, 2, 25, false, true, true, false},
  [KN_U16] = {"uint16", "u16", 2, 1, 2, -1, false, true, false, false},
  [KN_I32] = {"int32", "i32", 4, 1, 4, 26, false, true, true, false},
  [KN_U32] = {"uint32", "u32", 4, 1, 4, -1, false, true, false, false},
  [KN_I64] = {"int64", "i64", 8, 1, 8, 27, false, true, true, false},
  [KN_U64] = {"uint64", "u64", 8, 1, 8, -1, false, true, false, false},
  [KN_F16] = {"float16", "f16", 2, 1, 2, 1, true, false, true, false},
  [KN_BF16] = {"bfloat16", "bf16", 2, 1, 2, 30, true, false, true, false},
  [KN_F32] = {"float32", "f32", 4, 1, 4, 0, true, false, true, false},
  [KN_Q4_0] = {"q4_0", "q4_0", 0, 32, 18, 2, false, false, false, true, kn_quant_q4_0, kn_dequant_q4_0},
  [KN_Q4_1] = {"q4_1", "q4_1", 0, 32, 20, 3, false, false, false, true, kn_quant_q4_1, kn_dequant_q4_1},
  [KN_Q5_0] = {"q5_0", "q5_0", 0, 32, 22, 6, false, false, false, true, kn_quant_q5_0, kn_dequant_q5_0},
  [KN_Q5_1] = {"q5_1", "q5_1", 0, 32, 24, 7, false, false, false, true, kn_quant_q5_1, kn_dequant_q5_1},
  [KN_Q8_0] = {"q8_0", "q8_0", 0, 32, 34, 8, false, false, false, true, kn_quant_q8_0, kn_dequant_q8_0},
  [KN_Q8_1] = {"q8_1", "q8_1", 0, 32, 36, 9, false, false, false, true, kn_quant_q8_1, kn_dequant_q8_1},
  [KN_Q2_K] = {"q2_k", "q2_k", 0, 256, 84, 10, false, false, false, true, kn_quant_q2_k, kn_dequant_q2_k},
  [KN_Q3_K] = {"q3_k", "q3_k", 0, 256, 110, 11, false, false, false, true, kn_quant_q3_k, kn_dequant_q3_k},
  [KN_Q4_K] = {"q4_k", "q4_k", 0, 256, 144, 12, false, false, false, true, kn_quant_q4_k, kn_dequant_q4_k},
  [KN_Q5_K] = {"q5_k", "q5_k", 0, 256, 176, 13, false, false, false, true, kn_quant_q5_k, kn_dequant_q5_k},
  [KN_Q6_K] = {"q6_k", "q6_k", 0, 256, 210, 14, false, false, false, true, kn_quant_q6_k, kn_dequant_q6_k},
  [KN_Q8_K] = {"q8_k", "q8_k", 0, 256, 292, 15, false, false, false, true, kn_quant_q8_k, kn_dequant_q8_k},
};

const kn_dtype_info *kn_dtype_get(kn_dtype t) {
  if ((unsigned)t >= KN_DTYPE_COUNT) return &table[KN_F32];
  return &table[t];
}

int64_t kn_dtype_nbytes(kn_dtype t, int64_t n) {
  const kn_dtype_info *d = kn_dtype_get(t);
  if (n < 0 || n % d->block_elems) return -1;
  int64_t blocks = n / d->block_elems;
  if (blocks > INT64_MAX / d->block_bytes) return -1;
  return blocks * d->block_bytes;
}

int kn_dtype_from_ggml(int ggml_type) {
  if (ggml_type < 0) return -1; /* -1 marks "no GGML id" in the table */
  for (int i = 0; i < KN_DTYPE_COUNT; i++)
    if (table[i].ggml_type == ggml_type) return i;
  return -1;
}

kn_dtype kn_dtype_scalar(kn_dtype t) { return kn_dtype_get(t)->is_quant ? KN_F32 : t; }

/* Rank in the promotion lattice; unsigned and signed of one width promote to the next wider signed type. */
static int rank(kn_dtype t) {
  switch (t) {
  case KN_BOOL: return 0;
  case KN_U8: return 1;
  case KN_I8: return 2;
  case KN_U16: return 3;
  case KN_I16: return 4;
  case KN_U32: return 5;
  case KN_I32: return 6;
  case KN_U64: return 7;
  case KN_I64: return 8;
  case KN_F16: return 9;
  case KN_BF16: return 10;
  default: return 11;
  }
}

kn_dtype kn_dtype_promote(kn_dtype a, kn_dtype b) {
  a = kn_dtype_scalar(a), b = kn_dtype_scalar(b);
  if (a == b) return a;
  if ((a == KN_F16 && b == KN_BF16) || (a == KN_BF16 && b == KN_F16)) return KN_F32;
  kn_dtype hi = rank(a) > rank(b) ? a : b, lo = rank(a) > rank(b) ? b : a;
  /* mixing signed and unsigned ints of the same width: go to the signed type one size up */
  if (kn_dtype_is_int(hi) && kn_dtype_is_int(lo) && !kn_dtype_get(hi)->is_signed && kn_dtype_get(lo)->is_signed) {
    switch (hi) {
    case KN_U8: return KN_I16;
    case KN_U16: return KN_I32;
    case KN_U32: return KN_I64;
    default: return KN_I64;
    }
  }
  return hi;
}
