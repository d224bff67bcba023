/* apps/serve_http.c: the HTTP layer of `kiln serve` on libmicrohttpd (a thread per connection): body limits,
 * routing, API-key check, CORS, OpenAI-shaped errors, one log line per request. A generation request is checked
 * and tokenized here, before any 200 is sent, then handed to the scheduler as a job. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netdb.h>

#include <microhttpd.h>

#include "device/base/env.h"
#include "models/model.h"
#include "metrics.h"
#include "ollama.h"
#include "serve.h"

typedef struct req_ctx {
  srv *S;
  char method[16], path[256];
  kn_bytes body;
  bool too_big;
  bool closed_over_limit; /* a chunked body passed --max-body: the connection was closed */
  bool discard;           /* refused from the headers; its small body is read and dropped before the answer */
  size_t dropped;         /* bytes of a body over --max-body, read and dropped */
  int status;
  double t0;
  srv_job *job;   /* for the log line */
  bool stream;
} req_ctx;

/* ---- responses ------------------------------------------------------------------------------------------- */

static enum MHD_Result send_text(struct MHD_Connection *c, req_ctx *r, int status, const char *type, const char *body,
                                 const char *allow) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", type);
  MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
  if (allow) MHD_add_response_header(resp, "Allow", allow);
  if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
  if (status == 503) MHD_add_response_header(resp, "Retry-After", "1");
  r->status = status;
  enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, req_ctx *r, int status, cJSON *v) {
  char *s = cJSON_PrintUnformatted(v);
  cJSON_Delete(v);
  if (!s) return MHD_NO;
  enum MHD_Result rc = send_text(c, r, status, "application/json", s, NULL);
  free(s);
  return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *c, req_ctx *r, const oai_error *e, const char *allow) {
  char *s = oai_error_json(e);
  if (!s) return MHD_NO;
  enum MHD_Result rc = send_text(c, r, e->status, "application/json", s, allow);
  free(s);
  return rc;
}

static enum MHD_Result fail(struct MHD_Connection *c, req_ctx *r, int status, const char *type, const char *code,
                            const char *msg) {
  oai_error e;
  oai_err(&e, status, type, NULL, code, "%s", msg);
  return send_error(c, r, &e, NULL);
}

/* ---- small endpoints ------------------------------------------------------------------------------------- */

static cJSON *model_entry(srv *S) {
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "id", S->model_id);
  cJSON_AddStringToObject(m, "object", "model");
  cJSON_AddNumberToObject(m, "created", (double)S->created);
  cJSON_AddStringToObject(m, "owned_by", "local");
  cJSON *meta = cJSON_AddObjectToObject(m, "meta");
  cJSON_AddNumberToObject(meta, "n_ctx", S->m->n_ctx);
  cJSON_AddNumberToObject(meta, "n_ctx_train", S->m->hp.n_ctx_train);
  cJSON_AddNumberToObject(meta, "n_vocab", S->m->hp.n_vocab);
  return m;
}

static enum MHD_Result models(struct MHD_Connection *c, req_ctx *r, const char *id) {
  srv *S = r->S;
  if (id) {
    if (strcmp(id, S->model_id))
      return fail(c, r, 404, "invalid_request_error", "model_not_found", "The model does not exist on this server");
    return send_json(c, r, 200, model_entry(S));
  }
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "object", "list");
  cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "data"), model_entry(S));
  return send_json(c, r, 200, root);
}

static enum MHD_Result props(struct MHD_Connection *c, req_ctx *r) {
  srv *S = r->S;
  cJSON *root = cJSON_CreateObject();
  cJSON_AddNumberToObject(root, "n_ctx", S->m->n_ctx);
  cJSON *dg = cJSON_AddObjectToObject(root, "default_generation_settings");
  cJSON_AddNumberToObject(dg, "n_ctx", S->m->n_ctx);
  cJSON *params = cJSON_AddObjectToObject(dg, "params");
  kn_sample_params d = kn_sample_defaults();
  cJSON_AddNumberToObject(params, "temperature", d.temperature);
  cJSON_AddNumberToObject(params, "top_k", d.top_k);
  cJSON_AddNumberToObject(params, "top_p", d.top_p);
  cJSON_AddNumberToObject(params, "min_p", d.min_p);
  cJSON_AddNumberToObject(params, "n_predict", -1);
  cJSON_AddNumberToObject(root, "total_slots", S->m->n_slots);
  cJSON_AddStringToObject(root, "model_alias", S->model_id);
  cJSON_AddStringToObject(root, "model_path", S->o.model_path);
  cJSON_AddStringToObject(root, "chat_template_family", kn_chat_family_name(S->tmpl.family));
  cJSON_AddStringToObject(root, "chat_template", S->m->chat_template ? S->m->chat_template : "");
  cJSON *caps = cJSON_AddObjectToObject(root, "chat_template_caps");
  cJSON_AddBoolToObject(caps, "supports_tool_calls", 1);
  cJSON_AddBoolToObject(caps, "supports_tools", 1);
  cJSON_AddBoolToObject(caps, "supports_parallel_tool_calls", S->tmpl.family != KN_CHAT_LLAMA31);
  cJSON_AddBoolToObject(caps, "supports_system_role", 1);
  cJSON_AddBoolToObject(caps, "supports_typed_content", 1);
  cJSON_AddBoolToObject(caps, "supports_reasoning", S->tmpl.family == KN_CHAT_QWEN3);
  cJSON *mod = cJSON_AddObjectToObject(root, "modalities");
  cJSON_AddBoolToObject(mod, "vision", 0);
  cJSON_AddStringToObject(root, "build_info", "kiln 0.1.0");
  return send_json(c, r, 200, root);
}

static enum MHD_Result health(struct MHD_Connection *c, req_ctx *r) {
  if (atomic_load(&r->S->stopping)) return fail(c, r, 503, "unavailable_error", NULL, "the server is shutting down");
  int queued = 0, busy = sched_busy(r->S->sch, &queued);
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "status", "ok");
  cJSON_AddNumberToObject(root, "slots_idle", r->S->m->n_slots - busy);
  cJSON_AddNumberToObject(root, "slots_processing", busy);
  cJSON_AddNumberToObject(root, "requests_queued", queued);
  return send_json(c, r, 200, root);
}

/* ---- generation ------------------------------------------------------------------------------------------ */

bool http_model_matches(srv *S, const char *name) {
  if (!name || !*name) return true;
  const char *base = strrchr(S->o.model_path, '/');
  base = base ? base + 1 : S->o.model_path;
  return !strcasecmp(name, S->model_id) || !strcmp(name, S->o.model_path) || !strcmp(name, base) ||
         !strcasecmp(name, S->m->name);
}

/* The client is gone: the connection failed (a non-streamed request polls this between waits). End of input is not
 * a disconnect: a client may send its whole request and then shut down its side (shutdown(SHUT_WR)) while it waits
 * for the answer, and nothing tells that apart from a full close without writing to it. Such a generation runs to
 * its end, and the write of the answer tells. */
bool http_client_gone(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!ci) return false;
  char b;
  ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static enum MHD_Result finish_plain(struct MHD_Connection *c, req_ctx *r, srv_job *j, oai_out *out) {
  srv *S = r->S;
  size_t have = 0;
  kn_bytes text = {0};
  while (!job_wait(j, &have, &text, 0.2)) {
    if (http_client_gone(c)) {
      job_cancel(j);
      r->status = 499;
    }
  }
  enum MHD_Result rc;
  if (r->status == 499) {
    rc = MHD_NO; /* close: nobody is listening */
  } else if (j->finish == FIN_ERROR || j->finish == FIN_CANCELLED) {
    bool down = atomic_load(&S->stopping);
    rc = fail(c, r, down ? 503 : 500, down ? "unavailable_error" : "server_error", NULL,
              j->error[0] ? j->error : "generation failed");
  } else if (text.oom || oai_out_feed(out, text.s ? text.s : "", text.len, NULL) || oai_out_finish(out, j, NULL)) {
    rc = fail(c, r, 500, "server_error", NULL, "out of memory");
  } else {
    char *s = oai_out_response(out, j);
    rc = s ? send_text(c, r, 200, "application/json", s, NULL) : MHD_NO;
    free(s);
  }
  kn_bytes_free(&text);
  return rc;
}

static uint64_t random_seed(void) {
  uint64_t s;
  if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) s = (uint64_t)(kn_now() * 1e9);
  return s;
}

static enum MHD_Result generate(struct MHD_Connection *c, req_ctx *r, req_kind kind) {
  srv *S = r->S;
  oai_req q;
  oai_error e;
  kn_sample_params defaults = kn_sample_defaults();
  defaults.seed = random_seed();
  if (oai_parse(r->body.s ? r->body.s : "", r->body.len, kind, &defaults, S->o.max_depth, &q, &e)) {
    oai_req_free(&q);
    return send_error(c, r, &e, NULL);
  }
  if (!http_model_matches(S, q.model)) {
    oai_err(&e, 404, "invalid_request_error", "model", "model_not_found",
            "The model `%.100s` does not exist: this server runs `%s` (see GET /v1/models)", q.model, S->model_id);
    oai_req_free(&q);
    return send_error(c, r, &e, NULL);
  }
  srv_job *j = job_new();
  char *prefill = NULL;
  oai_out out = {0};
  enum MHD_Result rc;
  if (!j) {
    rc = fail(c, r, 500, "server_error", NULL, "out of memory");
    goto done;
  }
  if (prompt_build(S, &q, r->body.s, r->body.len, j, &prefill, &e)) {
    rc = send_error(c, r, &e, NULL);
    goto done;
  }
  if (oai_out_init(&out, S, &q, j, prefill)) {
    rc = fail(c, r, 500, "server_error", NULL, "out of memory");
    goto done;
  }
  r->job = j;
  job_ref(j);
  r->stream = q.stream;
  sse_stream *st = q.stream ? sse_stream_new(S, j, &out) : NULL;
  if (q.stream && !st) {
    rc = fail(c, r, 500, "server_error", NULL, "out of memory");
  } else if (atomic_load(&S->stopping) || sched_submit(S->sch, j)) {
    sse_stream_free(st);
    rc = fail(c, r, 503, "unavailable_error", NULL, atomic_load(&S->stopping) ? "the server is shutting down"
                                                                              : "too many requests are queued");
  } else if (st) {
    struct MHD_Response *resp = sse_response(st);
    if (!resp) {
      job_cancel(j);
      sse_stream_free(st);
      rc = MHD_NO;
    } else {
      MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
      r->status = 200;
      rc = MHD_queue_response(c, 200, resp);
      MHD_destroy_response(resp);
    }
  } else {
    rc = finish_plain(c, r, j, &out);
  }
done:
  oai_out_free(&out);
  free(prefill);
  job_unref(j);
  oai_req_free(&q);
  return rc;
}

/* ---- routing --------------------------------------------------------------------------------------------- */

static bool authorized(struct MHD_Connection *c, const char *key) {
  if (!key) return true;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
  const char *got = h && !strncasecmp(h, "Bearer ", 7) ? h + 7 : x;
  if (!got) return false;
  size_t n = strlen(key), m = strlen(got);
  unsigned char diff = (unsigned char)(n != m);
  for (size_t i = 0; i < n; i++) diff |= (unsigned char)(key[i] ^ (i < m ? got[i] : 0)); /* same time for any key */
  return diff == 0;
}

typedef enum { R_NONE, R_HEALTH, R_MODELS, R_MODEL, R_PROPS, R_METRICS, R_CHAT, R_COMPLETIONS } route_id;

static route_id route_of(const char *path, const char **arg) {
  static const struct { const char *path; route_id id; } routes[] = {
      {"/health", R_HEALTH},  {"/v1/health", R_HEALTH},           {"/v1/models", R_MODELS},
      {"/models", R_MODELS},  {"/props", R_PROPS},                {"/metrics", R_METRICS},                {"/v1/chat/completions", R_CHAT},
      {"/chat/completions", R_CHAT}, {"/v1/completions", R_COMPLETIONS}, {"/completions", R_COMPLETIONS},
  };
  for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
    if (!strcmp(path, routes[i].path)) return routes[i].id;
  if (!strncmp(path, "/v1/models/", 11) && path[11]) return *arg = path + 11, R_MODEL;
  return R_NONE;
}

/* Ollama's API (ollama.c): its own routes, error shapes and streams. */
static enum MHD_Result ollama(struct MHD_Connection *c, req_ctx *r) {
  http_reply h = {0};
  ollama_handle(r->S, c, r->method, r->path, r->body.s, r->body.len, authorized(c, r->S->o.api_key), r->too_big,
                r->t0, &h);
  r->job = h.job, r->stream = h.stream, r->status = h.status;
  if (!h.resp) return MHD_NO;
  MHD_add_response_header(h.resp, "Access-Control-Allow-Origin", "*");
  enum MHD_Result rc = MHD_queue_response(c, (unsigned)h.status, h.resp);
  MHD_destroy_response(h.resp);
  return rc;
}

/* What the headers alone decide: the route, the method, the key, the declared size, a shutdown. Checked as soon as
 * the headers are in, so nothing of an unauthenticated or oversized body is read. true when it answered (*rc). */
static bool answer_from_headers(struct MHD_Connection *c, req_ctx *r, bool dry, enum MHD_Result *rc) {
  srv *S = r->S;
  const char *arg = NULL;
  *rc = MHD_YES;
  if (ollama_path(r->path)) { /* Ollama's API answers in its own shape (ollama.c) */
    bool refuse = r->too_big || (strcmp(r->path, "/") && !authorized(c, S->o.api_key));
    if (refuse && !dry) *rc = ollama(c, r);
    return refuse;
  }
  route_id id = route_of(r->path, &arg);
  bool post = id == R_CHAT || id == R_COMPLETIONS;
  if (dry) /* only whether it would answer */
    return id == R_NONE || (strcmp(r->method, post ? "POST" : "GET") && !(strcmp(r->method, "HEAD") == 0 && !post)) ||
           (id != R_HEALTH && !authorized(c, S->o.api_key)) || r->too_big || (atomic_load(&S->stopping) && post);
  if (id == R_NONE) {
    *rc = fail(c, r, 404, "not_found_error", NULL, "unknown endpoint (see docs/api.md for the endpoints)");
  } else if (strcmp(r->method, post ? "POST" : "GET") && !(strcmp(r->method, "HEAD") == 0 && !post)) {
    oai_error e;
    oai_err(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "%s %s: method not allowed (use %s)",
            r->method, r->path, post ? "POST" : "GET");
    *rc = send_error(c, r, &e, post ? "POST, OPTIONS" : "GET, HEAD, OPTIONS");
  } else if (id != R_HEALTH && !authorized(c, S->o.api_key)) {
    *rc = fail(c, r, 401, "authentication_error", "invalid_api_key",
               "Invalid API key: send the key given to --api-key as `Authorization: Bearer KEY`");
  } else if (r->too_big) {
    char msg[128];
    snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes", S->o.max_body);
    *rc = fail(c, r, 413, "invalid_request_error", "request_too_large", msg);
  } else if (atomic_load(&S->stopping) && post) {
    *rc = fail(c, r, 503, "unavailable_error", NULL, "the server is shutting down");
  } else {
    return false;
  }
  return true;
}

static enum MHD_Result dispatch(struct MHD_Connection *c, req_ctx *r) {
  srv *S = r->S;
  const char *arg = NULL;
  route_id id = route_of(r->path, &arg);
  enum MHD_Result rc;
  if (answer_from_headers(c, r, false, &rc)) return rc;
  if (ollama_path(r->path)) return ollama(c, r);
  switch (id) {
  case R_HEALTH: return health(c, r);
  case R_MODELS: return models(c, r, NULL);
  case R_MODEL: return models(c, r, arg);
  case R_PROPS: return props(c, r);
  case R_METRICS: {
    kn_bytes b = {0};
    metrics_live live = {.n_slots = S->m->n_slots, .n_ctx = S->m->n_ctx, .kv_tokens = sched_kv_tokens(S->sch)};
    live.busy = sched_busy(S->sch, &live.queued);
    metrics_render(&S->metrics, &live, &b);
    enum MHD_Result rc = b.oom ? MHD_NO : send_text(c, r, 200, "text/plain; version=0.0.4; charset=utf-8", b.s, NULL);
    kn_bytes_free(&b);
    return rc;
  }
  case R_CHAT: return generate(c, r, REQ_CHAT);
  default: return generate(c, r, REQ_COMPLETION);
  }
}

static enum MHD_Result preflight(struct MHD_Connection *c, req_ctx *r) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
  MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
  MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key");
  MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
  r->status = 204;
  enum MHD_Result rc = MHD_queue_response(c, 204, resp);
  MHD_destroy_response(resp);
  return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  srv *S = cls;
  req_ctx *r = *con_cls;
  (void)version;
  if (!r) {
    if (!(r = calloc(1, sizeof *r))) return MHD_NO;
    r->S = S, r->t0 = kn_now();
    atomic_fetch_add(&S->active, 1);
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    *con_cls = r;
    guard_enter(S->guard, c, G_BODY);
    if (!strcmp(method, "OPTIONS")) return guard_enter(S->guard, c, G_BUSY), preflight(c, r);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > S->o.max_body) r->too_big = true; /* refuse before 100-continue */
    /* A refused request is answered now, unless its body is small: closing on unread bytes resets the connection
     * and the client may lose the answer, so a small body is read (and dropped) first. */
    enum MHD_Result rc;
    bool small = cl && strtoull(cl, NULL, 10) <= 65536;
    if (answer_from_headers(c, r, true, &rc)) {
      if (small) return r->discard = true, MHD_YES;
      answer_from_headers(c, r, false, &rc);
      return guard_enter(S->guard, c, G_BUSY), rc;
    }
    return MHD_YES;
  }
  if (*upload_size) {
    if (r->status || r->discard) return *upload_size = 0, MHD_YES; /* refused from the headers: nothing is kept */
    if (r->too_big || r->body.len + *upload_size > S->o.max_body) {
      /* A chunked body has no length to refuse up front, and libmicrohttpd cannot answer in the middle of a body:
       * the rest is read and dropped for a 413 at its end, but a body that goes on for another --max-body bytes is
       * not waited for (the connection is closed). */
      if (!r->too_big) r->too_big = true, r->dropped = r->body.len, kn_bytes_free(&r->body);
      r->dropped += *upload_size;
      *upload_size = 0;
      if (r->dropped <= 2 * S->o.max_body) return MHD_YES;
      r->status = 413;
      r->closed_over_limit = true;
      return MHD_NO;
    }
    kn_bytes_put(&r->body, upload, *upload_size);
    *upload_size = 0;
    return r->body.oom ? MHD_NO : MHD_YES;
  }
  guard_enter(S->guard, c, G_BUSY);
  if (r->status) return MHD_YES; /* answered early (401, 413, OPTIONS, ...) */
  return dispatch(c, r);
}

/* ---- logging and life ------------------------------------------------------------------------------------ */

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
  srv *S = cls;
  req_ctx *r = *con_cls;
  bool timed_out = guard_enter(S->guard, c, G_IDLE);
  if (!r) return;
  *con_cls = NULL;
  char extra[256] = "";
  if (timed_out && !r->status) r->status = 408, snprintf(extra, sizeof extra, " (the body did not arrive in time)");
  if (r->closed_over_limit) snprintf(extra, sizeof extra, " (a chunked body over --max-body: connection closed)");
  if (r->job) {
    srv_job *j = r->job;
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK) job_cancel(j); /* a stream whose client left */
    pthread_mutex_lock(&j->mu);
    snprintf(extra, sizeof extra, " tokens in=%d cached=%d out=%d slot=%d%s finish=%s%s", j->n_prompt, j->n_cached,
             j->n_gen, j->slot, r->stream ? " stream" : "", j->done ? job_finish_name(j->finish) : "cancelled",
             why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
             : why == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? " (cut by the shutdown)"
                                                             : " (client disconnected)");
    metrics_request(&S->metrics, ollama_path(r->path), r->status ? r->status : 499, j);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
  } else if (strcmp(r->path, "/metrics") && strcmp(r->path, "/health"))
    metrics_request(&S->metrics, ollama_path(r->path), r->status ? r->status : 499, NULL);
  pthread_mutex_lock(&S->log_mu);
  fprintf(stderr, "kiln serve: %s %s %d%s %.3fs\n", r->method, r->path, r->status ? r->status : 499, extra,
          kn_now() - r->t0);
  pthread_mutex_unlock(&S->log_mu);
  kn_bytes_free(&r->body);
  free(r);
  atomic_fetch_sub(&S->active, 1);
}

/* libmicrohttpd's own messages: mostly clients that left (expected), so only with --verbose. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  srv *S = cls;
  if (!S->o.verbose) return;
  pthread_mutex_lock(&S->log_mu);
  fprintf(stderr, "kiln serve: http: ");
  vfprintf(stderr, fmt, ap);
  pthread_mutex_unlock(&S->log_mu);
}

struct MHD_Daemon *http_start(srv *S, int *bound, char *err, size_t errlen) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
  char port[16];
  snprintf(port, sizeof port, "%d", S->o.port);
  int g = getaddrinfo(S->o.host, port, &hints, &ai);
  if (g) return snprintf(err, errlen, "--host %s: %s", S->o.host, gai_strerror(g)), NULL;
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  if (!(S->guard = guard_new(S, S->o.header_timeout, S->o.body_timeout, S->o.idle_timeout))) {
    freeaddrinfo(ai);
    return snprintf(err, errlen, "cannot start the connection guard"), NULL;
  }
  /* libmicrohttpd's idle timeout stays as a backstop for a client that stops reading an answer */
  unsigned idle = (unsigned)(S->o.idle_timeout + S->o.body_timeout + 1);
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, (uint16_t)S->o.port, NULL, NULL, on_request, S, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, S, MHD_OPTION_NOTIFY_CONNECTION, guard_notify, S->guard,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      (unsigned)S->o.max_conns_per_client, MHD_OPTION_CONNECTION_TIMEOUT, idle, MHD_OPTION_LISTENING_ADDRESS_REUSE,
      (unsigned)1, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, S, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!d) {
    int e = errno;
    guard_free(S->guard), S->guard = NULL;
    return snprintf(err, errlen, "cannot listen on %s port %d: %s", S->o.host, S->o.port, strerror(e)), NULL;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  *bound = di ? di->port : S->o.port;
  return d;
}

void http_stop(srv *S, struct MHD_Daemon *d) {
  if (d) MHD_stop_daemon(d);
  guard_free(S->guard); /* after the daemon: its connections are closed and reported */
  S->guard = NULL;
}
