/* GGUF reader: maps a file read-only and validates the whole header (metadata, tensor infos, data section) against
 * the file size before anything is handed out. Strings are copied out NUL-terminated into an arena; scalar arrays
 * and tensor bytes stay in the mapping. Accessors are in gguf_get.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_impl.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the GGUF reader decodes little-endian in place");

/* ---- arena: every string and item array of one file, freed together ---- */

void *kn_gguf_arena_alloc(kn_gguf *g, size_t n) {
  n = (n + 7) & ~(size_t)7;
  if (!g->arena || g->arena->cap - g->arena->used < n) {
    size_t cap = n > ((size_t)1 << 20) ? n : ((size_t)1 << 20);
    kn_gguf_chunk *c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->next = g->arena, c->used = 0, c->cap = cap;
    g->arena = c;
  }
  void *p = g->arena->data + g->arena->used;
  g->arena->used += n;
  return p;
}

/* ---- the cursor ---- */

typedef struct {
  kn_gguf *g;
  const uint8_t *p;
  uint64_t size, pos;
  char *err;
  size_t errlen;
  char ctx[192];   /* what is being read: "kv 3 'general.name'", "tensor 7 'output.weight'" */
} rd;

__attribute__((format(printf, 4, 5))) static int fail(rd *r, const char *field, uint64_t off, const char *fmt, ...) {
  char msg[320];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(r->err, r->errlen, "%s: %s%s%s at offset %llu: %s", r->g->name, r->ctx, r->ctx[0] ? ": " : "", field,
           (unsigned long long)off, msg);
  return -1;
}

static uint64_t left(const rd *r) { return r->size - r->pos; }

static int need(rd *r, uint64_t n, const char *field) {
  if (n > left(r))
    return fail(r, field, r->pos, "needs %llu bytes but only %llu remain in the file (size %llu)",
                (unsigned long long)n, (unsigned long long)left(r), (unsigned long long)r->size);
  return 0;
}

static int rd_u32(rd *r, uint32_t *v, const char *field) {
  if (need(r, 4, field)) return -1;
  memcpy(v, r->p + r->pos, 4);
  r->pos += 4;
  return 0;
}

static int rd_u64(rd *r, uint64_t *v, const char *field) {
  if (need(r, 8, field)) return -1;
  memcpy(v, r->p + r->pos, 8);
  r->pos += 8;
  return 0;
}

/* A length-prefixed string copied into the arena with a NUL after it. */
static int rd_str(rd *r, const char **s, uint64_t *len, bool allow_nul, const char *field) {
  uint64_t at = r->pos, n;
  if (rd_u64(r, &n, field)) return -1;
  if (n > left(r))
    return fail(r, field, at, "string length %llu runs past the end of the file (%llu bytes remain)",
                (unsigned long long)n, (unsigned long long)left(r));
  if (!allow_nul && memchr(r->p + r->pos, 0, n)) return fail(r, field, at, "contains a NUL byte");
  char *c = kn_gguf_arena_alloc(r->g, n + 1);
  if (!c) return fail(r, field, at, "out of memory for a %llu-byte string", (unsigned long long)n);
  memcpy(c, r->p + r->pos, n);
  c[n] = 0;
  r->pos += n;
  *s = c;
  if (len) *len = n;
  return 0;
}

/* ---- metadata values ---- */

static int rd_value(rd *r, kn_gguf_type type, kn_gguf_value *v, int depth, const char *field);

/* Fewest bytes one element of type can take in the file: bounds element counts by the bytes left. */
static uint64_t min_elem_bytes(kn_gguf_type t) {
  int s = kn_gguf_type_size(t);
  return s ? (uint64_t)s : t == KN_GGUF_STRING ? 8 : 12;
}

static int rd_array(rd *r, kn_gguf_value *v, int depth, const char *field) {
  uint64_t at = r->pos;
  uint32_t et;
  if (depth >= KN_GGUF_MAX_DEPTH)
    return fail(r, field, at, "arrays nested deeper than %d levels", KN_GGUF_MAX_DEPTH);
  if (rd_u32(r, &et, field)) return -1;
  if (et >= KN_GGUF_TYPE_COUNT) return fail(r, field, at, "unknown array element type %u", et);
  uint64_t n;
  if (rd_u64(r, &n, field)) return -1;
  v->elem = (kn_gguf_type)et, v->n = n;
  uint64_t min = min_elem_bytes(v->elem);
  if (n > left(r) / min)
    return fail(r, field, at, "array of %llu %s elements needs at least %llu bytes per element, only %llu bytes remain",
                (unsigned long long)n, kn_gguf_type_name(v->elem), (unsigned long long)min,
                (unsigned long long)left(r));
  if (kn_gguf_type_size(v->elem)) {
    v->raw = r->p + r->pos;
    if (v->elem == KN_GGUF_BOOL)
      for (uint64_t i = 0; i < n; i++)
        if (r->p[r->pos + i] > 1)
          return fail(r, field, r->pos + i, "bool element %llu is %u, not 0 or 1", (unsigned long long)i,
                      r->p[r->pos + i]);
    r->pos += n * min;
    return 0;
  }
  kn_gguf_value *items = n ? kn_gguf_arena_alloc(r->g, n * sizeof *items) : NULL;
  if (n && !items) return fail(r, field, at, "out of memory for %llu array elements", (unsigned long long)n);
  for (uint64_t i = 0; i < n; i++) {
    memset(&items[i], 0, sizeof items[i]);
    if (rd_value(r, v->elem, &items[i], depth + 1, field)) return -1;
  }
  v->items = items;
  return 0;
}

static int rd_value(rd *r, kn_gguf_type type, kn_gguf_value *v, int depth, const char *field) {
  v->type = type;
  uint64_t at = r->pos;
  int size = kn_gguf_type_size(type);
  if (type == KN_GGUF_STRING) return rd_str(r, &v->s, &v->n, true, field);
  if (type == KN_GGUF_ARRAY) return rd_array(r, v, depth, field);
  if (!size) return fail(r, field, at, "unknown value type %d", (int)type);
  if (need(r, size, field)) return -1;
  kn_gguf_decode_scalar(type, r->p + r->pos, v);
  if (type == KN_GGUF_BOOL && r->p[r->pos] > 1)
    return fail(r, field, at, "bool value is %u, not 0 or 1", r->p[r->pos]);
  r->pos += size;
  return 0;
}

static int rd_kv(rd *r, size_t i) {
  kn_gguf_kv *kv = &r->g->kvs[i];
  kv->offset = r->pos;
  snprintf(r->ctx, sizeof r->ctx, "kv %zu", i);
  if (rd_str(r, &kv->key, NULL, false, "key")) return -1;
  snprintf(r->ctx, sizeof r->ctx, "kv %zu '%.120s'", i, kv->key);
  if (kn_gguf_index_insert(&r->g->kv_index, r->g, kv->key, i) > 0)
    return fail(r, "key", kv->offset, "duplicate key");
  uint64_t at = r->pos;
  uint32_t t;
  if (rd_u32(r, &t, "value type")) return -1;
  if (t >= KN_GGUF_TYPE_COUNT) return fail(r, "value type", at, "unknown value type %u", t);
  return rd_value(r, (kn_gguf_type)t, &kv->value, 0, "value");
}

/* general.alignment must be a u32 power of two when present (it places every tensor). */
static int read_alignment(rd *r) {
  r->g->alignment = KN_GGUF_DEFAULT_ALIGNMENT;
  const kn_gguf_kv *kv = kn_gguf_find(r->g, "general.alignment");
  if (!kv) return 0;
  snprintf(r->ctx, sizeof r->ctx, "kv %zu", (size_t)(kv - r->g->kvs));
  if (kv->value.type != KN_GGUF_U32)
    return fail(r, "general.alignment", kv->offset, "type is %s, must be u32", kn_gguf_type_name(kv->value.type));
  uint64_t a = kv->value.u;
  if (!a || (a & (a - 1)))
    return fail(r, "general.alignment", kv->offset, "%llu is not a power of two", (unsigned long long)a);
  r->g->alignment = a;
  return 0;
}

/* ---- tensor infos ---- */

static int rd_dims(rd *r, kn_gguf_tensor *t) {
  uint64_t at = r->pos;
  uint32_t nd;
  if (rd_u32(r, &nd, "n_dims")) return -1;
  if (nd > KN_GGUF_MAX_DIMS) return fail(r, "n_dims", at, "%u dimensions, at most %d allowed", nd, KN_GGUF_MAX_DIMS);
  t->ndim = (int)nd;
  uint64_t prod = 1;
  for (int d = 0; d < KN_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
  for (int d = 0; d < t->ndim; d++) {
    at = r->pos;
    if (rd_u64(r, &t->ne[d], "dims")) return -1;
    if (t->ne[d] > (uint64_t)INT64_MAX) return fail(r, "dims", at, "dimension %d is %llu", d, (unsigned long long)t->ne[d]);
    if (t->ne[d] && prod > (uint64_t)INT64_MAX / t->ne[d])
      return fail(r, "dims", at, "element count overflows 64 bits at dimension %d", d);
    prod *= t->ne[d];
  }
  t->nelems = (int64_t)prod;
  return 0;
}

/* Byte size from the shape: rows of whole blocks. */
static int tensor_size(rd *r, kn_gguf_tensor *t, uint64_t at) {
  int be, bb;
  if (kn_gguf_ggml_type_info(t->type, &t->type_name, &be, &bb))
    return fail(r, "type", at, "unknown GGML type %u", (unsigned)t->type);
  int dt = t->type >= 0 && t->type < 64 ? kn_dtype_from_ggml(t->type) : -1;
  t->dtype = dt;
  if (t->ne[0] % (uint64_t)be)
    return fail(r, "dims", at, "ne[0] = %llu is not a multiple of the %s block size %d", (unsigned long long)t->ne[0],
                t->type_name, be);
  uint64_t n = t->ne[0] / (uint64_t)be;
  if (n > UINT64_MAX / (uint64_t)bb) return fail(r, "dims", at, "byte size overflows 64 bits");
  n *= (uint64_t)bb;
  for (int d = 1; d < KN_GGUF_MAX_DIMS; d++) {
    if (t->ne[d] && n > UINT64_MAX / t->ne[d]) return fail(r, "dims", at, "byte size overflows 64 bits");
    n *= t->ne[d];
  }
  t->nbytes = n;
  return 0;
}

static int rd_tensor(rd *r, size_t i) {
  kn_gguf *g = r->g;
  kn_gguf_tensor *t = &g->tensors[i];
  uint64_t start = r->pos;
  snprintf(r->ctx, sizeof r->ctx, "tensor %zu", i);
  if (rd_str(r, &t->name, NULL, false, "name")) return -1;
  snprintf(r->ctx, sizeof r->ctx, "tensor %zu '%.120s'", i, t->name);
  if (kn_gguf_index_insert(&g->tensor_index, g, t->name, i) > 0)
    return fail(r, "name", start, "duplicate tensor name");
  if (rd_dims(r, t)) return -1;
  uint64_t at = r->pos;
  uint32_t type;
  if (rd_u32(r, &type, "type")) return -1;
  t->type = (int)type;
  if (type > 1023) return fail(r, "type", at, "unknown GGML type %u", type);
  if (tensor_size(r, t, at)) return -1;
  at = r->pos;
  if (rd_u64(r, &t->offset, "data offset")) return -1;
  if (t->offset % g->alignment)
    return fail(r, "data offset", at, "%llu is not a multiple of the alignment %llu", (unsigned long long)t->offset,
                (unsigned long long)g->alignment);
  return 0;
}

/* Once the data section's start is known: every tensor inside it, none overlapping another. */
static int cmp_by_offset(const void *a, const void *b, void *arg) {
  const kn_gguf_tensor *ts = arg;
  uint64_t x = ts[*(const size_t *)a].offset, y = ts[*(const size_t *)b].offset;
  return x < y ? -1 : x > y;
}

static int place_tensors(rd *r) {
  kn_gguf *g = r->g;
  uint64_t end = r->pos, pad = (g->alignment - end % g->alignment) % g->alignment;
  r->ctx[0] = 0;
  if (!g->n_tensors) {
    g->data_off = end + pad <= r->size ? end + pad : end;
    return 0;
  }
  if (pad > r->size - end)
    return fail(r, "data section", end, "starts at %llu (aligned to %llu), past the end of the file (size %llu)",
                (unsigned long long)(end + pad), (unsigned long long)g->alignment, (unsigned long long)r->size);
  g->data_off = end + pad;
  uint64_t avail = r->size - g->data_off;
  for (size_t i = 0; i < g->n_tensors; i++) {
    kn_gguf_tensor *t = &g->tensors[i];
    if (t->offset > avail || t->nbytes > avail - t->offset) {
      snprintf(r->ctx, sizeof r->ctx, "tensor %zu '%.120s'", i, t->name);
      return fail(r, "data offset", g->data_off + (t->offset < avail ? t->offset : avail),
                  "data [%llu, +%llu) runs past the end of the %llu-byte data section", (unsigned long long)t->offset,
                  (unsigned long long)t->nbytes, (unsigned long long)avail);
    }
    t->data = r->p + g->data_off + t->offset;
  }
  size_t *order = malloc(g->n_tensors * sizeof *order);
  if (!order) return fail(r, "tensors", end, "out of memory");
  for (size_t i = 0; i < g->n_tensors; i++) order[i] = i;
  qsort_r(order, g->n_tensors, sizeof *order, cmp_by_offset, g->tensors);
  int rc = 0;
  for (size_t k = 1; k < g->n_tensors && !rc; k++) {
    const kn_gguf_tensor *a = &g->tensors[order[k - 1]], *b = &g->tensors[order[k]];
    if (a->offset + a->nbytes > b->offset && a->nbytes && b->nbytes) {
      snprintf(r->ctx, sizeof r->ctx, "tensor '%.80s'", b->name);
      rc = fail(r, "data offset", g->data_off + b->offset, "data overlaps tensor '%.80s' [%llu, +%llu)", a->name,
                (unsigned long long)a->offset, (unsigned long long)a->nbytes);
    }
  }
  free(order);
  return rc;
}

/* ---- the header ---- */

static int rd_header(rd *r, uint64_t *n_tensors, uint64_t *n_kv) {
  if (r->size < 4 || memcmp(r->p, "GGUF", 4)) {
    if (r->size < 4) return fail(r, "magic", 0, "file is %llu bytes, too short for a GGUF header", (unsigned long long)r->size);
    return fail(r, "magic", 0, "bytes %02x %02x %02x %02x are not \"GGUF\"", r->p[0], r->p[1], r->p[2], r->p[3]);
  }
  r->pos = 4;
  uint32_t ver;
  if (rd_u32(r, &ver, "version")) return -1;
  if (ver == 0x02000000u || ver == 0x03000000u) return fail(r, "version", 4, "big-endian GGUF files are not supported");
  if (ver == 1) return fail(r, "version", 4, "GGUF version 1 is not supported (convert the file to version 3)");
  if (ver != 2 && ver != 3) return fail(r, "version", 4, "unsupported version %u (kiln reads 2 and 3)", ver);
  r->g->version = ver;
  if (rd_u64(r, n_tensors, "tensor_count") || rd_u64(r, n_kv, "metadata_kv_count")) return -1;
  /* a kv takes at least 13 bytes (key length, type, one byte), a tensor info at least 24 */
  if (*n_kv > left(r) / 13)
    return fail(r, "metadata_kv_count", 16, "%llu entries cannot fit in the %llu bytes that follow",
                (unsigned long long)*n_kv, (unsigned long long)left(r));
  if (*n_tensors > left(r) / 24)
    return fail(r, "tensor_count", 8, "%llu tensors cannot fit in the %llu bytes that follow",
                (unsigned long long)*n_tensors, (unsigned long long)left(r));
  return 0;
}

static int parse(rd *r) {
  kn_gguf *g = r->g;
  uint64_t nt = 0, nkv = 0;
  if (rd_header(r, &nt, &nkv)) return -1;
  g->kvs = calloc(nkv ? nkv : 1, sizeof *g->kvs);
  g->tensors = calloc(nt ? nt : 1, sizeof *g->tensors);
  if (!g->kvs || !g->tensors || kn_gguf_index_init(&g->kv_index, nkv, true) || kn_gguf_index_init(&g->tensor_index, nt, false))
    return fail(r, "header", 0, "out of memory for %llu kvs and %llu tensors", (unsigned long long)nkv,
                (unsigned long long)nt);
  for (size_t i = 0; i < nkv; i++, g->n_kv++)
    if (rd_kv(r, i)) return -1;
  if (read_alignment(r)) return -1;
  for (size_t i = 0; i < nt; i++, g->n_tensors++)
    if (rd_tensor(r, i)) return -1;
  return place_tensors(r);
}

static kn_gguf *open_bytes(const void *data, size_t size, const char *name, char *err, size_t errlen) {
  char local[8];
  if (!err) err = local, errlen = sizeof local;
  kn_gguf *g = calloc(1, sizeof *g);
  if (!g || !(g->name = strdup(name ? name : "(memory)"))) {
    free(g);
    snprintf(err, errlen, "%s: out of memory", name ? name : "(memory)");
    return NULL;
  }
  g->base = data, g->size = size;
  rd r = {.g = g, .p = data, .size = size, .err = err, .errlen = errlen};
  if (parse(&r)) {
    kn_gguf_close(g);
    return NULL;
  }
  return g;
}

kn_gguf *kn_gguf_open_mem(const void *data, size_t size, const char *name, char *err, size_t errlen) {
  if (!data && size) {
    if (err) snprintf(err, errlen, "%s: no data", name ? name : "(memory)");
    return NULL;
  }
  return open_bytes(data ? data : "", size, name, err, errlen);
}

kn_gguf *kn_gguf_open(const char *path, char *err, size_t errlen) {
  char local[8];
  if (!err) err = local, errlen = sizeof local;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return snprintf(err, errlen, "%s: %s", path, strerror(errno)), NULL;
  struct stat st;
  if (fstat(fd, &st)) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return snprintf(err, errlen, "%s: not a regular file", path), NULL;
  }
  size_t size = (size_t)st.st_size;
  void *map = NULL;
  if (size && (map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
    snprintf(err, errlen, "%s: mmap of %zu bytes failed: %s", path, size, strerror(errno));
    close(fd);
    return NULL;
  }
  close(fd);
  kn_gguf *g = open_bytes(map ? map : "", size, path, err, errlen);
  if (!g) {
    if (map) munmap(map, size);
    return NULL;
  }
  g->map = map;
  return g;
}

void kn_gguf_close(kn_gguf *g) {
  if (!g) return;
  if (g->map) munmap(g->map, g->size);
  while (g->arena) {
    kn_gguf_chunk *next = g->arena->next;
    free(g->arena);
    g->arena = next;
  }
  free(g->kv_index.slots);
  free(g->tensor_index.slots);
  free(g->kvs);
  free(g->tensors);
  free(g->name);
  free(g);
}
