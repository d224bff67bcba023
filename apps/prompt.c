/* apps/prompt.c: a request's prompt as tokens, and the constraints of its reply. A chat is rendered with the model's
 * template family; text that came from the conversation is tokenized without special-token parsing, so a user who
 * types "<|im_end|>" cannot end a turn. tool_choice required / named pre-fills the call's opening after the
 * generation prompt and constrains the rest to a valid call, so any model (even random weights) returns one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "serve.h"

typedef struct call_format {
  const char *open;  /* before the name */
  const char *mid;   /* between the name and the arguments object */
  const char *tail;  /* after the arguments object */
  const char *sep;   /* instead of the tail: the next call of the same list (parallel_tool_calls), or NULL */
  const char *trigger; /* free text that starts a call (constrained from there on), or NULL */
  const char *after;   /* what the constraint expects after the trigger, before the name */
  bool at_start;       /* the trigger (one byte) opens a call only where the reply, or the text after a call, starts */
} call_format;

/* Llama 3.x writes a call as the whole reply: a JSON object {"name": …, "parameters": {…}}; Qwen/Hermes put it in
 * <tool_call> tags anywhere in the reply; Mistral opens a list of calls with the [TOOL_CALLS] control token (with
 * parallel_tool_calls a list of several, else of one; another [TOOL_CALLS] list may follow), and from v11 on each call is
 * [TOOL_CALLS]name[ARGS]{…} ([ARGS] a control token too). */
static call_format format_of(const kn_chat_template *t) {
  kn_chat_family f = t->family;
  if (f == KN_CHAT_LLAMA3 || f == KN_CHAT_LLAMA31)
    return (call_format){"{\"name\": \"", "\", \"parameters\": ", "}", NULL, "{", "\"name\": \"", true};
  if (f == KN_CHAT_MISTRAL && t->mistral_v >= 11)
    return (call_format){"[TOOL_CALLS]", "[ARGS]", "", NULL, "[TOOL_CALLS]", "", false};
  if (f == KN_CHAT_MISTRAL && t->tight)
    return (call_format){"[TOOL_CALLS][{\"name\": \"", "\", \"arguments\": ", "}]", "}, {\"name\": \"", "[TOOL_CALLS]",
                         "[{\"name\": \"", false};
  if (f == KN_CHAT_MISTRAL)
    return (call_format){"[TOOL_CALLS] [{\"name\": \"", "\", \"arguments\": ", "}]", "}, {\"name\": \"", "[TOOL_CALLS]",
                         " [{\"name\": \"", false};
  return (call_format){"<tool_call>\n{\"name\": \"", "\", \"arguments\": ", "}\n</tool_call>", NULL, "<tool_call>",
                       "\n{\"name\": \"", false};
}

static char *concat3(const char *a, const char *b, const char *c) {
  size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
  char *s = malloc(na + nb + nc + 1);
  if (!s) return NULL;
  memcpy(s, a, na), memcpy(s + na, b, nb), memcpy(s + na + nb, c, nc);
  s[na + nb + nc] = 0;
  return s;
}

/* Candidates "<before>NAME<mid>" for each tool, then a JSON object, then the tail, or (a list of calls, with
 * parallel_tool_calls) the separator and another call. */
static int call_spec(kc_spec *k, const oai_req *q, const srv_job *j, const char *before, const call_format *cf) {
  memset(k, 0, sizeof *k);
  k->json = true;
  if (!(k->tail = strdup(cf->tail))) return -1;
  if (cf->sep && q->parallel_tool_calls && !(k->sep = strdup(cf->sep))) return -1;
  k->skip = strlen(before);
  if (!(k->choices = calloc((size_t)q->n_tools, sizeof *k->choices))) return -1;
  if (!(k->choice_schema = calloc((size_t)q->n_tools, sizeof *k->choice_schema))) return -1;
  for (int i = 0; i < q->n_tools; i++) {
    k->choice_schema[i] = i < j->n_tool_schemas ? j->tool_schemas[i] : NULL;
    if (!(k->choices[k->n_choices++] = concat3(before, q->tool_names[i], cf->mid))) return -1;
  }
  return 0;
}

/* ---- tokenizing -------------------------------------------------------------------------------------------- */

static int append_tokens(const kn_tokenizer *t, const char *s, size_t n, bool special, int32_t **ids, int *nids,
                         int *cap, oai_error *e) {
  if (n == 0) return 0;
  int32_t *part = NULL;
  size_t np = 0;
  char err[256];
  if (kn_tokenize(t, s, n, false, special, &part, &np, err, sizeof err)) {
    oai_err(e, 400, "invalid_request_error", "messages", NULL, "tokenizing the prompt: %s", err);
    return -1;
  }
  if (np > (size_t)(1 << 30) - (size_t)*nids) return free(part), oai_err(e, 400, "invalid_request_error", "messages", NULL, "the prompt is too long"), -1;
  if (*nids + (int)np > *cap) {
    int nc = (*nids + (int)np) * 2 + 64;
    int32_t *g = realloc(*ids, (size_t)nc * sizeof *g);
    if (!g) return free(part), oai_err(e, 500, "server_error", NULL, NULL, "out of memory"), -1;
    *ids = g, *cap = nc;
  }
  memcpy(*ids + *nids, part, np * sizeof *part);
  *nids += (int)np;
  free(part);
  return 0;
}

/* Whether a long text surely has more tokens than the context holds, found without tokenizing all of it (a 60 MB
 * one-word body once took a minute of CPU before its 400): the text in pieces of 16 KiB (cut after whitespace where
 * there is some, else on a character boundary) counted until the count passes n_ctx by more than the cuts could
 * account for; a piece tokenized alone differs from the whole text by a few tokens at each cut. *at_least: a count
 * the prompt surely exceeds. */
static bool surely_too_long(const kn_tokenizer *t, const char *s, size_t n, bool special, int n_ctx, long *at_least) {
  enum { PIECE = 16384, LOOK_BACK = 1024, SLACK_PER_CUT = 8 };
  long total = 0, cuts = 0;
  for (size_t at = 0; at < n && n > PIECE;) {
    size_t len = n - at < PIECE ? n - at : PIECE;
    if (at + len < n) {
      size_t k = len;
      while (k > len - LOOK_BACK && !strchr(" \t\r\n", s[at + k - 1])) k--;
      if (k > len - LOOK_BACK) len = k;
      else while (len > 1 && ((unsigned char)s[at + len] & 0xC0) == 0x80) len--;
    }
    int32_t *ids = NULL;
    size_t nid = 0;
    char err[256];
    if (kn_tokenize(t, s + at, len, false, special, &ids, &nid, err, sizeof err)) return false; /* the exact pass says */
    free(ids);
    total += (long)nid, at += len, cuts++;
    if (total - cuts * SLACK_PER_CUT > n_ctx) return *at_least = total - cuts * SLACK_PER_CUT, true;
  }
  return false;
}

static int context_exceeded(oai_error *e, const oai_req *q, int n_ctx, long n, bool at_least) {
  const char *what = q->kind == REQ_CHAT ? "messages" : "prompt";
  return oai_err(e, 400, "invalid_request_error", what, "context_length_exceeded",
                 "This model's maximum context length is %d tokens. However, your %s resulted in %s%ld tokens (the "
                 "request exceeds the available context size). Please reduce the length of the %s.",
                 n_ctx, what, at_least ? "more than " : "", n, what), -1;
}

/* The rendered prompt: template text with special tokens parsed, conversation text without. */
static int tokenize_prompt(srv *S, const kn_chat_prompt *p, int32_t **ids, int *n, oai_error *e) {
  const kn_tokenizer *t = S->m->tok;
  int cap = 0;
  *ids = NULL, *n = 0;
  if (kn_tokenizer_add_bos(t) && !kn_chat_family_has_bos(S->tmpl.family) && kn_token_bos(t) >= 0) {
    if (!(*ids = malloc(64 * sizeof **ids))) return oai_err(e, 500, "server_error", NULL, NULL, "out of memory"), -1;
    cap = 64;
    (*ids)[(*n)++] = kn_token_bos(t);
  }
  size_t at = 0;
  for (size_t i = 0; i <= p->n_data; i++) {
    size_t off = i < p->n_data ? p->data[i].off : p->len, len = i < p->n_data ? p->data[i].len : 0;
    if (off < at || off + len > p->len) return oai_err(e, 500, "server_error", NULL, NULL, "bad prompt spans"), -1;
    if (append_tokens(t, p->text + at, off - at, true, ids, n, &cap, e) ||
        append_tokens(t, p->text + off, len, false, ids, n, &cap, e))
      return -1;
    at = off + len;
  }
  return 0;
}

/* ---- chat -------------------------------------------------------------------------------------------------- */

/* The job's constraints from tool_choice and response_format; *prefill: the reply's pre-filled opening. */
static int set_constraints(srv *S, const oai_req *q, srv_job *j, char **prefill) {
  call_format cf = format_of(&S->tmpl);
  bool tools = q->n_tools > 0 && q->tc != TC_NONE;
  j->render_special = tools;
  if (tools && (q->tc == TC_REQUIRED || q->tc == TC_NAMED)) {
    const char *name = q->tc == TC_NAMED ? q->tool_name : q->n_tools == 1 ? q->tool_names[0] : NULL;
    *prefill = name ? concat3(cf.open, name, cf.mid) : strdup(cf.open);
    if (!*prefill) return -1;
    if (name) { /* the whole opening is in the prompt: only the arguments remain */
      j->forced.json = true;
      for (int i = 0; i < q->n_tools && i < j->n_tool_schemas; i++)
        if (!strcmp(q->tool_names[i], name)) j->forced.schema = j->tool_schemas[i];
      if (!(j->forced.tail = strdup(cf.tail))) return -1;
    } else if (call_spec(&j->forced, q, j, "", &cf)) {
      return -1;
    }
    j->has_forced = j->finish_after_forced = j->forced_is_call = true;
    return 0;
  }
  if (q->json_object) {
    j->forced.json = true;
    j->forced.schema = j->rf_schema;
    j->has_forced = j->finish_after_forced = true;
  }
  if (tools && q->tc == TC_AUTO && cf.trigger) {
    if (!(j->trigger = strdup(cf.trigger)) || call_spec(&j->lazy, q, j, cf.after, &cf)) return -1;
    j->trigger_at_start = cf.at_start;
    j->stop_after_call = !q->parallel_tool_calls;
  }
  return 0;
}

static int chat_prompt(srv *S, const oai_req *q, const char *body, size_t len, srv_job *j, char **prefill,
                       oai_error *e) {
  char err[512];
  (void)body, (void)len;
  kn_chat *c = kn_chat_from_cjson(q->root, err, sizeof err); /* the tree oai_parse read: the body is read once */
  if (!c) return oai_err(e, 400, "invalid_request_error", "messages", NULL, "%s", err), -1;
  int rc = -1;
  kn_chat_prompt p = {0};
  if (q->tc == TC_NONE) free(c->tools_json), c->tools_json = NULL;
  if (set_constraints(S, q, j, prefill)) {
    oai_err(e, 500, "server_error", NULL, NULL, "out of memory");
    goto done;
  }
  kn_chat_opts o;
  kn_chat_opts_init(&o);
  if (q->enable_thinking >= 0) o.enable_thinking = q->enable_thinking;
  if (*prefill) o.enable_thinking = 0; /* a forced call follows the generation prompt directly */
  if (kn_chat_render_prompt(&S->tmpl, c, &o, &p, err, sizeof err)) {
    oai_err(e, 400, "invalid_request_error", "messages", NULL, "%s", err);
    goto done;
  }
  long at_least; /* special-token text counts as one token here, which only lowers the count */
  if (surely_too_long(S->m->tok, p.text, p.len, true, S->m->n_ctx, &at_least)) {
    context_exceeded(e, q, S->m->n_ctx, at_least, true);
    goto done;
  }
  if (tokenize_prompt(S, &p, &j->prompt, &j->n_prompt, e)) goto done;
  if (*prefill) {
    int cap = j->n_prompt;
    if (append_tokens(S->m->tok, *prefill, strlen(*prefill), true, &j->prompt, &j->n_prompt, &cap, e)) goto done;
  }
  if (S->o.verbose) fprintf(stderr, "---- prompt (%d tokens) ----\n%s%s\n----\n", j->n_prompt, p.text, *prefill ? *prefill : "");
  rc = 0;
done:
  kn_chat_prompt_free(&p);
  kn_chat_free(c);
  return rc;
}

/* ---- completions ------------------------------------------------------------------------------------------- */

static int completion_prompt(srv *S, const oai_req *q, srv_job *j, oai_error *e) {
  const cJSON *p = q->prompt;
  const kn_tokenizer *t = S->m->tok;
  if (cJSON_IsArray(p) && !cJSON_IsString(cJSON_GetArrayItem(p, 0))) {
    int n = cJSON_GetArraySize(p), i = 0;
    if (!(j->prompt = malloc((size_t)n * sizeof *j->prompt))) return oai_err(e, 500, "server_error", NULL, NULL, "out of memory"), -1;
    const cJSON *v;
    cJSON_ArrayForEach(v, p) {
      if (v->valuedouble >= S->m->hp.n_vocab)
        return oai_err(e, 400, "invalid_request_error", "prompt", NULL, "prompt[%d]: token id %.0f is outside the vocabulary of %d", i, v->valuedouble, S->m->hp.n_vocab), -1;
      j->prompt[i++] = (int32_t)v->valuedouble;
    }
    j->n_prompt = n;
    return 0;
  }
  const char *text = cJSON_IsString(p) ? p->valuestring : cJSON_GetArrayItem(p, 0)->valuestring;
  size_t n = 0;
  char err[256];
  long at_least;
  if (surely_too_long(t, text, strlen(text), true, S->m->n_ctx, &at_least))
    return context_exceeded(e, q, S->m->n_ctx, at_least, true);
  if (kn_tokenize(t, text, strlen(text), true, true, &j->prompt, &n, err, sizeof err))
    return oai_err(e, 400, "invalid_request_error", "prompt", NULL, "tokenizing the prompt: %s", err), -1;
  j->n_prompt = (int)n;
  if (q->json_object) j->forced.json = j->has_forced = j->finish_after_forced = true;
  j->forced.schema = j->rf_schema;
  return 0;
}

static int set_bias(srv *S, const oai_req *q, srv_job *j, oai_error *e) {
  int n = q->logit_bias ? cJSON_GetArraySize(q->logit_bias) : 0;
  if (n == 0) return 0;
  j->bias_ids = malloc((size_t)n * sizeof *j->bias_ids);
  j->bias = malloc((size_t)n * sizeof *j->bias);
  if (!j->bias_ids || !j->bias) return oai_err(e, 500, "server_error", NULL, NULL, "out of memory"), -1;
  const cJSON *v;
  cJSON_ArrayForEach(v, q->logit_bias) {
    long id = strtol(v->string, NULL, 10);
    if (id >= S->m->hp.n_vocab)
      return oai_err(e, 400, "invalid_request_error", "logit_bias", NULL,
                     "logit_bias: token id %ld is outside the vocabulary of %d", id, S->m->hp.n_vocab), -1;
    j->bias_ids[j->n_bias] = (int32_t)id;
    j->bias[j->n_bias++] = (float)v->valuedouble;
  }
  return 0;
}

int prompt_build(srv *S, oai_req *q, const char *body, size_t len, srv_job *j, char **prefill, oai_error *e) {
  *prefill = NULL;
  j->tool_schemas = q->tool_schemas, j->n_tool_schemas = q->tool_schemas ? q->n_tools : 0, j->rf_schema = q->rf_schema;
  q->tool_schemas = NULL, q->rf_schema = NULL;
  int rc = q->kind == REQ_CHAT ? chat_prompt(S, q, body, len, j, prefill, e) : completion_prompt(S, q, j, e);
  if (rc) return -1;
  int n_ctx = S->m->n_ctx;
  if (j->n_prompt == 0)
    return oai_err(e, 400, "invalid_request_error", q->kind == REQ_CHAT ? "messages" : "prompt", NULL, "the prompt is empty"), -1;
  if (j->n_prompt >= n_ctx) return context_exceeded(e, q, n_ctx, j->n_prompt, false);
  if (set_bias(S, q, j, e)) return -1;
  j->sp = q->sp;
  j->max_tokens = q->max_tokens;
  if (q->n_stops) {
    if (!(j->stops = calloc((size_t)q->n_stops, sizeof *j->stops))) return oai_err(e, 500, "server_error", NULL, NULL, "out of memory"), -1;
    for (int i = 0; i < q->n_stops; i++)
      if (!(j->stops[j->n_stops++] = strdup(q->stops[i]))) return oai_err(e, 500, "server_error", NULL, NULL, "out of memory"), -1;
  }
  return 0;
}
