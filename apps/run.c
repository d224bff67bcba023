/* `kiln run`: generate text from a prompt, or chat interactively with the model's chat template. Also the tool
 * for comparisons with other engines: --ids prints the prompt's token ids, --prompt-ids evaluates ids as given,
 * --special parses special-token text in the prompt, and -n 0 --logits-out writes the last-position logits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "device/base/env.h"
#include "models/text/chat.h"
#include "models/model.h"
#include "models/registry.h"
#include "models/sample.h"
#include "models/session.h"

typedef struct {
  const char *model, *prompt, *logits_out, *system, *prompt_ids;
  int n_predict, n_ctx;
  bool ids, dry_run, no_template, special;
  kn_dtype kv;
  kn_sample_params sp;
} run_opts;

static int usage(FILE *f) {
  fprintf(f,
          "usage: kiln run -m FILE|NAME [-p PROMPT] [options]\n\n"
          "Generates text from PROMPT, or with no -p chats interactively using the model's chat template.\n\n"
          "  -m, --model FILE|NAME  a GGUF file, or a short name from the registry (kiln run --list-models)\n"
          "  -p, --prompt TEXT      the prompt (raw text: no chat template)\n"
          "  --special              parse special-token text in the prompt (\"<|eot_id|>\" is that token), as chat\n"
          "                         prompts are tokenized\n"
          "  --prompt-ids IDS       evaluate these token ids as given (comma-separated, no BOS added) instead of -p\n"
          "  -n, --n-predict N      tokens to generate (default 128; -1 until end of generation)\n"
          "  -c, --ctx-size N       context length (default: the model's, capped by memory)\n"
          "  --temp T               temperature (default 0.8; 0 = greedy)\n"
          "  --top-k K  --top-p P  --min-p P  --repeat-penalty F  --repeat-last-n N\n"
          "  --presence-penalty F  --frequency-penalty F\n"
          "  -s, --seed S           sampling seed (default 4242)\n"
          "  --kv-type f16|f32      KV cache precision (default f16)\n"
          "  -sys, --system TEXT    system message for chat mode\n"
          "  --ids                  print the prompt's token ids and exit\n"
          "  --logits-out FILE      with -n 0: write the prompt's last-position logits (float32 LE, n_vocab values)\n"
          "  --dry-run              print the memory plan (weights, KV cache, scratch) and whether it fits, then exit\n"
          "  --list-models          the short names kiln knows\n");
  return f == stdout ? 0 : 2;
}

static bool is_opt(const char *a, const char *s1, const char *s2) { return !strcmp(a, s1) || (s2 && !strcmp(a, s2)); }

static int parse(int argc, char **argv, run_opts *o) {
  memset(o, 0, sizeof *o);
  o->n_predict = 128, o->kv = KN_F16;
  o->sp = kn_sample_defaults();
  o->sp.seed = 4242;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(s1, s2) (is_opt(a, s1, s2) && (v || (fprintf(stderr, "kiln run: %s needs a value\n", a), 0)) && ++i)
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout), 1;
    else if (!strcmp(a, "--list-models")) return kn_registry_print(stdout), 1;
    else if (!strcmp(a, "--ids")) o->ids = true;
    else if (!strcmp(a, "--dry-run")) o->dry_run = true;
    else if (!strcmp(a, "--special")) o->special = true;
    else if (ARG("--prompt-ids", NULL)) o->prompt_ids = v;
    else if (ARG("-m", "--model")) o->model = v;
    else if (ARG("-p", "--prompt")) o->prompt = v;
    else if (ARG("-sys", "--system")) o->system = v;
    else if (ARG("-n", "--n-predict")) o->n_predict = atoi(v);
    else if (ARG("-c", "--ctx-size")) o->n_ctx = atoi(v);
    else if (ARG("--temp", NULL)) o->sp.temperature = (float)atof(v);
    else if (ARG("--top-k", NULL)) o->sp.top_k = atoi(v);
    else if (ARG("--top-p", NULL)) o->sp.top_p = (float)atof(v);
    else if (ARG("--min-p", NULL)) o->sp.min_p = (float)atof(v);
    else if (ARG("--repeat-penalty", NULL)) o->sp.repeat_penalty = (float)atof(v);
    else if (ARG("--repeat-last-n", NULL)) o->sp.repeat_last_n = atoi(v);
    else if (ARG("--presence-penalty", NULL)) o->sp.presence_penalty = (float)atof(v);
    else if (ARG("--frequency-penalty", NULL)) o->sp.frequency_penalty = (float)atof(v);
    else if (ARG("-s", "--seed")) o->sp.seed = strtoull(v, NULL, 10);
    else if (ARG("--logits-out", NULL)) o->logits_out = v;
    else if (ARG("--kv-type", NULL)) {
      if (!strcmp(v, "f16")) o->kv = KN_F16;
      else if (!strcmp(v, "f32")) o->kv = KN_F32;
      else return fprintf(stderr, "kiln run: --kv-type must be f16 or f32, not '%s'\n", v), 2;
    } else if (a[0] == '-')
      return fprintf(stderr, "kiln run: unknown or incomplete option '%s' (see kiln run --help)\n", a), 2;
    else
      return fprintf(stderr, "kiln run: unexpected argument '%s'\n", a), 2;
#undef ARG
  }
  if (!o->model) return fprintf(stderr, "kiln run: no model: give -m FILE or -m NAME (see --help)\n"), 2;
  if (o->prompt && o->prompt_ids) return fprintf(stderr, "kiln run: give -p or --prompt-ids, not both\n"), 2;
  if ((o->ids || o->logits_out) && !o->prompt && !o->prompt_ids)
    return fprintf(stderr, "kiln run: --ids and --logits-out need -p PROMPT or --prompt-ids IDS\n"), 2;
  if (o->n_ctx < 0) return fprintf(stderr, "kiln run: -c must be positive\n"), 2;
  return 0;
}

/* Generate up to n tokens after the session's logits, streaming text to stdout. Returns tokens generated, -1 when
 * the logits are broken (NaN). */
static int generate(kn_model *m, kn_session *s, float *logits, const run_opts *o, kn_sampler *smp, int n, FILE *out) {
  kn_detok *dt = kn_detok_new(m->tok, 0);
  char err[512];
  int made = 0;
  bool bad = false;
  for (; n < 0 || made < n; made++) {
    int tok = kn_sample(smp, logits);
    if (tok == KN_SAMPLE_BAD_LOGITS) {
      fprintf(stderr, "\nkiln run: the model's logits are not finite numbers (NaN or infinity): its weights or "
                      "hyper-parameters are broken\n");
      bad = true;
      break;
    }
    kn_sampler_accept(smp, tok);
    if (kn_token_is_eog(m->tok, tok)) break;
    const char *piece;
    size_t len;
    if (kn_detok_push(dt, tok, &piece, &len) == 0 && len) fwrite(piece, 1, len, out), fflush(out);
    if (kn_session_len(s) >= m->n_ctx) {
      fprintf(stderr, "\n[context of %d tokens is full]\n", m->n_ctx);
      break;
    }
    if (kn_session_push(s, tok, logits, err, sizeof err)) {
      fprintf(stderr, "\nkiln run: %s\n", err);
      break;
    }
  }
  const char *piece;
  size_t len;
  kn_detok_flush(dt, &piece, &len);
  if (len) fwrite(piece, 1, len, out);
  kn_detok_free(dt);
  return bad ? -1 : made;
}

/* "1,2, 3" -> ids; an error names the entry that is not a token id of this model. */
static int parse_ids(const char *s, int n_vocab, int32_t **ids, size_t *n) {
  size_t cap = 16;
  *n = 0;
  if (!(*ids = malloc(cap * sizeof **ids))) return fprintf(stderr, "kiln run: out of memory\n"), -1;
  for (const char *p = s;;) {
    while (*p == ' ' || *p == '\t') p++;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < 0 || v >= n_vocab) {
      fprintf(stderr, "kiln run: --prompt-ids: entry %zu ('%.*s') is not a token id (0..%d)\n", *n + 1,
              (int)strcspn(p, ","), p, n_vocab - 1);
      return free(*ids), *ids = NULL, -1;
    }
    if (*n == cap) {
      int32_t *g = realloc(*ids, (cap *= 2) * sizeof *g);
      if (!g) return free(*ids), *ids = NULL, fprintf(stderr, "kiln run: out of memory\n"), -1;
      *ids = g;
    }
    (*ids)[(*n)++] = (int32_t)v;
    p = end;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return 0;
    if (*p++ != ',') {
      fprintf(stderr, "kiln run: --prompt-ids: expected ',' after entry %zu, found '%c'\n", *n, p[-1]);
      return free(*ids), *ids = NULL, -1;
    }
  }
}

static int run_prompt(kn_model *m, const run_opts *o) {
  char err[512];
  int32_t *ids;
  size_t n;
  if (o->prompt_ids) {
    if (parse_ids(o->prompt_ids, m->hp.n_vocab, &ids, &n)) return 1;
  } else if (kn_tokenize(m->tok, o->prompt, strlen(o->prompt), true, o->special, &ids, &n, err, sizeof err))
    return fprintf(stderr, "kiln run: tokenizing the prompt: %s\n", err), 1;
  if (!n) return free(ids), fprintf(stderr, "kiln run: the prompt has no tokens\n"), 1;
  if (o->ids) {
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
    printf("\n");
    free(ids);
    return 0;
  }
  kn_session *s = kn_session_new(m, 0);
  float *logits = malloc(m->hp.n_vocab * sizeof *logits);
  kn_sampler *smp = kn_sampler_new(&o->sp, m->hp.n_vocab);
  double t0 = kn_now();
  int rc = !s || !logits || !smp || kn_session_prompt(s, ids, (int)n, logits, NULL, err, sizeof err);
  double t1 = kn_now();
  if (rc) fprintf(stderr, "kiln run: %s\n", s && logits && smp ? err : "out of memory");
  if (!rc && o->logits_out) {
    FILE *f = fopen(o->logits_out, "wb");
    if (!f || fwrite(logits, sizeof *logits, m->hp.n_vocab, f) != (size_t)m->hp.n_vocab)
      fprintf(stderr, "kiln run: writing %s: %s\n", o->logits_out, strerror(errno)), rc = 1;
    if (f) fclose(f);
  }
  if (!rc && o->n_predict != 0) {
    if (o->prompt) fputs(o->prompt, stdout);
    else { /* the ids as text, special tokens shown */
      size_t len;
      char *text = kn_detokenize(m->tok, ids, n, KN_DECODE_SPECIAL, &len, err, sizeof err);
      if (text) fwrite(text, 1, len, stdout);
      free(text);
    }
    for (size_t i = 0; i < n; i++) kn_sampler_accept(smp, ids[i]);
    int made = generate(m, s, logits, o, smp, o->n_predict, stdout);
    if (made < 0) rc = 1, made = 0;
    double t2 = kn_now();
    printf("\n");
    fprintf(stderr, "prompt: %zu tokens in %.1f ms (%.1f tok/s); generation: %d tokens in %.1f ms (%.1f tok/s)\n", n,
            (t1 - t0) * 1e3, n / (t1 - t0), made, (t2 - t1) * 1e3, made / (t2 - t1 > 0 ? t2 - t1 : 1));
  }
  kn_sampler_free(smp), free(logits), kn_session_free(s), free(ids);
  return rc;
}

static int run_chat(kn_model *m, const run_opts *o) {
  char err[512], line[8192];
  kn_chat_template t;
  if (kn_chat_template_detect(m->chat_template, 1, &t, err, sizeof err))
    return fprintf(stderr, "kiln run: chat template: %s\n", err), 1;
  fprintf(stderr, "chat with %s (template: %s%s). Ctrl-D to quit.\n", m->name, kn_chat_family_name(t.family),
          t.fallback ? ", fallback" : "");
  kn_chat *c = kn_chat_new();
  if (o->system) kn_chat_add(c, KN_ROLE_SYSTEM, o->system);
  kn_session *s = kn_session_new(m, 0);
  float *logits = malloc(m->hp.n_vocab * sizeof *logits);
  kn_sampler *smp = kn_sampler_new(&o->sp, m->hp.n_vocab);
  int rc = 0;
  while (c && s && logits && smp) {
    fprintf(stderr, "> ");
    if (!fgets(line, sizeof line, stdin)) break;
    line[strcspn(line, "\n")] = 0;
    if (!*line) continue;
    kn_chat_add(c, KN_ROLE_USER, line);
    kn_chat_prompt p = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (kn_chat_render_prompt(&t, c, NULL, &p, err, sizeof err) ||
        kn_chat_prompt_tokenize(m->tok, t.family, &p, &ids, &n, err, sizeof err) ||
        kn_session_prompt(s, ids, (int)n, logits, NULL, err, sizeof err)) {
      fprintf(stderr, "kiln run: %s\n", err);
      kn_chat_prompt_free(&p), free(ids);
      rc = 1;
      break;
    }
    kn_chat_prompt_free(&p), free(ids);
    char *reply = NULL;
    size_t rlen = 0;
    FILE *mem = open_memstream(&reply, &rlen);
    FILE *tee = mem ? mem : stdout;
    int made = generate(m, s, logits, o, smp, o->n_predict, tee);
    if (mem) fclose(mem), fputs(reply, stdout);
    if (made < 0) {
      free(reply);
      break;
    }
    printf("\n");
    kn_chat_add(c, KN_ROLE_ASSISTANT, reply ? reply : "");
    free(reply);
  }
  kn_sampler_free(smp), free(logits), kn_session_free(s), kn_chat_free(c);
  return rc;
}

int kn_cmd_run(int argc, char **argv) {
  run_opts o;
  int pr = parse(argc, argv, &o);
  if (pr) return pr == 1 ? 0 : pr;
  char err[1024], path[4096];
  if (kn_registry_resolve(o.model, path, sizeof path, err, sizeof err)) return fprintf(stderr, "kiln run: %s\n", err), 1;
  kn_device *dev = kn_device_open(NULL, err, sizeof err);
  if (!dev) return fprintf(stderr, "kiln run: %s\n", err), 1;
  kn_load_opts lo = kn_load_defaults();
  lo.n_ctx = o.n_ctx, lo.kv_dtype = o.kv;
  if (o.dry_run) {
    kn_mem_plan mp;
    int rc = kn_model_mem_plan(path, dev, &lo, &mp, err, sizeof err);
    if (rc) fprintf(stderr, "kiln run: %s\n", err);
    else kn_mem_plan_print(&mp, stdout);
    kn_device_close(dev);
    return rc || !mp.fits;
  }
  kn_model *m = kn_model_load(path, dev, &lo, err, sizeof err);
  if (!m) {
    fprintf(stderr, "kiln run: %s\n", err);
    kn_device_close(dev);
    return 1;
  }
  int rc = o.prompt || o.prompt_ids ? run_prompt(m, &o) : run_chat(m, &o);
  kn_model_free(m);
  kn_device_close(dev);
  return rc;
}
