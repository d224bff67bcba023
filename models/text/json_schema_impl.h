/* models/text/json_schema_impl.h: private to json_schema.c (compiling) and json_schema_run.c (the byte automaton): the
 * compiled form of a schema, one node per subschema. */
#ifndef KN_JSON_SCHEMA_IMPL_H
#define KN_JSON_SCHEMA_IMPL_H

#include "models/text/json_schema.h"

enum { T_NULL = 1, T_BOOL = 2, T_INT = 4, T_NUM = 8, T_STR = 16, T_ARR = 32, T_OBJ = 64, T_ANY = 127 };

#define JS_MAX_PROPS 64 /* object properties per node (a bit each) */
#define JS_MAX_LITS 64  /* enum values per node */

typedef struct js_node {
  unsigned types;          /* T_* allowed */
  char **lits;             /* enum / const: each value's compact JSON text; the node is then only these */
  int n_lits;
  char **names;            /* properties: the key as it appears between quotes (JSON-escaped) */
  int *pnode;
  int n_props;
  uint64_t required;       /* bit per property */
  int extra;               /* node of other keys' values; -1: no other keys */
  int items;               /* node of array items */
  int min_items, max_items;/* max -1: unbounded */
  int min_len, max_len;    /* string length in code points; max -1: unbounded */
  int *alts;               /* anyOf: the node is one of these */
  int n_alts;
} js_node;

struct kn_jschema {
  js_node *nodes;
  int n, cap;
  int root;
  int is_static;
};

/* Run one thread alone over bytes (compile-time checks of enum values): 1 when the bytes form a complete value. */
int js_thread_complete(const kn_jschema *s, int node, const char *bytes, size_t n);

#endif
