/* models/text/json_constraint.c: the JSON pushdown automaton behind kn_jsonc_*.
 * One state code plus a bit stack of open containers; every byte is checked against RFC 8259, strings included
 * (escapes, control characters, and well-formed UTF-8: no overlong forms, surrogates or code points past U+10FFFF). */
#include "models/text/json_constraint.h"

#include <string.h>

enum {
    S_VALUE,     /* a value must come (ws allowed) */
    S_ARR_FIRST, /* after '[': a value or ']' */
    S_OBJ_FIRST, /* after '{': a key or '}' */
    S_OBJ_KEY,   /* after ',' in an object: a key */
    S_STR,
    S_STR_ESC,
    S_STR_U,     /* \u: 'need' hex digits to go */
    S_STR_UTF8,  /* 'need' continuation bytes to go, the next one in [lo, hi] */
    S_COLON,
    S_AFTER,     /* a value ended inside a container */
    S_NUM_MINUS, /* '-' read, a digit must follow */
    S_NUM_ZERO,  /* a leading 0: no more integer digits */
    S_NUM_INT,
    S_NUM_DOT,   /* '.' read, a digit must follow */
    S_NUM_FRAC,
    S_NUM_E,     /* 'e' read: sign or digit */
    S_NUM_ESIGN, /* sign read: digit */
    S_NUM_EXP,
    S_LIT,
    S_DONE,
};

static const char *const literals[3] = {"true", "false", "null"};

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int top_is_obj(const kn_jsonc *j)
{
    unsigned d = j->depth - 1u;
    return (j->is_obj[d >> 3] >> (d & 7)) & 1;
}

static int open_container(kn_jsonc *j, int obj)
{
    if (j->depth >= KN_JSONC_MAX_DEPTH)
        return 0;
    unsigned d = j->depth++;
    if (obj)
        j->is_obj[d >> 3] |= (uint8_t)(1u << (d & 7));
    else
        j->is_obj[d >> 3] &= (uint8_t)~(1u << (d & 7));
    j->state = obj ? S_OBJ_FIRST : S_ARR_FIRST;
    return 1;
}

static void value_end(kn_jsonc *j) { j->state = j->depth == 0 ? S_DONE : S_AFTER; }

/* A value starts with byte c (whitespace already skipped). */
static int start_value(kn_jsonc *j, unsigned char c)
{
    if (j->depth == 0 && (j->flags & KN_JSONC_OBJECT_ONLY) && c != '{')
        return 0;
    switch (c) {
    case '{': return open_container(j, 1);
    case '[': return open_container(j, 0);
    case '"': j->state = S_STR; j->in_key = 0; return 1;
    case '-': j->state = S_NUM_MINUS; return 1;
    case '0': j->state = S_NUM_ZERO; return 1;
    case 't': case 'f': case 'n':
        j->state = S_LIT;
        j->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
        j->lit_pos = 1;
        return 1;
    default:
        if (c >= '1' && c <= '9') {
            j->state = S_NUM_INT;
            return 1;
        }
        return 0;
    }
}

static int after_value(kn_jsonc *j, unsigned char c)
{
    if (is_ws(c))
        return 1;
    if (c == ',') {
        j->state = top_is_obj(j) ? S_OBJ_KEY : S_VALUE;
        return 1;
    }
    if ((c == '}' && top_is_obj(j)) || (c == ']' && !top_is_obj(j))) {
        j->depth--;
        value_end(j);
        return 1;
    }
    return 0;
}

static int string_byte(kn_jsonc *j, unsigned char c)
{
    if (c == '"') {
        if (j->in_key)
            j->state = S_COLON;
        else
            value_end(j);
        return 1;
    }
    if (c == '\\') {
        j->state = S_STR_ESC;
        return 1;
    }
    if (c < 0x20)
        return 0;
    if (c < 0x80)
        return 1;
    /* UTF-8 lead byte: how many continuation bytes, and the range of the first one (rules out overlong forms,
     * UTF-16 surrogates and code points above U+10FFFF). */
    j->lo = 0x80;
    j->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        j->need = 1;
    else if (c == 0xE0)
        j->need = 2, j->lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        j->need = 2;
    else if (c == 0xED)
        j->need = 2, j->hi = 0x9F;
    else if (c == 0xF0)
        j->need = 3, j->lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        j->need = 3;
    else if (c == 0xF4)
        j->need = 3, j->hi = 0x8F;
    else
        return 0;
    j->state = S_STR_UTF8;
    return 1;
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Number states. A byte that cannot continue a finished number ends it and is then read as what follows. */
static int number_byte(kn_jsonc *j, unsigned char c)
{
    int digit = c >= '0' && c <= '9';
    switch (j->state) {
    case S_NUM_MINUS:
        if (!digit)
            return 0;
        j->state = c == '0' ? S_NUM_ZERO : S_NUM_INT;
        return 1;
    case S_NUM_DOT:
        if (!digit)
            return 0;
        j->state = S_NUM_FRAC;
        return 1;
    case S_NUM_E:
        if (c == '+' || c == '-') {
            j->state = S_NUM_ESIGN;
            return 1;
        }
        if (!digit)
            return 0;
        j->state = S_NUM_EXP;
        return 1;
    case S_NUM_ESIGN:
        if (!digit)
            return 0;
        j->state = S_NUM_EXP;
        return 1;
    case S_NUM_INT:
        if (digit)
            return 1;
        /* fall through */
    case S_NUM_ZERO:
        if (c == '.') {
            j->state = S_NUM_DOT;
            return 1;
        }
        /* fall through */
    case S_NUM_FRAC:
        if (digit && j->state == S_NUM_FRAC)
            return 1;
        if (c == 'e' || c == 'E') {
            j->state = S_NUM_E;
            return 1;
        }
        break;
    case S_NUM_EXP:
        if (digit)
            return 1;
        break;
    default:
        return 0;
    }
    /* The number is over; c belongs to what follows it. */
    value_end(j);
    if (j->state == S_DONE)
        return is_ws(c);
    return after_value(j, c);
}

static int step(kn_jsonc *j, unsigned char c)
{
    switch (j->state) {
    case S_VALUE:
        return is_ws(c) ? 1 : start_value(j, c);
    case S_ARR_FIRST:
        if (is_ws(c))
            return 1;
        if (c == ']') {
            j->depth--;
            value_end(j);
            return 1;
        }
        return start_value(j, c);
    case S_OBJ_FIRST:
        if (c == '}') {
            j->depth--;
            value_end(j);
            return 1;
        }
        /* fall through */
    case S_OBJ_KEY:
        if (is_ws(c))
            return 1;
        if (c != '"')
            return 0;
        j->state = S_STR;
        j->in_key = 1;
        return 1;
    case S_STR:
        return string_byte(j, c);
    case S_STR_ESC:
        if (c == 'u') {
            j->state = S_STR_U;
            j->need = 4;
            return 1;
        }
        if (!strchr("\"\\/bfnrt", c) || c == 0)
            return 0;
        j->state = S_STR;
        return 1;
    case S_STR_U:
        if (!is_hex(c))
            return 0;
        if (--j->need == 0)
            j->state = S_STR;
        return 1;
    case S_STR_UTF8:
        if (c < j->lo || c > j->hi)
            return 0;
        j->lo = 0x80;
        j->hi = 0xBF;
        if (--j->need == 0)
            j->state = S_STR;
        return 1;
    case S_COLON:
        if (is_ws(c))
            return 1;
        if (c != ':')
            return 0;
        j->state = S_VALUE;
        return 1;
    case S_AFTER:
        return after_value(j, c);
    case S_LIT:
        if (c != (unsigned char)literals[j->lit][j->lit_pos])
            return 0;
        if (literals[j->lit][++j->lit_pos] == 0)
            value_end(j);
        return 1;
    case S_DONE:
        return is_ws(c);
    default:
        return number_byte(j, c);
    }
}

void kn_jsonc_init(kn_jsonc *j, unsigned flags)
{
    memset(j, 0, sizeof *j);
    j->state = S_VALUE;
    j->flags = (uint8_t)flags;
}

int kn_jsonc_push(kn_jsonc *j, unsigned char c)
{
    kn_jsonc next = *j;
    if (!step(&next, c))
        return 0;
    *j = next;
    return 1;
}

size_t kn_jsonc_push_bytes(kn_jsonc *j, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++)
        if (!kn_jsonc_push(j, p[i]))
            return i;
    return n;
}

int kn_jsonc_accepts(const kn_jsonc *j, const void *bytes, size_t n)
{
    kn_jsonc t = *j;
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++)
        if (!step(&t, p[i]))
            return 0;
    return 1;
}

int kn_jsonc_complete(const kn_jsonc *j)
{
    if (j->state == S_DONE)
        return 1;
    if (j->depth != 0)
        return 0;
    return j->state == S_NUM_ZERO || j->state == S_NUM_INT || j->state == S_NUM_FRAC || j->state == S_NUM_EXP;
}

int kn_jsonc_done(const kn_jsonc *j) { return j->state == S_DONE; }

int kn_jsonc_depth(const kn_jsonc *j) { return j->depth; }

kn_jsonc_where kn_jsonc_where_at(const kn_jsonc *j)
{
    switch (j->state) {
    case S_VALUE: case S_ARR_FIRST: return KN_JSONC_AT_VALUE;
    case S_OBJ_FIRST: case S_OBJ_KEY: return KN_JSONC_AT_KEY;
    case S_STR: case S_STR_ESC: case S_STR_U: case S_STR_UTF8:
        return j->in_key ? KN_JSONC_IN_KEY : KN_JSONC_IN_STRING;
    case S_COLON: return KN_JSONC_AFTER_KEY;
    case S_AFTER: return KN_JSONC_AFTER_VALUE;
    case S_LIT: return KN_JSONC_IN_LITERAL;
    case S_DONE: return KN_JSONC_DONE;
    default: return KN_JSONC_IN_NUMBER;
    }
}

int kn_json_valid(const void *bytes, size_t n, unsigned flags)
{
    kn_jsonc j;
    kn_jsonc_init(&j, flags);
    return kn_jsonc_push_bytes(&j, bytes, n) == n && kn_jsonc_complete(&j);
}
