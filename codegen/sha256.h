/* Private to codegen/: SHA-256 (FIPS 180-4), used for kernel cache keys and entry checksums. A cryptographic hash
 * because a key collision would silently run the wrong kernel; at kernel-IR sizes its cost is negligible. */
#ifndef KN_SHA256_H
#define KN_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t h[8];
  uint64_t len; /* bytes hashed so far */
  uint8_t buf[64];
  size_t nbuf;
} kn_sha256;

void kn_sha256_init(kn_sha256 *s);
void kn_sha256_update(kn_sha256 *s, const void *data, size_t n);
void kn_sha256_final(kn_sha256 *s, uint8_t out[32]);
void kn_sha256_hex(const uint8_t *digest, size_t nbytes, char *hex); /* 2*nbytes chars + NUL */

#endif
