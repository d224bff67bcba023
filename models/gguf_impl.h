/* Private to the GGUF reader (gguf.c parses, gguf_get.c answers questions): the file struct, its arena and the
 * name indexes. */
#ifndef KN_GGUF_IMPL_H
#define KN_GGUF_IMPL_H

#include "gguf.h"

typedef struct kn_gguf_chunk {
  struct kn_gguf_chunk *next;
  size_t used, cap;
  _Alignas(8) char data[];
} kn_gguf_chunk;

/* Open addressing over indexes into kvs or tensors: slots hold index + 1, 0 is empty. */
typedef struct {
  size_t *slots;
  size_t cap;   /* a power of two, at least twice the entries */
  bool kv;      /* keys are kvs[i].key, else tensors[i].name */
} kn_gguf_index;

struct kn_gguf {
  char *name;             /* path or caller's name, for messages */
  const uint8_t *base;
  uint64_t size;
  void *map;              /* the mapping to unmap (NULL for kn_gguf_open_mem) */
  uint32_t version;
  uint64_t alignment, data_off;
  kn_gguf_kv *kvs;
  size_t n_kv;
  kn_gguf_tensor *tensors;
  size_t n_tensors;
  kn_gguf_index kv_index, tensor_index;
  kn_gguf_chunk *arena;
};

void *kn_gguf_arena_alloc(kn_gguf *g, size_t n);
int kn_gguf_index_init(kn_gguf_index *ix, uint64_t n, bool kv);
/* 0 when inserted, 1 when the name is already present. */
int kn_gguf_index_insert(kn_gguf_index *ix, const kn_gguf *g, const char *name, size_t i);
/* Decode one little-endian fixed-size scalar of type t at p into v. */
void kn_gguf_decode_scalar(kn_gguf_type t, const uint8_t *p, kn_gguf_value *v);

#endif
