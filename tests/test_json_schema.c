/* Tests of the schema automaton (models/text/json_schema*.c) without a model: random schemas, random walks through the
 * bytes each state accepts ended by the automaton's own shortest completion, and every document checked by cJSON and
 * by a plain reference validator written from the JSON Schema rules; mutated documents the automaton still accepts
 * must validate too. Unsupported keywords are errors that name the keyword and where it is. */
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/json_regex.h"
#include "models/text/json_schema.h"
#include "check.h"

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

/* ---- a reference validator --------------------------------------------------------------------------------- */

static size_t utf8_len(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

static bool isalnum_c(char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

static bool has_type(const cJSON *v, const char *t) {
  if (!strcmp(t, "null")) return cJSON_IsNull(v);
  if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
  if (!strcmp(t, "number")) return cJSON_IsNumber(v);
  if (!strcmp(t, "integer")) return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
  if (!strcmp(t, "string")) return cJSON_IsString(v);
  if (!strcmp(t, "array")) return cJSON_IsArray(v);
  return cJSON_IsObject(v);
}

/* ---- formats, checked by hand (not with the patterns the compiler uses) ---- */

static bool digits(const char *s, int n) {
  for (int i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

static int num2(const char *s) { return (s[0] - '0') * 10 + s[1] - '0'; }

static bool is_date(const char *s, size_t n) {
  if (n != 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2)) return false;
  int y = atoi(s), m = num2(s + 5), d = num2(s + 8);
  static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m >= 1 && m <= 12 && d >= 1 && d <= (m == 2 && !leap ? 28 : days[m - 1]);
}

static bool is_time(const char *s, size_t n) {
  if (n < 9 || !digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) || s[5] != ':' || !digits(s + 6, 2)) return false;
  if (num2(s) > 23 || num2(s + 3) > 59 || num2(s + 6) > 59) return false;
  size_t i = 8;
  if (s[i] == '.') {
    size_t k = ++i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == k) return false;
  }
  if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) return true;
  return i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) && s[i + 3] == ':' && digits(s + i + 4, 2) &&
         num2(s + i + 1) <= 23 && num2(s + i + 4) <= 59;
}

static bool is_ipv4(const char *s) {
  for (int part = 0; part < 4; part++) {
    int n = 0, v = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < 4) v = v * 10 + s[n] - '0', n++;
    if (n == 0 || n > 3 || v > 255 || (n > 1 && s[0] == '0')) return false;
    s += n;
    if (part < 3 && *s++ != '.') return false;
  }
  return *s == 0;
}

static bool is_uuid(const char *s) {
  if (strlen(s) != 36) return false;
  for (int i = 0; i < 36; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i])) return false;
  }
  return true;
}

static bool is_email(const char *s) {
  const char *at = strchr(s, '@');
  if (!at || at == s || strchr(at + 1, '@')) return false;
  const char *dot = strrchr(at, '.');
  if (!dot || dot == at + 1 || !dot[1] || strstr(s, "..")) return false;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= ' ' || strchr("\"(),:;<>[]\\", *p)) return false;
  return s[0] != '.' && at[-1] != '.';
}

static bool is_uri(const char *s) {
  if (!((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z')) return false;
  while (*s && (isalnum_c(*s) || strchr("+.-", *s))) s++;
  if (*s++ != ':' || !*s) return false;
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || strchr("\"<>\\^`{|}", *s)) return false;
  return true;
}

static bool format_ok(const char *f, const char *s) {
  size_t n = strlen(s);
  if (!strcmp(f, "date")) return is_date(s, n);
  if (!strcmp(f, "time")) return is_time(s, n);
  if (!strcmp(f, "date-time")) return n > 11 && (s[10] == 'T' || s[10] == 't') && is_date(s, 10) && is_time(s + 11, n - 11);
  if (!strcmp(f, "ipv4")) return is_ipv4(s);
  if (!strcmp(f, "uuid")) return is_uuid(s);
  if (!strcmp(f, "email")) return is_email(s);
  if (!strcmp(f, "uri")) return is_uri(s);
  return false;
}

/* pattern: POSIX extended regexes (the generated patterns use the syntax both understand), searched like ECMAScript's */
static bool pattern_ok(const char *pat, const char *s) {
  char ere[512];
  size_t n = 0;
  for (const char *p = pat; *p && n + 8 < sizeof ere; p++) /* \d is not POSIX: [0-9] */
    if (p[0] == '\\' && p[1] == 'd') memcpy(ere + n, "[0-9]", 5), n += 5, p++;
    else ere[n++] = *p;
  ere[n] = 0;
  regex_t re;
  if (regcomp(&re, ere, REG_EXTENDED | REG_NOSUB)) return false;
  bool ok = regexec(&re, s, 0, NULL, 0) == 0;
  regfree(&re);
  return ok;
}

static const cJSON *g_root; /* the schema $ref pointers start from */

static const cJSON *resolve(const char *ref) {
  const cJSON *at = g_root;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", ref + 1);
  for (char *seg = strtok(buf, "/"); seg && at; seg = strtok(NULL, "/")) at = cJSON_GetObjectItemCaseSensitive(at, seg);
  return at;
}

static bool ref_valid(const cJSON *s, const cJSON *v) {
  if (cJSON_IsTrue(s)) return true;
  const cJSON *k, *x;
  if ((k = cJSON_GetObjectItemCaseSensitive(s, "$ref")) && !ref_valid(resolve(k->valuestring), v)) return false;
  if ((k = cJSON_GetObjectItemCaseSensitive(s, "allOf"))) cJSON_ArrayForEach(x, k) if (!ref_valid(x, v)) return false;
  if ((k = cJSON_GetObjectItemCaseSensitive(s, "oneOf"))) {
    int n = 0;
    cJSON_ArrayForEach(x, k) n += ref_valid(x, v);
    if (n != 1) return false;
  }
  if ((k = cJSON_GetObjectItemCaseSensitive(s, "anyOf"))) {
    bool ok = false;
    cJSON_ArrayForEach(x, k) ok |= ref_valid(x, v);
    if (!ok) return false;
  }
  if ((k = cJSON_GetObjectItemCaseSensitive(s, "type"))) {
    bool ok = false;
    if (cJSON_IsString(k)) ok = has_type(v, k->valuestring);
    else cJSON_ArrayForEach(x, k) ok |= has_type(v, x->valuestring);
    if (!ok) return false;
  }
  if ((k = cJSON_GetObjectItemCaseSensitive(s, "enum"))) {
    bool ok = false;
    cJSON_ArrayForEach(x, k) ok |= cJSON_Compare(x, v, true);
    if (!ok) return false;
  }
  if ((k = cJSON_GetObjectItemCaseSensitive(s, "const")) && !cJSON_Compare(k, v, true)) return false;
  if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "minimum")) && !(d >= k->valuedouble)) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "maximum")) && !(d <= k->valuedouble)) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum")) && !(d > k->valuedouble)) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum")) && !(d < k->valuedouble)) return false;
  }
  if (cJSON_IsString(v)) {
    size_t n = utf8_len(v->valuestring);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "minLength")) && n < (size_t)k->valuedouble) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "maxLength")) && n > (size_t)k->valuedouble) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "pattern")) && !pattern_ok(k->valuestring, v->valuestring)) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "format")) && !format_ok(k->valuestring, v->valuestring)) return false;
  }
  if (cJSON_IsArray(v)) {
    int n = cJSON_GetArraySize(v);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "minItems")) && n < k->valuedouble) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "maxItems")) && n > k->valuedouble) return false;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
    int np = cJSON_GetArraySize(pre), i = 0;
    k = cJSON_GetObjectItemCaseSensitive(s, "items");
    cJSON_ArrayForEach(x, v) {
      const cJSON *is = i < np ? cJSON_GetArrayItem(pre, i) : k;
      i++;
      if (is && (cJSON_IsFalse(is) || !ref_valid(is, x))) return false;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "uniqueItems")))
      for (const cJSON *a = v->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
          if (cJSON_Compare(a, b, true)) return false;
  }
  if (cJSON_IsObject(v)) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(s, "required")) if (!cJSON_GetObjectItemCaseSensitive(v, x->valuestring)) return false;
    cJSON_ArrayForEach(x, v) {
      const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, x->string);
      if (ps && !ref_valid(ps, x)) return false;
      if (!ps && add && !cJSON_IsTrue(add) && (cJSON_IsFalse(add) || !ref_valid(add, x))) return false;
    }
  }
  return true;
}

/* ---- random schemas ---------------------------------------------------------------------------------------- */

static const char *NAMES[] = {"city", "n", "unit", "tags", "é", "a\"b", "days", "x", "opt", "nested"};

static cJSON *gen_schema(int depth);

static cJSON *gen_object(int depth) {
  cJSON *s = cJSON_CreateObject(), *props = cJSON_AddObjectToObject(s, "properties"), *req = cJSON_CreateArray();
  cJSON_AddStringToObject(s, "type", "object");
  int n = (int)rnd(depth > 2 ? 2 : 5);
  for (int i = 0; i < n; i++) {
    const char *name = NAMES[rnd(sizeof NAMES / sizeof *NAMES)];
    if (cJSON_GetObjectItemCaseSensitive(props, name)) continue;
    cJSON_AddItemToObject(props, name, gen_schema(depth + 1));
    if (rnd(2)) cJSON_AddItemToArray(req, cJSON_CreateString(name));
  }
  cJSON_AddItemToObject(s, "required", req);
  switch (rnd(4)) {
  case 0: cJSON_AddFalseToObject(s, "additionalProperties"); break;
  case 1: cJSON_AddTrueToObject(s, "additionalProperties"); break;
  case 2: if (depth < 2) cJSON_AddItemToObject(s, "additionalProperties", gen_schema(depth + 2)); break;
  }
  return s;
}

static cJSON *g_defs; /* $defs of the schema being generated */
static int g_ndefs;

static const char *PATTERNS[] = {"^[a-z]+$", "^[0-9]{3}-[0-9]{4}$", "^(ab|cd)*x?$", "[0-9]", "^a", "z$",
                                 "^[A-Z][a-z]{1,5}( [A-Z][a-z]{1,5})?$", "^(red|green|blue)$", "^[a-f0-9]{2,4}$",
                                 "^x(y|z){2,3}$", "^[^0-9]*$", "^(a|b)+c?$", "^[.][a-z]*$", "q+"};
static const char *FORMATS[] = {"date", "time", "date-time", "email", "uuid", "uri", "ipv4"};

static cJSON *gen_object(int depth);
static cJSON *gen_schema(int depth);

static cJSON *range(bool integer) {
  cJSON *s = cJSON_CreateObject();
  cJSON_AddStringToObject(s, "type", integer ? "integer" : "number");
  double lo = integer ? (double)rnd(200) - 100 : ((double)rnd(2000) - 1000) / (rnd(2) ? 8 : 10);
  double hi = lo + (integer ? 2 + rnd(50) : 0.01 * (1 + rnd(500)));
  if (rnd(3)) cJSON_AddNumberToObject(s, rnd(2) ? "minimum" : "exclusiveMinimum", lo);
  if (rnd(3)) cJSON_AddNumberToObject(s, rnd(2) ? "maximum" : "exclusiveMaximum", hi);
  return s;
}

static cJSON *tree_ref(void) {
  if (!cJSON_GetObjectItemCaseSensitive(g_defs, "tree"))
    cJSON_AddItemToObject(g_defs, "tree", cJSON_Parse("{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
                                                      "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/tree\"},"
                                                      "\"maxItems\":2}},\"required\":[\"v\"],\"additionalProperties\":false}"));
  return cJSON_Parse("{\"$ref\":\"#/$defs/tree\"}");
}

/* The keywords beyond the first set: ranges, pattern, format, uniqueItems, prefixItems, $ref, allOf, oneOf. */
static cJSON *gen_new(int depth) {
  cJSON *s;
  switch (rnd(depth > 3 ? 5 : 10)) {
  case 0: return range(true);
  case 1: return range(false);
  case 2:
    s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "string");
    cJSON_AddStringToObject(s, "pattern", PATTERNS[rnd(sizeof PATTERNS / sizeof *PATTERNS)]);
    if (rnd(3) == 0) cJSON_AddNumberToObject(s, "maxLength", 3 + rnd(6));
    if (rnd(3) == 0) cJSON_AddNumberToObject(s, "minLength", rnd(4));
    return s;
  case 3:
    s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "string");
    cJSON_AddStringToObject(s, "format", FORMATS[rnd(sizeof FORMATS / sizeof *FORMATS)]);
    return s;
  case 4: {
    s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "array");
    cJSON *items = cJSON_AddObjectToObject(s, "items");
    int n = 1 + (int)rnd(4); /* distinct items there are (at most 4 counted) */
    switch (rnd(6)) {
    case 0: cJSON_AddStringToObject(items, "type", "boolean"), n = 2; break;
    case 1: /* strings and numbers: kept apart by value */
      cJSON_AddStringToObject(items, "type", "string"), n = 4;
      if (rnd(2)) cJSON_AddNumberToObject(items, "maxLength", 1 + rnd(3));
      break;
    case 2:
      cJSON_AddStringToObject(items, "type", "integer"), n = 3 + (int)rnd(2);
      cJSON_AddNumberToObject(items, "minimum", -1), cJSON_AddNumberToObject(items, "maximum", n - 2);
      break;
    case 3: cJSON_AddStringToObject(items, "type", rnd(2) ? "number" : "integer"), n = 4; break;
    case 4: /* patterned strings: not kept apart, so the schema allows one item (more is a compile error) */
      cJSON_AddStringToObject(items, "type", "string"), cJSON_AddStringToObject(items, "pattern", "^[ab]+$"), n = 1;
      cJSON_AddNumberToObject(s, "maxItems", 1);
      break;
    default: {
      static const char *vals[] = {"\"a\"", "\"b\"", "1", "12", "null", "true", "[1]", "{\"k\":1}"};
      cJSON *e = cJSON_AddArrayToObject(items, "enum");
      for (int i = 0, at = (int)rnd(8); i < n; i++) cJSON_AddItemToArray(e, cJSON_Parse(vals[(at + i) % 8]));
    }
    }
    cJSON_AddTrueToObject(s, "uniqueItems");
    if (rnd(2)) cJSON_AddNumberToObject(s, "minItems", rnd((uint32_t)n + 1));
    return s;
  }
  case 5: {
    s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "array");
    cJSON *pre = cJSON_AddArrayToObject(s, "prefixItems");
    for (int i = 0, n = 1 + (int)rnd(3); i < n; i++) cJSON_AddItemToArray(pre, gen_schema(depth + 1));
    if (rnd(2)) cJSON_AddFalseToObject(s, "items");
    else if (rnd(2)) cJSON_AddItemToObject(s, "items", gen_schema(depth + 1));
    if (rnd(2)) cJSON_AddNumberToObject(s, "minItems", rnd(2));
    return s;
  }
  case 6: {
    char name[16], ref[32];
    snprintf(name, sizeof name, "d%d", g_ndefs++);
    snprintf(ref, sizeof ref, "#/$defs/%s", name);
    cJSON_AddItemToObject(g_defs, name, gen_schema(depth + 1));
    s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "$ref", ref);
    if (rnd(3) == 0) cJSON_AddStringToObject(s, "description", "a reference");
    return s;
  }
  case 7: {
    cJSON *a = gen_object(depth + 1), *b = cJSON_CreateObject();
    cJSON_DeleteItemFromObject(a, "additionalProperties");
    cJSON *bp = cJSON_AddObjectToObject(b, "properties"), *br = cJSON_AddArrayToObject(b, "required");
    cJSON_AddItemToObject(bp, "b1", gen_schema(depth + 1));
    if (rnd(2)) cJSON_AddItemToArray(br, cJSON_CreateString("b1"));
    s = cJSON_CreateObject();
    cJSON *all = cJSON_AddArrayToObject(s, "allOf");
    cJSON_AddItemToArray(all, a), cJSON_AddItemToArray(all, b);
    return s;
  }
  case 8: { /* oneOf with disjoint branches: different types */
    s = cJSON_CreateObject();
    cJSON *one = cJSON_AddArrayToObject(s, "oneOf");
    int kinds[5] = {0, 1, 2, 3, 4};
    for (int i = 4; i > 0; i--) {
      int j = (int)rnd((uint32_t)i + 1), t = kinds[i];
      kinds[i] = kinds[j], kinds[j] = t;
    }
    for (int i = 0, n = 2 + (int)rnd(2); i < n; i++) {
      cJSON *b;
      switch (kinds[i]) {
      case 0: b = range(true); break;
      case 1: b = cJSON_Parse("{\"type\":\"string\",\"maxLength\":6}"); break;
      case 2: b = cJSON_Parse("{\"type\":\"boolean\"}"); break;
      case 3: b = gen_object(depth + 1); break;
      default: b = cJSON_Parse("{\"type\":\"array\",\"items\":{\"type\":\"null\"},\"maxItems\":2}");
      }
      cJSON_AddItemToArray(one, b);
    }
    if (rnd(2)) { /* or objects told apart by a required "kind" */
      cJSON_DeleteItemFromObject(s, "oneOf");
      one = cJSON_AddArrayToObject(s, "oneOf");
      for (int i = 0, n = 2 + (int)rnd(2); i < n; i++) {
        cJSON *b = gen_object(depth + 1), *props = cJSON_GetObjectItemCaseSensitive(b, "properties");
        char tag[8];
        snprintf(tag, sizeof tag, "k%d", i);
        cJSON *kind = cJSON_CreateObject();
        cJSON_AddStringToObject(kind, "const", tag);
        if (!props) props = cJSON_AddObjectToObject(b, "properties");
        cJSON_AddItemToObject(props, "kind", kind);
        cJSON *req = cJSON_GetObjectItemCaseSensitive(b, "required");
        if (!req) req = cJSON_AddArrayToObject(b, "required");
        cJSON_AddItemToArray(req, cJSON_CreateString("kind"));
        cJSON_AddItemToArray(one, b);
      }
    }
    return s;
  }
  default: return tree_ref();
  }
}

static cJSON *gen_schema(int depth) {
  if (g_defs && rnd(3) == 0) return gen_new(depth);
  cJSON *s = cJSON_CreateObject();
  switch (rnd(depth > 3 ? 7 : 11)) {
  case 0: cJSON_AddStringToObject(s, "type", "integer"); break;
  case 1: cJSON_AddStringToObject(s, "type", "number"); break;
  case 2: cJSON_AddStringToObject(s, "type", rnd(2) ? "boolean" : "null"); break;
  case 3: {
    cJSON_AddStringToObject(s, "type", "string");
    int lo = (int)rnd(4);
    if (rnd(2)) cJSON_AddNumberToObject(s, "minLength", lo);
    if (rnd(2)) cJSON_AddNumberToObject(s, "maxLength", lo + rnd(5));
    break;
  }
  case 4: {
    static const char *vals[] = {"\"celsius\"", "\"fahrenheit\"", "1", "12", "-3.5", "null", "true", "\"a\\\"b\"",
                                 "[1,2]", "{\"k\":\"v\"}"};
    cJSON *e = cJSON_AddArrayToObject(s, "enum");
    for (int i = 0, n = 1 + (int)rnd(4); i < n; i++) cJSON_AddItemToArray(e, cJSON_Parse(vals[rnd(10)]));
    break;
  }
  case 5: cJSON_AddItemToObject(s, "const", cJSON_CreateString(rnd(2) ? "fixed" : "é")); break;
  case 6: {
    cJSON *t = cJSON_AddArrayToObject(s, "type");
    cJSON_AddItemToArray(t, cJSON_CreateString("string"));
    cJSON_AddItemToArray(t, cJSON_CreateString("null"));
    break;
  }
  case 7: case 8: cJSON_Delete(s); return gen_object(depth);
  case 9: {
    cJSON_AddStringToObject(s, "type", "array");
    cJSON_AddItemToObject(s, "items", gen_schema(depth + 1));
    int lo = (int)rnd(3);
    if (rnd(2)) cJSON_AddNumberToObject(s, "minItems", lo);
    if (rnd(2)) cJSON_AddNumberToObject(s, "maxItems", lo + rnd(3));
    break;
  }
  default: {
    cJSON *a = cJSON_AddArrayToObject(s, "anyOf");
    for (int i = 0, n = 2 + (int)rnd(2); i < n; i++) cJSON_AddItemToArray(a, gen_schema(depth + 1));
  }
  }
  if (rnd(4) == 0) cJSON_AddStringToObject(s, "description", "ignored");
  return s;
}

/* ---- random walks ------------------------------------------------------------------------------------------ */

static const char *g_favour; /* bytes walks pick most of the time when accepted (NULL: every accepted byte alike) */

/* A document: random accepted bytes for a while, then the automaton's completion. */
static char *walk(const kn_jschema *sch, size_t *len) {
  kn_jsv v;
  kn_jsv_init(&v, sch);
  static char buf[1 << 16];
  size_t n = 0;
  int steps = (int)rnd(120);
  for (int i = 0; i < steps && !kn_jsv_done(&v); i++) {
    unsigned char ok[256];
    int nok = 0;
    for (int c = 1; c < 256; c++) {
      unsigned char b = (unsigned char)c;
      if (kn_jsv_accepts(&v, &b, 1)) ok[nok++] = b;
    }
    if (!nok) return NULL;
    unsigned char b = ok[rnd((uint32_t)nok)];
    if (g_favour && rnd(5)) { /* mostly few distinct bytes: items repeat unless the automaton keeps them apart */
      unsigned char fav[256];
      int nf = 0;
      for (int k = 0; k < nok; k++)
        if (strchr(g_favour, ok[k])) fav[nf++] = ok[k];
      if (nf) b = fav[rnd((uint32_t)nf)];
    }
    kn_jsv_push(&v, b);
    buf[n++] = (char)b;
  }
  size_t cl = 0;
  char *rest = kn_jsv_closure(&v, &cl);
  if (!rest) return NULL;
  char *doc = malloc(n + cl + 1);
  memcpy(doc, buf, n), memcpy(doc + n, rest, cl + 1);
  free(rest);
  *len = n + cl;
  return doc;
}

static void test_random(void) {
  int docs = 0;
  for (int iter = 0; iter < 1200; iter++) {
    g_defs = iter >= 300 ? cJSON_CreateObject() : NULL, g_ndefs = 0; /* the first 300: only the first keywords */
    cJSON *s = rnd(2) ? gen_object(0) : gen_schema(0);
    if (g_defs && g_defs->child) cJSON_AddItemToObject(s, "$defs", g_defs);
    else cJSON_Delete(g_defs);
    g_defs = NULL, g_root = s;
    char err[512];
    unsigned flags = cJSON_IsObject(s) && cJSON_GetObjectItemCaseSensitive(s, "properties") ? KN_JSCHEMA_ROOT_OBJECT : 0;
    kn_jschema *c = kn_jschema_compile(s, flags, err, sizeof err);
    char *text = cJSON_PrintUnformatted(s);
    if (!c) { /* only a whole-document number (or nothing valid in an enum) may be refused */
      CHECK(strstr(err, "number") || strstr(err, "allowed length") || strstr(err, "no value") || strstr(err, "object"), "%s refused: %s", text, err);
      free(text), cJSON_Delete(s);
      continue;
    }
    for (int k = 0; k < 8; k++) {
      size_t n = 0;
      char *doc = walk(c, &n);
      if (!CHECK(doc != NULL, "no document for %s", text)) break;
      cJSON *v = cJSON_ParseWithOpts(doc, NULL, 1);
      CHECK(v && ref_valid(s, v), "schema %s: document %s is %s", text, doc, v ? "invalid" : "not JSON");
      CHECK(kn_jschema_valid(c, doc, n), "schema %s: its own document %s is refused", text, doc);
      if (flags) CHECK(cJSON_IsObject(v), "not an object: %s", doc);
      /* a mutation the automaton accepts is valid too */
      if (n > 1) {
        char *m = strdup(doc);
        m[rnd((uint32_t)n)] = "{}[]\":,0 a-n\"t"[rnd(14)];
        cJSON *mv = cJSON_ParseWithOpts(m, NULL, 1);
        if (kn_jschema_valid(c, m, n)) CHECK(mv && ref_valid(s, mv), "schema %s: mutated %s accepted", text, m);
        cJSON_Delete(mv), free(m);
      }
      cJSON_Delete(v), free(doc);
      docs++;
    }
    kn_jschema_free(c), free(text), cJSON_Delete(s);
  }
  CHECK(docs > 5000, "only %d documents", docs);
}

/* ---- errors and limits ------------------------------------------------------------------------------------- */

static void test_errors(void) {
  static const struct { const char *schema, *want; } cases[] = {
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"multipleOf\":3}}}", "\"multipleOf\" is not supported (at /properties/a)"},
      {"{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", "back-references"},
      {"{\"type\":\"string\",\"pattern\":\"a(?=b)\"}", "lookahead"},
      {"{\"type\":\"string\",\"pattern\":\"(?<!a)b\"}", "lookbehind"},
      {"{\"type\":\"string\",\"pattern\":\"\\\\bword\"}", "word boundaries"},
      {"{\"type\":\"string\",\"pattern\":\"\\\\p{L}\"}", "Unicode property"},
      {"{\"type\":\"string\",\"pattern\":\"a(^b)\"}", "anchor ^ inside a group"},
      {"{\"type\":\"string\",\"pattern\":\"^[a-z]{3}$\",\"maxLength\":2}", "no string of the allowed length"},
      {"{\"type\":\"string\",\"format\":\"hostname\"}", "format \"hostname\" is not supported"},
      {"{\"$ref\":\"#/$defs/x\"}", "$ref \"#/$defs/x\": nothing at that place"},
      {"{\"$ref\":\"other.json#/a\"}", "only references inside the schema"},
      {"{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"},{\"type\":\"string\"}]}},\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/a\"}}}", "loop of references"},
      {"{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"n\":{\"$ref\":\"#/$defs/n\"}},\"required\":[\"n\"]}},\"$ref\":\"#/$defs/n\"}", "no document within"},
      {"{\"allOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "allOf: the branches allow no common type"},
      {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false},{\"required\":[\"b\"]}]}", "\"b\" is required by one branch and forbidden"},
      {"{\"allOf\":[{\"enum\":[\"a\",\"b\"]},{\"const\":\"c\"}]}", "enum/const values have none in common"},
      {"{\"allOf\":[{\"type\":\"string\",\"pattern\":\"a\"},{\"pattern\":\"b\"}]}", "two different patterns"},
      {"{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}}}", "no integer of at most 15 digits lies in the range"},
      {"{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"exclusiveMinimum\":1,\"exclusiveMaximum\":2}}}", "no integer"},
      {"{\"type\":\"array\",\"items\":{\"enum\":[1,2]},\"uniqueItems\":true,\"minItems\":3}", "only 2 distinct values"},
      /* uniqueItems over items that cannot be kept apart while decoding: refused by name, never cut to one item */
      {"{\"type\":\"array\",\"items\":{\"type\":\"object\"},\"uniqueItems\":true,\"minItems\":2}", "uniqueItems over objects is not enforced"},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"integer\"}}},\"uniqueItems\":true}}}", "uniqueItems over objects is not enforced while decoding"},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"object\"},\"uniqueItems\":true,\"maxItems\":2}}}", "uniqueItems over objects"},
      {"{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},\"uniqueItems\":true}", "uniqueItems over arrays is not enforced"},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"pattern\":\"^a\"},\"uniqueItems\":true,\"minItems\":2}", "uniqueItems over strings with a pattern or format"},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"format\":\"date\"},\"uniqueItems\":true}", "uniqueItems over strings with a pattern or format"},
      {"{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]},\"uniqueItems\":true}", "uniqueItems over anyOf/oneOf items"},
      {"{\"type\":\"array\",\"items\":{\"type\":[\"string\",\"null\"]},\"uniqueItems\":true}", "uniqueItems over items of mixed types"},
      {"{\"type\":\"array\",\"uniqueItems\":true}", "uniqueItems over items of any type"},
      {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"string\"}],\"items\":false,\"uniqueItems\":true}", "uniqueItems over a prefixItems tuple"},
      {"{\"$defs\":{\"o\":{\"type\":\"object\"}},\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/o\"},\"uniqueItems\":true}", "uniqueItems over objects"},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":0},\"uniqueItems\":true,\"minItems\":2}", "uniqueItems: minItems 2 but only 1 distinct values"},
      {"{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3},\"uniqueItems\":true,\"minItems\":4}", "uniqueItems: minItems 4 but only 3 distinct values"},
      {"{\"type\":\"array\",\"items\":{\"type\":\"number\",\"minimum\":999999999999999,\"maximum\":1e20},\"uniqueItems\":true,\"minItems\":2}", "uniqueItems: minItems 2 but only 1 distinct values"},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true,\"minItems\":33}", "more than the 32 distinct strings or numbers"},
      {"{\"type\":\"array\",\"prefixItems\":[{}],\"items\":false,\"minItems\":2}", "minItems 2 is more than the 1 items allowed"},
      {"{\"type\":\"strnig\"}", "unknown type \"strnig\""},
      {"{\"type\":\"integer\"}", "number"},
      {"{\"enum\":[1,2],\"type\":\"string\"}", "enum: no value"},
      {"{\"type\":\"object\",\"required\":[\"x\"],\"additionalProperties\":false}", "\"x\" is not in properties"},
      {"{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}", "minLength 5 is larger"},
      {"{\"anyOf\":[{\"type\":\"string\"}],\"oneOf\":[{\"type\":\"string\"}]}", "anyOf beside oneOf"},
      /* oneOf whose branches may both match: exactly-one cannot be enforced, so it is refused by name */
      {"{\"type\":\"object\",\"properties\":{\"v\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"string\",\"maxLength\":3}]}}}", "oneOf: branches 0 and 1 may both match one value"},
      {"{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\",\"minimum\":2}]}", "oneOf: branches 0 and 1"},
      {"{\"oneOf\":[{\"type\":\"boolean\"},{\"type\":\"string\"},{\"properties\":{\"a\":{\"const\":1}},\"required\":[\"a\"]}]}", "oneOf: branches 0 and 2"},
      {"{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"a\"}}},{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"b\"}}}]}", "oneOf: branches 0 and 1"},
      {"{\"oneOf\":[{\"const\":{\"a\":1,\"b\":2}},{\"enum\":[3,{\"b\":2,\"a\":1}]}]}", "oneOf: branches 0 and 1"},
      {"{\"oneOf\":[{\"enum\":[1,2]},{\"type\":\"integer\",\"minimum\":2}]}", "oneOf: branches 0 and 1"},
      {"{\"type\":\"object\",\"oneOf\":[{\"properties\":{\"x\":{\"type\":\"string\"}}},{\"properties\":{\"y\":{\"type\":\"string\"}}}]}", "oneOf: branches 0 and 1"},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\",\"not\":{}}]}}}", "\"not\" is not supported (at /properties/a/anyOf/0)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cJSON *s = cJSON_Parse(cases[i].schema);
    char err[512] = "";
    kn_jschema *c = kn_jschema_compile(s, 0, err, sizeof err);
    CHECK(!c && strstr(err, cases[i].want), "%s: got \"%s\", want \"%s\"", cases[i].schema, c ? "(compiled)" : err, cases[i].want);
    kn_jschema_free(c), cJSON_Delete(s);
  }
  /* whitespace is bounded; numbers stay finite; keys are not repeated */
  cJSON *s = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"},\"b\":{}}}");
  char err[256];
  kn_jschema *c = kn_jschema_compile(s, KN_JSCHEMA_ROOT_OBJECT, err, sizeof err);
  static const struct { const char *doc; int ok; } docs[] = {
      {"{\"a\": 1}", 1},      {"{\n \"a\":1}", 1},   {"{\t\"a\":1}", 0},     {"{   \"a\":1}", 0},
      {"{\n\n\"a\":1}", 0},    {"{\"a\":1e99}", 1},   {"{\"a\":1e999}", 0},   {"{\"a\":1,\"a\":2}", 0},
      {"{\"c\":1}", 0},        {"{\"b\":{\"z\":[1,{}]}}", 1}, {"{\"b\":\"\\ud83d\\ude00\"}", 0}, {"[]", 0},
      {"{\"a\":1234567890123456}", 0}, {"{\"a\":-0.5E+7}", 1},
  };
  for (size_t i = 0; i < sizeof docs / sizeof *docs; i++)
    CHECK(kn_jschema_valid(c, docs[i].doc, strlen(docs[i].doc)) == docs[i].ok, "%s: want %d", docs[i].doc, docs[i].ok);
  kn_jschema_free(c), cJSON_Delete(s);
}

/* ---- the pattern automaton against POSIX regexec, and formats against the hand checks -------------------- */

static void test_regex(void) {
  static const char alpha[] = "abcdxyzq019-. AZRé";
  for (size_t i = 0; i < sizeof PATTERNS / sizeof *PATTERNS; i++) {
    char err[256];
    kn_regex *r = kn_regex_compile(PATTERNS[i], 0, -1, err, sizeof err);
    if (!CHECK(r != NULL, "%s: %s", PATTERNS[i], err)) continue;
    for (int k = 0; k < 3000; k++) {
      char buf[32];
      int n = 0, len = (int)rnd(9);
      for (int j = 0; j < len; j++) {
        int a = (int)rnd(sizeof alpha - 2);
        buf[n++] = alpha[a];
        if ((unsigned char)alpha[a] == 0xC3) buf[n++] = alpha[a + 1];
        else if ((unsigned char)alpha[a] == 0xA9) n--;
      }
      buf[n] = 0;
      CHECK(kn_regex_matches(r, buf, (size_t)n) == pattern_ok(PATTERNS[i], buf), "%s on \"%s\": automaton %d, regexec %d",
            PATTERNS[i], buf, kn_regex_matches(r, buf, (size_t)n), pattern_ok(PATTERNS[i], buf));
    }
    kn_regex_free(r);
  }
  /* every string a format's pattern takes passes the hand check; some well-known ones are taken */
  static const struct { const char *f, *yes, *no; } fm[] = {
      {"date", "2024-12-31", "2023-02-30"},         {"time", "23:59:59.5+01:00", "24:00:00Z"},
      {"date-time", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05"}, {"email", "a.b+c@d-e.example.org", "a..b@c.de"},
      {"uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567e89b12d3a456426614174000"},
      {"uri", "https://example.com:8080/a/b?c=d#e", "not a uri"}, {"ipv4", "192.168.0.255", "256.1.1.1"},
  };
  for (size_t i = 0; i < sizeof fm / sizeof *fm; i++) {
    char err[256];
    kn_regex *r = kn_regex_compile(kn_jschema_format_pattern(fm[i].f), 0, -1, err, sizeof err);
    if (!CHECK(r != NULL, "format %s: %s", fm[i].f, err)) continue;
    CHECK(kn_regex_matches(r, fm[i].yes, strlen(fm[i].yes)), "format %s refuses %s", fm[i].f, fm[i].yes);
    CHECK(!kn_regex_matches(r, fm[i].no, strlen(fm[i].no)), "format %s takes %s", fm[i].f, fm[i].no);
    kn_regex_free(r);
  }
}

/* ---- bounds, recursion and unique items at their edges --------------------------------------------------- */

#define ONE_KIND                                                                                                      \
  "{\"type\":\"object\",\"properties\":{\"p\":{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"circle\"},"    \
  "\"r\":{\"type\":\"number\"}},\"required\":[\"kind\"]},{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"square\"},"      \
  "\"side\":{\"type\":\"number\"}},\"required\":[\"kind\"]}]}}}"

static void test_edges(void) {
  static const struct { const char *schema, *doc; int ok; } cases[] = {
      {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\",\"exclusiveMinimum\":0.1,\"maximum\":0.3}}}", "{\"x\":0.1}", 0},
      {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\",\"exclusiveMinimum\":0.1,\"maximum\":0.3}}}", "{\"x\":0.10000000000001}", 1},
      {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\",\"exclusiveMinimum\":0.1,\"maximum\":0.3}}}", "{\"x\":0.3}", 1},
      {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\",\"exclusiveMinimum\":0.1,\"maximum\":0.3}}}", "{\"x\":0.30001}", 0},
      {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\",\"minimum\":-5,\"exclusiveMaximum\":100}}}", "{\"x\":-5}", 1},
      {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\",\"minimum\":-5,\"exclusiveMaximum\":100}}}", "{\"x\":100}", 0},
      {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\",\"minimum\":-5,\"exclusiveMaximum\":100}}}", "{\"x\":99}", 1},
      {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\",\"minimum\":-5,\"exclusiveMaximum\":100}}}", "{\"x\":-6}", 0},
      {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\",\"minimum\":-5,\"exclusiveMaximum\":100}}}", "{\"x\":5.5}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"uniqueItems\":true}}}", "{\"a\":[true,false]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"uniqueItems\":true}}}", "{\"a\":[true,true]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"enum\":[1,12]},\"uniqueItems\":true}}}", "{\"a\":[12,1]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"enum\":[1,12]},\"uniqueItems\":true}}}", "{\"a\":[1,1]}", 0},
      {"{\"$defs\":{\"c\":{\"enum\":[\"r\",\"g\"]}},\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/c\"},\"uniqueItems\":true}}}", "{\"a\":[\"g\",\"r\"]}", 1},
      {"{\"$defs\":{\"c\":{\"enum\":[\"r\",\"g\"]}},\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/c\"},\"uniqueItems\":true}}}", "{\"a\":[\"g\",\"g\"]}", 0},
      {"{\"$defs\":{\"c\":{\"enum\":[\"r\",\"g\"]}},\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/c\"},\"uniqueItems\":true}}}", "{\"a\":[\"g\",\"r\",\"g\"]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}}}", "{\"t\":[\"a\",1]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}}}", "{\"t\":[\"a\",1,2]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}}}", "{\"t\":[1]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"^a\\\\d+$\"}}}", "{\"s\":\"a12\"}", 1},
      {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"^a\\\\d+$\"}}}", "{\"s\":\"a\"}", 0},
      {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"^\\\\n$\"}}}", "{\"s\":\"\\n\"}", 1},
      {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"^é+$\"}}}", "{\"s\":\"éé\"}", 1},
      {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"^é+$\"}}}", "{\"s\":\"\\u00e9\"}", 0},
      {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},{\"properties\":{\"a\":{\"minimum\":3},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}", "{\"a\":3,\"b\":\"\"}", 1},
      {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},{\"properties\":{\"a\":{\"minimum\":3},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}", "{\"a\":2,\"b\":\"\"}", 0},
      {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},{\"properties\":{\"a\":{\"minimum\":3},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}", "{\"a\":4}", 0},
      /* uniqueItems over strings and numbers: values compared as a validator compares them */
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}}}", "{\"a\":[\"x\",\"y\",\"xy\",\"\"]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}}}", "{\"a\":[\"x\",\"y\",\"x\"]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}}}", "{\"a\":[\"a/b\",\"a\\/b\"]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}}}", "{\"a\":[\"\\u0061\"]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}}}", "{\"a\":[\"é\",\"e\",\"ê\"]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}}}", "{\"a\":[\"é\",\"e\",\"é\"]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true},\"b\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}}}", "{\"a\":[\"x\"],\"b\":[\"x\"]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"uniqueItems\":true}}}", "{\"a\":[1,-1,0.5,10,0]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"uniqueItems\":true}}}", "{\"a\":[1,2,1.0]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"uniqueItems\":true}}}", "{\"a\":[0,-0]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"uniqueItems\":true}}}", "{\"a\":[0.25,0.250]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3},\"uniqueItems\":true,\"minItems\":3}}}", "{\"a\":[3,1,2]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3},\"uniqueItems\":true,\"minItems\":3}}}", "{\"a\":[3,1,3]}", 0},
      {"{\"$defs\":{\"t\":{\"type\":\"string\",\"maxLength\":2}},\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/t\"},\"uniqueItems\":true}}}", "{\"a\":[\"ab\",\"a\",\"ab\"]}", 0},
      /* uniqueItems over items kiln does not keep apart (objects, patterned strings, tuples) where the schema's maxItems
       * is 1: unique whatever the item */
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"object\"},\"uniqueItems\":true,\"maxItems\":1}}}", "{\"a\":[{\"k\":1}]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"object\"},\"uniqueItems\":true,\"maxItems\":1}}}", "{\"a\":[{\"k\":1},{\"k\":2}]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"pattern\":\"^[ab]$\"},\"uniqueItems\":true,\"maxItems\":1}}}", "{\"a\":[\"a\"]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"pattern\":\"^[ab]$\"},\"uniqueItems\":true,\"maxItems\":1}}}", "{\"a\":[\"a\",\"b\"]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"object\"}],\"items\":false,\"uniqueItems\":true}}}", "{\"a\":[{}]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":0},\"uniqueItems\":true}}}", "{\"a\":[\"\"]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":0},\"uniqueItems\":true}}}", "{\"a\":[\"\",\"\"]}", 0},
      /* enum items that are objects and arrays are kept apart by which value was written */
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"enum\":[{\"k\":1},{\"k\":2},[1]]},\"uniqueItems\":true}}}", "{\"a\":[{\"k\":2},[1],{\"k\":1}]}", 1},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"enum\":[{\"k\":1},{\"k\":2},[1]]},\"uniqueItems\":true}}}", "{\"a\":[{\"k\":2},[1],{\"k\":2}]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true,\"maxItems\":0}}}", "{\"a\":[\"x\"]}", 0},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}}}", "{\"a\":[]}", 1},
      /* oneOf that can be enforced: a discriminating required property, enum values apart, ranges and lengths apart */
      {ONE_KIND, "{\"p\":{\"kind\":\"circle\",\"r\":1}}", 1},
      {ONE_KIND, "{\"p\":{\"kind\":\"square\",\"side\":2}}", 1},
      {ONE_KIND, "{\"p\":{\"kind\":\"circle\",\"side\":2}}", 0},
      {ONE_KIND, "{\"p\":{\"r\":1}}", 0},
      {"{\"type\":\"object\",\"properties\":{\"v\":{\"oneOf\":[{\"enum\":[\"a\",1]},{\"type\":\"string\",\"minLength\":2},{\"type\":\"integer\",\"minimum\":2}]}}}", "{\"v\":\"a\"}", 1},
      {"{\"type\":\"object\",\"properties\":{\"v\":{\"oneOf\":[{\"enum\":[\"a\",1]},{\"type\":\"string\",\"minLength\":2},{\"type\":\"integer\",\"minimum\":2}]}}}", "{\"v\":\"\"}", 0},
      {"{\"type\":\"object\",\"properties\":{\"v\":{\"oneOf\":[{\"type\":\"array\",\"maxItems\":1},{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":2}]}}}", "{\"v\":[\"a\",\"b\"]}", 1},
      {"{\"type\":\"object\",\"oneOf\":[{\"properties\":{\"t\":{\"const\":1}},\"required\":[\"t\"]},{\"properties\":{\"t\":{\"const\":2}},\"required\":[\"t\"]}]}", "{\"t\":2}", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cJSON *s = cJSON_Parse(cases[i].schema);
    char err[512] = "";
    kn_jschema *c = kn_jschema_compile(s, KN_JSCHEMA_ROOT_OBJECT, err, sizeof err);
    if (CHECK(c != NULL, "%s: %s", cases[i].schema, err))
      CHECK(kn_jschema_valid(c, cases[i].doc, strlen(cases[i].doc)) == cases[i].ok, "%s: %s want %d", cases[i].schema, cases[i].doc, cases[i].ok);
    kn_jschema_free(c), cJSON_Delete(s);
  }
  /* a recursive list: walks reach the depth bound and still complete */
  cJSON *s = cJSON_Parse("{\"$defs\":{\"l\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#/$defs/l\"}}}},\"$ref\":\"#/$defs/l\"}");
  char err[256];
  kn_jschema *c = kn_jschema_compile(s, KN_JSCHEMA_ROOT_OBJECT, err, sizeof err);
  if (CHECK(c != NULL, "recursive list: %s", err)) {
    kn_jsv v;
    kn_jsv_init(&v, c);
    int depth = 0;
    for (; depth < 64; depth++)
      if (!kn_jsv_accepts(&v, "{\"next\":", 8)) break;
      else for (int k = 0; k < 8; k++) kn_jsv_push(&v, (unsigned char)"{\"next\":"[k]);
    CHECK(depth >= 8 && depth < KN_JSV_DEPTH, "recursion stopped at depth %d", depth);
    size_t n = 0;
    char *rest = kn_jsv_closure(&v, &n);
    CHECK(rest && n == (size_t)depth + 2 && !strncmp(rest, "{}}", 3), "closure %s", rest ? rest : "(none)");
    free(rest);
  }
  kn_jschema_free(c), cJSON_Delete(s);
}

/* uniqueItems over strings and numbers: walks that favour a few bytes (so items would repeat) never reach a state with
 * no way on, and every document validates (distinct items by cJSON_Compare); bytes that would repeat an item are
 * refused where the item could only end as one already written. */
static void test_unique(void) {
  static const char *schemas[] = {
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":1},\"uniqueItems\":true,\"minItems\":4}},\"required\":[\"a\"]}",
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":2},\"uniqueItems\":true,\"minItems\":6}},\"required\":[\"a\"]}",
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true,\"minItems\":5}},\"required\":[\"a\"]}",
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":5},\"uniqueItems\":true,\"minItems\":6}},\"required\":[\"a\"]}",
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"exclusiveMinimum\":-3,\"maximum\":2},\"uniqueItems\":true}},\"required\":[\"a\"]}",
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},\"uniqueItems\":true,\"minItems\":5}},\"required\":[\"a\"]}",
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"uniqueItems\":true,\"minItems\":8}},\"required\":[\"a\"]}",
      "{\"$defs\":{\"s\":{\"type\":\"string\",\"maxLength\":1}},\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/s\"},\"uniqueItems\":true,\"minItems\":2},\"maxItems\":5}}}",
  };
  g_favour = "ab01-.\\\"],";
  for (size_t i = 0; i < sizeof schemas / sizeof *schemas; i++) {
    cJSON *s = cJSON_Parse(schemas[i]);
    char err[512] = "";
    kn_jschema *c = kn_jschema_compile(s, KN_JSCHEMA_ROOT_OBJECT, err, sizeof err);
    if (!CHECK(c != NULL, "%s: %s", schemas[i], err)) {
      cJSON_Delete(s);
      continue;
    }
    g_root = s;
    int bad = 0, longest = 0;
    for (int k = 0; k < 300 && !bad; k++) {
      size_t n = 0;
      char *doc = walk(c, &n);
      cJSON *v = doc ? cJSON_Parse(doc) : NULL;
      bad = !CHECK(v && ref_valid(s, v), "%s: %s", schemas[i], doc ? doc : "(a dead end)");
      const cJSON *a = v ? cJSON_GetObjectItemCaseSensitive(v, "a") : NULL;
      if (cJSON_GetArraySize(a) > longest) longest = cJSON_GetArraySize(a);
      cJSON_Delete(v), free(doc);
    }
    CHECK(longest >= 4, "%s: walks wrote at most %d items", schemas[i], longest);
    kn_jschema_free(c), cJSON_Delete(s);
  }
  g_favour = NULL;

  /* what a state accepts next: the prefix, then bytes and whether they may follow */
  static const struct { const char *schema, *prefix, *next; int ok; } steps[] = {
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":1},\"uniqueItems\":true}", "[\"a\",", "\"b", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":1},\"uniqueItems\":true}", "[\"a\",", "\"a", 0},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":2},\"uniqueItems\":true}", "[\"a\",", "\"a", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":2},\"uniqueItems\":true}", "[\"a\",", "\"a\"", 0},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":1},\"uniqueItems\":true}", "[\"\\n\",", "\"\\n", 0},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":1},\"uniqueItems\":true}", "[\"\\n\",", "\"\\t", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}", "[\"é\",", "\"\xc3\xa9\"", 0},
      {"{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true}", "[\"é\",", "\"\xc3\xa9x\"", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3},\"uniqueItems\":true}", "[1,2,", "3", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3},\"uniqueItems\":true}", "[1,2,", "1", 0},
      {"{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3},\"uniqueItems\":true}", "[1,2,3", ",", 0},
      {"{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3},\"uniqueItems\":true}", "[1,2,3", "]", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"uniqueItems\":true}", "[1,", "1", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"uniqueItems\":true}", "[1,", "1]", 0},
      {"{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"uniqueItems\":true}", "[1,", "1.00]", 0},
      {"{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"uniqueItems\":true}", "[1,", "1.5]", 1},
      {"{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"uniqueItems\":true}", "[1,", "1e0", 0},
  };
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
    cJSON *s = cJSON_Parse(steps[i].schema);
    char err[512] = "";
    kn_jschema *c = kn_jschema_compile(s, 0, err, sizeof err);
    if (CHECK(c != NULL, "%s: %s", steps[i].schema, err)) {
      kn_jsv v;
      kn_jsv_init(&v, c);
      size_t n = strlen(steps[i].prefix);
      int pre = kn_jsv_accepts(&v, steps[i].prefix, n);
      for (size_t k = 0; pre && k < n; k++) kn_jsv_push(&v, (unsigned char)steps[i].prefix[k]);
      CHECK(pre && kn_jsv_accepts(&v, steps[i].next, strlen(steps[i].next)) == steps[i].ok, "%s: %s then %s: want %d",
            steps[i].schema, steps[i].prefix, steps[i].next, steps[i].ok);
      size_t cl = 0;
      char *rest = pre ? kn_jsv_closure(&v, &cl) : NULL; /* the shortest ending keeps the items apart too */
      char doc[256];
      snprintf(doc, sizeof doc, "%s%s", steps[i].prefix, rest ? rest : "");
      cJSON *d = cJSON_Parse(doc);
      g_root = s;
      CHECK(rest && d && ref_valid(s, d), "%s: %s closed as %s", steps[i].schema, steps[i].prefix, doc);
      cJSON_Delete(d), free(rest);
    }
    kn_jschema_free(c), cJSON_Delete(s);
  }
}

/* The example of docs/api.md compiles, and its documents validate. */
static void test_doc_example(void) {
  cJSON *s = cJSON_Parse(
      "{\"$defs\": {\"person\": {\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", \"minLength\": 1},"
      "\"email\": {\"type\": \"string\", \"format\": \"email\"}}, \"required\": [\"name\"]},"
      "\"room\": {\"type\": \"object\", \"properties\": {\"kind\": {\"enum\": [\"single\", \"double\"]}}}},"
      "\"type\": \"object\", \"properties\": {\"guest\": {\"$ref\": \"#/$defs/person\"},"
      "\"party\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/person\"}, \"maxItems\": 4},"
      "\"nights\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 30},"
      "\"date\": {\"type\": \"string\", \"format\": \"date\"},"
      "\"room\": {\"allOf\": [{\"$ref\": \"#/$defs/room\"}, {\"required\": [\"kind\"]}]},"
      "\"code\": {\"type\": \"string\", \"pattern\": \"^[A-Z]{3}-\\\\d{4}$\"}}, \"required\": [\"guest\", \"nights\", \"date\"]}");
  char err[256];
  kn_jschema *c = s ? kn_jschema_compile(s, KN_JSCHEMA_ROOT_OBJECT, err, sizeof err) : NULL;
  if (CHECK(c != NULL, "docs example: %s", s ? err : "not JSON")) {
    g_root = s;
    for (int k = 0; k < 40; k++) {
      size_t n = 0;
      char *doc = walk(c, &n);
      cJSON *v = doc ? cJSON_Parse(doc) : NULL;
      CHECK(v && ref_valid(s, v), "docs example: %s", doc ? doc : "(none)");
      cJSON_Delete(v), free(doc);
    }
  }
  kn_jschema_free(c), cJSON_Delete(s);
}

int main(void) {
  test_doc_example();
  test_regex();
  test_edges();
  test_unique();
  test_errors();
  test_random();
  return check_summary();
}
