/* tests/tokenizer_random.c: tokenizer checks on random inputs, each against a plain reference: the streaming
 * detokenizer against a one-shot decode, decode(encode(x)) == x, and the heap-based BPE / SentencePiece merges
 * against textbook O(n^2) merge loops. Part of the test_tokenizer program. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "models/gguf.h"
#include "models/text/tokenizer.h"
#include "tokenizer_test.h"

/* ---- streaming detokenizer ---- */

/* Plain reference: one-shot decode, then invalid UTF-8 replaced byte by byte with U+FFFD. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  if (s[0] < 0x80) return 1;
  size_t k = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
  if (k == 0 || n < k) return 0;
  unsigned lo = s[0] == 0xE0 ? 0xA0 : s[0] == 0xF0 ? 0x90 : 0x80, hi = s[0] == 0xED ? 0x9F : s[0] == 0xF4 ? 0x8F : 0xBF;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < k; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return k;
}

static char *sanitized(const char *s, size_t n, size_t *out_len) {
  char *o = malloc(3 * n + 1);
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq((const unsigned char *)s + i, n - i);
    if (k == 0) {
      memcpy(o + m, "\xEF\xBF\xBD", 3);
      m += 3;
      i++;
    } else {
      memcpy(o + m, s + i, k);
      m += k;
      i += k;
    }
  }
  *out_len = m;
  return o;
}

static bool stream_matches(const kn_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, size_t *max_chunks) {
  kn_detok *d = kn_detok_new(t, flags);
  size_t cap = 1 << 16, m = 0, dl, rl;
  char *got = malloc(cap), err[128];
  bool ok = d && got;
  for (size_t i = 0; ok && i < n; i++) {
    const char *o;
    size_t l;
    ok = kn_detok_push(d, ids[i], &o, &l) == 0 && m + l < cap;
    if (ok) {
      size_t s2;
      char *chk = sanitized(o, l, &s2); /* each chunk must itself be valid UTF-8 */
      ok = s2 == l && memcmp(chk, o, l) == 0;
      free(chk);
      memcpy(got + m, o, l);
      m += l;
      if (l && max_chunks) (*max_chunks)++;
    }
  }
  if (ok) {
    const char *o;
    size_t l;
    kn_detok_flush(d, &o, &l);
    ok = m + l < cap;
    if (ok) memcpy(got + m, o, l), m += l;
  }
  char *whole = ok ? kn_detokenize(t, ids, n, flags, &dl, err, sizeof err) : NULL;
  char *ref = whole ? sanitized(whole, dl, &rl) : NULL;
  ok = ok && ref && rl == m && memcmp(ref, got, m) == 0;
  free(ref);
  free(whole);
  free(got);
  kn_detok_free(d);
  return ok;
}

void test_streaming(const kn_tokenizer *t, const char *name) {
  const char *text = "emoji \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80 and \xE4\xBD\xA0\xE5\xA5\xBD, caf\xC3\xA9";
  int32_t *ids;
  size_t n;
  char err[256];
  if (kn_tokenize(t, text, strlen(text), false, false, &ids, &n, err, sizeof err) != 0) {
    check(false, "%s streaming: %s", name, err);
    return;
  }
  /* the llama emoji spans several tokens; pushing them one by one must hold the partial bytes back */
  kn_detok *d = kn_detok_new(t, KN_DECODE_STRIP_SPACE);
  char acc[256];
  size_t m = 0;
  bool held = false;
  for (size_t i = 0; i < n; i++) {
    const char *o;
    size_t l, pl;
    kn_token_piece(t, ids[i], false, &pl);
    check(kn_detok_push(d, ids[i], &o, &l) == 0, "%s streaming push", name);
    if (l < pl) held = true;
    if (m + l < sizeof acc) memcpy(acc + m, o, l), m += l;
  }
  const char *o;
  size_t l;
  kn_detok_flush(d, &o, &l);
  check(l == 0, "%s streaming: nothing should be left at the flush", name);
  check(m == strlen(text) && memcmp(acc, text, m) == 0, "%s streaming: text differs", name);
  check(held, "%s streaming: no token was split inside a UTF-8 character (test text too easy)", name);
  kn_detok_free(d);
  free(ids);
  /* a lone lead byte at the end becomes U+FFFD at the flush */
  int32_t b0 = -1;
  for (int32_t i = 0; i < kn_tokenizer_n_tokens(t) && b0 < 0; i++) {
    size_t pl;
    const char *p = kn_token_piece(t, i, false, &pl);
    if (pl == 1 && (unsigned char)p[0] == 0xF0) b0 = i;
  }
  check(b0 >= 0, "%s: no token for the single byte 0xF0", name);
  if (b0 >= 0) {
    d = kn_detok_new(t, 0);
    kn_detok_push(d, b0, &o, &l);
    check(l == 0, "%s: a lone 0xF0 must be held", name);
    kn_detok_flush(d, &o, &l);
    check(l == 3 && memcmp(o, "\xEF\xBF\xBD", 3) == 0, "%s: held 0xF0 must flush as U+FFFD", name);
    kn_detok_free(d);
  }
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
uint32_t rnd(uint32_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

void test_random_stream(const kn_tokenizer *t, const char *name) {
  int ok = 0;
  for (int trial = 0; trial < 300; trial++) {
    int32_t ids[40];
    size_t n = 1 + rnd(40);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)rnd((uint32_t)kn_tokenizer_n_tokens(t));
    bool r = stream_matches(t, ids, n, trial & 1 ? KN_DECODE_SPECIAL : 0, NULL);
    ok += r;
    check(r, "%s random stream %d: streamed text != sanitized one-shot decode", name, trial);
  }
  printf("%s: %d/300 random token streams match the one-shot decode\n", name, ok);
}

/* ---- random text: round trips and plain O(n^2) merge references ---- */

static const char *const PIECES[] = {"the",
                                     " quick",
                                     " brown",
                                     "Fox",
                                     " jumps",
                                     "over",
                                     " ",
                                     "  ",
                                     "   ",
                                     "\n",
                                     "\n\n",
                                     "\t",
                                     " \n ",
                                     "0",
                                     "42",
                                     "1234567",
                                     "3.14",
                                     ",",
                                     ".",
                                     "!",
                                     "?",
                                     "'s",
                                     "'LL",
                                     " don't",
                                     "(",
                                     ")",
                                     "{",
                                     "}",
                                     "=>",
                                     "+=",
                                     "//",
                                     "#",
                                     "caf\xC3\xA9",
                                     " na\xC3\xAFve",
                                     "\xC3\x9F",
                                     "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82",
                                     "\xE4\xBD\xA0\xE5\xA5\xBD",
                                     "\xE4\xB8\x96\xE7\x95\x8C",
                                     "\xF0\x9F\xA6\x99",
                                     "\xF0\x9F\x9A\x80",
                                     "\xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F",
                                     "\xE2\x9C\x85",
                                     "\xE1\x9E\x80\xE1\x9E\xB6",
                                     "\xC2\xA0",
                                     "\xE3\x80\x80",
                                     "<|im_end|>",
                                     "<s>",
                                     "\xE2\x96\x81",
                                     "x",
                                     "Q",
                                     "zz"};

size_t random_text(char *out, size_t cap) {
  size_t n = 0, k = 1 + rnd(24);
  for (size_t i = 0; i < k; i++) {
    const char *p = PIECES[rnd(sizeof PIECES / sizeof PIECES[0])];
    size_t l = strlen(p);
    if (n + l >= cap) break;
    memcpy(out + n, p, l);
    n += l;
  }
  out[n] = 0;
  return n;
}

/* SentencePiece cannot round-trip U+2581 (it is its space mark), and puts a space after every parsed special token,
 * as the reference does; those texts are left out for it. */
void test_random_roundtrip(const kn_tokenizer *t, const char *name) {
  bool spm = kn_tokenizer_kind(t) == KN_TOK_SPM;
  int n_run = 0;
  for (int trial = 0; trial < 300; trial++) {
    char text[512];
    size_t n = random_text(text, sizeof text);
    if (spm && strstr(text, "\xE2\x96\x81")) continue;
    check_roundtrip(t, name, text, n, !spm && (trial & 1));
    n_run++;
  }
  printf("%s: %d random round trips\n", name, n_run);
}

/* GPT-2's byte -> character table, written out independently of models/text/bpe.c. */
size_t gpt2_char(unsigned char b, char *o) {
  unsigned c = b, extra = 0;
  bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  if (!printable) {
    for (unsigned x = 0; x < b; x++)
      if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) extra++;
    c = 256 + extra;
  }
  if (c < 0x80) {
    o[0] = (char)c;
    return 1;
  }
  o[0] = (char)(0xC0 | (c >> 6));
  o[1] = (char)(0x80 | (c & 0x3F));
  return 2;
}

struct rank_entry {
  char *key;
  int rank;
  UT_hash_handle hh;
};

/* dst = a followed by b, when it fits */
static bool join(char *dst, size_t cap, const char *a, const char *sep, const char *b) {
  size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
  if (la + ls + lb + 1 > cap) return false;
  memmove(dst, a, la);
  memcpy(dst + la, sep, ls);
  memcpy(dst + la + ls, b, lb + 1);
  return true;
}

/* Textbook BPE on one pre-tokenized word: repeatedly merge the lowest-ranked adjacent pair (leftmost first). */
static size_t naive_bpe(const kn_tokenizer *t, struct rank_entry *ranks, const char *word, int32_t *out) {
  char sym[64][96];
  size_t n = 0;
  for (size_t i = 0; word[i] && n < 64; i++) {
    size_t l = gpt2_char((unsigned char)word[i], sym[n]);
    sym[n++][l] = 0;
  }
  for (;;) {
    int best = -1, best_rank = 0;
    for (size_t i = 0; i + 1 < n; i++) {
      char key[200];
      struct rank_entry *e = NULL;
      if (join(key, sizeof key, sym[i], " ", sym[i + 1])) HASH_FIND_STR(ranks, key, e);
      if (e && (best < 0 || e->rank < best_rank)) best = (int)i, best_rank = e->rank;
    }
    if (best < 0) break;
    join(sym[best], sizeof sym[0], sym[best], "", sym[best + 1]);
    memmove(sym[best + 1], sym[best + 2], (n - (size_t)best - 2) * sizeof sym[0]);
    n--;
  }
  for (size_t i = 0; i < n; i++) out[i] = kn_token_lookup(t, sym[i], strlen(sym[i]));
  return n;
}

static const char *const LETTERS[] = {"a",
                                      "b",
                                      "e",
                                      "i",
                                      "n",
                                      "o",
                                      "r",
                                      "s",
                                      "t",
                                      "T",
                                      "Q",
                                      "z",
                                      "\xC3\xA9",
                                      "\xC3\xB6",
                                      "\xC3\x9F",
                                      "\xD0\xB4",
                                      "\xE4\xBD\xA0",
                                      "\xE5\xA5\xBD"};

static void random_word(char *w, size_t cap) {
  size_t n = 0, k = 1 + rnd(12);
  if (rnd(2)) w[n++] = ' ';
  for (size_t i = 0; i < k; i++) {
    const char *l = LETTERS[rnd(sizeof LETTERS / sizeof LETTERS[0])];
    if (n + strlen(l) + 1 >= cap) break;
    memcpy(w + n, l, strlen(l));
    n += strlen(l);
  }
  w[n] = 0;
}

void test_naive_bpe(const kn_tokenizer *t, const char *gguf_rel) {
  struct rank_entry *ranks = NULL, *all = NULL;
  size_t nm = 0;
  kn_gguf *g = open_gguf(gguf_rel);
  const kn_gguf_value *merges = g ? kn_gguf_get_arr(g, "tokenizer.ggml.merges", KN_GGUF_STRING) : NULL;
  nm = (size_t)kn_gguf_arr_len(merges);
  check(nm > 0, "%s: no merges to build the reference from", gguf_rel);
  all = calloc(nm ? nm : 1, sizeof *all);
  for (size_t i = 0; i < nm; i++) {
    uint64_t l = 0;
    const char *m = kn_gguf_arr_str(merges, i, &l);
    all[i].key = strndup(m, (size_t)l);
    all[i].rank = (int)i;
    struct rank_entry *e;
    HASH_FIND_STR(ranks, all[i].key, e);
    if (!e) HASH_ADD_KEYPTR(hh, ranks, all[i].key, strlen(all[i].key), &all[i]);
  }
  int ok = 0;
  for (int trial = 0; trial < 500 && nm > 0; trial++) {
    char w[128], err[256], a[1024], b[1024];
    random_word(w, sizeof w);
    int32_t ref[64], *ids;
    size_t nr = naive_bpe(t, ranks, w, ref), n;
    if (kn_tokenize(t, w, strlen(w), false, false, &ids, &n, err, sizeof err) != 0) {
      check(false, "bpe \"%s\": %s", w, err);
      continue;
    }
    ids_str(ref, nr, a, sizeof a);
    ids_str(ids, n, b, sizeof b);
    bool same = ids_eq(ids, n, ref, nr);
    ok += same;
    check(same, "bpe \"%s\": plain reference [%s], kiln [%s]", w, a, b);
    free(ids);
  }
  printf("bpe: %d/500 random words match the plain reference\n", ok);
  HASH_CLEAR(hh, ranks);
  for (size_t i = 0; i < nm; i++) free(all[i].key);
  free(all);
  if (g) kn_gguf_close(g);
}

/* Textbook SentencePiece BPE: merge the best-scoring adjacent pair that forms a token (leftmost on ties). */
static size_t naive_spm(const kn_tokenizer *t, const char *text, int32_t *out, size_t cap) {
  static char sym[256][256];
  size_t n = 0;
  char esc[1024] = "\xE2\x96\x81";
  size_t e = 3;
  for (size_t i = 0; text[i] && e + 4 < sizeof esc; i++) {
    if (text[i] == ' ')
      memcpy(esc + e, "\xE2\x96\x81", 3), e += 3;
    else
      esc[e++] = text[i];
  }
  for (size_t i = 0; i < e && n < 256;) {
    unsigned char c = (unsigned char)esc[i];
    size_t k = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (k > e - i) k = e - i;
    memcpy(sym[n], esc + i, k);
    sym[n++][k] = 0;
    i += k;
  }
  for (;;) {
    int best = -1;
    float best_score = 0;
    for (size_t i = 0; i + 1 < n; i++) {
      char cat[512];
      int32_t id = join(cat, sizeof cat, sym[i], "", sym[i + 1]) ? kn_token_lookup(t, cat, strlen(cat)) : -1;
      if (id >= 0 && (best < 0 || kn_token_score(t, id) > best_score))
        best = (int)i, best_score = kn_token_score(t, id);
    }
    if (best < 0) break;
    join(sym[best], sizeof sym[0], sym[best], "", sym[best + 1]);
    memmove(sym[best + 1], sym[best + 2], (n - (size_t)best - 2) * sizeof sym[0]);
    n--;
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = kn_token_lookup(t, sym[i], strlen(sym[i]));
    if (id >= 0 && m < cap) out[m++] = id;
    for (size_t j = 0; id < 0 && sym[i][j] && m < cap; j++) {
      char hex[8];
      snprintf(hex, sizeof hex, "<0x%02X>", (unsigned char)sym[i][j]);
      out[m++] = kn_token_lookup(t, hex, 6);
    }
  }
  return m;
}

void test_naive_spm(const kn_tokenizer *t) {
  int ok = 0;
  for (int trial = 0; trial < 300; trial++) {
    char text[200], err[256], a[2048], b[2048];
    random_text(text, 120);
    if (strstr(text, "<s>") || strstr(text, "<|")) continue; /* keep control-token text out of the reference */
    int32_t ref[512], *ids;
    size_t nr = naive_spm(t, text, ref, 512), n;
    if (kn_tokenize(t, text, strlen(text), false, false, &ids, &n, err, sizeof err) != 0) {
      check(false, "spm: %s", err);
      continue;
    }
    ids_str(ref, nr, a, sizeof a);
    ids_str(ids, n, b, sizeof b);
    bool same = ids_eq(ids, n, ref, nr);
    ok += same;
    check(same, "spm \"%s\": plain reference [%s], kiln [%s]", text, a, b);
    free(ids);
  }
  printf("spm: %d random texts match the plain reference\n", ok);
}
