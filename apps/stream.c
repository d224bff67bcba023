/* apps/stream.c: the body of a streamed response, shared by the OpenAI (SSE) and Ollama (NDJSON) routes.
 * libmicrohttpd calls the reader on the connection's own thread; when the bytes already produced are sent, it asks
 * the owner's produce callback for more (which waits for the job's next text and formats it). A produce that fails
 * (or runs out of memory) ends the response with an error and cancels the job; the free callback cancels the job
 * too (a no-op when it finished; it frees the slot when the client left mid-stream) and lets the owner free what it
 * holds. */
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "serve.h"

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
  job_stream *st = cls;
  (void)pos;
  while (st->off >= st->buf.len) {
    if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
    st->buf.len = st->off = 0;
    if (st->produce(st) || st->buf.oom) {
      job_cancel(st->j);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
  }
  size_t n = st->buf.len - st->off < max ? st->buf.len - st->off : max;
  memcpy(buf, st->buf.s + st->off, n);
  st->off += n;
  return (ssize_t)n;
}

void job_stream_init(job_stream *st, srv_job *j, int (*produce)(job_stream *), void (*drop)(job_stream *)) {
  memset(st, 0, sizeof *st);
  st->j = j, st->produce = produce, st->drop = drop;
  job_ref(j);
}

void job_stream_free(job_stream *st) {
  if (!st) return;
  job_cancel(st->j);
  job_unref(st->j);
  if (st->drop) st->drop(st);
  kn_bytes_free(&st->buf), kn_bytes_free(&st->text);
  free(st); /* the owner's struct: job_stream is its first member */
}

static void reader_free(void *cls) { job_stream_free(cls); }

struct MHD_Response *job_stream_response(job_stream *st, const char *content_type) {
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, st, reader_free);
  if (!r) return NULL;
  MHD_add_response_header(r, "Content-Type", content_type);
  MHD_add_response_header(r, "Cache-Control", "no-cache");
  MHD_add_response_header(r, "X-Accel-Buffering", "no");
  return r;
}
