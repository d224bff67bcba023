/* The growable byte buffer: doubling capacity, a NUL kept after the bytes, sticky out-of-memory; and the growth of
 * any other array (kn_grow). */
#include "bytes.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kn_bytes_put(kn_bytes *b, const void *p, size_t n) {
  if (b->oom || n == 0) return;
  if (n > SIZE_MAX / 2 - b->len) return (void)(b->oom = true);
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) return (void)(b->oom = true);
    b->s = s, b->cap = cap;
  }
  memcpy(b->s + b->len, p, n);
  b->len += n;
  b->s[b->len] = 0;
}

void kn_bytes_puts(kn_bytes *b, const char *s) { kn_bytes_put(b, s, strlen(s)); }

void kn_bytes_putc(kn_bytes *b, char c) { kn_bytes_put(b, &c, 1); }

void kn_bytes_printf(kn_bytes *b, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) return kn_bytes_put(b, tmp, (size_t)n);
  char *big = malloc((size_t)n + 1);
  if (!big) return (void)(b->oom = true);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  kn_bytes_put(b, big, (size_t)n);
  free(big);
}

void kn_bytes_free(kn_bytes *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}

int kn_grow(void *arr, int *cap, int need, size_t size, int first) {
  if (need <= *cap) return 0;
  if (need < 0 || size == 0) return -1;
  int64_t c = *cap > 0 ? *cap : first > 0 ? first : 1;
  while (c < need) c *= 2;
  if (c > INT32_MAX) c = need;
  if ((uint64_t)c > SIZE_MAX / size) return -1;
  void *old, *n;
  memcpy(&old, arr, sizeof old); /* arr points at the caller's T *: object pointers share one representation */
  if (!(n = realloc(old, (size_t)c * size))) return -1;
  memcpy(arr, &n, sizeof n);
  *cap = (int)c;
  return 0;
}
