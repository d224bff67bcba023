/* `kiln bench`: prompt processing and generation speed of a model, as medians over repeated runs, with peak RSS;
 * the time to the first token of a prompt length not seen before; and decode as a fraction of the limit the
 * machine's read bandwidth (measured in the same run) sets. The figures to compare with other engines on the same
 * machine (llama-bench reports pp/tg the same way). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "membw.h"
#include "device/base/env.h"
#include "device/device.h" /* the per-kernel counters of a counting device */
#include "models/gguf.h"
#include "models/model.h"
#include "models/registry.h"
#include "models/sample.h"

static int usage(FILE *f) {
  fprintf(f, "usage: kiln bench -m FILE|NAME [-p N] [-n N] [-r REPS] [-c CTX] [--ttft N] [--kv-type f16|f32]\n"
             "                  [--batch B]\n\n"
             "Measures prompt processing of N tokens (-p, default 128) and generation of N tokens (-n, default 32),\n"
             "each repeated REPS times (default 3), and prints medians in tokens/s with the peak resident memory.\n"
             "Also: the time to the first token of prompts of about N tokens (--ttft, default 100; 0: skip), each a\n"
             "length no earlier prompt had, against the time the pp rate gives those tokens; and the machine's read\n"
             "bandwidth (a 512 MiB buffer read by as many threads as the device uses, in a child process, right\n"
             "after each run's decode), the decode limit it sets (bandwidth / bytes read per token: the weights,\n"
             "the tied output matrix, the KV cache) and decode as a fraction of that limit (the median of each\n"
             "run's own fraction, and their range).\n"
             "With --batch B (B > 1): B sequences decoding together (continuous batching: one pass carries one row of\n"
             "each, so the weights are read once per step for all), their aggregate tok/s and its ratio to one alone.\n");
  return f == stdout ? 0 : 2;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
  if (f) fclose(f);
  return kb;
}

/* Bytes decode reads per token at position pos: every weight except the embedding table (a gather reads one row),
 * unless the output projection is tied to it; and the KV cache up to pos. */
static double bytes_per_token(const kn_model *m, int pos) {
  double w = (double)m->weight_bytes;
  const kn_gguf_tensor *emb = kn_gguf_tensor_find(m->file, "token_embd.weight");
  if (emb && kn_gguf_tensor_find(m->file, "output.weight")) w -= (double)emb->nbytes;
  double kv_per_pos = 2.0 * m->hp.n_layer * m->hp.n_head_kv * m->hp.head_dim * kn_dtype_get(m->kv_dtype)->itemsize;
  return w + kv_per_pos * pos;
}

/* On a device that counts (the emulated AMD GPU): what each kernel of one decode step did. */
static void print_step_counters(kn_model *m, kn_device *dev, int pos) {
  char err[512];
  if (!kn_device_counters(dev, NULL, 0)) return; /* a device that does not count (or ran nothing) */
  kn_device_counters_reset(dev);
  int32_t tok = 0;
  float *logits = malloc(m->hp.n_vocab * sizeof *logits);
  int rc = logits ? kn_model_forward(m, 0, &tok, 1, pos, false, logits, err, sizeof err) : -1;
  free(logits);
  int n = rc ? 0 : kn_device_counters(dev, NULL, 0);
  kn_kernel_counters *c = n ? calloc(n, sizeof *c) : NULL;
  if (c) n = kn_device_counters(dev, c, n);
  if (!c || !n) return free(c);
  uint64_t rd = 0, wr = 0, insts = 0, dist = 0, topd = 0, topf = 0;
  printf("kernels of one decode step on %s (%d kernels); read: bytes the lanes read; least: distinct bytes (each "
         "address once per launch); top input: of the buffer a launch reads most of (a matmul's weight), its bytes "
         "and how often each was fetched (lanes of one instruction in a wave reading the same bytes share a "
         "fetch):\n",
         kn_device_name(dev), n);
  printf("  %-36s %5s %7s %10s %10s %10s %10s %7s %11s %10s %10s\n", "kernel", "runs", "waves", "read MiB", "least MiB",
         "written", "top MiB", "fetched", "valu", "vmem", "salu+smem");
  for (int i = 0; i < n; i++) {
    uint64_t all = 0;
    for (int j = 0; j < KN_COUNTER_CLASSES; j++) all += c[i].insts[j];
    printf("  %-36.36s %5llu %7llu %10.3f %10.3f %10.3f %10.3f %6.2fx %11llu %10llu %10llu\n", c[i].name,
           (unsigned long long)c[i].launches, (unsigned long long)c[i].waves, c[i].global_read / 1048576.0,
           c[i].read_distinct / 1048576.0, c[i].global_written / 1048576.0, c[i].top_distinct / 1048576.0,
           c[i].top_distinct ? (double)c[i].top_fetched / c[i].top_distinct : 0.0, (unsigned long long)c[i].insts[1],
           (unsigned long long)c[i].insts[3], (unsigned long long)(c[i].insts[0] + c[i].insts[2]));
    rd += c[i].global_read, wr += c[i].global_written, insts += all;
    dist += c[i].read_distinct, topd += c[i].top_distinct, topf += c[i].top_fetched;
  }
  printf("  total: %.1f MiB read by lanes, %.1f MiB distinct (weights %.1f MiB), %.1f MiB written, %llu instructions "
         "(per wave); top inputs %.1f MiB fetched %.3fx\n", rd / 1048576.0, dist / 1048576.0,
         m->weight_bytes / 1048576.0, wr / 1048576.0, (unsigned long long)insts, topd / 1048576.0,
         topd ? (double)topf / topd : 0.0);
  free(c);
}

static double median(double *v, int n) {
  qsort(v, n, sizeof *v, cmp);
  return v[n / 2];
}

int kn_cmd_bench(int argc, char **argv) {
  const char *model = NULL;
  int pp = 128, tg = 32, reps = 3, n_ctx = 0, ttft = 100, batch = 1;
  kn_dtype kv = KN_F16;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout);
    if (!v) return fprintf(stderr, "kiln bench: %s needs a value\n", a), usage(stderr);
    i++;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
    else if (!strcmp(a, "-p")) pp = atoi(v);
    else if (!strcmp(a, "-n")) tg = atoi(v);
    else if (!strcmp(a, "-r")) reps = atoi(v);
    else if (!strcmp(a, "-c")) n_ctx = atoi(v);
    else if (!strcmp(a, "--ttft")) ttft = atoi(v);
    else if (!strcmp(a, "--batch")) batch = atoi(v);
    else if (!strcmp(a, "--kv-type")) kv = !strcmp(v, "f32") ? KN_F32 : KN_F16;
    else return fprintf(stderr, "kiln bench: unknown option '%s'\n", a), usage(stderr);
  }
  if (!model || pp < 1 || tg < 0 || reps < 1 || ttft < 0 || batch < 1 || batch > KN_MAX_PASS) return usage(stderr);
  char err[1024], path[4096];
  if (kn_registry_resolve(model, path, sizeof path, err, sizeof err)) return fprintf(stderr, "kiln bench: %s\n", err), 1;
  kn_device *dev = kn_device_open(NULL, err, sizeof err);
  if (!dev) return fprintf(stderr, "kiln bench: %s\n", err), 1;
  /* prompts for the time to first token: ttft, ttft+1, ... skipping pp, so each length is new to this process */
  int *tl = calloc(reps, sizeof *tl);
  for (int r = 0, l = ttft; ttft && r < reps; r++, l++) tl[r] = l == pp ? ++l : l;
  int longest = pp > (ttft ? tl[reps - 1] : 0) ? pp : tl[reps - 1];
  kn_load_opts lo = kn_load_defaults();
  lo.n_ctx = n_ctx ? n_ctx : (pp + tg > longest ? pp + tg : longest) + 8, lo.kv_dtype = kv, lo.n_slots = batch;
  double t0 = kn_now();
  kn_model *m = kn_model_load(path, dev, &lo, err, sizeof err);
  if (!m) return fprintf(stderr, "kiln bench: %s\n", err), free(tl), kn_device_close(dev), 1;
  double load_s = kn_now() - t0;
  if (pp + tg > m->n_ctx || longest > m->n_ctx) {
    fprintf(stderr, "kiln bench: -p + -n or --ttft exceeds the context (%d)\n", m->n_ctx);
    kn_model_free(m);
    kn_device_close(dev);
    return free(tl), 1;
  }
  int32_t *toks = malloc(longest * sizeof *toks);
  float *logits = malloc(m->hp.n_vocab * sizeof *logits);
  for (int i = 0; i < longest; i++) toks[i] = (int32_t)((i * 7919 + 13) % m->hp.n_vocab);
  double *pps = calloc(reps, sizeof *pps), *tgs = calloc(reps, sizeof *tgs), *tts = calloc(reps, sizeof *tts);
  double *bws = calloc(reps, sizeof *bws), *bts = calloc(reps, sizeof *bts), *frs = calloc(reps, sizeof *frs);
  int rc = 0;
  float *blogits = batch > 1 ? malloc((size_t)batch * m->hp.n_vocab * sizeof *blogits) : NULL;
  kn_row *rows = batch > 1 ? calloc(batch, sizeof *rows) : NULL;
  int *outs = batch > 1 ? calloc(batch, sizeof *outs) : NULL;
  if (batch > 1 && (!blogits || !rows || !outs)) rc = 1, snprintf(err, sizeof err, "out of memory");
  /* warm-up: every pass a prompt up to the longest needs is compiled (or loaded from the cache), then one prompt
   * and one decode step run so their memory is touched */
  t0 = kn_now();
  if (kn_model_prepare(m, 0, longest, err, sizeof err) || kn_model_forward(m, 0, toks, pp, 0, false, logits, err, sizeof err) ||
      kn_model_forward(m, 0, toks, 1, pp, false, logits, err, sizeof err))
    rc = 1;
  double warm_s = kn_now() - t0;
  for (int r = 0; r < reps && !rc; r++) {
    double a = kn_now();
    if (kn_model_forward(m, 0, toks, pp, 0, false, logits, err, sizeof err)) rc = 1;
    double b = kn_now();
    int32_t t = kn_logits_argmax(logits, m->hp.n_vocab);
    for (int i = 0; i < tg && !rc; i++) {
      if (kn_model_forward(m, 0, &t, 1, pp + i, false, logits, err, sizeof err)) rc = 1;
      t = kn_logits_argmax(logits, m->hp.n_vocab);
    }
    double c = kn_now();
    pps[r] = pp / (b - a), tgs[r] = tg / (c - b);
    /* the host's bandwidth drifts within seconds where the machine is shared: probed right after this run's decode,
     * so each run's decode is held to the limit of its own moment */
    if (!rc) bws[r] = kn_read_bandwidth(kn_device_threads(dev));
    if (ttft && !rc) { /* the first token of a prompt length not seen before */
      a = kn_now();
      if (kn_model_forward(m, 0, toks, tl[r], 0, false, logits, err, sizeof err)) rc = 1;
      t = kn_logits_argmax(logits, m->hp.n_vocab);
      tts[r] = kn_now() - a;
    }
    if (batch > 1 && !rc) { /* B sequences: the prompt in slot 0 copied by prefix to the others, then tg steps */
      for (int b = 1; b < batch && !rc; b++)
        if (kn_model_forward(m, b, toks, pp, 0, false, logits, err, sizeof err)) rc = 1;
      if (!rc && kn_model_forward_rows(m, (kn_row[]){{0, pp, toks[0]}}, 1, (int[]){0}, 1, logits, err, sizeof err))
        rc = 1; /* slot 0's row pp, written by the single run above */
      for (int b = 0; b < batch; b++) rows[b] = (kn_row){b, pp, (int32_t)((b * 31 + 7) % m->hp.n_vocab)}, outs[b] = b;
      a = kn_now();
      for (int i = 0; i < tg && !rc; i++) {
        if (kn_model_forward_rows(m, rows, batch, outs, batch, blogits, err, sizeof err)) rc = 1;
        for (int b = 0; b < batch; b++)
          rows[b].pos++, rows[b].token = kn_logits_argmax(blogits + (size_t)b * m->hp.n_vocab, m->hp.n_vocab);
      }
      bts[r] = (double)batch * tg / (kn_now() - a);
    }
  }
  double bpt = bytes_per_token(m, pp + tg / 2);
  for (int r = 0; r < reps && !rc; r++) frs[r] = bws[r] > 0 ? 100 * tgs[r] / (bws[r] / bpt) : 0; /* before sorting */
  if (rc) fprintf(stderr, "kiln bench: %s\n", err);
  else {
    printf("model %s (%s), weights %.1f MiB, device %s, load %.2f s, warm-up %.2f s\n", m->name, m->hp.arch,
           m->weight_bytes / 1048576.0, kn_device_name(dev), load_s, warm_s);
    double pp_rate = median(pps, reps), tg_rate = median(tgs, reps);
    printf("pp%-5d %10.2f tok/s (median of %d)\n", pp, pp_rate, reps);
    printf("tg%-5d %10.2f tok/s (median of %d)\n", tg, tg_rate, reps);
    if (batch > 1) {
      double bt = median(bts, reps);
      printf("tg%-5d %10.2f tok/s aggregate, %d sequences batched (median of %d): %.2fx one sequence\n", tg, bt, batch,
             reps, bt / tg_rate);
    }
    if (ttft) {
      double tt = median(tts, reps), want = ttft / pp_rate;
      printf("ttft%-3d %10.1f ms (median of %d new lengths %d..%d), %.2fx the %.1f ms %d tokens take at the pp rate\n",
             ttft, tt * 1e3, reps, tl[0], tl[reps - 1], tt / want, want * 1e3, ttft);
    }
    double bw = median(bws, reps);
    if (bw > 0) { /* each run's decode over the limit probed next to it: their median and range */
      double f = median(frs, reps); /* sorted */
      printf("read bandwidth %.1f GB/s (%d threads, median of %d, %.1f..%.1f); %.1f MiB read per token -> limit %.1f "
             "tok/s; decode at %.0f%% of it (median of the runs' own, %.0f..%.0f%%)\n",
             bw * 1e-9, kn_device_threads(dev), reps, bws[0] * 1e-9, bws[reps - 1] * 1e-9, bpt / 1048576.0, bw / bpt, f,
             frs[0], frs[reps - 1]);
    } else
      printf("read bandwidth: could not be measured\n");
    printf("peak RSS %.1f MiB\n", peak_rss_kb() / 1024.0);
    print_step_counters(m, dev, pp);
  }
  free(toks), free(logits), free(pps), free(tgs), free(tts), free(bws), free(bts), free(frs), free(tl), free(blogits), free(rows),
      free(outs);
  kn_model_free(m);
  kn_device_close(dev);
  return rc;
}
