/* The KFD device's memory and events: /dev/kfd and the GPU's render node opened, the GPU VM acquired, memory
 * allocated at a CPU-reserved virtual address (so GPU VA == CPU VA), mapped to the GPU and mmapped through the
 * render node for CPU access, and the KFD events kiln sleeps on (queue completion, memory faults, hardware
 * exceptions). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "../base/env.h"
#include "kfd.h"
#include "kfd_uapi.h"

#define EVENT_PAGE_BYTES 0x8000

static int io(kn_kfd *k, unsigned long req, void *arg, const char *what, char *err, size_t errlen) {
  if (!k->t->ioctl(k->t, k->kfd_fd, req, arg)) return 0;
  return kn_errf(err, errlen, "KFD %s failed: %s", what, strerror(errno));
}

static int create_event(kn_kfd *k, uint32_t type, uint64_t page, struct kfd_ioctl_create_event_args *a, char *err,
                        size_t errlen) {
  memset(a, 0, sizeof *a);
  a->event_type = type;
  a->event_page_offset = page;
  a->auto_reset = type == KFD_IOC_EVENT_SIGNAL;
  a->node_id = (uint32_t)k->topo.node;
  return io(k, AMDKFD_IOC_CREATE_EVENT, a, "CREATE_EVENT", err, errlen);
}

/* The event page (signal slots the GPU writes), the queue's signal event and the two fault events. */
static int setup_events(kn_kfd *k, char *err, size_t errlen) {
  if (kn_kfd_alloc(k, EVENT_PAGE_BYTES, KN_KFD_GTT, &k->event_page, err, errlen)) return -1;
  struct kfd_ioctl_create_event_args a;
  if (create_event(k, KFD_IOC_EVENT_SIGNAL, k->event_page.handle, &a, err, errlen)) return -1;
  k->events[0] = a.event_id;
  k->signal_trigger = a.event_trigger_data;
  k->signal_mailbox = k->event_page.va + (uint64_t)a.event_slot_index * 8;
  if (create_event(k, KFD_IOC_EVENT_MEMORY, 0, &a, err, errlen)) return -1;
  k->events[1] = a.event_id;
  if (create_event(k, KFD_IOC_EVENT_HW_EXCEPTION, 0, &a, err, errlen)) return -1;
  k->events[2] = a.event_id;
  return 0;
}

int kn_kfd_open(kn_kfd *k, kn_amd_transport *t, char *err, size_t errlen) {
  memset(k, 0, sizeof *k);
  k->t = t;
  k->kfd_fd = k->drm_fd = -1;
  k->kfd_fd = t->open(t, "/dev/kfd", O_RDWR | O_CLOEXEC);
  if (k->kfd_fd < 0) return kn_errf(err, errlen, "no AMD device: /dev/kfd: %s", strerror(errno));
  if (kn_kfd_topology_read(t, 0, &k->topo, err, errlen)) return -1;
  char path[64];
  snprintf(path, sizeof path, "/dev/dri/renderD%u", k->topo.drm_render_minor);
  k->drm_fd = t->open(t, path, O_RDWR | O_CLOEXEC);
  if (k->drm_fd < 0) return kn_errf(err, errlen, "cannot open the GPU's render node %s: %s", path, strerror(errno));
  struct kfd_ioctl_get_version_args ver = {0};
  if (io(k, AMDKFD_IOC_GET_VERSION, &ver, "GET_VERSION", err, errlen)) return -1;
  k->ver_major = ver.major_version, k->ver_minor = ver.minor_version;
  if (k->ver_major != 1 || k->ver_minor < 11)
    return kn_errf(err, errlen, "KFD interface %u.%u is too old (kiln needs 1.11 or newer)", k->ver_major,
                   k->ver_minor);
  struct kfd_ioctl_acquire_vm_args vm = {.drm_fd = (uint32_t)k->drm_fd, .gpu_id = k->topo.gpu_id};
  if (io(k, AMDKFD_IOC_ACQUIRE_VM, &vm, "ACQUIRE_VM", err, errlen)) return -1;
  if (k->ver_minor >= 14) {
    struct kn_kfd_runtime_enable_args re = {0};
    if (io(k, KN_KFD_IOC_RUNTIME_ENABLE, &re, "RUNTIME_ENABLE", err, errlen)) return -1;
  }
  return setup_events(k, err, errlen);
}

void kn_kfd_close(kn_kfd *k) {
  if (k->event_page.size) kn_kfd_free(k, &k->event_page);
  for (int i = 0; i < 3; i++)
    if (k->events[i]) {
      struct kfd_ioctl_destroy_event_args a = {.event_id = k->events[i]};
      k->t->ioctl(k->t, k->kfd_fd, AMDKFD_IOC_DESTROY_EVENT, &a);
    }
  if (k->drm_fd >= 0) k->t->close(k->t, k->drm_fd);
  if (k->kfd_fd >= 0) k->t->close(k->t, k->kfd_fd);
  k->kfd_fd = k->drm_fd = -1;
}

static uint32_t flags_of(kn_kfd_kind kind) {
  uint32_t f = KFD_IOC_ALLOC_MEM_FLAGS_WRITABLE | KFD_IOC_ALLOC_MEM_FLAGS_EXECUTABLE |
               KFD_IOC_ALLOC_MEM_FLAGS_NO_SUBSTITUTE;
  switch (kind) {
  case KN_KFD_VRAM: return f | KFD_IOC_ALLOC_MEM_FLAGS_VRAM | KFD_IOC_ALLOC_MEM_FLAGS_PUBLIC;
  case KN_KFD_VRAM_GPU: return f | KFD_IOC_ALLOC_MEM_FLAGS_VRAM;
  case KN_KFD_GTT:
    return f | KFD_IOC_ALLOC_MEM_FLAGS_GTT | KFD_IOC_ALLOC_MEM_FLAGS_COHERENT | KFD_IOC_ALLOC_MEM_FLAGS_UNCACHED |
           KFD_IOC_ALLOC_MEM_FLAGS_PUBLIC;
  }
  return f;
}

static int alloc_fail(kn_kfd_kind kind, uint64_t size, int e, char *err, size_t errlen) {
  if (e == EINVAL && kind == KN_KFD_VRAM)
    return kn_errf(err, errlen, "cannot allocate host-visible VRAM (%llu bytes): enable Resizable BAR (Above 4G "
                   "decoding) in the firmware setup", (unsigned long long)size);
  if (e == ENOMEM)
    return kn_errf(err, errlen, "out of GPU memory: %llu bytes of %s requested", (unsigned long long)size,
                   kind == KN_KFD_GTT ? "GTT" : "VRAM");
  return kn_errf(err, errlen, "KFD ALLOC_MEMORY_OF_GPU (%llu bytes) failed: %s", (unsigned long long)size,
                 strerror(e));
}

int kn_kfd_alloc(kn_kfd *k, uint64_t size, kn_kfd_kind kind, kn_kfd_mem *m, char *err, size_t errlen) {
  kn_amd_transport *t = k->t;
  memset(m, 0, sizeof *m);
  size = (size + 4095) & ~(uint64_t)4095;
  if (!size) size = 4096;
  /* Reserve the CPU range first: KFD places the buffer at that GPU address, so one pointer serves both sides. */
  void *va = t->mmap(t, NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (va == MAP_FAILED) return kn_errf(err, errlen, "cannot reserve %llu bytes of address space: %s",
                                       (unsigned long long)size, strerror(errno));
  struct kfd_ioctl_alloc_memory_of_gpu_args a = {
      .va_addr = (uint64_t)(uintptr_t)va, .size = size, .gpu_id = k->topo.gpu_id, .flags = flags_of(kind)};
  if (t->ioctl(t, k->kfd_fd, AMDKFD_IOC_ALLOC_MEMORY_OF_GPU, &a)) {
    int e = errno;
    t->munmap(t, va, size);
    return alloc_fail(kind, size, e, err, errlen);
  }
  m->va = a.va_addr, m->size = size, m->handle = a.handle, m->mmap_offset = a.mmap_offset, m->flags = a.flags;
  if (kind != KN_KFD_VRAM_GPU) {
    void *p = t->mmap(t, va, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, k->drm_fd, (off_t)a.mmap_offset);
    if (p != va) {
      kn_errf(err, errlen, "cannot map GPU memory for the CPU (%llu bytes at 0x%llx): %s", (unsigned long long)size,
              (unsigned long long)m->va, strerror(errno));
      goto fail;
    }
    m->cpu = p;
  }
  uint32_t gpu = k->topo.gpu_id;
  struct kfd_ioctl_map_memory_to_gpu_args map = {.handle = m->handle, .device_ids_array_ptr = (uint64_t)(uintptr_t)&gpu,
                                                 .n_devices = 1};
  if (t->ioctl(t, k->kfd_fd, AMDKFD_IOC_MAP_MEMORY_TO_GPU, &map) || map.n_success != 1) {
    kn_errf(err, errlen, "KFD MAP_MEMORY_TO_GPU (%llu bytes at 0x%llx) failed: %s", (unsigned long long)size,
            (unsigned long long)m->va, strerror(errno));
    goto fail;
  }
  return 0;
fail:;
  struct kfd_ioctl_free_memory_of_gpu_args f = {.handle = m->handle};
  t->munmap(t, va, size);
  t->ioctl(t, k->kfd_fd, AMDKFD_IOC_FREE_MEMORY_OF_GPU, &f);
  memset(m, 0, sizeof *m);
  return -1;
}

void kn_kfd_free(kn_kfd *k, kn_kfd_mem *m) {
  if (!m->size) return;
  uint32_t gpu = k->topo.gpu_id;
  struct kfd_ioctl_unmap_memory_from_gpu_args u = {.handle = m->handle, .device_ids_array_ptr = (uint64_t)(uintptr_t)&gpu,
                                                   .n_devices = 1};
  k->t->ioctl(k->t, k->kfd_fd, AMDKFD_IOC_UNMAP_MEMORY_FROM_GPU, &u);
  k->t->munmap(k->t, (void *)(uintptr_t)m->va, m->size);
  struct kfd_ioctl_free_memory_of_gpu_args f = {.handle = m->handle};
  k->t->ioctl(k->t, k->kfd_fd, AMDKFD_IOC_FREE_MEMORY_OF_GPU, &f);
  memset(m, 0, sizeof *m);
}

int kn_kfd_available(kn_kfd *k, uint64_t *avail) {
  struct kfd_ioctl_get_available_memory_args a = {.gpu_id = k->topo.gpu_id};
  if (k->t->ioctl(k->t, k->kfd_fd, AMDKFD_IOC_AVAILABLE_MEMORY, &a)) return -1;
  *avail = a.available;
  return 0;
}

static int fault_message(kn_kfd *k, const struct kfd_event_data *ev, char *err, size_t errlen) {
  char detail[512] = "";
  if (k->t->fault_text) k->t->fault_text(k->t, detail, sizeof detail);
  if (ev[1].memory_exception_data.gpu_id)
    return kn_errf(err, errlen, "GPU memory fault at 0x%llx%s%s%s", (unsigned long long)ev[1].memory_exception_data.va,
                   ev[1].memory_exception_data.failure.NotPresent ? " (page not present)" : "",
                   *detail ? ": " : "", detail);
  return kn_errf(err, errlen, "GPU hardware exception (reset type %u, cause %u)%s%s",
                 ev[2].hw_exception_data.reset_type, ev[2].hw_exception_data.reset_cause, *detail ? ": " : "", detail);
}

static int wait_events(kn_kfd *k, int first, uint32_t timeout_ms, char *err, size_t errlen) {
  struct kfd_event_data ev[3];
  memset(ev, 0, sizeof ev);
  for (int i = 0; i < 3; i++) ev[i].event_id = k->events[i];
  struct kfd_ioctl_wait_events_args a = {.events_ptr = (uint64_t)(uintptr_t)&ev[first], .num_events = 3 - first,
                                         .wait_for_all = 0, .timeout = timeout_ms};
  if (k->t->ioctl(k->t, k->kfd_fd, AMDKFD_IOC_WAIT_EVENTS, &a) && errno != EINTR)
    return kn_errf(err, errlen, "KFD WAIT_EVENTS failed: %s", strerror(errno));
  if (ev[1].memory_exception_data.gpu_id || ev[2].hw_exception_data.gpu_id)
    return fault_message(k, ev, err, errlen);
  return 0;
}

int kn_kfd_wait_event(kn_kfd *k, uint32_t timeout_ms, char *err, size_t errlen) {
  return wait_events(k, 0, timeout_ms, err, errlen);
}

int kn_kfd_check_faults(kn_kfd *k, char *err, size_t errlen) { return wait_events(k, 1, 0, err, errlen); }

int kn_kfd_reset_faults(kn_kfd *k, char *err, size_t errlen) {
  for (int i = 1; i < 3; i++) {
    struct kfd_ioctl_reset_event_args a = {.event_id = k->events[i]};
    if (io(k, AMDKFD_IOC_RESET_EVENT, &a, "RESET_EVENT", err, errlen)) return -1;
  }
  return 0;
}
