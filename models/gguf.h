/* GGUF files: a validating reader over a read-only mapping (tensor bytes are used in place, never copied) and a
 * writer that builds metadata and tensors and writes a v3 file. Every count, length and offset of a file is checked
 * against the file's size before it is used, so a hostile file gets an error message, never a crash or a huge
 * allocation. Values are read-only views owned by the kn_gguf; they live until kn_gguf_close. */
#ifndef KN_GGUF_H
#define KN_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../device/base/dtype.h"

#define KN_GGUF_MAX_DIMS 4        /* GGML's limit on tensor rank */
#define KN_GGUF_MAX_DEPTH 8       /* nesting limit for arrays of arrays */
#define KN_GGUF_DEFAULT_ALIGNMENT 32

/* Metadata value types, numbered as in the file. */
typedef enum {
  KN_GGUF_U8 = 0, KN_GGUF_I8 = 1, KN_GGUF_U16 = 2, KN_GGUF_I16 = 3, KN_GGUF_U32 = 4, KN_GGUF_I32 = 5,
  KN_GGUF_F32 = 6, KN_GGUF_BOOL = 7, KN_GGUF_STRING = 8, KN_GGUF_ARRAY = 9, KN_GGUF_U64 = 10, KN_GGUF_I64 = 11,
  KN_GGUF_F64 = 12,
  KN_GGUF_TYPE_COUNT
} kn_gguf_type;

/* One metadata value. Scalars are decoded into the union; a string is a NUL-terminated copy (it may hold
 * embedded NULs: n is its byte length); an array of fixed-size scalars points at its little-endian elements in
 * the file (use the kn_gguf_arr_* accessors, which decode them); an array of strings or of arrays has one
 * kn_gguf_value per element in items. The writer takes the same struct (see kn_gguf_set_value). */
typedef struct kn_gguf_value {
  kn_gguf_type type;
  kn_gguf_type elem;       /* arrays: element type */
  uint64_t n;              /* strings: byte length; arrays: element count */
  union {
    uint64_t u;            /* U8, U16, U32, U64 */
    int64_t i;             /* I8, I16, I32, I64 */
    double f;              /* F32, F64 */
    bool b;                /* BOOL */
    const char *s;         /* STRING */
    const void *raw;       /* ARRAY of scalars: n packed little-endian elements */
    const struct kn_gguf_value *items; /* ARRAY of STRING or ARRAY */
  };
} kn_gguf_value;

typedef struct kn_gguf_kv {
  const char *key;
  kn_gguf_value value;
  uint64_t offset;         /* where the key starts in the file (for messages) */
} kn_gguf_kv;

typedef struct kn_gguf_tensor {
  const char *name;
  int ndim;                        /* 0..KN_GGUF_MAX_DIMS */
  uint64_t ne[KN_GGUF_MAX_DIMS];   /* ne[0] is the contiguous axis; dims past ndim are 1 */
  int type;                        /* GGML type id as stored in the file */
  int dtype;                       /* the kn_dtype for type, or -1 when kiln cannot compute with it (e.g. IQ formats) */
  const char *type_name;           /* "f16", "q4_k", "iq4_xs", ... */
  int64_t nelems;
  uint64_t offset;                 /* relative to the data section */
  uint64_t nbytes;
  const void *data;                /* the bytes inside the mapping */
} kn_gguf_tensor;

typedef struct kn_gguf kn_gguf;

/* Open and validate a GGUF (version 2 or 3, little-endian). Returns NULL with a message naming the file, the field
 * and its offset on any problem. */
kn_gguf *kn_gguf_open(const char *path, char *err, size_t errlen);
/* The same over bytes in memory, which the caller keeps alive and unchanged until kn_gguf_close. name is used in
 * messages. */
kn_gguf *kn_gguf_open_mem(const void *data, size_t size, const char *name, char *err, size_t errlen);
void kn_gguf_close(kn_gguf *g);

uint32_t kn_gguf_version(const kn_gguf *g);
uint64_t kn_gguf_alignment(const kn_gguf *g);
uint64_t kn_gguf_data_offset(const kn_gguf *g);   /* file offset of the tensor data section */
uint64_t kn_gguf_file_size(const kn_gguf *g);

/* ---- metadata ---- */
size_t kn_gguf_kv_count(const kn_gguf *g);
const kn_gguf_kv *kn_gguf_kv_at(const kn_gguf *g, size_t i);   /* NULL when out of range; file order */
const kn_gguf_kv *kn_gguf_find(const kn_gguf *g, const char *key);
const kn_gguf_value *kn_gguf_get(const kn_gguf *g, const char *key);  /* the value of key, or NULL */

/* Typed getters: def when the key is absent or its type does not fit. get_int takes every integer type and bool
 * (a u64 above INT64_MAX does not fit); get_float takes f32, f64 and the integer types. */
int64_t kn_gguf_get_int(const kn_gguf *g, const char *key, int64_t def);
double kn_gguf_get_float(const kn_gguf *g, const char *key, double def);
bool kn_gguf_get_bool(const kn_gguf *g, const char *key, bool def);
const char *kn_gguf_get_str(const kn_gguf *g, const char *key, const char *def);
/* The array value of key when its element type is elem (pass -1 for any element type), else NULL. */
const kn_gguf_value *kn_gguf_get_arr(const kn_gguf *g, const char *key, int elem);

/* Arrays (every accessor takes NULL and out-of-range indices, returning 0 / def / NULL). */
uint64_t kn_gguf_arr_len(const kn_gguf_value *v);
int64_t kn_gguf_arr_int(const kn_gguf_value *v, uint64_t i, int64_t def);    /* integer and bool elements */
double kn_gguf_arr_float(const kn_gguf_value *v, uint64_t i, double def);    /* float and integer elements */
const char *kn_gguf_arr_str(const kn_gguf_value *v, uint64_t i, uint64_t *len); /* string elements */
const kn_gguf_value *kn_gguf_arr_item(const kn_gguf_value *v, uint64_t i);  /* string or array elements */
/* Element i of any array as a value (scalars decoded); false when v is not an array or i is out of range. */
bool kn_gguf_arr_get(const kn_gguf_value *v, uint64_t i, kn_gguf_value *out);

/* Scalar values (not arrays) as numbers; def when the type does not fit (same rules as the getters). */
int64_t kn_gguf_value_int(const kn_gguf_value *v, int64_t def);
double kn_gguf_value_float(const kn_gguf_value *v, double def);

const char *kn_gguf_type_name(kn_gguf_type t);   /* "u8", "string", "array", ...; "?" when unknown */
int kn_gguf_type_size(kn_gguf_type t);           /* bytes of a fixed-size scalar; 0 for string and array */

/* ---- tensors ---- */
size_t kn_gguf_tensor_count(const kn_gguf *g);
const kn_gguf_tensor *kn_gguf_tensor_at(const kn_gguf *g, size_t i);   /* file order; NULL out of range */
const kn_gguf_tensor *kn_gguf_tensor_find(const kn_gguf *g, const char *name);

/* Geometry of a GGML type id, including formats kiln reads but cannot compute with: 0 and the block size and
 * bytes, or -1 when the id is unknown. name may be NULL. */
int kn_gguf_ggml_type_info(int type, const char **name, int *block_elems, int *block_bytes);

/* ---- writer (gguf_write.c) ---- */
typedef struct kn_gguf_writer kn_gguf_writer;

/* alignment 0 means KN_GGUF_DEFAULT_ALIGNMENT; otherwise a power of two, written as general.alignment. */
kn_gguf_writer *kn_gguf_writer_new(uint32_t alignment);
void kn_gguf_writer_free(kn_gguf_writer *w);
/* Message of the last failed call (also written to err where a call takes one). */
const char *kn_gguf_writer_error(const kn_gguf_writer *w);

/* Setting a key that is already set replaces its value in place. All return 0 or -1. Values are deep-copied. */
int kn_gguf_set_u8(kn_gguf_writer *w, const char *key, uint8_t v);
int kn_gguf_set_i8(kn_gguf_writer *w, const char *key, int8_t v);
int kn_gguf_set_u16(kn_gguf_writer *w, const char *key, uint16_t v);
int kn_gguf_set_i16(kn_gguf_writer *w, const char *key, int16_t v);
int kn_gguf_set_u32(kn_gguf_writer *w, const char *key, uint32_t v);
int kn_gguf_set_i32(kn_gguf_writer *w, const char *key, int32_t v);
int kn_gguf_set_u64(kn_gguf_writer *w, const char *key, uint64_t v);
int kn_gguf_set_i64(kn_gguf_writer *w, const char *key, int64_t v);
int kn_gguf_set_f32(kn_gguf_writer *w, const char *key, float v);
int kn_gguf_set_f64(kn_gguf_writer *w, const char *key, double v);
int kn_gguf_set_bool(kn_gguf_writer *w, const char *key, bool v);
int kn_gguf_set_str(kn_gguf_writer *w, const char *key, const char *v);
/* An array of fixed-size scalars from native (little-endian) elements. */
int kn_gguf_set_arr(kn_gguf_writer *w, const char *key, kn_gguf_type elem, const void *data, uint64_t n);
int kn_gguf_set_arr_str(kn_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Any value, including nested arrays and values read from another file (copying a file's metadata). */
int kn_gguf_set_value(kn_gguf_writer *w, const char *key, const kn_gguf_value *v);
int kn_gguf_remove(kn_gguf_writer *w, const char *key);   /* 0 if removed, -1 if absent */

/* A tensor: type is a GGML id, ne as in kn_gguf_tensor. data (nbytes long, must match the shape) is borrowed
 * until the file is written; NULL means the bytes come from the fill callback when writing (streamed). */
int kn_gguf_add_tensor(kn_gguf_writer *w, const char *name, int type, int ndim, const uint64_t *ne,
                       const void *data);

/* Called once per tensor added without data, in order: write exactly nbytes into dst; return 0, or -1 with a
 * message in err. */
typedef int (*kn_gguf_fill_fn)(void *user, size_t index, const char *name, void *dst, uint64_t nbytes, char *err,
                               size_t errlen);

/* Write the file (to path.part, renamed to path on success). */
int kn_gguf_write_file(kn_gguf_writer *w, const char *path, kn_gguf_fill_fn fill, void *user, char *err,
                       size_t errlen);
/* Write into a malloc'ed buffer (for tests and in-memory use); *out is freed by the caller. */
int kn_gguf_write_mem(kn_gguf_writer *w, void **out, size_t *size, kn_gguf_fill_fn fill, void *user, char *err,
                      size_t errlen);

#endif
