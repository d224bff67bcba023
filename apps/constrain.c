/* apps/constrain.c: constrained generation for forced tool calls and JSON mode. An acceptor follows the output
 * byte by byte ([one of some literals] -> [a JSON object] -> [a literal tail], or a separator back to the literals
 * for another call of the same list); sampling masks the tokens whose bytes it would reject, and when the token
 * budget runs low the shortest completion is forced instead. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/tokenizer.h"
#include "serve.h"

void kc_spec_free(kc_spec *s) {
  for (int i = 0; i < s->n_choices; i++) free(s->choices[i]);
  free(s->choices), free(s->tail), free(s->sep), free(s->choice_schema);
  memset(s, 0, sizeof *s);
}

/* The phase after the choice: the JSON object, else the tail, else done. */
static void after_choice(kc_state *k) {
  k->pos = 0;
  if (k->spec->json) {
    const kn_jschema *sch = k->spec->schema;
    if (k->spec->n_choices && k->spec->choice_schema && k->spec->choice_schema[k->cand])
      sch = k->spec->choice_schema[k->cand];
    k->phase = KC_JSON;
    kn_jsv_init(&k->v, sch ? sch : kn_jschema_any_object());
  } else {
    k->phase = k->spec->tail && *k->spec->tail ? KC_TAIL : KC_DONE;
  }
  k->in_sep = false;
}

void kc_init(kc_state *k, const kc_spec *spec) {
  k->spec = spec;
  k->cand = 0, k->pos = 0, k->in_sep = false;
  k->phase = KC_CHOICE;
  if (spec->n_choices == 0) after_choice(k);
}

/* Candidate i agrees with the bytes matched so far (those of the current candidate). */
static int agrees(const kc_state *k, int i) {
  const char *c = k->spec->choices[i], *cur = k->spec->choices[k->cand];
  return strlen(c) >= k->pos && memcmp(c, cur, k->pos) == 0;
}

static int push_choice(kc_state *k, unsigned char c) {
  const kc_spec *s = k->spec;
  int found = -1;
  for (int i = 0; i < s->n_choices && found < 0; i++) {
    int idx = (k->cand + i) % s->n_choices; /* the current candidate first */
    if (agrees(k, idx) && strlen(s->choices[idx]) > k->pos && (unsigned char)s->choices[idx][k->pos] == c) found = idx;
  }
  if (found < 0) return 0;
  k->cand = found;
  k->pos++;
  if (k->pos == strlen(s->choices[found])) after_choice(k);
  return 1;
}

int kc_push(kc_state *k, unsigned char c) {
  switch (k->phase) {
  case KC_CHOICE:
    return push_choice(k, c);
  case KC_JSON:
    if (!kn_jsv_push(&k->v, c)) return 0;
    if (kn_jsv_done(&k->v)) {
      k->pos = 0, k->in_sep = false;
      k->phase = k->spec->tail && *k->spec->tail ? KC_TAIL : KC_DONE;
    }
    return 1;
  case KC_TAIL: { /* the tail, or the separator to another call: whichever the bytes so far agree with */
    const char *cur = k->in_sep ? k->spec->sep : k->spec->tail, *other = k->in_sep ? k->spec->tail : k->spec->sep;
    if (!cur[k->pos] || (unsigned char)cur[k->pos] != c) {
      if (!other || strncmp(other, cur, k->pos) || !other[k->pos] || (unsigned char)other[k->pos] != c) return 0;
      k->in_sep = !k->in_sep, cur = other;
    }
    if (cur[++k->pos]) return 1;
    if (k->in_sep) k->phase = KC_CHOICE, k->cand = 0, k->pos = k->spec->skip, k->in_sep = false;
    else k->phase = KC_DONE;
    return 1;
  }
  default:
    return 0;
  }
}

void kc_copy(kc_state *d, const kc_state *s) {
  d->spec = s->spec, d->phase = s->phase, d->cand = s->cand, d->pos = s->pos, d->in_sep = s->in_sep;
  if (s->phase == KC_JSON) kn_jsv_copy(&d->v, &s->v);
}

size_t kc_prefix(const kc_state *k, const void *bytes, size_t n) {
  const unsigned char *b = bytes;
  if (k->phase == KC_JSON) { /* the hot path of masking, without a copy of the state: the validator, then the tail
                              * once the object is complete */
    int done;
    size_t m = kn_jsv_prefix(&k->v, bytes, n, &done);
    if (m == n || !done) return m;
    if (!k->spec->sep) {
      const char *tail = k->spec->tail ? k->spec->tail : "";
      size_t r = 0;
      while (m + r < n && tail[r] && (unsigned char)tail[r] == b[m + r]) r++;
      return m + r;
    }
  }
  kc_state t;
  kc_copy(&t, k);
  size_t i = 0;
  while (i < n && kc_push(&t, b[i])) i++;
  return i;
}

int kc_accepts(const kc_state *k, const void *bytes, size_t n) { return kc_prefix(k, bytes, n) == n; }

/* The rest of the output: the chosen (or current) literal, the schema's shortest completion, the tail (a separator
 * already begun is finished, and the call after it closed the same way). */
void kc_closure(const kc_state *k, kn_bytes *out) {
  kc_state t;
  kc_copy(&t, k);
  for (int round = 0; round < 8 && t.phase != KC_DONE; round++) {
    if (t.phase == KC_JSON) {
      size_t n = 0;
      char *rest = kn_jsv_closure(&t.v, &n);
      if (!rest) return; /* cannot happen for a compiled schema */
      kn_bytes_put(out, rest, n);
      free(rest);
      t.phase = t.spec->tail && *t.spec->tail ? KC_TAIL : KC_DONE, t.pos = 0, t.in_sep = false;
      continue;
    }
    const char *c = t.phase == KC_CHOICE ? t.spec->choices[t.cand] + t.pos : (t.in_sep ? t.spec->sep : t.spec->tail) + t.pos;
    kn_bytes_puts(out, c);
    for (; *c; c++) kc_push(&t, (unsigned char)*c);
  }
}

int kc_closure_after(const kc_state *k, const void *bytes, size_t n, kn_bytes *out) {
  kc_state t;
  kc_copy(&t, k);
  for (size_t i = 0; i < n; i++)
    if (!kc_push(&t, ((const unsigned char *)bytes)[i])) return -1;
  kc_closure(&t, out);
  return out->oom ? -1 : 0;
}

size_t kc_forced(const kc_state *k, const char **lit) {
  if (k->phase == KC_TAIL) { /* with a separator, what it and the tail share */
    const char *cur = k->in_sep ? k->spec->sep : k->spec->tail, *other = k->in_sep ? k->spec->tail : k->spec->sep;
    *lit = cur + k->pos;
    size_t n = strlen(*lit), m = 0;
    if (!other || strncmp(other, cur, k->pos) || strlen(other) <= k->pos) return n;
    while (m < n && other[k->pos + m] == (*lit)[m]) m++;
    return m;
  }
  if (k->phase != KC_CHOICE) return 0;
  /* the bytes every live choice has next: the whole rest when one is left */
  const char *cur = k->spec->choices[k->cand] + k->pos;
  size_t n = strlen(cur);
  for (int i = 0; i < k->spec->n_choices; i++) {
    if (!agrees(k, i)) continue;
    const char *c = k->spec->choices[i] + k->pos;
    size_t m = 0;
    while (m < n && c[m] == cur[m]) m++;
    n = m;
  }
  *lit = cur;
  return n;
}

typedef struct kc_tok {
  const char *p;
  uint32_t len;
  int32_t id;
  int32_t chars; /* code points when the bytes are plain string content (kn_jsv_free_string), else -1 */
} kc_tok;

/* The code points of plain string content (bytes from 0x20 up but '"' and '\\', whole well-formed UTF-8 sequences,
 * the ranges the JSON validator checks), -1 for anything else. */
static int32_t plain_chars(const unsigned char *p, size_t n) {
  int32_t chars = 0;
  for (size_t i = 0, k; i < n; i += k, chars++)
    if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\' || !(k = kn_utf8_valid_prefix(p + i, n - i))) return -1;
  return chars;
}

static int tok_cmp(const void *a, const void *b) {
  const kc_tok *x = a, *y = b;
  int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
  return c ? c : x->len != y->len ? (x->len < y->len ? -1 : 1) : (x->id > y->id) - (x->id < y->id);
}

int kc_vocab_init(kc_vocab *v, const kn_tokenizer *tok, int n_vocab) {
  v->tok = tok;
  v->n = n_vocab;
  v->sorted = NULL, v->n_sorted = 0;
  if (!(v->ok = calloc(n_vocab > 0 ? n_vocab : 1, 1))) return -1;
  int32_t nt = kn_tokenizer_n_tokens(tok);
  for (int b = 0; b < 256; b++) v->byte_tok[b] = -1;
  for (int id = 0; id < n_vocab && id < nt; id++) {
    size_t len = 0;
    unsigned a = kn_token_attr(tok, id);
    const char *p = kn_token_piece(tok, id, (a & KN_TOKEN_CONTROL) != 0, &len);
    v->ok[id] = p && len > 0 && (a & (KN_TOKEN_NORMAL | KN_TOKEN_BYTE)) && !kn_token_is_eog(tok, id);
    if (p && len > 0 && (a & KN_TOKEN_CONTROL) && !kn_token_is_eog(tok, id)) v->ok[id] = 2;
    if (v->ok[id] == 1 && len == 1 && v->byte_tok[(unsigned char)p[0]] < 0) v->byte_tok[(unsigned char)p[0]] = id;
    v->n_sorted += v->ok[id] != 0;
  }
  if (!(v->sorted = malloc((size_t)(v->n_sorted > 0 ? v->n_sorted : 1) * sizeof *v->sorted))) return kc_vocab_free(v), -1;
  int n = 0;
  for (int id = 0; id < n_vocab && id < nt; id++) {
    if (!v->ok[id]) continue;
    size_t len = 0;
    const char *p = kn_token_piece(tok, id, v->ok[id] == 2, &len);
    v->sorted[n++] = (kc_tok){p, (uint32_t)len, id, plain_chars((const unsigned char *)p, len)};
  }
  qsort(v->sorted, (size_t)n, sizeof *v->sorted, tok_cmp);
  for (int b = 0, i = 0; b <= 256; b++) {
    while (b < 256 && i < n && (unsigned char)v->sorted[i].p[0] < b) i++;
    v->first_at[b] = b < 256 ? i : n;
  }
  return 0;
}

void kc_vocab_free(kc_vocab *v) {
  free(v->ok), free(v->sorted);
  v->ok = NULL, v->sorted = NULL, v->n_sorted = 0;
}

static int token_ok(const kc_vocab *v, const kc_state *k, int id) {
  if (id < 0 || id >= v->n || !v->ok[id] || (v->ok[id] == 2 && k->phase == KC_JSON)) return 0;
  size_t len;
  const char *p = kn_token_piece(v->tok, id, v->ok[id] == 2, &len);
  return p && kc_accepts(k, p, len);
}

/* The end of the run of sorted[i .. hi) that begins with the n bytes at p (sorted[i] does). */
static int run_end(const kc_vocab *v, int i, int hi, const char *p, size_t n) {
  int lo = i + 1; /* the first index past the run lies in [lo, hi] */
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    const kc_tok *t = &v->sorted[mid];
    if (t->len >= n && !memcmp(t->p, p, n)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Most tokens are ruled out by a short prefix: by their first byte (a bitmap of the bytes the acceptor may take
 * next), else by the first bytes the acceptor refuses, which all tokens of the same run in byte order share (one
 * check and a binary search for the run, instead of a check per token: after `{` the ~40 % of tokens that begin with
 * a space and a letter go as a few hundred runs). Inside a string that takes any plain characters, most tokens are
 * taken: a plain token by its length alone. The rest are checked in full. */
int kc_mask(const kc_vocab *v, const kc_state *k, float *logits) {
  int room = k->phase == KC_JSON ? kn_jsv_free_string(&k->v) : -1;
  uint8_t first[256];
  for (int b = 0; b < 256; b++) {
    unsigned char c = (unsigned char)b;
    first[b] = (uint8_t)kc_accepts(k, &c, 1);
  }
  for (int t = 0; t < v->n; t++)
    if (!v->ok[t]) logits[t] = -INFINITY;
  int taken = 0;
  for (int b = 0; b < 256; b++) {
    int i = v->first_at[b], hi = v->first_at[b + 1];
    if (!first[b]) {
      for (; i < hi; i++) logits[v->sorted[i].id] = -INFINITY;
      continue;
    }
    while (i < hi) {
      const kc_tok *t = &v->sorted[i];
      if (v->ok[t->id] == 2 && k->phase == KC_JSON) { /* a control token: never inside JSON */
        logits[t->id] = -INFINITY, i++;
        continue;
      }
      if (room >= 0 && t->chars >= 0) {
        if (t->chars <= room) taken++;
        else logits[t->id] = -INFINITY;
        i++;
        continue;
      }
      size_t m = kc_prefix(k, t->p, t->len);
      if (m == t->len) {
        taken++, i++;
        continue;
      }
      for (int end = run_end(v, i, hi, t->p, m + 1); i < end; i++) logits[v->sorted[i].id] = -INFINITY;
    }
  }
  return taken;
}

int kc_sample(const kc_vocab *v, const kc_state *k, kn_sampler *smp, float *logits, float *scratch) {
  memcpy(scratch, logits, (size_t)v->n * sizeof *scratch);
  int id = kn_sample(smp, scratch);
  if (id == KN_SAMPLE_BAD_LOGITS) return id;
  if (token_ok(v, k, id)) return id;
  return kc_mask(v, k, logits) ? kn_sample(smp, logits) : -2;
}
