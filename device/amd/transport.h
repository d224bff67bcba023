/* Private to device/amd/: the OS transport the KFD device is built on. Every way the device touches the operating
 * system goes through it: opening /dev/kfd and the render node, ioctls, mmaps, sysfs reads and doorbell writes.
 * kn_amd_transport_os() is the real one (libc); the emulated /dev/kfd (kfd_emu.h) is another, so the same device
 * code drives a real GPU or the emulator. A later transport (PCI "AM", USB bridge) would implement the KFD calls
 * over its own driver instead. */
#ifndef KN_AMD_TRANSPORT_H
#define KN_AMD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rdna3.h"

/* One kernel's accumulated counters, as an emulating transport reports them. */
typedef struct {
  char name[96];
  uint64_t launches;
  kn_rdna3_stats stats;
} kn_amd_counters;

typedef struct kn_amd_transport kn_amd_transport;
struct kn_amd_transport {
  const char *name; /* "kfd", "kfd-emu": for messages */
  int (*open)(kn_amd_transport *t, const char *path, int flags);        /* fd, or -1 with errno */
  int (*close)(kn_amd_transport *t, int fd);
  int (*ioctl)(kn_amd_transport *t, int fd, unsigned long req, void *arg); /* 0, or -1 with errno */
  void *(*mmap)(kn_amd_transport *t, void *addr, size_t len, int prot, int flags, int fd, off_t off);
  int (*munmap)(kn_amd_transport *t, void *addr, size_t len);
  /* Whole text of a sysfs file (NUL-terminated, truncated to cap-1): bytes read, or -1 with errno. */
  long (*read_file)(kn_amd_transport *t, const char *path, char *buf, size_t cap);
  /* Numeric entries of a sysfs directory (the topology's node numbers), ascending: count, or -1 with errno. */
  int (*list_nodes)(kn_amd_transport *t, const char *path, int *nodes, int max);
  /* Store a queue's 64-bit doorbell (a pointer inside the doorbell mapping), after a release fence. */
  void (*doorbell)(kn_amd_transport *t, volatile uint64_t *db, uint64_t value);
  /* Optional (NULL on hardware): a kernel's name for the descriptor at kd_va, for counters and messages. */
  void (*annotate)(kn_amd_transport *t, uint64_t kd_va, const char *name);
  /* Optional: per-kernel counters (count, at most max written), and their reset. */
  int (*counters)(kn_amd_transport *t, kn_amd_counters *out, int max);
  void (*counters_reset)(kn_amd_transport *t);
  /* Optional: text describing the last queue fault (an emulator knows the instruction; hardware only the VA). */
  int (*fault_text)(kn_amd_transport *t, char *buf, size_t cap);
  /* Optional: while on, a running dispatch ends before its next workgroup, as a queue fault (an emulator can; on
   * hardware a kernel runs to its end). Called from any thread, also while another is inside doorbell(). */
  void (*stop)(kn_amd_transport *t, bool on);
  void (*destroy)(kn_amd_transport *t);
  void *ctx;
};

/* The operating system: /dev/kfd, /dev/dri/renderD*, /sys. */
kn_amd_transport *kn_amd_transport_os(void);

#endif
