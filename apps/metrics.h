/* apps/metrics.h: counters of `kiln serve` (metrics.c): /metrics in Prometheus' text format and the per-request
 * timings object. */
#ifndef KN_METRICS_H
#define KN_METRICS_H

#include "serve.h"

/* Record a finished request: its status, and (when it generated) its tokens and times. */
void metrics_request(srv_metrics *m, bool ollama, int status, const srv_job *j);
/* What the scheduler holds now. */
typedef struct metrics_live {
  int n_slots, n_ctx, busy, queued;
  long kv_tokens;
} metrics_live;

/* The text exposition (version 0.0.4) of the counters and the live values, appended to b. */
void metrics_render(srv_metrics *m, const metrics_live *live, kn_bytes *b);
/* llama-server's `timings`: cache_n, prompt_n/ms/per_token_ms/per_second, predicted_n/ms/per_token_ms/per_second. */
cJSON *metrics_timings(const srv_job *j);

#endif
