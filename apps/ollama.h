/* apps/ollama.h: the Ollama API of `kiln serve` (ollama.c: routes and requests, ollama_out.c: replies). A request
 * is translated into the OpenAI one it means and runs through the same parsing, prompt and scheduler; only the
 * reply's shape differs. */
#ifndef KN_OLLAMA_H
#define KN_OLLAMA_H

#include "serve.h"

struct MHD_Connection;
struct MHD_Response;

/* What serve_http.c queues: a response (NULL: close the connection) and, for generation, the job for the log line
 * (a reference the caller drops). */
typedef struct http_reply {
  int status;
  struct MHD_Response *resp;
  srv_job *job;
  bool stream;
} http_reply;

/* "/" and "/api/...": Ollama's paths. */
bool ollama_path(const char *path);
void ollama_handle(srv *S, struct MHD_Connection *c, const char *method, const char *path, const char *body,
                   size_t len, bool authorized, bool too_big, double t_recv, http_reply *out);
/* The client of a connection has gone (serve_http.c). */
bool http_client_gone(struct MHD_Connection *c);
bool http_model_matches(srv *S, const char *name);

/* ---- replies (ollama_out.c) --------------------------------------------------------------------------------- */

typedef struct olla_out {
  srv *S;
  bool chat;          /* output through the chat template and the tool-call parser */
  bool generate_api;  /* /api/generate: text under "response" instead of "message" */
  bool stream;
  char model[128];
  kn_toolparser *tp;
  kn_bytes content, thinking; /* not streamed: the whole text */
  cJSON *calls;       /* finished tool calls */
  char *name;         /* the call being read */
  kn_bytes args;
  char *response;     /* not streamed: the reply, after olla_out_finish */
} olla_out;

int olla_out_init(olla_out *o, srv *S, const char *model, bool chat, bool generate_api, bool stream, const oai_req *q,
                  const char *prefill);
void olla_out_free(olla_out *o);
/* Feed model text; streamed, NDJSON lines are appended to out (NULL: accumulate). */
int olla_out_feed(olla_out *o, const char *text, size_t len, kn_bytes *out);
/* The last line (out) or the whole reply (o->response). */
int olla_out_finish(olla_out *o, const srv_job *j, double t_recv, kn_bytes *out);
/* A streamed reply: takes a reference on j and takes over *out. */
typedef struct olla_stream olla_stream;
struct MHD_Response *olla_stream_response(srv *S, srv_job *j, olla_out *out, double t_recv);
/* RFC 3339 UTC time with nanoseconds, as Ollama writes created_at. */
void olla_time(char *out, size_t cap);

#endif
