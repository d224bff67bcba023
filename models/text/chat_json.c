/* models/text/chat_json.c: knc_take over kn_bytes, and a printer of JSON trees (read by json_read.c) that matches
 * Python's json.dumps(ensure_ascii=False): chat templates run `tojson` under transformers, and the prompt bytes
 * (hence the tokens the model was trained on) depend on its separators, key order and float formatting. */
#include "models/text/chat_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- buffer ----------------------------------------------------------------------------------------------- */


char *knc_take(kn_bytes *b)
{
    if (b->oom) {
        kn_bytes_free(b);
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

/* ---- printing as Python does -------------------------------------------------------------------------------- */

void knj_dump_str(kn_bytes *b, const char *s, size_t len)
{
    kn_bytes_putc(b, '"');
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
        kn_bytes_put(b, s + run, i - run);
        kn_bytes_puts(b, esc);
        run = i + 1;
    }
    kn_bytes_put(b, s + run, len - run);
    kn_bytes_putc(b, '"');
}

/* repr() of a float: the shortest digits that read back to the same double, in fixed notation when the decimal
 * point falls within 16 places, else d.ddde±XX. */
static void dump_float(kn_bytes *b, double d)
{
    if (isinf(d)) {
        kn_bytes_puts(b, d < 0 ? "-Infinity" : "Infinity");
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
        kn_bytes_putc(b, '-');
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
            kn_bytes_puts(b, "0.");
            for (int k = 0; k < -decpt; k++)
                kn_bytes_putc(b, '0');
            kn_bytes_put(b, digits, nd);
        } else if ((size_t)decpt >= nd) {
            kn_bytes_put(b, digits, nd);
            for (size_t k = nd; k < (size_t)decpt; k++)
                kn_bytes_putc(b, '0');
            kn_bytes_puts(b, ".0");
        } else {
            kn_bytes_put(b, digits, (size_t)decpt);
            kn_bytes_putc(b, '.');
            kn_bytes_put(b, digits + decpt, nd - (size_t)decpt);
        }
        return;
    }
    kn_bytes_putc(b, digits[0]);
    if (nd > 1) {
        kn_bytes_putc(b, '.');
        kn_bytes_put(b, digits + 1, nd - 1);
    }
    snprintf(t, sizeof t, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    kn_bytes_puts(b, t);
}

/* Python reads a literal with '.', 'e' or 'E' as a float and anything else as an exact int. A number built by code
 * (no literal) prints as an int when it is one. */
static void dump_number(kn_bytes *b, const cJSON *v)
{
    const char *lit = kn_json_literal(v);
    if (!lit) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) {
            char t[32];
            snprintf(t, sizeof t, "%.0f", d == 0 ? 0.0 : d);
            kn_bytes_puts(b, t);
        } else {
            dump_float(b, d);
        }
        return;
    }
    if (strpbrk(lit, ".eE")) {
        dump_float(b, strtod(lit, NULL));
        return;
    }
    const char *digits = lit[0] == '-' ? lit + 1 : lit;
    if (strcmp(digits, "0") == 0) /* int("-0") == 0 */
        kn_bytes_putc(b, '0');
    else
        kn_bytes_puts(b, lit);
}

static void newline_indent(kn_bytes *b, int indent, int level)
{
    kn_bytes_putc(b, '\n');
    for (int k = 0; k < indent * level; k++)
        kn_bytes_putc(b, ' ');
}

static void dump_at(kn_bytes *b, const cJSON *v, int indent, int level)
{
    if (cJSON_IsNull(v)) return kn_bytes_puts(b, "null");
    if (cJSON_IsFalse(v)) return kn_bytes_puts(b, "false");
    if (cJSON_IsTrue(v)) return kn_bytes_puts(b, "true");
    if (cJSON_IsNumber(v)) return dump_number(b, v);
    if (cJSON_IsString(v)) return knj_dump_str(b, v->valuestring, strlen(v->valuestring));
    int obj = cJSON_IsObject(v);
    kn_bytes_putc(b, obj ? '{' : '[');
    for (const cJSON *c = v->child; c; c = c->next) {
        if (c != v->child)
            kn_bytes_puts(b, indent >= 0 ? "," : ", ");
        if (indent >= 0)
            newline_indent(b, indent, level + 1);
        if (obj) {
            knj_dump_str(b, c->string, strlen(c->string));
            kn_bytes_puts(b, ": ");
        }
        dump_at(b, c, indent, level + 1);
    }
    if (indent >= 0 && v->child)
        newline_indent(b, indent, level);
    kn_bytes_putc(b, obj ? '}' : ']');
}

void knj_dump(kn_bytes *b, const cJSON *v, int indent) { dump_at(b, v, indent, 0); }

char *kn_chat_tojson(const char *json, size_t len, int indent, char *err, size_t errlen)
{
    cJSON *v = kn_json_parse(json, len, 0, NULL, 0, err, errlen);
    if (!v)
        return NULL;
    kn_bytes b = {0};
    knj_dump(&b, v, indent);
    cJSON_Delete(v);
    char *s = knc_take(&b);
    if (!s)
        knc_err(err, errlen, "out of memory printing JSON");
    return s;
}
