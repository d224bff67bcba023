/* apps/ollama.c: Ollama's API beside the OpenAI one, on the same port: /api/chat and /api/generate (NDJSON
 * streams by default, tools, format as "json" or a schema, options), /api/tags, /api/show, /api/ps, /api/version,
 * and "/" ("Ollama is running"). Each generation request is rewritten as the OpenAI request it means, so parsing,
 * constraints, prompt caching and scheduling are the same code; errors come as Ollama writes them: {"error": "..."}. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <microhttpd.h>

#include "device/base/env.h"
#include "models/text/json_read.h"
#include "models/model.h"
#include "ollama.h"

#define OLLAMA_VERSION "0.12.0" /* the Ollama API version whose endpoints and fields this follows */

bool ollama_path(const char *path) { return !strcmp(path, "/") || !strncmp(path, "/api/", 5); }

/* ---- replies ---------------------------------------------------------------------------------------------- */

static void reply_text(http_reply *out, int status, const char *type, const char *text) {
  out->status = status;
  out->resp = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
  if (out->resp) MHD_add_response_header(out->resp, "Content-Type", type);
}

static void reply_json(http_reply *out, int status, cJSON *v) {
  char *s = cJSON_PrintUnformatted(v);
  cJSON_Delete(v);
  if (s) reply_text(out, status, "application/json; charset=utf-8", s);
  free(s);
}

__attribute__((format(printf, 3, 4))) static void reply_error(http_reply *out, int status, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "error", msg);
  reply_json(out, status, e);
}

/* ---- the model, as /api/tags, /api/show and /api/ps describe it -------------------------------------------- */

static void file_time(const char *path, char *out, size_t cap) {
  struct stat st;
  time_t t = stat(path, &st) == 0 ? st.st_mtime : time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Weights of the architecture (embeddings, attention, MLP): the "parameter_size" Ollama shows. */
static double n_params(const kn_model *m) {
  const kn_hparams *h = &m->hp;
  double attn = (double)h->n_embd * ((double)h->n_head * h->head_dim * 2 + (double)h->n_head_kv * h->head_dim * 2);
  return 2.0 * h->n_vocab * h->n_embd + (double)h->n_layer * (attn + 3.0 * h->n_embd * h->n_ff);
}

/* The quantization from the file name (…-Q4_K_M.gguf), as Ollama's quantization_level. */
static void quant_of(const char *path, char *out, size_t cap) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  snprintf(out, cap, "unknown");
  for (const char *p = b; *p; p++) {
    if ((*p == '-' || *p == '.' || *p == '_') && (p[1] == 'Q' || p[1] == 'F' || p[1] == 'q' || !strncmp(p + 1, "BF", 2) || !strncmp(p + 1, "IQ", 2))) {
      size_t n = strcspn(p + 1, ".-");
      if (n > 1 && n < 16 && (p[2] == '_' || (p[2] >= '0' && p[2] <= '9') || p[2] == 'F' || p[2] == 'Q')) {
        snprintf(out, cap, "%.*s", (int)n, p + 1);
        for (char *q = out; *q; q++) *q = (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
      }
    }
  }
}

static cJSON *details(srv *S) {
  cJSON *d = cJSON_CreateObject();
  char q[32], ps[32];
  double n = n_params(S->m);
  snprintf(ps, sizeof ps, n >= 1e9 ? "%.1fB" : "%.2fM", n >= 1e9 ? n / 1e9 : n / 1e6);
  quant_of(S->o.model_path, q, sizeof q);
  cJSON_AddStringToObject(d, "parent_model", "");
  cJSON_AddStringToObject(d, "format", "gguf");
  cJSON_AddStringToObject(d, "family", S->m->hp.arch);
  cJSON_AddItemToObject(d, "families", cJSON_CreateStringArray((const char *const[]){S->m->hp.arch}, 1));
  cJSON_AddStringToObject(d, "parameter_size", ps);
  cJSON_AddStringToObject(d, "quantization_level", q);
  return d;
}

/* An identifier of the file (path, size, time): not its sha256, which would mean reading gigabytes. */
static void digest(srv *S, char *out, size_t cap) {
  struct stat st = {0};
  stat(S->o.model_path, &st);
  uint64_t h = 1469598103934665603ull;
  for (const char *p = S->o.model_path; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  h ^= (uint64_t)st.st_size * 31 + (uint64_t)st.st_mtime;
  snprintf(out, cap, "%016llx%016llx%016llx%016llx", (unsigned long long)h, (unsigned long long)(h * 3),
           (unsigned long long)(h * 5), (unsigned long long)(h * 7));
}

static cJSON *model_entry(srv *S, bool ps) {
  cJSON *m = cJSON_CreateObject();
  char t[64], dg[80];
  struct stat st = {0};
  stat(S->o.model_path, &st);
  digest(S, dg, sizeof dg);
  cJSON_AddStringToObject(m, "name", S->model_id);
  cJSON_AddStringToObject(m, "model", S->model_id);
  if (!ps) file_time(S->o.model_path, t, sizeof t), cJSON_AddStringToObject(m, "modified_at", t);
  cJSON_AddNumberToObject(m, "size", ps ? (double)(S->m->weight_bytes + S->m->kv_bytes) : (double)st.st_size);
  cJSON_AddStringToObject(m, "digest", dg);
  cJSON_AddItemToObject(m, "details", details(S));
  if (ps) {
    cJSON_AddStringToObject(m, "expires_at", "2318-01-01T00:00:00Z"); /* loaded for the server's life */
    cJSON_AddNumberToObject(m, "size_vram", 0);
    cJSON_AddNumberToObject(m, "context_length", S->m->n_ctx);
  }
  return m;
}

static void tags(srv *S, http_reply *out, bool ps) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "models"), model_entry(S, ps));
  reply_json(out, 200, root);
}

/* "model:latest" is the model itself (Ollama's default tag). */
static bool name_ok(srv *S, const char *name) {
  if (http_model_matches(S, name)) return true;
  size_t n = strlen(name);
  if (n > 7 && !strcmp(name + n - 7, ":latest")) {
    char base[256];
    snprintf(base, sizeof base, "%.*s", (int)(n - 7), name);
    return http_model_matches(S, base);
  }
  return false;
}

static void show(srv *S, const cJSON *req, http_reply *out) {
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "model");
  if (!cJSON_IsString(name)) name = cJSON_GetObjectItemCaseSensitive(req, "name");
  if (!cJSON_IsString(name)) return reply_error(out, 400, "model is required");
  if (!name_ok(S, name->valuestring)) return reply_error(out, 404, "model '%.100s' not found", name->valuestring);
  const kn_hparams *h = &S->m->hp;
  cJSON *root = cJSON_CreateObject();
  char t[64], key[96];
  kn_bytes mf = {0};
  kn_bytes_printf(&mf, "# served by kiln\nFROM %s\n", S->o.model_path);
  cJSON_AddStringToObject(root, "license", "");
  cJSON_AddStringToObject(root, "modelfile", mf.s ? mf.s : "");
  kn_bytes_free(&mf);
  cJSON_AddStringToObject(root, "parameters", "");
  cJSON_AddStringToObject(root, "template", S->m->chat_template ? S->m->chat_template : "");
  cJSON_AddItemToObject(root, "details", details(S));
  cJSON *mi = cJSON_AddObjectToObject(root, "model_info");
  cJSON_AddStringToObject(mi, "general.architecture", h->arch);
  cJSON_AddStringToObject(mi, "general.name", S->m->name);
  cJSON_AddNumberToObject(mi, "general.parameter_count", n_params(S->m));
  static const char *const fields[] = {"context_length", "embedding_length", "block_count", "attention.head_count",
                                       "attention.head_count_kv", "feed_forward_length", "vocab_size"};
  const int vals[] = {h->n_ctx_train, h->n_embd, h->n_layer, h->n_head, h->n_head_kv, h->n_ff, h->n_vocab};
  for (int i = 0; i < 7; i++) {
    snprintf(key, sizeof key, "%s.%s", h->arch, fields[i]);
    cJSON_AddNumberToObject(mi, key, vals[i]);
  }
  cJSON *caps = cJSON_AddArrayToObject(root, "capabilities");
  cJSON_AddItemToArray(caps, cJSON_CreateString("completion"));
  cJSON_AddItemToArray(caps, cJSON_CreateString("tools"));
  if (S->tmpl.family == KN_CHAT_QWEN3) cJSON_AddItemToArray(caps, cJSON_CreateString("thinking"));
  file_time(S->o.model_path, t, sizeof t);
  cJSON_AddStringToObject(root, "modified_at", t);
  reply_json(out, 200, root);
}

/* ---- requests -> OpenAI requests --------------------------------------------------------------------------- */

#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), -1)

/* options: Ollama's names -> the OpenAI fields (checked here, so errors name Ollama's field). */
static int options(const cJSON *opt, cJSON *o, int *num_ctx, char *err, size_t errlen) {
  static const struct { const char *from, *to; } num[] = {
      {"temperature", "temperature"}, {"top_p", "top_p"}, {"top_k", "top_k"}, {"min_p", "min_p"},
      {"seed", "seed"}, {"repeat_penalty", "repetition_penalty"}, {"presence_penalty", "presence_penalty"},
      {"frequency_penalty", "frequency_penalty"}, {"num_predict", "max_tokens"}, {"num_ctx", NULL},
  };
  if (!opt || cJSON_IsNull(opt)) return 0;
  if (!cJSON_IsObject(opt)) return BAD("options: expected an object");
  for (size_t i = 0; i < sizeof num / sizeof *num; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(opt, num[i].from);
    if (!v || cJSON_IsNull(v)) continue;
    if (!cJSON_IsNumber(v)) return BAD("options.%s: expected a number", num[i].from);
    if (!num[i].to) {
      if (v->valuedouble < 1 || v->valuedouble > 1e9) return BAD("options.num_ctx: expected a positive integer");
      *num_ctx = (int)v->valuedouble;
    } else if (!strcmp(num[i].to, "max_tokens")) {
      if (v->valuedouble >= 0) cJSON_AddNumberToObject(o, "max_tokens", v->valuedouble); /* -1, -2: no limit */
    } else {
      cJSON_AddNumberToObject(o, num[i].to, v->valuedouble);
    }
  }
  const cJSON *stop = cJSON_GetObjectItemCaseSensitive(opt, "stop");
  if (stop && !cJSON_IsNull(stop)) cJSON_AddItemToObject(o, "stop", cJSON_Duplicate(stop, 1));
  return 0;
}

static int format(const cJSON *f, cJSON *o, char *err, size_t errlen) {
  if (!f || cJSON_IsNull(f) || (cJSON_IsString(f) && !*f->valuestring)) return 0;
  cJSON *rf = cJSON_AddObjectToObject(o, "response_format");
  if (cJSON_IsString(f) && !strcmp(f->valuestring, "json")) {
    cJSON_AddStringToObject(rf, "type", "json_object");
    return 0;
  }
  if (!cJSON_IsObject(f)) return BAD("format: expected \"json\" or a JSON schema object");
  cJSON_AddStringToObject(rf, "type", "json_schema");
  cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
  cJSON_AddStringToObject(js, "name", "format");
  cJSON_AddItemToObject(js, "schema", cJSON_Duplicate(f, 1));
  return 0;
}

/* A message: tool_calls' arguments stay objects (the chat reader takes both), each call gets an id of 9 letters and
 * digits (Mistral's template takes no other length). */
static int message(const cJSON *m, int i, cJSON *msgs, char *err, size_t errlen) {
  if (!cJSON_IsObject(m)) return BAD("messages[%d]: expected an object", i);
  const cJSON *images = cJSON_GetObjectItemCaseSensitive(m, "images");
  if (cJSON_IsArray(images) && cJSON_GetArraySize(images) > 0)
    return BAD("messages[%d].images: images are not supported (kiln runs text models)", i);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToArray(msgs, o);
  static const char *const copy[] = {"role", "content"};
  for (int k = 0; k < 2; k++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, copy[k]);
    if (v) cJSON_AddItemToObject(o, copy[k], cJSON_Duplicate(v, 1));
  }
  const cJSON *tn = cJSON_GetObjectItemCaseSensitive(m, "tool_name");
  if (cJSON_IsString(tn)) cJSON_AddStringToObject(o, "name", tn->valuestring);
  const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), *c;
  if (!calls || cJSON_IsNull(calls)) return 0;
  if (!cJSON_IsArray(calls)) return BAD("messages[%d].tool_calls: expected an array", i);
  cJSON *oc = cJSON_AddArrayToObject(o, "tool_calls");
  int k = 0;
  cJSON_ArrayForEach(c, calls) {
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
    if (!cJSON_IsObject(fn)) return BAD("messages[%d].tool_calls[%d]: expected {\"function\": {...}}", i, k);
    cJSON *x = cJSON_CreateObject();
    char id[32];
    snprintf(id, sizeof id, "c%04dk%03d", i % 10000, k++ % 1000);
    cJSON_AddStringToObject(x, "id", id);
    cJSON_AddStringToObject(x, "type", "function");
    cJSON_AddItemToObject(x, "function", cJSON_Duplicate(fn, 1));
    cJSON_AddItemToArray(oc, x);
  }
  return 0;
}

typedef struct olla_req {
  cJSON *oai;        /* the OpenAI request */
  req_kind kind;
  bool stream, load_only;
  int num_ctx;
  const char *model;
} olla_req;

static int common(const cJSON *in, olla_req *r, char *err, size_t errlen) {
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(in, "model");
  if (!cJSON_IsString(model) || !*model->valuestring) return BAD("model is required");
  r->model = model->valuestring;
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(in, "stream");
  if (st && !cJSON_IsNull(st) && !cJSON_IsBool(st)) return BAD("stream: expected true or false");
  r->stream = !st || cJSON_IsNull(st) || cJSON_IsTrue(st); /* Ollama streams unless told not to */
  const cJSON *think = cJSON_GetObjectItemCaseSensitive(in, "think");
  if (cJSON_IsBool(think))
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(r->oai, "chat_template_kwargs"), "enable_thinking", cJSON_IsTrue(think));
  if (options(cJSON_GetObjectItemCaseSensitive(in, "options"), r->oai, &r->num_ctx, err, errlen)) return -1;
  return format(cJSON_GetObjectItemCaseSensitive(in, "format"), r->oai, err, errlen);
}

static int chat_req(const cJSON *in, olla_req *r, char *err, size_t errlen) {
  r->kind = REQ_CHAT;
  if (common(in, r, err, errlen)) return -1;
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(in, "messages"), *m;
  if (msgs && !cJSON_IsNull(msgs) && !cJSON_IsArray(msgs)) return BAD("messages: expected an array");
  if (!msgs || cJSON_GetArraySize(msgs) == 0) return r->load_only = true, 0;
  cJSON *out = cJSON_AddArrayToObject(r->oai, "messages");
  int i = 0;
  cJSON_ArrayForEach(m, msgs) if (message(m, i++, out, err, errlen)) return -1;
  /* Ollama's tool results name no call: each answers the next call of the assistant message before it, in order */
  const cJSON *calls = NULL;
  int next = 0;
  cJSON *o;
  cJSON_ArrayForEach(o, out) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(o, "role"), *tc = cJSON_GetObjectItemCaseSensitive(o, "tool_calls");
    if (tc) calls = tc, next = 0;
    else if (cJSON_IsString(role) && !strcmp(role->valuestring, "tool") && calls && next < cJSON_GetArraySize(calls))
      cJSON_AddStringToObject(o, "tool_call_id", cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(calls, next++), "id")->valuestring);
  }
  const cJSON *tools = cJSON_GetObjectItemCaseSensitive(in, "tools");
  if (tools && !cJSON_IsNull(tools)) cJSON_AddItemToObject(r->oai, "tools", cJSON_Duplicate(tools, 1));
  const cJSON *tc = cJSON_GetObjectItemCaseSensitive(in, "tool_choice"); /* kiln's extension: OpenAI's field */
  if (tc && !cJSON_IsNull(tc)) cJSON_AddItemToObject(r->oai, "tool_choice", cJSON_Duplicate(tc, 1));
  return 0;
}

static int generate_req(const cJSON *in, olla_req *r, char *err, size_t errlen) {
  if (common(in, r, err, errlen)) return -1;
  static const char *const unsupported[] = {"suffix", "template", "images"};
  for (int i = 0; i < 3; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, unsupported[i]);
    if ((cJSON_IsString(v) && *v->valuestring) || (cJSON_IsArray(v) && cJSON_GetArraySize(v)))
      return BAD("%s is not supported by kiln (%s)", unsupported[i],
                 i == 0 ? "no fill-in-the-middle" : i == 1 ? "the model's own chat template is used" : "text models only");
  }
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(in, "prompt"), *sys = cJSON_GetObjectItemCaseSensitive(in, "system");
  const cJSON *raw = cJSON_GetObjectItemCaseSensitive(in, "raw");
  if (p && !cJSON_IsNull(p) && !cJSON_IsString(p)) return BAD("prompt: expected a string");
  if (sys && !cJSON_IsNull(sys) && !cJSON_IsString(sys)) return BAD("system: expected a string");
  if (!cJSON_IsString(p) || !*p->valuestring) return r->load_only = true, 0;
  if (cJSON_IsTrue(raw)) { /* the prompt as it is, no template */
    r->kind = REQ_COMPLETION;
    cJSON_AddStringToObject(r->oai, "prompt", p->valuestring);
    return 0;
  }
  r->kind = REQ_CHAT;
  cJSON *msgs = cJSON_AddArrayToObject(r->oai, "messages"), *m;
  if (cJSON_IsString(sys) && *sys->valuestring) {
    cJSON_AddItemToArray(msgs, m = cJSON_CreateObject());
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", sys->valuestring);
  }
  cJSON_AddItemToArray(msgs, m = cJSON_CreateObject());
  cJSON_AddStringToObject(m, "role", "user");
  cJSON_AddStringToObject(m, "content", p->valuestring);
  return 0;
}

/* ---- generation ------------------------------------------------------------------------------------------- */

static void load_reply(srv *S, const olla_req *r, bool chat, http_reply *out) {
  (void)S;
  cJSON *c = cJSON_CreateObject();
  char t[64];
  olla_time(t, sizeof t);
  cJSON_AddStringToObject(c, "model", r->model);
  cJSON_AddStringToObject(c, "created_at", t);
  if (chat) {
    cJSON *m = cJSON_AddObjectToObject(c, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", "");
  } else {
    cJSON_AddStringToObject(c, "response", "");
  }
  cJSON_AddStringToObject(c, "done_reason", "load");
  cJSON_AddBoolToObject(c, "done", 1);
  reply_json(out, 200, c);
}

/* Wait for a job that is not streamed, watching for a client that leaves. */
static void finish_plain(srv *S, struct MHD_Connection *c, srv_job *j, olla_out *o, double t_recv, http_reply *out) {
  size_t have = 0;
  kn_bytes text = {0};
  bool gone = false;
  while (!job_wait(j, &have, &text, 0.2))
    if (!gone && http_client_gone(c)) job_cancel(j), gone = true;
  if (gone) out->status = 499; /* no response: the connection closes */
  else if (j->finish == FIN_ERROR || j->finish == FIN_CANCELLED)
    reply_error(out, atomic_load(&S->stopping) ? 503 : 500, "%s", j->error[0] ? j->error : "generation failed");
  else if (text.oom || olla_out_feed(o, text.s ? text.s : "", text.len, NULL) || olla_out_finish(o, j, t_recv, NULL))
    reply_error(out, 500, "out of memory");
  else
    reply_text(out, 200, "application/json; charset=utf-8", o->response);
  kn_bytes_free(&text);
}

static void run(srv *S, struct MHD_Connection *c, olla_req *r, bool generate_api, double t_recv, http_reply *out) {
  char *body = cJSON_PrintUnformatted(r->oai);
  if (!body) return reply_error(out, 500, "out of memory");
  oai_req q;
  oai_error e;
  kn_sample_params defaults = kn_sample_defaults();
  uint64_t seed;
  defaults.seed = getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed ? seed : (uint64_t)(kn_now() * 1e9);
  srv_job *j = NULL;
  char *prefill = NULL;
  olla_out o = {0};
  if (oai_parse(body, strlen(body), r->kind, &defaults, S->o.max_depth, &q, &e)) {
    reply_error(out, e.status, "%s", e.message);
    goto done;
  }
  if (!(j = job_new())) {
    reply_error(out, 500, "out of memory");
    goto done;
  }
  if (prompt_build(S, &q, body, strlen(body), j, &prefill, &e)) {
    reply_error(out, e.status, "%s", e.message);
    goto done;
  }
  if (r->num_ctx > 0 && r->num_ctx < S->m->n_ctx) { /* a smaller context: prompt and reply within num_ctx */
    if (j->n_prompt >= r->num_ctx) {
      reply_error(out, 400, "the prompt is %d tokens, more than options.num_ctx (%d)", j->n_prompt, r->num_ctx);
      goto done;
    }
    int room = r->num_ctx - j->n_prompt;
    if (j->max_tokens < 0 || j->max_tokens > room) j->max_tokens = room;
  }
  if (olla_out_init(&o, S, r->model, r->kind == REQ_CHAT, generate_api, r->stream, &q, prefill)) {
    reply_error(out, 500, "out of memory");
    goto done;
  }
  out->job = j, out->stream = r->stream;
  job_ref(j);
  if (atomic_load(&S->stopping) || sched_submit(S->sch, j)) {
    reply_error(out, 503, atomic_load(&S->stopping) ? "the server is shutting down" : "too many requests are queued");
  } else if (r->stream) {
    out->status = 200;
    if (!(out->resp = olla_stream_response(S, j, &o, t_recv))) job_cancel(j);
  } else {
    finish_plain(S, c, j, &o, t_recv, out);
  }
done:
  olla_out_free(&o);
  free(prefill), free(body);
  job_unref(j);
  oai_req_free(&q);
}

/* Request bodies go through the one JSON reader the OpenAI routes use: linear, strict, and nesting bounded by
 * --max-json-depth, with the offending top-level field named. */
static cJSON *parse_body(const srv *S, const char *body, size_t len, char *err, size_t errlen) {
  char field[64], msg[192];
  cJSON *in = kn_json_parse(body ? body : "", len, S->o.max_depth, field, sizeof field, msg, sizeof msg);
  if (!in) snprintf(err, errlen, "%s%s%s%s", msg, *field ? " (in field \"" : "", field, *field ? "\")" : "");
  return in;
}

static void generation(srv *S, struct MHD_Connection *c, const char *body, size_t len, bool chat, double t_recv,
                       http_reply *out) {
  char jerr[320];
  cJSON *in = parse_body(S, body, len, jerr, sizeof jerr);
  if (!in || !cJSON_IsObject(in)) {
    cJSON_Delete(in);
    if (!len) return reply_error(out, 400, "the request has no body: expected a JSON object");
    if (!in) return reply_error(out, 400, "%s", jerr);
    return reply_error(out, 400, "the body is not a JSON object");
  }
  olla_req r = {.oai = cJSON_CreateObject()};
  char err[512];
  int rc = chat ? chat_req(in, &r, err, sizeof err) : generate_req(in, &r, err, sizeof err);
  if (rc) reply_error(out, 400, "%s", err);
  else if (!name_ok(S, r.model))
    reply_error(out, 404, "model \"%.100s\" not found: this server runs \"%s\" (see /api/tags)", r.model, S->model_id);
  else if (r.load_only) load_reply(S, &r, chat, out);
  else {
    cJSON_AddStringToObject(r.oai, "model", S->model_id);
    run(S, c, &r, !chat, t_recv, out);
  }
  cJSON_Delete(r.oai);
  cJSON_Delete(in);
}

/* ---- routing ---------------------------------------------------------------------------------------------- */

void ollama_handle(srv *S, struct MHD_Connection *c, const char *method, const char *path, const char *body,
                   size_t len, bool authorized, bool too_big, double t_recv, http_reply *out) {
  static const struct { const char *path; bool post; } routes[] = {
      {"/api/chat", true}, {"/api/generate", true}, {"/api/show", true},
      {"/api/tags", false}, {"/api/ps", false},     {"/api/version", false},
  };
  bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
  if (!strcmp(path, "/")) {
    if (!get) return reply_error(out, 405, "method not allowed");
    return reply_text(out, 200, "text/plain; charset=utf-8", "Ollama is running");
  }
  int k = -1;
  for (int i = 0; i < (int)(sizeof routes / sizeof *routes); i++)
    if (!strcmp(path, routes[i].path)) k = i;
  if (k < 0)
    return reply_error(out, 404, "%s is not supported: kiln serves one model (endpoints: /api/chat, /api/generate, "
                                 "/api/tags, /api/show, /api/ps, /api/version)", path);
  if (routes[k].post ? strcmp(method, "POST") : !get) return reply_error(out, 405, "method not allowed");
  if (!authorized) return reply_error(out, 401, "unauthorized: send the key given to --api-key as `Authorization: Bearer KEY`");
  if (too_big) return reply_error(out, 413, "the request body is larger than the limit of %zu bytes", S->o.max_body);
  if (k <= 1 && atomic_load(&S->stopping)) return reply_error(out, 503, "the server is shutting down");
  switch (k) {
  case 0: return generation(S, c, body, len, true, t_recv, out);
  case 1: return generation(S, c, body, len, false, t_recv, out);
  case 2: {
    char jerr[320];
    cJSON *in = parse_body(S, body, len, jerr, sizeof jerr);
    if (!in) reply_error(out, 400, "%s", jerr);
    else if (!cJSON_IsObject(in)) reply_error(out, 400, "expected a JSON object with \"model\"");
    else show(S, in, out);
    cJSON_Delete(in);
    return;
  }
  case 3: return tags(S, out, false);
  case 4: return tags(S, out, true);
  default: {
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "version", OLLAMA_VERSION);
    return reply_json(out, 200, v);
  }
  }
}
