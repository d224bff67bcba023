/* apps/sse.c: server-sent events. Framing (`data: <one-line JSON>\n\n`, comments as keep-alives) and the streamed
 * chat completion on the stream base (stream.c): each produce waits for the job's next text, turns it into chunks,
 * and sends `: ping` comments while the prompt is evaluated so clients do not time out. */
#include <stdlib.h>
#include <string.h>

#include "serve.h"

void sse_data_raw(kn_bytes *b, const char *json) {
  kn_bytes_puts(b, "data: ");
  kn_bytes_puts(b, json);
  kn_bytes_puts(b, "\n\n");
}

void sse_data(kn_bytes *b, const cJSON *v) {
  char *s = cJSON_PrintUnformatted(v); /* one line: a newline inside would end the event */
  if (!s) return (void)(b->oom = true);
  sse_data_raw(b, s);
  free(s);
}

void sse_comment(kn_bytes *b, const char *text) {
  kn_bytes_puts(b, ": ");
  kn_bytes_puts(b, text);
  kn_bytes_puts(b, "\n\n");
}

struct sse_stream {
  job_stream base; /* first: the stream base frees the whole struct */
  srv *S;
  oai_out out;
};

/* Produce the next bytes: the first events, new text, the end, or a keep-alive. -1 on failure. */
static int produce(job_stream *b) {
  sse_stream *st = (sse_stream *)b;
  if (!st->out.started) return oai_out_start(&st->out, &b->buf);
  b->text.len = 0;
  int done = job_wait(b->j, &b->have, &b->text, st->S->o.ping_interval);
  if (b->text.oom) return -1;
  if (b->text.len && oai_out_feed(&st->out, b->text.s, b->text.len, &b->buf)) return -1;
  if (done) {
    b->finished = true;
    return oai_out_finish(&st->out, b->j, &b->buf);
  }
  if (!b->text.len) sse_comment(&b->buf, "ping");
  return 0;
}

static void drop(job_stream *b) { oai_out_free(&((sse_stream *)b)->out); }

sse_stream *sse_stream_new(srv *S, srv_job *j, oai_out *out) {
  sse_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  job_stream_init(&st->base, j, produce, drop);
  st->S = S, st->out = *out;
  memset(out, 0, sizeof *out); /* the stream owns it now */
  return st;
}

void sse_stream_free(sse_stream *st) {
  if (st) job_stream_free(&st->base);
}

struct MHD_Response *sse_response(sse_stream *st) { return job_stream_response(&st->base, "text/event-stream; charset=utf-8"); }
