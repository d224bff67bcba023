/* Environment knobs and error formatting shared by every layer (DEBUG, THREADS, kn_errf, ...). In device/base/,
 * what every layer shares, so that every folder may include it without breaking the one-way arrows. */
#ifndef KN_ENV_H
#define KN_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Integer value of an environment variable, or def when unset. A value that is not an integer is reported once on
 * stderr (naming the variable) and def is used. */
int64_t kn_getenv_int(const char *name, int64_t def);
/* DEBUG level, read once. */
int kn_debug(void);
/* DEBUG >= level and the kernel (its entry name, e.g. kn_r_8_64_3f2a19c0) matches KILN_KERNEL when that is set: a
 * substring, or a shell pattern when it holds * ? or [. Limits the long outputs of DEBUG 4-7 to chosen kernels. */
bool kn_debug_kernel(int level, const char *name);
/* Format an error message into a caller's buffer (err may be NULL) and return -1, so error paths read
 * `return kn_errf(err, errlen, "tensor %s: ...", name);`. */
int kn_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* THREADS: the threads a device's launch runs on, the caller included (the CPU device's kernels, the emulated GPU's
 * workgroups). Unset: the cores this process may run on (its CPU affinity); anything but 1..KN_MAX_THREADS is an
 * error naming the value. */
enum { KN_MAX_THREADS = 1024 };
int kn_threads_from_env(int *out, char *err, size_t errlen);
/* Monotonic time in seconds. */
double kn_now(void);

#endif
