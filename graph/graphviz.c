/* GRAPH=1: the scheduled graph as Graphviz DOT, one cluster per kernel, so a reader sees what fused where.
 * Files go to $GRAPH_DIR (default: the current directory) as kiln-graph-N.dot, and .svg when `dot` exists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schedule.h"

static const char *opname(const kn_uop *u) {
  static const char *names[] = {"BUFFER", "CONST", "VAR", "ARANGE", "RAND", "ALU", "REDUCE", "VIEW",
                                "CONTIGUOUS", "ASSIGN", "GATHER", "ATTENTION"};
  if (u->op == KN_OP_ALU) return kn_kop_name(u->arg.alu);
  if (u->op == KN_OP_REDUCE) return u->arg.red.rop == KN_KOP_ADD ? "SUM" : u->arg.red.rop == KN_KOP_MAX ? "MAX" : "PROD";
  return names[u->op];
}

static void node_line(FILE *f, const kn_uop *u) {
  char sh[128];
  kn_print_shape((kn_t)u, sh, sizeof sh);
  fprintf(f, "  n%p [label=\"%s\\n%s %s\"%s];\n", (void *)u, opname(u), kn_dtype_get(u->dtype)->short_name, sh,
          kn_uop_is_leaf(u) ? ", shape=box, style=filled, fillcolor=\"#dddddd\"" : "");
}

void kn_graph_write_dot(const kn_schedule *s) {
  static int counter;
  const char *dir = getenv("GRAPH_DIR");
  char path[512];
  snprintf(path, sizeof path, "%s/kiln-graph-%d.dot", dir && *dir ? dir : ".", counter++);
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "GRAPH=1: cannot write %s\n", path);
    return;
  }
  fprintf(f, "digraph kiln {\n  rankdir=BT;\n  node [fontname=monospace, fontsize=10];\n");
  for (int k = 0; k < s->n; k++) {
    const kn_sched_item *it = &s->items[k];
    fprintf(f, " subgraph cluster_%d {\n  label=\"kernel %d: %s\";\n  style=rounded;\n", k, k, it->why);
    for (int i = 0; i < it->nfused; i++) node_line(f, it->fused[i]);
    fprintf(f, " }\n");
  }
  for (int k = 0; k < s->n; k++) {
    const kn_sched_item *it = &s->items[k];
    for (int b = 1; b < it->nbufs; b++)
      if (kn_uop_is_leaf(it->bufs[b])) node_line(f, it->bufs[b]);
    for (int i = 0; i < it->nfused; i++)
      for (int j = 0; j < it->fused[i]->nsrc; j++)
        fprintf(f, "  n%p -> n%p;\n", (void *)it->fused[i]->src[j], (void *)it->fused[i]);
  }
  fprintf(f, "}\n");
  fclose(f);
  fprintf(stderr, "GRAPH=1: wrote %s\n", path);
  if (access("/usr/bin/dot", X_OK) == 0) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "/usr/bin/dot -Tsvg '%s' -o '%.*s.svg' 2>/dev/null", path, (int)(strlen(path) - 4), path);
    if (system(cmd) != 0) fprintf(stderr, "GRAPH=1: dot failed on %s\n", path);
  }
}
