/* models/text/json_schema_impl.h: private to json_schema.c (compiling) and json_schema_run.c (the byte automaton): the
 * compiled form of a schema, one node per subschema ($ref targets are shared nodes, so the table may have cycles). */
#ifndef KN_JSON_SCHEMA_IMPL_H
#define KN_JSON_SCHEMA_IMPL_H

#include "models/text/json_regex.h"
#include "models/text/json_schema.h"

enum { T_NULL = 1, T_BOOL = 2, T_INT = 4, T_NUM = 8, T_STR = 16, T_ARR = 32, T_OBJ = 64, T_ANY = 127 };

#define JS_MAX_PROPS 64 /* object properties per node (a bit each) */
#define JS_MAX_LITS 64  /* enum values per node */
#define JS_NEED_INF 1000 /* no finite document */

/* How an array with uniqueItems keeps its items apart: enum/const/boolean/null items by which literal was written
 * (the frame's seen bits); strings and numbers by the hashes of their values (kn_jsv_thread.uh); JS_UNIQ_ONE: at
 * most one item (the schema's maxItems is 0 or 1, or the only item is ""); other items are a compile error.
 * JS_UNIQ_ASKED: not yet decided (while compiling). */
enum { JS_UNIQ_NONE, JS_UNIQ_LITS, JS_UNIQ_HASH, JS_UNIQ_ONE, JS_UNIQ_ASKED };

/* Numbers with bounds are written with at most 15 significant digits and no exponent, so a value is exact on a grid
 * of 1e-15 and compares with a bound exactly as a JavaScript (double) validator compares it. */
#define JS_NUM_DIGITS 15
typedef __int128 js_grid; /* a value times 1e15 */

typedef struct js_node {
  unsigned types;          /* T_* allowed */
  unsigned vtypes;         /* T_* a validator allows: the `type` keyword's, T_ANY without one (types may be narrower:
                            * kiln writes an object for {"properties": …}, a validator takes any value) */
  char **lits;             /* enum / const: each value's compact JSON text; the node is then only these */
  int n_lits;
  char **names;            /* properties: the key as it appears between quotes (JSON-escaped) */
  int *pnode;
  int n_props;
  uint64_t required;       /* bit per property */
  int extra;               /* node of other keys' values; -1: no other keys */
  int items;               /* node of array items after the prefix; -1: no more items */
  int *prefix;             /* prefixItems: nodes of the first n_prefix items */
  int n_prefix;
  int unique;              /* uniqueItems: JS_UNIQ_* */
  int min_items, max_items;/* max -1: unbounded */
  int min_len, max_len;    /* string length in code points; max -1: unbounded */
  kn_regex *re;            /* pattern / format of strings (NULL: none) */
  int ranged;              /* numbers bounded by [lo, hi] (grid units, both inclusive) */
  js_grid lo, hi;
  int *alts;               /* anyOf / oneOf: the node is one of these */
  int n_alts;
  int need, obj_need, arr_need; /* frames a shortest completion needs: of any value, of an object, of an array */
} js_node;

struct kn_jschema {
  js_node *nodes;
  int n, cap;
  int root;
  int is_static;
  kn_regex **res; /* the patterns nodes point to (owned here: nodes may share them) */
  int n_res, cap_res;
};

/* Run one thread alone over bytes (compile-time checks of enum values): 1 when the bytes form a complete value. */
int js_thread_complete(const kn_jschema *s, int node, const char *bytes, size_t n);
/* The node of array item i (-1: none may follow). */
static inline int js_item_node(const js_node *nd, uint32_t i) { return i < (uint32_t)nd->n_prefix ? nd->prefix[i] : nd->items; }
/* The node an alias ($ref: a one-branch anyOf) stands for. */
static inline int js_deref(const kn_jschema *s, int n) {
  for (int k = 0; n > 0 && k < 64 && s->nodes[n].n_alts == 1 && s->nodes[n].alts; k++) n = s->nodes[n].alts[0];
  return n;
}
/* Some number of the node's range starts with no byte yet written (compile-time check of bounds). */
int js_range_possible(const js_node *nd);
/* How many distinct numbers of the node's range kiln may write (at most 15 significant digits, no exponent). */
js_grid js_range_count(const js_node *nd);
/* Bounds that leave a number free (every value of at most 15 integer digits): numbers in a uniqueItems array are
 * written as bounded ones, so their values are exact and comparable. */
js_grid js_range_free(void);

#endif
