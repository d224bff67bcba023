/* models/text/bpe.c: byte-level BPE (tokenizer.ggml.model "gpt2": Qwen2/3, Llama 3, GPT-2).
 * Text is split by the pre-tokenizer regex of tokenizer.ggml.pre (PCRE2, UTF), each piece's bytes become GPT-2
 * characters, and merges apply lowest rank first (leftmost on ties), as llama.cpp and Hugging Face do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

/* Unicode White_Space, spelled out: PCRE2's \s also matches U+180E, and the reference's does not. */
#define WS "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
/* (?i:'s|'t|...) written case by case: PCRE2's caseless UTF matching would also fold U+017F and U+212A. */
#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define QWEN_LIKE(NUM)                                                                                                 \
  CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" NUM "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+"           \
               "|[" WS "]+(?![^" WS "])|[" WS "]+"
#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])"

static const char *const RE_QWEN2[] = {QWEN_LIKE("\\p{N}"), NULL};
static const char *const RE_LLAMA3[] = {QWEN_LIKE("\\p{N}{1,3}"), NULL};
static const char *const RE_GPT2[] = {GPT2_RE, NULL};
static const char *const RE_STARCODER[] = {"\\p{N}", GPT2_RE, NULL};
static const char *const RE_DEFAULT[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+", "[0-9][0-9][0-9]", NULL};

struct pre_kind {
  const char *name;
  const char *const *re;
  bool ignore_merges; /* a piece that is itself a token is emitted whole (Llama 3) */
};

static const struct pre_kind PRE_KINDS[] = {
    {"default", RE_DEFAULT, false},
    {"qwen2", RE_QWEN2, false},
    {"deepseek-r1-qwen", RE_QWEN2, false},
    {"stablelm2", RE_QWEN2, false},
    {"megrez", RE_QWEN2, false},
    {"llama-bpe", RE_LLAMA3, true},
    {"llama3", RE_LLAMA3, true},
    {"llama-v3", RE_LLAMA3, true},
    {"falcon3", RE_LLAMA3, true},
    {"pixtral", RE_LLAMA3, true},
    {"dbrx", RE_LLAMA3, false},
    {"smaug-bpe", RE_LLAMA3, false},
    {"chatglm-bpe", RE_LLAMA3, false},
    {"glm4", RE_LLAMA3, false},
    {"gpt-2", RE_GPT2, false},
    {"phi-2", RE_GPT2, false},
    {"mpt", RE_GPT2, false},
    {"olmo", RE_GPT2, false},
    {"starcoder", RE_STARCODER, false},
    {"refact", RE_STARCODER, false},
    {"smollm", RE_STARCODER, false},
    {"command-r", RE_STARCODER, false},
    {"codeshell", RE_STARCODER, false},
    {"exaone", RE_STARCODER, false},
};

/* GPT-2 maps every byte to a printable character: printable Latin-1 bytes map to themselves, the other 68 bytes
 * to U+0100.. in byte order. */
static void build_byte_map(kn_tokenizer *t) {
  uint16_t next = 256;
  for (int i = 0; i < 512; i++) t->cpt_byte[i] = -1;
  for (unsigned c = 0; c < 256; c++) {
    bool printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE);
    t->byte_cpt[c] = printable ? (uint16_t)c : next++;
    t->cpt_byte[t->byte_cpt[c]] = (int16_t)c;
  }
}

static size_t put_utf8(uint32_t c, char *o) {
  if (c < 0x80) {
    o[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    o[0] = (char)(0xC0 | (c >> 6));
    o[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    o[0] = (char)(0xE0 | (c >> 12));
    o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (c >> 18));
  o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  o[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

size_t kn_bpe_decode_text(const kn_tokenizer *t, const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    const unsigned char *p = (const unsigned char *)s + i;
    size_t k = kn_utf8_valid_prefix(p, n - i);
    uint32_t c = 0x7FFFFFFF;
    if (k == 1)
      c = p[0];
    else if (k == 2)
      c = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    if (k == 0) k = 1;
    if (c < 512 && t->cpt_byte[c] >= 0)
      out[o++] = (char)t->cpt_byte[c];
    else { /* not a GPT-2 character: keep the bytes as they are */
      memcpy(out + o, p, k);
      o += k;
    }
    i += k;
  }
  return o;
}

static int setup_regex(kn_tokenizer *t, const char *pre, char *err, size_t errlen) {
  const struct pre_kind *kind = NULL;
  for (size_t i = 0; i < sizeof PRE_KINDS / sizeof PRE_KINDS[0]; i++)
    if (strcmp(PRE_KINDS[i].name, pre) == 0) kind = &PRE_KINDS[i];
  if (!kind) {
    snprintf(err, errlen, "tokenizer.ggml.pre: unsupported pre-tokenizer '%s'", pre);
    return -1;
  }
  t->ignore_merges = kind->ignore_merges;
  for (int i = 0; kind->re[i]; i++) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)kind->re[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
    if (!re) {
      PCRE2_UCHAR msg[160];
      pcre2_get_error_message(ec, msg, sizeof msg);
      snprintf(err, errlen, "pre-tokenizer '%s' regex %d: %s at offset %zu", pre, i, (char *)msg, (size_t)eo);
      return -1;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: matching falls back to the interpreter */
    t->re[t->n_re++] = re;
  }
  return 0;
}

/* One merge "left right": ranks are the line numbers; the first occurrence of a pair wins. Merges whose parts or
 * result are not tokens cannot come up in a well-formed vocabulary and are skipped. */
static int add_merge(kn_tokenizer *t, const char *s, size_t n, int32_t rank, char *buf, size_t *added, char *err,
                     size_t errlen) {
  const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
  if (!sp) {
    snprintf(err, errlen, "tokenizer.ggml.merges[%d]: no space separating the pair", (int)rank);
    return -1;
  }
  size_t nl = (size_t)(sp - s), nr = n - nl - 1;
  int32_t l = kn_tok_find(t, s, nl), r = kn_tok_find(t, sp + 1, nr);
  memcpy(buf, s, nl);
  memcpy(buf + nl, sp + 1, nr);
  int32_t res = kn_tok_find(t, buf, nl + nr);
  if (l < 0 || r < 0 || res < 0) return 0;
  uint64_t key = kn_pair_key(l, r);
  struct kn_merge *m;
  HASH_FIND(hh, t->merges, &key, sizeof key, m);
  if (m) return 0;
  m = &t->merge_arr[(*added)++];
  m->key = key;
  m->rank = rank;
  m->result = res;
  HASH_ADD(hh, t->merges, key, sizeof m->key, m);
  return 0;
}

static int setup_merges(kn_tokenizer *t, const kn_vocab_desc *d, char *err, size_t errlen) {
  if (!d->merges) {
    snprintf(err, errlen, "tokenizer.ggml.merges: missing (a gpt2 tokenizer needs its merges)");
    return -1;
  }
  if (d->n_merges > (size_t)INT32_MAX) {
    snprintf(err, errlen, "tokenizer.ggml.merges: %zu entries is too many", d->n_merges);
    return -1;
  }
  t->merge_arr = calloc(d->n_merges ? d->n_merges : 1, sizeof *t->merge_arr);
  size_t cap = 256, added = 0;
  char *buf = malloc(cap);
  if (!t->merge_arr || !buf) {
    free(buf);
    snprintf(err, errlen, "out of memory for %zu merges", d->n_merges);
    return -1;
  }
  int rc = 0;
  for (size_t i = 0; i < d->n_merges && rc == 0; i++) {
    const char *s = d->merges[i];
    size_t n = s ? (d->merge_lens ? d->merge_lens[i] : strlen(s)) : 0;
    if (!s) {
      snprintf(err, errlen, "tokenizer.ggml.merges[%zu]: missing string", i);
      rc = -1;
      break;
    }
    if (n > cap) {
      char *nb = realloc(buf, n);
      if (!nb) {
        snprintf(err, errlen, "out of memory for tokenizer.ggml.merges[%zu]", i);
        rc = -1;
        break;
      }
      buf = nb;
      cap = n;
    }
    rc = add_merge(t, s, n, (int32_t)i, buf, &added, err, errlen);
  }
  free(buf);
  return rc;
}

int kn_bpe_setup(kn_tokenizer *t, const kn_vocab_desc *d, char *err, size_t errlen) {
  build_byte_map(t);
  for (unsigned b = 0; b < 256; b++) {
    char u[4];
    size_t n = put_utf8(t->byte_cpt[b], u);
    t->byte_tok[b] = kn_tok_find(t, u, n);
  }
  if (setup_merges(t, d, err, errlen) != 0) return -1;
  return setup_regex(t, t->pre, err, errlen);
}

/* ---- encoding ---- */

struct span {
  size_t off, len;
};

struct spans {
  struct span *v;
  size_t n, cap;
};

static int spans_push(struct spans *s, size_t off, size_t len) {
  if (s->n == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 64;
    struct span *nv = realloc(s->v, nc * sizeof *nv);
    if (!nv) return -1;
    s->v = nv;
    s->cap = nc;
  }
  s->v[s->n].off = off;
  s->v[s->n].len = len;
  s->n++;
  return 0;
}

static int match_once(const pcre2_code *re, const char *s, size_t n, size_t start, pcre2_match_data *md) {
  int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
    rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
  return rc;
}

/* Split one span by one regex: matches and the text between them both become pieces. Each span is matched on its
 * own, so lookarounds stop at its edges, as in the reference. */
static int split_span(const pcre2_code *re, const char *text, struct span sp, pcre2_match_data *md, struct spans *out,
                      char *err, size_t errlen) {
  const char *s = text + sp.off;
  size_t pos = 0, prev = 0;
  while (pos < sp.len) {
    int rc = match_once(re, s, sp.len, pos, md);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[160];
      pcre2_get_error_message(rc, msg, sizeof msg);
      snprintf(err, errlen, "pre-tokenizer match failed at byte %zu: %s", sp.off + pos, (char *)msg);
      return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (e == b) { /* empty match: step over one character */
      pos = b + kn_utf8_len((unsigned char)s[b]);
      continue;
    }
    if (b > prev && spans_push(out, sp.off + prev, b - prev) != 0) goto oom;
    if (spans_push(out, sp.off + b, e - b) != 0) goto oom;
    prev = pos = e;
  }
  if (prev < sp.len && spans_push(out, sp.off + prev, sp.len - prev) != 0) goto oom;
  return 0;
oom:
  snprintf(err, errlen, "out of memory splitting %zu bytes of text", sp.len);
  return -1;
}

static int pretokenize(const kn_tokenizer *t, const char *text, size_t len, struct spans *out, char *err,
                       size_t errlen) {
  struct spans cur = {0}, next = {0};
  int rc = -1;
  pcre2_match_data *md = NULL;
  if (spans_push(&cur, 0, len) != 0) goto oom;
  for (int i = 0; i < t->n_re; i++) {
    md = pcre2_match_data_create_from_pattern(t->re[i], NULL);
    if (!md) goto oom;
    next.n = 0;
    for (size_t k = 0; k < cur.n; k++)
      if (split_span(t->re[i], text, cur.v[k], md, &next, err, errlen) != 0) goto done;
    pcre2_match_data_free(md);
    md = NULL;
    struct spans tmp = cur;
    cur = next;
    next = tmp;
  }
  *out = cur;
  cur.v = NULL;
  rc = 0;
  goto done;
oom:
  snprintf(err, errlen, "out of memory pre-tokenizing %zu bytes", len);
done:
  pcre2_match_data_free(md);
  free(cur.v);
  free(next.v);
  return rc;
}

/* Invalid UTF-8 becomes U+FFFD byte by byte, as the reference's pre-tokenizer does; NULL result = text was valid. */
static char *sanitize_utf8(const char *text, size_t len, size_t *out_len, bool *oom) {
  size_t i = 0, bad = 0;
  for (; i < len;) {
    size_t k = kn_utf8_valid_prefix((const unsigned char *)text + i, len - i);
    if (k == 0) {
      bad++;
      k = 1;
    }
    i += k;
  }
  *oom = false;
  if (bad == 0) return NULL;
  char *o = malloc(len + 2 * bad + 1);
  if (!o) {
    *oom = true;
    return NULL;
  }
  size_t n = 0;
  for (i = 0; i < len;) {
    size_t k = kn_utf8_valid_prefix((const unsigned char *)text + i, len - i);
    if (k == 0) {
      memcpy(o + n, "\xEF\xBF\xBD", 3);
      n += 3;
      i++;
    } else {
      memcpy(o + n, text + i, k);
      n += k;
      i += k;
    }
  }
  *out_len = n;
  return o;
}

/* Merge state of one word: symbols are linked runs of bytes, candidates sit in a binary heap. */
struct sym {
  int32_t id, prev, next;
};

struct cand {
  int32_t rank, left, right, lid, rid, result;
};

struct work {
  struct sym *sym;
  size_t sym_cap;
  struct cand *heap;
  size_t n_heap, heap_cap;
  char *enc;
  size_t enc_cap;
};

static bool cand_before(const struct cand *a, const struct cand *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(struct work *w, struct cand c) {
  if (w->n_heap == w->heap_cap) {
    size_t nc = w->heap_cap ? w->heap_cap * 2 : 64;
    struct cand *nh = realloc(w->heap, nc * sizeof *nh);
    if (!nh) return -1;
    w->heap = nh;
    w->heap_cap = nc;
  }
  size_t i = w->n_heap++;
  while (i > 0 && cand_before(&c, &w->heap[(i - 1) / 2])) {
    w->heap[i] = w->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  w->heap[i] = c;
  return 0;
}

static struct cand heap_pop(struct work *w) {
  struct cand top = w->heap[0], last = w->heap[--w->n_heap];
  size_t i = 0, n = w->n_heap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && cand_before(&w->heap[c + 1], &w->heap[c])) c++;
    if (!cand_before(&w->heap[c], &last)) break;
    w->heap[i] = w->heap[c];
    i = c;
  }
  if (n > 0) w->heap[i] = last;
  return top;
}

static int try_pair(const kn_tokenizer *t, struct work *w, int32_t l, int32_t r) {
  if (l < 0 || r < 0) return 0;
  int32_t lid = w->sym[l].id, rid = w->sym[r].id;
  if (lid < 0 || rid < 0) return 0;
  uint64_t key = kn_pair_key(lid, rid);
  struct kn_merge *m;
  HASH_FIND(hh, t->merges, &key, sizeof key, m);
  if (!m) return 0;
  struct cand c = {m->rank, l, r, lid, rid, m->result};
  return heap_push(w, c);
}

/* Whole piece as one token (Llama 3's ignore_merges): its GPT-2 spelling looked up directly. */
static int32_t whole_word(const kn_tokenizer *t, struct work *w, const unsigned char *s, size_t n) {
  if (n > SIZE_MAX / 2 - 1) return -1;
  if (w->enc_cap < 2 * n) {
    char *ne = realloc(w->enc, 2 * n);
    if (!ne) return -1;
    w->enc = ne;
    w->enc_cap = 2 * n;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += put_utf8(t->byte_cpt[s[i]], w->enc + k);
  return kn_tok_find(t, w->enc, k);
}

static int bpe_word(const kn_tokenizer *t, struct work *w, const unsigned char *s, size_t n, struct kn_ids *out) {
  if (t->ignore_merges) {
    int32_t id = whole_word(t, w, s, n);
    if (id >= 0) return kn_ids_push(out, id);
  }
  if (n > INT32_MAX) return -1;
  if (w->sym_cap < n) {
    struct sym *ns = realloc(w->sym, n * sizeof *ns);
    if (!ns) return -1;
    w->sym = ns;
    w->sym_cap = n;
  }
  for (size_t i = 0; i < n; i++) {
    w->sym[i].id = t->byte_tok[s[i]];
    w->sym[i].prev = (int32_t)i - 1;
    w->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
  }
  w->n_heap = 0;
  for (size_t i = 1; i < n; i++)
    if (try_pair(t, w, (int32_t)i - 1, (int32_t)i) != 0) return -1;
  while (w->n_heap > 0) {
    struct cand c = heap_pop(w);
    struct sym *L = &w->sym[c.left], *R = &w->sym[c.right];
    /* stale: one side has merged since the candidate was queued */
    if (L->id != c.lid || R->id != c.rid || L->next != c.right) continue;
    L->id = c.result;
    L->next = R->next;
    if (R->next >= 0) w->sym[R->next].prev = c.left;
    R->id = -1;
    R->next = -2; /* unlinked */
    if (try_pair(t, w, L->prev, c.left) != 0 || try_pair(t, w, c.left, L->next) != 0) return -1;
  }
  for (int32_t i = 0; i >= 0; i = w->sym[i].next)
    if (w->sym[i].id >= 0 && kn_ids_push(out, w->sym[i].id) != 0) return -1; /* a byte with no token is dropped */
  return 0;
}

/* Per-call cache of word -> ids: prompts repeat words a lot. Entries live in fixed blocks so uthash's pointers stay
 * valid; keys point into the text being encoded. */
struct cache_entry {
  size_t first, count;
  UT_hash_handle hh;
};

struct cache {
  struct cache_entry *head;
  struct cache_entry **blocks;
  size_t n_blocks, used;
  struct kn_ids ids;
};

#define CACHE_BLOCK 1024

static struct cache_entry *cache_new(struct cache *c) {
  if (c->used % CACHE_BLOCK == 0) {
    struct cache_entry **nb = realloc(c->blocks, (c->n_blocks + 1) * sizeof *nb);
    if (!nb) return NULL;
    c->blocks = nb;
    nb[c->n_blocks] = malloc(CACHE_BLOCK * sizeof **nb);
    if (!nb[c->n_blocks]) return NULL;
    c->n_blocks++;
  }
  struct cache_entry *e = &c->blocks[c->used / CACHE_BLOCK][c->used % CACHE_BLOCK];
  c->used++;
  return e;
}

static void cache_free(struct cache *c) {
  HASH_CLEAR(hh, c->head);
  for (size_t i = 0; i < c->n_blocks; i++) free(c->blocks[i]);
  free(c->blocks);
  free(c->ids.v);
}

static int encode_word(const kn_tokenizer *t, struct work *w, struct cache *c, const char *s, size_t n,
                       struct kn_ids *out) {
  struct cache_entry *e;
  HASH_FIND(hh, c->head, s, n, e);
  if (!e) {
    size_t first = c->ids.n;
    if (bpe_word(t, w, (const unsigned char *)s, n, &c->ids) != 0) return -1;
    e = cache_new(c);
    if (!e) return -1;
    e->first = first;
    e->count = c->ids.n - first;
    HASH_ADD_KEYPTR(hh, c->head, s, n, e);
  }
  for (size_t i = 0; i < e->count; i++)
    if (kn_ids_push(out, c->ids.v[e->first + i]) != 0) return -1;
  return 0;
}

int kn_bpe_encode(const kn_tokenizer *t, const char *text, size_t len, struct kn_ids *out, char *err, size_t errlen) {
  bool oom;
  size_t clean_len = len;
  char *clean = sanitize_utf8(text, len, &clean_len, &oom);
  if (oom) {
    snprintf(err, errlen, "out of memory encoding %zu bytes", len);
    return -1;
  }
  const char *s = clean ? clean : text;
  struct spans words = {0};
  struct work w = {0};
  struct cache c = {0};
  int rc = pretokenize(t, s, clean_len, &words, err, errlen);
  for (size_t i = 0; rc == 0 && i < words.n; i++) {
    rc = encode_word(t, &w, &c, s + words.v[i].off, words.v[i].len, out);
    if (rc != 0) snprintf(err, errlen, "out of memory encoding %zu bytes", len);
  }
  cache_free(&c);
  free(w.sym);
  free(w.heap);
  free(w.enc);
  free(words.v);
  free(clean);
  return rc;
}
