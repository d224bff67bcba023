/* `kiln cache`: inspect and maintain the kernel disk cache — list entries, show one (header, LLVM IR, disassembly),
 * totals, verify every checksum (optionally removing bad entries), and clear it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "codegen/cache.h"
#include "device/amd/codeobj.h"

static int usage(FILE *f) {
  fprintf(f, "usage: kiln cache [list|show KEY|stats|verify [--fix]|clear]\n\n"
             "  list          one line per entry: key, kernel name, target, size, age, hits (default)\n"
             "  show KEY      an entry's header, LLVM IR and disassembly (KEY may be a unique prefix)\n"
             "  stats         entries, bytes, total hits and the cache directory\n"
             "  verify        check every entry's checksum; --fix removes the bad ones\n"
             "  clear         remove every entry\n\n"
             "The cache lives in $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln. CACHELEVEL=0 turns\n"
             "it off for a run. See docs/cache.md.\n");
  return f == stdout ? 0 : 2;
}

typedef struct {
  kn_cache_entry *v;
  int n, cap;
} entries;

static int collect(const kn_cache_entry *e, void *ctx) {
  entries *es = ctx;
  if (es->n == es->cap) {
    int nc = es->cap ? es->cap * 2 : 64;
    kn_cache_entry *nv = realloc(es->v, (size_t)nc * sizeof *nv);
    if (!nv) return -1;
    es->v = nv, es->cap = nc;
  }
  es->v[es->n++] = *e;
  return 0;
}

static int by_age(const void *a, const void *b) {
  double x = ((const kn_cache_entry *)a)->age_s, y = ((const kn_cache_entry *)b)->age_s;
  return x < y ? -1 : x > y;
}

static int load_all(entries *es, const char *cmd) {
  memset(es, 0, sizeof *es);
  if (kn_cache_list(collect, es)) {
    fprintf(stderr, "kiln cache %s: cannot read %s\n", cmd, kn_cache_dir());
    free(es->v);
    return -1;
  }
  qsort(es->v, (size_t)es->n, sizeof *es->v, by_age);
  return 0;
}

static void fmt_size(double b, char *out, size_t cap) {
  const char *u[] = {"B", "KiB", "MiB", "GiB"};
  int i = 0;
  while (b >= 1024 && i < 3) b /= 1024, i++;
  snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void fmt_age(double s, char *out, size_t cap) {
  if (s < 120) snprintf(out, cap, "%.0fs", s);
  else if (s < 7200) snprintf(out, cap, "%.0fm", s / 60);
  else if (s < 172800) snprintf(out, cap, "%.0fh", s / 3600);
  else snprintf(out, cap, "%.0fd", s / 86400);
}

static int cmd_list(void) {
  entries es;
  if (load_all(&es, "list")) return 1;
  if (!es.n) printf("(no entries in %s)\n", kn_cache_dir());
  else printf("%-32s  %-28s %-30s %10s %6s %6s\n", "KEY", "NAME", "TARGET", "SIZE", "AGE", "HITS");
  for (int i = 0; i < es.n; i++) {
    const kn_cache_entry *e = &es.v[i];
    char size[32], age[32], target[160];
    fmt_size((double)e->size, size, sizeof size);
    fmt_age(e->age_s, age, sizeof age);
    snprintf(target, sizeof target, "%s/%s", e->triple, e->cpu);
    printf("%-32s  %-28s %-30s %10s %6s %6lld%s\n", e->key, e->ok ? e->name : "?", e->ok ? target : "?", size, age,
           (long long)e->hits, e->ok ? "" : "  CORRUPT");
  }
  free(es.v);
  return 0;
}

/* The one entry whose key starts with prefix; prints why when there is none or several. */
static int find_key(const char *prefix, char key[33]) {
  entries es;
  if (load_all(&es, "show")) return -1;
  int found = 0;
  for (int i = 0; i < es.n; i++)
    if (!strncmp(es.v[i].key, prefix, strlen(prefix))) {
      if (found++) fprintf(stderr, "kiln cache show: key prefix '%s' matches several entries\n", prefix);
      memcpy(key, es.v[i].key, 33);
    }
  free(es.v);
  if (!found) fprintf(stderr, "kiln cache show: no entry with key '%s' in %s\n", prefix, kn_cache_dir());
  return found == 1 ? 0 : -1;
}

/* An AMDGPU entry's kernel as its code object describes it (the loader's reading of the descriptor and the
 * metadata note): arch, registers, LDS, scratch, wave size, kernel arguments. */
static void show_amdgpu(const kn_cache_entry *e, const uint8_t *obj, size_t n) {
  kn_codeobj co;
  char err[256];
  if (kn_codeobj_load(obj, n, 0, &co, err, sizeof err)) {
    printf("amdgpu   (code object unreadable: %s)\n", err);
    return;
  }
  const kn_codeobj_kernel *k = kn_codeobj_find(&co, e->entry);
  if (!k) printf("amdgpu   arch %s, no kernel %s in the object\n", co.arch, e->entry);
  else {
    int bufs = 0, vals = 0, hidden = 0;
    for (int i = 0; i < k->nargs; i++)
      bufs += k->args[i].kind == KN_ARG_GLOBAL_BUFFER, vals += k->args[i].kind == KN_ARG_BY_VALUE,
          hidden += k->args[i].kind == KN_ARG_HIDDEN;
    printf("arch     %s (wave%u)\nregs     %u VGPRs, %u SGPRs\nLDS      %u bytes\nscratch  %u bytes per work item\n"
           "kernargs %u bytes: %d buffers, %d by value, %d hidden\nwg max   %u work items\n",
           co.arch, k->wavefront_size, k->vgpr_count, k->sgpr_count, k->group_segment_size, k->private_segment_size,
           k->kernarg_size, bufs, vals, hidden, k->max_flat_workgroup_size);
  }
  kn_codeobj_free(&co);
}

static int cmd_show(const char *prefix) {
  char key[33];
  if (strlen(prefix) < 4) return fprintf(stderr, "kiln cache show: give at least 4 characters of the key\n"), 2;
  if (find_key(prefix, key)) return 1;
  kn_cache_entry e;
  char *ir = NULL;
  uint8_t *obj = NULL;
  size_t n = 0;
  int rc = kn_cache_read_entry(key, &e, &ir, &obj, &n);
  char size[32], age[32];
  fmt_size((double)e.size, size, sizeof size);
  fmt_age(e.age_s, age, sizeof age);
  printf("key      %s\nfile     %s/%s.entry\nstatus   %s\n", key, kn_cache_dir(), key,
         rc ? "CORRUPT (checksum or size mismatch; `kiln cache verify --fix` removes it)" : "ok");
  if (rc) return 1;
  printf("name     %s\nentry    %s\ntarget   %s %s\nsize     %s (object %zu bytes, IR %zu bytes)\nage      %s\n"
         "hits     %lld\n",
         e.name, e.entry, e.triple, e.cpu, size, n, strlen(ir), age, (long long)e.hits);
  if (!strncmp(e.triple, "amdgcn", 6)) show_amdgpu(&e, obj, n);
  printf("\n--- LLVM IR ---\n%s%s", ir, ir[0] && ir[strlen(ir) - 1] != '\n' ? "\n" : "");
  char *dis = kn_cache_disassemble(&e, obj, n);
  printf("\n--- disassembly (%s) ---\n%s", e.triple, dis ? dis : "(disassembly failed)\n");
  free(dis), free(ir), free(obj);
  return 0;
}

static int cmd_stats(void) {
  entries es;
  if (load_all(&es, "stats")) return 1;
  long long hits = 0, bad = 0;
  double bytes = 0;
  for (int i = 0; i < es.n; i++) hits += es.v[i].hits, bytes += (double)es.v[i].size, bad += !es.v[i].ok;
  char size[32];
  fmt_size(bytes, size, sizeof size);
  printf("directory  %s\nentries    %d%s\nbytes      %.0f (%s)\nhits       %lld\n", kn_cache_dir(), es.n,
         bad ? " (some corrupt: run `kiln cache verify`)" : "", bytes, size, hits);
  free(es.v);
  return 0;
}

static int cmd_verify(bool fix) {
  entries es;
  if (load_all(&es, "verify")) return 1;
  int bad = 0, removed = 0;
  for (int i = 0; i < es.n; i++) {
    if (es.v[i].ok) continue;
    bad++;
    printf("corrupt: %s/%s.entry", kn_cache_dir(), es.v[i].key);
    if (fix && !kn_cache_remove(es.v[i].key)) removed++, printf(" (removed)");
    printf("\n");
  }
  printf("%d entries checked, %d corrupt%s\n", es.n, bad, fix ? "" : bad ? " (run with --fix to remove them)" : "");
  if (fix) printf("%d removed\n", removed);
  free(es.v);
  return bad > removed ? 1 : 0;
}

static int cmd_clear(void) {
  int n = kn_cache_clear();
  if (n < 0) return fprintf(stderr, "kiln cache clear: cannot read %s\n", kn_cache_dir()), 1;
  printf("removed %d entr%s from %s\n", n, n == 1 ? "y" : "ies", kn_cache_dir());
  return 0;
}

int kn_cmd_cache(int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : "list";
  bool help = false, fix = false;
  const char *arg = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) help = true;
    else if (!strcmp(argv[i], "--fix")) fix = true;
    else if (i >= 2 && !arg && argv[i][0] != '-') arg = argv[i];
    else if (i >= 2) return fprintf(stderr, "kiln cache %s: unexpected argument '%s'\n", sub, argv[i]), usage(stderr);
  }
  if (help || !strcmp(sub, "help")) return usage(stdout);
  if (!strcmp(sub, "list") && !arg && !fix) return cmd_list();
  if (!strcmp(sub, "show") && arg && !fix) return cmd_show(arg);
  if (!strcmp(sub, "stats") && !arg && !fix) return cmd_stats();
  if (!strcmp(sub, "verify") && !arg) return cmd_verify(fix);
  if (!strcmp(sub, "clear") && !arg && !fix) return cmd_clear();
  if (!strcmp(sub, "show") && !arg) return fprintf(stderr, "kiln cache show: which KEY?\n"), usage(stderr);
  fprintf(stderr, "kiln cache: unknown or malformed subcommand '%s'\n\n", sub);
  return usage(stderr);
}
