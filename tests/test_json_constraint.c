/* tests/test_json_constraint.c: the incremental JSON validator (models/text/json_constraint.c) against a plain
 * recursive-descent reference written here: on hand-written and on random valid and mutated texts the validator
 * must stop at exactly the byte where the reference finds the text broken, and call a text complete exactly when
 * the reference accepts it. Then a simulated constrained sampler walks a token vocabulary with kn_jsonc_accepts and
 * must only ever produce prefixes of valid JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/json_constraint.h"
#include "check.h"


/* ---- reference: RFC 8259 by recursive descent. Each function returns OK, END (input ran out: still a valid
 * prefix) or BAD (r->bad = offset of the first byte that cannot belong to any valid text). ------------------ */

enum { OK, END, BAD };

typedef struct ref {
    const unsigned char *s;
    size_t n, i, bad;
} ref;

static int bad_at(ref *r)
{
    r->bad = r->i;
    return BAD;
}

static void ws(ref *r)
{
    while (r->i < r->n && strchr(" \t\r\n", r->s[r->i]) && r->s[r->i])
        r->i++;
}

static int expect(ref *r, char c)
{
    if (r->i == r->n)
        return END;
    if (r->s[r->i] != (unsigned char)c)
        return bad_at(r);
    r->i++;
    return OK;
}

/* Unicode's table of well-formed UTF-8 byte sequences (Table 3-7). */
static int utf8_char(ref *r)
{
    static const struct {
        unsigned char lead_lo, lead_hi, lo1, hi1;
        int n;
    } rows[] = {
        {0xC2, 0xDF, 0x80, 0xBF, 2}, {0xE0, 0xE0, 0xA0, 0xBF, 3}, {0xE1, 0xEC, 0x80, 0xBF, 3},
        {0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3}, {0xF0, 0xF0, 0x90, 0xBF, 4},
        {0xF1, 0xF3, 0x80, 0xBF, 4}, {0xF4, 0xF4, 0x80, 0x8F, 4},
    };
    unsigned char c = r->s[r->i];
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        if (c < rows[k].lead_lo || c > rows[k].lead_hi)
            continue;
        r->i++;
        for (int b = 1; b < rows[k].n; b++) {
            if (r->i == r->n)
                return END;
            unsigned char lo = b == 1 ? rows[k].lo1 : 0x80, hi = b == 1 ? rows[k].hi1 : 0xBF;
            if (r->s[r->i] < lo || r->s[r->i] > hi)
                return bad_at(r);
            r->i++;
        }
        return OK;
    }
    return bad_at(r);
}

static int string(ref *r)
{
    int rc = expect(r, '"');
    if (rc != OK)
        return rc;
    for (;;) {
        if (r->i == r->n)
            return END;
        unsigned char c = r->s[r->i];
        if (c == '"') {
            r->i++;
            return OK;
        }
        if (c < 0x20)
            return bad_at(r);
        if (c == '\\') {
            r->i++;
            if (r->i == r->n)
                return END;
            c = r->s[r->i];
            if (c == 'u') {
                r->i++;
                for (int k = 0; k < 4; k++, r->i++) {
                    if (r->i == r->n)
                        return END;
                    if (!strchr("0123456789abcdefABCDEF", r->s[r->i]) || !r->s[r->i])
                        return bad_at(r);
                }
                continue;
            }
            if (!c || !strchr("\"\\/bfnrt", c))
                return bad_at(r);
            r->i++;
        } else if (c >= 0x80) {
            if ((rc = utf8_char(r)) != OK)
                return rc;
        } else {
            r->i++;
        }
    }
}

static int digits(ref *r, int at_least_one)
{
    size_t start = r->i;
    while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9')
        r->i++;
    if (r->i == start && at_least_one)
        return r->i == r->n ? END : bad_at(r);
    return OK;
}

/* A number at the end of the input is complete only at the top level (a caller sees END otherwise). */
static int number(ref *r)
{
    int rc;
    if (r->s[r->i] == '-')
        r->i++;
    if (r->i == r->n)
        return END;
    if (r->s[r->i] == '0')
        r->i++;
    else if ((rc = digits(r, 1)) != OK)
        return rc;
    if (r->i < r->n && r->s[r->i] == '.') {
        r->i++;
        if ((rc = digits(r, 1)) != OK)
            return rc;
    }
    if (r->i < r->n && (r->s[r->i] == 'e' || r->s[r->i] == 'E')) {
        r->i++;
        if (r->i < r->n && (r->s[r->i] == '+' || r->s[r->i] == '-'))
            r->i++;
        if ((rc = digits(r, 1)) != OK)
            return rc;
    }
    return OK;
}

static int value(ref *r);

static int members(ref *r, int obj)
{
    char close = obj ? '}' : ']';
    r->i++;
    ws(r);
    if (r->i == r->n)
        return END;
    if (r->s[r->i] == (unsigned char)close) {
        r->i++;
        return OK;
    }
    for (;;) {
        int rc;
        if (obj) {
            if ((rc = string(r)) != OK)
                return rc;
            ws(r);
            if ((rc = expect(r, ':')) != OK)
                return rc;
            ws(r);
        }
        if ((rc = value(r)) != OK)
            return rc;
        ws(r);
        if (r->i == r->n)
            return END;
        if (r->s[r->i] == (unsigned char)close) {
            r->i++;
            return OK;
        }
        if ((rc = expect(r, ',')) != OK)
            return rc;
        ws(r);
    }
}

static int literal(ref *r, const char *word)
{
    for (size_t k = 0; word[k]; k++) {
        int rc = expect(r, word[k]);
        if (rc != OK)
            return rc;
    }
    return OK;
}

static int value(ref *r)
{
    if (r->i == r->n)
        return END;
    switch (r->s[r->i]) {
    case '{': return members(r, 1);
    case '[': return members(r, 0);
    case '"': return string(r);
    case 't': return literal(r, "true");
    case 'f': return literal(r, "false");
    case 'n': return literal(r, "null");
    default:
        if (r->s[r->i] == '-' || (r->s[r->i] >= '0' && r->s[r->i] <= '9')) {
            int rc = number(r);
            /* inside a container a number at the end of input is unfinished */
            return rc;
        }
        return bad_at(r);
    }
}

/* 1 valid, 0 valid prefix, -1 broken at *bad. */
static int ref_check(const char *s, size_t n, int object_only, size_t *bad)
{
    ref r = {(const unsigned char *)s, n, 0, 0};
    ws(&r);
    if (object_only && r.i < n && s[r.i] != '{') {
        *bad = r.i;
        return -1;
    }
    int rc = value(&r);
    if (rc == BAD) {
        *bad = r.bad;
        return -1;
    }
    if (rc == END)
        return 0;
    ws(&r);
    if (r.i < n) {
        *bad = r.i;
        return -1;
    }
    return 1;
}

/* ---- comparison ---------------------------------------------------------------------------------------------- */

static int compare(const char *s, size_t n, unsigned flags, int print)
{
    size_t bad = 0;
    int want = ref_check(s, n, (flags & KN_JSONC_OBJECT_ONLY) != 0, &bad);
    kn_jsonc j;
    kn_jsonc_init(&j, flags);
    size_t acc = kn_jsonc_push_bytes(&j, s, n);
    int ok = want == 1   ? acc == n && kn_jsonc_complete(&j)
             : want == 0 ? acc == n && !kn_jsonc_complete(&j)
                         : acc == bad;
    ok = ok && kn_json_valid(s, n, flags) == (want == 1);
    if (!ok && print)
        printf("FAIL \"%.*s\" (%zu bytes): reference %s at %zu; validator took %zu, complete %d\n", (int)(n > 80 ? 80 : n),
               s, n, want == 1 ? "valid" : want == 0 ? "prefix" : "broken", bad, acc, kn_jsonc_complete(&j));
    return ok;
}

static const char *const valid[] = {
    "0", "-0", "1", "-12", "1.5", "1e5", "1E+5", "-1.25e-10", "0.0", "123456789012345678901234567890",
    "true", "false", "null", "\"\"", "\"abc\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u00e9\\uD83C\\uDF89\"",
    "\"\\ud800\"", "\"é日本🎉\"", "\"\xed\x9f\xbf\"", "\"\xf4\x8f\xbf\xbf\"", "[]", "{}", " [ ] ", "\n{\n}\n",
    "[1,2,3]", "[ 1 , \"a\" , [ ] , { } , null ]", "{\"a\":1}", "{ \"a\" : { \"b\" : [ true , false ] } }",
    "{\"\":\"\"}", "[[[[[[]]]]]]", "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}", "\t\r\n 7 \t",
};

static const char *const invalid[] = {
    "01", "-", "-a", "1.", "1.e5", ".5", "1e", "1e+", "+1", "0x10", "NaN", "Infinity", "tru", "truee", "nul",
    "True", "'a'", "\"a", "\"\\x\"", "\"\\u12G4\"", "\"a\nb\"", "\"\t\"", "\"\xc0\x80\"", "\"\xc1\xbf\"",
    "\"\xe0\x80\x80\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"", "\"\x80\"", "\"\xff\"",
    "[", "[1,]", "[,1]", "[1 2]", "{", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{a:1}", "{\"a\":1,}", "{,}", "{\"a\":1]",
    "[1}", "1 2", "{} {}", "[] x", "\"\" \"\"", "", "   ", "/* */ 1", "[1]/", "{\"a\":1 \"b\":2}",
};

static void check_lists(void)
{
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t bad;
        CHECK(ref_check(valid[i], strlen(valid[i]), 0, &bad) == 1, "reference rejects valid \"%s\"", valid[i]);
        CHECK(kn_json_valid(valid[i], strlen(valid[i]), 0), "validator rejects valid \"%s\"", valid[i]);
        CHECK(compare(valid[i], strlen(valid[i]), 0, 1), "valid \"%s\"", valid[i]);
        /* every proper prefix of a valid text is accepted */
        for (size_t k = 0; k < strlen(valid[i]); k++) {
            kn_jsonc j;
            kn_jsonc_init(&j, 0);
            CHECK(kn_jsonc_push_bytes(&j, valid[i], k) == k, "prefix %zu of \"%s\"", k, valid[i]);
        }
    }
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        size_t bad;
        CHECK(ref_check(invalid[i], strlen(invalid[i]), 0, &bad) != 1, "reference accepts invalid \"%s\"", invalid[i]);
        CHECK(!kn_json_valid(invalid[i], strlen(invalid[i]), 0), "validator accepts invalid \"%s\"", invalid[i]);
        CHECK(compare(invalid[i], strlen(invalid[i]), 0, 1), "invalid \"%s\"", invalid[i]);
    }
    /* object-only mode, done vs complete, rejected bytes leave the state alone */
    CHECK(!kn_json_valid("[1]", 3, KN_JSONC_OBJECT_ONLY) && kn_json_valid(" {} ", 4, KN_JSONC_OBJECT_ONLY) &&
              !kn_json_valid("1", 1, KN_JSONC_OBJECT_ONLY),
          "object only");
    kn_jsonc j;
    kn_jsonc_init(&j, 0);
    kn_jsonc_push_bytes(&j, "12", 2);
    CHECK(kn_jsonc_complete(&j) && !kn_jsonc_done(&j) && kn_jsonc_push(&j, '3'), "top-level number goes on");
    kn_jsonc_init(&j, 0);
    kn_jsonc_push_bytes(&j, "{\"a\"", 4);
    kn_jsonc copy = j;
    CHECK(!kn_jsonc_push(&j, '}') && !memcmp(&copy, &j, sizeof j) && kn_jsonc_push(&j, ':'), "reject keeps state");
    CHECK(kn_jsonc_where_at(&copy) == KN_JSONC_AFTER_KEY && kn_jsonc_depth(&copy) == 1, "where/depth");
    CHECK(kn_jsonc_accepts(&copy, ": [1, {}]}", 10) && !kn_jsonc_accepts(&copy, ": [1, {}]]", 10) &&
              kn_jsonc_depth(&copy) == 1,
          "accepts does not change the state");
    kn_jsonc_init(&j, 0);
    char deep[KN_JSONC_MAX_DEPTH + 1];
    memset(deep, '[', sizeof deep);
    CHECK(kn_jsonc_push_bytes(&j, deep, sizeof deep) == KN_JSONC_MAX_DEPTH, "depth limit %d", KN_JSONC_MAX_DEPTH);
}

/* ---- random texts -------------------------------------------------------------------------------------------- */

static unsigned long long rng = 0x2545F4914F6CDD1Dull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void put(char *s, size_t *n, size_t cap, const char *t)
{
    size_t k = strlen(t);
    if (*n + k < cap) {
        memcpy(s + *n, t, k);
        *n += k;
    }
}

static void gen(char *s, size_t *n, size_t cap, int depth)
{
    static const char *const atoms[] = {"0", "-1", "3.25", "1e9", "-0.5E-3", "true", "false", "null", "\"\"",
                                        "\"text\"", "\"\\n\\u00e9\"", "\"日本\"", "\"🎉\"", "12345678901234567890"};
    static const char *const sp[] = {"", "", " ", "\n", "\t "};
    unsigned k = depth > 5 ? 0 : rnd(4);
    if (k < 2) {
        put(s, n, cap, atoms[rnd(sizeof atoms / sizeof atoms[0])]);
        return;
    }
    int obj = k == 2;
    put(s, n, cap, obj ? "{" : "[");
    for (unsigned i = 0, m = rnd(4); i < m; i++) {
        if (i)
            put(s, n, cap, ",");
        put(s, n, cap, sp[rnd(5)]);
        if (obj) {
            put(s, n, cap, rnd(2) ? "\"k\"" : "\"key é\"");
            put(s, n, cap, sp[rnd(5)]);
            put(s, n, cap, ":");
            put(s, n, cap, sp[rnd(5)]);
        }
        gen(s, n, cap, depth + 1);
        put(s, n, cap, sp[rnd(5)]);
    }
    put(s, n, cap, obj ? "}" : "]");
}

static void mutate(char *s, size_t *n, size_t cap)
{
    static const char bytes[] = "{}[]\",:.-+eE0123456789 \\u\ntfnalx\x01\x7f\x80\xbf\xc3\xa9\xe6\xed\xf0\xf4\xff";
    size_t at = *n ? rnd((unsigned)*n) : 0;
    switch (rnd(4)) {
    case 0:
        if (*n) {
            memmove(s + at, s + at + 1, *n - at - 1);
            (*n)--;
        }
        break;
    case 1:
        if (*n + 1 < cap) {
            memmove(s + at + 1, s + at, *n - at);
            s[at] = bytes[rnd(sizeof bytes - 1)];
            (*n)++;
        }
        break;
    case 2:
        if (*n)
            s[at] = bytes[rnd(sizeof bytes - 1)];
        break;
    default: *n = at; break;
    }
}

static void check_random(void)
{
    int bad = 0, n_valid = 0, n_prefix = 0, n_broken = 0;
    for (int t = 0; t < 20000; t++) {
        char s[2048];
        size_t n = 0;
        gen(s, &n, sizeof s, t % 4 == 0 ? 5 : 0);
        for (unsigned m = t % 3 == 0 ? 0 : 1 + rnd(3); m > 0; m--)
            mutate(s, &n, sizeof s);
        unsigned flags = t % 5 == 0 ? KN_JSONC_OBJECT_ONLY : 0;
        size_t where;
        int r = ref_check(s, n, flags != 0, &where);
        n_valid += r == 1, n_prefix += r == 0, n_broken += r == -1;
        if (!compare(s, n, flags, bad < 5))
            bad++;
    }
    CHECK(bad == 0, "%d random texts disagree with the reference", bad);
    printf("20000 random texts: %d valid, %d prefixes, %d broken; %d disagree\n", n_valid, n_prefix, n_broken, bad);
}

/* A constrained sampler: from each state pick a random token the validator accepts; every text produced must be
 * a valid prefix, and whenever the validator says complete, valid JSON. The vocabulary has every byte a text can
 * need, so a state is never stuck. */
static void check_sampling(void)
{
    const char *vocab[300];
    size_t nv = 0;
    static char singles[256][2];
    for (int c = 1; c < 256; c++) {
        singles[c][0] = (char)c;
        vocab[nv++] = singles[c];
    }
    static const char *const multi[] = {"{\"", "\":", "\": \"", "\", \"", "true", "false", "null", "}}", "]}",
                                        "{\"name\": \"", "\"arguments\": {", "123", ".5", "e-3", "é", "日本", "🎉",
                                        "\\u00e9", "\\n", " ", "\n  "};
    for (size_t k = 0; k < sizeof multi / sizeof multi[0]; k++)
        vocab[nv++] = multi[k];
    int bad = 0, completed = 0;
    for (int t = 0; t < 300; t++) {
        unsigned flags = t % 2 ? KN_JSONC_OBJECT_ONLY : 0;
        kn_jsonc j;
        kn_jsonc_init(&j, flags);
        char out[4096];
        size_t n = 0;
        for (int step = 0; step < 400; step++) {
            size_t ok[300], nok = 0;
            for (size_t v = 0; v < nv; v++)
                if (n + strlen(vocab[v]) < sizeof out && kn_jsonc_accepts(&j, vocab[v], strlen(vocab[v])))
                    ok[nok++] = v;
            if (nok == 0) {
                if (!kn_jsonc_done(&j) && bad++ < 5)
                    printf("FAIL sampler stuck after \"%.*s\"\n", (int)n, out);
                break;
            }
            /* prefer closing brackets and quotes late, so texts end */
            size_t pick = ok[rnd((unsigned)nok)];
            if (step > 100)
                for (size_t k = 0; k < nok; k++)
                    if (strchr("}]\"0", vocab[ok[k]][0]) && vocab[ok[k]][1] == 0 && rnd(2))
                        pick = ok[k];
            size_t len = strlen(vocab[pick]);
            kn_jsonc_push_bytes(&j, vocab[pick], len);
            memcpy(out + n, vocab[pick], len);
            n += len;
            size_t where;
            int r = ref_check(out, n, flags != 0, &where);
            if (r == -1 || (kn_jsonc_complete(&j) != (r == 1))) {
                if (bad++ < 5)
                    printf("FAIL sampler produced \"%.*s\" (reference %d)\n", (int)n, out, r);
                break;
            }
            if (kn_jsonc_done(&j)) {
                completed++;
                break;
            }
        }
    }
    CHECK(bad == 0, "constrained sampling produced invalid text %d times", bad);
    printf("constrained sampling: 300 walks, %d reached a complete value\n", completed);
}

int main(void)
{
    check_lists();
    check_random();
    check_sampling();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
