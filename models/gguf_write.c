/* GGUF writer: metadata and tensor infos are collected (values deep-copied, tensor bytes borrowed or produced by a
 * callback at write time), then written as a version 3 file: header, kvs, tensor infos, padding to the alignment,
 * and each tensor's bytes padded to the alignment, as llama.cpp lays them out. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../device/base/bytes.h"
#include "gguf.h"

typedef struct {
  char *key;
  kn_gguf_value v;   /* owns its strings, raw bytes and items */
} wkv;

typedef struct {
  char *name;
  int type, ndim;
  uint64_t ne[KN_GGUF_MAX_DIMS], nbytes, offset;
  const void *data;
} wtensor;

struct kn_gguf_writer {
  uint32_t alignment;
  wkv *kvs;
  size_t n_kv, cap_kv;
  wtensor *ts;
  size_t n_t, cap_t;
  char err[320];
};

__attribute__((format(printf, 2, 3))) static int werr(kn_gguf_writer *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->err, sizeof w->err, fmt, ap);
  va_end(ap);
  return -1;
}

const char *kn_gguf_writer_error(const kn_gguf_writer *w) { return w ? w->err : "no writer"; }

kn_gguf_writer *kn_gguf_writer_new(uint32_t alignment) {
  if (alignment & (alignment - 1)) return NULL;
  kn_gguf_writer *w = calloc(1, sizeof *w);
  if (w) w->alignment = alignment ? alignment : KN_GGUF_DEFAULT_ALIGNMENT;
  return w;
}

/* ---- owned values ---- */

static void value_free(kn_gguf_value *v) {
  if (v->type == KN_GGUF_STRING) free((void *)v->s);
  if (v->type == KN_GGUF_ARRAY) {
    if (kn_gguf_type_size(v->elem)) free((void *)v->raw);
    else if (v->items) {
      for (uint64_t i = 0; i < v->n; i++) value_free((kn_gguf_value *)&v->items[i]);
      free((void *)v->items);
    }
  }
  memset(v, 0, sizeof *v);
}

static int value_copy(kn_gguf_writer *w, kn_gguf_value *dst, const kn_gguf_value *src, int depth);

static int array_copy(kn_gguf_writer *w, kn_gguf_value *dst, const kn_gguf_value *src, int depth) {
  if (depth >= KN_GGUF_MAX_DEPTH) return werr(w, "arrays nested deeper than %d levels", KN_GGUF_MAX_DEPTH);
  if ((unsigned)src->elem >= KN_GGUF_TYPE_COUNT) return werr(w, "unknown array element type %d", (int)src->elem);
  dst->type = KN_GGUF_ARRAY, dst->elem = src->elem, dst->n = src->n;
  int size = kn_gguf_type_size(src->elem);
  if (src->n && (size ? !src->raw : !src->items)) return werr(w, "array of %llu elements has no data", (unsigned long long)src->n);
  uint64_t bytes = size ? (uint64_t)size : sizeof(kn_gguf_value);
  if (src->n > SIZE_MAX / bytes) return werr(w, "array of %llu elements is too large", (unsigned long long)src->n);
  if (!src->n) return 0;
  void *mem = calloc(src->n, bytes);
  if (!mem) return werr(w, "out of memory for an array of %llu elements", (unsigned long long)src->n);
  if (size) {
    memcpy(mem, src->raw, src->n * bytes);
    dst->raw = mem;
    return 0;
  }
  kn_gguf_value *items = mem;
  dst->items = items;
  for (uint64_t i = 0; i < src->n; i++) {
    if (src->items[i].type != src->elem) {
      dst->n = i;
      return werr(w, "array element %llu is %s, the array holds %s", (unsigned long long)i,
                  kn_gguf_type_name(src->items[i].type), kn_gguf_type_name(src->elem));
    }
    if (value_copy(w, &items[i], &src->items[i], depth + 1)) {
      dst->n = i + 1;
      return -1;
    }
  }
  return 0;
}

static int value_copy(kn_gguf_writer *w, kn_gguf_value *dst, const kn_gguf_value *src, int depth) {
  memset(dst, 0, sizeof *dst);
  if (src->type == KN_GGUF_ARRAY) return array_copy(w, dst, src, depth);
  if (src->type == KN_GGUF_STRING) {
    if (!src->s && src->n) return werr(w, "string of %llu bytes has no data", (unsigned long long)src->n);
    if (src->n >= SIZE_MAX) return werr(w, "string too long");
    char *s = malloc(src->n + 1);
    if (!s) return werr(w, "out of memory for a %llu-byte string", (unsigned long long)src->n);
    if (src->n) memcpy(s, src->s, src->n);
    s[src->n] = 0;
    dst->type = KN_GGUF_STRING, dst->s = s, dst->n = src->n;
    return 0;
  }
  if (!kn_gguf_type_size(src->type)) return werr(w, "unknown value type %d", (int)src->type);
  *dst = *src;
  dst->n = 0;
  return 0;
}

/* ---- setting keys ---- */

static wkv *find_kv(kn_gguf_writer *w, const char *key) {
  for (size_t i = 0; i < w->n_kv; i++)
    if (!strcmp(w->kvs[i].key, key)) return &w->kvs[i];
  return NULL;
}

int kn_gguf_set_value(kn_gguf_writer *w, const char *key, const kn_gguf_value *v) {
  if (!w || !key || !v) return w ? werr(w, "no key or value") : -1;
  bool align_key = !strcmp(key, "general.alignment");
  if (align_key && (v->type != KN_GGUF_U32 || !v->u || (v->u & (v->u - 1))))
    return werr(w, "general.alignment must be a u32 power of two");
  kn_gguf_value copy;
  if (value_copy(w, &copy, v, 0)) {
    value_free(&copy);
    return -1;
  }
  wkv *kv = find_kv(w, key);
  if (!kv) {
    if (w->n_kv == w->cap_kv) {
      size_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
      wkv *n = realloc(w->kvs, cap * sizeof *n);
      if (!n) return value_free(&copy), werr(w, "out of memory");
      w->kvs = n, w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) return value_free(&copy), werr(w, "out of memory");
    kv = &w->kvs[w->n_kv++];
    kv->key = k;
  } else {
    value_free(&kv->v);
  }
  kv->v = copy;
  if (align_key) w->alignment = (uint32_t)v->u;
  return 0;
}

int kn_gguf_remove(kn_gguf_writer *w, const char *key) {
  wkv *kv = w && key ? find_kv(w, key) : NULL;
  if (!kv) return w ? werr(w, "key %s is not set", key ? key : "(null)") : -1;
  free(kv->key);
  value_free(&kv->v);
  size_t i = (size_t)(kv - w->kvs);
  memmove(&w->kvs[i], &w->kvs[i + 1], (w->n_kv - i - 1) * sizeof *kv);
  w->n_kv--;
  if (!strcmp(key, "general.alignment")) w->alignment = KN_GGUF_DEFAULT_ALIGNMENT;
  return 0;
}

#define SETTER(fn, ctype, T, field)                                            \
  int fn(kn_gguf_writer *w, const char *key, ctype v) {                        \
    kn_gguf_value x = {.type = T};                                             \
    x.field = v;                                                               \
    return kn_gguf_set_value(w, key, &x);                                      \
  }
SETTER(kn_gguf_set_u8, uint8_t, KN_GGUF_U8, u)
SETTER(kn_gguf_set_i8, int8_t, KN_GGUF_I8, i)
SETTER(kn_gguf_set_u16, uint16_t, KN_GGUF_U16, u)
SETTER(kn_gguf_set_i16, int16_t, KN_GGUF_I16, i)
SETTER(kn_gguf_set_u32, uint32_t, KN_GGUF_U32, u)
SETTER(kn_gguf_set_i32, int32_t, KN_GGUF_I32, i)
SETTER(kn_gguf_set_u64, uint64_t, KN_GGUF_U64, u)
SETTER(kn_gguf_set_i64, int64_t, KN_GGUF_I64, i)
SETTER(kn_gguf_set_f32, float, KN_GGUF_F32, f)
SETTER(kn_gguf_set_f64, double, KN_GGUF_F64, f)
SETTER(kn_gguf_set_bool, bool, KN_GGUF_BOOL, b)
#undef SETTER

int kn_gguf_set_str(kn_gguf_writer *w, const char *key, const char *v) {
  if (!v) return w ? werr(w, "%s: NULL string", key ? key : "(null)") : -1;
  kn_gguf_value x = {.type = KN_GGUF_STRING, .s = v, .n = strlen(v)};
  return kn_gguf_set_value(w, key, &x);
}

int kn_gguf_set_arr(kn_gguf_writer *w, const char *key, kn_gguf_type elem, const void *data, uint64_t n) {
  if (!kn_gguf_type_size(elem)) return w ? werr(w, "%s: element type %s is not a fixed-size scalar", key, kn_gguf_type_name(elem)) : -1;
  kn_gguf_value x = {.type = KN_GGUF_ARRAY, .elem = elem, .n = n, .raw = data};
  return kn_gguf_set_value(w, key, &x);
}

int kn_gguf_set_arr_str(kn_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
  if (!w) return -1;
  if (n && !strs) return werr(w, "%s: no strings", key);
  if (n > SIZE_MAX / sizeof(kn_gguf_value)) return werr(w, "%s: too many strings", key);
  kn_gguf_value *items = n ? calloc(n, sizeof *items) : NULL;
  if (n && !items) return werr(w, "out of memory");
  for (uint64_t i = 0; i < n; i++) {
    if (!strs[i]) {
      free(items);
      return werr(w, "%s: string %llu is NULL", key, (unsigned long long)i);
    }
    items[i] = (kn_gguf_value){.type = KN_GGUF_STRING, .s = strs[i], .n = strlen(strs[i])};
  }
  kn_gguf_value x = {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_STRING, .n = n, .items = items};
  int rc = kn_gguf_set_value(w, key, &x);
  free(items);
  return rc;
}

/* ---- tensors ---- */

static int tensor_bytes(kn_gguf_writer *w, wtensor *t) {
  const char *tn;
  int be, bb;
  if (kn_gguf_ggml_type_info(t->type, &tn, &be, &bb)) return werr(w, "tensor %s: unknown GGML type %d", t->name, t->type);
  if (t->ndim < 1 || t->ndim > KN_GGUF_MAX_DIMS) return werr(w, "tensor %s: %d dimensions", t->name, t->ndim);
  if (t->ne[0] % (uint64_t)be)
    return werr(w, "tensor %s: ne[0] = %llu is not a multiple of the %s block size %d", t->name,
                (unsigned long long)t->ne[0], tn, be);
  uint64_t n = t->ne[0] / (uint64_t)be, elems = 1;
  if (n > UINT64_MAX / (uint64_t)bb) return werr(w, "tensor %s: size overflows", t->name);
  n *= (uint64_t)bb;
  for (int d = 0; d < KN_GGUF_MAX_DIMS; d++) {
    if (t->ne[d] > (uint64_t)INT64_MAX || (t->ne[d] && elems > (uint64_t)INT64_MAX / t->ne[d]))
      return werr(w, "tensor %s: element count overflows", t->name);
    elems *= t->ne[d];
    if (d && t->ne[d] && n > UINT64_MAX / t->ne[d]) return werr(w, "tensor %s: size overflows", t->name);
    if (d) n *= t->ne[d];
  }
  t->nbytes = n;
  return 0;
}

int kn_gguf_add_tensor(kn_gguf_writer *w, const char *name, int type, int ndim, const uint64_t *ne,
                       const void *data) {
  if (!w) return -1;
  if (!name || !*name) return werr(w, "tensor name is empty");
  if (strlen(name) > 63) return werr(w, "tensor name %.80s... is longer than 63 bytes (GGML's limit)", name);
  for (size_t i = 0; i < w->n_t; i++)
    if (!strcmp(w->ts[i].name, name)) return werr(w, "tensor %s is already added", name);
  if (ndim < 1 || ndim > KN_GGUF_MAX_DIMS) return werr(w, "tensor %s: %d dimensions (1 to %d allowed)", name, ndim, KN_GGUF_MAX_DIMS);
  wtensor t = {.type = type, .ndim = ndim, .data = data};
  t.name = (char *)name;
  for (int d = 0; d < KN_GGUF_MAX_DIMS; d++) t.ne[d] = d < ndim && ne ? ne[d] : 1;
  if (!ne && ndim) return werr(w, "tensor %s: no shape", name);
  if (tensor_bytes(w, &t)) return -1;
  if (w->n_t == w->cap_t) {
    size_t cap = w->cap_t ? 2 * w->cap_t : 16;
    wtensor *n = realloc(w->ts, cap * sizeof *n);
    if (!n) return werr(w, "out of memory");
    w->ts = n, w->cap_t = cap;
  }
  if (!(t.name = strdup(name))) return werr(w, "out of memory");
  w->ts[w->n_t++] = t;
  return 0;
}

void kn_gguf_writer_free(kn_gguf_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n_kv; i++) {
    free(w->kvs[i].key);
    value_free(&w->kvs[i].v);
  }
  for (size_t i = 0; i < w->n_t; i++) free(w->ts[i].name);
  free(w->kvs);
  free(w->ts);
  free(w);
}


/* ---- serialization ---- */

/* the header is built in a kn_bytes */
static void put(kn_bytes *b, const void *d, size_t n) { kn_bytes_put(b, d, n); }
static void put_u32(kn_bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(kn_bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(kn_bytes *b, const char *s, uint64_t n) { put_u64(b, n), put(b, s, n); }

static void put_scalar(kn_bytes *b, const kn_gguf_value *v) {
  union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32; } x;
  switch (v->type) {
  case KN_GGUF_U8: x.u8 = (uint8_t)v->u; break;
  case KN_GGUF_I8: x.i8 = (int8_t)v->i; break;
  case KN_GGUF_BOOL: x.u8 = v->b ? 1 : 0; break;
  case KN_GGUF_U16: x.u16 = (uint16_t)v->u; break;
  case KN_GGUF_I16: x.i16 = (int16_t)v->i; break;
  case KN_GGUF_U32: x.u32 = (uint32_t)v->u; break;
  case KN_GGUF_I32: x.i32 = (int32_t)v->i; break;
  case KN_GGUF_F32: x.f32 = (float)v->f; break;
  case KN_GGUF_U64: return put_u64(b, v->u);
  case KN_GGUF_I64: return put(b, &v->i, 8);
  case KN_GGUF_F64: return put(b, &v->f, 8);
  default: return;
  }
  put(b, &x, (size_t)kn_gguf_type_size(v->type));
}

/* The value's bytes after its type tag. */
static void put_value(kn_bytes *b, const kn_gguf_value *v) {
  if (v->type == KN_GGUF_STRING) return put_str(b, v->s, v->n);
  if (v->type != KN_GGUF_ARRAY) return put_scalar(b, v);
  put_u32(b, (uint32_t)v->elem), put_u64(b, v->n);
  int size = kn_gguf_type_size(v->elem);
  if (size) return put(b, v->raw, v->n * (size_t)size);
  for (uint64_t i = 0; i < v->n; i++) put_value(b, &v->items[i]);
}

/* Offsets of every tensor in the data section; general.alignment written when it is not the default. */
static int layout(kn_gguf_writer *w, uint64_t *data_bytes) {
  if (w->alignment != KN_GGUF_DEFAULT_ALIGNMENT && !find_kv(w, "general.alignment") &&
      kn_gguf_set_u32(w, "general.alignment", w->alignment))
    return -1;
  uint64_t off = 0, a = w->alignment;
  for (size_t i = 0; i < w->n_t; i++) {
    uint64_t pad = (a - w->ts[i].nbytes % a) % a;
    if (w->ts[i].nbytes > UINT64_MAX - pad || off > UINT64_MAX - pad - w->ts[i].nbytes)
      return werr(w, "tensor data exceeds 64 bits");
    w->ts[i].offset = off;
    off += w->ts[i].nbytes + pad;
  }
  *data_bytes = off;
  return 0;
}

static int header(kn_gguf_writer *w, kn_bytes *b) {
  put(b, "GGUF", 4), put_u32(b, 3), put_u64(b, w->n_t), put_u64(b, w->n_kv);
  for (size_t i = 0; i < w->n_kv; i++) {
    put_str(b, w->kvs[i].key, strlen(w->kvs[i].key));
    put_u32(b, (uint32_t)w->kvs[i].v.type);
    put_value(b, &w->kvs[i].v);
  }
  for (size_t i = 0; i < w->n_t; i++) {
    const wtensor *t = &w->ts[i];
    put_str(b, t->name, strlen(t->name)), put_u32(b, (uint32_t)t->ndim);
    for (int d = 0; d < t->ndim; d++) put_u64(b, t->ne[d]);
    put_u32(b, (uint32_t)t->type), put_u64(b, t->offset);
  }
  static const uint8_t zeros[64];
  for (size_t pad = (w->alignment - b->len % w->alignment) % w->alignment; pad;) {
    size_t k = pad < sizeof zeros ? pad : sizeof zeros;
    put(b, zeros, k), pad -= k;
  }
  return b->oom ? werr(w, "out of memory for the header") : 0;
}

/* Where the bytes go: a FILE or a buffer sized in advance. */
typedef struct {
  FILE *f;
  uint8_t *mem;
  size_t pos, cap;
} sink;

static int sink_write(kn_gguf_writer *w, sink *s, const void *p, uint64_t n) {
  if (s->f) return fwrite(p, 1, n, s->f) == n ? 0 : werr(w, "write failed: %m");
  if (n > s->cap - s->pos) return werr(w, "internal: buffer too small");
  memcpy(s->mem + s->pos, p, n);
  s->pos += n;
  return 0;
}

static int sink_zeros(kn_gguf_writer *w, sink *s, uint64_t n) {
  static const uint8_t zeros[4096];
  while (n) {
    uint64_t k = n < sizeof zeros ? n : sizeof zeros;
    if (sink_write(w, s, zeros, k)) return -1;
    n -= k;
  }
  return 0;
}

static int tensor_data(kn_gguf_writer *w, sink *s, size_t i, kn_gguf_fill_fn fill, void *user) {
  const wtensor *t = &w->ts[i];
  const void *src = t->data;
  void *buf = NULL;
  if (!src && t->nbytes) {
    if (!fill) return werr(w, "tensor %s has no data and no fill callback was given", t->name);
    if (t->nbytes > SIZE_MAX || !(buf = malloc(t->nbytes)))
      return werr(w, "tensor %s: out of memory for %llu bytes", t->name, (unsigned long long)t->nbytes);
    char e[256] = "";
    if (fill(user, i, t->name, buf, t->nbytes, e, sizeof e)) {
      free(buf);
      return werr(w, "tensor %s: %s", t->name, e[0] ? e : "fill failed");
    }
    src = buf;
  }
  uint64_t pad = (w->alignment - t->nbytes % w->alignment) % w->alignment;
  int rc = (t->nbytes && sink_write(w, s, src, t->nbytes)) || sink_zeros(w, s, pad) ? -1 : 0;
  free(buf);
  return rc;
}

static int emit(kn_gguf_writer *w, sink *s, const kn_bytes *h, kn_gguf_fill_fn fill, void *user) {
  if (sink_write(w, s, h->s, h->len)) return -1;
  for (size_t i = 0; i < w->n_t; i++)
    if (tensor_data(w, s, i, fill, user)) return -1;
  return 0;
}

static int report(kn_gguf_writer *w, int rc, char *err, size_t errlen) {
  if (rc && err) snprintf(err, errlen, "%s", w->err);
  return rc;
}

int kn_gguf_write_mem(kn_gguf_writer *w, void **out, size_t *size, kn_gguf_fill_fn fill, void *user, char *err,
                      size_t errlen) {
  if (!w) return -1;
  *out = NULL, *size = 0;
  uint64_t data;
  kn_bytes h = {0};
  if (layout(w, &data) || header(w, &h)) return free(h.s), report(w, -1, err, errlen);
  if (data > SIZE_MAX - h.len) return free(h.s), report(w, werr(w, "file too large for memory"), err, errlen);
  sink s = {.cap = h.len + data};
  if (!(s.mem = malloc(s.cap ? s.cap : 1))) return free(h.s), report(w, werr(w, "out of memory"), err, errlen);
  int rc = emit(w, &s, &h, fill, user);
  free(h.s);
  if (rc) return free(s.mem), report(w, -1, err, errlen);
  *out = s.mem, *size = s.pos;
  return 0;
}

int kn_gguf_write_file(kn_gguf_writer *w, const char *path, kn_gguf_fill_fn fill, void *user, char *err,
                       size_t errlen) {
  if (!w) return -1;
  uint64_t data;
  kn_bytes h = {0};
  if (layout(w, &data) || header(w, &h)) return free(h.s), report(w, -1, err, errlen);
  size_t plen = strlen(path);
  char *part = malloc(plen + 6);
  if (!part) return free(h.s), report(w, werr(w, "out of memory"), err, errlen);
  memcpy(part, path, plen), memcpy(part + plen, ".part", 6);
  sink s = {.f = fopen(part, "wb")};
  int rc = s.f ? emit(w, &s, &h, fill, user) : werr(w, "%s: cannot create: %m", part);
  free(h.s);
  if (s.f && fclose(s.f) && !rc) rc = werr(w, "%s: write failed: %m", part);
  if (!rc && rename(part, path)) rc = werr(w, "%s: cannot rename to %s: %m", part, path);
  if (rc && s.f) unlink(part);
  free(part);
  return report(w, rc, err, errlen);
}
