/* apps/sched.c: the scheduler, continuous batching. One thread owns the model (kn_model_forward_rows is not
 * thread-safe) and runs every active KV slot in one forward pass per step: a row with the next token of each slot
 * that is decoding, plus chunks of the prompts being prefilled, so the weights are read once per step for all of
 * them. While streams decode, a prompt's chunk is sized so the step takes at most about twice a decode-only step
 * (a long new prompt does not stall the running streams); with nothing decoding it takes PREFILL_CHUNK tokens.
 * Sequences join and leave the batch at any step. A job goes to the free slot whose cached tokens share the longest
 * prefix with its prompt (an agent's next turn reuses its previous turn's KV). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device/base/env.h"
#include "models/model.h"
#include "models/session.h"
#include "serve.h"

#define PREFILL_CHUNK 256 /* prompt tokens per step when nothing decodes */
#define GAP_FACTOR 2.0    /* a step with prompt rows may take this many times a decode-only step */

typedef struct slot {
  int index;
  pthread_mutex_t *slot_mu; /* the scheduler's */
  kn_session *ses;
  srv_job *job;     /* NULL: free */
  double last_used;
  float *logits;
  bool prefilling;
  int pos;          /* prefill: tokens of the prompt in the cache */
  int32_t next;     /* decode: the sampled token this step evaluates, -1 none */
  kn_sampler *smp;
  kn_detok *dt;
  kn_bytes pend;        /* text held back: it may be the start of a stop string */
  int cmode;        /* 0 free, 1 the job's forced constraint, 2 the lazy one (a triggered tool call) */
  kc_state kc;
  int32_t *forced;  /* literal tokens to emit next */
  int n_forced, i_forced;
  char win[32];     /* the last bytes of free text, to see the trigger and <think> */
  size_t nwin;
  bool in_think;
  bool at_start;    /* only whitespace since the reply (or the last call) began */
} slot;

struct sched {
  kn_model *m;
  const kc_vocab *vocab;
  pthread_t th;
  bool started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_cond_t exit_cv; /* the thread has left its loop (exited) */
  bool exited;
  pthread_mutex_t slot_mu; /* guards the writes of slots' job pointers against sched_cut's reads (the thread reads
                            * its own without it); taken after mu */
  double step_delay;       /* KILN_SERVE_SLOW_STEP: seconds each forward pass is held back (a test mode) */
  srv_job **queue;
  int qn, max_queue;
  slot *slots;
  int n_slots;
  bool stop;
  float *scratch;
  kn_row *rows;          /* one step's rows, the rows whose logits it returns and their slots */
  int *outs, *out_slot;
  float *out_logits;
  double t_dec, t_row;   /* running estimates: a decode-only step's time, a prompt row's time */
  atomic_long kv_tokens; /* for /metrics: the sum of the slots' session lengths, updated every step */
};

/* ---- job output ------------------------------------------------------------------------------------------ */

static void release(srv_job *j, const char *s, size_t n) {
  if (!n) return;
  pthread_mutex_lock(&j->mu);
  kn_bytes_put(&j->out, s, n);
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

static void finish_job(srv_job *j, job_finish f, const char *err) {
  pthread_mutex_lock(&j->mu);
  if (!j->done) {
    j->done = true;
    j->finish = f;
    j->t_end = kn_now();
    if (err) snprintf(j->error, sizeof j->error, "%s", err);
  }
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

/* ---- slot life ------------------------------------------------------------------------------------------- */

static void slot_clear(slot *s, double now) {
  kn_sampler_free(s->smp), kn_detok_free(s->dt);
  s->smp = NULL, s->dt = NULL;
  free(s->forced);
  s->forced = NULL;
  s->n_forced = s->i_forced = 0;
  kn_bytes_free(&s->pend);
  pthread_mutex_lock(s->slot_mu);
  srv_job *j = s->job;
  s->job = NULL;
  pthread_mutex_unlock(s->slot_mu);
  if (j) job_unref(j);
  s->last_used = now;
}

static void slot_finish(slot *s, job_finish f, const char *err) {
  srv_job *j = s->job;
  if (f == FIN_STOP || f == FIN_LENGTH || f == FIN_TOOL) {
    const char *p;
    size_t n;
    if (s->dt) kn_detok_flush(s->dt, &p, &n), kn_bytes_put(&s->pend, p, n);
    if (!s->pend.oom) release(j, s->pend.s, s->pend.len);
  }
  finish_job(j, f, err);
  slot_clear(s, kn_now());
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
  int k = 0;
  while (k < na && k < nb && a[k] == b[k]) k++;
  return k;
}

/* The free slot that shares the longest prefix with the prompt; ties go to the least recently used. */
static slot *pick_slot(sched *S, const srv_job *j) {
  slot *best = NULL;
  int best_k = -1;
  for (int i = 0; i < S->n_slots; i++) {
    slot *s = &S->slots[i];
    if (s->job) continue;
    int k = common_prefix(kn_session_tokens(s->ses), kn_session_len(s->ses), j->prompt, j->n_prompt);
    if (k > best_k || (k == best_k && s->last_used < best->last_used)) best = s, best_k = k;
  }
  return best;
}

static int slot_start(sched *S, slot *s, srv_job *j) {
  pthread_mutex_lock(&S->slot_mu);
  s->job = j;
  pthread_mutex_unlock(&S->slot_mu);
  s->smp = kn_sampler_new(&j->sp, S->m->hp.n_vocab);
  s->dt = kn_detok_new(S->m->tok, j->render_special ? KN_DECODE_SPECIAL : 0);
  if (!s->smp || !s->dt) return -1;
  s->prefilling = true;
  s->next = -1;
  if (j->n_prompt < 1 || j->n_prompt > S->m->n_ctx) {
    char e[160];
    snprintf(e, sizeof e, "the prompt has %d tokens, more than the context length of %d tokens", j->n_prompt, S->m->n_ctx);
    if (j->n_prompt < 1) snprintf(e, sizeof e, "empty prompt");
    slot_finish(s, FIN_ERROR, e);
    return 0;
  }
  s->pos = kn_session_reuse(s->ses, j->prompt, j->n_prompt); /* the last prompt token is evaluated again */
  s->cmode = j->has_forced ? 1 : 0;
  if (j->has_forced) kc_init(&s->kc, &j->forced);
  s->nwin = 0;
  s->in_think = false;
  s->at_start = true;
  pthread_mutex_lock(&j->mu);
  j->slot = s->index;
  j->n_cached = s->pos;
  j->t_start = kn_now();
  pthread_mutex_unlock(&j->mu);
  return 0;
}

/* ---- decoding -------------------------------------------------------------------------------------------- */

/* Tokens for a literal: the tokenizer's, checked to spell the literal exactly (a SentencePiece space prefix would
 * not), else a greedy longest match over the vocabulary. */
static int tokenize_literal(const kc_vocab *v, const char *lit, size_t n, int32_t **out, int *nout) {
  const kn_tokenizer *t = v->tok;
  int32_t *ids = NULL;
  size_t nids = 0;
  char err[128];
  if (!kn_tokenize(t, lit, n, false, true, &ids, &nids, err, sizeof err)) {
    size_t off = 0;
    bool same = true;
    for (size_t i = 0; i < nids && same; i++) {
      size_t len;
      const char *p = kn_token_piece(t, ids[i], true, &len);
      same = p && off + len <= n && memcmp(lit + off, p, len) == 0;
      off += len;
    }
    if (same && off == n) return *out = ids, *nout = (int)nids, 0;
  }
  free(ids);
  if (!(ids = malloc((n ? n : 1) * sizeof *ids))) return -1;
  size_t k = 0, off = 0;
  while (off < n) {
    int32_t id = -1;
    size_t len = n - off < 32 ? n - off : 32;
    for (; len > 0 && id < 0; len--) { /* a token by its text, kept only when its bytes are these (byte-level BPE
                                           * spells bytes as other characters: "ü" is the text of byte 0xFC) */
      id = kn_token_lookup(t, lit + off, len);
      size_t pl = 0;
      const char *pc = id >= 0 ? kn_token_piece(t, id, true, &pl) : NULL;
      if (id >= 0 && (!pc || pl != len || memcmp(pc, lit + off, len))) id = -1;
    }
    if (id < 0) {
      char hex[8];
      snprintf(hex, sizeof hex, "<0x%02X>", (unsigned char)lit[off]);
      if ((id = kn_token_lookup(t, hex, strlen(hex))) < 0) id = v->byte_tok[(unsigned char)lit[off]];
      if (id < 0) return free(ids), -1;
      len = 0;
    }
    ids[k++] = id;
    off += len + 1;
  }
  return *out = ids, *nout = (int)k, 0;
}

static int queue_literal(sched *S, slot *s, const char *lit, size_t n) {
  int32_t *ids;
  int nids;
  if (tokenize_literal(S->vocab, lit, n, &ids, &nids) || nids == 0) return -1;
  free(s->forced);
  s->forced = ids, s->n_forced = nids, s->i_forced = 0;
  return 0;
}

/* How many more tokens this job may produce: max_tokens and the context (the last token needs no KV position). */
static int budget(sched *S, slot *s) {
  int ctx = S->m->n_ctx - kn_session_len(s->ses) + 1;
  int mt = s->job->max_tokens >= 0 ? s->job->max_tokens - s->job->n_gen : ctx;
  return mt < ctx ? mt : ctx;
}

/* The ending s[0..n) fits in room tokens: by its bytes (a token spells at least one), else by its tokens. */
static bool ending_fits(sched *S, const char *s, size_t n, int room) {
  if (room <= 0) return n == 0;
  if (n <= (size_t)room) return true;
  int32_t *ids = NULL;
  int nids = 0;
  if (tokenize_literal(S->vocab, s, n, &ids, &nids)) return false;
  free(ids);
  return nids <= room;
}

/* The next token under a constraint: a forced literal, the forced completion when the budget runs out, or a masked
 * sample. Negative on failure: kc_sample's codes, -3 out of memory. */
static int constrained_token(sched *S, slot *s) {
  kn_bytes cl = {0};
  kc_closure(&s->kc, &cl);
  int ctx_left = S->m->n_ctx - kn_session_len(s->ses) + 1;
  const char *lit;
  size_t n = kc_forced(&s->kc, &lit);
  int rc = 0;
  bool fits = !cl.oom && cl.len > 0 && ending_fits(S, cl.s, cl.len, ctx_left);
  if (fits && (size_t)budget(S, s) <= cl.len)
    rc = queue_literal(S, s, cl.s, cl.len); /* the shortest valid ending, even past max_tokens */
  else if (n)
    rc = queue_literal(S, s, lit, n);
  if (rc) return kn_bytes_free(&cl), -3;
  if (s->i_forced < s->n_forced) return kn_bytes_free(&cl), s->forced[s->i_forced++];
  int tok = kc_sample(S->vocab, &s->kc, s->smp, s->logits, S->scratch);
  /* The ending must still fit in the context after this token: one token can lengthen it by more than the one
   * position it takes ('{' of an object with required keys), so the budget alone could step past the point where
   * the ending fits and run out of context inside the value. Then the ending (which fits) is forced now instead. */
  size_t rl = 0;
  const char *raw = tok >= 0 && fits ? kn_token_piece(S->m->tok, tok, true, &rl) : NULL;
  kn_bytes after = {0};
  if (raw && (kc_closure_after(&s->kc, raw, rl, &after) || !ending_fits(S, after.s, after.len, ctx_left - 1))) {
    rc = queue_literal(S, s, cl.s, cl.len);
    tok = rc ? -3 : s->forced[s->i_forced++];
  }
  kn_bytes_free(&after);
  kn_bytes_free(&cl);
  return tok;
}

/* Free text: hold back what may start a stop string; 1 when a stop string ended the output. */
static int free_text(slot *s, const char *p, size_t n) {
  srv_job *j = s->job;
  kn_bytes_put(&s->pend, p, n);
  if (s->pend.oom) return -1;
  size_t keep = 0;
  for (int i = 0; i < j->n_stops; i++) {
    size_t sl = strlen(j->stops[i]);
    char *hit = memmem(s->pend.s, s->pend.len, j->stops[i], sl);
    if (hit) {
      release(j, s->pend.s, (size_t)(hit - s->pend.s));
      s->pend.len = 0;
      return 1;
    }
    for (size_t k = sl - 1 < s->pend.len ? sl - 1 : s->pend.len; k > keep; k--)
      if (memcmp(s->pend.s + s->pend.len - k, j->stops[i], k) == 0) {
        keep = k;
        break;
      }
  }
  release(j, s->pend.s, s->pend.len - keep);
  memmove(s->pend.s, s->pend.s + s->pend.len - keep, keep);
  s->pend.len = keep;
  return 0;
}

static bool win_ends(const slot *s, const char *t) {
  size_t n = strlen(t);
  return s->nwin >= n && memcmp(s->win + s->nwin - n, t, n) == 0;
}

/* Watch free text for the lazy trigger (a tool call opening) outside <think>. */
static void watch(sched *S, slot *s, const char *p, size_t n) {
  srv_job *j = s->job;
  for (size_t i = 0; i < n; i++) {
    if (s->nwin == sizeof s->win) memmove(s->win, s->win + 1, --s->nwin);
    s->win[s->nwin++] = p[i];
    if (win_ends(s, "<think>")) s->in_think = true;
    if (win_ends(s, "</think>")) s->in_think = false;
    bool hit = false;
    if (j->trigger && j->trigger_at_start) {
      hit = s->at_start && p[i] == j->trigger[0];
      if (!hit && p[i] != ' ' && p[i] != '\n' && p[i] != '\t' && p[i] != '\r' && p[i] != ';') s->at_start = false;
    } else if (j->trigger) {
      hit = !s->in_think && win_ends(s, j->trigger);
    }
    if (hit) {
      s->cmode = 2;
      kc_init(&s->kc, &j->lazy);
      s->nwin = 0;
      for (size_t k = i + 1; k < n; k++) /* the rest of the token is the call's first bytes */
        if (!kc_push(&s->kc, (unsigned char)p[k])) {
          s->cmode = 0; /* not a call we can follow: the parser judges the text */
          break;
        }
      return;
    }
  }
  (void)S;
}

/* Sample this slot's next token from its logits and emit its text; s->next is the token to evaluate next step, or
 * the slot has finished. */
static void decode_sample(sched *S, slot *s) {
  srv_job *j = s->job;
  const kn_tokenizer *tk = S->m->tok;
  bool forced = s->i_forced < s->n_forced;
  if (j->max_tokens == 0) return slot_finish(s, FIN_LENGTH, NULL);
  for (int i = 0; i < j->n_bias; i++) s->logits[j->bias_ids[i]] += j->bias[i];
  int tok = forced ? s->forced[s->i_forced++] : s->cmode ? constrained_token(S, s) : kn_sample(s->smp, s->logits);
  if (tok < 0) {
    kn_session_reset(s->ses); /* nothing of this slot's cache is reused after broken logits */
    return slot_finish(s, FIN_ERROR, tok == KN_SAMPLE_BAD_LOGITS ? "the model's logits are not finite numbers (NaN or "
                                     "infinity): its weights or hyper-parameters are broken"
                                     : tok == -2 ? "constrained decoding found no valid token" : "out of memory");
  }
  kn_sampler_accept(s->smp, tok);
  if (!forced && !s->cmode && kn_token_is_eog(tk, tok)) return slot_finish(s, FIN_STOP, NULL);
  const char *p;
  size_t n = 0;
  if (kn_detok_push(s->dt, tok, &p, &n)) return slot_finish(s, FIN_ERROR, "sampled token out of range");
  pthread_mutex_lock(&j->mu);
  if (j->n_gen++ == 0) j->t_first = kn_now();
  pthread_mutex_unlock(&j->mu);
  if (s->cmode) {
    size_t rl = 0;
    const char *raw = kn_token_piece(tk, tok, true, &rl);
    if (!raw || !kc_accepts(&s->kc, raw, rl)) return slot_finish(s, FIN_ERROR, "constrained output went astray");
    for (size_t i = 0; i < rl; i++) kc_push(&s->kc, (unsigned char)raw[i]);
    release(j, s->pend.s, s->pend.len), s->pend.len = 0;
    release(j, p, n);
    if (s->kc.phase == KC_DONE && s->i_forced >= s->n_forced) {
      bool was_lazy = s->cmode == 2;
      s->cmode = 0;
      s->at_start = true; /* another call may follow */
      if ((!was_lazy && j->finish_after_forced) || (was_lazy && j->stop_after_call))
        return slot_finish(s, was_lazy || j->forced_is_call ? FIN_TOOL : FIN_STOP, NULL);
    }
  } else {
    int r = free_text(s, p, n);
    if (r) return slot_finish(s, r > 0 ? FIN_STOP : FIN_ERROR, r > 0 ? NULL : "out of memory");
    watch(S, s, p, n);
  }
  bool constrained = s->cmode || s->i_forced < s->n_forced;
  if (!constrained && j->max_tokens >= 0 && j->n_gen >= j->max_tokens) return slot_finish(s, FIN_LENGTH, NULL);
  if (kn_session_len(s->ses) >= S->m->n_ctx) return slot_finish(s, FIN_LENGTH, NULL);
  s->next = tok;
}

/* ---- the thread ------------------------------------------------------------------------------------------ */

/* Move queued jobs to free slots (called with the lock held). */
static void assign(sched *S) {
  while (S->qn > 0) {
    srv_job *j = S->queue[0];
    if (atomic_load(&j->cancel)) {
      memmove(S->queue, S->queue + 1, --S->qn * sizeof *S->queue);
      finish_job(j, FIN_CANCELLED, "cancelled before it started");
      job_unref(j);
      continue;
    }
    slot *s = pick_slot(S, j);
    if (!s) return;
    memmove(S->queue, S->queue + 1, --S->qn * sizeof *S->queue);
    if (slot_start(S, s, j)) slot_finish(s, FIN_ERROR, "out of memory");
  }
}

static int cmp_start(const void *a, const void *b) {
  const slot *x = *(slot *const *)a, *y = *(slot *const *)b;
  return x->job->t_start < y->job->t_start ? -1 : x->job->t_start > y->job->t_start;
}

/* Prompt rows for this step: all of PREFILL_CHUNK when nothing decodes; else as many as keep the step within
 * GAP_FACTOR times a decode-only step (by the running estimates), the pass a power of two, at least 4 rows. */
static int prompt_budget(const sched *S, int n_dec) {
  if (n_dec == 0) return PREFILL_CHUNK;
  int p = 1;
  while (p < n_dec + 4) p *= 2;
  while (p * 2 <= KN_MAX_PASS && p * 2 - n_dec <= PREFILL_CHUNK && S->t_row > 0 && S->t_dec > 0 &&
         (p * 2 - n_dec) * S->t_row <= (GAP_FACTOR - 1) * S->t_dec)
    p *= 2;
  return p - n_dec;
}

/* Fail every slot with a row in a step that did not run; a step that sched_cut or sched_stop ended early (the device
 * stopped) is a cancellation, like the jobs that did not run. */
static void step_failed(sched *S, int n, const char *err) {
  pthread_mutex_lock(&S->mu);
  bool stopping = S->stop;
  pthread_mutex_unlock(&S->mu);
  for (int i = 0; i < S->n_slots; i++) {
    slot *s = &S->slots[i];
    bool in = false;
    for (int r = 0; r < n && !in; r++) in = S->rows[r].slot == s->index;
    if (!in || !s->job) continue;
    kn_session_reset(s->ses); /* the slot's cache contents are unknown now */
    if (stopping) {
      slot_finish(s, FIN_CANCELLED, "the server is shutting down");
      continue;
    }
    fprintf(stderr, "kiln serve: slot %d: %s\n", s->index, err);
    slot_finish(s, FIN_ERROR, err);
  }
}

/* One step: sample each decoding slot's next token, then one forward pass over those tokens and prompt chunks. */
static void step(sched *S) {
  const size_t V = (size_t)S->m->hp.n_vocab;
  int n = 0, n_out = 0, n_dec = 0;
  slot *pf[KN_MAX_PASS];
  int npf = 0;
  for (int i = 0; i < S->n_slots; i++) {
    slot *s = &S->slots[i];
    if (!s->job) continue;
    if (atomic_load(&s->job->cancel)) {
      slot_finish(s, FIN_CANCELLED, "cancelled");
      continue;
    }
    if (s->prefilling) {
      if (npf < KN_MAX_PASS) pf[npf++] = s;
      continue;
    }
    s->next = -1;
    decode_sample(S, s);
    if (!s->job || s->next < 0) continue;
    S->outs[n_out] = n, S->out_slot[n_out++] = i;
    S->rows[n++] = (kn_row){s->index, kn_session_len(s->ses), s->next};
    n_dec++;
  }
  /* prompt chunks, oldest prompt first */
  qsort(pf, (size_t)npf, sizeof *pf, cmp_start);
  int budget = npf ? prompt_budget(S, n_dec) : 0, n_prompt = 0;
  for (int k = 0; k < npf && budget > 0; k++) {
    slot *s = pf[k];
    srv_job *j = s->job;
    int c = j->n_prompt - s->pos < budget ? j->n_prompt - s->pos : budget;
    for (int t = 0; t < c; t++) S->rows[n++] = (kn_row){s->index, s->pos + t, j->prompt[s->pos + t]};
    budget -= c, n_prompt += c;
    if (s->pos + c == j->n_prompt) S->outs[n_out] = n - 1, S->out_slot[n_out++] = s->index;
  }
  if (n == 0) return;
  char err[256];
  double t0 = kn_now();
  if (S->step_delay > 0) /* KILN_SERVE_SLOW_STEP_MS: a slow device's step, for the shutdown's test */
    nanosleep(&(struct timespec){(time_t)S->step_delay, (long)((S->step_delay - (time_t)S->step_delay) * 1e9)}, NULL);
  if (kn_model_forward_rows(S->m, S->rows, n, S->outs, n_out, S->out_logits, err, sizeof err)) {
    step_failed(S, n, err);
    return;
  }
  double dt = kn_now() - t0;
  if (n_prompt == 0) S->t_dec = S->t_dec > 0 ? 0.8 * S->t_dec + 0.2 * dt : dt;
  else if (n_prompt >= 4) {
    double per = (dt - (n_dec ? S->t_dec : 0)) / n_prompt;
    if (per > 0) S->t_row = S->t_row > 0 ? 0.7 * S->t_row + 0.3 * per : per;
  }
  /* the rows are in the caches now: record them in the sessions, hand out the logits */
  for (int r = 0; r < n;) {
    slot *s = &S->slots[S->rows[r].slot];
    int c = 1;
    while (r + c < n && S->rows[r + c].slot == S->rows[r].slot) c++;
    int32_t toks[KN_MAX_PASS];
    int m = c < KN_MAX_PASS ? c : KN_MAX_PASS;
    for (int t = 0; t < m; t++) toks[t] = S->rows[r + t].token;
    if (s->job && kn_session_append(s->ses, toks, m, err, sizeof err)) {
      kn_session_reset(s->ses);
      slot_finish(s, FIN_ERROR, err);
    } else if (s->job && s->prefilling) {
      s->pos += m;
      if (s->pos == s->job->n_prompt) {
        s->prefilling = false;
        pthread_mutex_lock(&s->job->mu);
        s->job->t_prefill = kn_now();
        pthread_mutex_unlock(&s->job->mu);
      }
    }
    r += m;
  }
  for (int o = 0; o < n_out; o++) {
    slot *s = &S->slots[S->out_slot[o]];
    if (s->job) memcpy(s->logits, S->out_logits + (size_t)o * V, V * sizeof *s->logits);
  }
}

static void *run(void *arg) {
  sched *S = arg;
  pthread_mutex_lock(&S->mu);
  while (!S->stop) {
    assign(S);
    int active = 0;
    for (int i = 0; i < S->n_slots; i++) active += S->slots[i].job != NULL;
    if (!active) {
      pthread_cond_wait(&S->cv, &S->mu);
      continue;
    }
    pthread_mutex_unlock(&S->mu);
    step(S);
    long kv = 0;
    for (int i = 0; i < S->n_slots; i++) kv += kn_session_len(S->slots[i].ses);
    atomic_store(&S->kv_tokens, kv);
    pthread_mutex_lock(&S->mu);
  }
  for (int i = 0; i < S->n_slots; i++)
    if (S->slots[i].job) slot_finish(&S->slots[i], FIN_CANCELLED, "the server is shutting down");
  for (; S->qn > 0; S->qn--) {
    finish_job(S->queue[S->qn - 1], FIN_CANCELLED, "the server is shutting down");
    job_unref(S->queue[S->qn - 1]);
  }
  S->exited = true;
  pthread_cond_broadcast(&S->exit_cv);
  pthread_mutex_unlock(&S->mu);
  return NULL;
}

sched *sched_new(kn_model *m, const kc_vocab *vocab, int max_queue, char *err, size_t errlen) {
  sched *S = calloc(1, sizeof *S);
  if (!S) return snprintf(err, errlen, "out of memory"), NULL;
  S->m = m, S->vocab = vocab, S->max_queue = max_queue > 0 ? max_queue : 1;
  S->n_slots = m->n_slots;
  pthread_mutex_init(&S->mu, NULL);
  pthread_cond_init(&S->cv, NULL);
  pthread_cond_init(&S->exit_cv, NULL);
  pthread_mutex_init(&S->slot_mu, NULL);
  S->step_delay = (double)kn_getenv_int("KILN_SERVE_SLOW_STEP_MS", 0) / 1000;
  S->queue = calloc(S->max_queue, sizeof *S->queue);
  S->slots = calloc(S->n_slots, sizeof *S->slots);
  S->scratch = malloc((size_t)m->hp.n_vocab * sizeof *S->scratch);
  S->rows = malloc(((size_t)S->n_slots + KN_MAX_PASS) * sizeof *S->rows);
  S->outs = malloc((size_t)S->n_slots * sizeof *S->outs), S->out_slot = malloc((size_t)S->n_slots * sizeof *S->out_slot);
  S->out_logits = malloc((size_t)S->n_slots * m->hp.n_vocab * sizeof *S->out_logits);
  if (!S->queue || !S->slots || !S->scratch || !S->rows || !S->outs || !S->out_slot || !S->out_logits) goto oom;
  for (int i = 0; i < S->n_slots; i++) {
    slot *s = &S->slots[i];
    s->index = i;
    s->slot_mu = &S->slot_mu;
    s->ses = kn_session_new(m, i);
    s->logits = malloc((size_t)m->hp.n_vocab * sizeof *s->logits);
    if (!s->ses || !s->logits) goto oom;
  }
  if (pthread_create(&S->th, NULL, run, S)) {
    snprintf(err, errlen, "cannot start the scheduler thread");
    sched_free(S);
    return NULL;
  }
  S->started = true;
  return S;
oom:
  snprintf(err, errlen, "out of memory for %d slots", S->n_slots);
  sched_free(S);
  return NULL;
}

int sched_submit(sched *S, srv_job *j) {
  pthread_mutex_lock(&S->mu);
  int ok = !S->stop && S->qn < S->max_queue;
  if (ok) {
    job_ref(j);
    j->t_submit = kn_now();
    S->queue[S->qn++] = j;
    pthread_cond_signal(&S->cv);
  }
  pthread_mutex_unlock(&S->mu);
  return ok ? 0 : -1;
}

long sched_kv_tokens(sched *S) { return atomic_load(&S->kv_tokens); }

int sched_busy(sched *S, int *queued) {
  pthread_mutex_lock(&S->mu);
  int n = 0;
  for (int i = 0; i < S->n_slots; i++) n += S->slots[i].job != NULL;
  if (queued) *queued = S->qn;
  pthread_mutex_unlock(&S->mu);
  return n;
}

void sched_cut(sched *S, const char *why) {
  pthread_mutex_lock(&S->mu);
  S->stop = true;
  pthread_cond_signal(&S->cv);
  for (; S->qn > 0; S->qn--) {
    finish_job(S->queue[S->qn - 1], FIN_CANCELLED, why);
    job_unref(S->queue[S->qn - 1]);
  }
  pthread_mutex_lock(&S->slot_mu);
  for (int i = 0; i < S->n_slots; i++)
    if (S->slots[i].job) finish_job(S->slots[i].job, FIN_CANCELLED, why);
  pthread_mutex_unlock(&S->slot_mu);
  pthread_mutex_unlock(&S->mu);
  /* the forward pass in flight ends at its next kernel (on the emulated GPU, at its next workgroup) instead of
   * running to its end, so sched_stop_within finds the thread gone: its jobs are answered already */
  kn_device_stop(S->m->dev, true);
}

int sched_stop_within(sched *S, double seconds) {
  if (!S || !S->started) return 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double t = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + seconds;
  ts.tv_sec = (time_t)t, ts.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
  pthread_mutex_lock(&S->mu);
  S->stop = true;
  pthread_cond_signal(&S->cv);
  while (!S->exited)
    if (pthread_cond_timedwait(&S->exit_cv, &S->mu, &ts)) break;
  bool exited = S->exited;
  pthread_mutex_unlock(&S->mu);
  if (!exited) return -1;
  pthread_join(S->th, NULL);
  kn_device_stop(S->m->dev, false); /* sched_cut's */
  S->started = false;
  return 0;
}

void sched_stop(sched *S) {
  if (!S || !S->started) return;
  pthread_mutex_lock(&S->mu);
  S->stop = true;
  pthread_cond_signal(&S->cv);
  pthread_mutex_unlock(&S->mu);
  /* a forward pass in flight ends at its next kernel (on the emulated GPU, at its next workgroup) instead of running
   * to its end: on a slow device one step can outlast the shutdown's bound, and its jobs are cancelled anyway */
  kn_device_stop(S->m->dev, true);
  pthread_join(S->th, NULL);
  kn_device_stop(S->m->dev, false);
  S->started = false;
}

void sched_free(sched *S) {
  if (!S) return;
  sched_stop(S);
  for (int i = 0; S->slots && i < S->n_slots; i++) {
    slot_clear(&S->slots[i], 0);
    kn_session_free(S->slots[i].ses);
    free(S->slots[i].logits);
  }
  free(S->slots), free(S->queue), free(S->scratch), free(S->rows), free(S->outs), free(S->out_slot), free(S->out_logits);
  pthread_mutex_destroy(&S->mu);
  pthread_cond_destroy(&S->cv);
  pthread_cond_destroy(&S->exit_cv);
  pthread_mutex_destroy(&S->slot_mu);
  free(S);
}
