/* Loading a GGUF model: hyper-parameters from metadata, weights as lazy tensors over the mapped file (never
 * dequantized, never copied on the CPU), the KV cache, the tokenizer, and a memory plan checked before loading. */
#ifndef KN_MODEL_H
#define KN_MODEL_H

#include "llama.h"

typedef struct {
  int n_ctx;          /* KV cache positions; 0: the model's trained context, capped by memory */
  kn_dtype kv_dtype;  /* KN_F16 (default) or KN_F32 */
  int n_slots;        /* KV caches (parallel conversations), default 1 */
} kn_load_opts;

typedef struct {
  int64_t weights, kv_cache, scratch, total, device_total, device_avail;
  int n_ctx;
  bool fits;
} kn_mem_plan;

kn_load_opts kn_load_defaults(void);
/* The memory a model would need on dev with these options, computed from the file's header alone. */
int kn_model_mem_plan(const char *path, kn_device *dev, const kn_load_opts *o, kn_mem_plan *plan, char *err, size_t errlen);
void kn_mem_plan_print(const kn_mem_plan *p, FILE *f);
/* Load a model. NULL and a message naming the file and the problem on failure (a model that does not fit is
 * refused with its memory plan in the message). */
kn_model *kn_model_load(const char *path, kn_device *dev, const kn_load_opts *o, char *err, size_t errlen);
void kn_model_free(kn_model *m);

#endif
