/* apps/constrain.c: constrained generation for forced tool calls and JSON mode. An acceptor follows the output
 * byte by byte ([one of some literals] -> [a JSON object] -> [a literal tail]); sampling masks the tokens whose
 * bytes it would reject, and when the token budget runs low the shortest completion is forced instead. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/tokenizer.h"
#include "serve.h"

void kc_spec_free(kc_spec *s) {
  for (int i = 0; i < s->n_choices; i++) free(s->choices[i]);
  free(s->choices), free(s->tail);
  memset(s, 0, sizeof *s);
}

/* The phase after the choice: the JSON object, else the tail, else done. */
static void after_choice(kc_state *k) {
  k->pos = 0;
  if (k->spec->json) {
    k->phase = KC_JSON;
    kn_jsonc_init(&k->j, KN_JSONC_OBJECT_ONLY);
  } else {
    k->phase = k->spec->tail && *k->spec->tail ? KC_TAIL : KC_DONE;
  }
}

void kc_init(kc_state *k, const kc_spec *spec) {
  memset(k, 0, sizeof *k);
  k->spec = spec;
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
    if (!kn_jsonc_push(&k->j, c)) return 0;
    if (kn_jsonc_done(&k->j)) {
      k->pos = 0;
      k->phase = k->spec->tail && *k->spec->tail ? KC_TAIL : KC_DONE;
    }
    return 1;
  case KC_TAIL:
    if ((unsigned char)k->spec->tail[k->pos] != c) return 0;
    if (!k->spec->tail[++k->pos]) k->phase = KC_DONE;
    return 1;
  default:
    return 0;
  }
}

int kc_accepts(const kc_state *k, const void *bytes, size_t n) {
  kc_state t = *k;
  const unsigned char *b = bytes;
  for (size_t i = 0; i < n; i++)
    if (!kc_push(&t, b[i])) return 0;
  return 1;
}

/* One byte that moves the JSON automaton toward the end of the object: close what is open, give the shortest
 * value where one is needed. */
static int json_close_byte(const kn_jsonc *j) {
  static const char *by_where[] = {
      [KN_JSONC_AT_VALUE] = "]0{",     [KN_JSONC_AT_KEY] = "}\"",       [KN_JSONC_IN_KEY] = "\"0",
      [KN_JSONC_AFTER_KEY] = ":",     [KN_JSONC_IN_STRING] = "\"0",    [KN_JSONC_IN_NUMBER] = "}]0",
      [KN_JSONC_IN_LITERAL] = "aelnrstu", [KN_JSONC_AFTER_VALUE] = "}]", [KN_JSONC_DONE] = "",
  };
  kn_jsonc_where w = kn_jsonc_where_at(j);
  const char *try = (unsigned)w < sizeof by_where / sizeof *by_where && by_where[w] ? by_where[w] : "";
  for (; *try; try++)
    if (kn_jsonc_accepts(j, try, 1)) return (unsigned char)*try;
  /* inside a UTF-8 sequence or an escape: any byte that is accepted */
  for (int c = 0x80; c < 0x100; c++) {
    unsigned char b = (unsigned char)c;
    if (kn_jsonc_accepts(j, &b, 1)) return c;
  }
  for (int c = 0x21; c < 0x80; c++) { /* never whitespace: it would not end */
    unsigned char b = (unsigned char)c;
    if (kn_jsonc_accepts(j, &b, 1)) return c;
  }
  return -1;
}

void kc_closure(const kc_state *k, sbuf *out) {
  kc_state t = *k;
  for (int guard = 0; guard < 1 << 16 && t.phase != KC_DONE; guard++) {
    int c;
    if (t.phase == KC_CHOICE) c = (unsigned char)t.spec->choices[t.cand][t.pos];
    else if (t.phase == KC_TAIL) c = (unsigned char)t.spec->tail[t.pos];
    else c = json_close_byte(&t.j);
    if (c < 0 || !kc_push(&t, (unsigned char)c)) return; /* cannot happen for a well-formed spec */
    char ch = (char)c;
    sb_put(out, &ch, 1);
  }
}

size_t kc_forced(const kc_state *k, const char **lit) {
  if (k->phase == KC_TAIL) {
    *lit = k->spec->tail + k->pos;
    return strlen(*lit);
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

int kc_vocab_init(kc_vocab *v, const kn_tokenizer *tok, int n_vocab) {
  v->tok = tok;
  v->n = n_vocab;
  if (!(v->ok = calloc(n_vocab > 0 ? n_vocab : 1, 1))) return -1;
  int32_t nt = kn_tokenizer_n_tokens(tok);
  for (int id = 0; id < n_vocab && id < nt; id++) {
    size_t len = 0;
    const char *p = kn_token_piece(tok, id, false, &len);
    unsigned a = kn_token_attr(tok, id);
    v->ok[id] = p && len > 0 && (a & (KN_TOKEN_NORMAL | KN_TOKEN_BYTE)) && !kn_token_is_eog(tok, id);
  }
  return 0;
}

void kc_vocab_free(kc_vocab *v) {
  free(v->ok);
  v->ok = NULL;
}

static int token_ok(const kc_vocab *v, const kc_state *k, int id) {
  if (id < 0 || id >= v->n || !v->ok[id]) return 0;
  size_t len;
  const char *p = kn_token_piece(v->tok, id, false, &len);
  return p && kc_accepts(k, p, len);
}

int kc_sample(const kc_vocab *v, const kc_state *k, kn_sampler *smp, float *logits, float *scratch) {
  memcpy(scratch, logits, (size_t)v->n * sizeof *scratch);
  int id = kn_sample(smp, scratch);
  if (id == KN_SAMPLE_BAD_LOGITS) return id;
  if (token_ok(v, k, id)) return id;
  int any = 0;
  for (int t = 0; t < v->n; t++) {
    if (token_ok(v, k, t)) any = 1;
    else logits[t] = -INFINITY;
  }
  return any ? kn_sample(smp, logits) : -2;
}
