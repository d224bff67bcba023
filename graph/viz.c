/* VIZ=1, after tinygrad's VIZ: one self-contained HTML page per run (kiln-viz-PID.html in $VIZ_DIR, default the
 * current directory; its path is printed when it is first written). It lists every schedule the run made (each
 * plan: a kn_realize, a captured step) with its kernels in order, and for every kernel the tensor it realizes, why
 * that is a kernel boundary, the nodes fused into it, the buffers it reads, its AST, loop IR, LLVM IR and target
 * assembly, and its launches and time. The page is rewritten after every plan and at exit, so it is complete when
 * the process ends and readable before. Nothing outside the file is loaded (no scripts, fonts or styles). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../codegen/codegen.h"
#include "../device/base/env.h"
#include "schedule.h"

typedef struct {
  char entry[96], key[33], name[48], dtype[16], shape[96], why[160], space[160];
  char *fused, *reads;
  kn_kernel_texts tx;
  char tx_err[256];
  int64_t launches;
  double time_s;
} vkernel;

typedef struct {
  int *ids, n;
} vplan;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static vkernel *ks;
static int nks, capks;
static vplan *plans;
static int nplans, capplans;
static char path[600];
static bool registered;

bool kn_viz_on(void) { return kn_getenv_int("VIZ", 0) > 0; }

static char *join_fused(const kn_sched_item *it) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) return NULL;
  for (int i = 0; i < it->nfused; i++) {
    char sh[96];
    kn_print_shape(it->fused[i], sh, sizeof sh);
    fprintf(f, "%s%s %s", i ? ", " : "", kn_uop_label(it->fused[i]), sh);
  }
  fclose(f);
  return buf;
}

static char *join_reads(const kn_sched_item *it) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) return NULL;
  for (int i = 1; i < it->nbufs; i++) {
    char sh[96];
    kn_print_shape(it->bufs[i], sh, sizeof sh);
    fprintf(f, "%sbuf%d: %s %s %s", i > 1 ? "\n" : "", i, kn_uop_label(it->bufs[i]), kn_dtype_name(it->bufs[i]->dtype), sh);
  }
  fclose(f);
  return buf;
}

int kn_viz_kernel(const kn_sched_item *it, const char *entry, const char *key, const kn_target *t) {
  pthread_mutex_lock(&lock);
  for (int i = 0; i < nks; i++)
    if (!strcmp(ks[i].entry, entry)) return pthread_mutex_unlock(&lock), i;
  if (nks == capks) {
    vkernel *n = realloc(ks, (capks = capks ? 2 * capks : 64) * sizeof *n);
    if (!n) return pthread_mutex_unlock(&lock), -1;
    ks = n;
  }
  vkernel *v = &ks[nks];
  memset(v, 0, sizeof *v);
  snprintf(v->entry, sizeof v->entry, "%s", entry);
  snprintf(v->key, sizeof v->key, "%s", key ? key : "");
  snprintf(v->name, sizeof v->name, "%s", kn_uop_label(it->node));
  snprintf(v->dtype, sizeof v->dtype, "%s", kn_dtype_get(it->node->dtype)->short_name);
  kn_print_shape(it->node, v->shape, sizeof v->shape);
  snprintf(v->why, sizeof v->why, "%s", it->why);
  size_t o = 0;
  for (int i = 0; i < it->k->ndim && o < sizeof v->space; i++)
    o += (size_t)snprintf(v->space + o, sizeof v->space - o, "%s%lld%s", i ? ", " : "", (long long)it->k->shape[i],
                          i >= it->k->ndim - it->k->nreduce ? "r" : "");
  v->fused = join_fused(it), v->reads = join_reads(it);
  if (kn_kernel_texts_get(it->k, t, &v->tx, v->tx_err, sizeof v->tx_err) && !v->tx_err[0])
    snprintf(v->tx_err, sizeof v->tx_err, "code generation failed");
  int id = nks++;
  pthread_mutex_unlock(&lock);
  return id;
}

void kn_viz_time(int id, double s) {
  pthread_mutex_lock(&lock);
  if (id >= 0 && id < nks) ks[id].launches++, ks[id].time_s += s;
  pthread_mutex_unlock(&lock);
}

static void esc(FILE *f, const char *s) {
  for (; s && *s; s++) switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    default: fputc(*s, f);
    }
}

static void pre(FILE *f, const char *title, const char *text, const char *cls) {
  fprintf(f, "<h4>%s</h4><pre class=\"%s\">", title, cls);
  esc(f, text && *text ? text : "(none)");
  fputs("</pre>\n", f);
}

static const char *style =
    "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}th{background:#eee}"
    "pre{background:#f6f6f6;padding:6px;overflow:auto;max-height:30em;font-size:12px}"
    "details{border:1px solid #ccc;margin:6px 0;padding:4px 8px}summary{cursor:pointer;font-family:monospace}"
    ".why{color:#a40}.hidden{display:none}code{font-size:12px}";

static const char *script =
    "document.getElementById('filter').addEventListener('input',function(e){var q=e.target.value.toLowerCase();"
    "document.querySelectorAll('[data-k]').forEach(function(el){"
    "el.classList.toggle('hidden',q!==''&&el.getAttribute('data-k').toLowerCase().indexOf(q)<0);});});"
    "document.querySelectorAll('a.k').forEach(function(a){a.addEventListener('click',function(){"
    "var d=document.getElementById(a.getAttribute('href').slice(1));if(d)d.open=true;});});";

static void write_page(void) {
  if (!path[0]) {
    const char *dir = getenv("VIZ_DIR");
    snprintf(path, sizeof path, "%s/kiln-viz-%d.html", dir && *dir ? dir : ".", (int)getpid());
  }
  char tmp[640];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    fprintf(stderr, "VIZ=1: cannot write %s\n", tmp);
    return;
  }
  fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kiln VIZ %d</title><style>%s</style></head>"
             "<body>\n<h1>kiln VIZ: %d schedules, %d kernels</h1>\n"
             "<p>Filter kernels: <input id=\"filter\" placeholder=\"entry or tensor name\"></p>\n",
          (int)getpid(), style, nplans, nks);
  for (int p = 0; p < nplans; p++) {
    fprintf(f, "<h2>schedule %d: %d kernels</h2>\n<table><tr><th>#</th><th>kernel</th><th>realizes</th>"
               "<th>boundary because</th><th>launches</th><th>time (ms)</th></tr>\n", p, plans[p].n);
    for (int i = 0; i < plans[p].n; i++) {
      const vkernel *v = &ks[plans[p].ids[i]];
      fprintf(f, "<tr data-k=\"%s %s\"><td>%d</td><td><a class=\"k\" href=\"#k%d\"><code>%s</code></a></td><td>'", v->entry,
              v->name, i, plans[p].ids[i], v->entry);
      esc(f, v->name);
      fprintf(f, "' %s %s</td><td class=\"why\">", v->dtype, v->shape);
      esc(f, v->why);
      fprintf(f, "</td><td>%lld</td><td>%.3f</td></tr>\n", (long long)v->launches, v->time_s * 1e3);
    }
    fputs("</table>\n", f);
  }
  fputs("<h2>kernels</h2>\n", f);
  for (int i = 0; i < nks; i++) {
    const vkernel *v = &ks[i];
    fprintf(f, "<details id=\"k%d\" class=\"kernel\" data-k=\"%s %s\"><summary>%s: '", i, v->entry, v->name, v->entry);
    esc(f, v->name);
    fprintf(f, "' %s %s, %lld launches, %.3f ms</summary>\n<p>cache key <code>%s</code> (<code>kiln cache show %s</code>)"
               "; space [%s]</p>\n<p class=\"why\">boundary because: ",
            v->dtype, v->shape, (long long)v->launches, v->time_s * 1e3, v->key[0] ? v->key : "-", v->key, v->space);
    esc(f, v->why);
    fputs("</p>\n", f);
    if (v->tx_err[0]) fprintf(f, "<p class=\"why\">code: "), esc(f, v->tx_err), fputs("</p>\n", f);
    pre(f, "fused nodes", v->fused, "fused");
    pre(f, "reads", v->reads, "reads");
    pre(f, "AST", v->tx.ast, "ast");
    pre(f, "loop IR", v->tx.loopir, "loopir");
    pre(f, "LLVM IR", v->tx.llvm_ir, "llvm");
    pre(f, "assembly", v->tx.asm_text, "asm");
    fputs("</details>\n", f);
  }
  fprintf(f, "<script>%s</script>\n</body></html>\n", script);
  fclose(f);
  if (rename(tmp, path)) fprintf(stderr, "VIZ=1: cannot write %s\n", path);
}

static void at_exit(void) {
  pthread_mutex_lock(&lock);
  if (nplans) write_page();
  pthread_mutex_unlock(&lock);
}

void kn_viz_plan(const int *ids, int n) {
  pthread_mutex_lock(&lock);
  if (nplans == capplans) {
    vplan *np = realloc(plans, (capplans = capplans ? 2 * capplans : 16) * sizeof *np);
    if (!np) return (void)pthread_mutex_unlock(&lock);
    plans = np;
  }
  vplan *p = &plans[nplans];
  if (!(p->ids = malloc((n ? n : 1) * sizeof *p->ids))) return (void)pthread_mutex_unlock(&lock);
  memcpy(p->ids, ids, n * sizeof *ids);
  p->n = n, nplans++;
  bool first = !registered;
  if (!registered) registered = true, atexit(at_exit);
  write_page();
  if (first) fprintf(stderr, "VIZ=1: writing %s (rewritten after every schedule and at exit; open it in a browser)\n", path);
  pthread_mutex_unlock(&lock);
}
