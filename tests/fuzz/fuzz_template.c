/* libFuzzer target: chat-template rendering. The input is a conversation as OpenAI JSON (messages, tools, tool calls
 * with any arguments); it is rendered with every template family, with and without thinking, and every span of
 * conversation text must lie inside the prompt. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/chat.h"

static const char *const families[] = {"chatml", "qwen2.5", "qwen3", "llama3", "llama3.1"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  kn_chat *c = kn_chat_from_json((const char *)data, size, err, sizeof err);
  if (!c) return 0;
  for (size_t f = 0; f < sizeof families / sizeof *families; f++) {
    kn_chat_template t;
    if (kn_chat_template_named(families[f], &t, err, sizeof err)) abort();
    for (int think = 0; think < 2; think++) {
      kn_chat_opts o;
      kn_chat_opts_init(&o);
      o.enable_thinking = think;
      kn_chat_prompt p = {0};
      if (kn_chat_render_prompt(&t, c, &o, &p, err, sizeof err) == 0) {
        if (strlen(p.text) != p.len) abort();
        for (size_t i = 0; i < p.n_data; i++)
          if (p.data[i].off > p.len || p.data[i].len > p.len - p.data[i].off) abort();
      }
      kn_chat_prompt_free(&p);
    }
  }
  kn_chat_free(c);
  return 0;
}
