/* models/text/tokenizer.c: building a tokenizer from a vocabulary (plain arrays or a GGUF's tokenizer.ggml.* keys) and
 * encoding text with it. Owns the token table, the text -> id map, the special tokens (split out of the text before
 * the BPE/SentencePiece pass, longest first, as the reference does), BOS/EOS insertion and the end-of-generation set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/gguf.h"
#include "tokenizer_impl.h"

/* ---- small helpers shared by the tokenizer files ---- */

int kn_ids_push(struct kn_ids *a, int32_t id) {
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 64;
    if (nc > SIZE_MAX / sizeof *a->v) return -1;
    int32_t *nv = realloc(a->v, nc * sizeof *nv);
    if (!nv) return -1;
    a->v = nv;
    a->cap = nc;
  }
  a->v[a->n++] = id;
  return 0;
}

size_t kn_utf8_len(unsigned char lead) {
  static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return len[lead >> 4];
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF), as PCRE2 requires. */
size_t kn_utf8_valid_prefix(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t k;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    k = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    k = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    k = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else
    return 0;
  if (n < k || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < k; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return k;
}

int32_t kn_tok_find(const kn_tokenizer *t, const char *s, size_t n) {
  struct kn_tok_entry *e;
  if (n == 0 || n > UINT32_MAX) return -1;
  HASH_FIND(hh, t->by_text, s, n, e);
  return e ? e->id : -1;
}

void kn_vocab_desc_init(kn_vocab_desc *d) {
  memset(d, 0, sizeof *d);
  d->bos = d->eos = d->eot = d->eom = d->unk = d->sep = d->pad = -1;
  d->add_bos = d->add_eos = d->add_space_prefix = -1;
}

/* ---- building ---- */

static unsigned attr_of_type(int32_t type) {
  switch (type) {
  case 1:
    return KN_TOKEN_NORMAL;
  case 2:
    return KN_TOKEN_UNKNOWN;
  case 3:
    return KN_TOKEN_CONTROL;
  case 4:
    return KN_TOKEN_USER_DEFINED;
  case 5:
    return KN_TOKEN_UNUSED;
  case 6:
    return KN_TOKEN_BYTE;
  default:
    return 0; /* undefined: never matched as special, decodes to nothing */
  }
}

static int build_table(kn_tokenizer *t, const kn_vocab_desc *d, char *err, size_t errlen) {
  size_t total = 0;
  for (size_t i = 0; i < d->n_tokens; i++) {
    if (!d->tokens[i]) {
      snprintf(err, errlen, "tokenizer.ggml.tokens[%zu]: missing string", i);
      return -1;
    }
    size_t n = d->token_lens ? d->token_lens[i] : strlen(d->tokens[i]);
    if (n > UINT32_MAX || total > UINT32_MAX - n) {
      snprintf(err, errlen, "tokenizer.ggml.tokens: text too large at entry %zu", i);
      return -1;
    }
    total += n;
  }
  t->tok = calloc(d->n_tokens, sizeof *t->tok);
  t->entries = calloc(d->n_tokens, sizeof *t->entries);
  t->text_pool = malloc(total + 1);
  t->piece_pool = malloc(total + 1);
  if (!t->tok || !t->entries || !t->text_pool || !t->piece_pool) {
    snprintf(err, errlen, "out of memory for %zu tokens", d->n_tokens);
    return -1;
  }
  uint32_t off = 0;
  for (size_t i = 0; i < d->n_tokens; i++) {
    size_t n = d->token_lens ? d->token_lens[i] : strlen(d->tokens[i]);
    struct kn_tok_info *k = &t->tok[i];
    memcpy(t->text_pool + off, d->tokens[i], n);
    k->off = off;
    k->len = (uint32_t)n;
    off += (uint32_t)n;
    k->score = d->scores ? d->scores[i] : 0.0f;
    k->attr = d->token_types ? attr_of_type(d->token_types[i]) : KN_TOKEN_NORMAL;
    if (n == 0) continue; /* an empty entry can never be matched */
    struct kn_tok_entry *e;
    HASH_FIND(hh, t->by_text, t->text_pool + k->off, n, e);
    if (e) {
      snprintf(err, errlen, "tokenizer.ggml.tokens[%zu]: duplicate of entry %d", i, (int)e->id);
      return -1;
    }
    e = &t->entries[i];
    e->id = (int32_t)i;
    HASH_ADD_KEYPTR(hh, t->by_text, t->text_pool + k->off, n, e);
  }
  return 0;
}

/* Tokens that end a turn in the chat formats we know, found by text as the reference does. */
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>",   "<|im_end|>", "<|end|>",         "<end_of_turn>",      "<|endoftext|>", "<|eom_id|>",
    "<EOT>",        "_<EOT>",     "<|end_of_text|>", "<end_of_utterance>", "<|fim_pad|>",   "<|repo_name|>",
    "<|file_sep|>", NULL};
static const char *const EOT_TEXTS[] = {
    "<|eot_id|>",      "<|im_end|>", "<|end|>", "<end_of_turn>",      "<|endoftext|>",
    "<|end_of_text|>", "<EOT>",      "_<EOT>",  "<end_of_utterance>", NULL};

static int32_t find_cstr(const kn_tokenizer *t, const char *s) { return kn_tok_find(t, s, strlen(s)); }

static void mark_eog(kn_tokenizer *t) {
  if (t->eot < 0)
    for (int i = 0; EOT_TEXTS[i] && t->eot < 0; i++) t->eot = find_cstr(t, EOT_TEXTS[i]);
  for (int i = 0; EOG_TEXTS[i]; i++) {
    int32_t id = find_cstr(t, EOG_TEXTS[i]);
    /* a turn marker stored as a normal token would otherwise be spelled out in text */
    if (id >= 0) t->tok[id].attr |= KN_TOKEN_EOG | KN_TOKEN_CONTROL;
  }
  int32_t ids[] = {t->eos, t->eot, t->eom};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    if (ids[i] >= 0) t->tok[ids[i]].attr |= KN_TOKEN_EOG;
}

static int cmp_special(const void *a, const void *b, void *arg) {
  const kn_tokenizer *t = arg;
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  if (t->tok[x].len != t->tok[y].len) return t->tok[x].len > t->tok[y].len ? -1 : 1;
  return x < y ? -1 : x > y;
}

static int collect_special(kn_tokenizer *t, char *err, size_t errlen) {
  const unsigned mask = KN_TOKEN_CONTROL | KN_TOKEN_USER_DEFINED | KN_TOKEN_UNKNOWN;
  size_t n = 0;
  for (int32_t i = 0; i < t->n_tokens; i++)
    if ((t->tok[i].attr & mask) && t->tok[i].len > 0) n++;
  t->special = malloc((n ? n : 1) * sizeof *t->special);
  if (!t->special) {
    snprintf(err, errlen, "out of memory for %zu special tokens", n);
    return -1;
  }
  for (int32_t i = 0; i < t->n_tokens; i++)
    if ((t->tok[i].attr & mask) && t->tok[i].len > 0) t->special[t->n_special++] = i;
  qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);
  return 0;
}

/* The bytes each token decodes to, computed once. Pieces are never longer than the vocabulary text. */
static void build_pieces(kn_tokenizer *t) {
  uint32_t off = 0;
  for (int32_t i = 0; i < t->n_tokens; i++) {
    struct kn_tok_info *k = &t->tok[i];
    const char *s = t->text_pool + k->off;
    char *o = t->piece_pool + off;
    size_t n = 0;
    if (k->attr & (KN_TOKEN_CONTROL | KN_TOKEN_UNKNOWN | KN_TOKEN_USER_DEFINED)) {
      memcpy(o, s, k->len);
      n = k->len;
    } else if (k->attr & KN_TOKEN_NORMAL) {
      if (t->kind == KN_TOK_BPE)
        n = kn_bpe_decode_text(t, s, k->len, o);
      else
        for (uint32_t j = 0; j < k->len; j++) {
          if (j + 2 < k->len && memcmp(s + j, "\xE2\x96\x81", 3) == 0) {
            o[n++] = ' ';
            j += 2;
          } else
            o[n++] = s[j];
        }
    } else if (k->attr & KN_TOKEN_BYTE) {
      unsigned b;
      if (k->len == 6 && sscanf(s, "<0x%2x>", &b) == 1)
        o[n++] = (char)b;
      else if (k->len == 1)
        o[n++] = s[0];
    }
    k->piece_off = off;
    k->piece_len = (uint32_t)n;
    off += (uint32_t)n;
  }
}

static int check_id(const char *key, int64_t id, int32_t n_tokens, int32_t *dst, bool strict, char *err,
                    size_t errlen) {
  if (id < 0) return 0;
  if (id >= n_tokens) {
    if (!strict) { /* an unused id (pad, sep) pointing past the vocabulary: ignore it as the reference does */
      *dst = -1;
      return 0;
    }
    snprintf(err, errlen, "%s = %lld is out of range (the vocabulary has %d tokens)", key, (long long)id,
             (int)n_tokens);
    return -1;
  }
  *dst = (int32_t)id;
  return 0;
}

static int set_specials(kn_tokenizer *t, const kn_vocab_desc *d, char *err, size_t errlen) {
  bool spm = t->kind == KN_TOK_SPM;
  t->bos = spm && t->n_tokens > 1 ? 1 : -1; /* SentencePiece llama defaults: <unk>=0 <s>=1 </s>=2 */
  t->eos = spm && t->n_tokens > 2 ? 2 : -1;
  t->unk = spm && t->n_tokens > 0 ? 0 : -1;
  t->eot = t->eom = t->sep = t->pad = -1;
  if (check_id("tokenizer.ggml.bos_token_id", d->bos, t->n_tokens, &t->bos, true, err, errlen) ||
      check_id("tokenizer.ggml.eos_token_id", d->eos, t->n_tokens, &t->eos, true, err, errlen) ||
      check_id("tokenizer.ggml.eot_token_id", d->eot, t->n_tokens, &t->eot, true, err, errlen) ||
      check_id("tokenizer.ggml.unknown_token_id", d->unk, t->n_tokens, &t->unk, true, err, errlen) ||
      check_id("tokenizer.ggml.eom_token_id", d->eom, t->n_tokens, &t->eom, false, err, errlen) ||
      check_id("tokenizer.ggml.seperator_token_id", d->sep, t->n_tokens, &t->sep, false, err, errlen) ||
      check_id("tokenizer.ggml.padding_token_id", d->pad, t->n_tokens, &t->pad, false, err, errlen))
    return -1;
  t->add_bos = spm || t->ignore_merges; /* the reference adds BOS for SentencePiece and Llama 3 by default */
  t->add_eos = false;
  t->add_space_prefix = spm;
  if (d->add_bos >= 0) t->add_bos = d->add_bos;
  if (d->add_eos >= 0) t->add_eos = d->add_eos;
  if (d->add_space_prefix >= 0) t->add_space_prefix = d->add_space_prefix;
  if (t->add_bos && t->bos < 0) {
    snprintf(err, errlen, "tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is not set");
    return -1;
  }
  if (t->add_eos && t->eos < 0) {
    snprintf(err, errlen, "tokenizer.ggml.add_eos_token is true but tokenizer.ggml.eos_token_id is not set");
    return -1;
  }
  return 0;
}

static int set_kind(kn_tokenizer *t, const kn_vocab_desc *d, char *err, size_t errlen) {
  if (!d->model) {
    snprintf(err, errlen, "tokenizer.ggml.model: missing");
    return -1;
  }
  if (strcmp(d->model, "llama") == 0)
    t->kind = KN_TOK_SPM;
  else if (strcmp(d->model, "gpt2") == 0)
    t->kind = KN_TOK_BPE;
  else {
    snprintf(err, errlen, "tokenizer.ggml.model: unsupported tokenizer '%s' (kiln knows 'gpt2' and 'llama')", d->model);
    return -1;
  }
  const char *pre = d->pre && d->pre[0] ? d->pre : "default";
  if (strlen(pre) >= sizeof t->pre) {
    snprintf(err, errlen, "tokenizer.ggml.pre: '%.40s...' is too long", pre);
    return -1;
  }
  strcpy(t->pre, pre);
  return 0;
}

kn_tokenizer *kn_tokenizer_create(const kn_vocab_desc *d, char *err, size_t errlen) {
  if (!d->tokens || d->n_tokens == 0) {
    snprintf(err, errlen, "tokenizer.ggml.tokens: missing or empty");
    return NULL;
  }
  if (d->n_tokens > INT32_MAX) {
    snprintf(err, errlen, "tokenizer.ggml.tokens: %zu entries is too many", d->n_tokens);
    return NULL;
  }
  kn_tokenizer *t = calloc(1, sizeof *t);
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  t->n_tokens = (int32_t)d->n_tokens;
  if (set_kind(t, d, err, errlen) != 0 || build_table(t, d, err, errlen) != 0) goto fail;
  int rc = t->kind == KN_TOK_BPE ? kn_bpe_setup(t, d, err, errlen) : kn_spm_setup(t, err, errlen);
  if (rc != 0 || set_specials(t, d, err, errlen) != 0) goto fail;
  mark_eog(t);
  if (collect_special(t, err, errlen) != 0) goto fail;
  build_pieces(t);
  return t;
fail:
  kn_tokenizer_free(t);
  return NULL;
}

void kn_tokenizer_free(kn_tokenizer *t) {
  if (!t) return;
  HASH_CLEAR(hh, t->by_text);
  HASH_CLEAR(hh, t->merges);
  for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
  free(t->merge_arr);
  free(t->entries);
  free(t->tok);
  free(t->text_pool);
  free(t->piece_pool);
  free(t->special);
  free(t);
}

/* ---- queries ---- */

int kn_tokenizer_kind(const kn_tokenizer *t) { return t->kind; }
const char *kn_tokenizer_pre(const kn_tokenizer *t) { return t->pre; }
int32_t kn_tokenizer_n_tokens(const kn_tokenizer *t) { return t->n_tokens; }
int32_t kn_token_bos(const kn_tokenizer *t) { return t->bos; }
int32_t kn_token_eos(const kn_tokenizer *t) { return t->eos; }
int32_t kn_token_eot(const kn_tokenizer *t) { return t->eot; }
int32_t kn_token_pad(const kn_tokenizer *t) { return t->pad; }
int32_t kn_token_unk(const kn_tokenizer *t) { return t->unk; }
bool kn_tokenizer_add_bos(const kn_tokenizer *t) { return t->add_bos; }
bool kn_tokenizer_add_eos(const kn_tokenizer *t) { return t->add_eos; }

unsigned kn_token_attr(const kn_tokenizer *t, int32_t id) { return id >= 0 && id < t->n_tokens ? t->tok[id].attr : 0; }

float kn_token_score(const kn_tokenizer *t, int32_t id) {
  return id >= 0 && id < t->n_tokens ? t->tok[id].score : 0.0f;
}

bool kn_token_is_eog(const kn_tokenizer *t, int32_t id) { return (kn_token_attr(t, id) & KN_TOKEN_EOG) != 0; }

const char *kn_token_text(const kn_tokenizer *t, int32_t id, size_t *len) {
  if (id < 0 || id >= t->n_tokens) return NULL;
  *len = t->tok[id].len;
  return t->text_pool + t->tok[id].off;
}

const char *kn_token_piece(const kn_tokenizer *t, int32_t id, bool special, size_t *len) {
  if (id < 0 || id >= t->n_tokens) return NULL;
  const struct kn_tok_info *k = &t->tok[id];
  *len = (!special && (k->attr & (KN_TOKEN_CONTROL | KN_TOKEN_UNKNOWN))) ? 0 : k->piece_len;
  return t->piece_pool + k->piece_off;
}

int32_t kn_token_lookup(const kn_tokenizer *t, const char *text, size_t len) { return kn_tok_find(t, text, len); }

int32_t kn_token_special(const kn_tokenizer *t, const char *text) {
  int32_t id = find_cstr(t, text);
  return (kn_token_attr(t, id) & (KN_TOKEN_CONTROL | KN_TOKEN_USER_DEFINED | KN_TOKEN_UNKNOWN)) ? id : -1;
}

/* ---- encoding ---- */

struct frag {
  int32_t tok; /* >= 0: a special token; -1: raw text [off, off+len) */
  size_t off, len;
};

struct frags {
  struct frag *v;
  size_t n, cap;
};

static int frag_push(struct frags *f, int32_t tok, size_t off, size_t len) {
  if (f->n == f->cap) {
    size_t nc = f->cap ? f->cap * 2 : 16;
    struct frag *nv = realloc(f->v, nc * sizeof *nv);
    if (!nv) return -1;
    f->v = nv;
    f->cap = nc;
  }
  f->v[f->n++] = (struct frag){tok, off, len};
  return 0;
}

/* Byte ranges where control-token text is not parsed (sorted, not overlapping). */
struct plain {
  const kn_text_span *v;
  size_t n;
};

/* does [at, at+len) overlap one of the ranges? */
static bool overlaps(const struct plain *p, size_t at, size_t len) {
  size_t lo = 0, hi = p ? p->n : 0;
  while (lo < hi) { /* the first range ending after at */
    size_t mid = (lo + hi) / 2;
    if (p->v[mid].off + p->v[mid].len <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo < (p ? p->n : 0) && p->v[lo].off < at + len;
}

/* Cut every occurrence of one special token out of the raw fragments (control tokens not inside plain ranges). */
static int split_on(const kn_tokenizer *t, const char *text, int32_t id, const struct frags *in, const struct plain *plain,
                    struct frags *out) {
  const char *pat = t->text_pool + t->tok[id].off;
  size_t plen = t->tok[id].len;
  out->n = 0;
  for (size_t i = 0; i < in->n; i++) {
    struct frag f = in->v[i];
    if (f.tok >= 0) {
      if (frag_push(out, f.tok, 0, 0) != 0) return -1;
      continue;
    }
    size_t pos = f.off, end = f.off + f.len, from = pos;
    const char *hit;
    while (from < end && (hit = memmem(text + from, end - from, pat, plen)) != NULL) {
      size_t at = (size_t)(hit - text);
      if (overlaps(plain, at, plen)) { /* typed by a user: stays text */
        from = at + 1;
        continue;
      }
      if (at > pos && frag_push(out, -1, pos, at - pos) != 0) return -1;
      if (frag_push(out, id, 0, 0) != 0) return -1;
      pos = from = at + plen;
    }
    if (pos < end && frag_push(out, -1, pos, end - pos) != 0) return -1;
  }
  return 0;
}

/* Longer special tokens are cut out first everywhere, then shorter ones from what remains (the reference's
 * order). Without parse_special only user-defined tokens are cut, as Hugging Face does. */
static int partition(const kn_tokenizer *t, const char *text, size_t len, bool parse_special, const struct plain *plain,
                     struct frags *out) {
  struct frags a = {0}, b = {0};
  if (len > 0 && frag_push(&a, -1, 0, len) != 0) return -1;
  for (size_t i = 0; i < t->n_special && len > 0; i++) {
    int32_t id = t->special[i];
    if (!parse_special && (t->tok[id].attr & (KN_TOKEN_CONTROL | KN_TOKEN_UNKNOWN))) continue;
    if (!memmem(text, len, t->text_pool + t->tok[id].off, t->tok[id].len)) continue;
    bool control = t->tok[id].attr & (KN_TOKEN_CONTROL | KN_TOKEN_UNKNOWN);
    if (split_on(t, text, id, &a, control ? plain : NULL, &b) != 0) {
      free(a.v);
      free(b.v);
      return -1;
    }
    struct frags tmp = a;
    a = b;
    b = tmp;
  }
  free(b.v);
  *out = a;
  return 0;
}

static int encode_frags(const kn_tokenizer *t, const char *text, const struct frags *f, struct kn_ids *out, char *err,
                        size_t errlen) {
  bool prev_special = true; /* SentencePiece: the dummy "▁" starts the text and follows special tokens */
  for (size_t i = 0; i < f->n; i++) {
    const struct frag *g = &f->v[i];
    if (g->tok >= 0) {
      if (kn_ids_push(out, g->tok) != 0) goto oom;
      prev_special = true;
      continue;
    }
    int rc = t->kind == KN_TOK_BPE
                 ? kn_bpe_encode(t, text + g->off, g->len, out, err, errlen)
                 : kn_spm_encode(t, text + g->off, g->len, t->add_space_prefix && prev_special, out, err, errlen);
    if (rc != 0) return -1;
    prev_special = false;
  }
  return 0;
oom:
  snprintf(err, errlen, "out of memory");
  return -1;
}

static int tokenize(const kn_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                    const struct plain *plain, int32_t **ids, size_t *n_ids, char *err, size_t errlen) {
  struct kn_ids out = {0};
  struct frags f = {0};
  *ids = NULL;
  *n_ids = 0;
  if (!text && len > 0) {
    snprintf(err, errlen, "tokenize: NULL text");
    return -1;
  }
  if (partition(t, text, len, parse_special, plain, &f) != 0) {
    snprintf(err, errlen, "out of memory splitting special tokens");
    return -1;
  }
  int rc = -1;
  if (add_special && t->add_bos && kn_ids_push(&out, t->bos) != 0) goto oom;
  if (encode_frags(t, text, &f, &out, err, errlen) != 0) goto done;
  if (add_special && t->add_eos && kn_ids_push(&out, t->eos) != 0) goto oom;
  *ids = out.v;
  *n_ids = out.n;
  out.v = NULL;
  rc = 0;
  goto done;
oom:
  snprintf(err, errlen, "out of memory");
done:
  free(out.v);
  free(f.v);
  return rc;
}

int kn_tokenize(const kn_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t **ids, size_t *n_ids, char *err, size_t errlen) {
  return tokenize(t, text, len, add_special, parse_special, NULL, ids, n_ids, err, errlen);
}

int kn_tokenize_plain(const kn_tokenizer *t, const char *text, size_t len, bool add_special, const kn_text_span *plain,
                      size_t n_plain, int32_t **ids, size_t *n_ids, char *err, size_t errlen) {
  for (size_t i = 0; i < n_plain; i++)
    if (plain[i].off + plain[i].len > len || (i && plain[i].off < plain[i - 1].off + plain[i - 1].len)) {
      *ids = NULL, *n_ids = 0;
      snprintf(err, errlen, "tokenize: plain range %zu is out of order or past the text", i);
      return -1;
    }
  struct plain p = {plain, n_plain};
  return tokenize(t, text, len, add_special, true, &p, ids, n_ids, err, errlen);
}

/* ---- loading from GGUF: tokenizer.ggml.* into a kn_vocab_desc ---- */

struct gguf_arrays {
  const char **tokens, **merges;
  size_t *token_lens, *merge_lens;
  float *scores;
  int32_t *types;
};

static void arrays_free(struct gguf_arrays *a) {
  free(a->tokens);
  free(a->merges);
  free(a->token_lens);
  free(a->merge_lens);
  free(a->scores);
  free(a->types);
}

static const char *value_kind(const kn_gguf_value *v, char *buf, size_t cap) {
  if (v->type == KN_GGUF_ARRAY)
    snprintf(buf, cap, "array of %s", kn_gguf_type_name(v->elem));
  else
    snprintf(buf, cap, "%s", kn_gguf_type_name(v->type));
  return buf;
}

/* An array of strings; the strings stay in the kn_gguf (the tokenizer copies them). */
static int get_strings(const kn_gguf *g, const char *key, const char ***out, size_t **lens, size_t *n, char *err,
                       size_t errlen) {
  const kn_gguf_value *v = kn_gguf_get(g, key);
  char kind[64];
  *n = 0;
  if (!v) return 0;
  if (v->type != KN_GGUF_ARRAY || v->elem != KN_GGUF_STRING) {
    snprintf(err, errlen, "%s: expected an array of strings, found %s", key, value_kind(v, kind, sizeof kind));
    return -1;
  }
  uint64_t m = kn_gguf_arr_len(v);
  if (m > SIZE_MAX / sizeof **out || m > (uint64_t)INT32_MAX) {
    snprintf(err, errlen, "%s: %llu entries is too many", key, (unsigned long long)m);
    return -1;
  }
  *out = malloc((m ? m : 1) * sizeof **out);
  *lens = malloc((m ? m : 1) * sizeof **lens);
  if (!*out || !*lens) {
    snprintf(err, errlen, "%s: out of memory for %llu entries", key, (unsigned long long)m);
    return -1;
  }
  for (uint64_t i = 0; i < m; i++) {
    uint64_t l = 0;
    (*out)[i] = kn_gguf_arr_str(v, i, &l);
    (*lens)[i] = (size_t)l;
  }
  *n = (size_t)m;
  return 0;
}

static bool is_int_type(kn_gguf_type t) {
  return t == KN_GGUF_U8 || t == KN_GGUF_I8 || t == KN_GGUF_U16 || t == KN_GGUF_I16 || t == KN_GGUF_U32 ||
         t == KN_GGUF_I32 || t == KN_GGUF_U64 || t == KN_GGUF_I64;
}

/* A numeric array with at least n entries, as floats (scores) or integers (token types). */
static int get_numbers(const kn_gguf *g, const char *key, size_t n, float **f, int32_t **iv, char *err, size_t errlen) {
  const kn_gguf_value *v = kn_gguf_get(g, key);
  char kind[64];
  if (!v) return 0;
  bool ok =
      v->type == KN_GGUF_ARRAY && (is_int_type(v->elem) || (f && (v->elem == KN_GGUF_F32 || v->elem == KN_GGUF_F64)));
  if (!ok) {
    snprintf(err, errlen, "%s: expected an array of %s, found %s", key, f ? "numbers" : "integers",
             value_kind(v, kind, sizeof kind));
    return -1;
  }
  if (kn_gguf_arr_len(v) < n) {
    snprintf(err, errlen, "%s: %llu entries for %zu tokens", key, (unsigned long long)kn_gguf_arr_len(v), n);
    return -1;
  }
  void *dst = malloc(n ? n * 4 : 4);
  if (!dst) {
    snprintf(err, errlen, "%s: out of memory", key);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (f)
      ((float *)dst)[i] = (float)kn_gguf_arr_float(v, i, 0.0);
    else
      ((int32_t *)dst)[i] = (int32_t)kn_gguf_arr_int(v, i, 0);
  }
  if (f)
    *f = dst;
  else
    *iv = dst;
  return 0;
}

/* An optional integer (token id) or bool (flag); *out keeps "absent" when the key is missing. */
static int get_scalar(const kn_gguf *g, const char *key, bool is_bool, int64_t *out, char *err, size_t errlen) {
  const kn_gguf_value *v = kn_gguf_get(g, key);
  char kind[64];
  if (!v) return 0;
  bool ok = is_int_type(v->type) || (is_bool && v->type == KN_GGUF_BOOL);
  int64_t x = ok ? kn_gguf_value_int(v, INT64_MIN) : INT64_MIN;
  if (x == INT64_MIN) {
    snprintf(err, errlen, "%s: expected %s, found %s", key, is_bool ? "a bool" : "an integer token id",
             value_kind(v, kind, sizeof kind));
    return -1;
  }
  /* converters write (uint32_t)-1 for "no such token" */
  *out = is_bool ? (x != 0) : (x < 0 || x == UINT32_MAX ? -1 : x);
  return 0;
}

static int read_ids(const kn_gguf *g, kn_vocab_desc *d, char *err, size_t errlen) {
  struct {
    const char *key;
    int64_t *dst;
  } ids[] = {{"tokenizer.ggml.bos_token_id", &d->bos},     {"tokenizer.ggml.eos_token_id", &d->eos},
             {"tokenizer.ggml.eot_token_id", &d->eot},     {"tokenizer.ggml.eom_token_id", &d->eom},
             {"tokenizer.ggml.unknown_token_id", &d->unk}, {"tokenizer.ggml.seperator_token_id", &d->sep},
             {"tokenizer.ggml.padding_token_id", &d->pad}};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    if (get_scalar(g, ids[i].key, false, ids[i].dst, err, errlen) != 0) return -1;
  struct {
    const char *key;
    int *dst;
  } flags[] = {{"tokenizer.ggml.add_bos_token", &d->add_bos},
               {"tokenizer.ggml.add_eos_token", &d->add_eos},
               {"tokenizer.ggml.add_space_prefix", &d->add_space_prefix}};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    int64_t v = -1;
    if (get_scalar(g, flags[i].key, true, &v, err, errlen) != 0) return -1;
    *flags[i].dst = (int)v;
  }
  return 0;
}

static int read_names(const kn_gguf *g, kn_vocab_desc *d, char *err, size_t errlen) {
  const char *keys[] = {"tokenizer.ggml.model", "tokenizer.ggml.pre"};
  const char **dst[] = {&d->model, &d->pre};
  char kind[64];
  for (int i = 0; i < 2; i++) {
    const kn_gguf_value *v = kn_gguf_get(g, keys[i]);
    if (v && v->type != KN_GGUF_STRING) {
      snprintf(err, errlen, "%s: expected a string, found %s", keys[i], value_kind(v, kind, sizeof kind));
      return -1;
    }
    *dst[i] = v ? v->s : NULL;
  }
  return 0;
}

kn_tokenizer *kn_tokenizer_load(const kn_gguf *g, char *err, size_t errlen) {
  kn_vocab_desc d;
  struct gguf_arrays a = {0};
  kn_tokenizer *t = NULL;
  kn_vocab_desc_init(&d);
  if (read_names(g, &d, err, errlen) != 0 || read_ids(g, &d, err, errlen) != 0) goto done;
  if (get_strings(g, "tokenizer.ggml.tokens", &a.tokens, &a.token_lens, &d.n_tokens, err, errlen) != 0 ||
      get_strings(g, "tokenizer.ggml.merges", &a.merges, &a.merge_lens, &d.n_merges, err, errlen) != 0 ||
      get_numbers(g, "tokenizer.ggml.scores", d.n_tokens, &a.scores, NULL, err, errlen) != 0 ||
      get_numbers(g, "tokenizer.ggml.token_type", d.n_tokens, NULL, &a.types, err, errlen) != 0)
    goto done;
  d.tokens = a.tokens;
  d.token_lens = a.token_lens;
  d.merges = a.merges;
  d.merge_lens = a.merge_lens;
  d.scores = a.scores;
  d.token_types = a.types;
  t = kn_tokenizer_create(&d, err, errlen);
done:
  arrays_free(&a);
  return t;
}
