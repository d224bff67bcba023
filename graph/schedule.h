/* Private to graph/: the schedule, a list of kernels in dependency order, each realizing one node. */
#ifndef KN_SCHEDULE_H
#define KN_SCHEDULE_H

#include "uop.h"

typedef struct {
  kn_uop *node;                 /* the node this kernel realizes */
  kn_kernel *k;                 /* its AST */
  int nbufs;
  kn_uop *bufs[KN_MAXBUFS];     /* node whose buffer is argument i; bufs[0] is the output (the target for ASSIGN) */
  int nvars;
  kn_var *vars[KN_MAXVARS];
  char why[160];                /* why this node is a kernel boundary (DEBUG=3) */
  kn_uop **fused;               /* the nodes inlined into this kernel (GRAPH=1) */
  int nfused, capfused;
} kn_sched_item;

typedef struct {
  kn_sched_item *items;
  int n;
} kn_schedule;

/* Schedule the graph needed to realize targets. 0 or -1 (context error set). */
int kn_schedule_build(kn_uop **targets, int ntargets, kn_schedule *out);
void kn_schedule_free(kn_schedule *s);
/* DEBUG=3: one kernel's schedule entry (what it fused, why its boundary is there), under the same index, entry name
 * and cache key that DEBUG=2's launch line and DEBUG 4-7 use. */
void kn_sched_item_print(const kn_sched_item *it, int idx, const char *entry, const char *key);
/* GRAPH=1: write the scheduled graph, nodes grouped by kernel, as Graphviz DOT (and SVG when dot exists). */
void kn_graph_write_dot(const kn_schedule *s);
/* VIZ=1 (viz.c): the run's HTML page. kn_viz_kernel records a kernel once per entry name (with its texts for
 * target t) and returns its id; kn_viz_plan records a schedule as kernel ids and rewrites the page. */
bool kn_viz_on(void);
int kn_viz_kernel(const kn_sched_item *it, const char *entry, const char *key, const kn_target *t);
void kn_viz_plan(const int *ids, int n);
void kn_viz_time(int id, double s);
/* A node whose buffer already exists (or is an input buffer to be allocated): no kernel computes it. */
bool kn_uop_is_leaf(const kn_uop *u);
kn_var *kn_var_by_id(int id);

#endif
