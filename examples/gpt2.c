/* A GPT-2 style model written out of tree against kiln's installed headers: learned token and position embeddings,
 * pre-LayerNorm blocks (with biases) of causal multi-head attention and a GELU MLP, a final LayerNorm and tied
 * output embeddings. Random weights; the logits of every position are checked against the same model in plain C.
 * Build: cc gpt2.c $(pkg-config --cflags --libs kiln) -o gpt2 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <ops/ops.h>

enum { V = 64, P = 16, E = 32, H = 4, D = E / H, F = 4 * E, L = 2, T = 11 };

typedef struct {
  float *ln1_g, *ln1_b, *w_qkv, *b_qkv, *w_o, *b_o, *ln2_g, *ln2_b, *w_fc, *b_fc, *w_proj, *b_proj;
} block;

static float *param(int n, float scale, float base) {
  float *p = malloc(n * sizeof *p);
  for (int i = 0; i < n; i++) p[i] = base + scale * ((float)rand() / RAND_MAX * 2 - 1);
  return p;
}

/* ---- the model on kiln's graph API ---- */
static kn_t t1(const float *p, int64_t n) { return kn_from_host(KN_F32, 1, &n, p); }
static kn_t t2(const float *p, int64_t r, int64_t c) { return kn_from_host(KN_F32, 2, (int64_t[]){r, c}, p); }

static kn_t forward(const float *wte, const float *wpe, const block *b, const float *lnf_g, const float *lnf_b,
                    const int32_t *ids) {
  kn_t tok = kn_from_host(KN_I32, 1, (int64_t[]){T}, ids);
  kn_t x = kn_add(kn_gather_rows(t2(wte, V, E), tok), kn_shrink(t2(wpe, P, E), (int64_t[]){0, 0}, (int64_t[]){T, E}));
  kn_t mask = kn_causal_mask(T, T, NULL, 0);
  for (int l = 0; l < L; l++) {
    kn_t h = kn_layernorm(x, t1(b[l].ln1_g, E), t1(b[l].ln1_b, E), 1e-5f);
    kn_t qkv = kn_linear(h, t2(b[l].w_qkv, 3 * E, E), t1(b[l].b_qkv, 3 * E)); /* [T, 3E] */
    kn_t part[3];
    kn_split(qkv, 1, (int64_t[]){E, E, E}, 3, part);
    kn_t q = kn_reshape(part[0], 3, (int64_t[]){T, H, D}), k = kn_reshape(part[1], 3, (int64_t[]){T, H, D}),
         v = kn_reshape(part[2], 3, (int64_t[]){T, H, D});
    kn_t att = kn_reshape(kn_attention(q, k, v, mask, 1.0f / sqrtf(D)), 2, (int64_t[]){T, E});
    x = kn_add(x, kn_linear(att, t2(b[l].w_o, E, E), t1(b[l].b_o, E)));
    h = kn_layernorm(x, t1(b[l].ln2_g, E), t1(b[l].ln2_b, E), 1e-5f);
    kn_t m = kn_gelu(kn_linear(h, t2(b[l].w_fc, F, E), t1(b[l].b_fc, F)));
    x = kn_add(x, kn_linear(m, t2(b[l].w_proj, E, F), t1(b[l].b_proj, E)));
  }
  x = kn_layernorm(x, t1(lnf_g, E), t1(lnf_b, E), 1e-5f);
  return kn_linear(x, t2(wte, V, E), NULL); /* [T, V] */
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

static void reference(const float *wte, const float *wpe, const block *b, const float *lnf_g, const float *lnf_b,
                      const int32_t *ids, double *logits) {
  static double x[T][E], h[T][E], qkv[T][3 * E], att[T][E], tmp[T][F], o[E];
  for (int t = 0; t < T; t++)
    for (int i = 0; i < E; i++) x[t][i] = (double)wte[ids[t] * E + i] + wpe[t * E + i];
  for (int l = 0; l < L; l++) {
    for (int t = 0; t < T; t++) layernorm(x[t], b[l].ln1_g, b[l].ln1_b, h[t]), linear(h[t], b[l].w_qkv, b[l].b_qkv, E, 3 * E, qkv[t]);
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
      linear(att[t], b[l].w_o, b[l].b_o, E, E, o);
      for (int i = 0; i < E; i++) x[t][i] += o[i];
      layernorm(x[t], b[l].ln2_g, b[l].ln2_b, h[t]);
      linear(h[t], b[l].w_fc, b[l].b_fc, E, F, tmp[t]);
      for (int i = 0; i < F; i++) {
        double u = tmp[t][i];
        tmp[t][i] = 0.5 * u * (1 + tanh(sqrt(2 / M_PI) * (u + 0.044715 * u * u * u)));
      }
      linear(tmp[t], b[l].w_proj, b[l].b_proj, F, E, o);
      for (int i = 0; i < E; i++) x[t][i] += o[i];
    }
  }
  for (int t = 0; t < T; t++) layernorm(x[t], lnf_g, lnf_b, h[t]), linear(h[t], wte, NULL, E, V, logits + t * V);
}

int main(void) {
  srand(2024);
  float *wte = param(V * E, 0.5f, 0), *wpe = param(P * E, 0.2f, 0), *lnf_g = param(E, 0.1f, 1), *lnf_b = param(E, 0.1f, 0);
  block b[L];
  for (int l = 0; l < L; l++)
    b[l] = (block){param(E, 0.1f, 1), param(E, 0.1f, 0), param(3 * E * E, 0.3f, 0), param(3 * E, 0.1f, 0),
                   param(E * E, 0.2f, 0),  param(E, 0.1f, 0), param(E, 0.1f, 1),         param(E, 0.1f, 0),
                   param(F * E, 0.2f, 0),  param(F, 0.1f, 0), param(E * F, 0.1f, 0),     param(E, 0.1f, 0)};
  int32_t ids[T];
  for (int t = 0; t < T; t++) ids[t] = rand() % V;

  char err[256];
  kn_device *dev = kn_device_open("CPU", err, sizeof err);
  if (!dev) return fprintf(stderr, "gpt2: %s\n", err), 1;
  kn_ctx *ctx = kn_ctx_new(dev);
  kn_ctx_set(ctx);
  static float got[T * V];
  static double want[T * V];
  kn_t logits = forward(wte, wpe, b, lnf_g, lnf_b, ids);
  if (kn_to_host(logits, got, sizeof got)) return fprintf(stderr, "gpt2: %s\n", kn_ctx_error(ctx)), 1;
  reference(wte, wpe, b, lnf_g, lnf_b, ids, want);
  double num = 0, den = 0;
  for (int i = 0; i < T * V; i++) num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
  double rel = sqrt(num / den);
  printf("gpt2: %d layers, %d positions, logits relative error %.2e against plain C (%d kernels)\n", L, T, rel,
         kn_last_schedule().kernels);
  kn_ctx_free(ctx);
  kn_device_close(dev);
  return rel < 1e-4 ? 0 : 1;
}
