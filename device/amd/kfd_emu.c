/* The emulated /dev/kfd: the KFD ioctls kiln's device uses (version, VM, memory, queues, events), the render node's
 * mmaps of buffer objects, the doorbell pages, and the GPU address space the compute unit reads through. A buffer
 * object's backing is created when it is first mapped, so allocating 20 GiB of "VRAM" reserves address space only.
 * Arguments are checked as the kernel checks them (gpu_id, alignment, overlap, mapping before use), so a device bug
 * fails here as it would on hardware. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../base/env.h"
#include "../pool.h"
#include "kfd_emu_int.h"

#define UNSIGNALED_SLOT (~0ull)

static int fail(int e) { return errno = e, -1; }

/* ---- buffer objects ---- */

emu_bo *kn_emu_bo_at(kn_kfd_emu *e, uint64_t va, uint64_t n) {
  /* the compute unit's accesses mostly hit the buffer it touched last */
  int last = __atomic_load_n(&e->last_bo, __ATOMIC_RELAXED); /* the compute unit's threads share it */
  if (last < e->nbos) {
    emu_bo *b = &e->bos[last];
    if (va >= b->va && va - b->va < b->size) return n <= b->va + b->size - va ? b : NULL;
  }
  int lo = 0, hi = e->nbos - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    emu_bo *b = &e->bos[mid];
    if (va < b->va) hi = mid - 1;
    else if (va >= b->va + b->size) lo = mid + 1;
    else {
      __atomic_store_n(&e->last_bo, mid, __ATOMIC_RELAXED);
      return n <= b->va + b->size - va ? b : NULL;
    }
  }
  return NULL;
}

void *kn_emu_translate(void *ctx, uint64_t va, size_t n) {
  emu_bo *b = kn_emu_bo_at(ctx, va, n ? n : 1);
  return b && b->gpu_mapped && b->host ? b->host + (va - b->va) : NULL;
}

void *kn_emu_region(void *ctx, uint64_t va, uint64_t *lo, uint64_t *n) {
  emu_bo *b = kn_emu_bo_at(ctx, va, 1);
  if (!b || !b->gpu_mapped || !b->host) return NULL;
  *lo = b->va, *n = b->size;
  return b->host;
}

static emu_bo *bo_by_handle(kn_kfd_emu *e, uint64_t handle) {
  for (int i = 0; i < e->nbos; i++)
    if (e->bos[i].handle == handle) return &e->bos[i];
  return NULL;
}

static bool host_visible(const emu_bo *b) {
  return (b->flags & (KFD_IOC_ALLOC_MEM_FLAGS_GTT | KFD_IOC_ALLOC_MEM_FLAGS_USERPTR)) ||
         (b->flags & KFD_IOC_ALLOC_MEM_FLAGS_PUBLIC);
}

static int alloc_mem(kn_kfd_emu *e, struct kfd_ioctl_alloc_memory_of_gpu_args *a) {
  uint32_t kinds = a->flags & (KFD_IOC_ALLOC_MEM_FLAGS_VRAM | KFD_IOC_ALLOC_MEM_FLAGS_GTT);
  if (a->gpu_id != EMU_GPU_ID || !e->vm) return fail(EINVAL);
  if (kinds != KFD_IOC_ALLOC_MEM_FLAGS_VRAM && kinds != KFD_IOC_ALLOC_MEM_FLAGS_GTT) {
    snprintf(e->fault, sizeof e->fault, "emulated KFD: only VRAM and GTT allocations are emulated (flags 0x%x)",
             a->flags);
    return fail(EINVAL);
  }
  if (!a->size || !a->va_addr || (a->size | a->va_addr) & 4095) return fail(EINVAL);
  if (kn_emu_bo_at(e, a->va_addr, 1) || kn_emu_bo_at(e, a->va_addr + a->size - 1, 1)) return fail(EINVAL);
  for (int i = 0; i < e->nbos; i++) /* a BO strictly inside the new range */
    if (e->bos[i].va >= a->va_addr && e->bos[i].va < a->va_addr + a->size) return fail(EINVAL);
  bool vram = kinds == KFD_IOC_ALLOC_MEM_FLAGS_VRAM;
  if (vram && a->size > e->vram_total - e->vram_used) return fail(ENOMEM);
  if (e->nbos == e->capbos) {
    int cap = e->capbos ? e->capbos * 2 : 64;
    emu_bo *nb = realloc(e->bos, (size_t)cap * sizeof *nb);
    if (!nb) return fail(ENOMEM);
    e->bos = nb, e->capbos = cap;
  }
  int at = 0;
  while (at < e->nbos && e->bos[at].va < a->va_addr) at++;
  memmove(&e->bos[at + 1], &e->bos[at], (size_t)(e->nbos - at) * sizeof *e->bos);
  e->nbos++;
  emu_bo *b = &e->bos[at];
  memset(b, 0, sizeof *b);
  b->handle = ((uint64_t)EMU_GPU_ID << 32) | ++e->next_handle;
  b->va = a->va_addr, b->size = a->size, b->flags = a->flags;
  b->mmap_offset = EMU_BO_MMAP_BASE + (e->next_handle << 32);
  if (vram) e->vram_used += a->size;
  a->handle = b->handle;
  a->mmap_offset = b->mmap_offset;
  return 0;
}

static void drop_backing(emu_bo *b) {
  if (b->own_host && b->host) munmap(b->host, b->size);
  b->host = NULL, b->own_host = false;
}

static int free_mem(kn_kfd_emu *e, struct kfd_ioctl_free_memory_of_gpu_args *a) {
  emu_bo *b = bo_by_handle(e, a->handle);
  if (!b) return fail(EINVAL);
  if (b->flags & KFD_IOC_ALLOC_MEM_FLAGS_VRAM) e->vram_used -= b->size;
  if (a->handle == e->event_page_handle) e->event_page_handle = 0;
  drop_backing(b);
  int i = (int)(b - e->bos);
  memmove(&e->bos[i], &e->bos[i + 1], (size_t)(e->nbos - i - 1) * sizeof *e->bos);
  e->nbos--;
  return 0;
}

/* Backing for the GPU's side of a BO the CPU has not mapped (device-only VRAM): the emulator's own pages. */
static int ensure_backing(emu_bo *b) {
  if (b->host) return 0;
  void *p = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return -1;
  b->host = p, b->own_host = true;
  return 0;
}

static int map_mem(kn_kfd_emu *e, uint64_t handle, uint64_t ids_ptr, uint32_t n, uint32_t *n_success, bool map) {
  emu_bo *b = bo_by_handle(e, handle);
  const uint32_t *ids = (const uint32_t *)(uintptr_t)ids_ptr;
  if (!b || !ids || n != 1 || ids[0] != EMU_GPU_ID) return fail(EINVAL);
  if (map && ensure_backing(b)) return fail(ENOMEM);
  b->gpu_mapped = map;
  *n_success = 1;
  return 0;
}

/* ---- events ---- */

static int create_event(kn_kfd_emu *e, struct kfd_ioctl_create_event_args *a) {
  if (a->event_page_offset && !e->event_page_handle) {
    emu_bo *page = bo_by_handle(e, a->event_page_offset);
    if (!page || !page->host || page->size < EMU_EVENT_SLOTS * 8) return fail(EINVAL);
    e->event_page_handle = page->handle;
  }
  if (a->event_type == KFD_IOC_EVENT_SIGNAL && !e->event_page_handle) return fail(EINVAL);
  for (uint32_t i = 1; i < EMU_MAX_EVENTS; i++) {
    emu_event *ev = &e->events[i];
    if (ev->live) continue;
    memset(ev, 0, sizeof *ev);
    ev->live = true, ev->type = a->event_type, ev->auto_reset = a->auto_reset, ev->slot = i;
    a->event_id = i, a->event_slot_index = i, a->event_trigger_data = i;
    if (a->event_type == KFD_IOC_EVENT_SIGNAL) {
      emu_bo *page = bo_by_handle(e, e->event_page_handle);
      ((uint64_t *)page->host)[i] = UNSIGNALED_SLOT;
      a->event_page_offset = page->handle;
    }
    return 0;
  }
  return fail(ENOMEM);
}

/* The command processor wrote `value` (an event id) to a signal's mailbox: the interrupt KFD turns into an event. */
void kn_emu_signal_slot(kn_kfd_emu *e, uint64_t mailbox, uint64_t value) {
  uint64_t *slot = kn_emu_translate(e, mailbox, 8);
  if (slot) *slot = value;
  if (value < EMU_MAX_EVENTS && e->events[value].live && e->events[value].type == KFD_IOC_EVENT_SIGNAL)
    e->events[value].signaled = true;
}

static bool event_fired(kn_kfd_emu *e, struct kfd_event_data *d) {
  if (d->event_id >= EMU_MAX_EVENTS || !e->events[d->event_id].live) return false;
  emu_event *ev = &e->events[d->event_id];
  if (ev->type == KFD_IOC_EVENT_MEMORY && e->mem_fault) {
    d->memory_exception_data.gpu_id = EMU_GPU_ID;
    d->memory_exception_data.va = e->fault_va;
    d->memory_exception_data.failure.NotPresent = 1;
    return true;
  }
  if (ev->type == KFD_IOC_EVENT_HW_EXCEPTION && e->hw_fault) {
    d->hw_exception_data.gpu_id = EMU_GPU_ID;
    d->hw_exception_data.reset_cause = KFD_HW_EXCEPTION_GPU_HANG;
    return true;
  }
  if (ev->type != KFD_IOC_EVENT_SIGNAL || !ev->signaled) return false;
  if (ev->auto_reset) ev->signaled = false;
  return true;
}

static int wait_events(kn_kfd_emu *e, struct kfd_ioctl_wait_events_args *a) {
  struct kfd_event_data *d = (struct kfd_event_data *)(uintptr_t)a->events_ptr;
  if (!d || !a->num_events || a->num_events > EMU_MAX_EVENTS) return fail(EINVAL);
  uint32_t fired = 0;
  for (uint32_t i = 0; i < a->num_events; i++) fired += event_fired(e, &d[i]);
  if (fired && (!a->wait_for_all || fired == a->num_events)) return a->wait_result = KFD_IOC_WAIT_RESULT_COMPLETE, 0;
  /* Work here runs when a doorbell is written, so nothing can fire during the wait itself: a short sleep stands in
   * for the timeout so a host polling loop does not spin. */
  if (a->timeout) {
    pthread_mutex_unlock(&e->lock);
    nanosleep(&(struct timespec){0, 200000}, NULL);
    pthread_mutex_lock(&e->lock);
  }
  a->wait_result = KFD_IOC_WAIT_RESULT_TIMEOUT;
  return 0;
}

/* ---- queues ---- */


/* The emulated node's queue sizes, as KFD computes them (kfd_queue.c) for a gfx1100 with 84 CUs: 32 wave slots per
 * CU, per-CU save data of 0x60000 VGPR + 0x4000 SGPR + 0x10000 LDS + 0x1000 registers bytes, a control stack of 12
 * bytes per wave + 8 after a 40-byte header, 32 debugger bytes per wave. Written out here rather than shared with the
 * device code, so a wrong formula there fails here as it would in the kernel. */
#define EMU_WAVES (84u * 32)
#define EMU_CTL_STACK ((40u + EMU_WAVES * 12 + 8 + 4095) & ~4095u)
#define EMU_CWSR (84u * (0x60000 + 0x4000 + 0x10000 + 0x1000) + EMU_CTL_STACK)
#define EMU_DEBUG_AREA ((EMU_WAVES * 32 + 63) & ~63u)
#define EMU_EOP_SIZE 4096u

/* KFD's rule for queue memory: a mapped buffer that starts at the address's page and, when size is given, is
 * exactly that large. */
static bool queue_buffer(kn_kfd_emu *e, uint64_t va, uint64_t size, const char *what) {
  emu_bo *b = kn_emu_bo_at(e, va, 1);
  if (b && b->gpu_mapped && b->va == (va & ~4095ull) && (!size || b->size == size)) return true;
  snprintf(e->fault, sizeof e->fault, "emulated KFD: CREATE_QUEUE: the %s at 0x%llx must be a GPU-mapped buffer of "
           "its own%s (found %s%llu bytes at 0x%llx)", what, (unsigned long long)va, size ? " with the exact size" : "",
           b ? "" : "none: ", b ? (unsigned long long)b->size : 0ull, b ? (unsigned long long)b->va : 0ull);
  return false;
}

static int create_queue(kn_kfd_emu *e, struct kfd_ioctl_create_queue_args *a) {
  if (a->gpu_id != EMU_GPU_ID) return fail(EINVAL);
  if (a->queue_type != KFD_IOC_QUEUE_TYPE_COMPUTE_AQL) {
    snprintf(e->fault, sizeof e->fault, "emulated KFD: queue type %u is not emulated (AQL compute only)",
             a->queue_type);
    return fail(EINVAL);
  }
  bool pow2 = a->ring_size >= KFD_MIN_QUEUE_RING_SIZE && !(a->ring_size & (a->ring_size - 1));
  if (!pow2 || a->queue_percentage > KFD_MAX_QUEUE_PERCENTAGE || a->queue_priority > KFD_MAX_QUEUE_PRIORITY)
    return fail(EINVAL);
  if (!queue_buffer(e, a->write_pointer_address, 4096, "write pointer") ||
      !queue_buffer(e, a->read_pointer_address, 4096, "read pointer") ||
      !queue_buffer(e, a->ring_base_address, a->ring_size, "ring") || a->ring_base_address & 4095)
    return fail(EINVAL);
  if (a->eop_buffer_address && (a->eop_buffer_size != EMU_EOP_SIZE ||
                                !queue_buffer(e, a->eop_buffer_address, EMU_EOP_SIZE, "EOP buffer")))
    return fail(EINVAL);
  if (a->ctl_stack_size != EMU_CTL_STACK || a->ctx_save_restore_size < EMU_CWSR) {
    snprintf(e->fault, sizeof e->fault, "emulated KFD: CREATE_QUEUE: control stack %u bytes (the node's: %u), save "
             "area %u bytes (the node needs %u)", a->ctl_stack_size, EMU_CTL_STACK, a->ctx_save_restore_size,
             EMU_CWSR);
    return fail(EINVAL);
  }
  uint64_t cwsr_total = ((uint64_t)a->ctx_save_restore_size + EMU_DEBUG_AREA + 4095) & ~4095ull;
  if (!queue_buffer(e, a->ctx_save_restore_address, cwsr_total, "context save area")) return fail(EINVAL);
  for (int i = 0; i < EMU_MAX_QUEUES; i++) {
    emu_queue *q = &e->queues[i];
    if (q->live) continue;
    *q = (emu_queue){.live = true, .ring_va = a->ring_base_address, .ring_size = a->ring_size,
                     .rptr_va = a->read_pointer_address, .wptr_va = a->write_pointer_address};
    a->queue_id = (uint32_t)i;
    a->doorbell_offset = EMU_DOORBELL_BASE + (uint64_t)i * 8;
    return 0;
  }
  return fail(ENOSPC);
}

/* ---- the transport ---- */

static int emu_open(kn_amd_transport *t, const char *path, int flags) {
  kn_kfd_emu *e = t->ctx;
  char render[32];
  snprintf(render, sizeof render, "/dev/dri/renderD%d", EMU_RENDER_MINOR);
  if (!strcmp(path, "/dev/kfd")) return e->kfd_open = true, EMU_KFD_FD;
  if (!strcmp(path, render)) return e->drm_open = true, EMU_DRM_FD;
  return fail(ENOENT);
}

static int emu_close(kn_amd_transport *t, int fd) {
  kn_kfd_emu *e = t->ctx;
  if (fd == EMU_KFD_FD) e->kfd_open = false;
  else if (fd == EMU_DRM_FD) e->drm_open = false;
  else return fail(EBADF);
  return 0;
}

static int kfd_ioctl(kn_kfd_emu *e, unsigned long req, void *arg) {
  switch (req) {
  case AMDKFD_IOC_GET_VERSION:
    *(struct kfd_ioctl_get_version_args *)arg = (struct kfd_ioctl_get_version_args){1, 14};
    return 0;
  case AMDKFD_IOC_ACQUIRE_VM: {
    struct kfd_ioctl_acquire_vm_args *a = arg;
    if (a->gpu_id != EMU_GPU_ID || a->drm_fd != EMU_DRM_FD || !e->drm_open) return fail(EINVAL);
    e->vm = true;
    return 0;
  }
  case KN_KFD_IOC_RUNTIME_ENABLE: return 0;
  case AMDKFD_IOC_ALLOC_MEMORY_OF_GPU: return alloc_mem(e, arg);
  case AMDKFD_IOC_FREE_MEMORY_OF_GPU: return free_mem(e, arg);
  case AMDKFD_IOC_MAP_MEMORY_TO_GPU: {
    struct kfd_ioctl_map_memory_to_gpu_args *a = arg;
    return map_mem(e, a->handle, a->device_ids_array_ptr, a->n_devices, &a->n_success, true);
  }
  case AMDKFD_IOC_UNMAP_MEMORY_FROM_GPU: {
    struct kfd_ioctl_unmap_memory_from_gpu_args *a = arg;
    return map_mem(e, a->handle, a->device_ids_array_ptr, a->n_devices, &a->n_success, false);
  }
  case AMDKFD_IOC_AVAILABLE_MEMORY: {
    struct kfd_ioctl_get_available_memory_args *a = arg;
    if (a->gpu_id != EMU_GPU_ID) return fail(EINVAL);
    a->available = e->vram_total - e->vram_used;
    return 0;
  }
  case AMDKFD_IOC_CREATE_EVENT: return create_event(e, arg);
  case AMDKFD_IOC_DESTROY_EVENT: {
    uint32_t id = ((struct kfd_ioctl_destroy_event_args *)arg)->event_id;
    if (id >= EMU_MAX_EVENTS || !e->events[id].live) return fail(EINVAL);
    e->events[id].live = false;
    return 0;
  }
  case AMDKFD_IOC_RESET_EVENT: {
    /* a fault event stays signalled (KFD creates them without auto-reset) until the process resets it */
    uint32_t id = ((struct kfd_ioctl_reset_event_args *)arg)->event_id;
    if (id >= EMU_MAX_EVENTS || !e->events[id].live) return fail(EINVAL);
    emu_event *ev = &e->events[id];
    if (ev->type == KFD_IOC_EVENT_MEMORY) e->mem_fault = false, e->fault_va = 0;
    else if (ev->type == KFD_IOC_EVENT_HW_EXCEPTION) e->hw_fault = false;
    else ev->signaled = false;
    return 0;
  }
  case AMDKFD_IOC_WAIT_EVENTS: return wait_events(e, arg);
  case AMDKFD_IOC_CREATE_QUEUE: return create_queue(e, arg);
  case AMDKFD_IOC_DESTROY_QUEUE: {
    uint32_t id = ((struct kfd_ioctl_destroy_queue_args *)arg)->queue_id;
    if (id >= EMU_MAX_QUEUES || !e->queues[id].live) return fail(EINVAL);
    e->queues[id].live = false;
    return 0;
  }
  }
  snprintf(e->fault, sizeof e->fault, "emulated KFD: ioctl 0x%02lx is not emulated", _IOC_NR(req));
  return fail(ENOTTY);
}

static int emu_ioctl(kn_amd_transport *t, int fd, unsigned long req, void *arg) {
  kn_kfd_emu *e = t->ctx;
  if (fd != EMU_KFD_FD || !e->kfd_open) return fail(fd == EMU_DRM_FD ? ENOTTY : EBADF);
  if (!arg) return fail(EFAULT);
  pthread_mutex_lock(&e->lock);
  int rc = kfd_ioctl(e, req, arg);
  int saved = errno;
  pthread_mutex_unlock(&e->lock);
  errno = saved;
  return rc;
}

/* The render node maps a host-visible BO at its GPU address (the caller's MAP_FIXED reservation). */
static void *map_bo(kn_kfd_emu *e, void *addr, size_t len, off_t off) {
  emu_bo *b = NULL;
  for (int i = 0; i < e->nbos && !b; i++)
    if (e->bos[i].mmap_offset == (uint64_t)off) b = &e->bos[i];
  if (!b || !host_visible(b) || (uint64_t)(uintptr_t)addr != b->va || len > b->size) return errno = EINVAL, MAP_FAILED;
  void *p;
  if (b->own_host) /* already backing the GPU's view: move those pages to the CPU address */
    p = mremap(b->host, b->size, b->size, MREMAP_MAYMOVE | MREMAP_FIXED, addr);
  else if (b->host == addr) p = addr;
  else p = mmap(addr, b->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return MAP_FAILED;
  b->host = p, b->own_host = false;
  return p;
}

static void *emu_mmap(kn_amd_transport *t, void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  kn_kfd_emu *e = t->ctx;
  if (fd == -1) return mmap(addr, len, prot, flags, fd, off);
  pthread_mutex_lock(&e->lock);
  void *p = MAP_FAILED;
  if (fd == EMU_DRM_FD && e->drm_open) p = map_bo(e, addr, len, off);
  else if (fd == EMU_KFD_FD && (uint64_t)off == EMU_DOORBELL_BASE && len == 0x2000 && !addr) p = e->doorbells;
  else errno = fd == EMU_DRM_FD || fd == EMU_KFD_FD ? EINVAL : EBADF;
  int saved = errno;
  pthread_mutex_unlock(&e->lock);
  errno = saved;
  return p;
}

/* Unmapping a BO's CPU view leaves the GPU's: its pages move to the emulator's own mapping. */
static int emu_munmap(kn_amd_transport *t, void *addr, size_t len) {
  kn_kfd_emu *e = t->ctx;
  if (addr == e->doorbells) return 0;
  pthread_mutex_lock(&e->lock);
  emu_bo *b = kn_emu_bo_at(e, (uint64_t)(uintptr_t)addr, 1);
  int rc = 0;
  if (b && b->host == addr && !b->own_host) {
    void *p = mremap(addr, b->size, b->size, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) rc = munmap(addr, len), b->host = NULL;
    else b->host = p, b->own_host = true;
    if (len > b->size) rc = munmap((uint8_t *)addr + b->size, len - b->size);
  } else rc = munmap(addr, len);
  pthread_mutex_unlock(&e->lock);
  return rc;
}

static void emu_doorbell(kn_amd_transport *t, volatile uint64_t *db, uint64_t value) {
  kn_kfd_emu *e = t->ctx;
  pthread_mutex_lock(&e->lock);
  size_t slot = (size_t)((uint8_t *)db - e->doorbells) / 8;
  *db = value;
  if ((uint8_t *)db >= e->doorbells && slot < EMU_MAX_QUEUES && e->queues[slot].live) kn_emu_process_queue(e, (int)slot);
  pthread_mutex_unlock(&e->lock);
}

static int emu_fault_text(kn_amd_transport *t, char *buf, size_t cap) {
  kn_kfd_emu *e = t->ctx;
  pthread_mutex_lock(&e->lock);
  int n = snprintf(buf, cap, "%s", e->fault);
  pthread_mutex_unlock(&e->lock);
  return n;
}

static void emu_destroy(kn_amd_transport *t) {
  kn_kfd_emu *e = t->ctx;
  for (int i = 0; i < e->nbos; i++) drop_backing(&e->bos[i]);
  free(e->bos);
  free(e->names);
  free(e->counters);
  kn_rdna3_cache_free(e->programs);
  kn_pool_free(e->pool);
  munmap(e->doorbells, 0x2000);
  pthread_mutex_destroy(&e->lock);
  free(e);
}

void kn_kfd_emu_inject_fault(kn_amd_transport *t, const char *kernel, int nth) {
  kn_kfd_emu *e = t->ctx;
  pthread_mutex_lock(&e->lock);
  snprintf(e->inject_kernel, sizeof e->inject_kernel, "%s", kernel);
  e->inject_nth = nth > 0 ? nth : 1;
  pthread_mutex_unlock(&e->lock);
}

static void emu_stop(kn_amd_transport *t, bool on) {
  kn_kfd_emu *e = t->ctx;
  __atomic_store_n(&e->stop, on ? 1 : 0, __ATOMIC_RELEASE);
}

kn_amd_transport *kn_kfd_emu_create(uint64_t vram_bytes, int threads, char *err, size_t errlen) {
  kn_kfd_emu *e = calloc(1, sizeof *e);
  if (!e) return kn_errf(err, errlen, "out of memory"), NULL;
  if (threads > 1 && !(e->pool = kn_pool_new(threads, err, errlen))) return free(e), NULL;
  e->doorbells = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (e->doorbells == MAP_FAILED) {
    kn_pool_free(e->pool);
    free(e);
    return kn_errf(err, errlen, "emulated KFD: cannot map doorbell pages"), NULL;
  }
  pthread_mutex_init(&e->lock, NULL);
  e->programs = kn_rdna3_cache_new();
  e->vram_total = vram_bytes;
  e->t = (kn_amd_transport){
      .name = "kfd-emu", .open = emu_open, .close = emu_close, .ioctl = emu_ioctl, .mmap = emu_mmap,
      .munmap = emu_munmap, .read_file = kn_emu_read_file, .list_nodes = kn_emu_list_nodes,
      .doorbell = emu_doorbell, .annotate = kn_emu_annotate, .counters = kn_emu_counters,
      .counters_reset = kn_emu_counters_reset, .fault_text = emu_fault_text, .stop = emu_stop, .destroy = emu_destroy,
      .ctx = e};
  return &e->t;
}
