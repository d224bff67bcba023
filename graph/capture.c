/* Captured steps (the runner's TinyJit): a caller's graph is built, scheduled and compiled once per key (a batch
 * size, a cache slot, ...) in a context of its own, then replayed with new input bytes and new values of its
 * symbolic variables; nothing is rebuilt or recompiled on a replay. Captures not marked keep are evicted least
 * recently used first, so a bounded number stay resident. The captures of one kn_capture run one at a time and
 * share their intermediates (a kn_scratch), so all of them cost about as much memory as the largest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../device/base/env.h"
#include "uop.h"

typedef struct cap {
  int64_t key;
  kn_ctx *ctx;
  kn_plan *plan;
  kn_capture_io io;
  struct cap *next;
} cap;

struct kn_capture {
  kn_device *dev;
  kn_capture_build build;
  void *user;
  int keep;  /* captures not marked keep that stay resident */
  cap *list; /* most recently used first */
  kn_scratch *scratch; /* the captures' intermediates: they run one at a time, so they share them */
};

kn_capture *kn_capture_new(kn_device *dev, kn_capture_build build, void *user, int keep) {
  kn_capture *c = calloc(1, sizeof *c);
  if (c) c->dev = dev, c->build = build, c->user = user, c->keep = keep > 0 ? keep : 1;
  if (c && !(c->scratch = kn_scratch_new(dev))) free(c), c = NULL;
  return c;
}

static void cap_free(cap *x) {
  kn_plan_free(x->plan);
  kn_ctx_free(x->ctx);
  free(x);
}

void kn_capture_clear(kn_capture *c) {
  while (c && c->list) {
    cap *x = c->list;
    c->list = x->next;
    cap_free(x);
  }
}

void kn_capture_free(kn_capture *c) {
  kn_capture_clear(c);
  if (c) kn_scratch_free(c->scratch);
  free(c);
}

size_t kn_capture_scratch_bytes(const kn_capture *c) { return c ? kn_scratch_bytes(c->scratch) : 0; }

int kn_capture_count(const kn_capture *c) {
  int n = 0;
  for (const cap *x = c ? c->list : NULL; x; x = x->next) n++;
  return n;
}

static void evict(kn_capture *c) {
  int seen = 0;
  for (cap **pp = &c->list; *pp;) {
    cap *x = *pp;
    if (!x->io.keep && ++seen > c->keep) {
      *pp = x->next;
      cap_free(x);
    } else
      pp = &x->next;
  }
}

/* "step <name>" or "step <key>" for messages */
static const char *label(const cap *x, char *buf, size_t n) {
  if (x->io.name[0]) snprintf(buf, n, "step '%s'", x->io.name);
  else snprintf(buf, n, "step %lld", (long long)x->key);
  return buf;
}

/* The capture of key, moved to the front; built now if absent. */
static cap *get(kn_capture *c, int64_t key, char *err, size_t errlen) {
  for (cap **pp = &c->list; *pp; pp = &(*pp)->next)
    if ((*pp)->key == key) {
      cap *x = *pp;
      *pp = x->next;
      x->next = c->list;
      c->list = x;
      return x;
    }
  cap *x = calloc(1, sizeof *x);
  if (!x || !(x->ctx = kn_ctx_new(c->dev))) {
    free(x);
    return kn_errf(err, errlen, "out of memory"), NULL;
  }
  x->key = key;
  kn_ctx *prev = kn_ctx_set(x->ctx);
  int rc = c->build(c->user, key, &x->io);
  bool io_ok = x->io.n_inputs >= 0 && x->io.n_inputs <= KN_CAPTURE_MAXIO && x->io.n_outputs > 0 &&
               x->io.n_outputs <= KN_CAPTURE_MAXIO && x->io.n_vars >= 0 && x->io.n_vars <= KN_CAPTURE_MAXIO;
  for (int i = 0; !rc && io_ok && i < x->io.n_outputs; i++) x->io.outputs[i] = kn_contiguous(x->io.outputs[i]);
  if (!rc && io_ok) x->plan = kn_plan_new_shared(x->io.outputs, x->io.n_outputs, c->scratch);
  kn_ctx_set(prev);
  char lb[96];
  if (!x->plan) {
    const char *e = kn_ctx_error(x->ctx);
    kn_errf(err, errlen, "capturing %s: %s", label(x, lb, sizeof lb),
            e ? e : io_ok ? "the build function failed" : "the build function gave an invalid set of inputs/outputs");
    cap_free(x);
    return NULL;
  }
  x->next = c->list;
  c->list = x;
  evict(c);
  if (kn_debug() >= 1)
    fprintf(stderr, "captured %s: %d kernels\n", label(x, lb, sizeof lb), kn_plan_kernels(x->plan));
  return x;
}

int kn_capture_prepare(kn_capture *c, int64_t key, char *err, size_t errlen) {
  return get(c, key, err, errlen) ? 0 : -1;
}

int kn_capture_run(kn_capture *c, int64_t key, const void *const *in, const size_t *in_bytes, const int64_t *vals,
                   void *const *out, const size_t *out_bytes, char *err, size_t errlen) {
  cap *x = get(c, key, err, errlen);
  if (!x) return -1;
  char lb[96];
  label(x, lb, sizeof lb);
  kn_bind b[KN_CAPTURE_MAXIO];
  for (int v = 0; v < x->io.n_vars; v++) b[v] = (kn_bind){x->io.vars[v], vals[v]};
  int rc = 0;
  for (int i = 0; !rc && i < x->io.n_inputs; i++) {
    kn_buf *buf = kn_buffer_of(x->io.inputs[i]);
    if (!buf || in_bytes[i] > buf->nbytes)
      return kn_errf(err, errlen, "%s: input %d of %zu bytes does not fit its buffer", lb, i, in_bytes[i]);
    rc = kn_buf_copyin(buf, 0, in[i], in_bytes[i]);
  }
  if (!rc) rc = kn_plan_run(x->plan, b, x->io.n_vars);
  for (int i = 0; !rc && i < x->io.n_outputs; i++) {
    kn_buf *buf = kn_buffer_of(x->io.outputs[i]);
    if (!buf || out_bytes[i] > buf->nbytes)
      return kn_errf(err, errlen, "%s: output %d has fewer than %zu bytes", lb, i, out_bytes[i]);
    rc = kn_buf_copyout(buf, 0, out[i], out_bytes[i]);
  }
  if (rc) kn_errf(err, errlen, "%s: %s", lb, kn_ctx_error(x->ctx) ? kn_ctx_error(x->ctx) : "device error");
  return rc ? -1 : 0;
}
