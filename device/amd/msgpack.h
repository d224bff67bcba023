/* Private to device/amd/: a bounds-checked MessagePack reader, enough for the NT_AMDGPU_METADATA note of a code
 * object (maps, arrays, strings, integers; everything else can be skipped). A reader is a cursor over a buffer;
 * the first error sticks, and its message names the field being read (the caller's `what`). */
#ifndef KN_AMD_MSGPACK_H
#define KN_AMD_MSGPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const uint8_t *p, *end;
  char *err;
  size_t errlen;
  bool failed;
} kn_mp;

void kn_mp_init(kn_mp *r, const void *buf, size_t n, char *err, size_t errlen);
/* Each returns 0, or -1 (and marks the reader failed) with a message naming `what`. */
int kn_mp_map(kn_mp *r, uint32_t *n, const char *what);   /* a map header: n key/value pairs follow */
int kn_mp_array(kn_mp *r, uint32_t *n, const char *what); /* an array header: n values follow */
int kn_mp_str(kn_mp *r, const char **s, uint32_t *len, const char *what); /* borrowed, not NUL-terminated */
int kn_mp_uint(kn_mp *r, uint64_t *v, const char *what);  /* a non-negative integer of any width */
int kn_mp_skip(kn_mp *r, const char *what);               /* any one value, nested ones included */
/* s[0, len) equals the C string want */
bool kn_mp_str_is(const char *s, uint32_t len, const char *want);

#endif
