/* MessagePack reader for AMDGPU code-object metadata. Objects come from the disk cache, so every length is checked
 * against the buffer before it is used, nesting is bounded, and errors say which metadata field was malformed. */
#include "msgpack.h"

#include <stdio.h>
#include <string.h>

#include "../base/env.h"

enum { MAX_DEPTH = 32 };

void kn_mp_init(kn_mp *r, const void *buf, size_t n, char *err, size_t errlen) {
  r->p = buf;
  r->end = r->p + n;
  r->err = err;
  r->errlen = errlen;
  r->failed = false;
}

static int fail(kn_mp *r, const char *what, const char *why) {
  if (!r->failed) kn_errf(r->err, r->errlen, "metadata %s: %s", what, why);
  r->failed = true;
  return -1;
}

static bool have(const kn_mp *r, size_t k) { return (size_t)(r->end - r->p) >= k; }

/* big-endian unsigned of k bytes */
static int take_be(kn_mp *r, int k, uint64_t *v, const char *what) {
  if (!have(r, (size_t)k)) return fail(r, what, "truncated");
  uint64_t x = 0;
  for (int i = 0; i < k; i++) x = x << 8 | r->p[i];
  r->p += k;
  *v = x;
  return 0;
}

static int take_tag(kn_mp *r, uint8_t *t, const char *what) {
  if (r->failed) return -1;
  if (!have(r, 1)) return fail(r, what, "truncated");
  *t = *r->p++;
  return 0;
}

/* a container header of the given family: fix range base..base+15, 16-bit tag t16, 32-bit tag t32 */
static int container(kn_mp *r, uint32_t *n, uint8_t fixbase, uint8_t t16, uint8_t t32, const char *what,
                     const char *kind) {
  uint8_t t;
  if (take_tag(r, &t, what)) return -1;
  uint64_t v;
  if (t >= fixbase && t <= fixbase + 15) v = t - fixbase;
  else if (t == t16) {
    if (take_be(r, 2, &v, what)) return -1;
  } else if (t == t32) {
    if (take_be(r, 4, &v, what)) return -1;
  } else {
    char why[64];
    snprintf(why, sizeof why, "expected a %s, found tag 0x%02x", kind, t);
    return fail(r, what, why);
  }
  if (v > (uint64_t)(r->end - r->p)) return fail(r, what, "element count larger than the note"); /* ≥1 byte each */
  *n = (uint32_t)v;
  return 0;
}

int kn_mp_map(kn_mp *r, uint32_t *n, const char *what) { return container(r, n, 0x80, 0xde, 0xdf, what, "map"); }
int kn_mp_array(kn_mp *r, uint32_t *n, const char *what) { return container(r, n, 0x90, 0xdc, 0xdd, what, "array"); }

int kn_mp_str(kn_mp *r, const char **s, uint32_t *len, const char *what) {
  uint8_t t;
  if (take_tag(r, &t, what)) return -1;
  uint64_t v;
  if (t >= 0xa0 && t <= 0xbf) v = t - 0xa0;
  else if (t >= 0xd9 && t <= 0xdb) {
    if (take_be(r, 1 << (t - 0xd9), &v, what)) return -1;
  } else {
    return fail(r, what, "expected a string");
  }
  if (!have(r, v)) return fail(r, what, "string runs past the end of the note");
  *s = (const char *)r->p;
  *len = (uint32_t)v;
  r->p += v;
  return 0;
}

int kn_mp_uint(kn_mp *r, uint64_t *v, const char *what) {
  uint8_t t;
  if (take_tag(r, &t, what)) return -1;
  if (t <= 0x7f) {
    *v = t;
    return 0;
  }
  if (t >= 0xcc && t <= 0xcf) return take_be(r, 1 << (t - 0xcc), v, what);
  if (t >= 0xd0 && t <= 0xd3) { /* signed encodings of a value that must be non-negative */
    int k = 1 << (t - 0xd0);
    if (take_be(r, k, v, what)) return -1;
    if (*v >> (8 * k - 1) & 1) return fail(r, what, "negative integer");
    return 0;
  }
  return fail(r, what, "expected a non-negative integer");
}

static int skip_depth(kn_mp *r, const char *what, int depth) {
  if (depth > MAX_DEPTH) return fail(r, what, "nested too deeply");
  uint8_t t;
  if (take_tag(r, &t, what)) return -1;
  uint64_t n = 0, skip = 0;
  if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) return 0;
  if (t >= 0x80 && t <= 0x8f) n = 2 * (uint64_t)(t - 0x80);
  else if (t >= 0x90 && t <= 0x9f) n = t - 0x90;
  else if (t >= 0xa0 && t <= 0xbf) skip = t - 0xa0;
  else if (t >= 0xc4 && t <= 0xc6) { /* bin */
    if (take_be(r, 1 << (t - 0xc4), &skip, what)) return -1;
  } else if (t >= 0xc7 && t <= 0xc9) { /* ext: length then a type byte */
    if (take_be(r, 1 << (t - 0xc7), &skip, what)) return -1;
    skip += 1;
  } else if (t == 0xca) skip = 4;
  else if (t == 0xcb) skip = 8;
  else if (t >= 0xcc && t <= 0xcf) skip = 1u << (t - 0xcc);
  else if (t >= 0xd0 && t <= 0xd3) skip = 1u << (t - 0xd0);
  else if (t >= 0xd4 && t <= 0xd8) skip = 1 + (1u << (t - 0xd4));
  else if (t >= 0xd9 && t <= 0xdb) {
    if (take_be(r, 1 << (t - 0xd9), &skip, what)) return -1;
  } else if (t == 0xdc || t == 0xdd) {
    if (take_be(r, t == 0xdc ? 2 : 4, &n, what)) return -1;
  } else if (t == 0xde || t == 0xdf) {
    if (take_be(r, t == 0xde ? 2 : 4, &n, what)) return -1;
    n *= 2;
  } else {
    return fail(r, what, "reserved MessagePack tag 0xc1");
  }
  if (!have(r, skip)) return fail(r, what, "value runs past the end of the note");
  r->p += skip;
  if (n > (uint64_t)(r->end - r->p)) return fail(r, what, "element count larger than the note");
  for (uint64_t i = 0; i < n; i++)
    if (skip_depth(r, what, depth + 1)) return -1;
  return 0;
}

int kn_mp_skip(kn_mp *r, const char *what) { return skip_depth(r, what, 0); }

bool kn_mp_str_is(const char *s, uint32_t len, const char *want) {
  return strlen(want) == len && !memcmp(s, want, len);
}
