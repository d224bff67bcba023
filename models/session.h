/* A session is one conversation's view of a KV cache slot: the tokens whose keys and values the slot holds. A new
 * prompt reuses the longest common prefix with them, so an agent's next turn only evaluates its new tokens. */
#ifndef KN_SESSION_H
#define KN_SESSION_H

#include "model.h"

typedef struct kn_session kn_session;

kn_session *kn_session_new(kn_model *m, int slot);
void kn_session_free(kn_session *s);
/* Make the slot hold exactly toks[0..n) and write the last position's logits (n_vocab floats). *n_eval (may be
 * NULL) receives how many tokens were evaluated (the rest came from the cache). Prompts are evaluated in chunks of
 * at most `batch` tokens. -1 with a message when the prompt does not fit the context. */
int kn_session_prompt(kn_session *s, const int32_t *toks, int n, float *logits, int *n_eval, char *err, size_t errlen);
/* Append one token (sampled) and write the next logits. */
int kn_session_push(kn_session *s, int32_t tok, float *logits, char *err, size_t errlen);
/* For a caller that batches several sessions into one pass (kn_model_forward_rows): keep the longest common prefix
 * of the cached tokens with toks[0..n) (at most n - 1: the last token is evaluated again for its logits) and return
 * its length, where evaluation resumes; then record tokens once a pass has evaluated them at positions
 * kn_session_len(s).. (-1 with a message past the context). */
int kn_session_reuse(kn_session *s, const int32_t *toks, int n);
int kn_session_append(kn_session *s, const int32_t *toks, int n, char *err, size_t errlen);
int kn_session_slot(const kn_session *s);
int kn_session_len(const kn_session *s);
const int32_t *kn_session_tokens(const kn_session *s);
void kn_session_reset(kn_session *s);

#endif
