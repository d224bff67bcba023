/* models/text/json_schema_merge.h: private to json_schema.c: $ref lookup inside a schema document and the folding of
 * allOf (and of $ref beside other keywords) into one schema object. */
#ifndef KN_JSON_SCHEMA_MERGE_H
#define KN_JSON_SCHEMA_MERGE_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef struct kn_jmerge {
  const cJSON *root; /* the document $ref pointers start from */
  char *err;
  size_t errlen;
  int failed;
} kn_jmerge;

/* The subschema a local reference (#, #/$defs/x, #/definitions/x, any JSON pointer) names; NULL with a message. */
const cJSON *kn_jref_resolve(const cJSON *root, const char *ref, char *err, size_t errlen);
/* s with its top-level $ref followed and its allOf merged (a new tree the caller frees); NULL with a message. */
cJSON *kn_jschema_normalize(kn_jmerge *m, const cJSON *s, int depth);

#endif
