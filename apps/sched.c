/* apps/sched.c: the scheduler. One thread owns the model (kn_model_forward is not thread-safe) and runs the KV
 * slots round-robin: each step evaluates one prompt chunk or generates one token for one slot, so several clients
 * progress together and a long prompt does not stall the others for long. A job goes to the free slot whose cached
 * tokens share the longest prefix with its prompt (an agent's next turn reuses its previous turn's KV). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/env.h"
#include "models/model.h"
#include "models/session.h"
#include "serve.h"

#define PREFILL_CHUNK 256 /* prompt tokens per step: bounds how long one slot holds the model */

typedef struct slot {
  int index;
  kn_session *ses;
  srv_job *job;     /* NULL: free */
  double last_used;
  float *logits;
  bool prefilling;
  int pos;          /* prefill: tokens of the prompt in the cache */
  kn_sampler *smp;
  kn_detok *dt;
  sbuf pend;        /* text held back: it may be the start of a stop string */
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
  srv_job **queue;
  int qn, max_queue;
  slot *slots;
  int n_slots;
  bool stop;
  float *scratch;
  atomic_long kv_tokens; /* for /metrics: the sum of the slots' session lengths, updated every step */
};

/* ---- job output ------------------------------------------------------------------------------------------ */

static void release(srv_job *j, const char *s, size_t n) {
  if (!n) return;
  pthread_mutex_lock(&j->mu);
  sb_put(&j->out, s, n);
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
  sb_free(&s->pend);
  if (s->job) job_unref(s->job);
  s->job = NULL;
  s->last_used = now;
}

static void slot_finish(slot *s, job_finish f, const char *err) {
  srv_job *j = s->job;
  if (f == FIN_STOP || f == FIN_LENGTH || f == FIN_TOOL) {
    const char *p;
    size_t n;
    if (s->dt) kn_detok_flush(s->dt, &p, &n), sb_put(&s->pend, p, n);
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
  s->job = j;
  s->smp = kn_sampler_new(&j->sp, S->m->hp.n_vocab);
  s->dt = kn_detok_new(S->m->tok, j->render_special ? KN_DECODE_SPECIAL : 0);
  if (!s->smp || !s->dt) return -1;
  s->prefilling = true;
  int k = common_prefix(kn_session_tokens(s->ses), kn_session_len(s->ses), j->prompt, j->n_prompt);
  s->pos = k < j->n_prompt ? k : j->n_prompt - 1; /* the last prompt token is evaluated again for its logits */
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

/* ---- prefill --------------------------------------------------------------------------------------------- */

static void prefill_step(sched *S, slot *s) {
  srv_job *j = s->job;
  char err[256];
  int target = s->pos + PREFILL_CHUNK < j->n_prompt ? s->pos + PREFILL_CHUNK : j->n_prompt;
  int n_eval = 0;
  if (kn_session_prompt(s->ses, j->prompt, target, s->logits, &n_eval, err, sizeof err)) {
    fprintf(stderr, "kiln serve: slot %d: prompt evaluation failed: %s\n", s->index, err);
    kn_session_reset(s->ses);
    slot_finish(s, FIN_ERROR, err);
    return;
  }
  s->pos = target;
  if (target == j->n_prompt) {
    s->prefilling = false;
    pthread_mutex_lock(&j->mu);
    j->t_prefill = kn_now();
    pthread_mutex_unlock(&j->mu);
  }
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

/* The next token under a constraint: a forced literal, the forced completion when the budget runs out, or a masked
 * sample. Negative on failure: kc_sample's codes, -3 out of memory. */
static int constrained_token(sched *S, slot *s) {
  sbuf cl = {0};
  kc_closure(&s->kc, &cl);
  int ctx_left = S->m->n_ctx - kn_session_len(s->ses) + 1;
  const char *lit;
  size_t n = kc_forced(&s->kc, &lit);
  int rc = 0;
  if (!cl.oom && cl.len > 0 && (size_t)budget(S, s) <= cl.len && (size_t)ctx_left >= cl.len)
    rc = queue_literal(S, s, cl.s, cl.len); /* the shortest valid ending, even past max_tokens */
  else if (n)
    rc = queue_literal(S, s, lit, n);
  sb_free(&cl);
  if (rc) return -3;
  if (s->i_forced < s->n_forced) return s->forced[s->i_forced++];
  return kc_sample(S->vocab, &s->kc, s->smp, s->logits, S->scratch);
}

/* Free text: hold back what may start a stop string; 1 when a stop string ended the output. */
static int free_text(slot *s, const char *p, size_t n) {
  srv_job *j = s->job;
  sb_put(&s->pend, p, n);
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

static void decode_step(sched *S, slot *s) {
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
  char err[256];
  if (kn_session_push(s->ses, tok, s->logits, err, sizeof err)) {
    fprintf(stderr, "kiln serve: slot %d: %s\n", s->index, err);
    kn_session_reset(s->ses);
    slot_finish(s, FIN_ERROR, err);
  }
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

/* Prompts are evaluated one slot at a time, oldest first, between other slots' tokens: the engine keeps one compiled
 * prompt step besides the decode steps, so interleaving two prompts would rebuild it at every chunk. */
static slot *first_prefill(sched *S) {
  slot *best = NULL;
  for (int i = 0; i < S->n_slots; i++) {
    slot *s = &S->slots[i];
    if (s->job && s->prefilling && (!best || s->job->t_start < best->job->t_start)) best = s;
  }
  return best;
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
    slot *pf = first_prefill(S);
    for (int i = 0; i < S->n_slots; i++) {
      slot *s = &S->slots[i];
      if (!s->job) continue;
      if (atomic_load(&s->job->cancel)) slot_finish(s, FIN_CANCELLED, "cancelled");
      else if (s == pf) prefill_step(S, s);
      else if (!s->prefilling) decode_step(S, s);
    }
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
  S->queue = calloc(S->max_queue, sizeof *S->queue);
  S->slots = calloc(S->n_slots, sizeof *S->slots);
  S->scratch = malloc((size_t)m->hp.n_vocab * sizeof *S->scratch);
  if (!S->queue || !S->slots || !S->scratch) goto oom;
  for (int i = 0; i < S->n_slots; i++) {
    slot *s = &S->slots[i];
    s->index = i;
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

void sched_stop(sched *S) {
  if (!S || !S->started) return;
  pthread_mutex_lock(&S->mu);
  S->stop = true;
  pthread_cond_signal(&S->cv);
  pthread_mutex_unlock(&S->mu);
  pthread_join(S->th, NULL);
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
  free(S->slots), free(S->queue), free(S->scratch);
  pthread_mutex_destroy(&S->mu);
  pthread_cond_destroy(&S->cv);
  free(S);
}
