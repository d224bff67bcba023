/* apps/serve.h: private to the files of `kiln serve` (serve*.c, openai.c, sse.c, sched.c, constrain.c, prompt.c).
 * The server is three layers: HTTP (libmicrohttpd threads, one per connection) -> jobs -> one scheduler thread that
 * owns the model and runs the KV slots round-robin, token by token. */
#ifndef KN_SERVE_H
#define KN_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "device/base/bytes.h"
#include "models/text/chat.h"
#include "models/text/json_constraint.h"
#include "models/text/json_schema.h"
#include "models/sample.h"

struct kn_model;
struct kn_tokenizer;

/* ---- errors in OpenAI's shape ------------------------------------------------------------------------------- */

typedef struct oai_error {
  int status;         /* HTTP status */
  const char *type;   /* invalid_request_error, authentication_error, not_found_error, server_error, ... */
  const char *param;  /* the request field at fault, or NULL */
  const char *code;   /* machine-readable code (context_length_exceeded, model_not_found), or NULL */
  char message[512];
  char param_buf[64]; /* storage for param when it names a field of the body (a JSON error's field) */
} oai_error;

void oai_err(oai_error *e, int status, const char *type, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* {"error":{"message","type","param","code"}} as a malloc'd string. */
char *oai_error_json(const oai_error *e);

/* ---- constrained output: a byte acceptor over [choice of literals] -> [JSON object] -> [literal tail] -------- */

typedef struct kc_spec {
  char **choices; /* candidate literals (none is a prefix of another); NULL/0: no choice phase */
  int n_choices;
  bool json;      /* a JSON object follows the choice */
  const kn_jschema *schema;         /* what the JSON must match (NULL: any object); owned by the job */
  const kn_jschema **choice_schema; /* per choice, overriding schema where not NULL (each tool's parameters) */
  char *tail;     /* literal after the JSON (may be NULL) */
  char *sep;      /* literal that may stand instead of the tail: another call of the same list follows, its choice
                   * matched from byte `skip` on (Mistral's [{…}, {…}]); NULL: none */
  size_t skip;
} kc_spec;

enum { KC_CHOICE, KC_JSON, KC_TAIL, KC_DONE };

typedef struct kc_state {
  const kc_spec *spec;
  int phase;
  int cand;       /* KC_CHOICE: a candidate consistent with the bytes so far */
  size_t pos;     /* bytes matched in the current choice / tail */
  bool in_sep;    /* KC_TAIL: the bytes so far are following sep, not tail */
  kn_jsv v;       /* KC_JSON: the schema automaton (large: copy a kc_state with kc_copy) */
} kc_state;

void kc_spec_free(kc_spec *s);
void kc_init(kc_state *k, const kc_spec *spec);
void kc_copy(kc_state *dst, const kc_state *src);
int kc_push(kc_state *k, unsigned char c);                     /* 1 accepted (state advanced), 0 rejected */
int kc_accepts(const kc_state *k, const void *bytes, size_t n); /* all n bytes would be accepted */
/* The bytes that would complete the output from here (the shortest we know), appended to out. */
void kc_closure(const kc_state *k, kn_bytes *out);
/* The closure once these bytes are pushed, appended to out; -1 when they are not accepted (or out of memory). */
int kc_closure_after(const kc_state *k, const void *bytes, size_t n, kn_bytes *out);
/* How many bytes the output must continue with, at *lit: what all live choices share next, or the rest of the
 * tail; 0 when there is a choice to make. */
size_t kc_forced(const kc_state *k, const char **lit);

/* Token bytes of a vocabulary for masking: only plain text tokens may appear in constrained output. */
typedef struct kc_vocab {
  const struct kn_tokenizer *tok;
  int n;
  uint8_t *ok; /* per token: 1 = may be used in constrained output; 2 = a control token (Mistral's [ARGS]): only where
                * its text is part of a literal (a call's opening or ending), never inside JSON */
  int32_t byte_tok[256]; /* a token that is exactly this one byte (-1: none): spells any literal, even half a
                          * UTF-8 character that a forced completion may have to finish */
  struct kc_tok *sorted; /* the usable tokens (ok != 0) in the order of their bytes, so those sharing a prefix the
                          * acceptor rejects are one run, rejected at once */
  int n_sorted;
  int32_t first_at[257]; /* sorted[first_at[b] .. first_at[b + 1]) begin with byte b */
} kc_vocab;

int kc_vocab_init(kc_vocab *v, const struct kn_tokenizer *tok, int n_vocab);
void kc_vocab_free(kc_vocab *v);
/* Sample a token the acceptor takes: try the sampler's choice first, mask the vocabulary only when it is rejected.
 * scratch holds n floats. KN_SAMPLE_BAD_LOGITS (-1) for logits with no token to give (NaN), -2 when no token
 * is accepted. */
int kc_sample(const kc_vocab *v, const kc_state *k, kn_sampler *smp, float *logits, float *scratch);
/* Set the logits of the tokens the acceptor rejects to -inf (every token that is not usable, and those whose bytes it
 * would not take); returns how many tokens it takes. */
int kc_mask(const kc_vocab *v, const kc_state *k, float *logits);
/* How many of the bytes the acceptor takes in a row: n exactly when kc_accepts takes them all, else m such that it
 * takes the first m and not the first m + 1. */
size_t kc_prefix(const kc_state *k, const void *bytes, size_t n);

/* ---- jobs: one generation request, shared by an HTTP thread and the scheduler -------------------------------- */

typedef enum { FIN_NONE, FIN_STOP, FIN_LENGTH, FIN_TOOL, FIN_CANCELLED, FIN_ERROR } job_finish;

typedef struct srv_job {
  /* input (set before submit, then read-only) */
  int32_t *prompt;
  int n_prompt;
  kn_sample_params sp;
  int max_tokens;          /* < 0: until end of generation or the context end */
  char **stops;
  int n_stops;
  int32_t *bias_ids;       /* logit_bias: added to these tokens' logits before sampling */
  float *bias;
  int n_bias;
  kc_spec forced;          /* constraint from the first token (tool_choice required/named, json_object) */
  bool has_forced;
  bool finish_after_forced;/* stop when the forced part is complete (forced call, json_object) */
  bool forced_is_call;     /* the forced part is a tool call (finish reason tool_calls) */
  bool render_special;     /* output keeps special tokens' text (tool-call tags may be control tokens) */
  kn_jschema **tool_schemas; /* each tool's parameters (NULL: any object), n_tool_schemas; owned */
  int n_tool_schemas;
  kn_jschema *rf_schema;   /* response_format json_schema (NULL: any object); owned */
  kc_spec lazy;            /* constraint once `trigger` appears in free text (auto tool calls) */
  char *trigger;           /* e.g. "<tool_call>"; NULL: none */
  bool trigger_at_start;   /* the trigger is one byte that counts only where the reply (or the text after a call)
                            * starts, after whitespace: Llama 3's bare JSON calls */
  bool stop_after_call;    /* parallel_tool_calls false: stop after the first triggered call */

  /* output, guarded by mu */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  kn_bytes out;                /* text released so far */
  bool done;
  job_finish finish;
  char error[256];
  int n_cached, n_gen, slot;
  double t_submit, t_start, t_prefill, t_first, t_end; /* t_first: the first token was generated */

  atomic_bool cancel;
  atomic_int refs;
} srv_job;

srv_job *job_new(void);
void job_ref(srv_job *j);
void job_unref(srv_job *j);
void job_cancel(srv_job *j);
/* Wait until new output past `have` bytes or the end, at most timeout seconds. Copies new text into *text
 * (appended) and returns 1 when the job is done, else 0. */
int job_wait(srv_job *j, size_t *have, kn_bytes *text, double timeout);
const char *job_finish_name(job_finish f);

/* ---- the scheduler ------------------------------------------------------------------------------------------ */

typedef struct sched sched;

sched *sched_new(struct kn_model *m, const kc_vocab *vocab, int max_queue, char *err, size_t errlen);
/* Queue a job (a reference is taken). -1 when the queue is full or the scheduler stopped. */
int sched_submit(sched *s, srv_job *j);
/* Cancel every job (queued and running) and stop the thread. */
void sched_stop(sched *s);
/* Finish every job now, queued or running, as cancelled with `why`: their clients get their last event (a stream's
 * error event, a 503) without waiting for the forward pass in flight, which a slow device may run for many seconds.
 * That pass is stopped at its next kernel (kn_device_stop; on the emulated GPU at its next workgroup); the thread
 * stops after it; nothing new is taken. */
void sched_cut(sched *s, const char *why);
/* Stop the thread, waiting at most `seconds` for the pass in flight: 0 when it stopped, -1 when it is still in that
 * pass (then nothing of the scheduler or the model may be freed: only the process's end stops it). */
int sched_stop_within(sched *s, double seconds);
void sched_free(sched *s);
int sched_busy(sched *s, int *queued); /* running jobs; *queued waiting */
long sched_kv_tokens(sched *s);        /* tokens held in the KV caches of all slots */

/* ---- the server --------------------------------------------------------------------------------------------- */

typedef struct srv_opts {
  const char *model_path;
  const char *host;
  int port;
  int n_ctx;
  int n_parallel;
  const char *api_key;
  const char *alias;
  size_t max_body;
  int max_depth;             /* JSON nesting in a request body */
  int max_queue;
  double ping_interval;
  int verbose;
  const char *chat_template; /* family name to force, or NULL */
  int max_conns_per_client;  /* open connections per client address */
  double header_timeout;     /* seconds for a new connection's request headers */
  double body_timeout;       /* seconds for a request body, from the end of its headers */
  double idle_timeout;       /* seconds a kept-alive connection may wait for its next request */
} srv_opts;

/* ---- connection deadlines (serve_guard.c) --------------------------------------------------------------------- */

typedef enum { G_HEADERS, G_BODY, G_IDLE, G_BUSY } guard_phase; /* G_BUSY: being answered, no deadline */
typedef struct guard guard;
struct srv;
guard *guard_new(struct srv *S, double header_s, double body_s, double idle_s);
void guard_free(guard *g);
/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback (cls: the guard). */
void guard_notify(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code);
/* The connection enters phase p; true when the guard had cut it for a passed deadline. */
bool guard_enter(guard *g, struct MHD_Connection *c, guard_phase p);

/* ---- metrics (metrics.c) ----------------------------------------------------------------------------------- */

#define KN_TTFT_BUCKETS 10

typedef struct srv_metrics {
  pthread_mutex_t mu;
  double t_start;
  uint64_t requests[2][5];      /* [openai, ollama][2xx, 3xx, 4xx, 5xx, other] */
  uint64_t prompt_tokens, cached_tokens, gen_tokens;
  double prompt_seconds, decode_seconds;
  uint64_t ttft_count[KN_TTFT_BUCKETS + 1]; /* per bucket (not cumulative); the last: above every bound */
  double ttft_sum;
  uint64_t ttft_n;
} srv_metrics;

void metrics_init(srv_metrics *m);
void metrics_free(srv_metrics *m);

typedef struct srv {
  srv_opts o;
  guard *guard;
  struct kn_model *m;
  kn_chat_template tmpl;
  kc_vocab vocab;
  sched *sch;
  char model_id[128];
  time_t created;
  atomic_bool stopping;
  atomic_int active;        /* requests between their headers and their end (answered, or the client gone) */
  atomic_ulong next_id;
  pthread_mutex_t log_mu;
  srv_metrics metrics;
} srv;

/* HTTP daemon: start (port 0 picks a free one; *bound receives it), stop. */
struct MHD_Daemon *http_start(srv *S, int *bound, char *err, size_t errlen);
void http_stop(srv *S, struct MHD_Daemon *d);

/* ---- OpenAI requests ---------------------------------------------------------------------------------------- */

typedef enum { REQ_CHAT, REQ_COMPLETION } req_kind;
typedef enum { TC_AUTO, TC_NONE, TC_REQUIRED, TC_NAMED } tool_choice;

typedef struct oai_req {
  req_kind kind;
  cJSON *root;
  const char *model;      /* NULL when absent */
  bool stream, include_usage;
  int max_tokens;         /* < 0: none */
  kn_sample_params sp;
  char *stops[16];
  int n_stops;
  tool_choice tc;
  const char *tool_name;  /* TC_NAMED */
  char **tool_names;      /* from tools[] */
  int n_tools;
  bool parallel_tool_calls;
  bool json_object;       /* response_format json_object / json_schema */
  kn_jschema **tool_schemas; /* compiled tools[i].function.parameters (NULL: none given); moved into the job */
  kn_jschema *rf_schema;  /* compiled response_format.json_schema.schema; moved into the job */
  int enable_thinking;    /* -1: template default */
  const cJSON *logit_bias; /* {"token id": bias}, checked against the vocabulary in prompt_build */
  cJSON *prompt;          /* completions: string, [string], [int...] */
} oai_req;

/* Parse and check a request body; defaults fill the sampling parameters; max_depth limits JSON nesting (0: the
 * default). 0, or -1 with a 400 in *e. */
int oai_parse(const char *body, size_t len, req_kind kind, const kn_sample_params *defaults, int max_depth, oai_req *q,
              oai_error *e);
void oai_req_free(oai_req *q);

/* The prompt of a request as tokens, plus the job's constraints (the compiled schemas move from q to j); prefill
 * receives the text the prompt ends with that belongs to the reply (a forced call's opening). 0, or -1 with *e. */
int prompt_build(srv *S, oai_req *q, const char *body, size_t len, srv_job *j, char **prefill, oai_error *e);

/* ---- responses ---------------------------------------------------------------------------------------------- */

/* What a reply turns into: the model output fed through the tool-call parser, as one JSON response or as SSE. */
typedef struct oai_out {
  srv *S;
  req_kind kind;
  bool stream, include_usage;
  bool live_calls;       /* stream call deltas as they come (the call is constrained, so it cannot fail) */
  char id[48];
  long created;
  char model[128];
  char *prefill;         /* the reply's opening that is part of the prompt (a forced call) */
  kn_toolparser *tp;
  kn_chat_reply reply;
  int n_calls;
  bool started;
  kn_bytes held;             /* a call's deltas, held until the call is complete (when not live) */
  int n_held;
  kn_bytes text;             /* completions: the text */
  cJSON *timings;        /* llama-server's timings, attached to the next chunk emitted (the last one) */
} oai_out;

int oai_out_init(oai_out *o, srv *S, const oai_req *q, const srv_job *j, const char *prefill);
void oai_out_free(oai_out *o);
/* Streams: the first events (role, the pre-filled opening). */
int oai_out_start(oai_out *o, kn_bytes *sse);
/* Feed model text; for streams, SSE events are appended to sse. */
int oai_out_feed(oai_out *o, const char *text, size_t len, kn_bytes *sse);
/* End of output: the last events (streams: finish reason, usage, [DONE], or an error event). */
int oai_out_finish(oai_out *o, const srv_job *j, kn_bytes *sse);
/* The whole (non-streamed) response. */
char *oai_out_response(oai_out *o, const srv_job *j);
const char *oai_finish_reason(const oai_out *o, const srv_job *j);

/* SSE framing. */
void sse_data(kn_bytes *b, const cJSON *v);
void sse_data_raw(kn_bytes *b, const char *json);
void sse_comment(kn_bytes *b, const char *text);

/* The body of a streamed response (apps/stream.c): the first member of an owner's struct (allocated with malloc).
 * produce appends the next bytes to buf (waiting for the job's text, or a keep-alive) and sets finished with the
 * last ones; -1 ends the response with an error. drop frees what the owner holds. The stream holds a reference on
 * j; freeing it cancels j (a no-op when it finished). */
struct MHD_Response;
typedef struct job_stream job_stream;
struct job_stream {
  srv_job *j;
  kn_bytes buf;      /* bytes for the client */
  size_t off;    /* of buf, already handed to libmicrohttpd */
  size_t have;   /* of the job's output, already consumed */
  kn_bytes text;     /* scratch for the job's new text */
  bool finished; /* the last bytes are in buf */
  int (*produce)(job_stream *st);
  void (*drop)(job_stream *st);
};
void job_stream_init(job_stream *st, srv_job *j, int (*produce)(job_stream *), void (*drop)(job_stream *));
/* Hands the stream to libmicrohttpd, which frees it when the response ends (NULL: not handed over). */
struct MHD_Response *job_stream_response(job_stream *st, const char *content_type);
/* For a stream never handed over. */
void job_stream_free(job_stream *st);

/* A streamed chat completion: takes a reference on j and takes over *out. sse_response hands the stream to
 * libmicrohttpd (which frees it when the response ends); sse_stream_free is for a stream never handed over. */
typedef struct sse_stream sse_stream;
sse_stream *sse_stream_new(srv *S, srv_job *j, oai_out *out);
void sse_stream_free(sse_stream *st);
struct MHD_Response *sse_response(sse_stream *st);

#endif
