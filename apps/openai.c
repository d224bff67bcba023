/* apps/openai.c: OpenAI request bodies -> checked parameters, and errors in OpenAI's shape. Unknown fields are
 * ignored (clients send store, metadata, strict, ...); a known field of the wrong type is a 400 naming it. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/json_read.h"
#include "serve.h"

/* ---- errors ---------------------------------------------------------------------------------------------- */

void oai_err(oai_error *e, int status, const char *type, const char *param, const char *code, const char *fmt, ...) {
  e->status = status, e->type = type, e->param = param, e->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
}

char *oai_error_json(const oai_error *e) {
  cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
  cJSON_AddStringToObject(err, "message", e->message);
  cJSON_AddStringToObject(err, "type", e->type ? e->type : "invalid_request_error");
  if (e->param) cJSON_AddStringToObject(err, "param", e->param);
  else cJSON_AddNullToObject(err, "param");
  if (e->code) cJSON_AddStringToObject(err, "code", e->code);
  else cJSON_AddNullToObject(err, "code");
  char *s = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return s;
}

/* ---- field checks ---------------------------------------------------------------------------------------- */

#define BAD(param, ...) (oai_err(e, 400, "invalid_request_error", param, NULL, __VA_ARGS__), -1)

/* A present, non-null field; NULL when absent or null (null means "default" for every optional field). */
static const cJSON *field(const cJSON *root, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
  return v && !cJSON_IsNull(v) ? v : NULL;
}

static int get_number(const cJSON *root, const char *name, double lo, double hi, double *out, oai_error *e) {
  const cJSON *v = field(root, name);
  if (!v) return 0;
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return BAD(name, "%s: expected a number", name);
  if (v->valuedouble < lo || v->valuedouble > hi)
    return BAD(name, "%s: %g is out of range [%g, %g]", name, v->valuedouble, lo, hi);
  *out = v->valuedouble;
  return 1;
}

static int get_int(const cJSON *root, const char *name, double lo, double hi, long long *out, oai_error *e) {
  double d;
  int r = get_number(root, name, lo, hi, &d, e);
  if (r <= 0) return r;
  if (d != floor(d)) return BAD(name, "%s: expected an integer", name);
  *out = (long long)d;
  return 1;
}

static int get_bool(const cJSON *root, const char *name, bool *out, oai_error *e) {
  const cJSON *v = field(root, name);
  if (!v) return 0;
  if (!cJSON_IsBool(v)) return BAD(name, "%s: expected true or false", name);
  *out = cJSON_IsTrue(v);
  return 1;
}

static int get_stops(const cJSON *root, oai_req *q, oai_error *e) {
  const cJSON *v = field(root, "stop");
  if (!v) return 0;
  int max = (int)(sizeof q->stops / sizeof *q->stops);
  if (cJSON_IsString(v)) {
    if (!*v->valuestring) return 0;
    if (!(q->stops[q->n_stops++] = strdup(v->valuestring))) return BAD("stop", "out of memory");
    return 0;
  }
  if (!cJSON_IsArray(v)) return BAD("stop", "stop: expected a string or an array of strings");
  const cJSON *s;
  cJSON_ArrayForEach(s, v) {
    if (!cJSON_IsString(s)) return BAD("stop", "stop: expected a string or an array of strings");
    if (!*s->valuestring) continue;
    if (q->n_stops == max) return BAD("stop", "stop: at most %d stop sequences", max);
    if (!(q->stops[q->n_stops++] = strdup(s->valuestring))) return BAD("stop", "out of memory");
  }
  return 0;
}

static int get_sampling(const cJSON *root, oai_req *q, oai_error *e) {
  double d;
  long long i;
  int r;
  if ((r = get_number(root, "temperature", 0, 100, &d, e)) < 0) return -1;
  if (r) q->sp.temperature = (float)d;
  if ((r = get_number(root, "top_p", 0, 1, &d, e)) < 0) return -1;
  if (r) q->sp.top_p = (float)d;
  if ((r = get_int(root, "top_k", 0, 1e9, &i, e)) < 0) return -1;
  if (r) q->sp.top_k = (int)i;
  if ((r = get_number(root, "min_p", 0, 1, &d, e)) < 0) return -1;
  if (r) q->sp.min_p = (float)d;
  if ((r = get_number(root, "frequency_penalty", -2, 2, &d, e)) < 0) return -1;
  if (r) q->sp.frequency_penalty = (float)d;
  if ((r = get_number(root, "presence_penalty", -2, 2, &d, e)) < 0) return -1;
  if (r) q->sp.presence_penalty = (float)d;
  const char *rp = field(root, "repetition_penalty") ? "repetition_penalty" : "repeat_penalty";
  if ((r = get_number(root, rp, 0.01, 100, &d, e)) < 0) return -1;
  if (r) q->sp.repeat_penalty = (float)d;
  if ((r = get_int(root, "seed", -9.2e18, 9.2e18, &i, e)) < 0) return -1;
  if (r) q->sp.seed = (uint64_t)i;
  return 0;
}

static int get_logit_bias(const cJSON *root, oai_req *q, oai_error *e) {
  const cJSON *lb = field(root, "logit_bias");
  if (!lb) return 0;
  if (!cJSON_IsObject(lb)) return BAD("logit_bias", "logit_bias: expected an object of token id -> bias");
  const cJSON *v;
  cJSON_ArrayForEach(v, lb) {
    char *end;
    long id = strtol(v->string, &end, 10);
    if (!*v->string || *end || id < 0) return BAD("logit_bias", "logit_bias: key \"%.20s\" is not a token id", v->string);
    if (!cJSON_IsNumber(v) || v->valuedouble < -100 || v->valuedouble > 100)
      return BAD("logit_bias", "logit_bias[\"%.20s\"]: expected a number in [-100, 100]", v->string);
  }
  q->logit_bias = lb;
  return 0;
}

static int get_max_tokens(const cJSON *root, oai_req *q, oai_error *e) {
  long long i;
  int r;
  q->max_tokens = -1;
  if ((r = get_int(root, "max_tokens", 0, 1e9, &i, e)) < 0) return -1;
  if (r) q->max_tokens = (int)i;
  if ((r = get_int(root, "max_completion_tokens", 0, 1e9, &i, e)) < 0) return -1;
  if (r) q->max_tokens = (int)i;
  if ((r = get_int(root, "n_predict", -1, 1e9, &i, e)) < 0) return -1; /* llama.cpp's name */
  if (r && i >= 0) q->max_tokens = (int)i;
  return 0;
}

static int get_stream(const cJSON *root, oai_req *q, oai_error *e) {
  if (get_bool(root, "stream", &q->stream, e) < 0) return -1;
  const cJSON *so = field(root, "stream_options");
  if (!so) return 0;
  if (!cJSON_IsObject(so)) return BAD("stream_options", "stream_options: expected an object");
  if (get_bool(so, "include_usage", &q->include_usage, e) < 0) return -1;
  return 0;
}

/* ---- tools ----------------------------------------------------------------------------------------------- */

static int get_tools(const cJSON *root, oai_req *q, oai_error *e) {
  const cJSON *tools = field(root, "tools");
  if (!tools) return 0;
  if (!cJSON_IsArray(tools)) return BAD("tools", "tools: expected an array");
  int n = cJSON_GetArraySize(tools);
  if (n == 0) return 0;
  if (!(q->tool_names = calloc((size_t)n, sizeof *q->tool_names)) ||
      !(q->tool_schemas = calloc((size_t)n, sizeof *q->tool_schemas)))
    return BAD("tools", "out of memory");
  const cJSON *t;
  cJSON_ArrayForEach(t, tools) {
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    if (!cJSON_IsObject(t) || !cJSON_IsObject(fn) || !cJSON_IsString(name) || !*name->valuestring)
      return BAD("tools", "tools[%d]: expected {\"type\": \"function\", \"function\": {\"name\": ...}}", q->n_tools);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
    if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
      return BAD("tools", "tools[%d].function.parameters: expected an object", q->n_tools);
    if (strpbrk(name->valuestring, "\"\\<>\n\r\t") || strlen(name->valuestring) > 256) /* it must survive the prompt and the parser */
      return BAD("tools", "tools[%d].function.name: not a valid function name (no quotes, backslashes, angle brackets or "
                 "line breaks; at most 256 bytes)", q->n_tools);
    for (int k = 0; k < q->n_tools; k++)
      if (!strcmp(q->tool_names[k], name->valuestring))
        return BAD("tools", "tools[%d].function.name: \"%s\" is defined twice", q->n_tools, name->valuestring);
    char err[400];
    if (cJSON_IsObject(params) &&
        !(q->tool_schemas[q->n_tools] = kn_jschema_compile(params, KN_JSCHEMA_ROOT_OBJECT, err, sizeof err)))
      return BAD("tools", "tools[%d].function.parameters: %s", q->n_tools, err);
    q->tool_names[q->n_tools++] = name->valuestring;
  }
  return 0;
}

static int get_tool_choice(const cJSON *root, oai_req *q, oai_error *e) {
  const cJSON *tc = field(root, "tool_choice");
  q->tc = TC_AUTO;
  if (tc && cJSON_IsString(tc)) {
    const char *s = tc->valuestring;
    if (!strcmp(s, "auto")) q->tc = TC_AUTO;
    else if (!strcmp(s, "none")) q->tc = TC_NONE;
    else if (!strcmp(s, "required")) q->tc = TC_REQUIRED;
    else return BAD("tool_choice", "tool_choice: expected \"auto\", \"none\", \"required\" or a function, not \"%.40s\"", s);
  } else if (tc) {
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    if (!cJSON_IsObject(tc) || !cJSON_IsString(name))
      return BAD("tool_choice", "tool_choice: expected a string or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    q->tc = TC_NAMED;
    q->tool_name = name->valuestring;
  }
  if ((q->tc == TC_REQUIRED || q->tc == TC_NAMED) && q->n_tools == 0)
    return BAD("tool_choice", "tool_choice: \"%s\" needs tools", q->tc == TC_NAMED ? "function" : "required");
  if (q->tc == TC_NAMED) {
    int found = 0;
    for (int k = 0; k < q->n_tools; k++) found |= !strcmp(q->tool_names[k], q->tool_name);
    if (!found) return BAD("tool_choice", "tool_choice: no tool is named \"%.60s\"", q->tool_name);
  }
  q->parallel_tool_calls = true;
  return get_bool(root, "parallel_tool_calls", &q->parallel_tool_calls, e) < 0 ? -1 : 0;
}

static int get_response_format(const cJSON *root, oai_req *q, oai_error *e) {
  const cJSON *rf = field(root, "response_format");
  if (!rf) return 0;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
  if (!cJSON_IsObject(rf) || !cJSON_IsString(type))
    return BAD("response_format", "response_format: expected {\"type\": \"text\" | \"json_object\" | \"json_schema\"}");
  if (!strcmp(type->valuestring, "json_schema")) {
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
    const cJSON *sch = cJSON_GetObjectItemCaseSensitive(js, "schema");
    if (!cJSON_IsObject(js) || !sch || cJSON_IsNull(sch))
      return BAD("response_format", "response_format.json_schema.schema: missing (expected {\"type\": \"json_schema\", "
                                    "\"json_schema\": {\"name\": ..., \"schema\": {...}}})");
    char err[400];
    if (!(q->rf_schema = kn_jschema_compile(sch, 0, err, sizeof err)))
      return BAD("response_format", "response_format.json_schema.schema: %s", err);
    q->json_object = true;
  } else if (!strcmp(type->valuestring, "json_object")) q->json_object = true;
  else if (strcmp(type->valuestring, "text"))
    return BAD("response_format", "response_format.type: unknown type \"%.40s\"", type->valuestring);
  return 0;
}

static int get_chat(const cJSON *root, oai_req *q, oai_error *e) {
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
  if (!msgs) return BAD("messages", "messages: missing (a chat completion needs an array of messages)");
  if (!cJSON_IsArray(msgs)) return BAD("messages", "messages: expected an array");
  if (cJSON_GetArraySize(msgs) == 0) return BAD("messages", "messages: the array is empty");
  if (get_tools(root, q, e) || get_tool_choice(root, q, e)) return -1;
  if (q->max_tokens == 0 && (q->tc == TC_REQUIRED || q->tc == TC_NAMED)) /* else half a call would come back as text */
    return BAD("max_tokens", "max_tokens: 0 leaves no room for the tool call that tool_choice requires");
  q->enable_thinking = -1;
  const cJSON *kw = field(root, "chat_template_kwargs");
  if (kw) {
    bool b;
    if (!cJSON_IsObject(kw)) return BAD("chat_template_kwargs", "chat_template_kwargs: expected an object");
    int r = get_bool(kw, "enable_thinking", &b, e);
    if (r < 0) return -1;
    if (r) q->enable_thinking = b;
  }
  return 0;
}

static int get_prompt(const cJSON *root, oai_req *q, oai_error *e) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
  if (!p || cJSON_IsNull(p)) return BAD("prompt", "prompt: missing");
  if (cJSON_IsArray(p)) {
    int n = cJSON_GetArraySize(p);
    if (n == 0) return BAD("prompt", "prompt: the array is empty");
    const cJSON *first = cJSON_GetArrayItem(p, 0);
    if (cJSON_IsString(first)) {
      if (n > 1) return BAD("prompt", "prompt: only one prompt per request is supported");
    } else {
      const cJSON *t;
      cJSON_ArrayForEach(t, p) if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0)
          return BAD("prompt", "prompt: expected a string, an array of one string, or an array of token ids");
    }
  } else if (!cJSON_IsString(p)) {
    return BAD("prompt", "prompt: expected a string, an array of one string, or an array of token ids");
  }
  q->prompt = (cJSON *)p;
  return 0;
}

int oai_parse(const char *body, size_t len, req_kind kind, const kn_sample_params *defaults, int max_depth, oai_req *q,
              oai_error *e) {
  memset(q, 0, sizeof *q);
  q->kind = kind;
  q->sp = *defaults;
  q->enable_thinking = -1;
  if (len == 0) return BAD(NULL, "the request has no body: expected a JSON object");
  char jerr[256];
  if (!(q->root = kn_json_parse(body, len, max_depth, e->param_buf, sizeof e->param_buf, jerr, sizeof jerr))) {
    oai_err(e, 400, "invalid_request_error", e->param_buf[0] ? e->param_buf : NULL, NULL, "%s%s%s", jerr,
            e->param_buf[0] ? " (in the field " : "", e->param_buf[0] ? e->param_buf : "");
    if (e->param_buf[0]) strncat(e->message, ")", sizeof e->message - strlen(e->message) - 1);
    return -1;
  }
  if (!cJSON_IsObject(q->root)) return BAD(NULL, "the body must be a JSON object");
  const cJSON *model = field(q->root, "model");
  if (model && !cJSON_IsString(model)) return BAD("model", "model: expected a string");
  q->model = model ? model->valuestring : NULL;
  long long n = 1;
  if (get_int(q->root, "n", 1, 1e9, &n, e) < 0) return -1;
  if (n != 1) return BAD("n", "n: only 1 choice per request is supported");
  if (get_max_tokens(q->root, q, e) || get_sampling(q->root, q, e) || get_stops(q->root, q, e) ||
      get_stream(q->root, q, e) || get_logit_bias(q->root, q, e))
    return -1;
  if (get_response_format(q->root, q, e)) return -1;
  return kind == REQ_CHAT ? get_chat(q->root, q, e) : get_prompt(q->root, q, e);
}

void oai_req_free(oai_req *q) {
  for (int i = 0; i < q->n_stops; i++) free(q->stops[i]);
  for (int i = 0; q->tool_schemas && i < q->n_tools; i++) kn_jschema_free(q->tool_schemas[i]);
  free(q->tool_names), free(q->tool_schemas);
  kn_jschema_free(q->rf_schema);
  cJSON_Delete(q->root);
  memset(q, 0, sizeof *q);
}
