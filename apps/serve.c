/* `kiln serve`: an OpenAI-compatible HTTP server for one GGUF model (chat completions with tool calls,
 * completions, models, health, props). This file parses the options, loads the model, starts the scheduler and the
 * HTTP daemon, and shuts down on SIGINT/SIGTERM: new requests get 503, running ones may finish for a short grace
 * period and are then cancelled with a final error event (a second signal cancels at once), without waiting for the
 * forward pass in flight; a watchdog ends the process if the shutdown does not finish in bounded time. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cmds.h"
#include "device/base/env.h"
#include "models/text/json_read.h"
#include "models/model.h"
#include "models/registry.h"
#include "serve.h"

static int usage(FILE *f) {
  fprintf(f,
          "usage: kiln serve -m FILE|NAME [options]\n\n"
          "Serves the model over an OpenAI-compatible HTTP API: POST /v1/chat/completions, POST /v1/completions,\n"
          "GET /v1/models, GET /health, GET /props; and Ollama's on the same port: POST /api/chat, /api/generate,\n"
          "/api/show, GET /api/tags, /api/ps, /api/version; GET /metrics (Prometheus). See docs/api.md.\n\n"
          "  -m, --model FILE|NAME  a GGUF file, or a short name from the registry\n"
          "  --host ADDR            address to listen on (default 127.0.0.1: this machine only)\n"
          "  --port N               TCP port (default 11434; 0 picks a free one and prints it)\n"
          "  -c, --ctx-size N       context length per slot (default: the model's, capped by memory)\n"
          "  -np, --parallel N      KV cache slots = requests generated at once (default 1)\n"
          "  --api-key KEY          require `Authorization: Bearer KEY` (also read from KILN_API_KEY)\n"
          "  --alias NAME           the model id clients use (default: the file name without .gguf)\n"
          "  --chat-template NAME   force a template family: chatml, qwen2.5, qwen3, llama3, llama3.1, gemma3,\n"
          "                         mistral, mistral-nemo, mistral-v7, mistral-v11\n"
          "  --max-body BYTES       largest request body (default 64 MiB)\n"
          "  --max-json-depth N     deepest nesting of arrays/objects in a request body (default 64, at most 512)\n"
          "  --max-queue N          requests that may wait for a slot (default 256; more get 503)\n"
          "  --max-conns-per-client N  open connections per client address (default 128; more are closed)\n"
          "  --header-timeout S     seconds a new connection has for its request headers (default 10)\n"
          "  --body-timeout S       seconds a request body may take after its headers (default 60)\n"
          "  --idle-timeout S       seconds a kept-alive connection may wait for its next request (default 30)\n"
          "  --ping-interval S      seconds between SSE keep-alive comments (default 5)\n"
          "  --shutdown-grace S     seconds running requests may finish after SIGINT/SIGTERM (default 5)\n"
          "  --kv-type f16|f32      KV cache precision (default f16)\n"
          "  -v, --verbose          log rendered prompts\n");
  return f == stdout ? 0 : 2;
}

static bool is_opt(const char *s, const char *a, const char *b) { return !strcmp(s, a) || (b && !strcmp(s, b)); }

typedef struct {
  srv_opts o;
  kn_dtype kv;
  double grace;
} serve_args;

static int parse(int argc, char **argv, serve_args *a) {
  srv_opts *o = &a->o;
  memset(a, 0, sizeof *a);
  o->host = "127.0.0.1", o->port = 11434, o->n_parallel = 1, o->max_body = 64u << 20, o->max_queue = 256;
  o->max_depth = KN_JSON_DEPTH_DEFAULT;
  o->max_conns_per_client = 128, o->header_timeout = 10, o->body_timeout = 60, o->idle_timeout = 30;
  o->ping_interval = 5, a->grace = 5, a->kv = KN_F16;
  o->api_key = getenv("KILN_API_KEY");
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(s1, s2) (is_opt(s, s1, s2) && (v || (fprintf(stderr, "kiln serve: %s needs a value\n", s), 0)) && ++i)
    char *end = NULL;
    if (!strcmp(s, "-h") || !strcmp(s, "--help")) return usage(stdout), 1;
    else if (!strcmp(s, "-v") || !strcmp(s, "--verbose")) o->verbose = 1;
    else if (ARG("-m", "--model")) o->model_path = v;
    else if (ARG("--host", NULL)) o->host = v;
    else if (ARG("--port", NULL)) o->port = (int)strtol(v, &end, 10);
    else if (ARG("-c", "--ctx-size")) o->n_ctx = (int)strtol(v, &end, 10);
    else if (ARG("-np", "--parallel")) o->n_parallel = (int)strtol(v, &end, 10);
    else if (ARG("--api-key", NULL)) o->api_key = v;
    else if (ARG("--alias", NULL)) o->alias = v;
    else if (ARG("--chat-template", NULL)) o->chat_template = v;
    else if (ARG("--max-body", NULL)) o->max_body = (size_t)strtoull(v, &end, 10);
    else if (ARG("--max-queue", NULL)) o->max_queue = (int)strtol(v, &end, 10);
    else if (ARG("--max-json-depth", NULL)) o->max_depth = (int)strtol(v, &end, 10);
    else if (ARG("--max-conns-per-client", NULL)) o->max_conns_per_client = (int)strtol(v, &end, 10);
    else if (ARG("--header-timeout", NULL)) o->header_timeout = strtod(v, &end);
    else if (ARG("--body-timeout", NULL)) o->body_timeout = strtod(v, &end);
    else if (ARG("--idle-timeout", NULL)) o->idle_timeout = strtod(v, &end);
    else if (ARG("--ping-interval", NULL)) o->ping_interval = strtod(v, &end);
    else if (ARG("--shutdown-grace", NULL)) a->grace = strtod(v, &end);
    else if (ARG("--kv-type", NULL)) {
      if (!strcmp(v, "f16")) a->kv = KN_F16;
      else if (!strcmp(v, "f32")) a->kv = KN_F32;
      else return fprintf(stderr, "kiln serve: --kv-type must be f16 or f32, not '%s'\n", v), 2;
    } else
      return fprintf(stderr, "kiln serve: unknown or incomplete option '%s' (see kiln serve --help)\n", s), 2;
    if (end && *end) return fprintf(stderr, "kiln serve: %s: '%s' is not a number\n", s, v), 2;
#undef ARG
  }
  if (!o->model_path) return fprintf(stderr, "kiln serve: no model: give -m FILE or -m NAME (see --help)\n"), 2;
  if (o->port < 0 || o->port > 65535) return fprintf(stderr, "kiln serve: --port must be 0..65535\n"), 2;
  if (o->n_ctx < 0) return fprintf(stderr, "kiln serve: -c must be positive\n"), 2;
  if (o->n_parallel < 1 || o->n_parallel > 256) return fprintf(stderr, "kiln serve: --parallel must be 1..256\n"), 2;
  if (o->max_body < 1024) return fprintf(stderr, "kiln serve: --max-body must be at least 1024\n"), 2;
  if (o->max_depth < 1 || o->max_depth > KN_JSON_DEPTH_MAX)
    return fprintf(stderr, "kiln serve: --max-json-depth must be 1..%d\n", KN_JSON_DEPTH_MAX), 2;
  if (o->max_conns_per_client < 1 || o->max_conns_per_client > 1024)
    return fprintf(stderr, "kiln serve: --max-conns-per-client must be 1..1024\n"), 2;
  if (!(o->header_timeout > 0 && o->header_timeout <= 3600) || !(o->body_timeout > 0 && o->body_timeout <= 86400) ||
      !(o->idle_timeout > 0 && o->idle_timeout <= 86400))
    return fprintf(stderr, "kiln serve: --header-timeout (up to 3600), --body-timeout and --idle-timeout must be positive seconds\n"), 2;
  if (o->max_queue < 1) return fprintf(stderr, "kiln serve: --max-queue must be at least 1\n"), 2;
  if (!(o->ping_interval > 0.01)) return fprintf(stderr, "kiln serve: --ping-interval must be positive\n"), 2;
  if (o->api_key && !*o->api_key) o->api_key = NULL;
  return 0;
}

/* The id clients use: --alias, else the file name without directory and .gguf. */
static void model_id(srv *S) {
  if (S->o.alias) {
    snprintf(S->model_id, sizeof S->model_id, "%s", S->o.alias);
    return;
  }
  const char *b = strrchr(S->o.model_path, '/');
  b = b ? b + 1 : S->o.model_path;
  snprintf(S->model_id, sizeof S->model_id, "%s", b);
  size_t n = strlen(S->model_id);
  if (n > 5 && !strcasecmp(S->model_id + n - 5, ".gguf")) S->model_id[n - 5] = 0;
}

static int setup_model(srv *S, const serve_args *a, kn_device *dev, char *err, size_t errlen) {
  kn_load_opts lo = kn_load_defaults();
  lo.n_ctx = a->o.n_ctx, lo.kv_dtype = a->kv, lo.n_slots = a->o.n_parallel;
  double t0 = kn_now();
  if (!(S->m = kn_model_load(S->o.model_path, dev, &lo, err, errlen))) return -1;
  int rc = S->o.chat_template ? kn_chat_template_named(S->o.chat_template, &S->tmpl, err, errlen)
                              : kn_chat_template_detect(S->m->chat_template, 1, &S->tmpl, err, errlen);
  if (rc) return -1;
  if (kc_vocab_init(&S->vocab, S->m->tok, S->m->hp.n_vocab)) return snprintf(err, errlen, "out of memory"), -1;
  fprintf(stderr, "kiln serve: loaded %s in %.1f s: context %d tokens x %d slot%s, chat template %s%s (%s)\n",
          S->m->name, kn_now() - t0, S->m->n_ctx, S->m->n_slots, S->m->n_slots == 1 ? "" : "s",
          kn_chat_family_name(S->tmpl.family), S->tmpl.fallback ? " (fallback)" : "", S->tmpl.why);
  /* every prompt pass and the decode step compiled (or read from the kernel cache) now, so that no request compiles:
   * a prompt of any length runs on these power-of-two passes; the other slots reuse the same kernels */
  double t1 = kn_now();
  if (kn_model_prepare(S->m, 0, S->m->n_ctx, err, errlen)) return -1;
  fprintf(stderr, "kiln serve: prompt passes of up to %d tokens and the decode step ready in %.1f s\n",
          S->m->n_ctx < KN_MAX_PASS ? S->m->n_ctx : KN_MAX_PASS, kn_now() - t1);
  return 0;
}

/* Streams get their final event in this long after the jobs were cut; then the forward pass in flight has
 * PASS_SECONDS to end before the process ends without it. The whole shutdown may take the grace plus DRAIN_SECONDS
 * plus a margin before the watchdog ends the process. */
#define DRAIN_SECONDS 3.0
#define PASS_SECONDS 5.0
#define WATCHDOG_MARGIN 10.0

/* The last resort of a shutdown: whatever still runs (a request stuck in a computation, a libmicrohttpd thread that
 * does not return), the process ends this long after the signal. */
static void *watchdog(void *arg) {
  double wait = *(double *)arg;
  struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
  fprintf(stderr, "kiln serve: the shutdown did not finish within %.0f s; exiting now\n", wait);
  _exit(1);
  return NULL;
}

/* Wait for SIGINT/SIGTERM (blocked in every thread, taken here), then let running requests finish for `grace`
 * seconds; a second signal cuts the grace short. */
static void wait_for_signal(srv *S, const sigset_t *set, double grace) {
  int sig = 0;
  while (sigwait(set, &sig) != 0) {
  }
  fprintf(stderr, "kiln serve: %s: no new requests; finishing running ones (up to %g s)\n",
          sig == SIGINT ? "SIGINT" : "SIGTERM", grace);
  atomic_store(&S->stopping, true);
  static double limit;
  limit = grace + DRAIN_SECONDS + WATCHDOG_MARGIN;
  pthread_t th;
  if (pthread_create(&th, NULL, watchdog, &limit) == 0) pthread_detach(th);
  double end = kn_now() + grace;
  struct timespec tick = {0, 100 * 1000 * 1000};
  siginfo_t info;
  while (kn_now() < end) {
    int queued = 0;
    if (sched_busy(S->sch, &queued) == 0 && queued == 0) return;
    if (sigtimedwait(set, &info, &tick) > 0) return;
  }
}

int kn_cmd_serve(int argc, char **argv) {
  serve_args a;
  int pr = parse(argc, argv, &a);
  if (pr) return pr == 1 ? 0 : pr;
  char err[1024], path[4096];
  if (kn_registry_resolve(a.o.model_path, path, sizeof path, err, sizeof err))
    return fprintf(stderr, "kiln serve: %s\n", err), 1;
  static srv S; /* reached from the HTTP threads until they are stopped */
  memset(&S, 0, sizeof S);
  S.o = a.o;
  S.o.model_path = path;
  S.created = time(NULL);
  pthread_mutex_init(&S.log_mu, NULL);
  metrics_init(&S.metrics);
  model_id(&S);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT), sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: they inherit the mask */
  signal(SIGPIPE, SIG_IGN);

  kn_device *dev = kn_device_open(NULL, err, sizeof err);
  if (!dev) return fprintf(stderr, "kiln serve: %s\n", err), 1;
  int rc = 1, port = 0;
  struct MHD_Daemon *d = NULL;
  if (setup_model(&S, &a, dev, err, sizeof err) ||
      !(S.sch = sched_new(S.m, &S.vocab, S.o.max_queue, err, sizeof err)) ||
      !(d = http_start(&S, &port, err, sizeof err))) {
    fprintf(stderr, "kiln serve: %s\n", err);
    goto out;
  }
  fprintf(stderr, "kiln serve: listening on http://%s%s%s:%d/v1 (model id \"%s\"%s)\n",
          strchr(S.o.host, ':') ? "[" : "", S.o.host, strchr(S.o.host, ':') ? "]" : "", port, S.model_id,
          S.o.api_key ? ", API key required" : "");
  wait_for_signal(&S, &set, a.grace);
  MHD_quiesce_daemon(d);
  /* cancels what is still running, now, even in the middle of a forward pass (a prompt's chunk may take many seconds
   * on a slow device): streams end with an error event, the others get a 503 */
  sched_cut(S.sch, "the server is shutting down");
  /* let the connection threads send those last events before the daemon closes the sockets */
  for (double end = kn_now() + DRAIN_SECONDS; atomic_load(&S.active) > 0 && kn_now() < end;)
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  http_stop(&S, d);
  if (sched_stop_within(S.sch, PASS_SECONDS)) {
    /* every client is answered; the pass still running holds the model, so nothing is freed: the process ends */
    fprintf(stderr, "kiln serve: stopped (a forward pass still running after %.0f s more was abandoned)\n", PASS_SECONDS);
    fflush(stderr);
    _exit(0);
  }
  fprintf(stderr, "kiln serve: stopped\n");
  rc = 0;
out:
  sched_free(S.sch);
  kc_vocab_free(&S.vocab);
  if (S.m) kn_model_free(S.m);
  kn_device_close(dev);
  pthread_mutex_destroy(&S.log_mu);
  metrics_free(&S.metrics);
  return rc;
}
