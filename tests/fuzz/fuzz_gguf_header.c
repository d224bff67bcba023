/* libFuzzer target: a GGUF file's header (magic, version, counts, metadata, tensor infos) as kn_gguf_open_mem reads
 * it. A file that opens must answer every accessor, and every tensor's bytes must lie inside the buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  kn_gguf *g = kn_gguf_open_mem(data, size, "fuzz", err, sizeof err);
  if (!g) {
    if (!memchr(err, 0, sizeof err) || !err[0]) abort(); /* a failure always says why */
    return 0;
  }
  for (size_t i = 0; i < kn_gguf_kv_count(g); i++) {
    const kn_gguf_kv *kv = kn_gguf_kv_at(g, i);
    (void)kn_gguf_get(g, kv->key);
    if (kv->value.type == KN_GGUF_ARRAY)
      for (uint64_t k = 0; k < kn_gguf_arr_len(&kv->value) && k < 64; k++) {
        kn_gguf_value item;
        (void)kn_gguf_arr_get(&kv->value, k, &item);
      }
  }
  for (size_t i = 0; i < kn_gguf_tensor_count(g); i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(g, i);
    const uint8_t *p = t->data;
    if (t->nbytes && (p < data || p + t->nbytes > data + size)) abort();
    if (t->nbytes) (void)*(volatile const uint8_t *)(p + t->nbytes - 1);
  }
  kn_gguf_close(g);
  return 0;
}
