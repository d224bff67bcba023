/* A GPT-2 style model written out of tree against kiln's installed headers: learned token and position embeddings,
 * pre-LayerNorm blocks (with biases) of causal multi-head attention and a GELU MLP, a final LayerNorm and tied
 * output embeddings. Random weights, checked against the same model in plain C twice over:
 *   1. as a graph built from host arrays (attention without a KV cache, every position at once);
 *   2. as a model kiln runs: the weights written to a GGUF file under llama.cpp's gpt2 tensor names, the architecture
 *      registered at run time (kn_arch_register), loaded with kn_model_load and run as a prompt followed by decode
 *      steps of one token each through the KV cache, each step's logits against the reference's row.
 * It also shows what a mismatched file gets: an error naming the tensor and both shapes.
 * Build: cc gpt2.c $(pkg-config --cflags --libs kiln) -o gpt2 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <device/base/formats.h>
#include <models/arch.h>
#include <models/gguf.h>

enum { V = 64, P = 16, E = 32, H = 4, D = E / H, F = 4 * E, L = 2, T = 11, T0 = 7 };

typedef struct {
  float *ln1_g, *ln1_b, *w_qkv, *b_qkv, *w_o, *b_o, *ln2_g, *ln2_b, *w_fc, *b_fc, *w_proj, *b_proj;
} block;

typedef struct {
  float *wte, *wpe, *lnf_g, *lnf_b;
  block b[L];
} weights;

static float *param(int n, float scale, float base) {
  float *p = malloc(n * sizeof *p);
  for (int i = 0; i < n; i++) p[i] = base + scale * ((float)rand() / RAND_MAX * 2 - 1);
  return p;
}

/* the MLP matrices are stored as F16 in the file: their values are rounded to it here, so every path sees the same */
static float *param_f16(int n, float scale) {
  float *p = param(n, scale, 0);
  for (int i = 0; i < n; i++) p[i] = kn_f16_to_f32(kn_f32_to_f16(p[i]));
  return p;
}

/* ---- 1. the model on kiln's graph API, from host arrays ---- */
static kn_t t1(const float *p, int64_t n) { return kn_from_host(KN_F32, 1, &n, p); }
static kn_t t2(const float *p, int64_t r, int64_t c) { return kn_from_host(KN_F32, 2, (int64_t[]){r, c}, p); }

static kn_t forward_graph(const weights *w, const int32_t *ids) {
  kn_t tok = kn_from_host(KN_I32, 1, (int64_t[]){T}, ids);
  kn_t x = kn_add(kn_gather_rows(t2(w->wte, V, E), tok), kn_shrink(t2(w->wpe, P, E), (int64_t[]){0, 0}, (int64_t[]){T, E}));
  kn_t mask = kn_causal_mask(T, T, NULL, 0);
  for (int l = 0; l < L; l++) {
    const block *b = &w->b[l];
    kn_t h = kn_layernorm(x, t1(b->ln1_g, E), t1(b->ln1_b, E), 1e-5f);
    kn_t qkv = kn_linear(h, t2(b->w_qkv, 3 * E, E), t1(b->b_qkv, 3 * E)); /* [T, 3E] */
    kn_t part[3];
    kn_split(qkv, 1, (int64_t[]){E, E, E}, 3, part);
    kn_t q = kn_reshape(part[0], 3, (int64_t[]){T, H, D}), k = kn_reshape(part[1], 3, (int64_t[]){T, H, D}),
         v = kn_reshape(part[2], 3, (int64_t[]){T, H, D});
    kn_t att = kn_reshape(kn_attention(q, k, v, mask, 1.0f / sqrtf(D)), 2, (int64_t[]){T, E});
    x = kn_add(x, kn_linear(att, t2(b->w_o, E, E), t1(b->b_o, E)));
    h = kn_layernorm(x, t1(b->ln2_g, E), t1(b->ln2_b, E), 1e-5f);
    kn_t m = kn_gelu(kn_linear(h, t2(b->w_fc, F, E), t1(b->b_fc, F)));
    x = kn_add(x, kn_linear(m, t2(b->w_proj, E, F), t1(b->b_proj, E)));
  }
  x = kn_layernorm(x, t1(w->lnf_g, E), t1(w->lnf_b, E), 1e-5f);
  return kn_linear(x, t2(w->wte, V, E), NULL); /* [T, V] */
}

/* ---- 2. the same model as an architecture kiln loads from GGUF and runs ---- */
typedef struct {
  kn_t ln1_g, ln1_b, w_qkv, b_qkv, w_o, b_o, ln2_g, ln2_b, w_fc, b_fc, w_proj, b_proj;
} gpt2_block;

typedef struct {
  float eps;
  kn_t wte, wpe, lnf_g, lnf_b;
  gpt2_block *b;
} gpt2;

static int gpt2_load(kn_model *m) {
  const kn_hparams *hp = &m->hp;
  gpt2 *a = calloc(1, sizeof *a);
  if (!a || !(a->b = calloc(hp->n_layer, sizeof *a->b))) return free(a), kn_model_fail(m, "out of memory");
  m->arch_data = a;
  int64_t nv = hp->n_vocab, ne = hp->n_embd, nf = hp->n_ff, np = hp->n_ctx_train, n3 = 3 * ne;
  a->eps = (float)kn_model_meta_float(m, ".attention.layer_norm_epsilon", 1e-5);
  a->wte = kn_model_weight(m, KN_REQUIRED, 2, (int64_t[]){nv, ne}, "token_embd.weight");
  a->wpe = kn_model_weight(m, KN_REQUIRED, 2, (int64_t[]){np, ne}, "position_embd.weight");
  a->lnf_g = kn_model_weight(m, KN_REQUIRED, 1, &ne, "output_norm.weight");
  a->lnf_b = kn_model_weight(m, KN_REQUIRED, 1, &ne, "output_norm.bias");
  for (int l = 0; l < hp->n_layer && !m->err[0]; l++) {
    gpt2_block *b = &a->b[l];
    b->ln1_g = kn_model_weight(m, KN_REQUIRED, 1, &ne, "blk.%d.attn_norm.weight", l);
    b->ln1_b = kn_model_weight(m, KN_REQUIRED, 1, &ne, "blk.%d.attn_norm.bias", l);
    b->w_qkv = kn_model_weight(m, KN_REQUIRED, 2, (int64_t[]){n3, ne}, "blk.%d.attn_qkv.weight", l);
    b->b_qkv = kn_model_weight(m, KN_REQUIRED, 1, &n3, "blk.%d.attn_qkv.bias", l);
    b->w_o = kn_model_weight(m, KN_REQUIRED, 2, (int64_t[]){ne, ne}, "blk.%d.attn_output.weight", l);
    b->b_o = kn_model_weight(m, KN_REQUIRED, 1, &ne, "blk.%d.attn_output.bias", l);
    b->ln2_g = kn_model_weight(m, KN_REQUIRED, 1, &ne, "blk.%d.ffn_norm.weight", l);
    b->ln2_b = kn_model_weight(m, KN_REQUIRED, 1, &ne, "blk.%d.ffn_norm.bias", l);
    b->w_fc = kn_model_weight(m, KN_REQUIRED, 2, (int64_t[]){nf, ne}, "blk.%d.ffn_up.weight", l);
    b->b_fc = kn_model_weight(m, KN_REQUIRED, 1, &nf, "blk.%d.ffn_up.bias", l);
    b->w_proj = kn_model_weight(m, KN_REQUIRED, 2, (int64_t[]){ne, nf}, "blk.%d.ffn_down.weight", l);
    b->b_proj = kn_model_weight(m, KN_REQUIRED, 1, &ne, "blk.%d.ffn_down.bias", l);
  }
  if (m->err[0]) return -1;
  /* learned positions: a cache longer than the table would read past it */
  if (m->n_ctx > np) return kn_model_fail(m, "a context of %d positions is past the %lld learned ones", m->n_ctx, (long long)np);
  return 0;
}

static kn_t gpt2_forward(kn_model *m, const kn_fwd *f) {
  const gpt2 *a = m->arch_data;
  int n = f->n_tokens, nh = m->hp.n_head, hd = m->hp.head_dim;
  /* each row's own position: rows of one step may belong to different sequences */
  kn_t x = kn_add(kn_gather_rows(a->wte, f->ids), kn_model_pos_rows(f, a->wpe));
  for (int l = 0; l < m->hp.n_layer; l++) {
    const gpt2_block *b = &a->b[l];
    kn_t h = kn_layernorm(x, b->ln1_g, b->ln1_b, a->eps);
    kn_t part[3];
    int64_t ne = m->hp.n_embd;
    kn_split(kn_linear(h, b->w_qkv, b->b_qkv), 1, (int64_t[]){ne, ne, ne}, 3, part);
    kn_t q = kn_reshape(part[0], 3, (int64_t[]){n, nh, hd}), k = kn_reshape(part[1], 3, (int64_t[]){n, nh, hd}),
         v = kn_reshape(part[2], 3, (int64_t[]){n, nh, hd});
    kn_t att = kn_model_attention(m, f, l, q, k, v, 1.0f / sqrtf((float)hd), 0); /* KV cache write + causal attention */
    x = kn_name(kn_add(x, kn_linear(att, b->w_o, b->b_o)), "blk.%d.attn_out", l);
    h = kn_layernorm(x, b->ln2_g, b->ln2_b, a->eps);
    x = kn_name(kn_add(x, kn_linear(kn_gelu(kn_linear(h, b->w_fc, b->b_fc)), b->w_proj, b->b_proj)), "blk.%d.ffn_out", l);
  }
  x = kn_layernorm(kn_model_out_rows(f, x), a->lnf_g, a->lnf_b, a->eps);
  return kn_name(kn_linear(x, a->wte, NULL), "logits");
}

static void gpt2_free(kn_model *m) {
  gpt2 *a = m->arch_data;
  if (a) free(a->b), free(a);
  m->arch_data = NULL;
}

static const kn_arch gpt2_arch = {"gpt2", gpt2_load, gpt2_forward, gpt2_free};

/* ---- the GGUF file: hyper-parameters, a small SentencePiece vocabulary, the weights ---- */
typedef struct {
  kn_gguf_writer *w;
  uint16_t *f16[2 * L];
  int nf16;
} gguf_out;

static void add(gguf_out *o, const char *name, const float *p, int rows, int cols, bool f16) {
  uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows}; /* GGUF's ne: the innermost dimension first */
  if (!f16) {
    kn_gguf_add_tensor(o->w, name, kn_dtype_get(KN_F32)->ggml_type, rows > 1 ? 2 : 1, ne, p);
    return;
  }
  uint16_t *h = o->f16[o->nf16++] = malloc((size_t)rows * cols * sizeof *h);
  for (int i = 0; i < rows * cols; i++) h[i] = kn_f32_to_f16(p[i]);
  kn_gguf_add_tensor(o->w, name, kn_dtype_get(KN_F16)->ggml_type, 2, ne, h);
}

/* bad: 0 the model as it is, 1 the qkv matrix of layer 1 transposed, 2 without the final norm's bias */
static int write_gguf(const weights *w, const char *path, int bad, char *err, size_t errlen) {
  gguf_out o = {kn_gguf_writer_new(0), {0}, 0};
  char name[64];
  static char tok[V][8];
  const char *toks[V];
  float score[V];
  int32_t type[V];
  for (int i = 0; i < V; i++) {
    snprintf(tok[i], sizeof tok[i], i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : "t%d", i);
    toks[i] = tok[i], score[i] = (float)-i, type[i] = i == 0 ? 2 : i < 3 ? 3 : 1;
  }
  kn_gguf_set_str(o.w, "general.architecture", "gpt2");
  kn_gguf_set_u32(o.w, "gpt2.context_length", P);
  kn_gguf_set_u32(o.w, "gpt2.embedding_length", E);
  kn_gguf_set_u32(o.w, "gpt2.block_count", L);
  kn_gguf_set_u32(o.w, "gpt2.feed_forward_length", F);
  kn_gguf_set_u32(o.w, "gpt2.attention.head_count", H);
  kn_gguf_set_f32(o.w, "gpt2.attention.layer_norm_epsilon", 1e-5f);
  kn_gguf_set_str(o.w, "tokenizer.ggml.model", "llama");
  kn_gguf_set_arr_str(o.w, "tokenizer.ggml.tokens", toks, V);
  kn_gguf_set_arr(o.w, "tokenizer.ggml.scores", KN_GGUF_F32, score, V);
  kn_gguf_set_arr(o.w, "tokenizer.ggml.token_type", KN_GGUF_I32, type, V);
  kn_gguf_set_u32(o.w, "tokenizer.ggml.bos_token_id", 1);
  kn_gguf_set_u32(o.w, "tokenizer.ggml.eos_token_id", 2);
  add(&o, "token_embd.weight", w->wte, V, E, false);
  add(&o, "position_embd.weight", w->wpe, P, E, false);
  add(&o, "output_norm.weight", w->lnf_g, 1, E, false);
  if (bad != 2) add(&o, "output_norm.bias", w->lnf_b, 1, E, false);
  for (int l = 0; l < L; l++) {
    const block *b = &w->b[l];
#define ADD(suffix, p, r, c, h) snprintf(name, sizeof name, "blk.%d." suffix, l), add(&o, name, p, r, c, h)
    ADD("attn_norm.weight", b->ln1_g, 1, E, false);
    ADD("attn_norm.bias", b->ln1_b, 1, E, false);
    if (bad == 1 && l == 1) ADD("attn_qkv.weight", b->w_qkv, E, 3 * E, false);
    else ADD("attn_qkv.weight", b->w_qkv, 3 * E, E, false);
    ADD("attn_qkv.bias", b->b_qkv, 1, 3 * E, false);
    ADD("attn_output.weight", b->w_o, E, E, false);
    ADD("attn_output.bias", b->b_o, 1, E, false);
    ADD("ffn_norm.weight", b->ln2_g, 1, E, false);
    ADD("ffn_norm.bias", b->ln2_b, 1, E, false);
    ADD("ffn_up.weight", b->w_fc, F, E, true);
    ADD("ffn_up.bias", b->b_fc, 1, F, false);
    ADD("ffn_down.weight", b->w_proj, E, F, true);
    ADD("ffn_down.bias", b->b_proj, 1, E, false);
#undef ADD
  }
  int rc = kn_gguf_write_file(o.w, path, NULL, NULL, err, errlen);
  for (int i = 0; i < o.nf16; i++) free(o.f16[i]);
  kn_gguf_writer_free(o.w);
  return rc;
}

/* ---- the same model in plain C (double accumulation) ---- */
static void layernorm(const double *x, const float *g, const float *b, double *y) {
  double m = 0, v = 0;
  for (int i = 0; i < E; i++) m += x[i];
  m /= E;
  for (int i = 0; i < E; i++) v += (x[i] - m) * (x[i] - m);
  v /= E;
  for (int i = 0; i < E; i++) y[i] = (x[i] - m) / sqrt(v + 1e-5) * g[i] + b[i];
}

static void linear(const double *x, const float *w, const float *b, int in, int out, double *y) {
  for (int o = 0; o < out; o++) {
    double s = b ? b[o] : 0;
    for (int i = 0; i < in; i++) s += x[i] * w[o * in + i];
    y[o] = s;
  }
}

static void reference(const weights *w, const int32_t *ids, double *logits) {
  static double x[T][E], h[T][E], qkv[T][3 * E], att[T][E], tmp[T][F], o[E];
  for (int t = 0; t < T; t++)
    for (int i = 0; i < E; i++) x[t][i] = (double)w->wte[ids[t] * E + i] + w->wpe[t * E + i];
  for (int l = 0; l < L; l++) {
    const block *b = &w->b[l];
    for (int t = 0; t < T; t++) layernorm(x[t], b->ln1_g, b->ln1_b, h[t]), linear(h[t], b->w_qkv, b->b_qkv, E, 3 * E, qkv[t]);
    for (int t = 0; t < T; t++)
      for (int hd = 0; hd < H; hd++) {
        double s[T], mx = -INFINITY, sum = 0;
        for (int j = 0; j <= t; j++) {
          s[j] = 0;
          for (int d = 0; d < D; d++) s[j] += qkv[t][hd * D + d] * qkv[j][E + hd * D + d];
          s[j] /= sqrt(D);
          mx = fmax(mx, s[j]);
        }
        for (int j = 0; j <= t; j++) sum += s[j] = exp(s[j] - mx);
        for (int d = 0; d < D; d++) {
          double a = 0;
          for (int j = 0; j <= t; j++) a += s[j] / sum * qkv[j][2 * E + hd * D + d];
          att[t][hd * D + d] = a;
        }
      }
    for (int t = 0; t < T; t++) {
      linear(att[t], b->w_o, b->b_o, E, E, o);
      for (int i = 0; i < E; i++) x[t][i] += o[i];
      layernorm(x[t], b->ln2_g, b->ln2_b, h[t]);
      linear(h[t], b->w_fc, b->b_fc, E, F, tmp[t]);
      for (int i = 0; i < F; i++) {
        double u = tmp[t][i];
        tmp[t][i] = 0.5 * u * (1 + tanh(sqrt(2 / M_PI) * (u + 0.044715 * u * u * u)));
      }
      linear(tmp[t], b->w_proj, b->b_proj, F, E, o);
      for (int i = 0; i < E; i++) x[t][i] += o[i];
    }
  }
  for (int t = 0; t < T; t++) layernorm(x[t], w->lnf_g, w->lnf_b, h[t]), linear(h[t], w->wte, NULL, E, V, logits + t * V);
}

/* relative error of n logits */
static double rel_err(const float *got, const double *want, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; i++) num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
  return sqrt(num / den);
}

/* prompt T0 tokens, then decode the rest one at a time; the worst relative error of a position's logits */
static double run_model(kn_model *m, const int32_t *ids, const double *want, char *err, size_t errlen) {
  static float got[T * V];
  if (kn_model_forward(m, 0, ids, T0, 0, true, got, err, errlen)) return -1;
  for (int t = T0; t < T; t++)
    if (kn_model_forward(m, 0, ids + t, 1, t, false, got + t * V, err, errlen)) return -1;
  double worst = 0;
  for (int t = 0; t < T; t++) worst = fmax(worst, rel_err(got + t * V, want + t * V, V));
  return worst;
}

int main(void) {
  srand(2024);
  weights w = {param(V * E, 0.5f, 0), param(P * E, 0.2f, 0), param(E, 0.1f, 1), param(E, 0.1f, 0), {{0}}};
  for (int l = 0; l < L; l++)
    w.b[l] = (block){param(E, 0.1f, 1), param(E, 0.1f, 0), param(3 * E * E, 0.3f, 0), param(3 * E, 0.1f, 0),
                     param(E * E, 0.2f, 0), param(E, 0.1f, 0), param(E, 0.1f, 1), param(E, 0.1f, 0),
                     param_f16(F * E, 0.2f), param(F, 0.1f, 0), param_f16(E * F, 0.1f), param(E, 0.1f, 0)};
  int32_t ids[T];
  for (int t = 0; t < T; t++) ids[t] = 3 + rand() % (V - 3);
  static double want[T * V];
  reference(&w, ids, want);

  char err[512];
  kn_device *dev = kn_device_open("CPU", err, sizeof err);
  if (!dev) return fprintf(stderr, "gpt2: %s\n", err), 1;

  /* 1. the graph */
  kn_ctx *ctx = kn_ctx_new(dev);
  kn_ctx_set(ctx);
  static float got[T * V];
  kn_t logits = forward_graph(&w, ids);
  if (kn_to_host(logits, got, sizeof got)) return fprintf(stderr, "gpt2: %s\n", kn_ctx_error(ctx)), 1;
  double rel_graph = rel_err(got, want, T * V);
  int kernels = kn_last_schedule().kernels;
  kn_ctx_free(ctx);

  /* 2. the registered architecture, loaded from a GGUF file */
  char path[] = "/tmp/kiln-gpt2-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return fprintf(stderr, "gpt2: cannot create a file in /tmp\n"), 1;
  close(fd);
  if (kn_arch_register(&gpt2_arch)) return fprintf(stderr, "gpt2: the architecture table is full\n"), 1;
  kn_load_opts o = kn_load_defaults();
  o.n_ctx = P, o.kv_dtype = KN_F32; /* an exact comparison: the default F16 cache rounds keys and values */
  double rel_model = -1;
  kn_model *m = NULL;
  if (write_gguf(&w, path, 0, err, sizeof err) || !(m = kn_model_load(path, dev, &o, err, sizeof err)) ||
      (rel_model = run_model(m, ids, want, err, sizeof err)) < 0) {
    fprintf(stderr, "gpt2: as a kiln model: %s\n", err);
    rel_model = 1;
  }
  kn_model_free(m);

  /* a file that does not match the architecture: the error names the tensor */
  const char *expect[] = {NULL, "tensor blk.1.attn_qkv.weight has shape [32, 96], expected [96, 32]",
                          "tensor output_norm.bias is missing"};
  int bad_errors = 0;
  for (int bad = 1; bad <= 2; bad++) {
    err[0] = 0;
    kn_model *mb = write_gguf(&w, path, bad, err, sizeof err) ? NULL : kn_model_load(path, dev, &o, err, sizeof err);
    if (mb || !strstr(err, expect[bad])) bad_errors++, fprintf(stderr, "gpt2: want '%s', got '%s'\n", expect[bad], mb ? "loaded" : err);
    kn_model_free(mb);
  }
  unlink(path);
  kn_device_close(dev);
  printf("gpt2: %d layers, %d positions, logits relative error against plain C: %.2e as a graph (%d kernels), %.2e "
         "as a registered architecture (a %d-token prompt and %d decode steps); %d of 2 mismatched files named\n",
         L, T, rel_graph, kernels, rel_model, T0, T - T0, 2 - bad_errors);
  return rel_graph < 1e-4 && rel_model < 1e-4 && !bad_errors ? 0 : 1;
}
