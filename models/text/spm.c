/* models/text/spm.c: SentencePiece BPE (tokenizer.ggml.model "llama": Llama 1/2, Mistral v1, TinyLlama).
 * Spaces become U+2581 ("▁"), a dummy "▁" goes in front of text that starts the prompt or follows a special
 * token, then adjacent symbols merge highest score first; characters no token covers fall back to <0xNN> tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

int kn_spm_setup(kn_tokenizer *t, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  for (unsigned b = 0; b < 256; b++) {
    char hex[8];
    snprintf(hex, sizeof hex, "<0x%02X>", b);
    int32_t id = kn_tok_find(t, hex, 6);
    if (id < 0) { /* some vocabularies spell single bytes directly */
      char c = (char)b;
      id = kn_tok_find(t, &c, 1);
    }
    t->byte_tok[b] = id;
  }
  return 0;
}

struct ssym {
  size_t off, n; /* n == 0: merged into its left neighbour */
  int32_t prev, next;
};

struct bigram {
  float score;
  int32_t left, right;
  size_t size;
};

struct spm_work {
  const kn_tokenizer *t;
  const char *s;
  struct ssym *sym;
  struct bigram *heap;
  size_t n_heap, heap_cap;
};

/* Higher score first; on equal scores the leftmost pair, as the reference's queue orders them. */
static bool bigram_before(const struct bigram *a, const struct bigram *b) {
  return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int bpush(struct spm_work *w, struct bigram g) {
  if (w->n_heap == w->heap_cap) {
    size_t nc = w->heap_cap ? w->heap_cap * 2 : 64;
    struct bigram *nh = realloc(w->heap, nc * sizeof *nh);
    if (!nh) return -1;
    w->heap = nh;
    w->heap_cap = nc;
  }
  size_t i = w->n_heap++;
  while (i > 0 && bigram_before(&g, &w->heap[(i - 1) / 2])) {
    w->heap[i] = w->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  w->heap[i] = g;
  return 0;
}

static struct bigram bpop(struct spm_work *w) {
  struct bigram top = w->heap[0], last = w->heap[--w->n_heap];
  size_t i = 0, n = w->n_heap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && bigram_before(&w->heap[c + 1], &w->heap[c])) c++;
    if (!bigram_before(&w->heap[c], &last)) break;
    w->heap[i] = w->heap[c];
    i = c;
  }
  if (n > 0) w->heap[i] = last;
  return top;
}

/* Queue the pair if its concatenation is a token. Merged symbols stay contiguous in the text. */
static int try_bigram(struct spm_work *w, int32_t l, int32_t r) {
  if (l < 0 || r < 0) return 0;
  size_t size = w->sym[l].n + w->sym[r].n;
  int32_t id = kn_tok_find(w->t, w->s + w->sym[l].off, size);
  if (id < 0) return 0;
  struct bigram g = {w->t->tok[id].score, l, r, size};
  return bpush(w, g);
}

static int emit_symbol(struct spm_work *w, const struct ssym *y, struct kn_ids *out, char *err, size_t errlen) {
  const kn_tokenizer *t = w->t;
  int32_t id = kn_tok_find(t, w->s + y->off, y->n);
  if (id >= 0 && kn_ids_push(out, id) != 0) goto oom;
  if (id >= 0) return 0;
  for (size_t j = 0; j < y->n; j++) {
    unsigned char b = (unsigned char)w->s[y->off + j];
    int32_t bt = t->byte_tok[b] >= 0 ? t->byte_tok[b] : t->unk;
    if (bt < 0) {
      snprintf(err, errlen, "byte 0x%02X has no <0x%02X> token and the vocabulary has no unknown token", b, b);
      return -1;
    }
    if (kn_ids_push(out, bt) != 0) goto oom;
  }
  return 0;
oom:
  snprintf(err, errlen, "out of memory");
  return -1;
}

static int merge_all(struct spm_work *w, size_t n_sym) {
  for (size_t i = 1; i < n_sym; i++)
    if (try_bigram(w, (int32_t)i - 1, (int32_t)i) != 0) return -1;
  while (w->n_heap > 0) {
    struct bigram g = bpop(w);
    struct ssym *L = &w->sym[g.left], *R = &w->sym[g.right];
    if (L->n == 0 || R->n == 0 || L->n + R->n != g.size) continue; /* stale */
    L->n += R->n;
    R->n = 0;
    L->next = R->next;
    if (R->next >= 0) w->sym[R->next].prev = g.left;
    if (try_bigram(w, L->prev, g.left) != 0 || try_bigram(w, g.left, L->next) != 0) return -1;
  }
  return 0;
}

/* "▁"-escaped copy of the text, with the dummy prefix when asked. */
static char *escape(const char *text, size_t len, bool prefix_space, size_t *out_len) {
  if (len > (SIZE_MAX - 4) / 3) return NULL;
  char *s = malloc(3 * len + 4);
  if (!s) return NULL;
  size_t n = 0;
  if (prefix_space) {
    memcpy(s, "\xE2\x96\x81", 3);
    n = 3;
  }
  for (size_t i = 0; i < len; i++) {
    if (text[i] == ' ') {
      memcpy(s + n, "\xE2\x96\x81", 3);
      n += 3;
    } else
      s[n++] = text[i];
  }
  *out_len = n;
  return s;
}

int kn_spm_encode(const kn_tokenizer *t, const char *text, size_t len, bool prefix_space, struct kn_ids *out, char *err,
                  size_t errlen) {
  size_t n = 0;
  char *s = escape(text, len, prefix_space, &n);
  if (!s || n > INT32_MAX) {
    free(s);
    snprintf(err, errlen, "cannot encode %zu bytes of text (out of memory or too long)", len);
    return -1;
  }
  struct spm_work w = {.t = t, .s = s};
  w.sym = malloc((n ? n : 1) * sizeof *w.sym);
  int rc = -1;
  if (!w.sym) goto oom;
  size_t n_sym = 0;
  for (size_t off = 0; off < n; n_sym++) {
    size_t k = kn_utf8_len((unsigned char)s[off]);
    if (k > n - off) k = n - off;
    w.sym[n_sym] = (struct ssym){off, k, (int32_t)n_sym - 1, off + k < n ? (int32_t)n_sym + 1 : -1};
    off += k;
  }
  if (merge_all(&w, n_sym) != 0) goto oom;
  rc = 0;
  for (int32_t i = n_sym ? 0 : -1; i >= 0 && rc == 0; i = w.sym[i].next)
    rc = emit_symbol(&w, &w.sym[i], out, err, errlen);
  goto done;
oom:
  snprintf(err, errlen, "out of memory encoding %zu bytes", len);
done:
  free(w.heap);
  free(w.sym);
  free(s);
  return rc;
}
