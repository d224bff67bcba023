/* models/text/chat_impl.h: private to the chat files of models/ (chat_json.c, chat_conv.c, chat_template.c, toolcall.c).
 * A growable byte buffer, and a printer of JSON trees (as models/text/json_read.c reads them: what Python's json module
 * would see, key order and number literals) so templates' `tojson` output can be reproduced byte for byte. */
#ifndef KN_CHAT_IMPL_H
#define KN_CHAT_IMPL_H

#include <stddef.h>

#include "models/text/chat.h"
#include "models/text/json_read.h"
#include "device/base/bytes.h"

/* ---- byte buffer: kn_bytes (device/base/bytes.h) ---------------------------------------------------------- */

/* Takes the bytes out as a NUL-terminated malloc'd string (NULL when oom), leaving b empty. */
char *knc_take(kn_bytes *b);

char *knc_strdup(const char *s);
char *knc_strndup(const char *s, size_t n);
#include "device/base/env.h"
#define knc_err(...) ((void)kn_errf(__VA_ARGS__)) /* message into the caller's buffer */

/* ---- JSON (read by models/text/json_read.c, printed here) ---------------------------------------------------------- */

/* A JSON value or NULL: the object member `key`, NULL when absent or v is no object. */
static inline const cJSON *knj_get(const cJSON *v, const char *key)
{
    return cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, key) : NULL;
}
/* The text of a string value, NULL otherwise. */
static inline const char *knj_str(const cJSON *v) { return cJSON_IsString(v) ? v->valuestring : NULL; }

/* Python json.dumps(v, ensure_ascii=False) with indent < 0, else json.dumps(v, ensure_ascii=False, indent=indent). */
void knj_dump(kn_bytes *b, const cJSON *v, int indent);
/* Python json.dumps of a plain string. */
void knj_dump_str(kn_bytes *b, const char *s, size_t len);

/* ---- tool-call parser output (toolcall_out.c) ------------------------------------------------------------- */

/* Events of one feed/finish. Texts live in one buffer and are addressed by offset until published, so the buffer
 * may grow; text events of the same kind and call are merged; every text ends on a UTF-8 character boundary. */
typedef struct tc_events {
    kn_tc_event *ev;
    size_t *off;      /* per event: offsets of text, id, name in buf (3 each) */
    size_t n, cap;
    kn_bytes buf;
    kn_bytes carry;    /* an incomplete UTF-8 sequence waiting for its next bytes */
    kn_tc_kind carry_kind;
    int carry_index;
    int oom;
} tc_events;

void tc_events_clear(tc_events *e);
void tc_events_free(tc_events *e);
void tc_emit_text(tc_events *e, kn_tc_kind kind, int index, const char *s, size_t n);
void tc_emit_mark(tc_events *e, kn_tc_kind kind, int index, const char *id, const char *name);
void tc_flush(tc_events *e);   /* end of output: an incomplete sequence goes out as U+FFFD */
int tc_publish(tc_events *e);  /* set the pointers of the events; -1 when memory ran out during the feed */

/* A Llama 3.1 builtin call "name.call(k=\"v\", n=1)": its name (malloc'd) and arguments as a JSON object text
 * (malloc'd). NULL when the text is not of that form. */
char *tc_python_call(const char *code, size_t n, char **name);

#endif
