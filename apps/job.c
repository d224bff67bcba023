/* apps/job.c: a job is one generation request, shared by the HTTP thread that answers it and the scheduler thread
 * that runs it: input set before submit, output text and counters guarded by the job's mutex, reference counted so
 * whichever side finishes last frees it. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

srv_job *job_new(void) {
  srv_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  atomic_init(&j->refs, 1);
  atomic_init(&j->cancel, false);
  j->max_tokens = -1;
  j->slot = -1;
  return j;
}

void job_ref(srv_job *j) { atomic_fetch_add(&j->refs, 1); }

void job_unref(srv_job *j) {
  if (!j || atomic_fetch_sub(&j->refs, 1) != 1) return;
  free(j->prompt);
  for (int i = 0; i < j->n_stops; i++) free(j->stops[i]);
  free(j->stops);
  free(j->bias_ids), free(j->bias);
  kc_spec_free(&j->forced), kc_spec_free(&j->lazy);
  for (int i = 0; i < j->n_tool_schemas; i++) kn_jschema_free(j->tool_schemas[i]);
  free(j->tool_schemas);
  kn_jschema_free(j->rf_schema);
  free(j->trigger);
  kn_bytes_free(&j->out);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  free(j);
}

void job_cancel(srv_job *j) {
  atomic_store(&j->cancel, true);
}

static void deadline(struct timespec *ts, double seconds) {
  clock_gettime(CLOCK_REALTIME, ts);
  long ns = ts->tv_nsec + (long)((seconds - (long)seconds) * 1e9);
  ts->tv_sec += (time_t)seconds + ns / 1000000000L;
  ts->tv_nsec = ns % 1000000000L;
}

int job_wait(srv_job *j, size_t *have, kn_bytes *text, double timeout) {
  struct timespec ts;
  deadline(&ts, timeout);
  pthread_mutex_lock(&j->mu);
  while (!j->done && j->out.len <= *have)
    if (pthread_cond_timedwait(&j->cv, &j->mu, &ts)) break;
  if (j->out.len > *have) {
    kn_bytes_put(text, j->out.s + *have, j->out.len - *have);
    *have = j->out.len;
  }
  int done = j->done;
  pthread_mutex_unlock(&j->mu);
  return done;
}

const char *job_finish_name(job_finish f) {
  static const char *names[] = {"running", "stop", "length", "tool_calls", "cancelled", "error"};
  return (unsigned)f < sizeof names / sizeof *names ? names[f] : "?";
}
