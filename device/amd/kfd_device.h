/* Private to device/amd/: the AMD kn_device behind device.h, shared by its two files: kfd_device.c (open, memory,
 * copies, sync, counters) and kfd_launch.c (code objects and kernel launches). */
#ifndef KN_AMD_KFD_DEVICE_H
#define KN_AMD_KFD_DEVICE_H

#include <pthread.h>

#include "../backend.h"
#include "kfd.h"

typedef struct {
  kn_amd_transport *t;
  bool own_transport;       /* the emulator: destroyed with the device */
  kn_kfd k;
  kn_kfd_queue q;
  kn_kfd_mem kernargs;      /* a ring of kernel-argument blocks in GTT, reused once the queue is idle */
  uint64_t kernarg_used;
  uint64_t allocated;       /* bytes of buffers and programs, for devices that cannot report free VRAM */
  pthread_mutex_t lock;     /* one submitter at a time */
  char lost[700];           /* a fault could not be recovered from: every later call fails with this */
} kn_amd_dev;

/* After a fault was reported to a caller (a launch, sync or copy that returned it): a fresh queue in place of the
 * faulted one, so the device serves the next launch. Called with a->lock held; a no-op unless the queue faulted. */
void kn_amd_recover(kn_amd_dev *a);

int kn_amd_program_load(kn_device *d, kn_program *p, const void *obj, size_t n, char *err, size_t errlen);
void kn_amd_program_free(kn_program *p);
int kn_amd_launch(kn_program *p, kn_buf **bufs, int nbufs, const int64_t *vars, int nvars, const int64_t global[3],
                  const int64_t local[3], char *err, size_t errlen);

#endif
