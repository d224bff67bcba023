/* libFuzzer target: tool-call parsing of model output, for every template family. The first byte picks the family
 * and a chunk size; the output fed in chunks of that size must give the same reply as one whole feed, and every
 * call's arguments must be a valid JSON object. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/chat.h"
#include "models/text/json_constraint.h"

static const kn_chat_family families[] = {KN_CHAT_CHATML, KN_CHAT_QWEN25, KN_CHAT_QWEN3, KN_CHAT_LLAMA3, KN_CHAT_LLAMA31,
                                             KN_CHAT_MISTRAL};

static void by_chunks(kn_chat_family f, const char *s, size_t n, size_t chunk, kn_chat_reply *r) {
  kn_tc_opts o;
  kn_tc_opts_init(&o, f);
  o.id_seed = 7;
  kn_toolparser *p = kn_toolparser_new(f, &o);
  if (!p) abort();
  memset(r, 0, sizeof *r);
  for (size_t at = 0;; at += chunk) {
    bool end = at >= n;
    if (end ? kn_toolparser_finish(p) : kn_toolparser_feed(p, s + at, n - at < chunk ? n - at : chunk)) abort();
    size_t ne;
    const kn_tc_event *ev = kn_toolparser_events(p, &ne);
    for (size_t i = 0; i < ne; i++)
      if (kn_chat_reply_apply(r, &ev[i])) abort();
    if (end) break;
  }
  kn_toolparser_free(p);
}

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  kn_chat_family f = families[data[0] % 6];
  size_t chunk = 1 + data[0] / 6 % 16;
  const char *s = (const char *)data + 1;
  size_t n = size - 1;
  kn_chat_reply whole, parts;
  by_chunks(f, s, n, n ? n : 1, &whole);
  by_chunks(f, s, n, chunk, &parts);
  if (!same(whole.content, parts.content) || !same(whole.reasoning, parts.reasoning) || whole.n_calls != parts.n_calls) {
    fprintf(stderr, "family %d, chunks of %zu: content \"%s\" / \"%s\", reasoning \"%s\" / \"%s\", calls %zu / %zu\n",
            (int)f, chunk, whole.content, parts.content, whole.reasoning, parts.reasoning, whole.n_calls, parts.n_calls);
    abort(); /* the reply must not depend on how the output was cut into tokens */
  }
  for (size_t k = 0; k < whole.n_calls; k++) {
    if (!same(whole.calls[k].name, parts.calls[k].name) || !same(whole.calls[k].arguments, parts.calls[k].arguments))
      abort();
    const char *args = whole.calls[k].arguments;
    if (!args || !kn_json_valid(args, strlen(args), KN_JSONC_OBJECT_ONLY)) abort();
  }
  kn_chat_reply_free(&whole);
  kn_chat_reply_free(&parts);
  return 0;
}
