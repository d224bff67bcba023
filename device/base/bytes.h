/* The one growable byte buffer of kiln (request and reply bodies, rendered prompts, JSON text, cache entries,
 * disassembly). In device/base/ so every layer uses the same one. Appends never fail loudly: an allocation that
 * fails sets oom, later appends do nothing, and the caller checks oom once where the bytes are used. s stays
 * NUL-terminated after every append (when not oom), so text can be used as a C string. */
#ifndef KN_BYTES_H
#define KN_BYTES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kn_bytes {
  char *s;
  size_t len, cap;
  bool oom; /* sticky: a failed allocation */
} kn_bytes;

void kn_bytes_put(kn_bytes *b, const void *p, size_t n);
void kn_bytes_puts(kn_bytes *b, const char *s);
void kn_bytes_putc(kn_bytes *b, char c);
void kn_bytes_printf(kn_bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kn_bytes_free(kn_bytes *b); /* and empty again */

/* Growable arrays of any element: room for `need` elements of `size` bytes in the array *arr (arr is a T **) whose
 * capacity is *cap, doubling from `first`. 0, or -1 when the allocation failed or the count would overflow an int
 * (then *arr and *cap are unchanged and still valid). */
int kn_grow(void *arr, int *cap, int need, size_t size, int first);

#endif
