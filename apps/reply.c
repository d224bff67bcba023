/* apps/reply.c: model output -> OpenAI responses. Chat output goes through the incremental tool-call parser; its
 * events become one chat.completion, or chat.completion.chunk deltas where role, each call's id, type and name are
 * sent once, and arguments in pieces with the call's index on every delta (what the SDK stream helpers need). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "metrics.h"
#include "serve.h"

static void random_id(char *out, size_t cap, const char *prefix) {
  static const char an[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char r[24];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
    for (size_t i = 0; i < sizeof r; i++) r[i] = (unsigned char)(rand() ^ (int)(time(NULL) >> (i % 8)));
  size_t n = (size_t)snprintf(out, cap, "%s", prefix);
  for (size_t i = 0; i < sizeof r && n + 1 < cap; i++) out[n++] = an[r[i] % 62];
  out[n] = 0;
}

int oai_out_init(oai_out *o, srv *S, const oai_req *q, const srv_job *j, const char *prefill) {
  memset(o, 0, sizeof *o);
  o->S = S, o->kind = q->kind, o->stream = q->stream, o->include_usage = q->include_usage;
  o->created = (long)time(NULL);
  random_id(o->id, sizeof o->id, q->kind == REQ_CHAT ? "chatcmpl-" : "cmpl-");
  snprintf(o->model, sizeof o->model, "%s", q->model && *q->model ? q->model : S->model_id);
  if (prefill && !(o->prefill = strdup(prefill))) return -1;
  if (q->kind != REQ_CHAT) return 0;
  o->live_calls = j->forced_is_call || j->trigger;
  kn_tc_opts to;
  kn_tc_opts_init(&to, S->tmpl.family);
  to.tool_names = (const char *const *)q->tool_names;
  to.n_tool_names = (size_t)q->n_tools;
  if (!(o->tp = kn_toolparser_new(S->tmpl.family, &to))) return -1;
  if (!o->stream && o->prefill) return oai_out_feed(o, o->prefill, strlen(o->prefill), NULL);
  return 0;
}

void oai_out_free(oai_out *o) {
  kn_toolparser_free(o->tp);
  kn_chat_reply_free(&o->reply);
  free(o->prefill);
  kn_bytes_free(&o->held), kn_bytes_free(&o->text);
  cJSON_Delete(o->timings);
  memset(o, 0, sizeof *o);
}

/* ---- chunks ---------------------------------------------------------------------------------------------- */

static cJSON *chunk_base(const oai_out *o) {
  cJSON *c = cJSON_CreateObject();
  cJSON_AddStringToObject(c, "id", o->id);
  cJSON_AddStringToObject(c, "object", o->kind == REQ_CHAT ? "chat.completion.chunk" : "text_completion");
  cJSON_AddNumberToObject(c, "created", (double)o->created);
  cJSON_AddStringToObject(c, "model", o->model);
  cJSON_AddStringToObject(c, "system_fingerprint", "kiln");
  return c;
}

/* A chunk with one choice; delta (chat) or text (completion) is taken over. */
static void emit_choice(oai_out *o, kn_bytes *sse, cJSON *delta, const char *text, const char *finish) {
  cJSON *c = chunk_base(o), *choices = cJSON_AddArrayToObject(c, "choices"), *ch = cJSON_CreateObject();
  cJSON_AddItemToArray(choices, ch);
  cJSON_AddNumberToObject(ch, "index", 0);
  if (o->kind == REQ_CHAT) cJSON_AddItemToObject(ch, "delta", delta ? delta : cJSON_CreateObject());
  else cJSON_AddStringToObject(ch, "text", text ? text : "");
  cJSON_AddNullToObject(ch, "logprobs");
  if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
  else cJSON_AddNullToObject(ch, "finish_reason");
  if (o->timings) cJSON_AddItemToObject(c, "timings", o->timings), o->timings = NULL;
  sse_data(sse, c);
  cJSON_Delete(c);
}

static cJSON *call_delta(int index, const char *id, const char *name, const char *args, size_t nargs) {
  cJSON *d = cJSON_CreateObject(), *calls = cJSON_AddArrayToObject(d, "tool_calls"), *tc = cJSON_CreateObject();
  cJSON_AddItemToArray(calls, tc);
  cJSON_AddNumberToObject(tc, "index", index);
  if (id) cJSON_AddStringToObject(tc, "id", id), cJSON_AddStringToObject(tc, "type", "function");
  cJSON *fn = cJSON_AddObjectToObject(tc, "function");
  if (name) cJSON_AddStringToObject(fn, "name", name);
  char *a = strndup(args ? args : "", args ? nargs : 0);
  cJSON_AddStringToObject(fn, "arguments", a ? a : "");
  free(a);
  return d;
}

static cJSON *text_delta(const char *key, const char *s, size_t n) {
  cJSON *d = cJSON_CreateObject();
  char *t = strndup(s, n);
  cJSON_AddStringToObject(d, key, t ? t : "");
  free(t);
  return d;
}

/* A delta of a call: out now (live), or held as SSE bytes until the call ends. */
static void call_event(oai_out *o, kn_bytes *sse, cJSON *delta) {
  emit_choice(o, o->live_calls ? sse : &o->held, delta, NULL, NULL);
}

static void stream_event(oai_out *o, const kn_tc_event *ev, kn_bytes *sse) {
  switch (ev->kind) {
  case KN_TC_CONTENT:
    if (ev->len) emit_choice(o, sse, text_delta("content", ev->text, ev->len), NULL, NULL);
    break;
  case KN_TC_REASONING:
    if (ev->len) emit_choice(o, sse, text_delta("reasoning_content", ev->text, ev->len), NULL, NULL);
    break;
  case KN_TC_CALL_BEGIN:
    call_event(o, sse, call_delta(ev->index, ev->id, ev->name, "", 0));
    break;
  case KN_TC_CALL_ARGS:
    if (ev->len) call_event(o, sse, call_delta(ev->index, NULL, NULL, ev->text, ev->len));
    break;
  case KN_TC_CALL_END:
    o->n_calls++;
    kn_bytes_put(sse, o->held.s, o->held.len);
    o->held.len = 0;
    break;
  case KN_TC_CALL_ABORT:
    o->held.len = 0; /* its raw text follows as content */
    break;
  }
}

static int parse_events(oai_out *o, kn_bytes *sse) {
  size_t n;
  const kn_tc_event *ev = kn_toolparser_events(o->tp, &n);
  for (size_t i = 0; i < n; i++) {
    if (o->stream) {
      stream_event(o, &ev[i], sse);
    } else {
      if (ev[i].kind == KN_TC_CALL_END) o->n_calls++;
      if (kn_chat_reply_apply(&o->reply, &ev[i])) return -1;
    }
  }
  return 0;
}

int oai_out_start(oai_out *o, kn_bytes *sse) {
  o->started = true;
  if (o->kind != REQ_CHAT) return 0;
  cJSON *d = cJSON_CreateObject();
  cJSON_AddStringToObject(d, "role", "assistant");
  cJSON_AddStringToObject(d, "content", "");
  emit_choice(o, sse, d, NULL, NULL);
  return o->prefill ? oai_out_feed(o, o->prefill, strlen(o->prefill), sse) : 0;
}

int oai_out_feed(oai_out *o, const char *text, size_t len, kn_bytes *sse) {
  if (o->kind != REQ_CHAT) {
    if (!o->stream) return kn_bytes_put(&o->text, text, len), o->text.oom ? -1 : 0;
    char *t = strndup(text, len);
    if (!t) return -1;
    emit_choice(o, sse, NULL, t, NULL);
    free(t);
    return 0;
  }
  if (kn_toolparser_feed(o->tp, text, len)) return -1;
  return parse_events(o, sse);
}

const char *oai_finish_reason(const oai_out *o, const srv_job *j) {
  if (j->finish == FIN_LENGTH) return "length";
  if (o->n_calls > 0) return "tool_calls";
  return "stop";
}

static cJSON *usage(const srv_job *j) {
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "prompt_tokens", j->n_prompt);
  cJSON_AddNumberToObject(u, "completion_tokens", j->n_gen);
  cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt + j->n_gen);
  cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
  cJSON_AddNumberToObject(d, "cached_tokens", j->n_cached);
  return u;
}

static void error_event(const oai_out *o, kn_bytes *sse, const srv_job *j) {
  oai_error e;
  if (j->finish == FIN_CANCELLED && o->S && atomic_load(&o->S->stopping)) /* as the 503 a new request gets */
    oai_err(&e, 503, "unavailable_error", NULL, NULL, "%s", j->error[0] ? j->error : "the server is shutting down");
  else
    oai_err(&e, 500, "server_error", NULL, NULL, "%s", j->error[0] ? j->error : "generation failed");
  char *s = oai_error_json(&e);
  if (s) sse_data_raw(sse, s);
  free(s);
}

int oai_out_finish(oai_out *o, const srv_job *j, kn_bytes *sse) {
  if (o->tp && (kn_toolparser_finish(o->tp) || parse_events(o, sse))) return -1;
  if (!o->stream) return 0;
  if (j->finish == FIN_ERROR || j->finish == FIN_CANCELLED) {
    error_event(o, sse, j);
    return 0;
  }
  o->timings = metrics_timings(j); /* on the last chunk, as llama-server sends it */
  if (o->kind == REQ_CHAT) emit_choice(o, sse, NULL, NULL, oai_finish_reason(o, j));
  else emit_choice(o, sse, NULL, "", oai_finish_reason(o, j));
  if (o->include_usage) {
    cJSON *c = chunk_base(o);
    cJSON_AddArrayToObject(c, "choices");
    cJSON_AddItemToObject(c, "usage", usage(j));
    sse_data(sse, c);
    cJSON_Delete(c);
  }
  sse_data_raw(sse, "[DONE]");
  return 0;
}

static cJSON *chat_message(const oai_out *o) {
  const kn_chat_reply *r = &o->reply;
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "assistant");
  const char *content = r->content ? r->content : "";
  if (!*content && r->n_calls > 0) cJSON_AddNullToObject(m, "content");
  else cJSON_AddStringToObject(m, "content", content);
  if (r->reasoning && *r->reasoning) cJSON_AddStringToObject(m, "reasoning_content", r->reasoning);
  if (r->n_calls > 0) {
    cJSON *calls = cJSON_AddArrayToObject(m, "tool_calls");
    for (size_t i = 0; i < r->n_calls; i++) {
      cJSON *tc = cJSON_CreateObject();
      cJSON_AddStringToObject(tc, "id", r->calls[i].id ? r->calls[i].id : "");
      cJSON_AddStringToObject(tc, "type", "function");
      cJSON *fn = cJSON_AddObjectToObject(tc, "function");
      cJSON_AddStringToObject(fn, "name", r->calls[i].name ? r->calls[i].name : "");
      cJSON_AddStringToObject(fn, "arguments", r->calls[i].arguments ? r->calls[i].arguments : "{}");
      cJSON_AddItemToArray(calls, tc);
    }
  }
  cJSON_AddNullToObject(m, "refusal");
  return m;
}

char *oai_out_response(oai_out *o, const srv_job *j) {
  cJSON *c = cJSON_CreateObject();
  cJSON_AddStringToObject(c, "id", o->id);
  cJSON_AddStringToObject(c, "object", o->kind == REQ_CHAT ? "chat.completion" : "text_completion");
  cJSON_AddNumberToObject(c, "created", (double)o->created);
  cJSON_AddStringToObject(c, "model", o->model);
  cJSON_AddStringToObject(c, "system_fingerprint", "kiln");
  cJSON *choices = cJSON_AddArrayToObject(c, "choices"), *ch = cJSON_CreateObject();
  cJSON_AddItemToArray(choices, ch);
  cJSON_AddNumberToObject(ch, "index", 0);
  if (o->kind == REQ_CHAT) cJSON_AddItemToObject(ch, "message", chat_message(o));
  else cJSON_AddStringToObject(ch, "text", o->text.s ? o->text.s : "");
  cJSON_AddNullToObject(ch, "logprobs");
  cJSON_AddStringToObject(ch, "finish_reason", oai_finish_reason(o, j));
  cJSON_AddItemToObject(c, "usage", usage(j));
  cJSON_AddItemToObject(c, "timings", metrics_timings(j));
  char *s = cJSON_PrintUnformatted(c);
  cJSON_Delete(c);
  return s;
}
