/* models/text/json_schema.h: JSON Schema enforced byte by byte. A schema compiles to a table of nodes; a validator state
 * (kn_jsv) follows output one byte at a time and rejects any byte after which no valid document is possible, so a
 * sampler can mask tokens and the output always validates. Supported: type (one or a list), properties, required,
 * additionalProperties (false / true / a schema), items, minItems, maxItems, uniqueItems, enum, const, anyOf, minLength,
 * maxLength (and more: docs/api.md); annotations (title, description, default, examples, $schema, $id, $comment, ...) are ignored; any other
 * keyword is an error that names it. Whitespace between tokens is bounded (spaces and one newline, at most 2 bytes in a row). */
#ifndef KN_JSON_SCHEMA_H
#define KN_JSON_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define KN_JSV_DEPTH 32  /* open values per thread: deeper "any" values are refused (schemas are checked to fit) */
#define KN_JSV_THREADS 8 /* anyOf branches followed at once; more are dropped (still valid, just fewer choices) */

typedef struct kn_jschema kn_jschema;

enum {
  KN_JSCHEMA_ROOT_OBJECT = 1u << 0, /* the document must be an object (tool arguments) */
};

/* Compile a schema (a cJSON object or boolean true). NULL with a message naming the keyword and where it is. */
kn_jschema *kn_jschema_compile(const cJSON *schema, unsigned flags, char *err, size_t errlen);
/* The schema {"type": "object"}: any object (static, never freed). */
const kn_jschema *kn_jschema_any_object(void);
void kn_jschema_free(kn_jschema *s);

/* One path through the schema: a stack of open values. */
typedef struct kn_jsv_frame {
  uint16_t node;
  uint8_t kind, sub, need, lo, hi, aux;
  uint32_t pos, count;
  uint64_t seen, cand;
} kn_jsv_frame;

/* Items a uniqueItems array of strings or numbers remembers (by a 64-bit hash of each value): it holds at most this
 * many items. Such items are scalars, so a thread has at most one such array open. */
#define KN_JSV_UNIQUE 32

typedef struct kn_jsv_thread {
  uint8_t depth, ws, nu;
  kn_jsv_frame f[KN_JSV_DEPTH];
  uint64_t uh[KN_JSV_UNIQUE]; /* the open uniqueItems array's items so far (nu of them): their values' hashes */
} kn_jsv_thread;

/* The validator state: the threads still alive (one unless an anyOf is open). Copy it with kn_jsv_copy (cheap: only
 * the live part), not with '='. */
typedef struct kn_jsv {
  const kn_jschema *s;
  uint8_t n;
  kn_jsv_thread t[KN_JSV_THREADS];
} kn_jsv;

void kn_jsv_init(kn_jsv *v, const kn_jschema *s);
void kn_jsv_copy(kn_jsv *dst, const kn_jsv *src);
/* 1: accepted (state advanced); 0: rejected (state unchanged). */
int kn_jsv_push(kn_jsv *v, unsigned char c);
int kn_jsv_accepts(const kn_jsv *v, const void *bytes, size_t n);
/* How many of the bytes are accepted in a row; *done: the document is complete after them. */
size_t kn_jsv_prefix(const kn_jsv *v, const void *bytes, size_t n, int *done);
/* The document is complete (nothing more may follow). */
int kn_jsv_done(const kn_jsv *v);
/* Inside a string that takes any further plain characters (one thread; a value with no pattern and not an item of a
 * uniqueItems array, or the key of an object that takes other keys than its properties; no escape or UTF-8 sequence
 * under way): how many more characters (code points) it takes, INT_MAX when unbounded; -1 otherwise. Plain: bytes
 * from 0x20 up other than '"' and '\', as whole well-formed UTF-8 sequences. */
int kn_jsv_free_string(const kn_jsv *v);
/* The shortest bytes we know that complete the document, as a malloc'd string (*n bytes); NULL on failure. */
char *kn_jsv_closure(const kn_jsv *v, size_t *n);

/* The pattern a supported `format` stands for (NULL: not supported). */
const char *kn_jschema_format_pattern(const char *name);

/* Validate a whole document against a schema (tests). */
int kn_jschema_valid(const kn_jschema *s, const void *bytes, size_t n);

#endif
