/* GGUF reader, the answering side: name lookups, typed getters with defaults, array element access, and the
 * geometry of every GGML type id a file may carry (kiln's dtype table plus the formats kiln only displays). */
#include <stdlib.h>
#include <string.h>

#include "gguf_impl.h"

/* ---- value types ---- */

static const struct {
  const char *name;
  int size;
} vtypes[KN_GGUF_TYPE_COUNT] = {
  [KN_GGUF_U8] = {"u8", 1}, [KN_GGUF_I8] = {"i8", 1}, [KN_GGUF_U16] = {"u16", 2}, [KN_GGUF_I16] = {"i16", 2},
  [KN_GGUF_U32] = {"u32", 4}, [KN_GGUF_I32] = {"i32", 4}, [KN_GGUF_F32] = {"f32", 4}, [KN_GGUF_BOOL] = {"bool", 1},
  [KN_GGUF_STRING] = {"string", 0}, [KN_GGUF_ARRAY] = {"array", 0}, [KN_GGUF_U64] = {"u64", 8},
  [KN_GGUF_I64] = {"i64", 8}, [KN_GGUF_F64] = {"f64", 8},
};

const char *kn_gguf_type_name(kn_gguf_type t) { return (unsigned)t < KN_GGUF_TYPE_COUNT ? vtypes[t].name : "?"; }
int kn_gguf_type_size(kn_gguf_type t) { return (unsigned)t < KN_GGUF_TYPE_COUNT ? vtypes[t].size : 0; }

void kn_gguf_decode_scalar(kn_gguf_type t, const uint8_t *p, kn_gguf_value *v) {
  v->type = t;
  switch (t) {
  case KN_GGUF_U8: v->u = p[0]; break;
  case KN_GGUF_I8: v->i = (int8_t)p[0]; break;
  case KN_GGUF_BOOL: v->b = p[0] != 0; break;
  case KN_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); v->u = x; break; }
  case KN_GGUF_I16: { int16_t x; memcpy(&x, p, 2); v->i = x; break; }
  case KN_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); v->u = x; break; }
  case KN_GGUF_I32: { int32_t x; memcpy(&x, p, 4); v->i = x; break; }
  case KN_GGUF_U64: memcpy(&v->u, p, 8); break;
  case KN_GGUF_I64: memcpy(&v->i, p, 8); break;
  case KN_GGUF_F32: { float x; memcpy(&x, p, 4); v->f = x; break; }
  case KN_GGUF_F64: memcpy(&v->f, p, 8); break;
  default: v->u = 0; break;
  }
}

/* ---- GGML type ids ---- */

/* Formats kiln cannot compute with but still sizes, so such files open and `kiln gguf` shows them. */
static const struct {
  int id;
  const char *name;
  int block_elems, block_bytes;
} foreign[] = {
  {16, "iq2_xxs", 256, 66}, {17, "iq2_xs", 256, 74}, {18, "iq3_xxs", 256, 98}, {19, "iq1_s", 256, 50},
  {20, "iq4_nl", 32, 18},   {21, "iq3_s", 256, 110},  {22, "iq2_s", 256, 82},   {23, "iq4_xs", 256, 136},
  {28, "f64", 1, 8},        {29, "iq1_m", 256, 56},   {34, "tq1_0", 256, 54},   {35, "tq2_0", 256, 66},
  {39, "mxfp4", 32, 17},
};

int kn_gguf_ggml_type_info(int type, const char **name, int *block_elems, int *block_bytes) {
  int dt = type >= 0 ? kn_dtype_from_ggml(type) : -1;
  if (dt >= 0) {
    const kn_dtype_info *d = kn_dtype_get((kn_dtype)dt);
    if (name) *name = d->short_name;
    if (block_elems) *block_elems = d->block_elems;
    if (block_bytes) *block_bytes = d->block_bytes;
    return 0;
  }
  for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++)
    if (foreign[i].id == type) {
      if (name) *name = foreign[i].name;
      if (block_elems) *block_elems = foreign[i].block_elems;
      if (block_bytes) *block_bytes = foreign[i].block_bytes;
      return 0;
    }
  return -1;
}

/* ---- name indexes ---- */

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

int kn_gguf_index_init(kn_gguf_index *ix, uint64_t n, bool kv) {
  size_t cap = 16;
  while (cap < 2 * n + 1) cap *= 2; /* n is bounded by the file size, so this stays small */
  ix->slots = calloc(cap, sizeof *ix->slots);
  ix->cap = cap, ix->kv = kv;
  return ix->slots ? 0 : -1;
}

static const char *index_name(const kn_gguf_index *ix, const kn_gguf *g, size_t i) {
  return ix->kv ? g->kvs[i].key : g->tensors[i].name;
}

static size_t *index_slot(const kn_gguf_index *ix, const kn_gguf *g, const char *name) {
  if (!ix->slots) return NULL;
  size_t mask = ix->cap - 1, s = (size_t)hash_str(name) & mask;
  while (ix->slots[s] && strcmp(index_name(ix, g, ix->slots[s] - 1), name)) s = (s + 1) & mask;
  return &ix->slots[s];
}

int kn_gguf_index_insert(kn_gguf_index *ix, const kn_gguf *g, const char *name, size_t i) {
  size_t *slot = index_slot(ix, g, name);
  if (*slot) return 1;
  *slot = i + 1;
  return 0;
}

static long long index_find(const kn_gguf_index *ix, const kn_gguf *g, const char *name) {
  if (!g || !name) return -1;
  size_t *slot = index_slot(ix, g, name);
  return slot && *slot ? (long long)*slot - 1 : -1;
}

/* ---- the file ---- */

uint32_t kn_gguf_version(const kn_gguf *g) { return g ? g->version : 0; }
uint64_t kn_gguf_alignment(const kn_gguf *g) { return g ? g->alignment : 0; }
uint64_t kn_gguf_data_offset(const kn_gguf *g) { return g ? g->data_off : 0; }
uint64_t kn_gguf_file_size(const kn_gguf *g) { return g ? g->size : 0; }

size_t kn_gguf_kv_count(const kn_gguf *g) { return g ? g->n_kv : 0; }
const kn_gguf_kv *kn_gguf_kv_at(const kn_gguf *g, size_t i) { return g && i < g->n_kv ? &g->kvs[i] : NULL; }

const kn_gguf_kv *kn_gguf_find(const kn_gguf *g, const char *key) {
  long long i = index_find(g ? &g->kv_index : NULL, g, key);
  return i >= 0 ? &g->kvs[i] : NULL;
}

const kn_gguf_value *kn_gguf_get(const kn_gguf *g, const char *key) {
  const kn_gguf_kv *kv = kn_gguf_find(g, key);
  return kv ? &kv->value : NULL;
}

size_t kn_gguf_tensor_count(const kn_gguf *g) { return g ? g->n_tensors : 0; }
const kn_gguf_tensor *kn_gguf_tensor_at(const kn_gguf *g, size_t i) {
  return g && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const kn_gguf_tensor *kn_gguf_tensor_find(const kn_gguf *g, const char *name) {
  long long i = index_find(g ? &g->tensor_index : NULL, g, name);
  return i >= 0 ? &g->tensors[i] : NULL;
}

/* ---- values ---- */

int64_t kn_gguf_value_int(const kn_gguf_value *v, int64_t def) {
  if (!v) return def;
  switch (v->type) {
  case KN_GGUF_U8: case KN_GGUF_U16: case KN_GGUF_U32: case KN_GGUF_U64:
    return v->u <= (uint64_t)INT64_MAX ? (int64_t)v->u : def;
  case KN_GGUF_I8: case KN_GGUF_I16: case KN_GGUF_I32: case KN_GGUF_I64: return v->i;
  case KN_GGUF_BOOL: return v->b;
  default: return def;
  }
}

double kn_gguf_value_float(const kn_gguf_value *v, double def) {
  if (!v) return def;
  switch (v->type) {
  case KN_GGUF_F32: case KN_GGUF_F64: return v->f;
  case KN_GGUF_U8: case KN_GGUF_U16: case KN_GGUF_U32: case KN_GGUF_U64: return (double)v->u;
  case KN_GGUF_I8: case KN_GGUF_I16: case KN_GGUF_I32: case KN_GGUF_I64: return (double)v->i;
  default: return def;
  }
}

int64_t kn_gguf_get_int(const kn_gguf *g, const char *key, int64_t def) { return kn_gguf_value_int(kn_gguf_get(g, key), def); }
double kn_gguf_get_float(const kn_gguf *g, const char *key, double def) {
  return kn_gguf_value_float(kn_gguf_get(g, key), def);
}

bool kn_gguf_get_bool(const kn_gguf *g, const char *key, bool def) {
  const kn_gguf_value *v = kn_gguf_get(g, key);
  return v && v->type == KN_GGUF_BOOL ? v->b : def;
}

const char *kn_gguf_get_str(const kn_gguf *g, const char *key, const char *def) {
  const kn_gguf_value *v = kn_gguf_get(g, key);
  return v && v->type == KN_GGUF_STRING ? v->s : def;
}

const kn_gguf_value *kn_gguf_get_arr(const kn_gguf *g, const char *key, int elem) {
  const kn_gguf_value *v = kn_gguf_get(g, key);
  return v && v->type == KN_GGUF_ARRAY && (elem < 0 || (int)v->elem == elem) ? v : NULL;
}

/* ---- arrays ---- */

uint64_t kn_gguf_arr_len(const kn_gguf_value *v) { return v && v->type == KN_GGUF_ARRAY ? v->n : 0; }

/* Element i of a scalar array, decoded; false when v is not one or i is out of range. */
static bool arr_scalar(const kn_gguf_value *v, uint64_t i, kn_gguf_value *out) {
  if (!v || v->type != KN_GGUF_ARRAY || i >= v->n) return false;
  int size = kn_gguf_type_size(v->elem);
  if (!size) return false;
  kn_gguf_decode_scalar(v->elem, (const uint8_t *)v->raw + i * (uint64_t)size, out);
  return true;
}

int64_t kn_gguf_arr_int(const kn_gguf_value *v, uint64_t i, int64_t def) {
  kn_gguf_value e;
  return arr_scalar(v, i, &e) ? kn_gguf_value_int(&e, def) : def;
}

double kn_gguf_arr_float(const kn_gguf_value *v, uint64_t i, double def) {
  kn_gguf_value e;
  return arr_scalar(v, i, &e) ? kn_gguf_value_float(&e, def) : def;
}

const kn_gguf_value *kn_gguf_arr_item(const kn_gguf_value *v, uint64_t i) {
  if (!v || v->type != KN_GGUF_ARRAY || i >= v->n || kn_gguf_type_size(v->elem)) return NULL;
  return &v->items[i];
}

const char *kn_gguf_arr_str(const kn_gguf_value *v, uint64_t i, uint64_t *len) {
  const kn_gguf_value *e = kn_gguf_arr_item(v, i);
  if (!e || e->type != KN_GGUF_STRING) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = e->n;
  return e->s;
}

bool kn_gguf_arr_get(const kn_gguf_value *v, uint64_t i, kn_gguf_value *out) {
  if (arr_scalar(v, i, out)) return true;
  const kn_gguf_value *e = kn_gguf_arr_item(v, i);
  if (e) *out = *e;
  return e != NULL;
}
