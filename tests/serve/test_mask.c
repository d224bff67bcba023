/* kc_mask (constrained sampling's vocabulary mask) against the definition, token by token: a usable token is kept
 * exactly when the acceptor takes all of its bytes (and a control token never inside JSON). Real vocabularies
 * (../shared/testdata: Qwen2's 151k byte-level BPE, Llama 3's, Llama 2's SentencePiece), acceptor states reached by
 * random walks through forced tool calls (a choice of names, a schema's object, a tail; a call list with a
 * separator) and JSON mode. Also kc_prefix against kc_accepts on every prefix of random tokens. Skips (77) without
 * the test data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/serve.h"
#include "models/gguf.h"
#include "models/text/json_schema.h"
#include "models/text/tokenizer.h"
#include "../check.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

static const char *SCHEMA = "{\"type\":\"object\",\"properties\":{"
                            "\"path\":{\"type\":\"string\"},"
                            "\"title\":{\"type\":\"string\",\"maxLength\":9},"
                            "\"id\":{\"type\":\"string\",\"pattern\":\"^[a-z]+[0-9]*$\"},"
                            "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true},"
                            "\"mode\":{\"enum\":[\"read\",\"write\",\"append\"]},"
                            "\"lines\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":4},"
                            "\"opts\":{\"type\":\"object\",\"properties\":{\"force\":{\"type\":\"boolean\"},"
                            "\"depth\":{\"type\":\"number\"}},\"additionalProperties\":false}},"
                            "\"required\":[\"path\",\"mode\"]}";

/* Every usable token checked alone: the mask kc_mask must give. */
static int ref_mask(const kc_vocab *v, const kc_state *k, float *logits) {
  int taken = 0;
  for (int id = 0; id < v->n; id++) {
    size_t len = 0;
    const char *p = v->ok[id] ? kn_token_piece(v->tok, id, v->ok[id] == 2, &len) : NULL;
    bool ok = p && !(v->ok[id] == 2 && k->phase == KC_JSON) && kc_accepts(k, p, len);
    if (ok) taken++;
    else logits[id] = -INFINITY;
  }
  return taken;
}

/* One random byte the acceptor takes next (printable ASCII more often than not); -1 when it takes none. */
static int next_byte(const kc_state *k) {
  int cand[256], n = 0;
  for (int b = 0; b < 256; b++) {
    unsigned char c = (unsigned char)b;
    if (kc_accepts(k, &c, 1)) cand[n++] = b;
  }
  if (!n) return -1;
  for (int tries = 0; tries < 4; tries++) { /* prefer printable bytes: real model output */
    int b = cand[rnd((uint32_t)n)];
    if (b >= 0x20 && b < 0x7f) return b;
  }
  return cand[rnd((uint32_t)n)];
}

static void compare_at(const kc_vocab *v, const kc_state *k, float *a, float *b, const char *what, size_t at) {
  for (int i = 0; i < v->n; i++) a[i] = b[i] = (float)(i % 7);
  int got = kc_mask(v, k, a), want = ref_mask(v, k, b);
  int diff = -1;
  for (int i = 0; i < v->n && diff < 0; i++)
    if (isinf(a[i]) != isinf(b[i]) || (!isinf(a[i]) && a[i] != b[i])) diff = i;
  size_t len = 0;
  const char *p = diff >= 0 ? kn_token_piece(v->tok, diff, v->ok[diff] == 2, &len) : "";
  CHECK(got == want && diff < 0, "%s after %zu bytes: kc_mask keeps %d tokens, the definition %d; first difference: "
                                 "token %d '%.*s' (%s by kc_mask)",
        what, at, got, want, diff, (int)len, p ? p : "", diff >= 0 && isinf(a[diff]) ? "rejected" : "kept");
}

/* A random walk from the start of spec's output, the mask compared at `checks` points along it. */
static void walk(const kc_vocab *v, const kc_spec *sp, const char *what, int steps, int checks, float *a, float *b) {
  kc_state k;
  kc_init(&k, sp);
  int every = steps / checks > 0 ? steps / checks : 1;
  for (int s = 0; s <= steps; s++) {
    if (s % every == 0 || s == steps) compare_at(v, &k, a, b, what, (size_t)s);
    int c = next_byte(&k);
    if (c < 0) break;
    kc_push(&k, (unsigned char)c);
  }
}

static void check_prefix(const kc_vocab *v, const kc_spec *sp) {
  kc_state k;
  kc_init(&k, sp);
  for (int s = 0; s < 200; s++) {
    int id = (int)rnd((uint32_t)v->n);
    size_t len = 0;
    const char *p = v->ok[id] ? kn_token_piece(v->tok, id, v->ok[id] == 2, &len) : NULL;
    if (p) {
      size_t m = kc_prefix(&k, p, len);
      bool ok = m <= len && kc_accepts(&k, p, m) && (m == len || !kc_accepts(&k, p, m + 1));
      CHECK(ok, "kc_prefix of token %d '%.*s' = %zu after %d bytes", id, (int)len, p, m, s);
    }
    int c = next_byte(&k);
    if (c < 0) break;
    kc_push(&k, (unsigned char)c);
  }
}

static void run_vocab(const char *dir, const char *file) {
  char path[1200], err[256];
  snprintf(path, sizeof path, "%s/models/%s", dir, file);
  kn_gguf *g = kn_gguf_open(path, err, sizeof err);
  CHECK(g != NULL, "open %s: %s", path, err);
  kn_tokenizer *tok = g ? kn_tokenizer_load(g, err, sizeof err) : NULL;
  CHECK(tok != NULL, "tokenizer of %s: %s", file, err);
  if (g) kn_gguf_close(g);
  if (!tok) return;
  kc_vocab v;
  int n_vocab = kn_tokenizer_n_tokens(tok);
  CHECK(!kc_vocab_init(&v, tok, n_vocab), "kc_vocab_init");
  float *a = malloc((size_t)n_vocab * sizeof *a), *b = malloc((size_t)n_vocab * sizeof *b);
  cJSON *js = cJSON_Parse(SCHEMA);
  kn_jschema *schema = kn_jschema_compile(js, 0, err, sizeof err);
  CHECK(schema != NULL, "schema: %s", err);
  const char *names[] = {"read_file", "read_dir", "write_file", "run"};

  kc_spec sp = {0}; /* forced tool call: {"name": "<one of>", "arguments": {...}}\n</tool_call> */
  sp.json = true, sp.schema = schema;
  sp.choices = calloc(4, sizeof *sp.choices);
  for (int i = 0; i < 4; i++) {
    kn_bytes c = {0};
    kn_bytes_printf(&c, "{\"name\": \"%s\", \"arguments\": ", names[i]);
    sp.choices[sp.n_choices++] = c.s;
  }
  sp.tail = strdup("}\n</tool_call>");
  for (int r = 0; r < 6; r++) walk(&v, &sp, "tool call", 120, 6, a, b);
  check_prefix(&v, &sp);

  free(sp.tail), sp.tail = strdup("}]"), sp.sep = strdup("}, {\"name\": \""), sp.skip = 10; /* a call list */
  for (int r = 0; r < 4; r++) walk(&v, &sp, "call list", 200, 6, a, b);
  check_prefix(&v, &sp);
  kc_spec_free(&sp);

  kc_spec jm = {0}; /* JSON mode: any object */
  jm.json = true;
  for (int r = 0; r < 4; r++) walk(&v, &jm, "json mode", 120, 6, a, b);
  check_prefix(&v, &jm);

  kn_jschema_free(schema), cJSON_Delete(js);
  free(a), free(b);
  kc_vocab_free(&v);
  kn_tokenizer_free(tok);
}

int main(void) {
  const char *dir = getenv("KILN_TESTDATA");
  char probe[1200];
  snprintf(probe, sizeof probe, "%s/models/tiny-qwen2-Q4_K_M.gguf", dir ? dir : "../shared/testdata");
  FILE *f = fopen(probe, "rb");
  if (!f) return printf("skip: %s not found (the test data is in ../shared/testdata)\n", probe), 77;
  fclose(f);
  if (!dir) dir = "../shared/testdata";
  run_vocab(dir, "tiny-qwen2-Q4_K_M.gguf");
  run_vocab(dir, "tiny-llama3-Q4_K_M.gguf");
  run_vocab(dir, "tiny-llama-Q4_K_M.gguf");
  return check_summary();
}
