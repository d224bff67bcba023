/* `kiln gguf FILE [--all]`: what is inside a GGUF file — its metadata (long arrays and strings abbreviated unless
 * --all) and a tensor table with byte totals per type. The file is validated on open, so this is also the quickest
 * way to see why kiln rejects a file. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "models/gguf.h"

#define SHOW_ITEMS 8
#define SHOW_CHARS 160

static int usage(FILE *f) {
  fprintf(f, "usage: kiln gguf FILE [--all]\n\n"
             "Prints the file's metadata and a table of its tensors (name, type, shape, bytes, offset) with totals per\n"
             "type. Arrays longer than %d elements and strings longer than %d characters are abbreviated; --all\n"
             "prints them whole.\n", SHOW_ITEMS, SHOW_CHARS);
  return f == stdout ? 0 : 2;
}

/* A string with quotes, escapes for control bytes, cut at max bytes unless max is 0. */
static void put_string(const char *s, uint64_t n, uint64_t max) {
  putchar('"');
  uint64_t k = max && n > max ? max : n;
  for (uint64_t i = 0; i < k; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c == '\n') fputs("\\n", stdout);
    else if (c == '\t') fputs("\\t", stdout);
    else if (c < 32 || c == 127) printf("\\x%02x", c);
    else putchar(c);
  }
  putchar('"');
  if (k < n) printf("... (%" PRIu64 " bytes)", n);
}

static void put_value(const kn_gguf_value *v, bool all);

static void put_scalar(const kn_gguf_value *v) {
  switch (v->type) {
  case KN_GGUF_U8: case KN_GGUF_U16: case KN_GGUF_U32: case KN_GGUF_U64: printf("%" PRIu64, v->u); break;
  case KN_GGUF_I8: case KN_GGUF_I16: case KN_GGUF_I32: case KN_GGUF_I64: printf("%" PRId64, v->i); break;
  case KN_GGUF_F32: case KN_GGUF_F64: printf("%.9g", v->f); break;
  case KN_GGUF_BOOL: fputs(v->b ? "true" : "false", stdout); break;
  default: fputs("?", stdout); break;
  }
}

static void put_array(const kn_gguf_value *v, bool all) {
  uint64_t n = kn_gguf_arr_len(v), show = all || n <= SHOW_ITEMS ? n : SHOW_ITEMS;
  printf("[%s x %" PRIu64 "] [", kn_gguf_type_name(v->elem), n);
  for (uint64_t i = 0; i < show; i++) {
    if (i) fputs(", ", stdout);
    kn_gguf_value e;
    if (kn_gguf_arr_get(v, i, &e)) put_value(&e, all);
  }
  if (show < n) printf(", ... %" PRIu64 " more", n - show);
  putchar(']');
}

static void put_value(const kn_gguf_value *v, bool all) {
  if (v->type == KN_GGUF_STRING) put_string(v->s, v->n, all ? 0 : SHOW_CHARS);
  else if (v->type == KN_GGUF_ARRAY) put_array(v, all);
  else put_scalar(v);
}

static void print_metadata(const kn_gguf *g, bool all) {
  printf("\nmetadata (%zu keys):\n", kn_gguf_kv_count(g));
  for (size_t i = 0; i < kn_gguf_kv_count(g); i++) {
    const kn_gguf_kv *kv = kn_gguf_kv_at(g, i);
    printf("  %-44s %-6s ", kv->key, kn_gguf_type_name(kv->value.type));
    put_value(&kv->value, all);
    putchar('\n');
  }
}

static void shape_str(const kn_gguf_tensor *t, char *buf, size_t len) {
  int o = snprintf(buf, len, "[");
  for (int d = 0; d < t->ndim && o < (int)len; d++)
    o += snprintf(buf + o, len - (size_t)o, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
  if (o < (int)len) snprintf(buf + o, len - (size_t)o, "]");
}

static void print_tensors(const kn_gguf *g) {
  size_t n = kn_gguf_tensor_count(g);
  printf("\ntensors (%zu; shape is GGUF order, ne[0] first):\n", n);
  printf("  %-5s %-40s %-8s %-24s %14s %14s\n", "#", "name", "type", "shape", "bytes", "offset");
  struct { const char *name; size_t count; uint64_t bytes, elems; } per[64];
  size_t ntypes = 0;
  uint64_t total = 0, elems = 0;
  for (size_t i = 0; i < n; i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(g, i);
    char shape[96];
    shape_str(t, shape, sizeof shape);
    printf("  %-5zu %-40s %-8s %-24s %14" PRIu64 " %14" PRIu64 "%s\n", i, t->name, t->type_name, shape, t->nbytes,
           t->offset, t->dtype < 0 ? "  (kiln cannot compute with this type)" : "");
    size_t k = 0;
    while (k < ntypes && strcmp(per[k].name, t->type_name)) k++;
    if (k == ntypes && ntypes < 64) per[ntypes++] = (typeof(per[0])){t->type_name, 0, 0, 0};
    if (k < ntypes) per[k].count++, per[k].bytes += t->nbytes, per[k].elems += (uint64_t)t->nelems;
    total += t->nbytes, elems += (uint64_t)t->nelems;
  }
  printf("\ntotals:\n");
  for (size_t k = 0; k < ntypes; k++)
    printf("  %-8s %6zu tensors %16" PRIu64 " elements %14" PRIu64 " bytes (%.2f MiB, %.2f bits/weight)\n",
           per[k].name, per[k].count, per[k].elems, per[k].bytes, per[k].bytes / 1048576.0,
           per[k].elems ? 8.0 * per[k].bytes / per[k].elems : 0.0);
  printf("  %-8s %6zu tensors %16" PRIu64 " elements %14" PRIu64 " bytes (%.2f MiB)\n", "all", n, elems, total,
         total / 1048576.0);
}

int kn_cmd_gguf(int argc, char **argv) {
  const char *path = NULL;
  bool all = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
    if (!strcmp(argv[i], "--all")) all = true;
    else if (argv[i][0] == '-' && argv[i][1]) return fprintf(stderr, "kiln gguf: unknown option %s\n", argv[i]), usage(stderr);
    else if (path) return fprintf(stderr, "kiln gguf: one file at a time\n"), usage(stderr);
    else path = argv[i];
  }
  if (!path) return usage(stderr);
  char err[512];
  kn_gguf *g = kn_gguf_open(path, err, sizeof err);
  if (!g) return fprintf(stderr, "kiln gguf: %s\n", err), 1;
  printf("%s: GGUF v%u, %zu metadata keys, %zu tensors, alignment %" PRIu64 ", data at offset %" PRIu64
         ", %" PRIu64 " bytes\n",
         path, kn_gguf_version(g), kn_gguf_kv_count(g), kn_gguf_tensor_count(g), kn_gguf_alignment(g),
         kn_gguf_data_offset(g), kn_gguf_file_size(g));
  print_metadata(g, all);
  print_tensors(g);
  kn_gguf_close(g);
  return 0;
}
