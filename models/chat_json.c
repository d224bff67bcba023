/* models/chat_json.c: the byte buffer and JSON tree of chat_impl.h, and a printer that matches Python's
 * json.dumps(ensure_ascii=False): chat templates run `tojson` under transformers, and the prompt bytes (hence the
 * tokens the model was trained on) depend on its separators, key order and float formatting. */
#include "models/chat_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/json_constraint.h"

/* ---- buffer ----------------------------------------------------------------------------------------------- */

void knc_put(knc_buf *b, const char *s, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (n > (size_t)-1 / 2 - b->len) {
        b->oom = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void knc_puts(knc_buf *b, const char *s) { knc_put(b, s, strlen(s)); }
void knc_putc(knc_buf *b, char c) { knc_put(b, &c, 1); }

void knc_buf_free(knc_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

char *knc_take(knc_buf *b)
{
    if (b->oom) {
        knc_buf_free(b);
        return NULL;
    }
    char *s = b->s ? b->s : calloc(1, 1);
    memset(b, 0, sizeof *b);
    return s;
}

char *knc_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *knc_strdup(const char *s) { return s ? knc_strndup(s, strlen(s)) : NULL; }

/* ---- parsing (the text is validated by kn_jsonc first, so the descent below only builds) -------------------- */

typedef struct jp {
    const char *s;
    size_t i, n;
    int oom;
} jp;

static void jp_ws(jp *p)
{
    while (p->i < p->n && strchr(" \t\r\n", p->s[p->i]) && p->s[p->i])
        p->i++;
}

static unsigned hex4(const char *s)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

static void put_utf8(knc_buf *b, unsigned cp)
{
    char t[4];
    size_t n;
    if (cp < 0x80)
        t[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        t[0] = (char)(0xC0 | cp >> 6), t[1] = (char)(0x80 | (cp & 63)), n = 2;
    else if (cp < 0x10000)
        t[0] = (char)(0xE0 | cp >> 12), t[1] = (char)(0x80 | ((cp >> 6) & 63)), t[2] = (char)(0x80 | (cp & 63)), n = 3;
    else
        t[0] = (char)(0xF0 | cp >> 18), t[1] = (char)(0x80 | ((cp >> 12) & 63)),
        t[2] = (char)(0x80 | ((cp >> 6) & 63)), t[3] = (char)(0x80 | (cp & 63)), n = 4;
    knc_put(b, t, n);
}

/* Decode the string at p->i (on the opening quote). Returns -1 for a lone UTF-16 surrogate, which Python would
 * keep as an unencodable character. */
static int jp_string(jp *p, char **out, size_t *outlen)
{
    knc_buf b = {0};
    p->i++;
    for (;;) {
        size_t start = p->i;
        while (p->s[p->i] != '"' && p->s[p->i] != '\\')
            p->i++;
        knc_put(&b, p->s + start, p->i - start);
        if (p->s[p->i] == '"')
            break;
        char e = p->s[p->i + 1];
        p->i += 2;
        if (e != 'u') {
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            knc_putc(&b, to[strchr(from, e) - from]);
            continue;
        }
        unsigned cp = hex4(p->s + p->i);
        p->i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
            unsigned lo = hex4(p->s + p->i + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->i += 6;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            knc_buf_free(&b);
            return -1;
        }
        put_utf8(&b, cp);
    }
    p->i++;
    if (b.oom) {
        knc_buf_free(&b);
        p->oom = 1;
        return -2;
    }
    *outlen = b.len;
    *out = knc_take(&b);
    return *out ? 0 : -2;
}

static int jp_value(jp *p, knj *v);

static knj *grow_items(knj *v)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        knj *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv)
            return NULL;
        v->v = nv;
        if (v->t == KNJ_OBJ) {
            char **nk = realloc(v->keys, cap * sizeof *nk);
            if (!nk)
                return NULL;
            v->keys = nk;
        }
        v->cap = cap;
    }
    memset(&v->v[v->n], 0, sizeof v->v[0]);
    return &v->v[v->n];
}

static void knj_clear(knj *v);

static int jp_member(jp *p, knj *v)
{
    char *key;
    size_t klen;
    int rc = jp_string(p, &key, &klen);
    if (rc)
        return rc;
    if (strlen(key) != klen) {
        free(key);
        return -3;
    }
    jp_ws(p);
    p->i++; /* ':' */
    jp_ws(p);
    for (size_t k = 0; k < v->n; k++) {
        if (strcmp(v->keys[k], key) == 0) { /* Python dict: first position, last value */
            free(key);
            knj nv = {0};
            rc = jp_value(p, &nv);
            knj_clear(&v->v[k]);
            v->v[k] = nv;
            return rc;
        }
    }
    knj *slot = grow_items(v);
    if (!slot) {
        free(key);
        return -2;
    }
    v->keys[v->n] = key;
    v->n++;
    return jp_value(p, slot);
}

static int jp_container(jp *p, knj *v, char close)
{
    p->i++;
    jp_ws(p);
    if (p->s[p->i] == close) {
        p->i++;
        return 0;
    }
    for (;;) {
        int rc;
        if (v->t == KNJ_OBJ) {
            rc = jp_member(p, v);
        } else {
            knj *slot = grow_items(v);
            if (!slot)
                return -2;
            v->n++;
            rc = jp_value(p, slot);
        }
        if (rc)
            return rc;
        jp_ws(p);
        if (p->s[p->i++] == close)
            return 0;
        jp_ws(p); /* after ',' */
    }
}

static int jp_value(jp *p, knj *v)
{
    char c = p->s[p->i];
    switch (c) {
    case '{': v->t = KNJ_OBJ; return jp_container(p, v, '}');
    case '[': v->t = KNJ_ARR; return jp_container(p, v, ']');
    case '"': v->t = KNJ_STR; return jp_string(p, &v->s, &v->len);
    case 't': v->t = KNJ_TRUE; p->i += 4; return 0;
    case 'f': v->t = KNJ_FALSE; p->i += 5; return 0;
    case 'n': v->t = KNJ_NULL; p->i += 4; return 0;
    default: {
        size_t start = p->i;
        while (p->i < p->n && strchr("+-.0123456789eE", p->s[p->i]) && p->s[p->i])
            p->i++;
        v->t = KNJ_NUM;
        v->len = p->i - start;
        v->s = knc_strndup(p->s + start, v->len);
        return v->s ? 0 : -2;
    }
    }
}

static void knj_clear(knj *v)
{
    for (size_t k = 0; k < v->n; k++) {
        knj_clear(&v->v[k]);
        if (v->t == KNJ_OBJ)
            free(v->keys[k]);
    }
    free(v->v);
    free(v->keys);
    free(v->s);
    memset(v, 0, sizeof *v);
}

void knj_free(knj *v)
{
    if (!v)
        return;
    knj_clear(v);
    free(v);
}

knj *knj_parse(const char *s, size_t len, char *err, size_t errlen)
{
    kn_jsonc jc;
    kn_jsonc_init(&jc, 0);
    size_t ok = kn_jsonc_push_bytes(&jc, s, len);
    if (ok < len) {
        knc_err(err, errlen, "invalid JSON at byte %zu", ok);
        return NULL;
    }
    if (!kn_jsonc_complete(&jc)) {
        knc_err(err, errlen, "JSON text ends early (%zu bytes)", len);
        return NULL;
    }
    /* The descent reads one byte past a top-level number at most; give it a NUL there. */
    char *copy = knc_strndup(s, len);
    knj *v = calloc(1, sizeof *v);
    if (!copy || !v) {
        free(copy);
        free(v);
        knc_err(err, errlen, "out of memory parsing JSON");
        return NULL;
    }
    jp p = {copy, 0, len, 0};
    jp_ws(&p);
    int rc = jp_value(&p, v);
    free(copy);
    if (rc) {
        knj_free(v);
        knc_err(err, errlen, rc == -1   ? "JSON string holds a lone UTF-16 surrogate"
                             : rc == -3 ? "JSON object key holds U+0000"
                                        : "out of memory parsing JSON");
        return NULL;
    }
    return v;
}

const knj *knj_get(const knj *obj, const char *key)
{
    if (!obj || obj->t != KNJ_OBJ)
        return NULL;
    for (size_t k = 0; k < obj->n; k++)
        if (strcmp(obj->keys[k], key) == 0)
            return &obj->v[k];
    return NULL;
}

const char *knj_str(const knj *v) { return v && v->t == KNJ_STR ? v->s : NULL; }

/* ---- printing as Python does -------------------------------------------------------------------------------- */

void knj_dump_str(knc_buf *b, const char *s, size_t len)
{
    knc_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (!esc)
            continue;
        knc_put(b, s + run, i - run);
        knc_puts(b, esc);
        run = i + 1;
    }
    knc_put(b, s + run, len - run);
    knc_putc(b, '"');
}

/* repr() of a float: the shortest digits that read back to the same double, in fixed notation when the decimal
 * point falls within 16 places, else d.ddde±XX. */
static void dump_float(knc_buf *b, double d)
{
    if (isinf(d)) {
        knc_puts(b, d < 0 ? "-Infinity" : "Infinity");
        return;
    }
    char t[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*e", prec - 1, d);
        if (strtod(t, NULL) == d)
            break;
    }
    char digits[24];
    size_t nd = 0;
    const char *q = t;
    if (*q == '-') {
        knc_putc(b, '-');
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            digits[nd++] = *q;
    int decpt = atoi(q + 1) + 1;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            knc_puts(b, "0.");
            for (int k = 0; k < -decpt; k++)
                knc_putc(b, '0');
            knc_put(b, digits, nd);
        } else if ((size_t)decpt >= nd) {
            knc_put(b, digits, nd);
            for (size_t k = nd; k < (size_t)decpt; k++)
                knc_putc(b, '0');
            knc_puts(b, ".0");
        } else {
            knc_put(b, digits, (size_t)decpt);
            knc_putc(b, '.');
            knc_put(b, digits + decpt, nd - (size_t)decpt);
        }
        return;
    }
    knc_putc(b, digits[0]);
    if (nd > 1) {
        knc_putc(b, '.');
        knc_put(b, digits + 1, nd - 1);
    }
    snprintf(t, sizeof t, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    knc_puts(b, t);
}

/* Python reads a literal with '.', 'e' or 'E' as a float and anything else as an exact int. */
static void dump_number(knc_buf *b, const knj *v)
{
    if (strpbrk(v->s, ".eE")) {
        dump_float(b, strtod(v->s, NULL));
        return;
    }
    const char *digits = v->s[0] == '-' ? v->s + 1 : v->s;
    if (strcmp(digits, "0") == 0) /* int("-0") == 0 */
        knc_putc(b, '0');
    else
        knc_puts(b, v->s);
}

static void newline_indent(knc_buf *b, int indent, int level)
{
    knc_putc(b, '\n');
    for (int k = 0; k < indent * level; k++)
        knc_putc(b, ' ');
}

static void dump_at(knc_buf *b, const knj *v, int indent, int level)
{
    switch (v->t) {
    case KNJ_NULL: knc_puts(b, "null"); return;
    case KNJ_FALSE: knc_puts(b, "false"); return;
    case KNJ_TRUE: knc_puts(b, "true"); return;
    case KNJ_NUM: dump_number(b, v); return;
    case KNJ_STR: knj_dump_str(b, v->s, v->len); return;
    default: break;
    }
    int obj = v->t == KNJ_OBJ;
    knc_putc(b, obj ? '{' : '[');
    for (size_t k = 0; k < v->n; k++) {
        if (k > 0)
            knc_puts(b, indent >= 0 ? "," : ", ");
        if (indent >= 0)
            newline_indent(b, indent, level + 1);
        if (obj) {
            knj_dump_str(b, v->keys[k], strlen(v->keys[k]));
            knc_puts(b, ": ");
        }
        dump_at(b, &v->v[k], indent, level + 1);
    }
    if (indent >= 0 && v->n > 0)
        newline_indent(b, indent, level);
    knc_putc(b, obj ? '}' : ']');
}

void knj_dump(knc_buf *b, const knj *v, int indent) { dump_at(b, v, indent, 0); }

char *kn_chat_tojson(const char *json, size_t len, int indent, char *err, size_t errlen)
{
    knj *v = knj_parse(json, len, err, errlen);
    if (!v)
        return NULL;
    knc_buf b = {0};
    knj_dump(&b, v, indent);
    knj_free(v);
    char *s = knc_take(&b);
    if (!s)
        knc_err(err, errlen, "out of memory printing JSON");
    return s;
}
