/* What an architecture's load() reads from its GGUF file: tensors by name as lazy tensors over the mapped bytes
 * (resident weight memory is the file's tensor bytes; block formats stay quantized), shape checks with messages
 * that name the tensor, and metadata by key. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "gguf.h"

int kn_model_fail(kn_model *m, const char *fmt, ...) {
  if (!m->err[0]) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, sizeof m->err, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static void shape_str(const int64_t *s, int n, char *buf, size_t len) {
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; i < n && o < len; i++) o += snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)s[i]);
}

/* the tensor over the file's bytes (or a device copy where the device cannot see host memory), in wctx */
static kn_t wrap(kn_model *m, const char *name, const kn_gguf_tensor *t) {
  int64_t shape[KN_GGUF_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) shape[i] = (int64_t)t->ne[t->ndim - 1 - i];
  int dt = kn_dtype_from_ggml(t->type);
  if (dt < 0) return kn_model_fail(m, "tensor %s has GGML type %d, which kiln cannot read", name, t->type), NULL;
  /* in place on the CPU; devices without host access get a copy of each tensor, never the whole file */
  kn_ctx *prev = kn_ctx_set(m->wctx);
  kn_t w = kn_from_host_mem((kn_dtype)dt, t->ndim, shape, t->data, t->nbytes);
  kn_ctx_set(prev);
  if (!w) {
    return kn_model_fail(m, "tensor %s: %s", name, kn_ctx_error(m->wctx) ? kn_ctx_error(m->wctx) : "?"), NULL;
  }
  m->weight_bytes += t->nbytes;
  return kn_name(w, "%s", name);
}

kn_t kn_model_tensor(kn_model *m, const char *name) {
  const kn_gguf_tensor *t = kn_gguf_tensor_find(m->file, name);
  if (!t) return kn_model_fail(m, "tensor %s is missing", name), NULL;
  return wrap(m, name, t);
}

kn_t kn_model_weight(kn_model *m, int flags, int ndim, const int64_t *want, const char *fmt, ...) {
  char name[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  const kn_gguf_tensor *t = kn_gguf_tensor_find(m->file, name);
  if (!t) return flags & KN_OPTIONAL ? NULL : (kn_model_fail(m, "tensor %s is missing", name), NULL);
  int64_t shape[KN_GGUF_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) shape[i] = (int64_t)t->ne[t->ndim - 1 - i];
  bool ok = t->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++) ok = shape[i] == want[i];
  if (!ok) {
    char got[96], exp[96];
    shape_str(shape, t->ndim, got, sizeof got), shape_str(want, ndim, exp, sizeof exp);
    return kn_model_fail(m, "tensor %s has shape [%s], expected [%s]", name, got, exp), NULL;
  }
  return wrap(m, name, t);
}

float *kn_model_tensor_f32(kn_model *m, const char *name, int64_t n) {
  const kn_gguf_tensor *t = kn_gguf_tensor_find(m->file, name);
  if (!t) return NULL;
  /* present but not what the architecture reads: an error, not a silently different model */
  if (t->type != kn_dtype_get(KN_F32)->ggml_type || t->nbytes != (uint64_t)n * sizeof(float)) {
    return kn_model_fail(m, "tensor %s is %s of %llu bytes, expected %lld float32 values", name, t->type_name,
                         (unsigned long long)t->nbytes, (long long)n), NULL;
  }
  float *v = malloc((size_t)n * sizeof *v);
  if (v) memcpy(v, t->data, (size_t)n * sizeof *v);
  return v;
}

/* ".x" is "<arch>.x" */
static const char *full_key(const kn_model *m, const char *key, char *buf, size_t n) {
  if (key[0] != '.') return key;
  snprintf(buf, n, "%s%s", m->hp.arch, key);
  return buf;
}

int64_t kn_model_meta_int(const kn_model *m, const char *key, int64_t def) {
  char b[160];
  return kn_gguf_get_int(m->file, full_key(m, key, b, sizeof b), def);
}

double kn_model_meta_float(const kn_model *m, const char *key, double def) {
  char b[160];
  return kn_gguf_get_float(m->file, full_key(m, key, b, sizeof b), def);
}

const char *kn_model_meta_str(const kn_model *m, const char *key, const char *def) {
  char b[160];
  return kn_gguf_get_str(m->file, full_key(m, key, b, sizeof b), def);
}
