/* Hostile GGUF files, built byte by byte: a small valid file and one variant per kind of damage (bad magic, lying
 * counts and lengths, unknown types, deep nesting, bad dims, misplaced tensor data, ...). Each variant must fail
 * with a message that names the file, the field and an offset; every truncation of the valid file must fail. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/gguf.h"

typedef enum {
  M_OK, M_DEPTH_OK, M_MAGIC, M_V1, M_V4, M_BE, M_NT_HUGE, M_NKV_HUGE, M_KEYLEN, M_KEY_NUL, M_STRLEN, M_VTYPE,
  M_ELEMTYPE, M_ARRCOUNT, M_DEPTH, M_BOOL, M_DUPKEY, M_ALIGN_TYPE, M_ALIGN_NPOT, M_NDIM, M_DIMS_OVF, M_DIM_HUGE,
  M_BLOCK, M_GGML_TYPE, M_MISALIGN, M_OFF_PAST, M_OVERLAP, M_DUP_TENSOR, M_TRUNC_DATA, M_TRUNC_INFOS, M_COUNT
} mutation;

/* what the message must contain for each variant */
static const char *expect[M_COUNT] = {
  [M_MAGIC] = "magic", [M_V1] = "version 1", [M_V4] = "version 4", [M_BE] = "big-endian",
  [M_NT_HUGE] = "tensor_count", [M_NKV_HUGE] = "metadata_kv_count", [M_KEYLEN] = "key at offset 24: string length",
  [M_KEY_NUL] = "NUL", [M_STRLEN] = "value at offset", [M_VTYPE] = "value type 13", [M_ELEMTYPE] = "element type 99",
  [M_ARRCOUNT] = "array of", [M_DEPTH] = "nested deeper", [M_BOOL] = "bool value is 2", [M_DUPKEY] = "duplicate key",
  [M_ALIGN_TYPE] = "general.alignment", [M_ALIGN_NPOT] = "not a power of two", [M_NDIM] = "n_dims",
  [M_DIMS_OVF] = "overflows", [M_DIM_HUGE] = "dimension 0", [M_BLOCK] = "not a multiple", [M_GGML_TYPE] = "GGML type 99",
  [M_MISALIGN] = "alignment", [M_OFF_PAST] = "past the end", [M_OVERLAP] = "overlaps", [M_DUP_TENSOR] = "duplicate tensor",
  [M_TRUNC_DATA] = "past the end", [M_TRUNC_INFOS] = "remain",
};

typedef struct {
  uint8_t p[4096];
  size_t n;
} hb;

static void raw(hb *b, const void *d, size_t n) { memcpy(b->p + b->n, d, n), b->n += n; }
static void u32(hb *b, uint32_t v) { raw(b, &v, 4); }
static void u64(hb *b, uint64_t v) { raw(b, &v, 8); }
static void strn(hb *b, const char *s, size_t n) { u64(b, n), raw(b, s, n); }
static void str(hb *b, const char *s) { strn(b, s, strlen(s)); }

static void nested(hb *b, int levels) { /* "test.arr": arrays `levels` deep, the innermost an empty i32 array */
  str(b, "test.arr"), u32(b, 9);
  for (int i = 1; i < levels; i++) u32(b, 9), u64(b, 1);
  u32(b, 5), u64(b, 0);
}

static void kvs(hb *b, mutation m) {
  if (m == M_KEYLEN) u64(b, 1ull << 32);
  else if (m == M_KEY_NUL) strn(b, "gen\0ral", 7);
  else str(b, "general.architecture");
  u32(b, 8);
  if (m == M_STRLEN) u64(b, 1000000), raw(b, "llama", 5);
  else str(b, "llama");
  if (m == M_DEPTH || m == M_DEPTH_OK) {
    nested(b, m == M_DEPTH ? KN_GGUF_MAX_DEPTH + 1 : KN_GGUF_MAX_DEPTH);
  } else {
    str(b, "test.arr"), u32(b, m == M_VTYPE ? 13 : 9), u32(b, m == M_ELEMTYPE ? 99 : 5);
    u64(b, m == M_ARRCOUNT ? 1ull << 61 : 3), u32(b, 1), u32(b, 2), u32(b, 3);
  }
  str(b, "test.flag"), u32(b, 7), raw(b, m == M_BOOL ? "\2" : "\1", 1);
  str(b, "general.alignment");
  if (m == M_ALIGN_TYPE) u32(b, 10), u64(b, 32);
  else u32(b, 4), u32(b, m == M_ALIGN_NPOT ? 48 : 32);
  if (m == M_DUPKEY) str(b, "test.flag"), u32(b, 7), raw(b, "\0", 1);
}

static void infos(hb *b, mutation m) {
  str(b, "a");
  u32(b, m == M_NDIM ? 5 : 2);
  if (m == M_DIMS_OVF) u64(b, 1ull << 40), u64(b, 1ull << 40);
  else if (m == M_DIM_HUGE) u64(b, 1ull << 63), u64(b, 1);
  else u64(b, 32), u64(b, 2);
  u32(b, 0), u64(b, 0);                                  /* f32, 256 bytes at 0 */
  str(b, m == M_DUP_TENSOR ? "a" : "b");
  u32(b, 1), u64(b, m == M_BLOCK ? 33 : 64);
  u32(b, m == M_GGML_TYPE ? 99 : 8);                     /* q8_0, 2 blocks = 68 bytes */
  u64(b, m == M_MISALIGN ? 260 : m == M_OFF_PAST ? 1u << 20 : m == M_OVERLAP ? 224 : 256);
}

static size_t build(mutation m, uint8_t *out) {
  hb b = {.n = 0};
  raw(&b, m == M_MAGIC ? "GGUG" : "GGUF", 4);
  u32(&b, m == M_V1 ? 1 : m == M_V4 ? 4 : m == M_BE ? 0x03000000u : 3);
  u64(&b, m == M_NT_HUGE ? 1ull << 40 : 2);
  u64(&b, m == M_NKV_HUGE ? UINT64_MAX : 4 + (m == M_DUPKEY));
  kvs(&b, m);
  infos(&b, m);
  size_t infos_end = b.n;
  while (b.n % 32) b.p[b.n++] = 0;
  for (int i = 0; i < 352; i++) b.p[b.n++] = (uint8_t)(i * 7 + 1);
  size_t n = m == M_TRUNC_DATA ? b.n - 40 : m == M_TRUNC_INFOS ? infos_end - 3 : b.n;
  memcpy(out, b.p, n);
  return n;
}

static bool has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

void kn_test_hostile(int *passed, int *failed);
void kn_test_hostile(int *passed, int *failed) {
  uint8_t buf[4096];
  char err[512];
#define CHECK(cond, ...) ((cond) ? (void)++*passed : (void)(++*failed, printf("FAIL: " __VA_ARGS__), printf("\n")))
  for (int m = 0; m < M_COUNT; m++) {
    size_t n = build((mutation)m, buf);
    err[0] = 0;
    kn_gguf *g = kn_gguf_open_mem(buf, n, "hostile.gguf", err, sizeof err);
    if (m == M_OK || m == M_DEPTH_OK) {
      CHECK(g && kn_gguf_tensor_count(g) == 2 && kn_gguf_get_bool(g, "test.flag", false), "valid variant %d: %s", m, err);
      if (g && m == M_OK) {
        const kn_gguf_tensor *b = kn_gguf_tensor_find(g, "b");
        CHECK(b && b->nbytes == 68 && ((const uint8_t *)b->data)[0] == (uint8_t)(256 * 7 + 1),
              "tensor b's bytes are not where the file puts them");
      }
    } else {
      CHECK(!g, "variant %d (%s) opened", m, expect[m]);
      CHECK(has(err, expect[m]) && has(err, "hostile.gguf") && has(err, "offset"),
            "variant %d: message \"%s\" lacks \"%s\", the file name or an offset", m, err, expect[m]);
    }
    kn_gguf_close(g);
  }
  /* every truncation of the valid file before the end of the last tensor's bytes fails, with a message (the
   * padding after it is not needed) */
  kn_gguf *g;
  size_t n = build(M_OK, buf) - 352 + 256 + 68;
  int opened = 0, silent = 0;
  for (size_t k = 0; k < n; k++) {
    err[0] = 0;
    kn_gguf *g = kn_gguf_open_mem(buf, k, "cut.gguf", err, sizeof err);
    opened += g != NULL, silent += !g && !has(err, "cut.gguf");
    kn_gguf_close(g);
  }
  CHECK(!opened && !silent, "truncations: %d opened, %d failed without a proper message", opened, silent);
  g = kn_gguf_open_mem(buf, n, "cut.gguf", err, sizeof err);
  CHECK(g != NULL, "the file without its trailing padding: %s", err);
  kn_gguf_close(g);
  /* files on disk: empty, a directory, missing */
  char path[256];
  snprintf(path, sizeof path, "/tmp/kiln_empty_%d.gguf", (int)getpid());
  FILE *f = fopen(path, "wb");
  if (f) fclose(f);
  g = kn_gguf_open(path, err, sizeof err);
  CHECK(!g && has(err, path) && has(err, "too short"), "empty file: %s", err);
  unlink(path);
  g = kn_gguf_open("/tmp", err, sizeof err);
  CHECK(!g && has(err, "not a regular file"), "directory: %s", err);
  g = kn_gguf_open_mem(NULL, 0, NULL, err, sizeof err);
  CHECK(!g && has(err, "too short"), "no bytes: %s", err);
#undef CHECK
}
