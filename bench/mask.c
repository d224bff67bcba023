/* Constrained sampling's vocabulary mask (kc_mask), which `kiln serve` computes when the sampler's token would break
 * a forced tool call or a JSON reply, timed at the acceptor states of random walks through such outputs (a Qwen-style
 * call of one of four tools with a parameters schema, a Mistral-style call list, JSON mode), against the check of
 * every token with a first-byte filter (what kc_mask did before it sorted the vocabulary). Prints, per kind of
 * state (a literal, JSON structure, inside a string), the median, mean and worst of the best-of-3 time per state.
 * Usage: bench_mask MODEL.gguf [WALKS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/serve.h"
#include "models/gguf.h"
#include "models/text/json_schema.h"
#include "models/text/tokenizer.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* the previous mask: the bytes a token may start with, then every token that passes checked alone */
static int per_token(const kc_vocab *v, const kc_state *k, float *logits) {
  uint8_t first[256];
  for (int b = 0; b < 256; b++) {
    unsigned char c = (unsigned char)b;
    first[b] = (uint8_t)kc_accepts(k, &c, 1);
  }
  int taken = 0;
  for (int id = 0; id < v->n; id++) {
    size_t len = 0;
    const char *p = v->ok[id] ? kn_token_piece(v->tok, id, v->ok[id] == 2, &len) : NULL;
    if (p && !(v->ok[id] == 2 && k->phase == KC_JSON) && first[(unsigned char)p[0]] && kc_accepts(k, p, len)) taken++;
    else logits[id] = -INFINITY;
  }
  return taken;
}

enum { LIT, STRUCT, STR, NKIND };
static const char *const KIND[NKIND] = {"literal (name, tail)", "JSON structure", "inside a string"};
typedef struct {
  double *t[2];
  int n, cap;
} series;

static void add(series *s, double a, double b) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    s->t[0] = realloc(s->t[0], (size_t)s->cap * sizeof(double)), s->t[1] = realloc(s->t[1], (size_t)s->cap * sizeof(double));
  }
  s->t[0][s->n] = a, s->t[1][s->n++] = b;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void walk(const kc_vocab *v, const kc_spec *sp, int steps, float *l, series *out) {
  kc_state k;
  kc_init(&k, sp);
  for (int s = 0; s <= steps; s++) {
    if (s % 10 == 0) {
      double best[2] = {1e9, 1e9};
      for (int rep = 0; rep < 3; rep++)
        for (int m = 0; m < 2; m++) {
          for (int i = 0; i < v->n; i++) l[i] = 0;
          double t0 = now();
          if (m) per_token(v, &k, l);
          else kc_mask(v, &k, l);
          double dt = now() - t0;
          if (dt < best[m]) best[m] = dt;
        }
      int kind = k.phase != KC_JSON ? LIT : kn_jsv_free_string(&k.v) >= 0 ? STR : STRUCT;
      add(&out[kind], best[0] * 1e3, best[1] * 1e3);
    }
    int cand[256], n = 0; /* a random byte the acceptor takes, printable more often than not */
    for (int b = 0; b < 256; b++) {
      unsigned char c = (unsigned char)b;
      if (kc_accepts(&k, &c, 1)) cand[n++] = b;
    }
    if (!n) break;
    int c = cand[rnd((uint32_t)n)];
    for (int tries = 0; tries < 4 && (c < 0x20 || c >= 0x7f); tries++) c = cand[rnd((uint32_t)n)];
    kc_push(&k, (unsigned char)c);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) return fprintf(stderr, "usage: bench_mask MODEL.gguf [WALKS]\n"), 2;
  int walks = argc > 2 ? atoi(argv[2]) : 8;
  char err[256];
  kn_gguf *g = kn_gguf_open(argv[1], err, sizeof err);
  kn_tokenizer *tok = g ? kn_tokenizer_load(g, err, sizeof err) : NULL;
  if (g) kn_gguf_close(g);
  if (!tok) return fprintf(stderr, "bench_mask: %s: %s\n", argv[1], err), 1;
  kc_vocab v;
  int n_vocab = kn_tokenizer_n_tokens(tok);
  double t0 = now();
  if (kc_vocab_init(&v, tok, n_vocab)) return fprintf(stderr, "bench_mask: out of memory\n"), 1;
  printf("%s: %d tokens, %d usable in constrained output; the sorted vocabulary built in %.1f ms\n", argv[1], n_vocab,
         v.n_sorted, (now() - t0) * 1e3);
  cJSON *js = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"mode\":{\"enum\":"
                          "[\"read\",\"write\"]},\"lines\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},"
                          "\"force\":{\"type\":\"boolean\"}},\"required\":[\"path\"]}");
  kn_jschema *schema = kn_jschema_compile(js, 0, err, sizeof err);
  if (!schema) return fprintf(stderr, "bench_mask: schema: %s\n", err), 1;
  kc_spec sp = {0}, jm = {0};
  const char *names[] = {"read_file", "list_dir", "write_file", "run_command"};
  sp.json = true, sp.schema = schema, sp.choices = calloc(4, sizeof *sp.choices);
  for (int i = 0; i < 4; i++) {
    kn_bytes c = {0};
    kn_bytes_printf(&c, "{\"name\": \"%s\", \"arguments\": ", names[i]);
    sp.choices[sp.n_choices++] = c.s;
  }
  sp.tail = strdup("}\n</tool_call>");
  jm.json = true;
  float *l = malloc((size_t)n_vocab * sizeof *l);
  series s[NKIND] = {0};
  for (int w = 0; w < walks; w++) {
    walk(&v, &sp, 150, l, s);
    walk(&v, &jm, 150, l, s);
  }
  printf("%-22s %6s  %-32s %s\n", "state", "states", "kc_mask ms: median / mean / max", "per token: median / mean / max");
  for (int k = 0; k < NKIND; k++) {
    if (!s[k].n) continue;
    double r[2][3];
    for (int m = 0; m < 2; m++) {
      double sum = 0;
      for (int i = 0; i < s[k].n; i++) sum += s[k].t[m][i];
      qsort(s[k].t[m], (size_t)s[k].n, sizeof(double), cmpd);
      r[m][0] = s[k].t[m][s[k].n / 2], r[m][1] = sum / s[k].n, r[m][2] = s[k].t[m][s[k].n - 1];
    }
    printf("%-22s %6d  %7.3f / %7.3f / %7.3f        %7.3f / %7.3f / %7.3f\n", KIND[k], s[k].n, r[0][0], r[0][1], r[0][2],
           r[1][0], r[1][1], r[1][2]);
    free(s[k].t[0]), free(s[k].t[1]);
  }
  kc_spec_free(&sp), kn_jschema_free(schema), cJSON_Delete(js), free(l);
  kc_vocab_free(&v), kn_tokenizer_free(tok);
  return 0;
}
