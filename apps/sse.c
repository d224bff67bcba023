/* apps/sse.c: server-sent events. Framing (`data: <one-line JSON>\n\n`, comments as keep-alives) and the streamed
 * response: libmicrohttpd calls the reader on the connection's own thread, which waits for the job's next text,
 * turns it into chunks, and sends `: ping` comments while the prompt is evaluated so clients do not time out. A
 * write that fails (the client left) ends the response, and the free callback cancels the job, freeing its slot. */
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "serve.h"

void sse_data_raw(sbuf *b, const char *json) {
  sb_puts(b, "data: ");
  sb_puts(b, json);
  sb_puts(b, "\n\n");
}

void sse_data(sbuf *b, const cJSON *v) {
  char *s = cJSON_PrintUnformatted(v); /* one line: a newline inside would end the event */
  if (!s) return (void)(b->oom = true);
  sse_data_raw(b, s);
  free(s);
}

void sse_comment(sbuf *b, const char *text) {
  sb_puts(b, ": ");
  sb_puts(b, text);
  sb_puts(b, "\n\n");
}

struct sse_stream {
  srv *S;
  srv_job *j;
  oai_out out;
  sbuf buf;      /* bytes for the client */
  size_t off;    /* of buf, already handed to libmicrohttpd */
  size_t have;   /* of the job's output, already consumed */
  sbuf text;
  bool finished; /* the last event is in buf */
};

/* Produce the next bytes: the first events, new text, the end, or a keep-alive. -1 on failure. */
static int produce(sse_stream *st) {
  st->buf.len = st->off = 0;
  if (!st->out.started) return oai_out_start(&st->out, &st->buf);
  st->text.len = 0;
  int done = job_wait(st->j, &st->have, &st->text, st->S->o.ping_interval);
  if (st->text.oom) return -1;
  if (st->text.len && oai_out_feed(&st->out, st->text.s, st->text.len, &st->buf)) return -1;
  if (done) {
    st->finished = true;
    return oai_out_finish(&st->out, st->j, &st->buf);
  }
  if (!st->text.len) sse_comment(&st->buf, "ping");
  return 0;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
  sse_stream *st = cls;
  (void)pos;
  while (st->off >= st->buf.len) {
    if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
    if (produce(st) || st->buf.oom) {
      job_cancel(st->j);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
  }
  size_t n = st->buf.len - st->off < max ? st->buf.len - st->off : max;
  memcpy(buf, st->buf.s + st->off, n);
  st->off += n;
  return (ssize_t)n;
}

static void reader_free(void *cls) {
  sse_stream *st = cls;
  job_cancel(st->j); /* no-op when it finished; frees the slot when the client left mid-stream */
  job_unref(st->j);
  oai_out_free(&st->out);
  sb_free(&st->buf), sb_free(&st->text);
  free(st);
}

sse_stream *sse_stream_new(srv *S, srv_job *j, oai_out *out) {
  sse_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->S = S, st->j = j, st->out = *out;
  job_ref(j);
  memset(out, 0, sizeof *out); /* the stream owns it now */
  return st;
}

void sse_stream_free(sse_stream *st) {
  if (st) reader_free(st);
}

struct MHD_Response *sse_response(sse_stream *st) {
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, st, reader_free);
  if (!r) return NULL;
  MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
  MHD_add_response_header(r, "Cache-Control", "no-cache");
  MHD_add_response_header(r, "X-Accel-Buffering", "no");
  return r;
}
