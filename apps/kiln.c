/* `kiln`: one command with subcommands. This file only dispatches; each subcommand lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

typedef struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help;
} command;

static const command commands[] = {
  {"demo", kn_cmd_demo, "run a small program through the engine on the default device"},
  {"run", kn_cmd_run, "generate text with a GGUF model, or chat with it"},
  {"serve", kn_cmd_serve, "serve a model over an OpenAI-compatible HTTP API"},
  {"bench", kn_cmd_bench, "prompt processing and generation speed of a model (medians, peak RSS)"},
  {"quantize", kn_cmd_quantize, "rewrite a GGUF model's weights in another format (q4_k_m, q8_0, ...)"},
  {"cache", kn_cmd_cache, "inspect the kernel disk cache: list, show, stats, verify, clear"},
  {"gguf", kn_cmd_gguf, "show a GGUF file's metadata and tensors (and why it does not load, if it does not)"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: kiln <command> [options]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\n`kiln <command> --help` describes each command. Environment: DEBUG, DEVICE, THREADS, "
             "KILN_CACHE_DIR, CACHELEVEL, NOOPT, GRAPH (see docs/env.md).\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("kiln 0.1.0\n");
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "kiln: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
