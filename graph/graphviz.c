/* GRAPH=1: the scheduled graph as Graphviz DOT, one cluster per kernel, so a reader sees what fused where. A node
 * inlined into several kernels (recomputed by each, such as RMSNorm's x * r * w inside the q, k and v projections)
 * is drawn once in every kernel that recomputes it; a kernel's result is drawn in its own cluster and read by
 * others through an edge; leaves (weights, inputs) are grey boxes outside the clusters.
 * Files go to $GRAPH_DIR (default: the current directory) as kiln-graph-N.dot, and .svg when `dot` is on PATH. */
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

/* k < 0: a leaf (one node for the whole graph); else the copy of u inside kernel k */
static void node_id(char *id, size_t n, int k, const kn_uop *u) {
  if (k < 0) snprintf(id, n, "n%p", (const void *)u);
  else snprintf(id, n, "k%d_n%p", k, (const void *)u);
}

static void node_line(FILE *f, int k, const kn_uop *u, bool result) {
  char sh[128], id[64];
  kn_print_shape((kn_t)u, sh, sizeof sh);
  node_id(id, sizeof id, k, u);
  fprintf(f, "  %s [label=\"%s\\n%s %s\"%s];\n", id, opname(u), kn_dtype_get(u->dtype)->short_name, sh,
          k < 0 ? ", shape=box, style=filled, fillcolor=\"#dddddd\"" : result ? ", penwidth=2" : "");
}

static bool fused_in(const kn_sched_item *it, const kn_uop *u) {
  for (int i = 0; i < it->nfused; i++)
    if (it->fused[i] == u) return true;
  return false;
}

/* the kernel whose result u is (-1: none, a leaf) */
static int producer(const kn_schedule *s, const kn_uop *u) {
  for (int k = 0; k < s->n; k++)
    if (s->items[k].node == u) return k;
  return -1;
}

static void quote(FILE *f, const char *s) {
  for (; *s; s++) fprintf(f, *s == '"' || *s == '\\' ? "\\%c" : "%c", *s);
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
    fprintf(f, " subgraph cluster_%d {\n  label=\"kernel #%d: ", k, k);
    quote(f, it->why);
    fprintf(f, "\";\n  style=rounded;\n");
    for (int i = 0; i < it->nfused; i++) node_line(f, k, it->fused[i], it->fused[i] == it->node);
    fprintf(f, " }\n");
  }
  /* leaves once, outside the clusters */
  for (int k = 0; k < s->n; k++)
    for (int b = 1; b < s->items[k].nbufs; b++) {
      const kn_uop *u = s->items[k].bufs[b];
      bool seen = false;
      for (int j = 0; j < k && !seen; j++)
        for (int c = 1; c < s->items[j].nbufs && !seen; c++) seen = s->items[j].bufs[c] == u;
      for (int c = 1; c < b && !seen; c++) seen = s->items[k].bufs[c] == u;
      if (!seen && producer(s, u) < 0) node_line(f, -1, u, false);
    }
  for (int k = 0; k < s->n; k++) {
    const kn_sched_item *it = &s->items[k];
    for (int i = 0; i < it->nfused; i++) {
      const kn_uop *u = it->fused[i];
      char to[64], from[64];
      node_id(to, sizeof to, k, u);
      for (int j = 0; j < u->nsrc; j++) {
        const kn_uop *v = u->src[j];
        int p = fused_in(it, v) ? k : producer(s, v);
        node_id(from, sizeof from, p, v);
        fprintf(f, "  %s -> %s%s;\n", from, to, p != k && p >= 0 ? " [style=dashed]" : "");
      }
    }
  }
  fprintf(f, "}\n");
  fclose(f);
  fprintf(stderr, "GRAPH=1: wrote %s\n", path);
  if (system("command -v dot >/dev/null 2>&1") == 0) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o '%.*s.svg' 2>/dev/null", path, (int)(strlen(path) - 4), path);
    if (system(cmd) != 0) fprintf(stderr, "GRAPH=1: dot failed on %s\n", path);
    else fprintf(stderr, "GRAPH=1: wrote %.*s.svg\n", (int)(strlen(path) - 4), path);
  } else if (counter == 1)
    fprintf(stderr, "GRAPH=1: graphviz is not installed; render with `dot -Tsvg %s -o graph.svg` (apt install graphviz) "
                    "or paste the file into any online Graphviz viewer\n", path);
}
