/* The device interface: memory, programs and launches. Backends (CPU now; AMD KFD, emulated AMD later) implement
 * kn_device_ops. Nothing here knows about graphs or kernels' meaning: programs are opaque object code. */
#ifndef KN_DEVICE_H
#define KN_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { KN_TARGET_CPU, KN_TARGET_AMDGPU } kn_target_kind;

/* What codegen needs to know to generate code for a device. */
typedef struct {
  kn_target_kind kind;
  char triple[64];    /* "x86_64-pc-linux-gnu", "amdgcn-amd-amdhsa" */
  char cpu[64];       /* "znver4", "gfx1100" */
  char features[1024];/* LLVM feature string "+avx2,+fma,..." */
  int vector_bytes;   /* widest useful SIMD register in bytes (CPU: 16/32/64) */
  int ncores;         /* CPU threads the device launches on */
} kn_target;

typedef struct kn_device kn_device;
typedef struct kn_program kn_program;

typedef struct kn_buf {
  kn_device *dev;
  void *ptr;       /* host-addressable memory (CPU), or NULL */
  uint64_t va;     /* device virtual address (GPUs) */
  size_t nbytes;
  bool borrowed;   /* wraps memory kiln does not own (an mmapped file): free releases only the struct */
  void *priv;
} kn_buf;

/* Open a device by name ("CPU", "AMD" = the GPU behind /dev/kfd, "AMD:EMU" = the emulated gfx1100). name NULL: $DEVICE, else CPU. On failure NULL and a message. */
kn_device *kn_device_open(const char *name, char *err, size_t errlen);
void kn_device_close(kn_device *d);
const char *kn_device_name(const kn_device *d);
const kn_target *kn_device_target(const kn_device *d);
bool kn_device_host_memory(const kn_device *d); /* it computes in host memory (the CPU) */
int kn_device_threads(const kn_device *d);      /* CPU threads it launches on (0 for a GPU) */
/* Total and free memory the device reports, for memory planning. */
int kn_device_mem(const kn_device *d, uint64_t *total, uint64_t *avail);

kn_buf *kn_buf_alloc(kn_device *d, size_t nbytes, char *err, size_t errlen);
/* Zero-copy wrap of host memory (CPU only; others return NULL and the caller copies in). */
kn_buf *kn_buf_wrap_host(kn_device *d, void *ptr, size_t nbytes);
void kn_buf_free(kn_buf *b);
int kn_buf_copyin(kn_buf *b, size_t off, const void *src, size_t n);
int kn_buf_copyout(const kn_buf *b, size_t off, void *dst, size_t n);

/* Load a relocatable object (ELF) produced by codegen for this device's target, and find `entry` in it. */
kn_program *kn_program_load(kn_device *d, const char *entry, const void *obj, size_t n, char *err, size_t errlen);
void kn_program_free(kn_program *p);
/* Run a program. CPU calling convention: entry(void **bufs, const int64_t *vars, int64_t start, int64_t end) runs
 * work items [start, end) of global[0]; the device splits global[0] over its threads and returns when all are
 * done. GPUs: a grid of global[] workgroups of local[] threads. */
int kn_program_launch(kn_program *p, kn_buf **bufs, int nbufs, const int64_t *vars, int nvars,
                      const int64_t global[3], const int64_t local[3], char *err, size_t errlen);
int kn_device_sync(kn_device *d);
/* Stop the work in flight, from any thread (a server shutting down while its scheduler thread is in a forward
 * pass): while on, every launch fails at once and a device that can end a running kernel early does (the emulated
 * GPU, before its next workgroup; the launch waiting for it then fails, and the device gets a fresh queue). Off
 * again, launches run as before. Devices whose kernels are short (the CPU, a real GPU) only refuse new launches. */
void kn_device_stop(kn_device *d, bool on);

/* A disk store for host code that a device compiles for itself (the emulated GPU's translation of hot kernels,
 * device/amd/rdna3_jit.c), so that later processes load it instead of compiling it again. Device code cannot
 * reach codegen's kernel cache, so the cache offers itself here (codegen/cache.c, on the first kn_compile); until
 * then, and in programs without codegen, kn_object_store() is NULL and the device compiles every time.
 * load: 1 and a malloc'd object when an entry exists for this LLVM IR text and target, else 0. store: keeps the
 * object compiled from ir for t under a readable name (failures are the store's to report). */
typedef struct {
  int (*load)(const char *ir, const kn_target *t, uint8_t **obj, size_t *n);
  void (*store)(const char *ir, const kn_target *t, const char *name, const uint8_t *obj, size_t n);
} kn_object_store_ops;
void kn_object_store_set(const kn_object_store_ops *s);
const kn_object_store_ops *kn_object_store(void);

/* Per-kernel counters of a device that counts (the emulated AMD GPU, DEVICE=AMD:EMU): instructions issued by class,
 * global memory bytes read and written, waves and workgroups, summed over the kernel's launches. */
#define KN_COUNTER_CLASSES 7
typedef struct {
  char name[96];
  uint64_t launches;
  uint64_t insts[KN_COUNTER_CLASSES]; /* per wave, by class: kn_counter_class_name(i) */
  uint64_t global_read, global_written;
  uint64_t waves, workgroups;
  /* counted after the first kn_device_counters_reset: distinct bytes read (each address once per launch: the least
   * the kernel could read), and of the buffer each launch read most distinct bytes of (a matmul's weight) its
   * distinct bytes and the bytes fetched (lanes of one instruction in one wave reading the same bytes fetch them
   * once; another wave reading them again fetches them again); the same of the buffer each launch read second most of (the second weight of a kernel that fuses two
   * matmuls, e.g. gate and up) */
  uint64_t read_distinct, top_distinct, top_fetched, second_distinct, second_fetched;
} kn_kernel_counters;
/* "salu", "valu", "smem", "vmem", "lds", "branch", "other" */
const char *kn_counter_class_name(int cls);
/* Kernels counted since open (or the last reset): the number written to out (at most max), or the total count
 * when out is NULL; 0 on devices that do not count. */
int kn_device_counters(kn_device *d, kn_kernel_counters *out, int max);
void kn_device_counters_reset(kn_device *d);

#endif
