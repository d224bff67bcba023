/* libFuzzer target: tokenizer input. The vocabularies of two testdata models (byte-level BPE with Qwen2's
 * pre-tokenizer regex, and SentencePiece) tokenize the input with and without special-token parsing; every id must
 * be in the vocabulary, and the ids must detokenize.
 * KILN_TESTDATA names ../shared/testdata. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/gguf.h"
#include "models/text/tokenizer.h"

static kn_tokenizer *toks[2];
static kn_gguf *files[2]; /* open for the tokenizers' lifetime (the process's) */

static kn_tokenizer *load(const char *name, kn_gguf **keep) {
  const char *td = getenv("KILN_TESTDATA");
  char path[4096], err[512];
  snprintf(path, sizeof path, "%s/models/%s", td ? td : "../shared/testdata", name);
  kn_gguf *g = *keep = kn_gguf_open(path, err, sizeof err);
  if (!g) fprintf(stderr, "fuzz_tokenizer: %s\n", err), exit(1);
  kn_tokenizer *t = kn_tokenizer_load(g, err, sizeof err);
  if (!t) fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, err), exit(1);
  return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  toks[0] = load("tiny-qwen2-Q4_K_M.gguf", &files[0]);
  toks[1] = load("tiny-llama-Q4_0.gguf", &files[1]);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (int k = 0; k < 2; k++) {
    const kn_tokenizer *t = toks[k];
    for (int special = 0; special < 2; special++) {
      int32_t *ids = NULL;
      size_t n = 0;
      char err[256];
      if (kn_tokenize(t, (const char *)data, size, special, special, &ids, &n, err, sizeof err)) continue;
      for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= kn_tokenizer_n_tokens(t)) abort();
      size_t len = 0;
      char *back = kn_detokenize(t, ids, n, 0, &len, err, sizeof err);
      if (!back) abort(); /* every id came from the tokenizer */
      free(back);
      free(ids);
    }
  }
  return 0;
}
