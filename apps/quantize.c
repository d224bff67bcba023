/* `kiln quantize IN.gguf OUT.gguf TYPE`: rewrite a model's weight matrices in another GGUF format, keeping every
 * metadata key and the norms/biases in float32. Mixes follow the reference's recipes (Q4_K_M keeps the output,
 * the embeddings and half of attn_v/ffn_down in Q6_K), and matrices whose rows are not whole super-blocks fall
 * back to a 32-element format, as real files do. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"
#include "models/gguf.h"
#include "device/base/formats.h"

typedef struct {
  const char *name;
  kn_dtype base;
  bool mix_m; /* the _M recipe: more important tensors one step up */
} recipe;

static const recipe recipes[] = {
  {"f32", KN_F32, false},  {"f16", KN_F16, false},  {"bf16", KN_BF16, false}, {"q8_0", KN_Q8_0, false},
  {"q4_0", KN_Q4_0, false}, {"q4_1", KN_Q4_1, false}, {"q5_0", KN_Q5_0, false}, {"q5_1", KN_Q5_1, false},
  {"q2_k", KN_Q2_K, false}, {"q3_k", KN_Q3_K, false}, {"q4_k", KN_Q4_K, false}, {"q5_k", KN_Q5_K, false},
  {"q6_k", KN_Q6_K, false}, {"q4_k_m", KN_Q4_K, true}, {"q5_k_m", KN_Q5_K, true}, {"q3_k_m", KN_Q3_K, true},
};

static int usage(FILE *f) {
  fprintf(f, "usage: kiln quantize IN.gguf OUT.gguf TYPE\n\nTYPE is one of:");
  for (size_t i = 0; i < sizeof recipes / sizeof *recipes; i++) fprintf(f, " %s", recipes[i].name);
  fprintf(f, "\n\nWeight matrices are converted (from any type kiln reads); 1-D tensors stay float32; all metadata is "
             "kept.\nThe _m mixes keep output/token embeddings and every other attn_v/ffn_down in q6_k.\n");
  return f == stdout ? 0 : 2;
}

typedef struct {
  const kn_gguf *in;
  kn_dtype *types; /* per tensor */
} job;

/* The format for one tensor under a recipe; ne0 is the row length. */
static kn_dtype choose(const recipe *r, const kn_gguf_tensor *t, int layer_idx, int n_layer) {
  if (t->ndim < 2 || !strstr(t->name, ".weight")) return KN_F32;
  kn_dtype d = r->base;
  if (r->mix_m) {
    bool important = !strcmp(t->name, "output.weight") || !strcmp(t->name, "token_embd.weight");
    bool alternate = (strstr(t->name, "attn_v.weight") || strstr(t->name, "ffn_down.weight")) &&
                     (layer_idx < n_layer / 8 || layer_idx >= 7 * n_layer / 8 || (layer_idx - n_layer / 8) % 3 == 2);
    if (important || alternate) d = KN_Q6_K;
  }
  int be = kn_dtype_get(d)->block_elems;
  if (t->ne[0] % be) { /* rows that are not whole super-blocks: the 32-element formats */
    kn_dtype fb = d == KN_Q6_K || d == KN_Q5_K ? KN_Q8_0 : d == KN_Q4_K || d == KN_Q3_K || d == KN_Q2_K ? KN_Q5_0 : KN_F16;
    d = t->ne[0] % kn_dtype_get(fb)->block_elems ? KN_F16 : fb;
  }
  return d;
}

/* One thread's share of a tensor: whole rows, so every block stays inside one share. */
typedef struct {
  const kn_gguf_tensor *t;
  kn_dtype to;
  int64_t row0, rows;
  uint8_t *dst;
  char err[256];
  int rc;
} share;

static void *convert_rows(void *arg) {
  share *s = arg;
  int64_t row = s->t->ne[0], n = s->rows * row;
  float *f = malloc((size_t)n * sizeof *f);
  if (!f) return s->rc = -1, snprintf(s->err, sizeof s->err, "out of memory"), NULL;
  const uint8_t *src = (const uint8_t *)s->t->data + kn_dtype_nbytes(s->t->dtype, s->row0 * row);
  s->rc = kn_dequantize(s->t->dtype, src, n, f);
  if (s->rc) snprintf(s->err, sizeof s->err, "dequantizing failed");
  else s->rc = kn_quantize(s->to, f, n, s->dst + kn_dtype_nbytes(s->to, s->row0 * row), s->err, sizeof s->err);
  free(f);
  return NULL;
}

static int fill(void *user, size_t index, const char *name, void *dst, uint64_t nbytes, char *err, size_t errlen) {
  job *j = user;
  const kn_gguf_tensor *t = kn_gguf_tensor_find(j->in, name);
  if (!t || t->dtype < 0 || !kn_dequantize_supported(t->dtype))
    return snprintf(err, errlen, "%s: cannot read its type %s", name, t ? t->type_name : "?"), -1;
  int64_t rows = t->ne[0] ? t->nelems / (int64_t)t->ne[0] : 0;
  int nth = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (nth < 1) nth = 1;
  if (nth > 64) nth = 64;
  if (rows < nth) nth = rows > 0 ? (int)rows : 1;
  share sh[64];
  pthread_t th[64];
  bool started[64] = {false};
  for (int i = 0; i < nth; i++) {
    int64_t a = rows * i / nth, b = rows * (i + 1) / nth;
    sh[i] = (share){.t = t, .to = j->types[index], .row0 = a, .rows = b - a, .dst = dst};
    if (i > 0 && pthread_create(&th[i], NULL, convert_rows, &sh[i]) == 0) started[i] = true;
    else if (i > 0) convert_rows(&sh[i]);
  }
  convert_rows(&sh[0]);
  for (int i = 1; i < nth; i++)
    if (started[i]) pthread_join(th[i], NULL);
  for (int i = 0; i < nth; i++)
    if (sh[i].rc) return snprintf(err, errlen, "%s: %s", name, sh[i].err), -1;
  (void)nbytes;
  return 0;
}

int kn_cmd_quantize(int argc, char **argv) {
  if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return usage(stdout);
  if (argc != 4) return usage(stderr);
  const recipe *r = NULL;
  for (size_t i = 0; i < sizeof recipes / sizeof *recipes; i++)
    if (!strcasecmp(argv[3], recipes[i].name)) r = &recipes[i];
  if (!r) return fprintf(stderr, "kiln quantize: unknown type '%s'\n", argv[3]), usage(stderr);
  char err[512];
  kn_gguf *in = kn_gguf_open(argv[1], err, sizeof err);
  if (!in) return fprintf(stderr, "kiln quantize: %s\n", err), 1;
  const char *arch = kn_gguf_get_str(in, "general.architecture", "llama");
  char key[128];
  snprintf(key, sizeof key, "%s.block_count", arch);
  int n_layer = (int)kn_gguf_get_int(in, key, 1);
  kn_gguf_writer *w = kn_gguf_writer_new((uint32_t)kn_gguf_alignment(in));
  size_t nt = kn_gguf_tensor_count(in);
  job j = {in, calloc(nt ? nt : 1, sizeof(kn_dtype))};
  int rc = !w || !j.types;
  for (size_t i = 0; !rc && i < kn_gguf_kv_count(in); i++) {
    const kn_gguf_kv *kv = kn_gguf_kv_at(in, i);
    if (!strcmp(kv->key, "general.alignment")) continue;
    rc = kn_gguf_set_value(w, kv->key, &kv->value);
  }
  if (!rc) kn_gguf_remove(w, "general.file_type"); /* the source's value would misdescribe the new file */
  int64_t in_bytes = 0, out_bytes = 0;
  for (size_t i = 0; !rc && i < nt; i++) {
    const kn_gguf_tensor *t = kn_gguf_tensor_at(in, i);
    int layer = -1;
    sscanf(t->name, "blk.%d.", &layer);
    j.types[i] = choose(r, t, layer, n_layer);
    in_bytes += (int64_t)t->nbytes;
    out_bytes += kn_dtype_nbytes(j.types[i], t->nelems);
    rc = kn_gguf_add_tensor(w, t->name, kn_dtype_get(j.types[i])->ggml_type, t->ndim, t->ne, NULL);
  }
  if (rc) fprintf(stderr, "kiln quantize: %s\n", w ? kn_gguf_writer_error(w) : "out of memory");
  else if (kn_gguf_write_file(w, argv[2], fill, &j, err, sizeof err)) {
    fprintf(stderr, "kiln quantize: writing %s: %s\n", argv[2], err);
    rc = 1;
  } else
    printf("%s: %zu tensors, %.1f MiB -> %s %.1f MiB (%s)\n", argv[1], nt, in_bytes / 1048576.0, argv[2],
           out_bytes / 1048576.0, r->name);
  free(j.types);
  kn_gguf_writer_free(w);
  kn_gguf_close(in);
  return rc ? 1 : 0;
}
