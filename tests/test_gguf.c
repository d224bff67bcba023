/* GGUF reader and writer. `test_gguf` (no arguments): writer round trips with every value type, nested arrays and
 * random tensors, copying a real file's metadata when testdata is there, and hand-built hostile files that must
 * each fail with a message naming the field. `test_gguf models`: every model in ../shared/testdata against the
 * facts its README states (skips with 77 when the directory is absent). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/gguf.h"
#include "ref_quant.h"
#include "check.h"



static const char *testdata(void) {
  const char *td = getenv("KILN_TESTDATA");
  return td ? td : "../shared/testdata";
}

/* ---- deep comparison of values ---- */

static bool value_eq(const kn_gguf_value *a, const kn_gguf_value *b) {
  if (a->type != b->type) return false;
  switch (a->type) {
  case KN_GGUF_U8: case KN_GGUF_U16: case KN_GGUF_U32: case KN_GGUF_U64: return a->u == b->u;
  case KN_GGUF_I8: case KN_GGUF_I16: case KN_GGUF_I32: case KN_GGUF_I64: return a->i == b->i;
  case KN_GGUF_F32: return (float)a->f == (float)b->f;
  case KN_GGUF_F64: return !memcmp(&a->f, &b->f, 8);
  case KN_GGUF_BOOL: return a->b == b->b;
  case KN_GGUF_STRING: return a->n == b->n && !memcmp(a->s, b->s, a->n) && !b->s[b->n];
  case KN_GGUF_ARRAY:
    if (a->elem != b->elem || a->n != b->n) return false;
    for (uint64_t i = 0; i < a->n; i++) {
      kn_gguf_value x, y;
      if (!kn_gguf_arr_get(a, i, &x) || !kn_gguf_arr_get(b, i, &y) || !value_eq(&x, &y)) return false;
    }
    return true;
  default: return false;
  }
}

/* ---- writer round trip ---- */

typedef struct {
  const char *name;
  int type, ndim;
  uint64_t ne[4];
  kn_dtype dt;
  uint8_t *data;
  uint64_t nbytes;
  bool streamed;
} tcase;

static int fill(void *user, size_t index, const char *name, void *dst, uint64_t nbytes, char *err, size_t errlen) {
  tcase *ts = user;
  if (strcmp(ts[index].name, name) || nbytes != ts[index].nbytes)
    return snprintf(err, errlen, "fill called for %s (%llu bytes), expected %s", name, (unsigned long long)nbytes,
                    ts[index].name), -1;
  memcpy(dst, ts[index].data, nbytes);
  return 0;
}

static void set_all_types(kn_gguf_writer *w) {
  uint64_t s = 5;
  check(!kn_gguf_set_u8(w, "t.u8", 200) && !kn_gguf_set_i8(w, "t.i8", -100) && !kn_gguf_set_u16(w, "t.u16", 60000) &&
        !kn_gguf_set_i16(w, "t.i16", -30000) && !kn_gguf_set_u32(w, "t.u32", 4000000000u) &&
        !kn_gguf_set_i32(w, "t.i32", -2000000000) && !kn_gguf_set_u64(w, "t.u64", (1ull << 63) + 5) &&
        !kn_gguf_set_i64(w, "t.i64", -(1ll << 62)) && !kn_gguf_set_f32(w, "t.f32", 1.5f) &&
        !kn_gguf_set_f64(w, "t.f64", -2.25e300) && !kn_gguf_set_bool(w, "t.bool", true) &&
        !kn_gguf_set_str(w, "t.str", "h\xc3\xa9llo\n\"q\"") && !kn_gguf_set_str(w, "t.empty", ""),
        "setting scalars: %s", kn_gguf_writer_error(w));
  kn_gguf_value nul = {.type = KN_GGUF_STRING, .s = "ab\0cd", .n = 5};
  check(!kn_gguf_set_value(w, "t.nul", &nul), "string with a NUL: %s", kn_gguf_writer_error(w));
  /* one array of every fixed-size type, random contents */
  for (int t = 0; t < KN_GGUF_TYPE_COUNT; t++) {
    int size = kn_gguf_type_size((kn_gguf_type)t);
    if (!size) continue;
    uint8_t raw[8 * 37];
    for (int i = 0; i < 37 * size; i++) raw[i] = (uint8_t)kn_ref_rand(&s);
    if (t == KN_GGUF_BOOL)
      for (int i = 0; i < 37; i++) raw[i] &= 1;
    if (t == KN_GGUF_F32 || t == KN_GGUF_F64) /* finite values so that equality is meaningful */
      for (int i = 0; i < 37; i++) {
        double v = kn_ref_normal(&s) * 1e3;
        float f = (float)v;
        if (t == KN_GGUF_F32) memcpy(raw + 4 * i, &f, 4);
        else memcpy(raw + 8 * i, &v, 8);
      }
    char key[32];
    snprintf(key, sizeof key, "arr.%s", kn_gguf_type_name((kn_gguf_type)t));
    check(!kn_gguf_set_arr(w, key, (kn_gguf_type)t, raw, 37), "array of %s: %s", key, kn_gguf_writer_error(w));
  }
  const char *strs[] = {"", "a", "tokens \xe2\x96\x81with", "<|im_start|>", ""};
  check(!kn_gguf_set_arr_str(w, "arr.str", strs, 5) && !kn_gguf_set_arr(w, "arr.empty", KN_GGUF_I32, NULL, 0),
        "string / empty arrays: %s", kn_gguf_writer_error(w));
  /* nested: [[1, 2, 3], [], [4]] of i32, and [["x"], ["y", "z"]] */
  int32_t a1[] = {1, 2, 3}, a3[] = {4};
  kn_gguf_value inner[3] = {{.type = KN_GGUF_ARRAY, .elem = KN_GGUF_I32, .n = 3, .raw = a1},
                            {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_I32, .n = 0},
                            {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_I32, .n = 1, .raw = a3}};
  kn_gguf_value outer = {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_ARRAY, .n = 3, .items = inner};
  kn_gguf_value sx[] = {{.type = KN_GGUF_STRING, .s = "x", .n = 1}}, syz[] = {{.type = KN_GGUF_STRING, .s = "y", .n = 1},
                                                                            {.type = KN_GGUF_STRING, .s = "z", .n = 1}};
  kn_gguf_value sin[2] = {{.type = KN_GGUF_ARRAY, .elem = KN_GGUF_STRING, .n = 1, .items = sx},
                          {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_STRING, .n = 2, .items = syz}};
  kn_gguf_value sout = {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_ARRAY, .n = 2, .items = sin};
  check(!kn_gguf_set_value(w, "arr.nested", &outer) && !kn_gguf_set_value(w, "arr.nested_str", &sout),
        "nested arrays: %s", kn_gguf_writer_error(w));
  /* replacing keeps the position and takes the new type; removing drops it */
  check(!kn_gguf_set_u32(w, "t.replace", 1) && !kn_gguf_set_str(w, "t.replace", "now a string") &&
        !kn_gguf_set_u8(w, "t.gone", 1) && !kn_gguf_remove(w, "t.gone") && kn_gguf_remove(w, "t.gone") == -1,
        "replace / remove: %s", kn_gguf_writer_error(w));
}

static void check_all_types(const kn_gguf *g) {
  check(kn_gguf_get_int(g, "t.u8", 0) == 200 && kn_gguf_get_int(g, "t.i8", 0) == -100 &&
        kn_gguf_get_int(g, "t.u16", 0) == 60000 && kn_gguf_get_int(g, "t.i16", 0) == -30000 &&
        kn_gguf_get_int(g, "t.u32", 0) == 4000000000ll && kn_gguf_get_int(g, "t.i32", 0) == -2000000000 &&
        kn_gguf_get_int(g, "t.i64", 0) == -(1ll << 62) && kn_gguf_get_float(g, "t.f32", 0) == 1.5 &&
        kn_gguf_get_float(g, "t.f64", 0) == -2.25e300 && kn_gguf_get_bool(g, "t.bool", false),
        "scalars read back wrong");
  const kn_gguf_value *u64 = kn_gguf_get(g, "t.u64");
  check(u64 && u64->type == KN_GGUF_U64 && u64->u == (1ull << 63) + 5 && kn_gguf_get_int(g, "t.u64", -7) == -7,
        "u64 above INT64_MAX: read back wrong or handed out as an int");
  check(!strcmp(kn_gguf_get_str(g, "t.str", ""), "h\xc3\xa9llo\n\"q\"") && !strcmp(kn_gguf_get_str(g, "t.empty", "x"), ""),
        "strings read back wrong");
  const kn_gguf_value *nul = kn_gguf_get(g, "t.nul");
  check(nul && nul->n == 5 && !memcmp(nul->s, "ab\0cd", 6), "string with an embedded NUL read back wrong");
  check(kn_gguf_get_int(g, "t.str", -3) == -3 && kn_gguf_get_str(g, "t.u8", NULL) == NULL &&
        kn_gguf_get_float(g, "missing", 2.5) == 2.5 && !kn_gguf_get_bool(g, "t.u8", false) &&
        kn_gguf_get_float(g, "t.i32", 0) == -2e9, "getters with the wrong type or a missing key");
  const kn_gguf_value *strs = kn_gguf_get_arr(g, "arr.str", KN_GGUF_STRING);
  uint64_t len;
  const char *s2 = kn_gguf_arr_str(strs, 2, &len);
  check(kn_gguf_arr_len(strs) == 5 && s2 && !strcmp(s2, "tokens \xe2\x96\x81with") && len == strlen(s2) &&
        !kn_gguf_arr_str(strs, 5, &len) && !kn_gguf_get_arr(g, "arr.str", KN_GGUF_I32),
        "string array access");
  const kn_gguf_value *nest = kn_gguf_get_arr(g, "arr.nested", KN_GGUF_ARRAY);
  const kn_gguf_value *n0 = kn_gguf_arr_item(nest, 0), *n2 = kn_gguf_arr_item(nest, 2);
  check(kn_gguf_arr_len(nest) == 3 && kn_gguf_arr_int(n0, 2, 0) == 3 && kn_gguf_arr_len(kn_gguf_arr_item(nest, 1)) == 0 &&
        kn_gguf_arr_int(n2, 0, 0) == 4 && kn_gguf_arr_int(n2, 1, -1) == -1,
        "nested array access");
  const kn_gguf_value *ns = kn_gguf_arr_item(kn_gguf_get(g, "arr.nested_str"), 1);
  check(ns && !strcmp(kn_gguf_arr_str(ns, 1, NULL), "z"), "nested string array access");
  const kn_gguf_value *f = kn_gguf_get_arr(g, "arr.f32", KN_GGUF_F32), *b = kn_gguf_get_arr(g, "arr.bool", -1);
  check(f && isfinite(kn_gguf_arr_float(f, 36, NAN)) && kn_gguf_arr_float(f, 37, -1) == -1 && b &&
        kn_gguf_arr_int(b, 0, 9) <= 1, "scalar array access");
  const kn_gguf_kv *rep = kn_gguf_find(g, "t.replace");
  check(rep && rep->value.type == KN_GGUF_STRING && !kn_gguf_find(g, "t.gone"), "replaced / removed keys");
}

static void make_tensors(tcase *ts, int n, uint64_t *s) {
  const kn_dtype types[] = {KN_F32, KN_F16, KN_BF16, KN_Q4_0, KN_Q8_0, KN_Q4_K, KN_Q6_K, KN_Q5_K};
  for (int i = 0; i < n; i++) {
    tcase *t = &ts[i];
    char *name = malloc(32);
    snprintf(name, 32, "blk.%d.weight", i);
    t->name = name;
    t->dt = types[i % 8];
    t->type = kn_dtype_get(t->dt)->ggml_type;
    t->ndim = 1 + (int)(kn_ref_rand(s) % 4);
    int be = kn_dtype_get(t->dt)->block_elems;
    t->ne[0] = (uint64_t)be * (1 + kn_ref_rand(s) % 3);
    for (int d = 1; d < 4; d++) t->ne[d] = d < t->ndim ? 1 + kn_ref_rand(s) % 3 : 1;
    if (i == 5) t->ne[t->ndim > 1 ? 1 : 0] = 0; /* an empty tensor */
    int64_t ne = (int64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    t->nbytes = (uint64_t)kn_dtype_nbytes(t->dt, ne);
    t->data = malloc(t->nbytes + 1);
    kn_ref_fill_random(t->dt, t->data, ne, s);
    t->streamed = i % 3 == 1;
  }
}

static void check_tensors(const kn_gguf *g, const tcase *ts, int n, uint64_t align) {
  check(kn_gguf_tensor_count(g) == (size_t)n, "%zu tensors read back, wrote %d", kn_gguf_tensor_count(g), n);
  for (int i = 0; i < n; i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_find(g, ts[i].name);
    if (!check(t && t == kn_gguf_tensor_at(g, (size_t)i), "tensor %s missing or out of order", ts[i].name)) continue;
    bool same = t->ndim == ts[i].ndim && t->type == ts[i].type && t->dtype == (int)ts[i].dt && t->nbytes == ts[i].nbytes;
    for (int d = 0; d < 4; d++) same = same && t->ne[d] == ts[i].ne[d];
    check(same && !memcmp(t->data, ts[i].data, ts[i].nbytes), "tensor %s read back wrong", ts[i].name);
    check(t->offset % align == 0 && (kn_gguf_data_offset(g) + t->offset) % align == 0, "tensor %s not aligned to %llu",
          ts[i].name, (unsigned long long)align);
  }
}

static void test_round_trip(uint32_t align) {
  kn_gguf_writer *w = kn_gguf_writer_new(align);
  if (!check(w != NULL, "writer_new(%u)", align)) return;
  set_all_types(w);
  uint64_t s = 77 + align;
  tcase ts[12];
  make_tensors(ts, 12, &s);
  for (int i = 0; i < 12; i++)
    check(!kn_gguf_add_tensor(w, ts[i].name, ts[i].type, ts[i].ndim, ts[i].ne, ts[i].streamed ? NULL : ts[i].data),
          "add_tensor %s: %s", ts[i].name, kn_gguf_writer_error(w));
  void *mem = NULL;
  size_t size = 0;
  char err[512];
  if (check(!kn_gguf_write_mem(w, &mem, &size, fill, ts, err, sizeof err), "write_mem: %s", err)) {
    kn_gguf *g = kn_gguf_open_mem(mem, size, "roundtrip", err, sizeof err);
    if (check(g != NULL, "reopen: %s", err)) {
      uint64_t a = align ? align : 32;
      check(kn_gguf_version(g) == 3 && kn_gguf_alignment(g) == a && size % a == 0, "version %u alignment %llu size %zu",
            kn_gguf_version(g), (unsigned long long)kn_gguf_alignment(g), size);
      check_all_types(g);
      check_tensors(g, ts, 12, a);
      kn_gguf_close(g);
    }
  }
  /* to a file: the same bytes */
  char path[1024];
  const char *dir = getenv("KILN_CACHE_DIR");
  snprintf(path, sizeof path, "%s/test_gguf_%u_%d.gguf", dir && !access(dir, W_OK) ? dir : "/tmp", align, (int)getpid());
  if (check(!kn_gguf_write_file(w, path, fill, ts, err, sizeof err), "write_file: %s", err)) {
    kn_gguf *g = kn_gguf_open(path, err, sizeof err);
    FILE *f = fopen(path, "rb");
    void *back = malloc(size + 1);
    size_t got = f ? fread(back, 1, size + 1, f) : 0;
    check(g && got == size && !memcmp(back, mem, size), "the file differs from the in-memory write (%s)", g ? "" : err);
    if (f) fclose(f);
    free(back);
    kn_gguf_close(g);
    unlink(path);
  }
  free(mem);
  kn_gguf_writer_free(w);
  for (int i = 0; i < 12; i++) free((void *)ts[i].name), free(ts[i].data);
}

static void test_writer_errors(void) {
  kn_gguf_writer *w = kn_gguf_writer_new(0);
  uint64_t ne[2] = {32, 2}, bad[1] = {33};
  uint8_t buf[64 * 34] = {0};
  check(kn_gguf_writer_new(48) == NULL, "alignment 48 accepted");
  check(!kn_gguf_add_tensor(w, "a", 8, 2, ne, buf), "add a: %s", kn_gguf_writer_error(w));
  check(kn_gguf_add_tensor(w, "a", 8, 2, ne, buf) == -1 && strstr(kn_gguf_writer_error(w), "already"),
        "duplicate tensor: %s", kn_gguf_writer_error(w));
  check(kn_gguf_add_tensor(w, "b", 8, 1, bad, buf) == -1 && strstr(kn_gguf_writer_error(w), "multiple"),
        "33 elements of q8_0: %s", kn_gguf_writer_error(w));
  check(kn_gguf_add_tensor(w, "c", 99, 1, ne, buf) == -1 && strstr(kn_gguf_writer_error(w), "unknown"),
        "type 99: %s", kn_gguf_writer_error(w));
  check(kn_gguf_add_tensor(w, "d", 0, 5, ne, buf) == -1, "5 dimensions accepted");
  check(kn_gguf_set_u32(w, "general.alignment", 3) == -1 && kn_gguf_set_u64(w, "general.alignment", 64) == -1,
        "a bad general.alignment was accepted");
  kn_gguf_value deep[10];
  for (int i = 0; i < 10; i++)
    deep[i] = (kn_gguf_value){.type = KN_GGUF_ARRAY, .elem = i < 9 ? KN_GGUF_ARRAY : KN_GGUF_I32, .n = i < 9 ? 1 : 0,
                              .items = i < 9 ? &deep[i + 1] : NULL};
  check(kn_gguf_set_value(w, "deep", &deep[0]) == -1 && strstr(kn_gguf_writer_error(w), "nested"),
        "arrays nested 10 deep: %s", kn_gguf_writer_error(w));
  kn_gguf_value mixed_items[2] = {{.type = KN_GGUF_STRING, .s = "a", .n = 1}, {.type = KN_GGUF_U8, .u = 1}};
  kn_gguf_value mixed = {.type = KN_GGUF_ARRAY, .elem = KN_GGUF_STRING, .n = 2, .items = mixed_items};
  check(kn_gguf_set_value(w, "mixed", &mixed) == -1, "an array of mixed types was accepted");
  check(!kn_gguf_add_tensor(w, "streamed", 0, 2, ne, NULL), "add streamed: %s", kn_gguf_writer_error(w));
  void *mem;
  size_t size;
  char err[256];
  check(kn_gguf_write_mem(w, &mem, &size, NULL, NULL, err, sizeof err) == -1 && strstr(err, "streamed"),
        "a tensor without data or fill callback: %s", err);
  check(kn_gguf_write_file(w, "/nonexistent-dir/x.gguf", NULL, NULL, err, sizeof err) == -1 &&
        strstr(err, "/nonexistent-dir/x.gguf"), "write to a bad path: %s", err);
  kn_gguf_writer_free(w);
}

/* A real file's metadata and tensors through the writer: every value and byte must come back. */
static void test_copy_real(void) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/models/tiny-qwen3-Q4_K_M.gguf", testdata());
  kn_gguf *src = kn_gguf_open(path, err, sizeof err);
  if (!src) return (void)printf("skip: copying a real file (%s)\n", err);
  kn_gguf_writer *w = kn_gguf_writer_new(0);
  for (size_t i = 0; i < kn_gguf_kv_count(src); i++) {
    const kn_gguf_kv *kv = kn_gguf_kv_at(src, i);
    check(!kn_gguf_set_value(w, kv->key, &kv->value), "copy %s: %s", kv->key, kn_gguf_writer_error(w));
  }
  for (size_t i = 0; i < kn_gguf_tensor_count(src); i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(src, i);
    check(!kn_gguf_add_tensor(w, t->name, t->type, t->ndim, t->ne, t->data), "copy %s: %s", t->name,
          kn_gguf_writer_error(w));
  }
  void *mem;
  size_t size;
  if (check(!kn_gguf_write_mem(w, &mem, &size, NULL, NULL, err, sizeof err), "write copy: %s", err)) {
    kn_gguf *g = kn_gguf_open_mem(mem, size, "copy", err, sizeof err);
    if (check(g != NULL, "reopen copy: %s", err)) {
      int bad = 0;
      for (size_t i = 0; i < kn_gguf_kv_count(src); i++) {
        const kn_gguf_kv *a = kn_gguf_kv_at(src, i), *b = kn_gguf_kv_at(g, i);
        bad += !b || strcmp(a->key, b->key) || !value_eq(&a->value, &b->value);
      }
      for (size_t i = 0; i < kn_gguf_tensor_count(src); i++) {
        const kn_gguf_tensor *a = kn_gguf_tensor_at(src, i), *b = kn_gguf_tensor_at(g, i);
        bad += !b || strcmp(a->name, b->name) || a->nbytes != b->nbytes || memcmp(a->data, b->data, a->nbytes);
      }
      check(!bad && kn_gguf_kv_count(g) == kn_gguf_kv_count(src) && size == kn_gguf_file_size(src),
            "copy of %s: %d differences, %zu bytes vs %llu", path, bad, size, (unsigned long long)kn_gguf_file_size(src));
      kn_gguf_close(g);
    }
    free(mem);
  }
  kn_gguf_writer_free(w);
  kn_gguf_close(src);
}

/* ---- hostile files (test_gguf_hostile.c) ---- */
void kn_test_hostile(int *passed, int *failed);

/* ---- real models ---- */

typedef struct {
  const char *file, *arch;
  int tensors, n_embd, blocks;
  int64_t vocab;
  struct { const char *name, *type; } types[4];
} model_facts;

static const model_facts models[] = {
  {"models/tiny-llama-F16.gguf", "llama", 39, 256, 4, 32000,
   {{"token_embd.weight", "f16"}, {"output.weight", "f16"}, {"output_norm.weight", "f32"}, {"blk.0.attn_q.weight", "f16"}}},
  {"models/tiny-llama-Q8_0.gguf", "llama", 39, 256, 4, 32000,
   /* the testdata README says output.weight is Q6_K here; the file (and llama-quantize's rule) says Q8_0 */
   {{"token_embd.weight", "q8_0"}, {"output.weight", "q8_0"}, {"blk.3.ffn_down.weight", "q8_0"}}},
  {"models/tiny-llama-Q4_0.gguf", "llama", 39, 256, 4, 32000,
   {{"output.weight", "q6_k"}, {"blk.0.attn_q.weight", "q4_0"}, {"blk.1.ffn_norm.weight", "f32"}}},
  {"models/tiny-llama-Q4_K_M.gguf", "llama", 39, 256, 4, 32000,
   {{"output.weight", "q6_k"}, {"blk.0.attn_q.weight", "q4_k"}, {"blk.0.ffn_gate.weight", "q4_k"}}},
  {"models/tiny-qwen2-Q4_K_M.gguf", "qwen2", 50, 256, 4, 151936,
   {{"token_embd.weight", "q6_k"}, {"blk.0.attn_q.bias", "f32"}, {"blk.0.attn_k.weight", "q4_k"}}},
  {"models/tiny-qwen3-Q4_K_M.gguf", "qwen3", 46, 256, 4, 151936,
   {{"token_embd.weight", "q6_k"}, {"blk.0.attn_q_norm.weight", "f32"}, {"blk.0.attn_k_norm.weight", "f32"}}},
  {"models/stories260K-F32.gguf", "llama", 48, 64, 5, 512,
   {{"token_embd.weight", "f32"}, {"output.weight", "f32"}, {"blk.4.ffn_down.weight", "f32"}}},
  {"tokenizer/ggml-vocab-llama-spm.gguf", "llama", 0, -1, -1, 32000, {{0}}},
};

/* What holds for every valid file: lookups agree with iteration, tensors lie inside the file, sizes match types. */
static void check_consistent(const kn_gguf *g, const char *name) {
  int bad = 0;
  for (size_t i = 0; i < kn_gguf_kv_count(g); i++) bad += kn_gguf_find(g, kn_gguf_kv_at(g, i)->key) != kn_gguf_kv_at(g, i);
  uint64_t end = kn_gguf_data_offset(g), size = kn_gguf_file_size(g);
  for (size_t i = 0; i < kn_gguf_tensor_count(g); i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(g, i);
    bad += kn_gguf_tensor_find(g, t->name) != t;
    bad += t->offset % kn_gguf_alignment(g) != 0 || end + t->offset + t->nbytes > size;
    bad += t->dtype < 0 || kn_dtype_nbytes((kn_dtype)t->dtype, t->nelems) != (int64_t)t->nbytes;
  }
  check(!bad, "%s: %d inconsistencies between lookups, offsets and sizes", name, bad);
  check(!kn_gguf_find(g, "no.such.key") && !kn_gguf_tensor_find(g, "no.such.tensor") && !kn_gguf_kv_at(g, 1u << 30) &&
        !kn_gguf_tensor_at(g, 1u << 30), "%s: lookups of missing names", name);
}

static void check_model(const model_facts *m, const char *path) {
  char err[512];
  kn_gguf *g = kn_gguf_open(path, err, sizeof err);
  if (!check(g != NULL, "%s", err)) return;
  const char *arch = kn_gguf_get_str(g, "general.architecture", "");
  check(!strcmp(arch, m->arch), "%s: architecture %s, expected %s", m->file, arch, m->arch);
  check(kn_gguf_tensor_count(g) == (size_t)m->tensors, "%s: %zu tensors, expected %d", m->file, kn_gguf_tensor_count(g),
        m->tensors);
  char key[128];
  if (m->n_embd > 0) {
    snprintf(key, sizeof key, "%s.embedding_length", m->arch);
    check(kn_gguf_get_int(g, key, -1) == m->n_embd, "%s: %s = %lld", m->file, key, (long long)kn_gguf_get_int(g, key, -1));
    snprintf(key, sizeof key, "%s.block_count", m->arch);
    check(kn_gguf_get_int(g, key, -1) == m->blocks, "%s: %s = %lld", m->file, key, (long long)kn_gguf_get_int(g, key, -1));
  }
  const kn_gguf_value *tokens = kn_gguf_get_arr(g, "tokenizer.ggml.tokens", KN_GGUF_STRING);
  check((int64_t)kn_gguf_arr_len(tokens) == m->vocab, "%s: %llu tokens, expected %lld", m->file,
        (unsigned long long)kn_gguf_arr_len(tokens), (long long)m->vocab);
  const kn_gguf_tensor *emb = kn_gguf_tensor_find(g, "token_embd.weight");
  if (m->tensors)
    check(emb && emb->ndim == 2 && (int64_t)emb->ne[1] == m->vocab && (int64_t)emb->ne[0] == m->n_embd,
          "%s: token_embd.weight shape", m->file);
  for (int k = 0; k < 4 && m->types[k].name; k++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_find(g, m->types[k].name);
    check(t && !strcmp(t->type_name, m->types[k].type), "%s: %s is %s, expected %s", m->file, m->types[k].name,
          t ? t->type_name : "missing", m->types[k].type);
  }
  if (!strcmp(m->arch, "qwen2") || !strcmp(m->arch, "qwen3"))
    check(!kn_gguf_tensor_find(g, "output.weight") && kn_gguf_get_str(g, "tokenizer.chat_template", NULL),
          "%s: tied embeddings and a chat template expected", m->file);
  if (!strcmp(m->arch, "qwen3")) {
    const kn_gguf_tensor *q = kn_gguf_tensor_find(g, "blk.0.attn_q.weight"), *qn = kn_gguf_tensor_find(g, "blk.0.attn_q_norm.weight");
    check(q && q->ne[0] == 256 && q->ne[1] == 512 && qn && qn->ne[0] == 64 &&
          kn_gguf_get_int(g, "qwen3.attention.key_length", 0) == 64, "%s: qwen3 head_dim 64 shapes", m->file);
  }
  if (m->n_embd == 256)
    check(kn_gguf_get_int(g, "llama.attention.head_count_kv", 2) == 2 && kn_gguf_get_float(g, "no.key", 0.5) == 0.5,
          "%s: head_count_kv", m->file);
  check_consistent(g, m->file);
  kn_gguf_close(g);
}

static int test_models(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/models", testdata());
  if (access(path, R_OK)) {
    printf("skip: %s is missing (the test models are in ../shared/testdata)\n", path);
    return 77;
  }
  for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", testdata(), models[i].file);
    check_model(&models[i], path);
  }
  char err[512];
  check(!kn_gguf_open("/nonexistent/x.gguf", err, sizeof err) && strstr(err, "/nonexistent/x.gguf"),
        "a missing file: %s", err);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "models")) return test_models();
  test_round_trip(0);
  test_round_trip(64);
  test_round_trip(4096);
  test_writer_errors();
  test_copy_real();
  kn_test_hostile(&passed, &failed);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
