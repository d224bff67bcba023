/* The AMD device (DEVICE=AMD, DEVICE=AMD:EMU): one KFD GPU with one AQL compute queue. Buffers are host-visible
 * VRAM at GPU VA == CPU VA, so copies in and out are CPU copies through the BAR mapping once the queue is idle
 * (the GPU never sees a half-written buffer, the host never reads one a kernel is still writing). DEVICE=AMD runs
 * on the OS transport; DEVICE=AMD:EMU runs the same code on the emulated /dev/kfd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/env.h"
#include "kfd_device.h"
#include "kfd_emu.h"

#define RING_BYTES (256u << 10)  /* 4096 packets */
#define KERNARG_BYTES (4u << 20)

_Static_assert(KN_RDNA3_NCLASS == KN_COUNTER_CLASSES, "device.h's counter classes are the compute unit's");

static kn_amd_dev *dev_of(const kn_device *d) { return d->priv; }

static int amd_mem(const kn_device *d, uint64_t *total, uint64_t *avail) {
  kn_amd_dev *a = dev_of(d);
  *total = a->k.topo.vram_size;
  if (kn_kfd_available(&a->k, avail)) *avail = *total > a->allocated ? *total - a->allocated : 0;
  return 0;
}

static int amd_buf_alloc(kn_device *d, kn_buf *b, size_t nbytes, char *err, size_t errlen) {
  kn_amd_dev *a = dev_of(d);
  kn_kfd_mem *m = calloc(1, sizeof *m);
  if (!m) return kn_errf(err, errlen, "out of memory");
  pthread_mutex_lock(&a->lock);
  int rc = kn_kfd_alloc(&a->k, nbytes, KN_KFD_VRAM, m, err, errlen);
  if (!rc) a->allocated += m->size;
  pthread_mutex_unlock(&a->lock);
  if (rc) return free(m), -1;
  b->ptr = NULL; /* the CPU view is reached through copyin/copyout, which order it against the queue */
  b->va = m->va;
  b->priv = m;
  return 0;
}

static void amd_buf_free(kn_buf *b) {
  kn_amd_dev *a = dev_of(b->dev);
  kn_kfd_mem *m = b->priv;
  if (!m) return;
  char err[256];
  pthread_mutex_lock(&a->lock);
  kn_kfd_queue_idle(&a->q, err, sizeof err); /* a kernel in flight may still use it; a fault is reported later */
  a->allocated -= m->size;
  kn_kfd_free(&a->k, m);
  pthread_mutex_unlock(&a->lock);
  free(m);
}

/* A fault ends the queue: KFD stops it and signals the fault events, which stay signalled. The fault has been
 * reported (the caller returns it), so the faulted queue is destroyed and a fresh one created; buffers and programs
 * stay where they are. What the faulting step computed is lost: its caller fails it and runs the next one. On real
 * hardware a VM fault may also evict the process's other queues (unverified: no GPU here); then the new queue's
 * first wait reports the queue as stuck and the device is lost. */
void kn_amd_recover(kn_amd_dev *a) {
  if (!a->q.faulted || *a->lost) return;
  char fault[640], err[256] = "";
  snprintf(fault, sizeof fault, "%s", a->q.fault);
  kn_kfd_queue_destroy(&a->q);
  a->kernarg_used = 0;
  if (kn_kfd_reset_faults(&a->k, err, sizeof err) || kn_kfd_queue_create(&a->k, &a->q, RING_BYTES, err, sizeof err))
    snprintf(a->lost, sizeof a->lost, "the AMD device is lost: no fresh queue after a fault (%s): %.300s", err, fault);
  if (kn_debug() >= 1) fprintf(stderr, "AMD: %s\n", *a->lost ? a->lost : "a fresh queue after the fault");
}

/* Wait until the queue is idle; a fault it reports is returned and recovered from. */
static int idle(kn_amd_dev *a, char *err, size_t errlen) {
  if (*a->lost) return kn_errf(err, errlen, "%s", a->lost);
  int rc = kn_kfd_queue_idle(&a->q, err, errlen);
  if (rc) kn_amd_recover(a);
  return rc;
}

static int amd_copyin(kn_buf *b, size_t off, const void *src, size_t n) {
  kn_amd_dev *a = dev_of(b->dev);
  kn_kfd_mem *m = b->priv;
  char err[256];
  pthread_mutex_lock(&a->lock);
  int rc = idle(a, err, sizeof err);
  if (!rc) memcpy((uint8_t *)m->cpu + off, src, n);
  pthread_mutex_unlock(&a->lock);
  return rc;
}

static int amd_copyout(const kn_buf *b, size_t off, void *dst, size_t n) {
  kn_amd_dev *a = dev_of(b->dev);
  const kn_kfd_mem *m = b->priv;
  char err[256];
  pthread_mutex_lock(&a->lock);
  int rc = idle(a, err, sizeof err);
  if (!rc) memcpy(dst, (const uint8_t *)m->cpu + off, n);
  pthread_mutex_unlock(&a->lock);
  return rc;
}

static int amd_sync(kn_device *d) {
  kn_amd_dev *a = dev_of(d);
  char err[700];
  pthread_mutex_lock(&a->lock);
  int rc = idle(a, err, sizeof err);
  pthread_mutex_unlock(&a->lock);
  if (rc && kn_debug() >= 1) fprintf(stderr, "%s: %s\n", d->name, err);
  return rc;
}

static int amd_counters(kn_device *d, kn_kernel_counters *out, int max) {
  kn_amd_dev *a = dev_of(d);
  if (!a->t->counters) return 0;
  int total = a->t->counters(a->t, NULL, 0);
  if (!out) return total;
  kn_amd_counters *c = calloc((size_t)(total ? total : 1), sizeof *c);
  if (!c) return 0;
  int n = a->t->counters(a->t, c, total < max ? total : max);
  for (int i = 0; i < n; i++) {
    kn_kernel_counters *o = &out[i];
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", c[i].name);
    o->launches = c[i].launches;
    for (int j = 0; j < KN_COUNTER_CLASSES; j++) o->insts[j] = c[i].stats.insts[j];
    o->global_read = c[i].stats.global_read, o->global_written = c[i].stats.global_written;
    o->waves = c[i].stats.waves, o->workgroups = c[i].stats.workgroups;
    o->read_distinct = c[i].stats.read_distinct, o->top_distinct = c[i].stats.top_distinct;
    o->top_fetched = c[i].stats.top_fetched;
    o->second_distinct = c[i].stats.second_distinct, o->second_fetched = c[i].stats.second_fetched;
  }
  free(c);
  return n;
}

static void amd_counters_reset(kn_device *d) {
  kn_amd_dev *a = dev_of(d);
  if (a->t->counters_reset) a->t->counters_reset(a->t);
}

static void amd_close(kn_device *d) {
  kn_amd_dev *a = dev_of(d);
  if (!a) return;
  char err[256];
  if (a->q.k) kn_kfd_queue_idle(&a->q, err, sizeof err);
  kn_kfd_free(&a->k, &a->kernargs);
  kn_kfd_queue_destroy(&a->q);
  if (a->k.t) kn_kfd_close(&a->k);
  if (a->own_transport) a->t->destroy(a->t);
  pthread_mutex_destroy(&a->lock);
  free(a);
  d->priv = NULL;
}

static void amd_stop(kn_device *d, bool on) {
  kn_amd_dev *a = dev_of(d);
  if (a->t->stop) a->t->stop(a->t, on); /* not under a->lock: a launch holds it while the emulator runs */
}

static const kn_device_ops amd_ops = {
    .close = amd_close, .mem = amd_mem, .buf_alloc = amd_buf_alloc, .buf_free = amd_buf_free,
    .copyin = amd_copyin, .copyout = amd_copyout, .program_load = kn_amd_program_load,
    .program_free = kn_amd_program_free, .launch = kn_amd_launch, .sync = amd_sync, .counters = amd_counters,
    .counters_reset = amd_counters_reset, .stop = amd_stop,
};

/* AMD_ARCH names the code generation target; unset, it is the GPU's own. */
static void amd_target(kn_target *t, const kn_kfd_topology *topo) {
  memset(t, 0, sizeof *t);
  t->kind = KN_TARGET_AMDGPU;
  snprintf(t->triple, sizeof t->triple, "amdgcn-amd-amdhsa");
  const char *arch = getenv("AMD_ARCH");
  snprintf(t->cpu, sizeof t->cpu, "%s", arch && *arch ? arch : topo->arch);
  t->vector_bytes = 16; /* global_load_b128 */
  t->ncores = (int)topo->cu_count;
}

static int open_on(kn_device *d, kn_amd_transport *t, bool own, char *err, size_t errlen) {
  kn_amd_dev *a = calloc(1, sizeof *a);
  if (!a) {
    if (own) t->destroy(t);
    return kn_errf(err, errlen, "out of memory");
  }
  a->t = t, a->own_transport = own;
  pthread_mutex_init(&a->lock, NULL);
  d->priv = a;
  d->ops = &amd_ops;
  if (kn_kfd_open(&a->k, t, err, errlen) || kn_kfd_queue_create(&a->k, &a->q, RING_BYTES, err, errlen) ||
      kn_kfd_alloc(&a->k, KERNARG_BYTES, KN_KFD_GTT, &a->kernargs, err, errlen)) {
    amd_close(d);
    return -1;
  }
  amd_target(&d->target, &a->k.topo);
  if (kn_debug() >= 1)
    fprintf(stderr, "device %s: %s (KFD %u.%u, gpu_id %u), %u CUs, %.1f GiB VRAM, codegen for %s\n", d->name,
            a->k.topo.arch, a->k.ver_major, a->k.ver_minor, a->k.topo.gpu_id, a->k.topo.cu_count,
            a->k.topo.vram_size / 1073741824.0, d->target.cpu);
  return 0;
}

int kn_amd_open(kn_device *d, char *err, size_t errlen) {
  if (access("/dev/kfd", F_OK))
    return kn_errf(err, errlen, "no AMD device: /dev/kfd is missing (is the amdgpu driver loaded? DEVICE=AMD:EMU "
                   "runs on the emulated gfx1100)");
  if (access("/dev/kfd", R_OK | W_OK))
    return kn_errf(err, errlen, "no AMD device: /dev/kfd is not accessible (%s; add the user to the render and "
                   "video groups)", strerror(errno));
  return open_on(d, kn_amd_transport_os(), false, err, errlen);
}

/* AMD_EMU_VRAM: the emulated VRAM in GiB (default 20, the RX 7900 XT). */
static int emu_vram(uint64_t *bytes, char *err, size_t errlen) {
  const char *s = getenv("AMD_EMU_VRAM");
  *bytes = KN_KFD_EMU_DEFAULT_VRAM;
  if (!s || !*s) return 0;
  char *end;
  double gib = strtod(s, &end);
  if (end == s || *end || !(gib > 0) || gib > 65536)
    return kn_errf(err, errlen, "AMD_EMU_VRAM=%s: expected the emulated VRAM size in GiB (e.g. 20 or 0.5)", s);
  *bytes = (uint64_t)(gib * 1073741824.0) & ~(uint64_t)4095;
  return 0;
}

/* AMD_EMU_FAULT=NAME[:N]: the Nth dispatch (default the first) of a kernel whose name contains NAME faults (tests of
 * the fault path: kn_kfd_emu_inject_fault). */
static int emu_fault(kn_amd_transport *t, char *err, size_t errlen) {
  const char *s = getenv("AMD_EMU_FAULT");
  if (!s || !*s) return 0;
  char name[96];
  const char *colon = strrchr(s, ':');
  size_t len = colon ? (size_t)(colon - s) : strlen(s);
  long nth = 1;
  char *end = NULL;
  if (colon) nth = strtol(colon + 1, &end, 10);
  if (!len || len >= sizeof name || (colon && (end == colon + 1 || *end || nth < 1 || nth > 1000000000)))
    return kn_errf(err, errlen, "AMD_EMU_FAULT=%s: expected NAME or NAME:N (the Nth dispatch of a kernel whose "
                   "name contains NAME faults)", s);
  memcpy(name, s, len);
  name[len] = 0;
  kn_kfd_emu_inject_fault(t, name, (int)nth);
  return 0;
}

int kn_amd_emu_open(kn_device *d, char *err, size_t errlen) {
  uint64_t vram;
  int threads;
  if (emu_vram(&vram, err, errlen) || kn_threads_from_env(&threads, err, errlen)) return -1;
  kn_amd_transport *t = kn_kfd_emu_create(vram, threads, err, errlen);
  if (!t) return -1;
  if (emu_fault(t, err, errlen)) return t->destroy(t), -1;
  return open_on(d, t, true, err, errlen);
}
