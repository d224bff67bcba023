/* Continuous batching (kn_model_forward_rows): sequences decoded inside shared passes give the logits they give
 * alone. Each sequence is first run alone in slot 0 (its prompt in one kn_model_forward, then one token at a
 * time), recording the logits after its prompt and after every forced token. Then all of them run together in
 * other slots: they join at different steps, their prompts are prefilled in chunks inside the same passes as the
 * others' decode rows, one leaves and a new sequence reuses its slot, so passes of 1 to 20 rows (padded, gathered,
 * every-row logits) mix prefill and decode rows. Every logit vector must equal the alone run's within a relative
 * error of 1e-5 (L2). Also: the batch's own errors (a repeated row, a slot out of range). Run in the exact mode
 * (KILN_EXACT=1) and in the default integer-dot mode (every model, AVX-512, AVX2, SSE): there a one-row pass takes
 * the GEMV and a pass of several rows the tiled template (codegen/quant_mm.c), whose dots agree bit for bit where
 * test_codegen's "qmm alone" cases say so; a last-bit difference would not stay small, as an activation that rounds
 * to the other int8 moves a tiny model's logits by about 1e-2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "models/model.h"

static double rel_err(const float *a, const float *b, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; i++) num += (a[i] - b[i]) * (double)(a[i] - b[i]), den += (double)b[i] * b[i];
  return sqrt(num / (den > 0 ? den : 1));
}

static int argmax(const float *x, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[b]) b = i;
  return b;
}

enum { NSEQ = 6, NGEN = 10, CHUNK = 7, MAXP = 40 };

typedef struct {
  int n_prompt, join, slot;
  int32_t toks[MAXP + NGEN]; /* prompt, then the tokens the alone run chose */
  float *ref;                /* [NGEN + 1][n_vocab]: after the prompt, after each generated token */
  int done;                  /* batched run: tokens in the cache */
  int checked;               /* logit vectors compared */
} seq;

static void run_model(const char *td, const char *file) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/models/%s", td, file);
  kn_device *dev = kn_device_open("CPU", err, sizeof err);
  if (!check(dev != NULL, "%s: no CPU device: %s", file, err)) return;
  kn_load_opts o = kn_load_defaults();
  o.n_ctx = 64, o.n_slots = 4;
  kn_model *m = kn_model_load(path, dev, &o, err, sizeof err);
  if (!check(m != NULL, "%s: load: %s", file, err)) return kn_device_close(dev);
  int nv = m->hp.n_vocab;
  /* six sequences: prompt lengths, the step each joins at, its slot, and the sequence that must have left that slot
   * first (the fifth and sixth reuse the slots of the first and third) */
  const int plen[NSEQ] = {5, 17, 30, 9, 1, 12}, join[NSEQ] = {0, 0, 2, 3, 0, 0}, slot[NSEQ] = {2, 0, 3, 1, 2, 3};
  const int after[NSEQ] = {-1, -1, -1, -1, 0, 2};
  seq S[NSEQ];
  float *got = malloc((size_t)nv * sizeof *got);
  int rc = 0;
  for (int s = 0; s < NSEQ && !rc; s++) {
    seq *q = &S[s];
    memset(q, 0, sizeof *q);
    q->n_prompt = plen[s], q->join = join[s], q->slot = slot[s];
    q->ref = malloc((size_t)(NGEN + 1) * nv * sizeof *q->ref);
    for (int i = 0; i < q->n_prompt; i++) q->toks[i] = (int32_t)((s * 7717 + i * 7919 + 3) % nv);
    rc = kn_model_forward(m, 0, q->toks, q->n_prompt, 0, false, q->ref, err, sizeof err);
    for (int g = 0; g < NGEN && !rc; g++) {
      int at = q->n_prompt + g;
      q->toks[at] = argmax(q->ref + (size_t)g * nv, nv);
      rc = kn_model_forward(m, 0, &q->toks[at], 1, at, false, q->ref + (size_t)(g + 1) * nv, err, sizeof err);
    }
  }
  check(!rc, "%s: the alone runs: %s", file, rc ? err : "");
  int total = 0;
  kn_row rows[64];
  int out[64], who[64], what[64];
  float *logits = malloc((size_t)64 * nv * sizeof *logits);
  double worst = 0;
  int max_rows = 0, passes = 0;
  bool started[NSEQ] = {0};
  for (int step = 0; step < 200 && !rc; step++) {
    int n = 0, n_out = 0, active = 0;
    bool fin[NSEQ]; /* finished before this pass: a slot is reused from the next pass on */
    for (int s = 0; s < NSEQ; s++) fin[s] = S[s].done >= S[s].n_prompt + NGEN;
    for (int s = 0; s < NSEQ; s++) {
      seq *q = &S[s];
      bool may = step >= q->join && (after[s] < 0 || fin[after[s]]);
      if (!may || q->done >= q->n_prompt + NGEN) continue;
      started[s] = true, active++;
      if (q->done < q->n_prompt) { /* a prompt chunk */
        int c = q->n_prompt - q->done < CHUNK ? q->n_prompt - q->done : CHUNK;
        for (int i = 0; i < c; i++) rows[n++] = (kn_row){q->slot, q->done + i, q->toks[q->done + i]};
        q->done += c;
        if (q->done == q->n_prompt) who[n_out] = s, what[n_out] = 0, out[n_out++] = n - 1;
      } else { /* a decode row: the token the alone run chose */
        rows[n++] = (kn_row){q->slot, q->done, q->toks[q->done]};
        q->done++;
        who[n_out] = s, what[n_out] = q->done - q->n_prompt, out[n_out++] = n - 1;
      }
    }
    if (!active) break;
    rc = kn_model_forward_rows(m, rows, n, out, n_out, logits, err, sizeof err);
    passes++, max_rows = n > max_rows ? n : max_rows;
    for (int j = 0; j < n_out && !rc; j++) {
      seq *q = &S[who[j]];
      double e = rel_err(logits + (size_t)j * nv, q->ref + (size_t)what[j] * nv, nv);
      worst = e > worst ? e : worst;
      q->checked++, total++;
      check(e <= 1e-5, "%s: sequence %d logits %d in a batch of %d rows: relative error %.2e vs alone", file, who[j],
            what[j], n, e);
    }
  }
  check(!rc, "%s: batched run: %s", file, rc ? err : "");
  for (int s = 0; s < NSEQ; s++)
    check(started[s] && S[s].checked == NGEN + 1, "%s: sequence %d: %d of %d logit vectors compared", file, s,
          S[s].checked, NGEN + 1);
  printf("%s: %d logit vectors in %d passes of up to %d rows equal the alone runs (worst relative error %.2e)\n", file,
         total, passes, max_rows, worst);
  /* a pass that cannot be right is refused with the reason */
  kn_row bad[2] = {{1, 4, 5}, {1, 4, 6}};
  rc = kn_model_forward_rows(m, bad, 2, (int[]){1}, 1, logits, err, sizeof err);
  check(rc && strstr(err, "slot 1 position 4 appears twice"), "%s: a repeated row: %s", file, rc ? err : "accepted");
  bad[1] = (kn_row){4, 0, 5};
  rc = kn_model_forward_rows(m, bad, 2, (int[]){1}, 1, logits, err, sizeof err);
  check(rc && strstr(err, "outside the 4 slots"), "%s: slot 4 of 4: %s", file, rc ? err : "accepted");
  for (int s = 0; s < NSEQ; s++) free(S[s].ref);
  free(got), free(logits);
  kn_model_free(m);
  kn_device_close(dev);
}

int main(void) {
  const char *td = getenv("KILN_TESTDATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/models/tiny-qwen2-Q4_K_M.gguf", td ? td : "");
  struct stat st;
  if (!td || stat(path, &st)) return printf("skipped: %s not found (needs ../shared/testdata)\n", path), 77;
  char err[256];
  kn_device *dev = kn_device_open("CPU", err, sizeof err); /* a KILN_CPU target this host cannot run: skipped */
  if (!dev && getenv("KILN_CPU") && strstr(err, "KILN_CPU")) return printf("skipped: %s\n", err), 77;
  if (dev) kn_device_close(dev);
  const char *only = getenv("KILN_TEST_ONLY");
  const char *models[] = {"tiny-qwen2-Q4_K_M.gguf", "tiny-gemma3-Q4_K_M.gguf", "tiny-llama-F16.gguf"};
  for (int i = 0; i < 3; i++)
    if (!only || strstr(models[i], only)) run_model(td, models[i]);
  return check_summary();
}
