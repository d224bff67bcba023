/* apps/ollama_out.c: model output -> Ollama's replies. Chat output goes through the tool-call parser; content and
 * thinking stream as NDJSON lines ({"model","created_at","message":{...},"done":false}), a tool call is sent whole
 * once it is complete (arguments as an object, as Ollama does), and the last line carries done_reason and the token
 * counts and durations (nanoseconds). Not streamed, the same fields come as one object. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "ollama.h"
#include "models/text/json_read.h"

void olla_time(char *out, size_t cap) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char d[32];
  strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, cap, "%s.%09ldZ", d, ts.tv_nsec);
}

int olla_out_init(olla_out *o, srv *S, const char *model, bool chat, bool generate_api, bool stream, const oai_req *q,
                  const char *prefill) {
  memset(o, 0, sizeof *o);
  o->S = S, o->chat = chat, o->generate_api = generate_api, o->stream = stream;
  snprintf(o->model, sizeof o->model, "%s", model);
  o->calls = cJSON_CreateArray();
  if (!o->calls) return -1;
  if (!chat) return 0;
  kn_tc_opts to;
  kn_tc_opts_init(&to, S->tmpl.family);
  to.tool_names = (const char *const *)q->tool_names;
  to.n_tool_names = (size_t)q->n_tools;
  if (!(o->tp = kn_toolparser_new(S->tmpl.family, &to))) return -1;
  return prefill ? olla_out_feed(o, prefill, strlen(prefill), NULL) : 0;
}

void olla_out_free(olla_out *o) {
  kn_toolparser_free(o->tp);
  cJSON_Delete(o->calls);
  kn_bytes_free(&o->content), kn_bytes_free(&o->thinking), kn_bytes_free(&o->args);
  free(o->name);
  memset(o, 0, sizeof *o);
}

static cJSON *base(const olla_out *o) {
  cJSON *c = cJSON_CreateObject();
  char t[64];
  olla_time(t, sizeof t);
  cJSON_AddStringToObject(c, "model", o->model);
  cJSON_AddStringToObject(c, "created_at", t);
  return c;
}

static void line(kn_bytes *b, cJSON *v) {
  char *s = cJSON_PrintUnformatted(v);
  cJSON_Delete(v);
  if (!s) return (void)(b->oom = true);
  kn_bytes_puts(b, s);
  kn_bytes_puts(b, "\n");
  free(s);
}

/* One streamed piece: text under key ("content" / "thinking"), or a finished tool call. */
static void chunk(olla_out *o, kn_bytes *out, const char *key, const char *text, size_t n, cJSON *call) {
  cJSON *c = base(o);
  char *t = strndup(text ? text : "", text ? n : 0);
  if (o->generate_api) {
    cJSON_AddStringToObject(c, !strcmp(key, "content") ? "response" : key, t ? t : "");
  } else {
    cJSON *m = cJSON_AddObjectToObject(c, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", !strcmp(key, "content") && t ? t : "");
    if (strcmp(key, "content")) cJSON_AddStringToObject(m, key, t ? t : "");
    if (call) cJSON_AddItemToArray(cJSON_AddArrayToObject(m, "tool_calls"), call);
  }
  free(t);
  cJSON_AddBoolToObject(c, "done", 0);
  line(out, c);
}

/* A complete call: {"function": {"index", "name", "arguments": {...}}}. */
static cJSON *finished_call(olla_out *o) {
  cJSON *call = cJSON_CreateObject(), *fn = cJSON_AddObjectToObject(call, "function");
  cJSON_AddNumberToObject(fn, "index", cJSON_GetArraySize(o->calls));
  cJSON_AddStringToObject(fn, "name", o->name ? o->name : "");
  /* the one JSON reader (models/text/json_read.c): arguments the model wrote read as every other JSON does */
  cJSON *args = kn_json_parse(o->args.s ? o->args.s : "{}", o->args.s ? o->args.len : 2, 0, NULL, 0, NULL, 0);
  cJSON_AddItemToObject(fn, "arguments", args ? args : cJSON_CreateObject());
  return call;
}

static void event(olla_out *o, const kn_tc_event *ev, kn_bytes *out) {
  switch (ev->kind) {
  case KN_TC_CONTENT:
  case KN_TC_REASONING: {
    const char *key = ev->kind == KN_TC_CONTENT ? "content" : "thinking";
    if (!ev->len) break;
    if (out) chunk(o, out, key, ev->text, ev->len, NULL);
    else kn_bytes_put(ev->kind == KN_TC_CONTENT ? &o->content : &o->thinking, ev->text, ev->len);
    break;
  }
  case KN_TC_CALL_BEGIN:
    free(o->name);
    o->name = strdup(ev->name ? ev->name : "");
    o->args.len = 0;
    break;
  case KN_TC_CALL_ARGS:
    kn_bytes_put(&o->args, ev->text, ev->len);
    break;
  case KN_TC_CALL_END: {
    cJSON *call = finished_call(o);
    if (out) chunk(o, out, "content", "", 0, cJSON_Duplicate(call, 1));
    cJSON_AddItemToArray(o->calls, call);
    break;
  }
  default: /* KN_TC_CALL_ABORT: its raw text follows as content */
    o->args.len = 0;
  }
}

static int events(olla_out *o, kn_bytes *out) {
  size_t n = 0;
  const kn_tc_event *ev = kn_toolparser_events(o->tp, &n);
  for (size_t i = 0; i < n; i++) event(o, &ev[i], out);
  return o->args.oom || o->content.oom || o->thinking.oom ? -1 : 0;
}

int olla_out_feed(olla_out *o, const char *text, size_t len, kn_bytes *out) {
  if (!o->chat) {
    if (out && len) chunk(o, out, "content", text, len, NULL);
    else kn_bytes_put(&o->content, text, len);
    return o->content.oom ? -1 : 0;
  }
  if (kn_toolparser_feed(o->tp, text, len)) return -1;
  return events(o, out);
}

/* The counters every final reply carries (durations in nanoseconds, as Ollama reports them). */
static void stats(cJSON *c, const srv_job *j, double t_recv) {
  double end = j->t_end > 0 ? j->t_end : t_recv, start = j->t_start > 0 ? j->t_start : t_recv;
  double pre = j->t_prefill > 0 ? j->t_prefill : end;
  cJSON_AddNumberToObject(c, "total_duration", llround((end - t_recv) * 1e9)); /* integers: Go clients read int64 */
  cJSON_AddNumberToObject(c, "load_duration", llround((start - t_recv) * 1e9));
  cJSON_AddNumberToObject(c, "prompt_eval_count", j->n_prompt); /* the whole prompt, cached or not */
  cJSON_AddNumberToObject(c, "prompt_eval_duration", llround((pre - start) * 1e9));
  cJSON_AddNumberToObject(c, "eval_count", j->n_gen);
  cJSON_AddNumberToObject(c, "eval_duration", llround((end - pre) * 1e9));
}

static const char *done_reason(const srv_job *j) { return j->finish == FIN_LENGTH ? "length" : "stop"; }

int olla_out_finish(olla_out *o, const srv_job *j, double t_recv, kn_bytes *out) {
  if (o->chat && (kn_toolparser_finish(o->tp) || events(o, out))) return -1;
  cJSON *c = base(o);
  if (o->generate_api) {
    cJSON_AddStringToObject(c, "response", out ? "" : o->content.s ? o->content.s : "");
    if (!out && o->thinking.len) cJSON_AddStringToObject(c, "thinking", o->thinking.s);
  } else {
    cJSON *m = cJSON_AddObjectToObject(c, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", out ? "" : o->content.s ? o->content.s : "");
    if (!out && o->thinking.len) cJSON_AddStringToObject(m, "thinking", o->thinking.s);
    if (!out && cJSON_GetArraySize(o->calls)) cJSON_AddItemToObject(m, "tool_calls", cJSON_Duplicate(o->calls, 1));
  }
  cJSON_AddBoolToObject(c, "done", 1);
  cJSON_AddStringToObject(c, "done_reason", done_reason(j));
  stats(c, j, t_recv);
  if (out) return line(out, c), out->oom ? -1 : 0;
  kn_bytes b = {0};
  line(&b, c);
  o->response = b.s;
  return b.oom ? -1 : 0;
}

/* ---- the NDJSON stream (on the stream base, stream.c) ------------------------------------------------------ */

struct olla_stream {
  job_stream base; /* first: the stream base frees the whole struct */
  olla_out out;
  double t_recv;
};

static int produce(job_stream *b) {
  olla_stream *st = (olla_stream *)b;
  b->text.len = 0;
  int done = job_wait(b->j, &b->have, &b->text, 1.0);
  if (b->text.oom) return -1;
  if (b->text.len && olla_out_feed(&st->out, b->text.s, b->text.len, &b->buf)) return -1;
  if (!done) return 0;
  b->finished = true;
  if (b->j->finish == FIN_ERROR || b->j->finish == FIN_CANCELLED) { /* Ollama's mid-stream error: one line */
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "error", b->j->error[0] ? b->j->error : "generation failed");
    line(&b->buf, e);
    return 0;
  }
  return olla_out_finish(&st->out, b->j, st->t_recv, &b->buf);
}

static void drop(job_stream *b) { olla_out_free(&((olla_stream *)b)->out); }

struct MHD_Response *olla_stream_response(srv *S, srv_job *j, olla_out *out, double t_recv) {
  olla_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  (void)S;
  job_stream_init(&st->base, j, produce, drop);
  st->out = *out, st->t_recv = t_recv;
  memset(out, 0, sizeof *out); /* the stream owns it now */
  struct MHD_Response *r = job_stream_response(&st->base, "application/x-ndjson");
  if (!r) job_stream_free(&st->base);
  return r;
}
