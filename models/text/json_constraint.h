/* models/text/json_constraint.h: an incremental JSON (RFC 8259) validator that takes one byte at a time.
 * It answers "can this prefix still become valid JSON?" and "is it a complete JSON text?", so a sampler can mask
 * tokens whose bytes would break a tool call's arguments, and the tool-call parser can follow a call's structure. */
#ifndef KN_JSON_CONSTRAINT_H
#define KN_JSON_CONSTRAINT_H

#include <stddef.h>
#include <stdint.h>

/* Deeper nesting is rejected (the state is a fixed-size value, cheap to copy per candidate token). */
#define KN_JSONC_MAX_DEPTH 128

enum {
    KN_JSONC_OBJECT_ONLY = 1u << 0, /* the top-level value must be an object (tool arguments, json_object mode) */
};

/* Coarse position, for callers that follow the structure (kn_jsonc_where). */
typedef enum kn_jsonc_where {
    KN_JSONC_AT_VALUE,    /* a value may start here (after ':', ',' in an array, '[', or at the top) */
    KN_JSONC_AT_KEY,      /* a key or '}' may come (after '{' or ',' in an object) */
    KN_JSONC_IN_KEY,      /* inside a key string (the opening quote included) */
    KN_JSONC_AFTER_KEY,   /* the key is closed, ':' is next */
    KN_JSONC_IN_STRING,   /* inside a string value (the opening quote included) */
    KN_JSONC_IN_NUMBER,
    KN_JSONC_IN_LITERAL,  /* true / false / null, not finished */
    KN_JSONC_AFTER_VALUE, /* a value ended: ',' or a closing bracket (or, at the top, only whitespace) follows */
    KN_JSONC_DONE,        /* the top-level value is closed */
} kn_jsonc_where;

/* Plain value: copy it with '=' to try bytes without changing the original. */
typedef struct kn_jsonc {
    uint8_t state;     /* private state code */
    uint8_t flags;     /* KN_JSONC_* */
    uint8_t need;      /* UTF-8 continuation bytes or \u hex digits still expected */
    uint8_t lo, hi;    /* allowed range of the next UTF-8 continuation byte */
    uint8_t lit;       /* literal being matched (0 true, 1 false, 2 null) */
    uint8_t lit_pos;
    uint8_t in_key;    /* the current string is an object key */
    uint16_t depth;    /* open containers */
    uint8_t is_obj[KN_JSONC_MAX_DEPTH / 8]; /* one bit per level: object (1) or array (0) */
} kn_jsonc;

void kn_jsonc_init(kn_jsonc *j, unsigned flags);

/* Push one byte. Returns 1 when the prefix stays valid; 0 when this byte makes it invalid (the state is then left
 * as it was before the byte, so the caller may try another). */
int kn_jsonc_push(kn_jsonc *j, unsigned char c);

/* Push n bytes; returns how many were accepted before the first rejected one (n when all were). The state holds
 * the accepted prefix. */
size_t kn_jsonc_push_bytes(kn_jsonc *j, const void *bytes, size_t n);

/* Would all n bytes be accepted after *j? (*j is not changed; the token-mask test.) */
int kn_jsonc_accepts(const kn_jsonc *j, const void *bytes, size_t n);

/* 1 when the bytes so far form a complete JSON text (a top-level number counts although it could go on). */
int kn_jsonc_complete(const kn_jsonc *j);

/* 1 when the top-level value is closed for good: only whitespace may follow (a number is never closed for good). */
int kn_jsonc_done(const kn_jsonc *j);

kn_jsonc_where kn_jsonc_where_at(const kn_jsonc *j);
int kn_jsonc_depth(const kn_jsonc *j);

/* Validate a whole buffer: 1 when it is exactly one complete JSON text (surrounding whitespace allowed). */
int kn_json_valid(const void *bytes, size_t n, unsigned flags);

#endif
