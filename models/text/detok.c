/* models/text/detok.c: token ids back to text.
 * kn_detokenize joins the pieces of a whole sequence; kn_detok streams generated tokens and emits only complete
 * UTF-8, because byte-level vocabularies split one emoji or CJK character over several tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

/* The piece a token contributes under the decode flags; *first tracks the start of the text. */
static const char *piece_for(const kn_tokenizer *t, int32_t id, unsigned flags, bool *first, size_t *len) {
  if ((flags & KN_DECODE_SKIP_BOS) && *first && id == t->bos) {
    *len = 0;
    return "";
  }
  const char *p = kn_token_piece(t, id, (flags & KN_DECODE_SPECIAL) != 0, len);
  if (!p) return NULL;
  if (*first && (flags & KN_DECODE_STRIP_SPACE) && t->add_space_prefix && *len > 0 && p[0] == ' ') {
    p++;
    (*len)--;
  }
  *first = false;
  return p;
}

char *kn_detokenize(const kn_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, size_t *len, char *err,
                    size_t errlen) {
  size_t total = 0, plen;
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    if (!piece_for(t, ids[i], flags, &first, &plen)) {
      snprintf(err, errlen, "detokenize: token %lld at position %zu is out of range (vocabulary of %d)",
               (long long)ids[i], i, (int)t->n_tokens);
      return NULL;
    }
    total += plen; /* pieces are bounded by the vocabulary text (< 4 GiB), n by memory: no overflow */
  }
  char *s = malloc(total + 1);
  if (!s) {
    snprintf(err, errlen, "out of memory for %zu bytes of text", total);
    return NULL;
  }
  size_t o = 0;
  first = true;
  for (size_t i = 0; i < n; i++) {
    const char *p = piece_for(t, ids[i], flags, &first, &plen);
    memcpy(s + o, p, plen);
    o += plen;
  }
  s[o] = 0;
  *len = o;
  return s;
}

struct kn_detok {
  const kn_tokenizer *t;
  unsigned flags;
  bool first;
  unsigned char hold[4];
  size_t n_hold;
  char *buf;
  size_t cap;
};

kn_detok *kn_detok_new(const kn_tokenizer *t, unsigned flags) {
  kn_detok *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->t = t;
  d->flags = flags;
  d->first = true;
  return d;
}

void kn_detok_free(kn_detok *d) {
  if (!d) return;
  free(d->buf);
  free(d);
}

/* Could these bytes still become a valid sequence once more arrive? */
static bool utf8_incomplete(const unsigned char *s, size_t n) {
  unsigned char probe[4] = {0};
  size_t need = kn_utf8_len(s[0]);
  if (n >= need || need == 1) return false;
  memcpy(probe, s, n);
  /* pad with the smallest continuation the lead byte allows and check validity */
  for (size_t i = n; i < need; i++) probe[i] = 0x80;
  if (n == 1 && (s[0] == 0xE0)) probe[1] = 0xA0;
  if (n == 1 && (s[0] == 0xF0)) probe[1] = 0x90;
  return kn_utf8_valid_prefix(probe, need) == need;
}

static int reserve(kn_detok *d, size_t need) {
  if (need <= d->cap) return 0;
  size_t nc = d->cap ? d->cap : 64;
  while (nc < need) {
    if (nc > SIZE_MAX / 2) return -1;
    nc *= 2;
  }
  char *nb = realloc(d->buf, nc);
  if (!nb) return -1;
  d->buf = nb;
  d->cap = nc;
  return 0;
}

/* Emit complete sequences of held+piece into buf, keep a trailing incomplete one, replace invalid bytes. */
static size_t drain(kn_detok *d, const unsigned char *p, size_t n, bool final) {
  size_t o = 0, i = 0;
  unsigned char *all = (unsigned char *)d->buf + 3 * (d->n_hold + n) + 4; /* staging area after the output */
  memcpy(all, d->hold, d->n_hold);
  if (n > 0) memcpy(all + d->n_hold, p, n);
  size_t m = d->n_hold + n;
  d->n_hold = 0;
  while (i < m) {
    size_t k = kn_utf8_valid_prefix(all + i, m - i);
    if (k > 0) {
      memcpy(d->buf + o, all + i, k);
      o += k;
      i += k;
    } else if (!final && utf8_incomplete(all + i, m - i)) {
      memcpy(d->hold, all + i, m - i);
      d->n_hold = m - i;
      break;
    } else {
      memcpy(d->buf + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  return o;
}

int kn_detok_push(kn_detok *d, int32_t id, const char **out, size_t *len) {
  size_t plen;
  *out = "";
  *len = 0;
  const char *p = piece_for(d->t, id, d->flags, &d->first, &plen);
  if (!p) return -1;
  size_t m = d->n_hold + plen;
  if (m > (SIZE_MAX - 8) / 4 || reserve(d, 4 * m + 8) != 0) return -1;
  *len = drain(d, (const unsigned char *)p, plen, false);
  *out = d->buf;
  return 0;
}

void kn_detok_flush(kn_detok *d, const char **out, size_t *len) {
  *out = "";
  *len = 0;
  if (d->n_hold > 0 && reserve(d, 4 * d->n_hold + 8) == 0) {
    *len = drain(d, NULL, 0, true);
    *out = d->buf;
  }
  d->n_hold = 0;
  d->first = true;
}
