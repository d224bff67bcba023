/* models/text/json_read.c: kiln's JSON reader (see json_read.h). A pre-scan that only lexes (no tree, one pass, no
 * recursion) checks what cJSON lets through and records each number's literal; cJSON builds the tree; two walks
 * attach the literals and merge repeated keys (sorting each object's keys, so a body of 150k keys costs a sort,
 * not a quadratic scan). */
#include "models/text/json_read.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct scan {
  const unsigned char *s;
  size_t n, i;
  int depth, max_depth;
  bool top_obj, key_next;
  size_t *nums; /* (offset, length) per number literal, in text order */
  size_t n_nums, cap_nums;
  char *field;
  size_t fieldlen;
  char *err;
  size_t errlen;
} scan;

__attribute__((format(printf, 3, 4))) static int fail(scan *sc, size_t at, const char *fmt, ...) {
  if (!sc->err || !sc->errlen) return -1;
  int k = snprintf(sc->err, sc->errlen, "invalid JSON at byte %zu: ", at);
  if (k < 0 || (size_t)k >= sc->errlen) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sc->err + k, sc->errlen - (size_t)k, fmt, ap);
  va_end(ap);
  return -1;
}

/* Bytes of the well-formed UTF-8 sequence at p (no overlong forms, surrogates or values past U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, size_t left) {
  unsigned c = p[0], cp;
  size_t n;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return 0;
  if (left < n) return 0;
  for (size_t k = 1; k < n; k++) {
    if ((p[k] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[k] & 0x3F);
  }
  if (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
  if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return n;
}

static bool hex4(const unsigned char *p, size_t left, unsigned *v) {
  if (left < 4) return false;
  *v = 0;
  for (int k = 0; k < 4; k++) {
    unsigned c = p[k], d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : 16;
    if (d > 15) return false;
    *v = *v * 16 + d;
  }
  return true;
}

/* The string at sc->i (on its opening quote). A key of the top-level object becomes the current field. */
static int scan_string(scan *sc, bool is_key) {
  const unsigned char *s = sc->s;
  size_t start = ++sc->i, i = start, n = sc->n;
  if (is_key && sc->field && sc->fieldlen) sc->field[0] = 0;
  for (;;) {
    if (i >= n) return fail(sc, start - 1, "a string is not closed");
    unsigned char c = s[i];
    if (c == '"') break;
    if (c < 0x20) return fail(sc, i, "a string holds the raw control character 0x%02x (escape it)", c);
    if (c == '\\') {
      unsigned e = i + 1 < n ? s[i + 1] : 0, cp, lo;
      if (e != 'u') {
        if (!e || !strchr("\"\\/bfnrt", (int)e)) return fail(sc, i, "unknown escape in a string");
        i += 2;
        continue;
      }
      if (!hex4(s + i + 2, n - i - 2, &cp)) return fail(sc, i, "\\u needs four hex digits");
      if (cp == 0) return fail(sc, i, "a string holds U+0000 (\\u0000), which kiln does not accept");
      if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(sc, i, "a string holds a lone UTF-16 surrogate");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (i + 7 >= n || s[i + 6] != '\\' || s[i + 7] != 'u' || !hex4(s + i + 8, n - i - 8, &lo) || lo < 0xDC00 ||
            lo > 0xDFFF)
          return fail(sc, i, "a string holds a lone UTF-16 surrogate");
        i += 6;
      }
      i += 6;
      continue;
    }
    size_t k = utf8_len(s + i, n - i);
    if (!k) return fail(sc, i, "invalid UTF-8 in a string");
    i += k;
  }
  if (is_key && sc->field && sc->fieldlen) {
    size_t len = i - start, k = 0;
    bool plain = len < sc->fieldlen;
    for (size_t j = start; plain && j < i; j++) plain = s[j] >= 0x20 && s[j] < 0x7f && s[j] != '\\';
    if (plain) memcpy(sc->field, s + start, len), k = len;
    sc->field[k] = 0;
  }
  sc->i = i + 1;
  return 0;
}

static bool digit(const scan *sc, size_t i) { return i < sc->n && sc->s[i] >= '0' && sc->s[i] <= '9'; }

/* A number as RFC 8259 writes it (cJSON would also take 01, +1, .5 and 1.); its span is kept. */
static int scan_number(scan *sc) {
  size_t st = sc->i, i = st;
  if (sc->s[i] == '-') i++;
  if (i < sc->n && sc->s[i] == '0') i++;
  else if (digit(sc, i)) while (digit(sc, i)) i++;
  else return fail(sc, st, "invalid number");
  if (i < sc->n && sc->s[i] == '.') {
    if (!digit(sc, ++i)) return fail(sc, st, "invalid number");
    while (digit(sc, i)) i++;
  }
  if (i < sc->n && (sc->s[i] == 'e' || sc->s[i] == 'E')) {
    i++;
    if (i < sc->n && (sc->s[i] == '+' || sc->s[i] == '-')) i++;
    if (!digit(sc, i)) return fail(sc, st, "invalid number");
    while (digit(sc, i)) i++;
  }
  if (i < sc->n && sc->s[i] && strchr("0123456789.eE+-", sc->s[i])) return fail(sc, st, "invalid number");
  if (sc->n_nums + 2 > sc->cap_nums) {
    size_t cap = sc->cap_nums ? sc->cap_nums * 2 : 64;
    size_t *nn = realloc(sc->nums, cap * sizeof *nn);
    if (!nn) return fail(sc, st, "out of memory");
    sc->nums = nn, sc->cap_nums = cap;
  }
  sc->nums[sc->n_nums++] = st;
  sc->nums[sc->n_nums++] = i - st;
  sc->i = i;
  return 0;
}

static int scan_text(scan *sc) {
  while (sc->i < sc->n) {
    unsigned char c = sc->s[sc->i];
    if (c == '{' || c == '[') {
      if (++sc->depth > sc->max_depth)
        return fail(sc, sc->i, "nested deeper than %d levels (arrays and objects inside one another)", sc->max_depth);
      if (sc->depth == 1) sc->top_obj = c == '{', sc->key_next = sc->top_obj;
      sc->i++;
    } else if (c == '}' || c == ']') {
      sc->depth--, sc->i++;
    } else if (c == ',') {
      if (sc->depth == 1 && sc->top_obj) sc->key_next = true;
      sc->i++;
    } else if (c == '"') {
      bool key = sc->depth == 1 && sc->top_obj && sc->key_next;
      sc->key_next = false;
      if (scan_string(sc, key)) return -1;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      if (scan_number(sc)) return -1;
    } else {
      sc->i++; /* whitespace, literals and anything else: cJSON judges the grammar */
    }
  }
  return 0;
}

/* ---- the tree: literals and repeated keys --------------------------------------------------------------------- */

static int attach_literals(cJSON *v, const scan *sc, size_t *k) {
  for (; v; v = v->next) {
    if (cJSON_IsNumber(v)) {
      if (*k + 2 > sc->n_nums) return -1;
      size_t off = sc->nums[(*k)++], len = sc->nums[(*k)++];
      if (!(v->valuestring = malloc(len + 1))) return -1;
      memcpy(v->valuestring, sc->s + off, len);
      v->valuestring[len] = 0;
    } else if (v->child && attach_literals(v->child, sc, k)) {
      return -1;
    }
  }
  return 0;
}

typedef struct member {
  cJSON *item;
  size_t pos;
} member;

static int by_key(const void *a, const void *b) {
  const member *x = a, *y = b;
  int c = strcmp(x->item->string, y->item->string);
  return c ? c : x->pos < y->pos ? -1 : 1;
}

/* Python's dict: a repeated key keeps the position of its first occurrence and the value of its last. */
static int merge_keys(cJSON *obj, member **scratch, size_t *cap) {
  size_t n = 0;
  for (cJSON *c = obj->child; c; c = c->next) n++;
  if (n < 2) return 0;
  if (n > *cap) {
    member *m = realloc(*scratch, n * sizeof *m);
    if (!m) return -1;
    *scratch = m, *cap = n;
  }
  member *m = *scratch;
  n = 0;
  for (cJSON *c = obj->child; c; c = c->next) m[n] = (member){c, n}, n++;
  qsort(m, n, sizeof *m, by_key);
  for (size_t a = 0, b; a < n; a = b) {
    for (b = a + 1; b < n && !strcmp(m[a].item->string, m[b].item->string);) b++;
    if (b - a < 2) continue;
    for (size_t k = a + 1; k + 1 < b; k++) cJSON_Delete(cJSON_DetachItemViaPointer(obj, m[k].item));
    cJSON *last = cJSON_DetachItemViaPointer(obj, m[b - 1].item);
    cJSON_ReplaceItemViaPointer(obj, m[a].item, last);
  }
  return 0;
}

static int merge_all(cJSON *v, member **scratch, size_t *cap) {
  for (; v; v = v->next) {
    if (cJSON_IsObject(v) && merge_keys(v, scratch, cap)) return -1;
    if (v->child && merge_all(v->child, scratch, cap)) return -1;
  }
  return 0;
}

cJSON *kn_json_parse(const char *s, size_t len, int max_depth, char *field, size_t fieldlen, char *err, size_t errlen) {
  if (field && fieldlen) field[0] = 0;
  if (err && errlen) err[0] = 0;
  if (max_depth <= 0) max_depth = KN_JSON_DEPTH_DEFAULT;
  if (max_depth > KN_JSON_DEPTH_MAX) max_depth = KN_JSON_DEPTH_MAX;
  scan sc = {.s = (const unsigned char *)s, .n = len, .max_depth = max_depth, .field = field, .fieldlen = fieldlen,
             .err = err, .errlen = errlen};
  if (scan_text(&sc)) {
    free(sc.nums);
    return NULL;
  }
  const char *end = NULL;
  cJSON *root = len ? cJSON_ParseWithLengthOpts(s, len, &end, 0) : NULL;
  size_t at = end && end >= s ? (size_t)(end - s) : len;
  while (root && at < len && strchr(" \t\r\n", s[at]) && s[at]) at++;
  if (!root || at < len) {
    size_t last = len; /* where the text ends, trailing whitespace aside */
    while (last > 0 && strchr(" \t\r\n", s[last - 1]) && s[last - 1]) last--;
    if (!root && sc.depth > 0 && at + 1 >= last) /* strings and numbers were whole: a container is left open */
      fail(&sc, len, "the JSON text ends early (%d unclosed)", sc.depth);
    else
      fail(&sc, at, root ? "more text after the JSON value" : "not valid JSON here");
    cJSON_Delete(root);
    scan prefix = {.s = sc.s, .n = at, .max_depth = max_depth, .field = field, .fieldlen = fieldlen};
    scan_text(&prefix); /* the top-level field the error is in */
    if (prefix.depth <= 0 && field && fieldlen) field[0] = 0;
    free(prefix.nums), free(sc.nums);
    return NULL;
  }
  size_t k = 0, cap = 0;
  member *scratch = NULL;
  int rc = attach_literals(root, &sc, &k);
  if (!rc && k != sc.n_nums) rc = -2; /* the scan and cJSON disagree on the numbers: a bug, not the input */
  if (!rc) rc = merge_all(root, &scratch, &cap);
  free(scratch), free(sc.nums);
  if (rc) {
    if (err && errlen) snprintf(err, errlen, rc == -2 ? "JSON numbers: the reader's scan and cJSON disagree"
                                                      : "out of memory reading JSON");
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

const char *kn_json_literal(const cJSON *v) { return cJSON_IsNumber(v) ? v->valuestring : NULL; }
