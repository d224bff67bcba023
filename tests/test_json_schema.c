/* Tests of the schema automaton (models/text/json_schema*.c) without a model: random schemas, random walks through the
 * bytes each state accepts ended by the automaton's own shortest completion, and every document checked by cJSON and
 * by a plain reference validator written from the JSON Schema rules; mutated documents the automaton still accepts
 * must validate too. Unsupported keywords are errors that name the keyword and where it is. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static bool has_type(const cJSON *v, const char *t) {
  if (!strcmp(t, "null")) return cJSON_IsNull(v);
  if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
  if (!strcmp(t, "number")) return cJSON_IsNumber(v);
  if (!strcmp(t, "integer")) return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
  if (!strcmp(t, "string")) return cJSON_IsString(v);
  if (!strcmp(t, "array")) return cJSON_IsArray(v);
  return cJSON_IsObject(v);
}

static bool ref_valid(const cJSON *s, const cJSON *v) {
  if (cJSON_IsTrue(s)) return true;
  const cJSON *k, *x;
  if ((k = cJSON_GetObjectItemCaseSensitive(s, "anyOf"))) {
    cJSON_ArrayForEach(x, k) if (ref_valid(x, v)) return true;
    return false;
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
  if (cJSON_IsString(v)) {
    size_t n = utf8_len(v->valuestring);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "minLength")) && n < (size_t)k->valuedouble) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "maxLength")) && n > (size_t)k->valuedouble) return false;
  }
  if (cJSON_IsArray(v)) {
    int n = cJSON_GetArraySize(v);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "minItems")) && n < k->valuedouble) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "maxItems")) && n > k->valuedouble) return false;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "items"))) cJSON_ArrayForEach(x, v) if (!ref_valid(k, x)) return false;
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

static cJSON *gen_schema(int depth) {
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
  for (int iter = 0; iter < 600; iter++) {
    cJSON *s = rnd(2) ? gen_object(0) : gen_schema(0);
    char err[512];
    unsigned flags = cJSON_IsObject(s) && cJSON_GetObjectItemCaseSensitive(s, "properties") ? KN_JSCHEMA_ROOT_OBJECT : 0;
    kn_jschema *c = kn_jschema_compile(s, flags, err, sizeof err);
    char *text = cJSON_PrintUnformatted(s);
    if (!c) { /* only a whole-document number (or nothing valid in an enum) may be refused */
      CHECK(strstr(err, "number") || strstr(err, "no value") || strstr(err, "object"), "%s refused: %s", text, err);
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
  CHECK(docs > 2000, "only %d documents", docs);
}

/* ---- errors and limits ------------------------------------------------------------------------------------- */

static void test_errors(void) {
  static const struct { const char *schema, *want; } cases[] = {
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":3}}}", "\"minimum\" is not supported (at /properties/a)"},
      {"{\"type\":\"string\",\"pattern\":\"^a\"}", "\"pattern\""},
      {"{\"type\":\"string\",\"format\":\"date\"}", "\"format\""},
      {"{\"$ref\":\"#/$defs/x\"}", "\"$ref\""},
      {"{\"type\":\"array\",\"items\":[{\"type\":\"string\"}]}", "tuples"},
      {"{\"type\":\"strnig\"}", "unknown type \"strnig\""},
      {"{\"type\":\"integer\"}", "number"},
      {"{\"enum\":[1,2],\"type\":\"string\"}", "enum: no value"},
      {"{\"type\":\"object\",\"required\":[\"x\"],\"additionalProperties\":false}", "\"x\" is not in properties"},
      {"{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}", "minLength 5 is larger"},
      {"{\"anyOf\":[{\"type\":\"string\"}],\"type\":\"string\"}", "anyOf beside"},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\",\"oneOf\":[]}]}}}", "\"oneOf\" is not supported (at /properties/a/anyOf/0)"},
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

int main(void) {
  test_errors();
  test_random();
  return check_summary();
}
