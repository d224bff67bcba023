/* Programs and launches on the AMD device. A code object is laid out by kiln's loader for the GPU address of its
 * buffer and copied there; its kernel's metadata says how to pack the kernel arguments: global_buffer arguments take
 * the launch's buffers in order (their GPU addresses), by_value arguments its variables in order (4 bytes: int32,
 * 8: int64), hidden arguments the values the HSA ABI gives them (block counts, group sizes) or zero where the
 * feature is unused; a hidden argument kiln cannot provide is an error naming it. The launch is one AQL kernel
 * dispatch: grid = global x local work-items, workgroup = local. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/env.h"
#include "codeobj.h"
#include "kfd_device.h"

typedef struct {
  kn_kfd_mem code;
  kn_codeobj co;
  const kn_codeobj_kernel *kernel;
  uint64_t kd_va;
} amd_prog;

int kn_amd_program_load(kn_device *d, kn_program *p, const void *obj, size_t n, char *err, size_t errlen) {
  kn_amd_dev *a = d->priv;
  amd_prog *pr = calloc(1, sizeof *pr);
  if (!pr) return kn_errf(err, errlen, "out of memory");
  char msg[400];
  /* Lay out once to learn the image size, then again for the address of the memory it gets. */
  if (kn_codeobj_load(obj, n, 0, &pr->co, msg, sizeof msg)) {
    free(pr);
    return kn_errf(err, errlen, "program %s: %s", p->entry, msg);
  }
  size_t size = pr->co.image_size;
  kn_codeobj_free(&pr->co);
  pthread_mutex_lock(&a->lock);
  int rc = kn_kfd_alloc(&a->k, size, KN_KFD_VRAM, &pr->code, msg, sizeof msg);
  if (!rc) a->allocated += pr->code.size;
  pthread_mutex_unlock(&a->lock);
  if (rc) {
    free(pr);
    return kn_errf(err, errlen, "program %s: %s", p->entry, msg);
  }
  p->priv = pr;
  if (kn_codeobj_load(obj, n, pr->code.va, &pr->co, msg, sizeof msg)) {
    kn_amd_program_free(p);
    return kn_errf(err, errlen, "program %s: %s", p->entry, msg);
  }
  if (strcmp(pr->co.arch, d->target.cpu)) {
    kn_errf(err, errlen, "program %s is built for %s, the device runs %s", p->entry, pr->co.arch, d->target.cpu);
    kn_amd_program_free(p);
    return -1;
  }
  pr->kernel = kn_codeobj_find(&pr->co, p->entry);
  if (!pr->kernel) {
    kn_errf(err, errlen, "program has no kernel named %s (%d kernel%s in the object)", p->entry, pr->co.nkernels,
            pr->co.nkernels == 1 ? "" : "s");
    kn_amd_program_free(p);
    return -1;
  }
  /* The copy goes in while the queue is idle: a kernel still running could be reading old code at this address. */
  pthread_mutex_lock(&a->lock);
  rc = *a->lost ? kn_errf(msg, sizeof msg, "%s", a->lost) : kn_kfd_queue_idle(&a->q, msg, sizeof msg);
  if (!rc) memcpy(pr->code.cpu, pr->co.image, pr->co.image_size);
  else kn_amd_recover(a);
  pthread_mutex_unlock(&a->lock);
  if (rc) {
    kn_amd_program_free(p);
    return kn_errf(err, errlen, "program %s: %s", p->entry, msg);
  }
  pr->kd_va = pr->code.va + pr->kernel->kd_offset;
  if (a->t->annotate) a->t->annotate(a->t, pr->kd_va, p->entry);
  return 0;
}

void kn_amd_program_free(kn_program *p) {
  amd_prog *pr = p->priv;
  if (!pr) return;
  kn_amd_dev *a = p->dev->priv;
  char err[256];
  pthread_mutex_lock(&a->lock);
  if (pr->code.size) {
    kn_kfd_queue_idle(&a->q, err, sizeof err);
    a->allocated -= pr->code.size;
    kn_kfd_free(&a->k, &pr->code);
  }
  pthread_mutex_unlock(&a->lock);
  kn_codeobj_free(&pr->co);
  free(pr);
  p->priv = NULL;
}

static void put(uint8_t *ka, const kn_codeobj_arg *arg, uint64_t v) { memcpy(ka + arg->offset, &v, arg->size); }

/* A hidden argument's value; -1 for one that needs a runtime service kiln does not provide. */
static int hidden_value(const char *kind, const int64_t g[3], const int64_t l[3], uint64_t *v) {
  if (!strncmp(kind, "hidden_", 7)) kind += 7;
  static const char *zero[] = {"none", "global_offset_x", "global_offset_y", "global_offset_z", "remainder_x",
                               "remainder_y", "remainder_z", "dynamic_lds_size", "multigrid_sync_arg"};
  for (size_t i = 0; i < sizeof zero / sizeof *zero; i++)
    if (!strcmp(kind, zero[i])) return *v = 0, 0; /* grids are whole workgroups; no dynamic LDS; one device */
  if (!strncmp(kind, "block_count_", 12) && kind[12] >= 'x' && kind[12] <= 'z' && !kind[13])
    return *v = (uint64_t)g[kind[12] - 'x'], 0;
  if (!strncmp(kind, "group_size_", 11) && kind[11] >= 'x' && kind[11] <= 'z' && !kind[12])
    return *v = (uint64_t)l[kind[11] - 'x'], 0;
  if (!strcmp(kind, "grid_dims")) return *v = 3, 0;
  return -1;
}

static int pack_args(kn_program *p, const kn_codeobj_kernel *k, uint8_t *ka, kn_buf **bufs, int nbufs,
                     const int64_t *vars, int nvars, const int64_t g[3], const int64_t l[3], char *err,
                     size_t errlen) {
  int nb = 0, nv = 0;
  memset(ka, 0, k->kernarg_size);
  for (int i = 0; i < k->nargs; i++) {
    const kn_codeobj_arg *arg = &k->args[i];
    if (arg->offset + arg->size > k->kernarg_size || arg->size > 8)
      return kn_errf(err, errlen, "launch %s: argument %d (offset %u, %u bytes) outside the %u-byte kernarg "
                     "segment", p->entry, i, arg->offset, arg->size, k->kernarg_size);
    uint64_t v = 0;
    if (arg->kind == KN_ARG_GLOBAL_BUFFER) {
      if (nb >= nbufs) return kn_errf(err, errlen, "launch %s: the kernel takes more than the %d buffers given",
                                      p->entry, nbufs);
      v = bufs[nb++]->va;
    } else if (arg->kind == KN_ARG_BY_VALUE) {
      if (nv >= nvars) return kn_errf(err, errlen, "launch %s: the kernel takes more than the %d variables given",
                                      p->entry, nvars);
      if (arg->size != 4 && arg->size != 8)
        return kn_errf(err, errlen, "launch %s: by-value argument %d is %u bytes (kiln passes int32 or int64)",
                       p->entry, i, arg->size);
      int64_t x = vars[nv++];
      v = arg->size == 4 ? (uint64_t)(uint32_t)(int32_t)x : (uint64_t)x;
    } else if (hidden_value(arg->hidden, g, l, &v))
      return kn_errf(err, errlen, "launch %s: the kernel asks for hidden argument %s, which kiln does not provide",
                     p->entry, arg->hidden);
    put(ka, arg, v);
  }
  if (nb != nbufs || nv != nvars)
    return kn_errf(err, errlen, "launch %s: the kernel takes %d buffers and %d variables, the launch gave %d and %d",
                   p->entry, nb, nv, nbufs, nvars);
  return 0;
}

static int check_geometry(kn_program *p, const kn_codeobj_kernel *k, const int64_t g[3], const int64_t l[3],
                          char *err, size_t errlen) {
  int64_t threads = l[0] * l[1] * l[2];
  uint32_t max = k->max_flat_workgroup_size ? k->max_flat_workgroup_size : 1024;
  if (threads > max)
    return kn_errf(err, errlen, "launch %s: workgroup of %lld work-items, the kernel allows %u", p->entry,
                   (long long)threads, max);
  for (int i = 0; i < 3; i++)
    if (l[i] > 0xffff || g[i] * l[i] > 0xffffffffll)
      return kn_errf(err, errlen, "launch %s: grid dimension %d (%lld x %lld work-items) exceeds AQL's limits",
                     p->entry, i, (long long)g[i], (long long)l[i]);
  if (k->private_segment_size)
    return kn_errf(err, errlen, "launch %s: the kernel needs %u bytes of scratch per work-item; scratch memory is "
                   "not set up on AMD", p->entry, k->private_segment_size);
  return 0;
}

/* Kernel arguments go in a GTT ring; when it is full the queue is drained and it starts over. */
static uint8_t *kernarg_block(kn_amd_dev *a, uint32_t size, uint32_t align, uint64_t *va, char *err, size_t errlen) {
  if (align < 64) align = 64;
  uint64_t off = (a->kernarg_used + align - 1) & ~(uint64_t)(align - 1);
  if (off + size > a->kernargs.size) {
    if (size > a->kernargs.size) return kn_errf(err, errlen, "kernel arguments of %u bytes do not fit", size), NULL;
    if (kn_kfd_queue_idle(&a->q, err, errlen)) return NULL;
    off = 0;
  }
  a->kernarg_used = off + size;
  *va = a->kernargs.va + off;
  return (uint8_t *)a->kernargs.cpu + off;
}

int kn_amd_launch(kn_program *p, kn_buf **bufs, int nbufs, const int64_t *vars, int nvars, const int64_t global[3],
                  const int64_t local[3], char *err, size_t errlen) {
  kn_amd_dev *a = p->dev->priv;
  amd_prog *pr = p->priv;
  const kn_codeobj_kernel *k = pr->kernel;
  int64_t l[3];
  for (int i = 0; i < 3; i++) l[i] = local[i] ? local[i] : 1;
  if (check_geometry(p, k, global, l, err, errlen)) return -1;
  pthread_mutex_lock(&a->lock);
  if (*a->lost) {
    pthread_mutex_unlock(&a->lock);
    return kn_errf(err, errlen, "launch %s: %s", p->entry, a->lost);
  }
  uint64_t ka_va = 0;
  uint8_t *ka = kernarg_block(a, k->kernarg_size ? k->kernarg_size : 8, k->kernarg_align, &ka_va, err, errlen);
  int rc = -1;
  if (ka && !pack_args(p, k, ka, bufs, nbufs, vars, nvars, global, l, err, errlen)) {
    kn_aql_dispatch pkt = {.setup = 3, .private_segment_size = k->private_segment_size,
                           .group_segment_size = k->group_segment_size, .kernel_object = pr->kd_va,
                           .kernarg_address = ka_va};
    for (int i = 0; i < 3; i++) {
      pkt.workgroup_size[i] = (uint16_t)l[i];
      pkt.grid_size[i] = (uint32_t)(global[i] * l[i]);
    }
    /* A fault is reported at the next launch or wait; on the emulator that is this one. */
    rc = kn_kfd_submit_dispatch(&a->q, &pkt, err, errlen);
    if (!rc && kn_kfd_check_faults(&a->k, a->q.fault, sizeof a->q.fault)) {
      a->q.faulted = true;
      rc = kn_errf(err, errlen, "launch %s: %s", p->entry, a->q.fault);
    }
  }
  if (rc) kn_amd_recover(a); /* the fault is reported now: the next launch gets a fresh queue */
  pthread_mutex_unlock(&a->lock);
  return rc;
}
