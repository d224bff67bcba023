/* Private to device/amd/: the userspace KFD device, in three concepts. Topology (kfd_topology.c): the GPU node as
 * sysfs describes it. Memory and events (kfd.c): the VM acquired on the render node, GPU memory allocated, mapped
 * to the GPU and mmapped at the same virtual address for the CPU, and KFD events to sleep on. Queue and signals
 * (kfd_queue.c): one AQL compute queue with its doorbell, and amd_signal_t completion signals. All OS access goes
 * through a kn_amd_transport, so the same code runs on /dev/kfd and on the emulated one. */
#ifndef KN_AMD_KFD_H
#define KN_AMD_KFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aql.h"
#include "transport.h"

#define KN_KFD_TOPOLOGY "/sys/devices/virtual/kfd/kfd/topology/nodes"

typedef struct {
  int node;                     /* sysfs node number */
  uint32_t gpu_id;
  uint32_t gfx_target_version;  /* 110000 */
  char arch[16];                /* "gfx1100" */
  uint32_t drm_render_minor;
  uint32_t simd_count, simd_per_cu, max_waves_per_simd, lds_size_in_kb, array_count, simd_arrays_per_engine;
  uint32_t num_xcc, cu_count, wave_count;
  uint64_t vram_size;           /* sum of the node's frame-buffer memory banks */
} kn_kfd_topology;

/* The index-th GPU node (nodes with a nonzero gpu_id, in node order). 0, or -1 naming what is missing. */
int kn_kfd_topology_read(kn_amd_transport *t, int index, kn_kfd_topology *topo, char *err, size_t errlen);
/* Bytes of the context save/restore area KFD expects for a compute queue on this GPU (and its control stack). */
void kn_kfd_cwsr_size(const kn_kfd_topology *topo, uint32_t *ctx_save_bytes, uint32_t *ctl_stack_bytes);

typedef enum {
  KN_KFD_VRAM,      /* device memory, host-visible through the (resizable) BAR */
  KN_KFD_VRAM_GPU,  /* device memory the CPU never touches (queue EOP and save areas) */
  KN_KFD_GTT,       /* host memory the GPU reads uncached: rings, signals, kernel arguments */
} kn_kfd_kind;

typedef struct {
  uint64_t va, size, handle, mmap_offset;
  uint32_t flags;
  void *cpu;        /* the CPU view at va, or NULL for KN_KFD_VRAM_GPU */
} kn_kfd_mem;

typedef struct {
  kn_amd_transport *t;
  int kfd_fd, drm_fd;
  uint32_t ver_major, ver_minor;
  kn_kfd_topology topo;
  kn_kfd_mem event_page;
  uint32_t events[3];           /* the queue's signal event, memory faults, hardware exceptions */
  uint64_t signal_mailbox;      /* where the queue event's slot lives in the event page */
  uint32_t signal_trigger;
} kn_kfd;

int kn_kfd_open(kn_kfd *k, kn_amd_transport *t, char *err, size_t errlen);
void kn_kfd_close(kn_kfd *k);
int kn_kfd_alloc(kn_kfd *k, uint64_t size, kn_kfd_kind kind, kn_kfd_mem *m, char *err, size_t errlen);
void kn_kfd_free(kn_kfd *k, kn_kfd_mem *m);
int kn_kfd_available(kn_kfd *k, uint64_t *avail);
/* Sleep until the queue's event fires or timeout_ms pass: 0; -1 with a message when a fault was reported. */
int kn_kfd_wait_event(kn_kfd *k, uint32_t timeout_ms, char *err, size_t errlen);
/* A fault already reported (no sleep): -1 with the message, else 0. */
int kn_kfd_check_faults(kn_kfd *k, char *err, size_t errlen);
/* Clear the fault events (they stay signalled until reset), once a fault has been reported and dealt with. */
int kn_kfd_reset_faults(kn_kfd *k, char *err, size_t errlen);

typedef struct {
  kn_kfd *k;
  kn_kfd_mem ring, desc, eop, cwsr, signals;
  uint32_t queue_id, nslots;
  uint64_t put;                 /* packets written */
  volatile uint64_t *wptr, *rptr, *doorbell;
  void *doorbell_map;
  uint64_t doorbell_base;
  kn_amd_signal *done;          /* counts packets in flight: +1 at submit, the GPU decrements */
  int nsignals;                 /* signals handed out of the signal page (slot 0 is `done`) */
  bool foreign;                 /* a packet since the last idle completed on another signal */
  bool faulted;
  char fault[640];
} kn_kfd_queue;

int kn_kfd_queue_create(kn_kfd *k, kn_kfd_queue *q, uint32_t ring_bytes, char *err, size_t errlen);
void kn_kfd_queue_destroy(kn_kfd_queue *q);
/* A fresh signal from the queue's signal page with the given value, wired to the queue's KFD event; NULL when the
 * page is used up. Signals live as long as the queue. */
kn_amd_signal *kn_kfd_signal_new(kn_kfd_queue *q, int64_t value);
uint64_t kn_kfd_signal_va(kn_kfd_queue *q, const kn_amd_signal *s);
/* Wait until s->value <= want (sleeping on the KFD event between checks); -1 on a fault or a stuck queue. */
int kn_kfd_signal_wait(kn_kfd_queue *q, const kn_amd_signal *s, int64_t want, char *err, size_t errlen);
/* Submit one packet. Its header goes in last, as a release store; completion defaults to the queue's counter. */
int kn_kfd_submit_dispatch(kn_kfd_queue *q, kn_aql_dispatch *pkt, char *err, size_t errlen);
int kn_kfd_submit_barrier(kn_kfd_queue *q, const uint64_t deps[5], kn_amd_signal *completion, char *err,
                          size_t errlen);
/* Ring the doorbell again (after the host changed a signal a barrier waits on). */
void kn_kfd_queue_kick(kn_kfd_queue *q);
/* Wait until every submitted packet has completed. */
int kn_kfd_queue_idle(kn_kfd_queue *q, char *err, size_t errlen);

#endif
