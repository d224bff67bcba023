/* Every model in ../shared/testdata against the reference implementation's outputs (see its README): last-position
 * logits within the relative-error bounds, top-1 agreement where the reference's margin is clear, greedy tokens up
 * to the first near-tie, and every prompt position of stories260K (real weights). On the device DEVICE names (CPU
 * when unset); KILN_TEST_ONLY picks references by comma-separated parts of their names. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "models/sample.h"
#include "models/session.h"

static int passed, failed;
static const char *td;

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc(sz + 1);
  if (b && fread(b, 1, sz, f) != (size_t)sz) free(b), b = NULL;
  fclose(f);
  if (b) b[sz] = 0;
  if (n) *n = sz;
  return b;
}

static double rel_err(const float *a, const float *b, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; i++) num += (double)(a[i] - b[i]) * (a[i] - b[i]), den += (double)b[i] * b[i];
  return sqrt(num / (den ? den : 1));
}

static void result(bool ok, const char *what, const char *fmt, double v) {
  if (ok) passed++;
  else failed++;
  printf("%s %s: ", ok ? "ok  " : "FAIL", what);
  printf(fmt, v);
  printf("\n");
}

typedef struct {
  char name[128];
  kn_dtype kv;
  kn_model *m;
} loaded;
static loaded cache[2];

static kn_model *get_model(kn_device *dev, const char *name, kn_dtype kv) {
  for (int i = 0; i < 2; i++)
    if (cache[i].m && !strcmp(cache[i].name, name) && cache[i].kv == kv) return cache[i].m;
  if (cache[1].m) kn_model_free(cache[1].m);
  cache[1] = cache[0];
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/models/%s.gguf", td, name);
  kn_load_opts o = kn_load_defaults();
  o.n_ctx = 512, o.kv_dtype = kv; /* the longest chat prompt (235) plus 32 greedy steps */
  kn_model *m = kn_model_load(path, dev, &o, err, sizeof err);
  if (!m) printf("FAIL loading %s: %s\n", path, err), failed++;
  snprintf(cache[0].name, sizeof cache[0].name, "%s", name);
  cache[0].kv = kv, cache[0].m = m;
  return m;
}

/* One reference file: <model>.<prompt>[.deq].json with its .logits.f32 */
static void check_ref(kn_device *dev, const char *file) {
  char path[1024], model[128], what[256];
  snprintf(path, sizeof path, "%s/refs/%s", td, file);
  char *js = slurp(path, NULL);
  cJSON *j = js ? cJSON_Parse(js) : NULL;
  free(js);
  if (!j) {
    printf("FAIL %s: unreadable\n", file), failed++;
    return;
  }
  bool deq = strstr(file, ".deq.") != NULL || strstr(file, "-F32.") != NULL; /* F32 files run exactly */
  const char *dot = strchr(file, '.');
  snprintf(model, sizeof model, "%.*s", (int)(dot - file), file);
  for (int kvi = 0; kvi < (deq ? 2 : 1); kvi++) {
    kn_dtype kv = kvi ? KN_F16 : KN_F32;
    kn_model *m = get_model(dev, model, kv);
    if (!m) break;
    cJSON *toks = cJSON_GetObjectItem(j, "prompt_tokens");
    int n = cJSON_GetArraySize(toks), nv = m->hp.n_vocab;
    int32_t *ids = malloc((n + 40) * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(toks, i)->valueint;
    float *logits = malloc(nv * sizeof *logits);
    char err[512];
    snprintf(path, sizeof path, "%s/refs/%.*s.logits.f32", td, (int)(strlen(file) - 5), file);
    size_t nb;
    float *ref = (float *)slurp(path, &nb);
    if (!ref || nb != nv * sizeof(float)) {
      printf("FAIL %s: reference logits missing or of the wrong size\n", path), failed++;
      free(ids), free(logits), free(ref);
      break;
    }
    snprintf(what, sizeof what, "%s kv=%s logits", file, kn_dtype_name(kv));
    if (kn_model_forward(m, 0, ids, n, 0, false, logits, err, sizeof err)) {
      printf("FAIL %s: %s\n", what, err), failed++;
      free(ids), free(logits), free(ref);
      break;
    }
    double e = rel_err(logits, ref, nv), bound = deq ? (kv == KN_F32 ? 1e-3 : 3e-3) : 8e-2;
    result(e <= bound, what, "relative error %.2e", e);
    cJSON *top = cJSON_GetObjectItem(j, "last_topk");
    double margin = cJSON_GetArrayItem(top, 0)->child ? cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "logit")->valuedouble -
                                                            cJSON_GetObjectItem(cJSON_GetArrayItem(top, 1), "logit")->valuedouble
                                                      : 0;
    int want_top = cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "id")->valueint;
    if (margin > (deq ? 0.05 : 0.2)) {
      snprintf(what, sizeof what, "%s kv=%s top-1", file, kn_dtype_name(kv));
      result(kn_logits_argmax(logits, nv) == want_top, what, "margin %.3f", margin);
    }
    if (deq && kv == KN_F32) { /* greedy continuation up to the first near-tie */
      cJSON *g = cJSON_GetObjectItem(j, "greedy_tokens"), *mg = cJSON_GetObjectItem(j, "greedy_top1_minus_top2");
      int steps = cJSON_GetArraySize(g), agree = 0, checked = 0, pos = n;
      const char *cap = getenv("KILN_TEST_GREEDY"); /* at most this many greedy tokens (a slow device) */
      if (cap && atoi(cap) > 0 && atoi(cap) < steps) steps = atoi(cap);
      int tok = kn_logits_argmax(logits, nv);
      for (int s = 0; s < steps; s++) {
        if (tok != cJSON_GetArrayItem(g, s)->valueint) break;
        agree++;
        if (cJSON_GetArrayItem(mg, s)->valuedouble < 0.05 || s + 1 == steps || pos + 1 >= m->n_ctx) break;
        int32_t t = tok;
        if (kn_model_forward(m, 0, &t, 1, pos++, false, logits, err, sizeof err)) break;
        tok = kn_logits_argmax(logits, nv);
        checked++;
      }
      int expect = 0;
      for (int s = 0; s < steps; s++) {
        expect++;
        if (cJSON_GetArrayItem(mg, s)->valuedouble < 0.05) break;
      }
      snprintf(what, sizeof what, "%s greedy tokens%s", file, steps < cJSON_GetArraySize(g) ? " (capped)" : "");
      result(agree >= expect, what, "%g agreeing before the first near-tie", agree);
    }
    free(ids), free(logits), free(ref);
  }
  cJSON_Delete(j);
}

/* Every prompt position of a prompt: [n][n_vocab] all_logits files. */
static void check_all_logits(kn_device *dev, const char *file) {
  char path[1024], model[128], base[256], what[300];
  const char *dot = strchr(file, '.');
  snprintf(model, sizeof model, "%.*s", (int)(dot - file), file);
  snprintf(base, sizeof base, "%.*s", (int)(strstr(file, ".all_logits") - file), file);
  snprintf(path, sizeof path, "%s/refs/%s.json", td, base);
  char *js = slurp(path, NULL);
  cJSON *j = js ? cJSON_Parse(js) : NULL;
  free(js);
  kn_model *m = j ? get_model(dev, model, KN_F32) : NULL;
  if (!m) {
    cJSON_Delete(j);
    return;
  }
  cJSON *toks = cJSON_GetObjectItem(j, "prompt_tokens");
  int n = cJSON_GetArraySize(toks), nv = m->hp.n_vocab;
  int32_t *ids = malloc(n * sizeof *ids);
  for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(toks, i)->valueint;
  snprintf(path, sizeof path, "%s/refs/%s", td, file);
  size_t nb;
  float *ref = (float *)slurp(path, &nb), *logits = malloc((size_t)n * nv * sizeof *logits);
  char err[512];
  bool real = strstr(file, "stories260K") != NULL;
  double worst = 0;
  if (!ref || nb != (size_t)n * nv * sizeof(float) || kn_model_forward(m, 0, ids, n, 0, true, logits, err, sizeof err))
    worst = INFINITY;
  for (int p = 0; p < n && worst < INFINITY; p++) {
    double e = rel_err(logits + (size_t)p * nv, ref + (size_t)p * nv, nv);
    if (e > worst) worst = e;
  }
  snprintf(what, sizeof what, "%s every position (%d)", file, n);
  result(worst <= (real ? 1e-4 : 8e-2), what, "worst relative error %.2e", worst);
  free(ids), free(ref), free(logits);
  cJSON_Delete(j);
}

/* A long prompt evaluated in chunks by a session (and then extended, reusing the prefix) gives the logits of one
 * pass over the whole prompt. */
static void check_chunked(kn_device *dev) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/models/tiny-qwen3-Q4_K_M.gguf", td);
  kn_load_opts o = kn_load_defaults();
  o.n_ctx = 1024, o.kv_dtype = KN_F32;
  kn_model *m = kn_model_load(path, dev, &o, err, sizeof err);
  if (!m) {
    printf("FAIL loading %s: %s\n", path, err), failed++;
    return;
  }
  int n = 700, nv = m->hp.n_vocab;
  int32_t *ids = malloc(n * sizeof *ids);
  for (int i = 0; i < n; i++) ids[i] = (i * 7919 + 11) % 151000;
  float *a = malloc(nv * sizeof *a), *b = malloc(nv * sizeof *b);
  kn_session *s = kn_session_new(m, 0);
  int eval1 = -1, eval2 = -1;
  bool ok = !kn_model_forward(m, 0, ids, n, 0, false, a, err, sizeof err);
  ok = ok && !kn_session_prompt(s, ids, n - 50, b, &eval1, err, sizeof err); /* 512 + 138 */
  ok = ok && !kn_session_prompt(s, ids, n, b, &eval2, err, sizeof err);      /* only the last 50 are new */
  double e = ok ? rel_err(b, a, nv) : INFINITY;
  result(ok && e < 1e-5, "chunked prompt (512 + 138, then +50 reusing the prefix) vs one pass", "relative error %.2e", e);
  result(eval1 == n - 50 && eval2 == 50, "prefix reuse evaluates only the new tokens", "%g evaluated on the second turn", eval2);
  if (!ok) printf("  %s\n", err);
  kn_session_free(s);
  free(ids), free(a), free(b);
  kn_model_free(m);
}

/* KILN_TEST_ONLY: comma-separated parts of reference names; a name is run when it contains one of them */
static bool listed(const char *only, const char *name) {
  for (const char *p = only; *p;) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n && memmem(name, strlen(name), p, n)) return true;
    if (!e) break;
    p = e + 1;
  }
  return false;
}

int main(void) {
  td = getenv("KILN_TESTDATA");
  char p[1024];
  snprintf(p, sizeof p, "%s/refs", td ? td : "");
  DIR *d = td ? opendir(p) : NULL;
  if (!d) {
    printf("skipped: test models not found (KILN_TESTDATA=%s; needs ../shared/testdata)\n", td ? td : "unset");
    return 77;
  }
  char err[256];
  const char *devname = getenv("DEVICE") && *getenv("DEVICE") ? getenv("DEVICE") : "CPU";
  kn_device *dev = kn_device_open(devname, err, sizeof err);
  if (!dev) return printf("no %s device: %s\n", devname, err), 1;
  char *names[256];
  int nn = 0;
  struct dirent *e;
  while ((e = readdir(d)) && nn < 256)
    if (strstr(e->d_name, ".json") && !strstr(e->d_name, "config") && !strstr(e->d_name, "tokenize"))
      names[nn++] = strdup(e->d_name);
    else if (strstr(e->d_name, ".all_logits.f32"))
      names[nn++] = strdup(e->d_name);
  closedir(d);
  for (int i = 0; i < nn; i++) /* sorted, so one model's references run together */
    for (int k = i + 1; k < nn; k++)
      if (strcmp(names[i], names[k]) > 0) {
        char *t = names[i];
        names[i] = names[k], names[k] = t;
      }
  const char *only = getenv("KILN_TEST_ONLY"), *skip = getenv("KILN_TEST_SKIP");
  for (int i = 0; i < nn; i++) {
    if ((!only || listed(only, names[i])) && (!skip || !*skip || !strstr(names[i], skip))) {
      if (strstr(names[i], ".all_logits.f32")) check_all_logits(dev, names[i]);
      else check_ref(dev, names[i]);
    }
    free(names[i]);
  }
  if (!only || listed(only, "chunked")) check_chunked(dev);
  for (int i = 0; i < 2; i++)
    if (cache[i].m) kn_model_free(cache[i].m);
  printf("%d passed, %d failed\n", passed, failed);
  kn_device_close(dev);
  return failed ? 1 : 0;
}
