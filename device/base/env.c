/* Environment knobs: integer env vars with a clear message for bad values, the DEBUG level, a monotonic clock. */
#include "env.h"

#include <errno.h>
#include <sched.h>
#include <unistd.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t kn_getenv_int(const char *name, int64_t def) {
  const char *s = getenv(name);
  if (!s || !*s) return def;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end) {
    fprintf(stderr, "kiln: ignoring %s=%s: not an integer (using %lld)\n", name, s, (long long)def);
    return def;
  }
  return v;
}

int kn_debug(void) {
  static int level = -1;
  if (level < 0) level = (int)kn_getenv_int("DEBUG", 0);
  return level;
}

bool kn_debug_kernel(int level, const char *name) {
  if (kn_debug() < level) return false;
  const char *pat = getenv("KILN_KERNEL");
  if (!pat || !*pat) return true;
  if (!name) return false;
  return strpbrk(pat, "*?[") ? fnmatch(pat, name, 0) == 0 : strstr(name, pat) != NULL;
}

int kn_errf(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

double kn_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int default_threads(void) {
  cpu_set_t set;
  if (!sched_getaffinity(0, sizeof set, &set) && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int kn_threads_from_env(int *out, char *err, size_t errlen) {
  const char *s = getenv("THREADS");
  if (!s || !*s) {
    *out = default_threads();
    return 0;
  }
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < 1 || v > KN_MAX_THREADS)
    return kn_errf(err, errlen, "THREADS=%s: expected a thread count between 1 and %d", s, KN_MAX_THREADS);
  *out = (int)v;
  return 0;
}
