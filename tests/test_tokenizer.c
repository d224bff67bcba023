/* tests/test_tokenizer.c: the tokenizers against the reference's test vectors and recorded prompts.
 * Exact id matches on ../shared/testdata (qwen2 and llama-spm vectors, the refs' tokenize.json files and prompts),
 * special tokens, error messages, speed; the random-input checks are in tokenizer_random.c. Prints one line per
 * failure and "N passed, M failed"; exits 77 when the test data is absent. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "models/gguf.h"
#include "models/text/tokenizer.h"
#include "tokenizer_test.h"

static int n_pass, n_fail;
char testdata[1024];

void check(bool ok, const char *fmt, ...) {
  if (ok) {
    n_pass++;
    return;
  }
  n_fail++;
  va_list ap;
  va_start(ap, fmt);
  printf("FAIL: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  long n = -1;
  if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
  if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
      free(buf);
      buf = NULL;
    } else {
      buf[n] = 0;
      *len = (size_t)n;
    }
  }
  fclose(f);
  return buf;
}

static void td_path(char *out, size_t cap, const char *rel) {
  if (snprintf(out, cap, "%s/%s", testdata, rel) >= (int)cap) out[0] = 0; /* too long: opening "" fails, named */
}

/* ---- loading (models/gguf.h) ---- */

kn_gguf *open_gguf(const char *rel) {
  char path[1200], err[256];
  td_path(path, sizeof path, rel);
  kn_gguf *g = kn_gguf_open(path, err, sizeof err);
  check(g != NULL, "open %s: %s", rel, err);
  return g;
}

static kn_tokenizer *load_tok(const char *rel) {
  kn_gguf *g = open_gguf(rel);
  if (!g) return NULL;
  char err[256];
  kn_tokenizer *t = kn_tokenizer_load(g, err, sizeof err);
  check(t != NULL, "tokenizer of %s: %s", rel, err);
  kn_gguf_close(g);
  return t;
}

/* ---- helpers ---- */

void ids_str(const int32_t *ids, size_t n, char *out, size_t cap) {
  size_t o = 0;
  out[0] = 0;
  for (size_t i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%s%d", i ? " " : "", ids[i]);
}

bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
  return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

void show_text(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 8 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n')
      o += (size_t)snprintf(out + o, cap - o, "\\n");
    else if (c == '\t')
      o += (size_t)snprintf(out + o, cap - o, "\\t");
    else
      out[o++] = (char)c;
  }
  out[o] = 0;
}

/* decode(encode(x)) == x: SentencePiece's dummy space is dropped again, control tokens rendered. */
void check_roundtrip(const kn_tokenizer *t, const char *what, const char *text, size_t len, bool parse_special) {
  int32_t *ids;
  size_t n, dl = 0;
  char err[256], shown[600];
  if (kn_tokenize(t, text, len, false, parse_special, &ids, &n, err, sizeof err) != 0) {
    check(false, "%s round trip: tokenize: %s", what, err);
    return;
  }
  char *back = kn_detokenize(t, ids, n, KN_DECODE_SPECIAL | KN_DECODE_STRIP_SPACE, &dl, err, sizeof err);
  show_text(text, len < 200 ? len : 200, shown, sizeof shown);
  check(back && dl == len && memcmp(back, text, len) == 0, "%s round trip of \"%s\"", what, shown);
  free(back);
  free(ids);
}

/* ---- the reference's 47 vectors per vocabulary ---- */

static void test_vectors(const kn_tokenizer *t, const char *name, bool roundtrip) {
  char p1[1200], p2[1200];
  snprintf(p1, sizeof p1, "%s/tokenizer/ggml-vocab-%s.gguf.inp", testdata, name);
  snprintf(p2, sizeof p2, "%s/tokenizer/ggml-vocab-%s.gguf.out", testdata, name);
  size_t ni, no;
  char *inp = slurp(p1, &ni), *out = slurp(p2, &no);
  check(inp && out, "%s vectors: cannot read %s / %s", name, p1, p2);
  if (!inp || !out) {
    free(inp);
    free(out);
    return;
  }
  const char *sep = "\n__ggml_vocab_test__\n";
  char *p = inp, *o = out;
  int count = 0, ok = 0;
  for (;;) {
    char *e = strstr(p, sep), *oe = strchr(o, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p), olen = oe ? (size_t)(oe - o) : strlen(o);
    int32_t want[1024];
    size_t nw = 0;
    for (char *q = o; q < o + olen && nw < 1024;) {
      char *end;
      long v = strtol(q, &end, 10);
      if (end == q) break;
      want[nw++] = (int32_t)v;
      q = end;
    }
    int32_t *ids;
    size_t n;
    char err[256], got[4096], exp[4096], shown[400];
    int rc = kn_tokenize(t, p, len, false, false, &ids, &n, err, sizeof err);
    show_text(p, len < 120 ? len : 120, shown, sizeof shown);
    if (rc != 0)
      check(false, "%s vector %d \"%s\": %s", name, count, shown, err);
    else {
      ids_str(ids, n, got, sizeof got);
      ids_str(want, nw, exp, sizeof exp);
      bool same = ids_eq(ids, n, want, nw);
      ok += same;
      check(same, "%s vector %d \"%s\": want [%s] got [%s]", name, count, shown, exp, got);
      free(ids);
    }
    if (roundtrip) check_roundtrip(t, name, p, len, false);
    count++;
    if (!e) break;
    p = e + strlen(sep);
    o = oe ? oe + 1 : o + olen;
  }
  printf("%s: %d/%d vectors match\n", name, ok, count);
  free(inp);
  free(out);
}

/* ---- refs/<arch>.tokenize.json and refs/<model>.<prompt>.json ---- */

static bool json_ids(const cJSON *arr, int32_t *out, size_t cap, size_t *n) {
  *n = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, arr) {
    if (!cJSON_IsNumber(x) || *n >= cap) return false;
    out[(*n)++] = (int32_t)x->valuedouble;
  }
  return true;
}

static void check_case(const kn_tokenizer *t, const char *what, const char *text, bool add_special, bool parse_special,
                       const cJSON *want_arr) {
  int32_t want[4096], *ids;
  size_t nw, n;
  char err[256], got[8192], exp[8192];
  if (!json_ids(want_arr, want, 4096, &nw)) {
    check(false, "%s: malformed ids", what);
    return;
  }
  if (kn_tokenize(t, text, strlen(text), add_special, parse_special, &ids, &n, err, sizeof err) != 0) {
    check(false, "%s: %s", what, err);
    return;
  }
  ids_str(ids, n, got, sizeof got);
  ids_str(want, nw, exp, sizeof exp);
  check(ids_eq(ids, n, want, nw), "%s: want [%s] got [%s]", what, exp, got);
  free(ids);
}

static void test_tokenize_json(const char *arch, const kn_tokenizer *t) {
  char path[1200];
  snprintf(path, sizeof path, "%s/refs/%s.tokenize.json", testdata, arch);
  size_t len;
  char *s = slurp(path, &len);
  cJSON *j = s ? cJSON_Parse(s) : NULL;
  check(j != NULL, "cannot read or parse %s", path);
  const cJSON *c;
  int n = 0;
  cJSON_ArrayForEach(c, j) {
    const cJSON *text = cJSON_GetObjectItem(c, "text"), *ids = cJSON_GetObjectItem(c, "ids");
    const cJSON *ps = cJSON_GetObjectItem(c, "parse_special"), *as = cJSON_GetObjectItem(c, "add_special");
    char what[256];
    snprintf(what, sizeof what, "%s.tokenize.json[%s]", arch, c->string);
    if (!cJSON_IsString(text) || !cJSON_IsArray(ids)) {
      check(false, "%s: no text/ids", what);
      continue;
    }
    /* the refs were made with add_special=true unless a case says otherwise */
    check_case(t, what, text->valuestring, as ? cJSON_IsTrue(as) : true, ps ? cJSON_IsTrue(ps) : false, ids);
    n++;
  }
  printf("%s.tokenize.json: %d cases\n", arch, n);
  cJSON_Delete(j);
  free(s);
}

/* Tokenizers for the model files named in refs, loaded once each. */
struct tok_cache {
  char name[128];
  kn_tokenizer *t;
};
static struct tok_cache cache[16];
static int n_cache;

static kn_tokenizer *tok_for_model(const char *file) {
  for (int i = 0; i < n_cache; i++)
    if (strcmp(cache[i].name, file) == 0) return cache[i].t;
  if (n_cache == 16) return NULL;
  char rel[256];
  snprintf(rel, sizeof rel, "models/%s", file);
  snprintf(cache[n_cache].name, sizeof cache[n_cache].name, "%s", file);
  cache[n_cache].t = load_tok(rel);
  return cache[n_cache++].t;
}

static void test_prompt_refs(void) {
  char dir[1200];
  snprintf(dir, sizeof dir, "%s/refs", testdata);
  DIR *d = opendir(dir);
  check(d != NULL, "cannot open %s", dir);
  if (!d) return;
  struct dirent *e;
  int n = 0, skipped = 0;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0 || strstr(e->d_name, ".tokenize.") ||
        strstr(e->d_name, ".config."))
      continue;
    char path[1600];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    char *s = slurp(path, &len);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    const cJSON *model = cJSON_GetObjectItem(j, "model"), *prompt = cJSON_GetObjectItem(j, "prompt");
    const cJSON *ids = cJSON_GetObjectItem(j, "prompt_tokens"), *set = cJSON_GetObjectItem(j, "settings");
    if (!cJSON_IsString(model) || !cJSON_IsArray(ids))
      check(false, "%s: no model/prompt_tokens", e->d_name);
    else if (!cJSON_IsString(prompt))
      skipped++; /* driven by token ids, no text to encode */
    else {
      char file[256];
      snprintf(file, sizeof file, "%s", model->valuestring);
      char *sp = strchr(file, ' '); /* "x.gguf dequantized to F32" */
      if (sp) *sp = 0;
      kn_tokenizer *t = tok_for_model(file);
      if (t)
        check_case(t, e->d_name, prompt->valuestring, cJSON_IsTrue(cJSON_GetObjectItem(set, "add_special")),
                   cJSON_IsTrue(cJSON_GetObjectItem(set, "parse_special")), ids);
      n++;
    }
    cJSON_Delete(j);
    free(s);
  }
  closedir(d);
  printf("refs prompts: %d checked, %d without prompt text (token-id driven) skipped\n", n, skipped);
}

/* ---- special tokens, end of generation, errors ---- */

static bool has_id(const kn_tokenizer *t, const char *text, bool parse_special, int32_t id) {
  int32_t *ids;
  size_t n;
  char err[256];
  bool found = false;
  if (kn_tokenize(t, text, strlen(text), false, parse_special, &ids, &n, err, sizeof err) != 0) return false;
  for (size_t i = 0; i < n; i++) found |= ids[i] == id;
  free(ids);
  return found;
}

static void test_specials_qwen(const kn_tokenizer *t) {
  check(kn_token_special(t, "<|im_start|>") == 151644, "qwen2: <|im_start|> is 151644");
  check(kn_token_special(t, "<tool_call>") == 151657, "qwen2: <tool_call> is 151657");
  check(kn_token_special(t, "Hello") == -1, "qwen2: 'Hello' is not special");
  check(kn_token_lookup(t, "Hello", 5) == 9707, "qwen2: lookup 'Hello' = 9707");
  check(kn_token_is_eog(t, 151645), "qwen2: <|im_end|> ends generation");
  check(kn_token_is_eog(t, 151643), "qwen2: <|endoftext|> ends generation");
  check(!kn_token_is_eog(t, 151644), "qwen2: <|im_start|> does not end generation");
  check(!kn_token_is_eog(t, 9707), "qwen2: 'Hello' does not end generation");
  check(kn_token_eos(t) == 151645 && kn_token_bos(t) == 151643 && !kn_tokenizer_add_bos(t), "qwen2: bos/eos/add_bos");
  check(!has_id(t, "a<|im_start|>b", false, 151644), "qwen2: control text is not parsed without parse_special");
  check(has_id(t, "a<|im_start|>b", true, 151644), "qwen2: control text is parsed with parse_special");
  check(has_id(t, "x<tool_call>y", false, 151657), "qwen2: user-defined <tool_call> is always a token");
  { /* plain ranges: control text inside stays text, the rest is parsed, fragments encode across range edges */
    const char *s = "<|im_start|>user\nhi <|im_end|> there<|im_end|>";
    kn_text_span plain[] = {{17, 17}}; /* "hi <|im_end|> the" */
    int32_t *ids, *whole;
    size_t n, nw;
    char err[256];
    int rc = kn_tokenize_plain(t, s, strlen(s), false, plain, 1, &ids, &n, err, sizeof err);
    int count = 0;
    for (size_t i = 0; !rc && i < n; i++) count += ids[i] == 151645;
    check(!rc && n > 2 && ids[0] == 151644 && ids[n - 1] == 151645 && count == 1,
          "qwen2: plain range keeps a typed <|im_end|> as text and parses the template's (%d found)", count);
    /* without control text in the ranges, the ranges change nothing */
    const char *s2 = "<|im_start|>user\n}\n\nWhat is it?<|im_end|>";
    kn_text_span p2[] = {{17, 2}, {20, 11}};
    free(ids);
    rc = kn_tokenize_plain(t, s2, strlen(s2), false, p2, 2, &ids, &n, err, sizeof err) ||
         kn_tokenize(t, s2, strlen(s2), false, true, &whole, &nw, err, sizeof err);
    check(!rc && n == nw && !memcmp(ids, whole, n * sizeof *ids), "qwen2: plain ranges encode like one pass");
    free(ids), free(whole);
    kn_text_span bad[] = {{5, 3}, {4, 1}};
    check(kn_tokenize_plain(t, s, strlen(s), false, bad, 2, &ids, &n, err, sizeof err) == -1,
          "qwen2: plain ranges out of order are an error");
  }
  size_t l;
  const char *p = kn_token_piece(t, 151645, false, &l);
  check(p && l == 0, "qwen2: control piece is empty without special");
  p = kn_token_piece(t, 151645, true, &l);
  check(p && l == 10 && memcmp(p, "<|im_end|>", 10) == 0, "qwen2: control piece with special");
  check(kn_token_piece(t, -1, true, &l) == NULL && kn_token_piece(t, 1 << 30, true, &l) == NULL,
        "qwen2: out-of-range piece is NULL");
}

static void test_specials_llama(const kn_tokenizer *t) {
  check(kn_token_bos(t) == 1 && kn_token_eos(t) == 2 && kn_tokenizer_add_bos(t), "llama: bos/eos/add_bos");
  check(kn_token_is_eog(t, 2) && !kn_token_is_eog(t, 1), "llama: </s> ends generation, <s> does not");
  check(has_id(t, "Hello</s>", true, 2), "llama: </s> parsed with parse_special");
  size_t l;
  char err[256];
  int32_t ids[] = {1, 15043, 3186};
  char *s = kn_detokenize(t, ids, 3, KN_DECODE_SKIP_BOS | KN_DECODE_STRIP_SPACE, &l, err, sizeof err);
  check(s && strcmp(s, "Hello world") == 0, "llama: decode [1 15043 3186] = 'Hello world' (got '%s')", s ? s : err);
  free(s);
  int32_t bad[] = {5, 40000};
  s = kn_detokenize(t, bad, 2, 0, &l, err, sizeof err);
  check(!s && strstr(err, "40000"), "llama: decode of an out-of-range id fails naming it (%s)", err);
  free(s);
}

static void expect_error(const kn_vocab_desc *d, const char *key, const char *what) {
  char err[256] = "";
  kn_tokenizer *t = kn_tokenizer_create(d, err, sizeof err);
  check(!t && strstr(err, key), "%s: want an error naming %s, got '%s'", what, key, err);
  kn_tokenizer_free(t);
}

static void test_errors(void) {
  static const char *toks[256 + 2];
  static char chars[256][4];
  for (int b = 0; b < 256; b++) { /* a complete byte-level alphabet */
    size_t l = gpt2_char((unsigned char)b, chars[b]);
    chars[b][l] = 0;
    toks[b] = chars[b];
  }
  toks[256] = "ab";
  const char *merges[] = {"a b"}, *bad_merges[] = {"ab"};
  kn_vocab_desc d;
  kn_vocab_desc_init(&d);
  d.tokens = toks;
  d.n_tokens = 257;
  expect_error(&d, "tokenizer.ggml.model", "no model");
  d.model = "bert";
  expect_error(&d, "tokenizer.ggml.model", "unsupported model");
  d.model = "gpt2";
  expect_error(&d, "tokenizer.ggml.merges", "no merges");
  d.merges = bad_merges;
  d.n_merges = 1;
  expect_error(&d, "tokenizer.ggml.merges[0]", "malformed merge");
  d.merges = merges;
  d.pre = "no-such-pre";
  expect_error(&d, "tokenizer.ggml.pre", "unknown pre-tokenizer");
  d.pre = "qwen2";
  d.add_bos = 1;
  expect_error(&d, "tokenizer.ggml.bos_token_id", "add_bos without bos");
  d.bos = 5000;
  expect_error(&d, "tokenizer.ggml.bos_token_id", "bos out of range");
  d.bos = 256;
  toks[257] = "ab";
  d.n_tokens = 258;
  expect_error(&d, "tokenizer.ggml.tokens[257]", "duplicate token");
  d.n_tokens = 257;
  char err[256];
  kn_tokenizer *t = kn_tokenizer_create(&d, err, sizeof err);
  check(t != NULL, "tiny vocabulary: %s", err);
  if (t) {
    int32_t *ids;
    size_t n;
    check(kn_tokenize(t, "abab", 4, true, false, &ids, &n, err, sizeof err) == 0 && n == 3 && ids[0] == 256 &&
              ids[1] == 256 && ids[2] == 256,
          "tiny vocabulary: 'abab' with BOS = [256 256 256]");
    free(ids);
    kn_tokenizer_free(t);
  }
  /* Llama 3's pre-tokenizer: digits go in groups of three, and a piece that is a token is used whole */
  toks[257] = "123";
  d.n_tokens = 258;
  d.n_merges = 0;
  d.pre = "llama-bpe";
  t = kn_tokenizer_create(&d, err, sizeof err);
  check(t != NULL, "tiny llama-bpe vocabulary: %s", err);
  if (t) {
    int32_t *ids;
    size_t n;
    check(kn_tokenize(t, "12345", 5, false, false, &ids, &n, err, sizeof err) == 0 && n == 3 && ids[0] == 257 &&
              ids[1] == '4' && ids[2] == '5',
          "tiny llama-bpe vocabulary: '12345' = [257 52 53]");
    free(ids);
    kn_tokenizer_free(t);
  }
}

/* GGUF files written in memory with one key broken at a time: the error must name that key. */
static void gguf_case(void (*edit)(kn_gguf_writer *), const char *key, const char *what) {
  static const char *toks[] = {"<unk>",
                               "<s>",
                               "</s>",
                               "\xE2\x96\x81"
                               "a",
                               "a",
                               "b"};
  float scores[] = {0, 0, 0, -1, -2, -3};
  int32_t types[] = {2, 3, 3, 1, 1, 1};
  kn_gguf_writer *w = kn_gguf_writer_new(0);
  char err[256] = "";
  void *buf = NULL;
  size_t size = 0;
  int rc = kn_gguf_set_str(w, "tokenizer.ggml.model", "llama") |
           kn_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 6) |
           kn_gguf_set_arr(w, "tokenizer.ggml.scores", KN_GGUF_F32, scores, 6) |
           kn_gguf_set_arr(w, "tokenizer.ggml.token_type", KN_GGUF_I32, types, 6) |
           kn_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
  if (edit) edit(w);
  rc |= kn_gguf_write_mem(w, &buf, &size, NULL, NULL, err, sizeof err);
  kn_gguf *g = rc == 0 ? kn_gguf_open_mem(buf, size, what, err, sizeof err) : NULL;
  check(g != NULL, "%s: writing the test GGUF: %s", what, err);
  kn_tokenizer *t = g ? kn_tokenizer_load(g, err, sizeof err) : NULL;
  if (key)
    check(!t && strstr(err, key), "%s: want an error naming %s, got '%s'", what, key, t ? "(loaded)" : err);
  else {
    int32_t *ids = NULL;
    size_t n = 0;
    check(t && kn_tokenize(t, "ab", 2, true, false, &ids, &n, err, sizeof err) == 0 && n == 3 && ids[0] == 1 &&
              ids[1] == 3 && ids[2] == 5,
          "%s: 'ab' = [1 3 5]", what);
    free(ids);
  }
  kn_tokenizer_free(t);
  if (g) kn_gguf_close(g);
  free(buf);
  kn_gguf_writer_free(w);
}

static void no_model(kn_gguf_writer *w) { kn_gguf_remove(w, "tokenizer.ggml.model"); }
static void no_tokens(kn_gguf_writer *w) { kn_gguf_remove(w, "tokenizer.ggml.tokens"); }
static void int_tokens(kn_gguf_writer *w) {
  int32_t v[6] = {0};
  kn_gguf_set_arr(w, "tokenizer.ggml.tokens", KN_GGUF_I32, v, 6);
}
static void short_scores(kn_gguf_writer *w) {
  float v[2] = {0};
  kn_gguf_set_arr(w, "tokenizer.ggml.scores", KN_GGUF_F32, v, 2);
}
static void float_types(kn_gguf_writer *w) {
  float v[6] = {0};
  kn_gguf_set_arr(w, "tokenizer.ggml.token_type", KN_GGUF_F32, v, 6);
}
static void str_bos(kn_gguf_writer *w) { kn_gguf_set_str(w, "tokenizer.ggml.bos_token_id", "1"); }
static void big_eos(kn_gguf_writer *w) { kn_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 99); }
static void str_add_bos(kn_gguf_writer *w) { kn_gguf_set_str(w, "tokenizer.ggml.add_bos_token", "yes"); }
static void int_model(kn_gguf_writer *w) { kn_gguf_set_u32(w, "tokenizer.ggml.model", 1); }
static void gpt2_no_merges(kn_gguf_writer *w) { kn_gguf_set_str(w, "tokenizer.ggml.model", "gpt2"); }

static void test_gguf_errors(void) {
  gguf_case(NULL, NULL, "valid tiny GGUF vocabulary");
  gguf_case(no_model, "tokenizer.ggml.model", "model missing");
  gguf_case(int_model, "tokenizer.ggml.model", "model not a string");
  gguf_case(no_tokens, "tokenizer.ggml.tokens", "tokens missing");
  gguf_case(int_tokens, "tokenizer.ggml.tokens", "tokens not strings");
  gguf_case(short_scores, "tokenizer.ggml.scores", "scores too short");
  gguf_case(float_types, "tokenizer.ggml.token_type", "token types not integers");
  gguf_case(str_bos, "tokenizer.ggml.bos_token_id", "bos not an integer");
  gguf_case(big_eos, "tokenizer.ggml.eos_token_id", "eos out of range");
  gguf_case(str_add_bos, "tokenizer.ggml.add_bos_token", "add_bos not a bool");
  gguf_case(gpt2_no_merges, "tokenizer.ggml.merges", "gpt2 without merges");
}

/* ---- speed ---- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void time_encode(const kn_tokenizer *t, const char *name, const char *text, size_t len, const char *what) {
  int32_t *ids = NULL;
  size_t n = 0;
  char err[256];
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    free(ids);
    double t0 = now_ms();
    int rc = kn_tokenize(t, text, len, false, false, &ids, &n, err, sizeof err);
    double dt = now_ms() - t0;
    if (rc != 0) {
      check(false, "%s timing: %s", name, err);
      return;
    }
    if (dt < best) best = dt;
  }
  printf("%s: %s: %zu bytes -> %zu tokens in %.2f ms\n", name, what, len, n, best);
  check(n >= 16000 && best < 1000.0, "%s: a 16k-token text must encode in well under a second", name);
  free(ids);
}

static void test_speed(const kn_tokenizer *t, const char *name, const char *vec) {
  char path[1200];
  size_t ni;
  snprintf(path, sizeof path, "%s/tokenizer/ggml-vocab-%s.gguf.inp", testdata, vec);
  char *inp = slurp(path, &ni);
  if (!inp) return;
  size_t reps = 46000 / (ni ? ni : 1) + 1, len = 0; /* about 16k tokens */
  char *big = malloc(reps * ni + 1);
  for (size_t r = 0; r < reps; r++) memcpy(big + len, inp, ni), len += ni;
  time_encode(t, name, big, len, "test vectors repeated");
  len = 0; /* varied text: words repeat less, so the word cache helps less */
  char *rt = realloc(big, 200000);
  big = rt;
  while (len < 37000) len += random_text(big + len, 200000 - len);
  time_encode(t, name, big, len, "random text");
  free(big);
  free(inp);
}

int main(void) {
  const char *env = getenv("KILN_TESTDATA");
  snprintf(testdata, sizeof testdata, "%s", env && env[0] ? env : "../shared/testdata");
  struct stat st;
  if (stat(testdata, &st) != 0 || !S_ISDIR(st.st_mode)) {
    printf("SKIP: test data directory %s is absent (set KILN_TESTDATA)\n", testdata);
    return 77;
  }
  test_errors();
  test_gguf_errors();

  kn_tokenizer *qwen2 = tok_for_model("tiny-qwen2-Q4_K_M.gguf");
  kn_tokenizer *spm = load_tok("tokenizer/ggml-vocab-llama-spm.gguf");
  if (qwen2) {
    test_vectors(qwen2, "qwen2", true);
    test_specials_qwen(qwen2);
    test_streaming(qwen2, "qwen2");
    test_random_stream(qwen2, "qwen2");
    test_random_roundtrip(qwen2, "qwen2");
    test_naive_bpe(qwen2, "models/tiny-qwen2-Q4_K_M.gguf");
    test_speed(qwen2, "qwen2", "qwen2");
  }
  if (spm) {
    test_vectors(spm, "llama-spm", true);
    test_specials_llama(spm);
    test_streaming(spm, "llama-spm");
    test_random_stream(spm, "llama-spm");
    test_random_roundtrip(spm, "llama-spm");
    test_naive_spm(spm);
    test_speed(spm, "llama-spm", "llama-spm");
  }
  /* Llama 3's vocabulary and Gemma 3's live in their tiny models */
  kn_tokenizer *llama3 = tok_for_model("tiny-llama3-Q4_K_M.gguf"), *gemma3 = tok_for_model("tiny-gemma3-Q4_K_M.gguf");
  if (llama3) test_vectors(llama3, "llama-bpe", true);
  if (gemma3) test_vectors(gemma3, "gemma3", true);

  kn_tokenizer *llama = tok_for_model("tiny-llama-Q4_K_M.gguf"), *qwen3 = tok_for_model("tiny-qwen3-Q4_K_M.gguf");
  if (llama) test_tokenize_json("tiny-llama", llama);
  if (qwen2) test_tokenize_json("tiny-qwen2", qwen2);
  if (qwen3) test_tokenize_json("tiny-qwen3", qwen3);
  if (llama3) test_tokenize_json("tiny-llama3", llama3);
  if (gemma3) test_tokenize_json("tiny-gemma3", gemma3);
  test_prompt_refs();

  kn_tokenizer_free(spm);
  for (int i = 0; i < n_cache; i++) kn_tokenizer_free(cache[i].t);
  printf("%d passed, %d failed\n", n_pass, n_fail);
  return n_fail ? 1 : 0;
}
