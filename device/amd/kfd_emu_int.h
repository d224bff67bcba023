/* Private to the emulated /dev/kfd (kfd_emu*.c): its state. Buffer objects are kept sorted by GPU address so the
 * compute unit's address translation is a binary search; every entry point holds `lock`. */
#ifndef KN_AMD_KFD_EMU_INT_H
#define KN_AMD_KFD_EMU_INT_H

#include <pthread.h>
#include <stdbool.h>
#include "kfd_emu.h"
#include "kfd_uapi.h"
#include "rdna3.h"

#define EMU_GPU_ID 0x4a4b      /* what the topology reports and every ioctl must name */
#define EMU_RENDER_MINOR 128
#define EMU_KFD_FD 0x7f4b0      /* descriptors only the emulator hands out */
#define EMU_DRM_FD 0x7f4b1
#define EMU_DOORBELL_BASE 0x7d0000000000ull /* mmap offset of the doorbell pages on the kfd file */
#define EMU_BO_MMAP_BASE 0x10000000000ull   /* mmap offsets of buffer objects on the render node */
#define EMU_MAX_QUEUES 16
#define EMU_MAX_EVENTS 64
#define EMU_EVENT_SLOTS 4096

typedef struct {
  uint64_t handle, va, size, mmap_offset;
  uint32_t flags;
  uint8_t *host;         /* backing store, or NULL until first CPU or GPU mapping */
  bool own_host;         /* backing is the emulator's own mapping (not the client's MAP_FIXED range at va) */
  bool gpu_mapped;
} emu_bo;

typedef struct {
  bool live, faulted;
  uint64_t ring_va, rptr_va, wptr_va;
  uint32_t ring_size;
} emu_queue;

typedef struct {
  bool live, signaled, auto_reset;
  uint32_t type, slot;
} emu_event;

typedef struct {
  uint64_t kd_va;
  char name[96];
} emu_name;

typedef struct {
  kn_amd_transport t;
  pthread_mutex_t lock;
  uint64_t vram_total, vram_used;
  bool kfd_open, drm_open, vm;
  emu_bo *bos;
  int nbos, capbos, last_bo; /* last_bo: where the last lookup hit (any index below nbos is a safe guess) */
  uint64_t next_handle;
  emu_queue queues[EMU_MAX_QUEUES];
  emu_event events[EMU_MAX_EVENTS];
  uint64_t event_page_handle;
  uint8_t *doorbells;    /* the two doorbell pages */
  emu_name *names;
  int nnames, capnames;
  kn_amd_counters *counters;
  int ncounters, capcounters;
  kn_rdna3_cache *programs; /* the compute unit's decoded kernels */
  struct kn_pool *pool;     /* threads that run a dispatch's workgroups (NULL: the doorbell's thread alone) */
  bool track_reads;         /* distinct/fetched read bytes per kernel: on after the first counters reset */
  bool mem_fault, hw_fault; /* reported through the MEMORY / HW_EXCEPTION events until RESET_EVENT clears them */
  uint64_t fault_va;
  char fault[512];
  char inject_kernel[96];   /* kn_kfd_emu_inject_fault: the inject_nth-th dispatch of a kernel whose name contains */
  int inject_nth;
  int stop;                 /* the transport's stop(): read by running dispatches without the lock */           /* this faults (its kernel arguments at an unmapped page); 0: none pending */
} kn_kfd_emu;

/* kfd_emu.c */
emu_bo *kn_emu_bo_at(kn_kfd_emu *e, uint64_t va, uint64_t n);   /* the BO holding [va, va+n), or NULL */
void *kn_emu_translate(void *ctx, uint64_t va, size_t n);         /* GPU-mapped memory only */
void *kn_emu_region(void *ctx, uint64_t va, uint64_t *lo, uint64_t *n); /* the GPU-mapped BO holding va */
void kn_emu_signal_slot(kn_kfd_emu *e, uint64_t mailbox, uint64_t value);
/* kfd_emu_aql.c: run queue qi's packets from its read to its write index */
void kn_emu_process_queue(kn_kfd_emu *e, int qi);
void kn_emu_annotate(kn_amd_transport *t, uint64_t kd_va, const char *name);
int kn_emu_counters(kn_amd_transport *t, kn_amd_counters *out, int max);
void kn_emu_counters_reset(kn_amd_transport *t);
/* kfd_emu_sysfs.c */
long kn_emu_read_file(kn_amd_transport *t, const char *path, char *buf, size_t cap);
int kn_emu_list_nodes(kn_amd_transport *t, const char *path, int *nodes, int max);

#endif
