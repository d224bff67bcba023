/* models/text/json_schema_merge.c: allOf (and $ref beside other keywords) folded into one schema before compiling.
 * Each branch's top-level $ref is followed, then keywords combine as the intersection they mean: types intersect,
 * properties of both sides merge key by key (a key one side forbids is dropped; if it is also required, the merge is
 * refused), required sets unite, enum/const values intersect, bounds take the stricter side, items and prefixItems
 * merge position by position, and an anyOf on either side is distributed over the other (branches that contradict
 * it drop out). Two different patterns or formats for one string are refused rather than approximated. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/json_schema_merge.h"

#define MAX_MERGE_DEPTH 16

static cJSON *mfail(kn_jmerge *m, const char *fmt, ...) {
  if (!m->failed) {
    m->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, m->errlen, fmt, ap);
    va_end(ap);
  }
  return NULL;
}

const cJSON *kn_jref_resolve(const cJSON *root, const char *ref, char *err, size_t errlen) {
  if (ref[0] != '#') {
    snprintf(err, errlen, "$ref \"%.80s\": only references inside the schema (#/...) are supported", ref);
    return NULL;
  }
  const cJSON *at = root;
  const char *p = ref + 1;
  while (*p) {
    if (*p != '/') {
      snprintf(err, errlen, "$ref \"%.80s\": not a JSON pointer (#/$defs/name)", ref);
      return NULL;
    }
    p++;
    char seg[256];
    size_t n = 0;
    for (; *p && *p != '/' && n + 1 < sizeof seg; p++) {
      if (*p == '~' && (p[1] == '0' || p[1] == '1')) seg[n++] = p[1] == '0' ? '~' : '/', p++;
      else if (*p == '%' && p[1] && p[2]) { /* URI escapes inside the fragment */
        char h[3] = {p[1], p[2], 0};
        seg[n++] = (char)strtol(h, NULL, 16), p += 2;
      } else seg[n++] = *p;
    }
    seg[n] = 0;
    if (cJSON_IsArray(at)) {
      char *end;
      long i = strtol(seg, &end, 10);
      at = *end || i < 0 ? NULL : cJSON_GetArrayItem(at, (int)i);
    } else {
      at = cJSON_IsObject(at) ? cJSON_GetObjectItemCaseSensitive(at, seg) : NULL;
    }
    if (!at) {
      snprintf(err, errlen, "$ref \"%.80s\": nothing at that place in the schema", ref);
      return NULL;
    }
  }
  return at;
}

static cJSON *dup(const cJSON *x) { return cJSON_Duplicate(x, 1); }

static cJSON *without(const cJSON *s, const char *a, const char *b) {
  cJSON *o = cJSON_CreateObject();
  const cJSON *k;
  cJSON_ArrayForEach(k, s) if (strcmp(k->string, a) && (!b || strcmp(k->string, b))) cJSON_AddItemToObject(o, k->string, dup(k));
  return o;
}

static cJSON *merge(kn_jmerge *m, const cJSON *a, const cJSON *b, int depth);

cJSON *kn_jschema_normalize(kn_jmerge *m, const cJSON *s, int depth) {
  if (depth > MAX_MERGE_DEPTH) return mfail(m, "allOf/$ref: merging goes deeper than %d levels (a recursive $ref inside allOf?)", MAX_MERGE_DEPTH);
  if (!cJSON_IsObject(s)) return dup(s);
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref"), *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
  if (ref) {
    if (!cJSON_IsString(ref)) return mfail(m, "$ref: expected a string");
    const cJSON *t = kn_jref_resolve(m->root, ref->valuestring, m->err, m->errlen);
    if (!t) return m->failed = 1, NULL;
    cJSON *tn = kn_jschema_normalize(m, t, depth + 1), *rest = without(s, "$ref", NULL);
    cJSON *rn = tn ? kn_jschema_normalize(m, rest, depth + 1) : NULL;
    cJSON *r = rn ? merge(m, tn, rn, depth + 1) : NULL;
    cJSON_Delete(tn), cJSON_Delete(rest), cJSON_Delete(rn);
    return r;
  }
  if (!all) return dup(s);
  if (!cJSON_IsArray(all) || !cJSON_GetArraySize(all)) return mfail(m, "allOf: expected a non-empty array of schemas");
  cJSON *r = without(s, "allOf", NULL);
  const cJSON *br;
  cJSON_ArrayForEach(br, all) {
    cJSON *bn = kn_jschema_normalize(m, br, depth + 1);
    cJSON *n = bn ? merge(m, r, bn, depth + 1) : NULL;
    cJSON_Delete(bn), cJSON_Delete(r);
    if (!(r = n)) return NULL;
  }
  return r;
}

/* ---- keyword by keyword ------------------------------------------------------------------------------------ */

static const char *const type_names[] = {"null", "boolean", "integer", "number", "string", "array", "object"};

/* 0: an unknown type name. */
static unsigned type_bit(const cJSON *x) {
  for (int i = 0; i < 7; i++)
    if (cJSON_IsString(x) && !strcmp(x->valuestring, type_names[i])) return 1u << i;
  return 0;
}

/* The types a schema allows as a mask (number includes integer); 0 when a name is unknown. */
static unsigned type_of(const cJSON *s) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type"), *x;
  if (!t) return 127;
  unsigned m = 0;
  if (cJSON_IsArray(t)) {
    cJSON_ArrayForEach(x, t) {
      unsigned b = type_bit(x);
      if (!b) return 0;
      m |= b;
    }
  } else if (!(m = type_bit(t))) {
    return 0;
  }
  if (m & 8) m |= 4;
  return m;
}

static void put_type(cJSON *o, unsigned m) {
  const char *const *names = type_names;
  if (m & 8) m &= ~4u;
  cJSON *arr = cJSON_CreateArray();
  int n = 0;
  for (int i = 0; i < 7; i++)
    if (m >> i & 1) cJSON_AddItemToArray(arr, cJSON_CreateString(names[i])), n++;
  if (n == 1) {
    cJSON *one = cJSON_CreateString(cJSON_GetArrayItem(arr, 0)->valuestring);
    cJSON_Delete(arr);
    cJSON_AddItemToObject(o, "type", one);
  } else {
    cJSON_AddItemToObject(o, "type", arr);
  }
}

/* The schema a side gives the value of key k (borrowed; NULL: true). *forbid: the side allows no such key. */
static const cJSON *key_schema(const cJSON *s, const char *k, int *forbid) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "properties"), k);
  if (p) return *forbid = cJSON_IsFalse(p), cJSON_IsTrue(p) ? NULL : p;
  const cJSON *add = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
  if (!add) return *forbid = 0, NULL;
  return *forbid = cJSON_IsFalse(add), cJSON_IsObject(add) ? add : NULL;
}

static cJSON *merge_opt(kn_jmerge *m, const cJSON *a, const cJSON *b, int depth) {
  if (!a) return b ? dup(b) : NULL;
  if (!b) return dup(a);
  if (cJSON_Compare(a, b, 1)) return dup(a);
  cJSON *an = kn_jschema_normalize(m, a, depth + 1), *bn = an ? kn_jschema_normalize(m, b, depth + 1) : NULL;
  cJSON *r = bn ? merge(m, an, bn, depth + 1) : NULL;
  cJSON_Delete(an), cJSON_Delete(bn);
  return r;
}

static int merge_properties(kn_jmerge *m, cJSON *o, const cJSON *a, const cJSON *b, int depth) {
  const cJSON *pa = cJSON_GetObjectItemCaseSensitive(a, "properties"), *pb = cJSON_GetObjectItemCaseSensitive(b, "properties");
  cJSON *props = cJSON_CreateObject(), *req = cJSON_CreateArray();
  const cJSON *sides[2] = {pa, pb}, *k;
  for (int side = 0; side < 2; side++)
    cJSON_ArrayForEach(k, sides[side]) {
      if (cJSON_GetObjectItemCaseSensitive(props, k->string)) continue;
      int fa, fb;
      const cJSON *sa = key_schema(a, k->string, &fa), *sb = key_schema(b, k->string, &fb);
      if (fa || fb) continue; /* forbidden by one side: checked against required below */
      cJSON *v = merge_opt(m, sa, sb, depth);
      if (m->failed) return cJSON_Delete(props), cJSON_Delete(req), -1;
      cJSON_AddItemToObject(props, k->string, v ? v : cJSON_CreateTrue());
    }
  const cJSON *ra = cJSON_GetObjectItemCaseSensitive(a, "required"), *rb = cJSON_GetObjectItemCaseSensitive(b, "required");
  const cJSON *reqs[2] = {ra, rb};
  for (int side = 0; side < 2; side++)
    cJSON_ArrayForEach(k, reqs[side]) {
      if (!cJSON_IsString(k)) continue;
      int dupe = 0, fa, fb;
      const cJSON *x;
      cJSON_ArrayForEach(x, req) dupe |= !strcmp(x->valuestring, k->valuestring);
      if (dupe) continue;
      key_schema(a, k->valuestring, &fa), key_schema(b, k->valuestring, &fb);
      if (fa || fb) {
        cJSON_Delete(props), cJSON_Delete(req);
        return mfail(m, "allOf: \"%.60s\" is required by one branch and forbidden by another", k->valuestring), -1;
      }
      cJSON_AddItemToArray(req, cJSON_CreateString(k->valuestring));
    }
  if (pa || pb) cJSON_AddItemToObject(o, "properties", props);
  else cJSON_Delete(props);
  if (ra || rb) cJSON_AddItemToObject(o, "required", req);
  else cJSON_Delete(req);
  const cJSON *aa = cJSON_GetObjectItemCaseSensitive(a, "additionalProperties"), *ab = cJSON_GetObjectItemCaseSensitive(b, "additionalProperties");
  if (cJSON_IsFalse(aa) || cJSON_IsFalse(ab)) cJSON_AddFalseToObject(o, "additionalProperties");
  else if (aa || ab) {
    cJSON *v = merge_opt(m, cJSON_IsTrue(aa) ? NULL : aa, cJSON_IsTrue(ab) ? NULL : ab, depth);
    if (m->failed) return -1;
    cJSON_AddItemToObject(o, "additionalProperties", v ? v : cJSON_CreateTrue());
  }
  return 0;
}

static cJSON *values_of(const cJSON *s) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(s, "enum"), *c = cJSON_GetObjectItemCaseSensitive(s, "const");
  if (e) return dup(e);
  if (!c) return NULL;
  cJSON *a = cJSON_CreateArray();
  cJSON_AddItemToArray(a, dup(c));
  return a;
}

static int merge_values(kn_jmerge *m, cJSON *o, const cJSON *a, const cJSON *b) {
  cJSON *va = values_of(a), *vb = values_of(b);
  if (!va && !vb) return 0;
  if (va && vb) {
    cJSON *r = cJSON_CreateArray();
    const cJSON *x, *y;
    cJSON_ArrayForEach(x, va) {
      int in = 0;
      cJSON_ArrayForEach(y, vb) in |= cJSON_Compare(x, y, 1);
      if (in) cJSON_AddItemToArray(r, dup(x));
    }
    cJSON_Delete(va), cJSON_Delete(vb);
    if (!cJSON_GetArraySize(r)) return cJSON_Delete(r), mfail(m, "allOf: the branches' enum/const values have none in common"), -1;
    va = r, vb = NULL;
  }
  cJSON_AddItemToObject(o, "enum", va ? va : vb);
  return 0;
}

static void merge_bound(cJSON *o, const cJSON *a, const cJSON *b, const char *key, int take_max) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, key), *y = cJSON_GetObjectItemCaseSensitive(b, key);
  if (x && !cJSON_IsNumber(x)) x = NULL; /* a draft-4 boolean exclusiveMinimum goes with its side's minimum */
  if (y && !cJSON_IsNumber(y)) y = NULL;
  if (!x && !y) return;
  double v = !x ? y->valuedouble : !y ? x->valuedouble
           : take_max ? (x->valuedouble > y->valuedouble ? x->valuedouble : y->valuedouble)
                      : (x->valuedouble < y->valuedouble ? x->valuedouble : y->valuedouble);
  cJSON_AddNumberToObject(o, key, v);
}

static int merge_items(kn_jmerge *m, cJSON *o, const cJSON *a, const cJSON *b, int depth) {
  const cJSON *ia = cJSON_GetObjectItemCaseSensitive(a, "items"), *ib = cJSON_GetObjectItemCaseSensitive(b, "items");
  const cJSON *pa = cJSON_GetObjectItemCaseSensitive(a, "prefixItems"), *pb = cJSON_GetObjectItemCaseSensitive(b, "prefixItems");
  if (cJSON_IsArray(ia) || cJSON_IsArray(ib)) return mfail(m, "allOf: tuple items (an array) in a branch: use prefixItems"), -1;
  int n = cJSON_GetArraySize(pa) > cJSON_GetArraySize(pb) ? cJSON_GetArraySize(pa) : cJSON_GetArraySize(pb);
  if (n) {
    cJSON *pre = cJSON_AddArrayToObject(o, "prefixItems");
    for (int i = 0; i < n; i++) {
      const cJSON *x = i < cJSON_GetArraySize(pa) ? cJSON_GetArrayItem(pa, i) : ia;
      const cJSON *y = i < cJSON_GetArraySize(pb) ? cJSON_GetArrayItem(pb, i) : ib;
      if (cJSON_IsFalse(x) || cJSON_IsFalse(y)) break; /* no item here: the prefix ends */
      cJSON *v = merge_opt(m, cJSON_IsTrue(x) ? NULL : x, cJSON_IsTrue(y) ? NULL : y, depth);
      if (m->failed) return -1;
      cJSON_AddItemToArray(pre, v ? v : cJSON_CreateTrue());
    }
  }
  if (cJSON_IsFalse(ia) || cJSON_IsFalse(ib)) cJSON_AddFalseToObject(o, "items");
  else if (ia || ib) {
    cJSON *v = merge_opt(m, cJSON_IsTrue(ia) ? NULL : ia, cJSON_IsTrue(ib) ? NULL : ib, depth);
    if (m->failed) return -1;
    cJSON_AddItemToObject(o, "items", v ? v : cJSON_CreateTrue());
  }
  return 0;
}

static const char *const handled[] = {"type", "properties", "required", "additionalProperties", "enum", "const",
                                      "minimum", "exclusiveMinimum", "minLength", "minItems", "maximum",
                                      "exclusiveMaximum", "maxLength", "maxItems", "items", "prefixItems",
                                      "pattern", "format", "uniqueItems", "$defs", "definitions", NULL};

static int is_handled(const char *k) {
  for (const char *const *h = handled; *h; h++)
    if (!strcmp(*h, k)) return 1;
  return 0;
}

static cJSON *distribute(kn_jmerge *m, const cJSON *a, const cJSON *b, const char *key, int depth) {
  const cJSON *alts = cJSON_GetObjectItemCaseSensitive(a, key);
  if (!cJSON_IsArray(alts) || !cJSON_GetArraySize(alts)) return mfail(m, "%s: expected a non-empty array of schemas", key);
  cJSON *rest = without(a, key, NULL), *out = cJSON_CreateArray();
  const cJSON *br;
  char first[384] = "";
  cJSON_ArrayForEach(br, alts) {
    kn_jmerge sub = *m;
    sub.failed = 0;
    char err[384];
    sub.err = err, sub.errlen = sizeof err;
    cJSON *bn = kn_jschema_normalize(&sub, br, depth + 1);
    cJSON *x = bn ? merge(&sub, rest, bn, depth + 1) : NULL;
    cJSON *y = x ? merge(&sub, x, b, depth + 1) : NULL;
    cJSON_Delete(bn), cJSON_Delete(x);
    if (y) cJSON_AddItemToArray(out, y);
    else if (!first[0]) snprintf(first, sizeof first, "%s", err);
  }
  cJSON_Delete(rest);
  if (!cJSON_GetArraySize(out)) {
    cJSON_Delete(out);
    return mfail(m, "allOf: no branch of %s fits the other branches (%s)", key, first);
  }
  cJSON *o = cJSON_CreateObject(); /* A and oneOf [B, C] is oneOf [A and B, A and C]: still exactly one */
  cJSON_AddItemToObject(o, key, out);
  return o;
}

static cJSON *merge(kn_jmerge *m, const cJSON *a, const cJSON *b, int depth) {
  if (depth > MAX_MERGE_DEPTH) return mfail(m, "allOf: merging goes deeper than %d levels (a recursive $ref in two branches?)", MAX_MERGE_DEPTH);
  if (cJSON_IsFalse(a) || cJSON_IsFalse(b)) return mfail(m, "allOf: a branch is false (nothing is valid)");
  if (cJSON_IsTrue(a) || !cJSON_IsObject(a)) return dup(b);
  if (cJSON_IsTrue(b) || !cJSON_IsObject(b)) return dup(a);
  static const char *const alt_keys[] = {"anyOf", "oneOf"};
  for (int i = 0; i < 2; i++) {
    if (cJSON_GetObjectItemCaseSensitive(a, alt_keys[i])) return distribute(m, a, b, alt_keys[i], depth);
    if (cJSON_GetObjectItemCaseSensitive(b, alt_keys[i])) return distribute(m, b, a, alt_keys[i], depth);
  }
  cJSON *o = cJSON_CreateObject();
  unsigned ta = type_of(a), tb = type_of(b), t = ta & tb;
  if (!ta || !tb) return cJSON_Delete(o), mfail(m, "type: an unknown type name");
  if (!t) return cJSON_Delete(o), mfail(m, "allOf: the branches allow no common type");
  if (t != 127) put_type(o, t);
  if (merge_properties(m, o, a, b, depth) || merge_values(m, o, a, b) || merge_items(m, o, a, b, depth)) return cJSON_Delete(o), NULL;
  static const char *const mins[] = {"minimum", "exclusiveMinimum", "minLength", "minItems"};
  static const char *const maxs[] = {"maximum", "exclusiveMaximum", "maxLength", "maxItems"};
  for (int i = 0; i < 4; i++) merge_bound(o, a, b, mins[i], 1), merge_bound(o, a, b, maxs[i], 0);
  static const char *const texts[] = {"pattern", "format"};
  for (int i = 0; i < 2; i++) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, texts[i]), *y = cJSON_GetObjectItemCaseSensitive(b, texts[i]);
    if (x && y && !cJSON_Compare(x, y, 1))
      return cJSON_Delete(o), mfail(m, "allOf: two different %ss for one string are not supported", texts[i]);
    if (x || y) cJSON_AddItemToObject(o, texts[i], dup(x ? x : y));
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "uniqueItems")) || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "uniqueItems")))
    cJSON_AddTrueToObject(o, "uniqueItems");
  /* everything else (annotations, and keywords the compiler will name as unsupported) is carried over */
  const cJSON *sides[2] = {a, b}, *k;
  for (int side = 0; side < 2; side++)
    cJSON_ArrayForEach(k, sides[side]) if (!is_handled(k->string) && !cJSON_GetObjectItemCaseSensitive(o, k->string))
      cJSON_AddItemToObject(o, k->string, dup(k));
  return o;
}
