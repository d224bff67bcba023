/* models/text/json_schema.c: JSON Schema -> the node table that json_schema_run.c follows. Every keyword is either
 * enforced, an annotation (ignored on purpose), or an error naming it: a schema is never half-enforced silently.
 * Objects that list properties and do not say additionalProperties get no other keys (still valid output). $ref
 * targets compile once and are shared (recursion is a cycle in the table, bounded by the automaton's depth); allOf is
 * merged before compiling (json_schema_merge.c); oneOf is compiled as anyOf once its branches are shown to exclude each
 * other (no value kiln may write for one branch is valid under another), else refused by name. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/base/bytes.h"
#include "models/text/json_read.h"
#include "models/text/json_schema_impl.h"
#include "models/text/json_schema_merge.h"

#define MAX_NESTING 32 /* schema levels (the automaton's own depth bound is checked through each node's need) */
#define MAX_ALTS 16
#define MAX_REFS 256

typedef struct cc {
  kn_jschema *s;
  char *err;
  size_t errlen;
  char path[256];
  int failed;
  const cJSON *doc; /* the whole schema: where $ref pointers start */
  struct { const cJSON *target; int node; } refs[MAX_REFS];
  int n_refs;
  struct { int node; char path[256]; } *uniq; /* arrays with uniqueItems, and where they are */
  int n_uniq, cap_uniq;
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
  if (s->n >= 65000) return fail(c, "the schema has too many subschemas");
  if (kn_grow(&s->nodes, &s->cap, s->n + 1, sizeof *s->nodes, 16)) return fail(c, "out of memory");
  js_node *n = &s->nodes[s->n];
  memset(n, 0, sizeof *n);
  n->types = n->vtypes = T_ANY, n->extra = 0, n->items = 0, n->max_items = -1, n->max_len = -1;
  n->need = n->obj_need = n->arr_need = 1;
  return s->n++;
}

static const char *const annotations[] = {"title", "description", "default", "examples", "$schema", "$id",
                                          "$comment", "deprecated", "readOnly", "writeOnly", "example", "$defs",
                                          "definitions", "$anchor", "contentMediaType", "contentEncoding", NULL};
static const char *const constraints[] = {"type", "properties", "required", "additionalProperties", "items",
                                          "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "minLength",
                                          "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                          "pattern", "format", "prefixItems", "additionalItems", "uniqueItems",
                                          "allOf", "$ref", NULL};

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
  const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(sch, "prefixItems");
  const char *pname = "prefixItems";
  if (cJSON_IsArray(items)) { /* draft 7 tuples: items [...] and additionalItems for the rest */
    if (prefix) return fail(c, "items as an array beside prefixItems");
    prefix = items, pname = "items";
    items = cJSON_GetObjectItemCaseSensitive(sch, "additionalItems");
  }
  if (prefix) {
    int n = cJSON_IsArray(prefix) ? cJSON_GetArraySize(prefix) : -1;
    if (n < 0 || n > 64) return fail(c, "%s: expected an array of at most 64 schemas", pname);
    int *pre = calloc((size_t)(n ? n : 1), sizeof *pre);
    if (!pre) return fail(c, "out of memory");
    c->s->nodes[idx].prefix = pre;
    for (int i = 0; i < n; i++) {
      char num[16];
      snprintf(num, sizeof num, "%d", i);
      int a = child(c, cJSON_GetArrayItem(prefix, i), depth, pname, num);
      if (a < 0) return -1;
      c->s->nodes[idx].prefix[c->s->nodes[idx].n_prefix++] = a;
    }
  }
  if (cJSON_IsFalse(items)) {
    c->s->nodes[idx].items = -1;
  } else if (items) {
    int node = child(c, items, depth, "items", NULL);
    if (node < 0) return -1;
    c->s->nodes[idx].items = node;
  }
  int lo = 0, hi = -1;
  if (get_count(c, sch, "minItems", &lo) || get_count(c, sch, "maxItems", &hi)) return -1;
  if (hi >= 0 && lo > hi) return fail(c, "minItems %d is larger than maxItems %d", lo, hi);
  if (lo > 64) return fail(c, "minItems: at most 64 is supported");
  js_node *nd = &c->s->nodes[idx];
  if (nd->items < 0 && lo > nd->n_prefix) return fail(c, "minItems %d is more than the %d items allowed", lo, nd->n_prefix);
  if (nd->items < 0 && (hi < 0 || hi > nd->n_prefix)) hi = nd->n_prefix;
  nd->min_items = lo, nd->max_items = hi;
  const cJSON *uniq = cJSON_GetObjectItemCaseSensitive(sch, "uniqueItems");
  if (uniq && !cJSON_IsBool(uniq)) return fail(c, "uniqueItems: expected true or false");
  if (cJSON_IsTrue(uniq) && (nd->items != -1 || nd->n_prefix > 1)) { /* decided once every node is compiled */
    if (kn_grow(&c->uniq, &c->cap_uniq, c->n_uniq + 1, sizeof *c->uniq, 8)) return fail(c, "out of memory");
    c->uniq[c->n_uniq].node = idx;
    snprintf(c->uniq[c->n_uniq++].path, sizeof c->path, "%s", c->path);
    nd->unique = JS_UNIQ_ASKED;
  }
  lo = 0, hi = -1;
  if (get_count(c, sch, "minLength", &lo) || get_count(c, sch, "maxLength", &hi)) return -1;
  if (hi >= 0 && lo > hi) return fail(c, "minLength %d is larger than maxLength %d", lo, hi);
  c->s->nodes[idx].min_len = lo, c->s->nodes[idx].max_len = hi;
  return 0;
}

/* ---- numbers: bounds on the 1e-15 grid ---------------------------------------------------------------------- */

static js_grid grid_big(void) {
  js_grid b = 1;
  for (int i = 0; i < 31; i++) b *= 10;
  return b;
}

/* floor (up 0) or ceil (up 1) of d * 1e15, from d's shortest decimal form, clamped to +-1e31. */
static js_grid to_grid(double d, int up) {
  js_grid big = grid_big();
  if (!isfinite(d)) return d > 0 ? big : -big;
  char buf[48];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    if (strtod(buf, NULL) == d) break;
  }
  const char *p = buf;
  int neg = *p == '-', nd = 0;
  if (neg) p++;
  js_grid m = 0;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9') m = m * 10 + (*p - '0'), nd++;
  int k = atoi(p + 1) - (nd - 1) + 15, exact = 1;
  js_grid q;
  if (k >= 0) {
    if (nd + k > 32) return neg ? -big : big;
    q = m;
    for (int i = 0; i < k; i++) q *= 10;
  } else if (-k > 36) {
    q = 0, exact = m == 0;
  } else {
    js_grid p10 = 1;
    for (int i = 0; i < -k; i++) p10 *= 10;
    q = m / p10, exact = m % p10 == 0;
  }
  js_grid g = neg ? -q - (!exact && !up) : q + (!exact && up);
  return g > big ? big : g < -big ? -big : g;
}

static int number_keywords(cc *c, const cJSON *sch, int idx) {
  static const char *const keys[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
  const cJSON *v[4];
  int any = 0;
  for (int i = 0; i < 4; i++) {
    v[i] = cJSON_GetObjectItemCaseSensitive(sch, keys[i]);
    if (v[i] && !cJSON_IsNumber(v[i]) && !(i >= 2 && cJSON_IsBool(v[i]))) return fail(c, "%s: expected a number", keys[i]);
    any |= v[i] != NULL;
  }
  if (!any) return 0;
  js_grid big = grid_big(), lo = -big, hi = big, g;
  int xlo = cJSON_IsTrue(v[2]), xhi = cJSON_IsTrue(v[3]); /* draft 4: exclusiveMinimum true makes minimum exclusive */
  if (v[0]) g = xlo ? to_grid(v[0]->valuedouble, 0) + 1 : to_grid(v[0]->valuedouble, 1), lo = g > lo ? g : lo;
  if (v[1]) g = xhi ? to_grid(v[1]->valuedouble, 1) - 1 : to_grid(v[1]->valuedouble, 0), hi = g < hi ? g : hi;
  if (cJSON_IsNumber(v[2])) g = to_grid(v[2]->valuedouble, 0) + 1, lo = g > lo ? g : lo;
  if (cJSON_IsNumber(v[3])) g = to_grid(v[3]->valuedouble, 1) - 1, hi = g < hi ? g : hi;
  js_node *nd = &c->s->nodes[idx];
  nd->ranged = 1, nd->lo = lo, nd->hi = hi;
  if ((nd->types & (T_INT | T_NUM)) && !js_range_possible(nd)) {
    if (nd->types & ~(unsigned)(T_INT | T_NUM)) nd->types &= ~(unsigned)(T_INT | T_NUM); /* only the other types */
    else return fail(c, "minimum/maximum: no %s of at most %d digits lies in the range", nd->types & T_NUM ? "number" : "integer", JS_NUM_DIGITS);
  }
  return 0;
}

/* ---- strings: pattern and format ------------------------------------------------------------------------------ */

#define RE_DATE "[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
#define RE_TIME "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
#define RE_OCTET "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#define RE_URI_CH "-A-Za-z0-9._~!$&'()*+,;=:@"

/* Each format as a pattern whose strings the format's validators all accept (a subset where the format is looser:
 * dates never use February 29th, times always carry a zone, URIs are scheme://host[:port][/path][?query][#fragment]). */
static const struct { const char *name, *re; } formats[] = {
    {"date", "^" RE_DATE "$"},
    {"time", "^" RE_TIME "$"},
    {"date-time", "^" RE_DATE "T" RE_TIME "$"},
    {"email", "^[A-Za-z0-9_+-]+(?:\\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\\.)+[A-Za-z]{2,}$"},
    {"uuid", "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
    {"uri", "^[a-z][a-z0-9+.-]*://[A-Za-z0-9._~-]+(?::[0-9]{1,5})?(?:/[" RE_URI_CH "]*)*(?:\\?[" RE_URI_CH "/?]*)?(?:#[" RE_URI_CH "/?]*)?$"},
    {"ipv4", "^(?:" RE_OCTET "\\.){3}" RE_OCTET "$"},
};

const char *kn_jschema_format_pattern(const char *name) {
  for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
    if (!strcmp(formats[i].name, name)) return formats[i].re;
  return NULL;
}

static int string_keywords(cc *c, const cJSON *sch, int idx) {
  const cJSON *pat = cJSON_GetObjectItemCaseSensitive(sch, "pattern"), *fmt = cJSON_GetObjectItemCaseSensitive(sch, "format");
  if (!pat && !fmt) return 0;
  if (pat && fmt) return fail(c, "pattern together with format is not supported");
  const char *re;
  if (pat) {
    if (!cJSON_IsString(pat)) return fail(c, "pattern: expected a string");
    re = pat->valuestring;
  } else {
    if (!cJSON_IsString(fmt)) return fail(c, "format: expected a string");
    if (!(re = kn_jschema_format_pattern(fmt->valuestring)))
      return fail(c, "format \"%.40s\" is not supported (date, time, date-time, email, uuid, uri and ipv4 are)", fmt->valuestring);
  }
  kn_jschema *s = c->s;
  if (kn_grow(&s->res, &s->cap_res, s->n_res + 1, sizeof *s->res, 4)) return fail(c, "out of memory");
  char rerr[256];
  js_node *nd = &s->nodes[idx];
  kn_regex *r = kn_regex_compile(re, nd->min_len, nd->max_len, rerr, sizeof rerr);
  if (!r) {
    if (!(nd->types & ~(unsigned)T_STR) || !strstr(rerr, "no string")) return fail(c, "%s%s", pat ? "" : "format: ", rerr);
    nd->types &= ~(unsigned)T_STR; /* no string fits: only the other types */
    return 0;
  }
  s->res[s->n_res++] = r;
  nd->re = r;
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

/* ---- oneOf: branches that exclude each other ------------------------------------------------------------------ */

/* Kinds of JSON values: integer-valued and other numbers apart ("number" has both, "integer" the first). */
enum { C_NULL = 1, C_BOOL = 2, C_INTV = 4, C_FRAC = 8, C_STR = 16, C_ARR = 32, C_OBJ = 64 };

static unsigned kinds_of(unsigned t) {
  return (t & T_NULL ? C_NULL : 0) | (t & T_BOOL ? C_BOOL : 0) | (t & T_INT ? C_INTV : 0) |
         (t & T_NUM ? C_INTV | C_FRAC : 0) | (t & T_STR ? C_STR : 0) | (t & T_ARR ? C_ARR : 0) | (t & T_OBJ ? C_OBJ : 0);
}

static unsigned lit_kind(const char *t) {
  switch (t[0]) {
  case 'n': return C_NULL;
  case 't': case 'f': return C_BOOL;
  case '"': return C_STR;
  case '[': return C_ARR;
  case '{': return C_OBJ;
  default: {
    double d = strtod(t, NULL);
    return d == floor(d) ? C_INTV : C_FRAC;
  }
  }
}

/* The kinds of value kiln may write for a node (gen) and that a validator accepts (val). enum/const are exact. */
static unsigned gen_kinds(const js_node *n) {
  unsigned k = 0;
  for (int i = 0; i < n->n_lits; i++) k |= lit_kind(n->lits[i]);
  return n->n_lits ? k : kinds_of(n->types);
}
static unsigned val_kinds(const js_node *n) { return n->n_lits ? gen_kinds(n) : kinds_of(n->vtypes); }

static int disjoint(const kn_jschema *s, int a, int b, int depth);

/* Every literal of node l is invalid under node b (a scalar that b's keywords refuse, or of a kind b does not take). */
static int lits_outside(const kn_jschema *s, const js_node *l, int b) {
  const js_node *nb = &s->nodes[b];
  for (int i = 0; i < l->n_lits; i++) {
    const char *t = l->lits[i];
    unsigned k = lit_kind(t);
    if (!(k & val_kinds(nb))) continue;
    if ((k & (C_INTV | C_FRAC)) && nb->ranged && nb->n_alts == 0) {
      double d = strtod(t, NULL);
      if (to_grid(d, 0) > nb->hi || to_grid(d, 1) < nb->lo) continue;
    }
    if (k == C_STR && !strchr(t, '\\') && !js_thread_complete(s, b, t, strlen(t))) continue;
    return 0;
  }
  return 1;
}

static int below(int hi, int lo) { return hi >= 0 && hi < lo; } /* a max (-1: none) under a min */

/* Objects: a property required on one side, described on both, whose schemas exclude each other. */
static int objects_disjoint(const kn_jschema *s, const js_node *a, const js_node *b, int depth) {
  for (int i = 0; i < a->n_props; i++)
    for (int j = 0; j < b->n_props; j++)
      if (!strcmp(a->names[i], b->names[j]) && ((a->required >> i & 1) || (b->required >> j & 1)) &&
          disjoint(s, a->pnode[i], b->pnode[j], depth + 1))
        return 1;
  return 0;
}

/* No value kiln writes for one node is valid under the other, in both directions, as far as can be shown: by kind,
 * enum/const, numeric ranges, string and array lengths, the first item, a required property (0: maybe not). */
static int disjoint(const kn_jschema *s, int a, int b, int depth) {
  a = js_deref(s, a), b = js_deref(s, b);
  if (depth > 8 || a <= 0 || b <= 0) return 0;
  const js_node *na = &s->nodes[a], *nb = &s->nodes[b];
  if (na->n_alts > 1 || nb->n_alts > 1) { /* a nested anyOf/oneOf: each of its branches */
    const js_node *m = na->n_alts > 1 ? na : nb;
    int other = na->n_alts > 1 ? b : a;
    for (int i = 0; i < m->n_alts; i++)
      if (!disjoint(s, m->alts[i], other, depth + 1)) return 0;
    return 1;
  }
  if (na->n_alts || nb->n_alts) return 0; /* an alias still being compiled (a recursive $ref) */
  if (na->n_lits && nb->n_lits) { /* equal as JSON values: {"a":1,"b":2} is {"b":2,"a":1}, 1 is 1.0 */
    for (int i = 0; i < na->n_lits; i++)
      for (int j = 0; j < nb->n_lits; j++) {
        cJSON *x = kn_json_parse(na->lits[i], strlen(na->lits[i]), 0, NULL, 0, NULL, 0);
        cJSON *y = kn_json_parse(nb->lits[j], strlen(nb->lits[j]), 0, NULL, 0, NULL, 0);
        int same = !x || !y || cJSON_Compare(x, y, 1);
        cJSON_Delete(x), cJSON_Delete(y);
        if (same) return 0;
      }
    return 1;
  }
  if (na->n_lits || nb->n_lits) return na->n_lits ? lits_outside(s, na, b) : lits_outside(s, nb, a);
  unsigned common = (gen_kinds(na) & val_kinds(nb)) | (gen_kinds(nb) & val_kinds(na));
  if (common & (C_NULL | C_BOOL)) return 0;
  if ((common & (C_INTV | C_FRAC)) && !(na->ranged && nb->ranged && (na->hi < nb->lo || nb->hi < na->lo))) return 0;
  if ((common & C_STR) && !below(na->max_len, nb->min_len) && !below(nb->max_len, na->min_len)) return 0;
  if (common & C_ARR) {
    int ia = js_item_node(na, 0), ib = js_item_node(nb, 0);
    int first = (na->min_items > 0 || nb->min_items > 0) && ia > 0 && ib > 0 && disjoint(s, ia, ib, depth + 1);
    if (!first && !below(na->max_items, nb->min_items) && !below(nb->max_items, na->min_items)) return 0;
  }
  if ((common & C_OBJ) && !objects_disjoint(s, na, nb, depth)) return 0;
  return 1;
}

static int compile_ref(cc *c, const cJSON *ref, int depth) {
  if (!cJSON_IsString(ref)) return fail(c, "$ref: expected a string");
  char e[256];
  const cJSON *t = kn_jref_resolve(c->doc, ref->valuestring, e, sizeof e);
  if (!t) return fail(c, "%s", e);
  for (int i = 0; i < c->n_refs; i++)
    if (c->refs[i].target == t) return c->refs[i].node;
  if (c->n_refs == MAX_REFS) return fail(c, "$ref: more than %d different targets", MAX_REFS);
  int x = new_node(c);
  if (x < 0) return -1;
  c->refs[c->n_refs].target = t, c->refs[c->n_refs++].node = x;
  int r = depth < 0 ? compile(c, t, 0) : child(c, t, depth, "$ref", ref->valuestring);
  int *alts = r < 0 ? NULL : malloc(sizeof *alts);
  if (r < 0) return -1;
  if (!alts) return fail(c, "out of memory");
  alts[0] = r; /* x is an alias of the target's node (a one-branch anyOf) */
  c->s->nodes[x].alts = alts, c->s->nodes[x].n_alts = 1;
  return x;
}

/* allOf, or $ref / anyOf / oneOf beside other keywords: merged into one schema (anyOf distributed), then compiled. */
static int compile_merged(cc *c, const cJSON *sch, int depth) {
  cJSON *wrapped = NULL;
  const char *alt_key = cJSON_GetObjectItemCaseSensitive(sch, "anyOf") ? "anyOf" : cJSON_GetObjectItemCaseSensitive(sch, "oneOf") ? "oneOf" : NULL;
  if (alt_key && !cJSON_GetObjectItemCaseSensitive(sch, "allOf")) { /* {A..., anyOf: [...]} == allOf [{A...}, {anyOf: [...]}] */
    wrapped = cJSON_CreateObject();
    cJSON *all = cJSON_AddArrayToObject(wrapped, "allOf"), *rest = cJSON_CreateObject(), *alt = cJSON_CreateObject();
    const cJSON *k;
    cJSON_ArrayForEach(k, sch) cJSON_AddItemToObject(strcmp(k->string, alt_key) ? rest : alt, k->string, cJSON_Duplicate(k, 1));
    cJSON_AddItemToArray(all, rest), cJSON_AddItemToArray(all, alt);
    sch = wrapped;
  }
  char e[384];
  kn_jmerge m = {.root = c->doc, .err = e, .errlen = sizeof e};
  cJSON *merged = kn_jschema_normalize(&m, sch, 0);
  cJSON_Delete(wrapped);
  if (!merged) return fail(c, "%s", e);
  int r = compile(c, merged, depth + 1);
  cJSON_Delete(merged);
  return r;
}

static int compile(cc *c, const cJSON *sch, int depth) {
  if (cJSON_IsTrue(sch)) return 0;
  if (cJSON_IsFalse(sch)) return fail(c, "the schema false (nothing is valid) is not supported");
  if (!cJSON_IsObject(sch)) return fail(c, "expected a schema object");
  if (depth > MAX_NESTING) return fail(c, "the schema is nested deeper than %d levels", MAX_NESTING);
  const cJSON *k;
  int n_constraints = 0;
  cJSON_ArrayForEach(k, sch) {
    if (in_list(constraints, k->string))
      n_constraints += strcmp(k->string, "anyOf") && strcmp(k->string, "oneOf") && strcmp(k->string, "$ref") && strcmp(k->string, "allOf");
    else if (!in_list(annotations, k->string)) return fail(c, "keyword \"%.60s\" is not supported", k->string);
  }
  const cJSON *any = cJSON_GetObjectItemCaseSensitive(sch, "anyOf"), *one = cJSON_GetObjectItemCaseSensitive(sch, "oneOf");
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(sch, "$ref"), *all = cJSON_GetObjectItemCaseSensitive(sch, "allOf");
  if (any && one) return fail(c, "anyOf beside oneOf is not supported (put one of them in allOf)");
  if (all || (ref && (n_constraints || any || one)) || ((any || one) && n_constraints)) return compile_merged(c, sch, depth);
  if (ref) return compile_ref(c, ref, depth);
  int idx = new_node(c);
  if (idx < 0) return -1;
  if (any || one) {
    const char *key = any ? "anyOf" : "oneOf"; /* oneOf: as anyOf (exact when the branches are disjoint; docs/api.md) */
    if (one) any = one;
    int n = cJSON_IsArray(any) ? cJSON_GetArraySize(any) : 0;
    if (n < 1 || n > MAX_ALTS) return fail(c, "%s: expected an array of 1 to %d schemas", key, MAX_ALTS);
    int *alts = calloc((size_t)n, sizeof *alts);
    if (!alts) return fail(c, "out of memory");
    c->s->nodes[idx].alts = alts;
    for (int i = 0; i < n; i++) {
      char num[16];
      snprintf(num, sizeof num, "%d", i);
      int a = child(c, cJSON_GetArrayItem(any, i), depth, key, num);
      if (a < 0) return -1;
      c->s->nodes[idx].alts[c->s->nodes[idx].n_alts++] = a;
    }
    for (int i = 0; one && i < n; i++) /* oneOf: exactly one branch, i.e. anyOf when no two can both match */
      for (int j = i + 1; j < n; j++)
        if (!disjoint(c->s, c->s->nodes[idx].alts[i], c->s->nodes[idx].alts[j], 0))
          return fail(c, "oneOf: branches %d and %d may both match one value, so \"exactly one\" cannot be enforced "
                      "(tell them apart by type, const/enum, a required property whose schemas differ so, ranges or "
                      "lengths; or use anyOf)", i, j);
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
        {"prefixItems", T_ARR}, {"uniqueItems", T_ARR}, {"pattern", T_STR}, {"format", T_STR},
        {"minimum", T_NUM}, {"maximum", T_NUM}, {"exclusiveMinimum", T_NUM}, {"exclusiveMaximum", T_NUM},
    };
    for (size_t i = 0; i < sizeof implied / sizeof *implied; i++)
      if (cJSON_GetObjectItemCaseSensitive(sch, implied[i].key)) types |= implied[i].bits;
    if (!types) types = T_ANY;
  }
  c->s->nodes[idx].types = types;
  c->s->nodes[idx].vtypes = type ? types : T_ANY;
  if (object_keywords(c, sch, idx, depth) || array_keywords(c, sch, idx, depth) || number_keywords(c, sch, idx) ||
      string_keywords(c, sch, idx) || literals(c, sch, idx))
    return -1;
  return idx;
}

/* ---- after compiling ------------------------------------------------------------------------------------------ */

/* A copy of node idx owning its own arrays (the root is restricted on a copy: $ref targets are shared). */
static int clone_node(cc *c, int idx) {
  int k = new_node(c);
  if (k < 0) return -1;
  js_node *d = &c->s->nodes[k];
  const js_node *s = &c->s->nodes[idx];
  *d = *s;
  d->lits = NULL, d->names = NULL, d->pnode = NULL, d->alts = NULL, d->prefix = NULL;
  d->n_lits = d->n_props = d->n_alts = d->n_prefix = 0;
  if (s->n_lits && !(d->lits = calloc((size_t)s->n_lits, sizeof *d->lits))) return fail(c, "out of memory");
  for (; d->n_lits < s->n_lits; d->n_lits++)
    if (!(d->lits[d->n_lits] = strdup(s->lits[d->n_lits]))) return fail(c, "out of memory");
  if (s->n_props && (!(d->names = calloc((size_t)s->n_props, sizeof *d->names)) || !(d->pnode = malloc((size_t)s->n_props * sizeof *d->pnode))))
    return fail(c, "out of memory");
  for (; d->n_props < s->n_props; d->n_props++)
    if (!(d->names[d->n_props] = strdup(s->names[d->n_props]))) return fail(c, "out of memory");
  if (s->n_props) memcpy(d->pnode, s->pnode, (size_t)s->n_props * sizeof *d->pnode);
  if (s->n_alts) {
    if (!(d->alts = malloc((size_t)s->n_alts * sizeof *d->alts))) return fail(c, "out of memory");
    memcpy(d->alts, s->alts, (size_t)s->n_alts * sizeof *d->alts), d->n_alts = s->n_alts;
  }
  if (s->n_prefix) {
    if (!(d->prefix = malloc((size_t)s->n_prefix * sizeof *d->prefix))) return fail(c, "out of memory");
    memcpy(d->prefix, s->prefix, (size_t)s->n_prefix * sizeof *d->prefix), d->n_prefix = s->n_prefix;
  }
  return k;
}

/* The document itself: an object (tool arguments), or anything but a bare number (it could never be seen to end). */
static int restrict_root(cc *c, int idx, unsigned mask, int depth) {
  const char *what = mask == T_OBJ ? "the value must be an object" : "a number as the whole document is not supported";
  if (depth > 8) return fail(c, "%s (the root's references go deeper than 8 levels)", what);
  int k = clone_node(c, idx);
  if (k < 0) return -1;
  js_node *nd = &c->s->nodes[k];
  if (nd->n_alts) {
    int n = 0;
    for (int i = 0; i < c->s->nodes[k].n_alts; i++) {
      int saved = c->failed;
      int a = restrict_root(c, c->s->nodes[k].alts[i], mask, depth + 1);
      c->failed = saved;
      if (a >= 0) c->s->nodes[k].alts[n++] = a;
    }
    c->s->nodes[k].n_alts = n;
    return n ? k : fail(c, mask == T_OBJ ? "no branch of anyOf is an object" : "no branch of anyOf is a non-number");
  }
  if (nd->n_lits) {
    int n = 0;
    for (int i = 0; i < nd->n_lits; i++) {
      char f = nd->lits[i][0];
      int ok = mask == T_OBJ ? f == '{' : !(f == '-' || (f >= '0' && f <= '9'));
      if (ok) nd->lits[n++] = nd->lits[i];
      else free(nd->lits[i]);
    }
    nd->n_lits = n;
    return n ? k : fail(c, "%s", what);
  }
  nd->types &= mask;
  if (!nd->types) return fail(c, "%s", what);
  return k;
}

/* ---- uniqueItems, once every node is compiled (a $ref target may be compiled after the array that uses it) ---- */

static int literal_items(const js_node *nd) {
  return nd->n_lits > 0 || (!nd->n_alts && nd->types && !(nd->types & ~(unsigned)(T_BOOL | T_NULL)));
}

/* Strings without a pattern (and longer than 0: there are then more than KN_JSV_UNIQUE of them after any prefix), or
 * numbers: kept apart by the hashes of their values. */
static int hashed_items(const js_node *nd) {
  if (nd->n_lits || nd->n_alts || !nd->types) return 0;
  if (nd->types == T_STR) return !nd->re && nd->max_len != 0;
  return !(nd->types & ~(unsigned)(T_INT | T_NUM));
}

static int unique_items(cc *c, int idx) {
  js_node *nd = &c->s->nodes[idx];
  int lo = nd->min_items, itn = nd->items > 0 ? js_deref(c->s, nd->items) : nd->items; /* items: {"$ref": ...} */
  js_node *it = itn > 0 && !nd->n_prefix ? &c->s->nodes[itn] : NULL;
  if (it && literal_items(it)) {
    int distinct = it->n_lits ? it->n_lits : (it->types & T_BOOL ? 2 : 0) + (it->types & T_NULL ? 1 : 0);
    if (lo > distinct) return fail(c, "uniqueItems: minItems %d but only %d distinct values", lo, distinct);
    nd->unique = JS_UNIQ_LITS;
  } else if (it && hashed_items(it)) {
    if (lo > KN_JSV_UNIQUE)
      return fail(c, "uniqueItems: minItems %d is more than the %d distinct strings or numbers kiln can keep apart",
                  lo, KN_JSV_UNIQUE);
    if (it->types != T_STR) { /* numbers: written as bounded ones, so each value is exact */
      if (!it->ranged) it->ranged = 1, it->lo = -js_range_free(), it->hi = js_range_free();
      js_grid n = js_range_count(it);
      if (n < lo) return fail(c, "uniqueItems: minItems %d but only %d distinct values", lo, (int)n);
    }
    nd->unique = JS_UNIQ_HASH;
  } else if (it && it->types == T_STR && !it->n_alts && !it->n_lits && !it->re && it->max_len == 0) { /* only "" */
    if (lo > 1) return fail(c, "uniqueItems: minItems %d but only 1 distinct values", lo);
    nd->unique = JS_UNIQ_ONE;
    nd->max_items = nd->max_items == 0 ? 0 : 1;
  } else if (nd->max_items < 0 || nd->max_items > 1) {
    /* Objects, arrays, patterned strings, anyOf or mixed items, prefixItems: whether some way to end the item from a
     * byte is not an item already written cannot be decided as the bytes come, so such an array is refused, never
     * quietly cut to one item. */
    const char *what = !it && nd->n_prefix ? "a prefixItems tuple"
                       : it && it->n_alts ? "anyOf/oneOf items"
                       : !it || it->types == T_ANY ? "items of any type"
                       : it->types == T_OBJ ? "objects"
                       : it->types == T_ARR ? "arrays"
                       : it->types == T_STR ? "strings with a pattern or format"
                                            : "items of mixed types";
    return fail(c, "uniqueItems over %s is not enforced while decoding (kiln keeps apart strings without pattern or "
                "format, numbers, and enum/const/boolean/null items): give the array maxItems 1, or its items an enum",
                what);
  }
  else
    nd->unique = JS_UNIQ_ONE; /* at most one item (maxItems 0 or 1): unique whatever it is */
  return 0;
}

/* A loop of references that reads nothing ({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, ...]}}}). */
static int alias_loop(const kn_jschema *s, int i, char *color) {
  if (color[i] == 1) return 1;
  if (color[i] == 2) return 0;
  color[i] = 1;
  for (int k = 0; k < s->nodes[i].n_alts; k++)
    if (alias_loop(s, s->nodes[i].alts[k], color)) return 1;
  color[i] = 2;
  return 0;
}

static int min_i(int a, int b) { return a < b ? a : b; }
static int max_i(int a, int b) { return a > b ? a : b; }

/* Each node's need: the frames (open values) its shortest completion takes; JS_NEED_INF when it has none. */
static void compute_needs(kn_jschema *s) {
  for (int i = 0; i < s->n; i++) s->nodes[i].need = s->nodes[i].obj_need = s->nodes[i].arr_need = JS_NEED_INF;
  for (int changed = 1, round = 0; changed && round < s->n + 4; round++) {
    changed = 0;
    for (int i = 0; i < s->n; i++) {
      js_node *nd = &s->nodes[i];
      int on = nd->required ? 2 : 1, an = 1, nn = JS_NEED_INF;
      for (int p = 0; p < nd->n_props; p++)
        if (nd->required >> p & 1) on = max_i(on, 1 + s->nodes[nd->pnode[p]].need);
      for (int k = 0; k < nd->min_items; k++) {
        int it = js_item_node(nd, (uint32_t)k);
        an = max_i(an, it < 0 ? JS_NEED_INF : 1 + s->nodes[it].need);
      }
      on = min_i(on, JS_NEED_INF), an = min_i(an, JS_NEED_INF);
      if (nd->n_alts)
        for (int a = 0; a < nd->n_alts; a++) nn = min_i(nn, s->nodes[nd->alts[a]].need);
      else if (nd->n_lits) nn = 1;
      else {
        if (nd->types & (T_NULL | T_BOOL | T_INT | T_NUM | T_STR)) nn = 1;
        if (nd->types & T_OBJ) nn = min_i(nn, on);
        if (nd->types & T_ARR) nn = min_i(nn, an);
      }
      if (nn != nd->need || on != nd->obj_need || an != nd->arr_need) changed = 1;
      nd->need = nn, nd->obj_need = on, nd->arr_need = an;
    }
  }
}

kn_jschema *kn_jschema_compile(const cJSON *schema, unsigned flags, char *err, size_t errlen) {
  cc c = {.err = err, .errlen = errlen, .doc = schema};
  if (!(c.s = calloc(1, sizeof *c.s))) return snprintf(err, errlen, "out of memory"), NULL;
  int any = new_node(&c); /* node 0: anything (the value of `true`, of unlisted keys, of items not described) */
  int root = any;
  if (root >= 0 && cJSON_IsObject(schema)) { /* the document is the target of "#" */
    cJSON ref = {.type = cJSON_String, .valuestring = (char *)"#"};
    root = compile_ref(&c, &ref, -1);
    c.path[0] = 0;
  } else if (root >= 0) {
    root = compile(&c, schema, 0);
  }
  if (root >= 0 && !c.failed) {
    char *color = calloc((size_t)c.s->n, 1);
    for (int i = 0; color && i < c.s->n && !c.failed; i++)
      if (alias_loop(c.s, i, color)) fail(&c, "$ref: a loop of references that reads no value");
    if (!color) fail(&c, "out of memory");
    free(color);
  }
  for (int i = 0; root >= 0 && !c.failed && i < c.n_uniq; i++) {
    memcpy(c.path, c.uniq[i].path, sizeof c.path);
    unique_items(&c, c.uniq[i].node);
  }
  free(c.uniq);
  c.path[0] = 0;
  if (root >= 0 && !c.failed) root = restrict_root(&c, root, flags & KN_JSCHEMA_ROOT_OBJECT ? T_OBJ : (unsigned)(T_ANY & ~(T_INT | T_NUM)), 0);
  if (root >= 0 && !c.failed) {
    compute_needs(c.s);
    if (c.s->nodes[root].need > KN_JSV_DEPTH)
      fail(&c, "the schema has no document within %d levels of nesting (a required recursive $ref with no way out?)", KN_JSV_DEPTH);
  }
  if (root < 0 || c.failed) {
    kn_jschema_free(c.s);
    return NULL;
  }
  c.s->root = root;
  return c.s;
}

const kn_jschema *kn_jschema_any_object(void) {
  static js_node nodes[2] = {
      {.types = T_ANY, .extra = 0, .items = 0, .max_items = -1, .max_len = -1, .need = 1, .obj_need = 1, .arr_need = 1},
      {.types = T_OBJ, .extra = 0, .items = 0, .max_items = -1, .max_len = -1, .need = 1, .obj_need = 1, .arr_need = 1},
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
    free(n->lits), free(n->names), free(n->pnode), free(n->alts), free(n->prefix);
  }
  for (int i = 0; i < s->n_res; i++) kn_regex_free(s->res[i]);
  free(s->res);
  free(s->nodes);
  free(s);
}
