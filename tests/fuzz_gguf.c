/* Mutation fuzzing of the GGUF reader under AddressSanitizer and UBSan (the reader's sources are compiled into this
 * program with the sanitizers, not taken from the library). Seeds: files from the writer and, when
 * ../shared/testdata is there, the real files (whole, or their headers). Each mutant (bit flips, special bytes,
 * boundary counts and lengths, truncations, shifted ranges) must either fail with a message or open, and then every
 * accessor must work on it and every tensor's bytes must lie inside the buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/gguf.h"
#include "check.h"

#define ITERATIONS 12000

static uint64_t rng = 0x1234567;
static uint64_t rnd(void) {
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }

static int violations;
#define violation(...) (fail_line(__VA_ARGS__), violations++)

/* ---- seeds ---- */

typedef struct {
  char name[64];
  uint8_t *p;
  size_t n;
  uint64_t header_end;      /* where the data section starts (mutations aim before it) */
  uint64_t marks[64];       /* structural offsets: kv starts, the tensor-info region */
  int nmarks, weight;
} seed;

static seed seeds[16];
static int nseeds;

static void add_seed(const char *name, uint8_t *p, size_t n, int weight) {
  char err[512];
  kn_gguf *g = kn_gguf_open_mem(p, n, name, err, sizeof err);
  if (!g) {
    violation("seed %s does not open: %s", name, err);
    free(p);
    return;
  }
  seed *s = &seeds[nseeds++];
  snprintf(s->name, sizeof s->name, "%s", name);
  s->p = p, s->n = n, s->weight = weight;
  s->header_end = kn_gguf_data_offset(g) < n ? kn_gguf_data_offset(g) : n;
  for (size_t i = 0; i < kn_gguf_kv_count(g) && s->nmarks < 48; i++) s->marks[s->nmarks++] = kn_gguf_kv_at(g, i)->offset;
  uint64_t infos = 0; /* tensor infos sit just before the data section */
  for (size_t i = 0; i < kn_gguf_tensor_count(g); i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(g, i);
    infos += 8 + strlen(t->name) + 4 + 8 * (uint64_t)t->ndim + 4 + 8;
  }
  for (int k = 0; k < 8; k++)
    if (infos) s->marks[s->nmarks++] = s->header_end - infos - kn_gguf_alignment(g) + below(infos + kn_gguf_alignment(g));
  kn_gguf_close(g);
}

static void writer_seed(const char *name, uint32_t align, int ntensors, bool nested) {
  kn_gguf_writer *w = kn_gguf_writer_new(align);
  kn_gguf_set_str(w, "general.architecture", "llama");
  kn_gguf_set_u32(w, "llama.block_count", 4);
  kn_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f);
  kn_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true);
  kn_gguf_set_u64(w, "big", UINT64_MAX);
  kn_gguf_set_i8(w, "i8", -3), kn_gguf_set_i16(w, "i16", -300), kn_gguf_set_u16(w, "u16", 300);
  kn_gguf_set_i64(w, "i64", -5), kn_gguf_set_f64(w, "f64", 0.25), kn_gguf_set_u8(w, "u8", 9);
  const char *toks[] = {"<s>", "</s>", "a", "bc", "", "\xe2\x96\x81x"};
  kn_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 6);
  float scores[6] = {0, -1, -2, -3, -4, -5};
  kn_gguf_set_arr(w, "tokenizer.ggml.scores", KN_GGUF_F32, scores, 6);
  uint8_t flags[3] = {1, 0, 1};
  kn_gguf_set_arr(w, "flags", KN_GGUF_BOOL, flags, 3);
  if (nested) {
    int64_t a[2] = {1, -1};
    kn_gguf_value in[2] = {{.type = KN_GGUF_ARRAY, .elem = KN_GGUF_I64, .n = 2, .raw = a},
                           {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_I64, .n = 0}};
    kn_gguf_value mid = {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_ARRAY, .n = 2, .items = in};
    kn_gguf_value out = {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_ARRAY, .n = 1, .items = &mid};
    kn_gguf_set_value(w, "nested", &out);
  }
  static uint8_t data[4096];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)rnd();
  const int types[] = {0, 1, 2, 8, 12, 14, 30, 20};
  for (int i = 0; i < ntensors; i++) {
    char tn[32];
    snprintf(tn, sizeof tn, "blk.%d.w", i);
    int ty = types[i % 8];
    uint64_t ne[2] = {ty == 12 || ty == 14 ? 256 : 32, 1 + (uint64_t)i % 3};
    kn_gguf_add_tensor(w, tn, ty, 2, ne, data);
  }
  void *mem;
  size_t size;
  char err[256];
  if (kn_gguf_write_mem(w, &mem, &size, NULL, NULL, err, sizeof err)) violation("writer seed %s: %s", name, err);
  else add_seed(name, mem, size, 3);
  kn_gguf_writer_free(w);
}

static void file_seed(const char *td, const char *rel, bool header_only, int weight) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/%s", td, rel);
  kn_gguf *g = kn_gguf_open(path, err, sizeof err);
  if (!g) return;
  size_t n = header_only ? (size_t)kn_gguf_data_offset(g) : (size_t)kn_gguf_file_size(g);
  kn_gguf_close(g);
  FILE *f = fopen(path, "rb");
  uint8_t *p = f ? malloc(n) : NULL;
  if (p && fread(p, 1, n, f) == n) {
    /* a header alone keeps its tensors only if none has bytes: cut the tensor count to 0 so it still opens */
    if (header_only) memset(p + 8, 0, 8);
    add_seed(rel, p, n, weight);
  } else {
    free(p);
  }
  if (f) fclose(f);
}

/* ---- mutations ---- */

static uint64_t target(const seed *s, size_t n) {
  uint64_t r = below(4), lim = s->header_end < n ? s->header_end : n;
  if (!n) return 0;
  if (r == 0) return below(n < 64 ? n : 64);
  if (r == 1 && s->nmarks) {
    uint64_t m = s->marks[below((uint64_t)s->nmarks)] + below(24);
    return m < n ? m : below(n);
  }
  return below(lim ? lim : n);
}

static void put_le(uint8_t *p, size_t n, uint64_t at, uint64_t v, int bytes) {
  for (int k = 0; k < bytes && at + (uint64_t)k < n; k++) p[at + k] = (uint8_t)(v >> (8 * k));
}

/* One edit of (p, *n) in place; the buffer has room for growth of up to 64 bytes. */
static void mutate(const seed *s, uint8_t *p, size_t *n) {
  uint64_t at = target(s, *n), r = below(40);
  /* mostly edits in place; truncations and shifts break everything after them, so they are rarer */
  int op = r < 12 ? 0 : r < 20 ? 1 : r < 26 ? 2 : r < 32 ? 3 : r < 34 ? 4 : r < 37 ? 5 : 6;
  switch (op) {
  case 0: if (*n) p[at] ^= (uint8_t)(1u << below(8)); break;
  case 1: { static const uint8_t sp[] = {0, 0xff, 0x7f, 0x80, 1, 9, 13}; if (*n) p[at] = sp[below(sizeof sp)]; break; }
  case 2: {
    uint64_t left = *n - at, vals[] = {0, 1, 1ull << 31, 1ull << 32, 1ull << 63, UINT64_MAX, *n, left, left - 8,
                                       left + 1, below(64), 1ull << 40, INT64_MAX};
    put_le(p, *n, at, vals[below(sizeof vals / sizeof vals[0])], 8);
    break;
  }
  case 3: {
    uint64_t vals[] = {0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 14, 30, 39, 99, 0xffffffffu, 1u << 31, 0x03000000u};
    put_le(p, *n, at, vals[below(sizeof vals / sizeof vals[0])], 4);
    break;
  }
  case 4: *n = at; break;
  case 5: { /* delete a short range */
    uint64_t len = 1 + below(16);
    if (at + len <= *n) memmove(p + at, p + at + len, *n - at - len), *n -= len;
    break;
  }
  default: { /* duplicate a short range (shifts everything after it) */
    uint64_t len = 1 + below(16);
    if (at + len <= *n) memmove(p + at + len, p + at, *n - at), *n += len;
    break;
  }
  }
}

/* ---- using what opened ---- */

static uint64_t touch_value(const kn_gguf_value *v, int depth) {
  uint64_t h = (uint64_t)v->type;
  if (depth > KN_GGUF_MAX_DEPTH) violation("value nested %d deep was accepted", depth);
  if (v->type == KN_GGUF_STRING) {
    if (strlen(v->s) > v->n || v->s[v->n]) violation("string of %llu bytes is not terminated", (unsigned long long)v->n);
    return h + v->n;
  }
  if (v->type != KN_GGUF_ARRAY) return h + (uint64_t)kn_gguf_value_int(v, 0) + (uint64_t)kn_gguf_value_float(v, 0);
  uint64_t n = kn_gguf_arr_len(v);
  for (uint64_t i = 0; i < n; i = i < 32 ? i + 1 : i * 2 + 1) {
    kn_gguf_value e;
    if (!kn_gguf_arr_get(v, i, &e)) violation("array element %llu of %llu missing", (unsigned long long)i,
                                              (unsigned long long)n);
    else h += touch_value(&e, depth + 1);
    h += (uint64_t)kn_gguf_arr_int(v, i, 0) + (uint64_t)kn_gguf_arr_float(v, i, 0);
    uint64_t len;
    const char *s = kn_gguf_arr_str(v, i, &len);
    if (s) h += len + (uint8_t)s[len];
  }
  kn_gguf_value e;
  if (n) h += kn_gguf_arr_get(v, n - 1, &e) ? touch_value(&e, depth + 1) : 0;
  if (kn_gguf_arr_get(v, n, &e) || kn_gguf_arr_item(v, n)) violation("array element past the end was handed out");
  return h;
}

static uint64_t exercise(const kn_gguf *g, const uint8_t *buf, size_t n) {
  uint64_t h = 0;
  for (size_t i = 0; i < kn_gguf_kv_count(g); i++) {
    const kn_gguf_kv *kv = kn_gguf_kv_at(g, i);
    if (kn_gguf_find(g, kv->key) != kv) violation("find(%s) does not return its kv", kv->key);
    h += touch_value(&kv->value, 0);
    h += (uint64_t)kn_gguf_get_int(g, kv->key, 0) + (uint64_t)kn_gguf_get_float(g, kv->key, 0) +
         kn_gguf_get_bool(g, kv->key, false) + (kn_gguf_get_str(g, kv->key, NULL) != NULL) +
         (kn_gguf_get_arr(g, kv->key, -1) != NULL);
  }
  for (size_t i = 0; i < kn_gguf_tensor_count(g); i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(g, i);
    if (kn_gguf_tensor_find(g, t->name) != t) violation("tensor_find(%s) does not return its tensor", t->name);
    const uint8_t *d = t->data;
    if (t->nbytes && (d < buf || d + t->nbytes > buf + n)) violation("tensor %s lies outside the buffer", t->name);
    if (t->nbytes) h += d[0] + d[t->nbytes - 1];
    if (t->dtype >= 0 && kn_dtype_nbytes((kn_dtype)t->dtype, t->nelems) != (int64_t)t->nbytes)
      violation("tensor %s: %llu bytes for %lld elements of %s", t->name, (unsigned long long)t->nbytes,
                (long long)t->nelems, t->type_name);
    if (t->ndim < 0 || t->ndim > KN_GGUF_MAX_DIMS || t->offset % kn_gguf_alignment(g))
      violation("tensor %s: ndim %d offset %llu", t->name, t->ndim, (unsigned long long)t->offset);
  }
  return h;
}

int main(void) {
  const char *td = getenv("KILN_TESTDATA");
  writer_seed("writer-a.gguf", 0, 8, true);
  writer_seed("writer-b.gguf", 64, 3, false);
  writer_seed("writer-c.gguf", 32, 0, true);
  if (td) {
    file_seed(td, "models/stories260K-F32.gguf", false, 2);
    file_seed(td, "models/tiny-llama-Q4_K_M.gguf", true, 1);
    file_seed(td, "tokenizer/ggml-vocab-llama-spm.gguf", false, 1);
  }
  int total_weight = 0;
  for (int i = 0; i < nseeds; i++) total_weight += seeds[i].weight;
  int opened = 0, failed_open = 0, iterations = 0;
  uint64_t sink = 0;
  clock_t t0 = clock();
  for (; iterations < ITERATIONS && total_weight; iterations++) {
    int pick = (int)below((uint64_t)total_weight), k = 0;
    while (pick >= seeds[k].weight) pick -= seeds[k++].weight;
    const seed *s = &seeds[k];
    uint8_t *buf = malloc(s->n + 64 * 4);
    size_t n = s->n;
    memcpy(buf, s->p, n);
    int edits = below(4) ? 1 : 2 + (int)below(3);
    for (int e = 0; e < edits; e++) mutate(s, buf, &n);
    uint8_t *exact = malloc(n ? n : 1); /* exactly n bytes, so any read past the end is caught */
    memcpy(exact, buf, n);
    free(buf);
    char err[512] = "";
    kn_gguf *g = kn_gguf_open_mem(exact, n, s->name, err, sizeof err);
    if (g) {
      opened++;
      sink += exercise(g, exact, n);
      kn_gguf_close(g);
    } else {
      failed_open++;
      if (strncmp(err, s->name, strlen(s->name)) || !strstr(err, "offset"))
        violation("mutant of %s failed without a proper message: \"%s\"", s->name, err);
    }
    free(exact);
  }
  printf("%d mutants of %d seeds in %.1f s: %d opened (all accessors used), %d rejected with a message [%llu]\n",
         iterations, nseeds, (double)(clock() - t0) / CLOCKS_PER_SEC, opened, failed_open, (unsigned long long)(sink & 1));
  if (iterations < 10000) violation("only %d mutants", iterations);
  printf("%d passed, %d failed\n", iterations - violations, violations);
  for (int i = 0; i < nseeds; i++) free(seeds[i].p);
  return violations ? 1 : 0;
}
