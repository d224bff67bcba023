/* The runner: turns a schedule into a plan (compiled programs, buffers from a memory plan that reuses
 * intermediates whose lifetimes do not overlap) and runs it, once for kn_realize or many times for a captured
 * decode step whose only changes are the values of its symbolic variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../device/base/env.h"
#include "schedule.h"

typedef struct {
  kn_program *prog;
  char name[96]; /* the entry name, e.g. kn_r_8_64_3f2a19c0: the same at every DEBUG level */
  int64_t global[3], local[3];
  int nbufs, nvars;
  kn_buf *bufs[KN_MAXBUFS];
  kn_var *vars[KN_MAXVARS];
  double flops_est, bytes_est;
  bool fresh_out; /* the kernel writes every element of bufs[0] (not an assign into part of an existing buffer) */
  int viz;        /* VIZ=1: the kernel's id in the page, -1 none */
} exec_item;

struct kn_plan {
  kn_ctx *ctx;
  exec_item *items;
  int n;
  kn_buf **owned; /* intermediates this plan allocated */
  int nowned;
  kn_scratch *scratch; /* where intermediates come from when shared with other plans, or NULL */
  kn_buf **taken;      /* the scratch buffers this plan uses */
  int ntaken;
  size_t inter_bytes;  /* bytes of its intermediates */
};

/* Intermediates shared by plans that never run at the same time (the forward passes of one model): a plan takes
 * buffers from here instead of allocating its own, so many plans cost about as much memory as the largest. */
struct kn_scratch {
  kn_device *dev;
  kn_buf **bufs;
  int n, cap;
};

kn_scratch *kn_scratch_new(kn_device *dev) {
  kn_scratch *s = calloc(1, sizeof *s);
  if (s) s->dev = dev;
  return s;
}

void kn_scratch_free(kn_scratch *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++) kn_buf_free(s->bufs[i]);
  free(s->bufs);
  free(s);
}

size_t kn_scratch_bytes(const kn_scratch *s) {
  size_t t = 0;
  for (int i = 0; s && i < s->n; i++) t += s->bufs[i]->nbytes;
  return t;
}

/* A buffer of at least need bytes for plan p: the smallest scratch buffer p does not hold yet, else a new one that
 * joins the scratch. */
static kn_buf *scratch_take(kn_plan *p, size_t need, char *err, size_t errlen) {
  kn_scratch *s = p->scratch;
  kn_buf *best = NULL;
  for (int i = 0; i < s->n; i++) {
    kn_buf *b = s->bufs[i];
    bool held = false;
    for (int t = 0; t < p->ntaken && !held; t++) held = p->taken[t] == b;
    if (!held && b->nbytes >= need && (!best || b->nbytes < best->nbytes)) best = b;
  }
  if (!best) {
    if (s->n == s->cap) {
      kn_buf **nb = realloc(s->bufs, (size_t)(s->cap = s->cap ? 2 * s->cap : 16) * sizeof *nb);
      if (!nb) return snprintf(err, errlen, "out of memory"), NULL;
      s->bufs = nb;
    }
    if (!(best = kn_buf_alloc(s->dev, need, err, errlen))) return NULL;
    s->bufs[s->n++] = best;
  }
  return p->taken[p->ntaken++] = best;
}

/* ---- loaded programs, shared by all plans of the process ---- */
typedef struct prog_entry {
  struct {
    uint64_t khash;
    kn_device *dev;
  } key;
  kn_program *prog;
  kn_compiled c;
  UT_hash_handle hh;
} prog_entry;
static prog_entry *progs;
static kn_sched_stats last_stats;

kn_sched_stats kn_last_schedule(void) { return last_stats; }

static prog_entry *get_program(kn_ctx *ctx, const kn_kernel *k, char *err, size_t errlen) {
  prog_entry key, *e;
  memset(&key, 0, sizeof key);
  key.key.khash = kn_kernel_hash(k), key.key.dev = ctx->dev;
  HASH_FIND(hh, progs, &key.key, sizeof key.key, e);
  if (e) return last_stats.memory_hits++, e;
  if (!(e = calloc(1, sizeof *e))) return NULL;
  e->key = key.key;
  if (kn_compile(k, kn_device_target(ctx->dev), &e->c, err, errlen)) return free(e), NULL;
  if (e->c.cache_hit) last_stats.cache_hits++;
  else if (e->c.memo_hit) last_stats.memory_hits++;
  else last_stats.compiled++;
  e->prog = kn_program_load(ctx->dev, e->c.entry, e->c.obj, e->c.obj_size, err, errlen);
  if (!e->prog) return kn_compiled_free(&e->c), free(e), NULL;
  free(e->c.obj);
  e->c.obj = NULL, e->c.obj_size = 0;
  HASH_ADD(hh, progs, key, sizeof e->key, e);
  return e;
}

static int64_t buf_bytes(const kn_kbuf *b) {
  int64_t n = kn_dtype_nbytes(b->dtype, b->nelems);
  return n > 0 ? n : 1;
}

/* Rough work estimate for DEBUG=2: one op per fused node per element, bytes of all buffers touched. */
static void estimate(exec_item *x, const kn_kernel *k) {
  double elems = 1;
  for (int i = 0; i < k->ndim; i++) elems *= (double)k->shape[i];
  x->flops_est = elems * (k->nnodes > 1 ? k->nnodes - 1 : 1);
  x->bytes_est = 0;
  for (int i = 0; i < k->nbufs; i++) x->bytes_est += (double)buf_bytes(&k->bufs[i]);
}

static bool is_target(kn_uop *u, kn_t *ts, int n) {
  for (int i = 0; i < n; i++)
    if (ts[i] == u) return true;
  return false;
}

/* The buffer a schedule item's argument refers to: existing, the plan's, or allocated now. */
typedef struct {
  kn_uop *u;
  kn_buf *buf;
  int last_use;
} live;

static int plan_memory(kn_plan *p, kn_schedule *s, kn_t *ts, int nts, char *err, size_t errlen) {
  int cap = 0, nlive = 0;
  live *lv = NULL;
  kn_buf **freelist = calloc(s->n + 1, sizeof *freelist);
  int nfree = 0;
  p->owned = calloc(s->n + 1, sizeof *p->owned);
  p->taken = calloc(s->n + 1, sizeof *p->taken);
  if (!freelist || !p->owned || !p->taken) goto oom;
  /* last use of every intermediate */
  for (int i = 0; i < s->n; i++)
    for (int b = 0; b < s->items[i].nbufs; b++) {
      kn_uop *u = s->items[i].bufs[b];
      int j;
      for (j = 0; j < nlive && lv[j].u != u; j++) {}
      if (j == nlive) {
        if (nlive == cap && !(lv = realloc(lv, (cap = cap ? 2 * cap : 64) * sizeof *lv))) goto oom;
        lv[nlive++] = (live){u, NULL, i};
      } else
        lv[j].last_use = i;
    }
  for (int i = 0; i < s->n; i++) {
    kn_sched_item *it = &s->items[i];
    exec_item *x = &p->items[i];
    for (int b = 0; b < it->nbufs; b++) {
      kn_uop *u = it->bufs[b];
      live *l = NULL;
      for (int j = 0; j < nlive; j++)
        if (lv[j].u == u) l = &lv[j];
      if (!l->buf) {
        kn_uop *owner = u->op == KN_OP_ASSIGN ? u->src[0] : u;
        while (owner->op == KN_OP_ASSIGN) owner = owner->src[0];
        size_t need = (size_t)buf_bytes(&it->k->bufs[b]);
        if (owner->buf) l->buf = owner->buf;
        else if (owner->op == KN_OP_BUFFER || is_target(u, ts, nts)) { /* kept after the plan */
          if (!(owner->buf = kn_buf_alloc(p->ctx->dev, need, err, errlen))) goto fail;
          owner->owns_buf = true;
          if (owner->op == KN_OP_BUFFER && owner->buf->ptr) memset(owner->buf->ptr, 0, need); /* kn_empty reads as 0 */
          l->buf = owner->buf;
        } else { /* an intermediate: best fit from buffers freed by earlier kernels */
          int best = -1;
          for (int f = 0; f < nfree; f++)
            if (freelist[f]->nbytes >= need && (best < 0 || freelist[f]->nbytes < freelist[best]->nbytes)) best = f;
          if (best >= 0) {
            l->buf = freelist[best];
            freelist[best] = freelist[--nfree];
          } else if (p->scratch) {
            if (!(l->buf = scratch_take(p, need, err, errlen))) goto fail;
            p->inter_bytes += l->buf->nbytes;
          } else {
            if (!(l->buf = kn_buf_alloc(p->ctx->dev, need, err, errlen))) goto fail;
            p->owned[p->nowned++] = l->buf;
            p->inter_bytes += need;
          }
        }
      }
      x->bufs[b] = l->buf;
    }
    /* release intermediates whose last reader was this kernel */
    for (int j = 0; j < nlive; j++)
      if (lv[j].last_use == i && lv[j].buf && !lv[j].u->buf && !is_target(lv[j].u, ts, nts) &&
          lv[j].u->op != KN_OP_ASSIGN && lv[j].u->op != KN_OP_BUFFER) {
        bool owned = false;
        for (int o = 0; o < p->nowned; o++) owned |= p->owned[o] == lv[j].buf;
        for (int o = 0; o < p->ntaken; o++) owned |= p->taken[o] == lv[j].buf;
        if (owned) freelist[nfree++] = lv[j].buf;
      }
  }
  free(lv);
  free(freelist);
  return 0;
oom:
  snprintf(err, errlen, "out of memory planning buffers");
fail:
  free(lv);
  free(freelist);
  return -1;
}

void kn_plan_free(kn_plan *p) {
  if (!p) return;
  for (int i = 0; i < p->nowned; i++) kn_buf_free(p->owned[i]);
  free(p->owned);
  free(p->taken);
  free(p->items);
  free(p);
}

int kn_plan_kernels(const kn_plan *p) { return p ? p->n : 0; }

kn_plan *kn_plan_new(kn_t *outputs, int n) { return kn_plan_new_shared(outputs, n, NULL); }

size_t kn_plan_scratch_bytes(const kn_plan *p) { return p ? p->inter_bytes : 0; }

kn_plan *kn_plan_new_shared(kn_t *outputs, int n, kn_scratch *scratch) {
  kn_ctx *ctx = kn_ctx_need();
  if (!ctx) return NULL;
  for (int i = 0; i < n; i++)
    if (!outputs[i]) {
      if (!ctx->has_err) kn_graph_fail("realize: a tensor is NULL");
      return NULL;
    }
  if (ctx->has_err) return NULL;
  double t0 = kn_now();
  char err[512] = "";
  for (int i = 0; i < n; i++) { /* an input buffer asked for by itself: allocate it (zeroed) */
    kn_uop *u = outputs[i];
    if (u->op != KN_OP_BUFFER || u->buf) continue;
    int64_t nb = kn_dtype_nbytes(u->dtype, kn_shape_numel(u->ndim, u->shape));
    if (!(u->buf = kn_buf_alloc(ctx->dev, nb > 0 ? (size_t)nb : 1, err, sizeof err))) {
      kn_graph_fail("allocating %lld bytes: %s", (long long)nb, err);
      return NULL;
    }
    u->owns_buf = true;
    if (u->buf->ptr) memset(u->buf->ptr, 0, nb > 0 ? (size_t)nb : 1);
  }
  kn_schedule s;
  if (kn_schedule_build(outputs, n, &s)) return NULL;
  kn_plan *p = calloc(1, sizeof *p);
  if (!p || !(p->items = calloc(s.n ? s.n : 1, sizeof *p->items))) {
    free(p);
    kn_schedule_free(&s);
    kn_graph_fail("out of memory");
    return NULL;
  }
  p->ctx = ctx, p->n = s.n, p->scratch = scratch;
  bool viz = kn_viz_on();
  int *viz_ids = viz ? calloc(s.n ? s.n : 1, sizeof *viz_ids) : NULL;
  last_stats.kernels = s.n;
  int64_t c0 = last_stats.compiled, h0 = last_stats.cache_hits, m0 = last_stats.memory_hits;
  for (int i = 0; i < s.n; i++) {
    exec_item *x = &p->items[i];
    prog_entry *e = get_program(ctx, s.items[i].k, err, sizeof err);
    if (kn_debug() >= 3) kn_sched_item_print(&s.items[i], i, e ? e->c.entry : NULL, e ? e->c.key : NULL);
    if (!e) {
      kn_graph_fail("compiling kernel %d (node %lld): %s", i, (long long)s.items[i].node->id, err);
      goto fail;
    }
    x->prog = e->prog;
    snprintf(x->name, sizeof x->name, "%s", e->c.entry);
    x->viz = viz ? kn_viz_kernel(&s.items[i], e->c.entry, e->c.key, kn_device_target(ctx->dev)) : -1;
    if (viz && viz_ids) viz_ids[i] = x->viz;
    memcpy(x->global, e->c.global, sizeof x->global);
    memcpy(x->local, e->c.local, sizeof x->local);
    x->nbufs = s.items[i].nbufs, x->nvars = s.items[i].nvars;
    x->fresh_out = s.items[i].node->op != KN_OP_ASSIGN;
    memcpy(x->vars, s.items[i].vars, sizeof x->vars);
    estimate(x, s.items[i].k);
  }
  if (plan_memory(p, &s, outputs, n, err, sizeof err)) {
    kn_graph_fail("memory plan: %s", err);
    goto fail;
  }
  if (kn_debug() >= 1)
    fprintf(stderr,
            "scheduled %d kernels (%lld compiled, %lld disk-cache hits, %lld already in memory) in %.2f ms; "
            "intermediates %.1f MiB%s\n",
            s.n, (long long)(last_stats.compiled - c0), (long long)(last_stats.cache_hits - h0),
            (long long)(last_stats.memory_hits - m0), (kn_now() - t0) * 1e3, p->inter_bytes / 1048576.0,
            scratch ? " (shared)" : "");
  if (viz && viz_ids) kn_viz_plan(viz_ids, s.n);
  free(viz_ids);
  kn_schedule_free(&s);
  return p;
fail:
  free(viz_ids);
  kn_schedule_free(&s);
  kn_plan_free(p);
  return NULL;
}

/* vals[v] for the kernel's variables, from the bindings */
static int bind_values(const exec_item *x, const kn_bind *binds, int n, int64_t *vals) {
  for (int v = 0; v < x->nvars; v++) {
    int b = 0;
    while (b < n && binds[b].var != x->vars[v]) b++;
    if (b == n) {
      kn_graph_fail("%s uses the variable '%s', which this run does not bind", x->name, x->vars[v]->name);
      return -1;
    }
    vals[v] = binds[b].value;
  }
  return 0;
}

/* KILN_POISON=1 (a test mode): before each launch, the output of a kernel that must write all of it is filled with
 * all-ones bytes (NaN in every float format, -1 in integers), so an element the kernel leaves unwritten shows as
 * NaN instead of a leftover that may happen to be right. Assigns (a slice of an existing buffer) are left alone. */
static int poison_output(const exec_item *x) {
  kn_buf *b = x->bufs[0];
  void *ones = malloc(b->nbytes ? b->nbytes : 1);
  if (!ones) return kn_graph_fail("KILN_POISON: out of memory for %zu bytes", b->nbytes), -1;
  memset(ones, 0xff, b->nbytes);
  int rc = kn_buf_copyin(b, 0, ones, b->nbytes);
  free(ones);
  if (rc) kn_graph_fail("KILN_POISON: filling the output of %s failed", x->name);
  return rc ? -1 : 0;
}

static int plan_run(kn_plan *p, const kn_bind *binds, int n) {
  char err[512];
  int dbg = kn_debug();
  bool poison = kn_getenv_int("KILN_POISON", 0) != 0;
  for (int b = 0; b < n; b++) {
    const kn_var *v = binds[b].var;
    if (!v || binds[b].value < v->min || binds[b].value > v->max) {
      kn_graph_fail("variable '%s' bound to %lld, outside its range [%lld, %lld]", kn_var_name(v),
                    (long long)binds[b].value, (long long)(v ? v->min : 0), (long long)(v ? v->max : 0));
      return -1;
    }
  }
  for (int i = 0; i < p->n; i++) {
    exec_item *x = &p->items[i];
    int64_t vals[KN_MAXVARS];
    if (bind_values(x, binds, n, vals)) return -1;
    if (poison && x->fresh_out && x->nbufs > 0 && poison_output(x)) return -1;
    double t0 = dbg >= 2 || x->viz >= 0 ? kn_now() : 0;
    if (kn_program_launch(x->prog, x->bufs, x->nbufs, vals, x->nvars, x->global, x->local, err, sizeof err)) {
      kn_graph_fail("launching %s: %s", x->name, err);
      return -1;
    }
    if (x->viz >= 0 && dbg < 2) kn_device_sync(p->ctx->dev), kn_viz_time(x->viz, kn_now() - t0);
    if (dbg >= 2) {
      kn_device_sync(p->ctx->dev);
      double dt = kn_now() - t0;
      if (x->viz >= 0) kn_viz_time(x->viz, dt);
      fprintf(stderr, "#%-3d %-4s %-44s global [%lld,%lld,%lld] local [%lld,%lld,%lld] %9.3f ms %8.2f GFLOP/s %8.2f GB/s\n",
              i, kn_device_name(p->ctx->dev), x->name, (long long)x->global[0], (long long)x->global[1],
              (long long)x->global[2], (long long)x->local[0], (long long)x->local[1], (long long)x->local[2], dt * 1e3,
              x->flops_est / dt * 1e-9, x->bytes_est / dt * 1e-9);
    }
  }
  return kn_device_sync(p->ctx->dev);
}

int kn_plan_run(kn_plan *p, const kn_bind *binds, int n) {
  if (!p) return -1;
  kn_ctx *prev = kn_ctx_set(p->ctx); /* errors go to the plan's context */
  int rc = plan_run(p, binds, n);
  kn_ctx_set(prev);
  return rc;
}

int kn_realize(kn_t *ts, int n) {
  kn_plan *p = kn_plan_new(ts, n);
  if (!p) return -1;
  int rc = kn_plan_run(p, NULL, 0);
  kn_plan_free(p);
  return rc;
}

int kn_schedule_count(kn_t *ts, int n) {
  kn_schedule s;
  if (kn_schedule_build(ts, n, &s)) return -1;
  int c = s.n;
  kn_schedule_free(&s);
  return c;
}

kn_buf *kn_buffer_of(kn_t t) {
  if (!t) return NULL;
  if (t->buf) return t->buf;
  if (t->op == KN_OP_VIEW && kn_st_is_contiguous(t->arg.st)) t = t->src[0];
  while (t->op == KN_OP_ASSIGN && !t->buf) t = t->src[0];
  return t->buf;
}

int kn_to_host(kn_t t, void *dst, size_t nbytes) {
  if (!t) return -1;
  if (kn_dtype_is_quant(t->dtype)) t = kn_contiguous(kn_cast(t, KN_F32)); /* values, not blocks */
  kn_buf *b = kn_buffer_of(t);
  if (!b) {
    if (kn_realize(&t, 1)) return -1;
    b = kn_buffer_of(t);
  }
  int64_t need = kn_dtype_nbytes(t->dtype, kn_numel(t));
  if (!b || need < 0 || (size_t)need > nbytes) {
    kn_graph_fail("to_host: %lld bytes needed, destination has %zu", (long long)need, nbytes);
    return -1;
  }
  if (kn_buf_copyout(b, 0, dst, (size_t)need)) {
    kn_graph_fail("to_host: copy from the device failed");
    return -1;
  }
  return 0;
}
