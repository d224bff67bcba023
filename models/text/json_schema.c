/* models/text/json_schema.c: JSON Schema -> the node table that json_schema_run.c follows. Every keyword is either
 * enforced, an annotation (ignored on purpose), or an error naming it: a schema is never half-enforced silently.
 * Objects that list properties and do not say additionalProperties get no other keys (still valid output). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/json_schema_impl.h"

#define MAX_NESTING 12 /* schema levels: keeps every required structure within KN_JSV_DEPTH open values */
#define MAX_ALTS 16

typedef struct cc {
  kn_jschema *s;
  char *err;
  size_t errlen;
  char path[256];
  int failed;
} cc;

static int fail(cc *c, const char *fmt, ...) {
  if (c->failed) return -1;
  c->failed = 1;
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(c->err, c->errlen, "%s (at %s)", msg, c->path[0] ? c->path : "/");
  return -1;
}

static int new_node(cc *c) {
  kn_jschema *s = c->s;
  if (s->n == s->cap) {
    int cap = s->cap ? s->cap * 2 : 16;
    if (cap > 65000) return fail(c, "the schema has too many subschemas");
    js_node *g = realloc(s->nodes, (size_t)cap * sizeof *g);
    if (!g) return fail(c, "out of memory");
    s->nodes = g, s->cap = cap;
  }
  js_node *n = &s->nodes[s->n];
  memset(n, 0, sizeof *n);
  n->types = T_ANY, n->extra = 0, n->items = 0, n->max_items = -1, n->max_len = -1;
  return s->n++;
}

static const char *const annotations[] = {"title", "description", "default", "examples", "$schema", "$id",
                                          "$comment", "deprecated", "readOnly", "writeOnly", "example", NULL};
static const char *const constraints[] = {"type", "properties", "required", "additionalProperties", "items",
                                          "minItems", "maxItems", "enum", "const", "anyOf", "minLength",
                                          "maxLength", NULL};

static int in_list(const char *const *l, const char *k) {
  for (; *l; l++)
    if (!strcmp(*l, k)) return 1;
  return 0;
}

static int type_bits(cc *c, const cJSON *t) {
  static const struct { const char *name; unsigned bits; } names[] = {
      {"null", T_NULL}, {"boolean", T_BOOL}, {"integer", T_INT}, {"number", T_NUM},
      {"string", T_STR}, {"array", T_ARR},  {"object", T_OBJ},
  };
  if (!cJSON_IsString(t)) return fail(c, "type: expected a type name or an array of them");
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (!strcmp(t->valuestring, names[i].name)) return (int)names[i].bits;
  return fail(c, "type: unknown type \"%.40s\"", t->valuestring);
}

static int get_count(cc *c, const cJSON *sch, const char *key, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(sch, key);
  if (!v) return 0;
  if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 || v->valuedouble != (int)v->valuedouble)
    return fail(c, "%s: expected a non-negative integer", key);
  *out = (int)v->valuedouble;
  return 0;
}

static int compile(cc *c, const cJSON *sch, int depth);

/* Compile sch as the child named by a path suffix. */
static int child(cc *c, const cJSON *sch, int depth, const char *seg, const char *name) {
  size_t at = strlen(c->path);
  snprintf(c->path + at, sizeof c->path - at, "/%s%s%.60s", seg, name ? "/" : "", name ? name : "");
  int r = compile(c, sch, depth + 1);
  if (!c->failed) c->path[at] = 0;
  return r;
}

static char *compact(const cJSON *v) { return cJSON_PrintUnformatted(v); }

/* The key as it appears between quotes in compact JSON. */
static char *key_text(const char *name) {
  cJSON *s = cJSON_CreateString(name);
  char *p = s ? compact(s) : NULL;
  cJSON_Delete(s);
  if (!p) return NULL;
  size_t n = strlen(p);
  memmove(p, p + 1, n - 2);
  p[n - 2] = 0;
  return p;
}

static int add_prop(cc *c, int idx, const char *name, int node) {
  js_node *n = &c->s->nodes[idx];
  if (n->n_props == JS_MAX_PROPS) return fail(c, "properties: more than %d", JS_MAX_PROPS);
  char **names = realloc(n->names, (size_t)(n->n_props + 1) * sizeof *names);
  if (names) n->names = names;
  int *pn = realloc(n->pnode, (size_t)(n->n_props + 1) * sizeof *pn);
  if (pn) n->pnode = pn;
  if (!names || !pn || !(n->names[n->n_props] = key_text(name))) return fail(c, "out of memory");
  n->pnode[n->n_props++] = node;
  return 0;
}

static int object_keywords(cc *c, const cJSON *sch, int idx, int depth) {
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(sch, "properties");
  const cJSON *add = cJSON_GetObjectItemCaseSensitive(sch, "additionalProperties");
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(sch, "required");
  if (props && !cJSON_IsObject(props)) return fail(c, "properties: expected an object");
  const cJSON *p;
  cJSON_ArrayForEach(p, props) {
    int node = child(c, p, depth, "properties", p->string);
    if (node < 0 || add_prop(c, idx, p->string, node)) return -1;
  }
  int extra = props ? -1 : 0;
  if (add && cJSON_IsBool(add)) extra = cJSON_IsTrue(add) ? 0 : -1;
  else if (add && (extra = child(c, add, depth, "additionalProperties", NULL)) < 0) return -1;
  c->s->nodes[idx].extra = extra;
  if (req && !cJSON_IsArray(req)) return fail(c, "required: expected an array of property names");
  cJSON_ArrayForEach(p, req) {
    if (!cJSON_IsString(p)) return fail(c, "required: expected an array of property names");
    char *k = key_text(p->valuestring);
    if (!k) return fail(c, "out of memory");
    js_node *n = &c->s->nodes[idx];
    int found = -1;
    for (int i = 0; i < n->n_props && found < 0; i++)
      if (!strcmp(n->names[i], k)) found = i;
    free(k);
    if (found < 0) { /* a required key that properties does not describe: a value of the other keys' schema */
      if (extra < 0) return fail(c, "required: \"%.60s\" is not in properties and no other keys are allowed", p->valuestring);
      if (add_prop(c, idx, p->valuestring, extra)) return -1;
      found = c->s->nodes[idx].n_props - 1;
    }
    c->s->nodes[idx].required |= 1ull << found;
  }
  return 0;
}

static int array_keywords(cc *c, const cJSON *sch, int idx, int depth) {
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(sch, "items");
  if (items && cJSON_IsArray(items)) return fail(c, "items: an array of schemas (tuples) is not supported");
  if (items) {
    int node = child(c, items, depth, "items", NULL);
    if (node < 0) return -1;
    c->s->nodes[idx].items = node;
  }
  int lo = 0, hi = -1;
  if (get_count(c, sch, "minItems", &lo) || get_count(c, sch, "maxItems", &hi)) return -1;
  if (hi >= 0 && lo > hi) return fail(c, "minItems %d is larger than maxItems %d", lo, hi);
  if (lo > 64) return fail(c, "minItems: at most 64 is supported");
  c->s->nodes[idx].min_items = lo, c->s->nodes[idx].max_items = hi;
  lo = 0, hi = -1;
  if (get_count(c, sch, "minLength", &lo) || get_count(c, sch, "maxLength", &hi)) return -1;
  if (hi >= 0 && lo > hi) return fail(c, "minLength %d is larger than maxLength %d", lo, hi);
  c->s->nodes[idx].min_len = lo, c->s->nodes[idx].max_len = hi;
  return 0;
}

/* enum / const: the values, each kept only when it satisfies the rest of the node. */
static int literals(cc *c, const cJSON *sch, int idx) {
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(sch, "enum"), *co = cJSON_GetObjectItemCaseSensitive(sch, "const");
  if (!en && !co) return 0;
  if (en && co) return fail(c, "enum together with const is not supported");
  if (en && (!cJSON_IsArray(en) || cJSON_GetArraySize(en) == 0)) return fail(c, "enum: expected a non-empty array");
  int n = en ? cJSON_GetArraySize(en) : 1;
  if (n > JS_MAX_LITS) return fail(c, "enum: more than %d values", JS_MAX_LITS);
  char **lits = calloc((size_t)n, sizeof *lits);
  if (!lits) return fail(c, "out of memory");
  int k = 0;
  for (int i = 0; i < n; i++) {
    char *t = compact(en ? cJSON_GetArrayItem(en, i) : co);
    if (!t) continue;
    int dup = 0;
    for (int j = 0; j < k; j++) dup |= !strcmp(lits[j], t);
    if (!dup && js_thread_complete(c->s, idx, t, strlen(t))) lits[k++] = t;
    else free(t);
  }
  js_node *nd = &c->s->nodes[idx];
  nd->lits = lits, nd->n_lits = k;
  if (!k) return fail(c, "%s: no value satisfies the rest of the schema", en ? "enum" : "const");
  return 0;
}

static int compile(cc *c, const cJSON *sch, int depth) {
  if (cJSON_IsTrue(sch)) return 0;
  if (cJSON_IsFalse(sch)) return fail(c, "the schema false (nothing is valid) is not supported");
  if (!cJSON_IsObject(sch)) return fail(c, "expected a schema object");
  if (depth > MAX_NESTING) return fail(c, "the schema is nested deeper than %d levels", MAX_NESTING);
  const cJSON *k;
  int n_constraints = 0;
  cJSON_ArrayForEach(k, sch) {
    if (in_list(constraints, k->string)) n_constraints += strcmp(k->string, "anyOf") != 0;
    else if (!in_list(annotations, k->string)) return fail(c, "keyword \"%.60s\" is not supported", k->string);
  }
  int idx = new_node(c);
  if (idx < 0) return -1;
  const cJSON *any = cJSON_GetObjectItemCaseSensitive(sch, "anyOf");
  if (any) {
    if (n_constraints) return fail(c, "anyOf beside other constraints is not supported (put them in each branch)");
    int n = cJSON_IsArray(any) ? cJSON_GetArraySize(any) : 0;
    if (n < 1 || n > MAX_ALTS) return fail(c, "anyOf: expected an array of 1 to %d schemas", MAX_ALTS);
    int *alts = calloc((size_t)n, sizeof *alts);
    if (!alts) return fail(c, "out of memory");
    c->s->nodes[idx].alts = alts;
    for (int i = 0; i < n; i++) {
      char num[16];
      snprintf(num, sizeof num, "%d", i);
      int a = child(c, cJSON_GetArrayItem(any, i), depth, "anyOf", num);
      if (a < 0) return -1;
      c->s->nodes[idx].alts[c->s->nodes[idx].n_alts++] = a;
    }
    return idx;
  }
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(sch, "type");
  unsigned types = 0;
  if (cJSON_IsArray(type)) {
    if (cJSON_GetArraySize(type) == 0) return fail(c, "type: the array is empty");
    cJSON_ArrayForEach(k, type) {
      int b = type_bits(c, k);
      if (b < 0) return -1;
      types |= (unsigned)b;
    }
  } else if (type) {
    int b = type_bits(c, type);
    if (b < 0) return -1;
    types = (unsigned)b;
  } else { /* no type: what the other keywords describe, else anything */
    static const struct { const char *key; unsigned bits; } implied[] = {
        {"properties", T_OBJ}, {"required", T_OBJ}, {"additionalProperties", T_OBJ}, {"items", T_ARR},
        {"minItems", T_ARR},   {"maxItems", T_ARR}, {"minLength", T_STR},            {"maxLength", T_STR},
    };
    for (size_t i = 0; i < sizeof implied / sizeof *implied; i++)
      if (cJSON_GetObjectItemCaseSensitive(sch, implied[i].key)) types |= implied[i].bits;
    if (!types) types = T_ANY;
  }
  c->s->nodes[idx].types = types;
  if (object_keywords(c, sch, idx, depth) || array_keywords(c, sch, idx, depth) || literals(c, sch, idx)) return -1;
  return idx;
}

/* The document itself: an object (tool arguments), or anything but a bare number (it could never be seen to end). */
static int restrict_root(cc *c, int idx, unsigned mask) {
  if (idx == 0) { /* the shared "anything" node: a copy */
    if ((idx = new_node(c)) < 0) return -1;
    c->s->nodes[idx].types = T_ANY & mask;
    return idx;
  }
  js_node *nd = &c->s->nodes[idx];
  if (nd->n_alts) {
    int k = 0;
    for (int i = 0; i < nd->n_alts; i++) {
      int saved = c->failed;
      int a = restrict_root(c, c->s->nodes[idx].alts[i], mask);
      c->failed = saved;
      if (a >= 0) c->s->nodes[idx].alts[k++] = a;
    }
    c->s->nodes[idx].n_alts = k;
    return k ? idx : fail(c, mask == T_OBJ ? "no branch of anyOf is an object" : "no branch of anyOf is a non-number");
  }
  if (nd->n_lits) {
    int k = 0;
    for (int i = 0; i < nd->n_lits; i++) {
      char f = nd->lits[i][0];
      int ok = mask == T_OBJ ? f == '{' : !(f == '-' || (f >= '0' && f <= '9'));
      if (ok) nd->lits[k++] = nd->lits[i];
      else free(nd->lits[i]);
    }
    nd->n_lits = k;
    return k ? idx : fail(c, mask == T_OBJ ? "the value must be an object" : "a number as the whole document is not supported");
  }
  nd->types &= mask;
  if (!nd->types) return fail(c, mask == T_OBJ ? "the value must be an object" : "a number as the whole document is not supported");
  return idx;
}

kn_jschema *kn_jschema_compile(const cJSON *schema, unsigned flags, char *err, size_t errlen) {
  cc c = {.err = err, .errlen = errlen};
  if (!(c.s = calloc(1, sizeof *c.s))) return snprintf(err, errlen, "out of memory"), NULL;
  int any = new_node(&c); /* node 0: anything (the value of `true`, of unlisted keys, of items not described) */
  int root = any < 0 ? -1 : compile(&c, schema, 0);
  if (root >= 0) root = restrict_root(&c, root, flags & KN_JSCHEMA_ROOT_OBJECT ? T_OBJ : (unsigned)(T_ANY & ~(T_INT | T_NUM)));
  if (root < 0 || c.failed) {
    kn_jschema_free(c.s);
    return NULL;
  }
  c.s->root = root;
  return c.s;
}

const kn_jschema *kn_jschema_any_object(void) {
  static js_node nodes[2] = {
      {.types = T_ANY, .extra = 0, .items = 0, .max_items = -1, .max_len = -1},
      {.types = T_OBJ, .extra = 0, .items = 0, .max_items = -1, .max_len = -1},
  };
  static const kn_jschema s = {.nodes = nodes, .n = 2, .cap = 2, .root = 1, .is_static = 1};
  return &s;
}

void kn_jschema_free(kn_jschema *s) {
  if (!s || s->is_static) return;
  for (int i = 0; i < s->n; i++) {
    js_node *n = &s->nodes[i];
    for (int k = 0; k < n->n_lits; k++) free(n->lits[k]);
    for (int k = 0; k < n->n_props; k++) free(n->names[k]);
    free(n->lits), free(n->names), free(n->pnode), free(n->alts);
  }
  free(s->nodes);
  free(s);
}
