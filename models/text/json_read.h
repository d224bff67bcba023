/* models/text/json_read.h: the one JSON reader of kiln (request bodies, chat messages, tool schemas, tool-call arguments).
 * cJSON builds the tree; a linear pre-scan first holds the text to RFC 8259 (UTF-8, numbers, escapes, no U+0000)
 * and to a nesting limit, naming the top-level field at fault. The tree then reads as Python's json module reads
 * the text: a repeated key keeps its first position and its last value, and each number keeps its literal (in
 * valuestring) so templates' `tojson` can print ints and floats as Python does. Linear in the input. */
#ifndef KN_JSON_READ_H
#define KN_JSON_READ_H

#include <stddef.h>

#include <cjson/cJSON.h>

enum {
  KN_JSON_DEPTH_DEFAULT = 64, /* arrays and objects inside one another */
  KN_JSON_DEPTH_MAX = 512,    /* the most a caller may ask for (cJSON itself stops at 1000) */
};

/* Parse len bytes. NULL on error with err naming the byte offset; field (may be NULL) receives the top-level
 * member the error is in ("" when none), so a server can answer with `param`. max_depth <= 0: the default. The
 * tree is freed with cJSON_Delete. */
cJSON *kn_json_parse(const char *s, size_t len, int max_depth, char *field, size_t fieldlen, char *err, size_t errlen);

/* A number's literal as written ("1.0", "12345678901234567890"); NULL for a number built by code. */
const char *kn_json_literal(const cJSON *number);

#endif
