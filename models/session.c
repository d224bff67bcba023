/* Sessions: token history of a KV cache slot, prefix reuse, and chunked prompt evaluation. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kn_session {
  kn_model *m;
  int slot;
  int32_t *toks;
  int n;
};

kn_session *kn_session_new(kn_model *m, int slot) {
  if (slot < 0 || slot >= m->n_slots) return NULL;
  kn_session *s = calloc(1, sizeof *s);
  if (!s || !(s->toks = malloc(m->n_ctx * sizeof *s->toks))) return free(s), NULL;
  s->m = m, s->slot = slot;
  return s;
}

void kn_session_free(kn_session *s) {
  if (s) free(s->toks), free(s);
}

int kn_session_len(const kn_session *s) { return s->n; }
int kn_session_slot(const kn_session *s) { return s->slot; }

int kn_session_reuse(kn_session *s, const int32_t *toks, int n) {
  int keep = 0;
  while (keep < s->n && keep < n && s->toks[keep] == toks[keep]) keep++;
  if (keep >= n) keep = n > 0 ? n - 1 : 0;
  return s->n = keep;
}

int kn_session_append(kn_session *s, const int32_t *toks, int n, char *err, size_t errlen) {
  if (n < 0 || s->n + n > s->m->n_ctx)
    return snprintf(err, errlen, "the context of %d tokens is full", s->m->n_ctx), -1;
  memcpy(s->toks + s->n, toks, (size_t)n * sizeof *toks);
  s->n += n;
  return 0;
}
const int32_t *kn_session_tokens(const kn_session *s) { return s->toks; }
void kn_session_reset(kn_session *s) { s->n = 0; }

int kn_session_prompt(kn_session *s, const int32_t *toks, int n, float *logits, int *n_eval, char *err, size_t errlen) {
  if (n < 1) return snprintf(err, errlen, "empty prompt"), -1;
  if (n > s->m->n_ctx)
    return snprintf(err, errlen, "the prompt has %d tokens, more than the context length of %d tokens", n, s->m->n_ctx), -1;
  int keep = 0;
  while (keep < s->n && keep < n && s->toks[keep] == toks[keep]) keep++;
  if (keep == n) keep = n - 1; /* the last token is evaluated again: its logits are needed */
  s->n = keep;
  int done = keep;
  while (done < n) {
    int c = n - done < KN_MAX_PASS ? n - done : KN_MAX_PASS;
    if (kn_model_forward(s->m, s->slot, toks + done, c, done, false, logits, err, errlen)) {
      s->n = 0; /* the slot's contents are unknown now */
      return -1;
    }
    memcpy(s->toks + done, toks + done, c * sizeof *toks);
    done += c;
    s->n = done;
  }
  if (n_eval) *n_eval = n - keep;
  return 0;
}

int kn_session_push(kn_session *s, int32_t tok, float *logits, char *err, size_t errlen) {
  if (s->n >= s->m->n_ctx) return snprintf(err, errlen, "the context of %d tokens is full", s->m->n_ctx), -1;
  if (kn_model_forward(s->m, s->slot, &tok, 1, s->n, false, logits, err, errlen)) return -1;
  s->toks[s->n++] = tok;
  return 0;
}
