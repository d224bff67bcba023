/* Private to device/: the table of functions each backend fills, and the structs behind device.h's opaque handles.
 * device.c validates arguments (sizes, offsets, ownership) before calling a backend, so backends can trust them. */
#ifndef KN_BACKEND_H
#define KN_BACKEND_H

#include "device.h"

typedef struct kn_device_ops {
  void (*close)(kn_device *d);
  int (*mem)(const kn_device *d, uint64_t *total, uint64_t *avail);
  int (*buf_alloc)(kn_device *d, kn_buf *b, size_t nbytes, char *err, size_t errlen); /* fills ptr/va/priv */
  int (*buf_wrap_host)(kn_device *d, kn_buf *b, void *ptr, size_t nbytes);           /* NULL: not supported */
  void (*buf_free)(kn_buf *b);
  int (*copyin)(kn_buf *b, size_t off, const void *src, size_t n);
  int (*copyout)(const kn_buf *b, size_t off, void *dst, size_t n);
  int (*program_load)(kn_device *d, kn_program *p, const void *obj, size_t n, char *err, size_t errlen);
  void (*program_free)(kn_program *p);
  int (*launch)(kn_program *p, kn_buf **bufs, int nbufs, const int64_t *vars, int nvars, const int64_t global[3],
                const int64_t local[3], char *err, size_t errlen);
  int (*sync)(kn_device *d);
  int (*counters)(kn_device *d, kn_kernel_counters *out, int max); /* NULL: the device does not count */
  void (*counters_reset)(kn_device *d);
  void (*stop)(kn_device *d, bool on);                             /* NULL: running kernels end on their own */
} kn_device_ops;

struct kn_device {
  const kn_device_ops *ops;
  char name[16];
  kn_target target;
  void *priv;
  bool stopping; /* kn_device_stop: read and written atomically */
};

struct kn_program {
  kn_device *dev;
  char entry[96];
  void *priv;
};

/* Backend constructors: fill d (ops, target, priv) or return -1 with a message. */
int kn_cpu_open(kn_device *d, char *err, size_t errlen);
int kn_amd_open(kn_device *d, char *err, size_t errlen);     /* the GPU behind /dev/kfd (device/amd/kfd_device.c) */
int kn_amd_emu_open(kn_device *d, char *err, size_t errlen); /* the same device code on the emulated /dev/kfd */
/* The CPU target: the host, or the narrower one KILN_CPU names (cpu_target.c). */
int kn_cpu_target(kn_target *t, int threads, char *err, size_t errlen);
/* Is +name in an LLVM feature string? */
bool kn_cpu_has_feature(const char *features, const char *name);

#endif
