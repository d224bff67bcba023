/* Environment knobs: integer env vars with a clear message for bad values, the DEBUG level, a monotonic clock. */
#include "env.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
