/* The device front end: opens a backend by name ($DEVICE, default CPU) and checks every argument (sizes, offsets,
 * buffer ownership, launch geometry) before a backend sees it, so a bad call becomes an error message, not a crash
 * inside a backend. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/env.h"
#include "backend.h"

static const struct {
  const char *name;
  int (*open)(kn_device *d, char *err, size_t errlen);
} backends[] = {
  {"CPU", kn_cpu_open},
  {"AMD", kn_amd_open},
  {"AMD:EMU", kn_amd_emu_open},
};
#define NBACKENDS (sizeof backends / sizeof *backends)

static const kn_object_store_ops *object_store;

void kn_object_store_set(const kn_object_store_ops *s) { __atomic_store_n(&object_store, s, __ATOMIC_RELEASE); }
const kn_object_store_ops *kn_object_store(void) { return __atomic_load_n(&object_store, __ATOMIC_ACQUIRE); }

kn_device *kn_device_open(const char *name, char *err, size_t errlen) {
  const char *from = "device";
  if (!name) {
    name = getenv("DEVICE");
    from = "DEVICE";
    if (!name || !*name) name = "CPU";
  }
  for (size_t i = 0; i < NBACKENDS; i++) {
    if (strcasecmp(name, backends[i].name)) continue;
    kn_device *d = calloc(1, sizeof *d);
    if (!d) return kn_errf(err, errlen, "out of memory"), NULL;
    snprintf(d->name, sizeof d->name, "%s", backends[i].name);
    char msg[480];
    if (backends[i].open(d, msg, sizeof msg)) {
      kn_errf(err, errlen, "%s=%s: %s", from, name, msg);
      free(d);
      return NULL;
    }
    return d;
  }
  char known[128] = "";
  for (size_t i = 0; i < NBACKENDS; i++)
    snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", backends[i].name);
  kn_errf(err, errlen, "%s=%s: unknown device (known: %s)", from, name, known);
  return NULL;
}

void kn_device_close(kn_device *d) {
  if (!d) return;
  if (d->ops && d->ops->close) d->ops->close(d);
  free(d);
}

const char *kn_device_name(const kn_device *d) { return d ? d->name : "(none)"; }
const kn_target *kn_device_target(const kn_device *d) { return d ? &d->target : NULL; }

bool kn_device_host_memory(const kn_device *d) { return d && d->target.kind == KN_TARGET_CPU; }
int kn_device_threads(const kn_device *d) { return d && d->target.kind == KN_TARGET_CPU ? d->target.ncores : 0; }

int kn_device_mem(const kn_device *d, uint64_t *total, uint64_t *avail) {
  uint64_t t = 0, a = 0;
  int rc = d && d->ops->mem ? d->ops->mem(d, &t, &a) : -1;
  if (total) *total = t;
  if (avail) *avail = a;
  return rc;
}

kn_buf *kn_buf_alloc(kn_device *d, size_t nbytes, char *err, size_t errlen) {
  if (!d) return kn_errf(err, errlen, "kn_buf_alloc: no device"), NULL;
  kn_buf *b = calloc(1, sizeof *b);
  if (!b) return kn_errf(err, errlen, "out of memory"), NULL;
  b->dev = d;
  b->nbytes = nbytes;
  if (d->ops->buf_alloc(d, b, nbytes, err, errlen)) {
    free(b);
    return NULL;
  }
  return b;
}

kn_buf *kn_buf_wrap_host(kn_device *d, void *ptr, size_t nbytes) {
  if (!d || !ptr || !d->ops->buf_wrap_host) return NULL;
  kn_buf *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  b->dev = d;
  b->nbytes = nbytes;
  b->borrowed = true;
  if (d->ops->buf_wrap_host(d, b, ptr, nbytes)) {
    free(b);
    return NULL;
  }
  return b;
}

void kn_buf_free(kn_buf *b) {
  if (!b) return;
  if (b->dev && b->dev->ops->buf_free) b->dev->ops->buf_free(b);
  free(b);
}

static bool in_range(const kn_buf *b, size_t off, size_t n) { return b && off <= b->nbytes && n <= b->nbytes - off; }

int kn_buf_copyin(kn_buf *b, size_t off, const void *src, size_t n) {
  if (!in_range(b, off, n) || (n && !src)) return -1;
  return n ? b->dev->ops->copyin(b, off, src, n) : 0;
}

int kn_buf_copyout(const kn_buf *b, size_t off, void *dst, size_t n) {
  if (!in_range(b, off, n) || (n && !dst)) return -1;
  return n ? b->dev->ops->copyout(b, off, dst, n) : 0;
}

kn_program *kn_program_load(kn_device *d, const char *entry, const void *obj, size_t n, char *err, size_t errlen) {
  if (!d || !entry || !*entry) return kn_errf(err, errlen, "kn_program_load: no device or entry name"), NULL;
  if (strlen(entry) >= sizeof((kn_program *)0)->entry)
    return kn_errf(err, errlen, "program entry name '%.40s...' is too long", entry), NULL;
  kn_program *p = calloc(1, sizeof *p);
  if (!p) return kn_errf(err, errlen, "out of memory"), NULL;
  p->dev = d;
  snprintf(p->entry, sizeof p->entry, "%s", entry);
  if (d->ops->program_load(d, p, obj, n, err, errlen)) {
    free(p);
    return NULL;
  }
  return p;
}

void kn_program_free(kn_program *p) {
  if (!p) return;
  if (p->dev->ops->program_free) p->dev->ops->program_free(p);
  free(p);
}

int kn_program_launch(kn_program *p, kn_buf **bufs, int nbufs, const int64_t *vars, int nvars,
                      const int64_t global[3], const int64_t local[3], char *err, size_t errlen) {
  if (!p) return kn_errf(err, errlen, "launch: no program");
  if (nbufs < 0 || (nbufs && !bufs)) return kn_errf(err, errlen, "launch %s: bad buffer list (%d)", p->entry, nbufs);
  if (nvars < 0 || (nvars && !vars)) return kn_errf(err, errlen, "launch %s: bad variable list (%d)", p->entry, nvars);
  for (int i = 0; i < nbufs; i++) {
    if (!bufs[i]) return kn_errf(err, errlen, "launch %s: buffer %d is NULL", p->entry, i);
    if (bufs[i]->dev != p->dev)
      return kn_errf(err, errlen, "launch %s: buffer %d belongs to device %s, the program to %s", p->entry, i,
                  kn_device_name(bufs[i]->dev), kn_device_name(p->dev));
  }
  int64_t g[3] = {1, 1, 1}, l[3] = {1, 1, 1};
  for (int i = 0; i < 3; i++) {
    if (global) g[i] = global[i];
    if (local) l[i] = local[i];
    if (g[i] < 0 || l[i] < 0)
      return kn_errf(err, errlen, "launch %s: negative size (global [%lld,%lld,%lld])", p->entry,
                  (long long)(global ? global[0] : 1), (long long)(global ? global[1] : 1),
                  (long long)(global ? global[2] : 1));
  }
  if (__atomic_load_n(&p->dev->stopping, __ATOMIC_ACQUIRE))
    return kn_errf(err, errlen, "launch %s: the device is stopping (kn_device_stop)", p->entry);
  if (!g[0] || !g[1] || !g[2]) return 0; /* an empty grid runs nothing */
  return p->dev->ops->launch(p, bufs, nbufs, vars, nvars, g, l, err, errlen);
}

int kn_device_sync(kn_device *d) { return d && d->ops->sync ? d->ops->sync(d) : 0; }

void kn_device_stop(kn_device *d, bool on) {
  if (!d) return;
  __atomic_store_n(&d->stopping, on, __ATOMIC_RELEASE);
  if (d->ops->stop) d->ops->stop(d, on);
}

static const char *const counter_classes[KN_COUNTER_CLASSES] = {"salu", "valu", "smem", "vmem", "lds", "branch",
                                                                 "other"};
const char *kn_counter_class_name(int cls) { return cls >= 0 && cls < KN_COUNTER_CLASSES ? counter_classes[cls] : "?"; }

int kn_device_counters(kn_device *d, kn_kernel_counters *out, int max) {
  if (!d || !d->ops->counters || (out && max <= 0)) return 0;
  return d->ops->counters(d, out, max);
}

void kn_device_counters_reset(kn_device *d) {
  if (d && d->ops->counters_reset) d->ops->counters_reset(d);
}
