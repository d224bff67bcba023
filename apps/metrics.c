/* apps/metrics.c: what `kiln serve` has done, for /metrics in Prometheus' text format (requests by API and status,
 * prompt tokens evaluated and reused, generated tokens, prompt and decode throughput, slots, queue, KV cache use, a
 * time-to-first-token histogram) and the per-request `timings` object llama-server clients read. Counters are
 * updated once per finished request, under one mutex. */
#include <stdlib.h>
#include <string.h>

#include "device/base/env.h"
#include "metrics.h"

static const double ttft_bounds[KN_TTFT_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

void metrics_init(srv_metrics *m) {
  memset(m, 0, sizeof *m);
  pthread_mutex_init(&m->mu, NULL);
  m->t_start = kn_now();
}

void metrics_free(srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

static int status_index(int status) { return status >= 200 && status < 600 ? status / 100 - 2 : 4; }

void metrics_request(srv_metrics *m, bool ollama, int status, const srv_job *j) {
  pthread_mutex_lock(&m->mu);
  m->requests[ollama][status_index(status)]++;
  if (j && j->done && (j->finish == FIN_STOP || j->finish == FIN_LENGTH || j->finish == FIN_TOOL)) {
    m->prompt_tokens += (uint64_t)(j->n_prompt - j->n_cached);
    m->cached_tokens += (uint64_t)j->n_cached;
    m->gen_tokens += (uint64_t)j->n_gen;
    if (j->t_prefill > j->t_start) m->prompt_seconds += j->t_prefill - j->t_start;
    if (j->t_end > j->t_prefill && j->t_prefill > 0) m->decode_seconds += j->t_end - j->t_prefill;
    if (j->t_first > 0) {
      double ttft = j->t_first - j->t_submit;
      int b = 0;
      while (b < KN_TTFT_BUCKETS && ttft > ttft_bounds[b]) b++;
      m->ttft_count[b]++;
      m->ttft_sum += ttft;
      m->ttft_n++;
    }
  }
  pthread_mutex_unlock(&m->mu);
}

static void metric(kn_bytes *b, const char *name, const char *type, const char *help) {
  kn_bytes_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_render(srv_metrics *m, const metrics_live *live, kn_bytes *b) {
  srv_metrics c;
  pthread_mutex_lock(&m->mu);
  memcpy(&c, m, sizeof c);
  pthread_mutex_unlock(&m->mu);
  static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx", "other"};
  metric(b, "kiln_requests_total", "counter", "Requests answered, by API and status class.");
  for (int a = 0; a < 2; a++)
    for (int s = 0; s < 5; s++)
      kn_bytes_printf(b, "kiln_requests_total{api=\"%s\",status=\"%s\"} %llu\n", a ? "ollama" : "openai", classes[s],
                (unsigned long long)c.requests[a][s]);
  metric(b, "kiln_prompt_tokens_total", "counter", "Prompt tokens evaluated (not counting those reused from the KV cache).");
  kn_bytes_printf(b, "kiln_prompt_tokens_total %llu\n", (unsigned long long)c.prompt_tokens);
  metric(b, "kiln_prompt_tokens_cached_total", "counter", "Prompt tokens reused from the KV cache.");
  kn_bytes_printf(b, "kiln_prompt_tokens_cached_total %llu\n", (unsigned long long)c.cached_tokens);
  metric(b, "kiln_generated_tokens_total", "counter", "Tokens generated.");
  kn_bytes_printf(b, "kiln_generated_tokens_total %llu\n", (unsigned long long)c.gen_tokens);
  metric(b, "kiln_prompt_seconds_total", "counter", "Time spent evaluating prompts, summed over requests.");
  kn_bytes_printf(b, "kiln_prompt_seconds_total %.6f\n", c.prompt_seconds);
  metric(b, "kiln_decode_seconds_total", "counter", "Time from the end of the prompt to the last token, summed over requests.");
  kn_bytes_printf(b, "kiln_decode_seconds_total %.6f\n", c.decode_seconds);
  metric(b, "kiln_prompt_tokens_per_second", "gauge", "Average prompt evaluation throughput of a request.");
  kn_bytes_printf(b, "kiln_prompt_tokens_per_second %.3f\n", c.prompt_seconds > 0 ? (double)c.prompt_tokens / c.prompt_seconds : 0);
  metric(b, "kiln_decode_tokens_per_second", "gauge", "Average decode throughput of a request.");
  kn_bytes_printf(b, "kiln_decode_tokens_per_second %.3f\n", c.decode_seconds > 0 ? (double)c.gen_tokens / c.decode_seconds : 0);
  metric(b, "kiln_slots_total", "gauge", "KV cache slots (--parallel).");
  kn_bytes_printf(b, "kiln_slots_total %d\n", live->n_slots);
  metric(b, "kiln_slots_active", "gauge", "Slots running a request.");
  kn_bytes_printf(b, "kiln_slots_active %d\n", live->busy);
  metric(b, "kiln_requests_queued", "gauge", "Requests waiting for a slot.");
  kn_bytes_printf(b, "kiln_requests_queued %d\n", live->queued);
  long kv = live->kv_tokens, cap = (long)live->n_ctx * live->n_slots;
  metric(b, "kiln_kv_cache_tokens", "gauge", "Tokens held in the KV cache, all slots (kept for prefix reuse too).");
  kn_bytes_printf(b, "kiln_kv_cache_tokens %ld\n", kv);
  metric(b, "kiln_kv_cache_usage_ratio", "gauge", "Tokens in the KV cache over its capacity (context x slots).");
  kn_bytes_printf(b, "kiln_kv_cache_usage_ratio %.6f\n", cap > 0 ? (double)kv / (double)cap : 0);
  metric(b, "kiln_time_to_first_token_seconds", "histogram", "From arrival at the scheduler to the first generated token.");
  uint64_t cum = 0;
  for (int i = 0; i < KN_TTFT_BUCKETS; i++) {
    cum += c.ttft_count[i];
    kn_bytes_printf(b, "kiln_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", ttft_bounds[i], (unsigned long long)cum);
  }
  kn_bytes_printf(b, "kiln_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)c.ttft_n);
  kn_bytes_printf(b, "kiln_time_to_first_token_seconds_sum %.6f\n", c.ttft_sum);
  kn_bytes_printf(b, "kiln_time_to_first_token_seconds_count %llu\n", (unsigned long long)c.ttft_n);
  metric(b, "kiln_uptime_seconds", "gauge", "Seconds since the server started.");
  kn_bytes_printf(b, "kiln_uptime_seconds %.3f\n", kn_now() - c.t_start);
}

cJSON *metrics_timings(const srv_job *j) {
  cJSON *t = cJSON_CreateObject();
  double pre = j->t_prefill > 0 ? j->t_prefill : j->t_end;
  double prompt_ms = (pre - j->t_start) * 1e3, gen_ms = (j->t_end - pre) * 1e3;
  int np = j->n_prompt - j->n_cached, ng = j->n_gen;
  if (prompt_ms < 0) prompt_ms = 0;
  if (gen_ms < 0) gen_ms = 0;
  cJSON_AddNumberToObject(t, "cache_n", j->n_cached);
  cJSON_AddNumberToObject(t, "prompt_n", np);
  cJSON_AddNumberToObject(t, "prompt_ms", prompt_ms);
  cJSON_AddNumberToObject(t, "prompt_per_token_ms", np > 0 ? prompt_ms / np : 0);
  cJSON_AddNumberToObject(t, "prompt_per_second", prompt_ms > 0 ? np * 1e3 / prompt_ms : 0);
  cJSON_AddNumberToObject(t, "predicted_n", ng);
  cJSON_AddNumberToObject(t, "predicted_ms", gen_ms);
  cJSON_AddNumberToObject(t, "predicted_per_token_ms", ng > 0 ? gen_ms / ng : 0);
  cJSON_AddNumberToObject(t, "predicted_per_second", gen_ms > 0 ? ng * 1e3 / gen_ms : 0);
  return t;
}
