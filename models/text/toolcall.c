/* models/text/toolcall.c: the incremental parser that splits model output into content, reasoning and tool calls.
 * Text is passed on as soon as it cannot be the start of a tag; a call's JSON is followed byte by byte with the
 * kn_jsonc automaton, so its name is announced once known and its arguments stream while they stay valid. A call
 * that turns out malformed is withdrawn (KN_TC_CALL_ABORT) and its raw text becomes content: nothing is dropped. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "models/text/chat_impl.h"
#include "models/text/json_constraint.h"

/* Modes. START: the reply (or the text after </think>) has shown only whitespace; TEXT: content; THINK: inside
 * <think>; AFTER_THINK: dropping the newlines after </think>; CALL: inside a call's JSON object; CLOSING: the object
 * is complete, </tool_call> may follow; AFTER_CALL: dropping whitespace after a call; PYTAG: after <|python_tag|>;
 * Mistral: MTAG after [TOOL_CALLS] (a '[' list of call objects follows, or v11's name[ARGS]{…}); MLIST between the
 * objects of that list (',' or ']'); MNAME: a v11 name before [ARGS]; MARGS: v11's arguments object. */
enum { M_START, M_TEXT, M_THINK, M_AFTER_THINK, M_CALL, M_CLOSING, M_AFTER_CALL, M_PYTAG, M_MTAG, M_MLIST, M_MNAME,
       M_MARGS };
enum { K_OTHER, K_NAME, K_ARGS, K_TYPE };

static const char TAG_CALL[] = "<tool_call>", TAG_CALL_END[] = "</tool_call>", TAG_PY[] = "<|python_tag|>";
static const char TAG_THINK[] = "<think>", TAG_THINK_END[] = "</think>";
static const char TAG_MISTRAL[] = "[TOOL_CALLS]", TAG_ARGS[] = "[ARGS]";

typedef struct call_st {
    int tagged;      /* opened by a tag: any key order; bare JSON must start with "name" (or "type") */
    int close_tag;   /* </tool_call> may follow the object */
    int in_obj;      /* '{' seen */
    int py_code;     /* PYTAG: the text is not JSON (builtin call or code) */
    size_t py_start; /* where that text starts in raw */
    kn_jsonc j;
    kn_bytes raw;     /* all the call consumed: the content it becomes if it fails */
    char key[24];
    size_t keylen;
    int n_keys, cur; /* keys seen at depth 1; the kind of the current one */
    int val_active;
    char args_first; /* '{' (streamed) or '"' (a string holding JSON, decoded at its end) */
    kn_bytes nbuf;    /* the name's JSON string */
    kn_bytes abuf;    /* arguments not yet sent */
    char *name;
    int begun;       /* CALL_BEGIN sent */
    int args_seen, args_done;
} call_st;

struct kn_toolparser {
    kn_chat_family family;
    kn_tc_opts o;
    char **names;
    int mode;
    int think_lead;  /* inside <think>, nothing sent yet: leading newlines are dropped */
    int in_list;     /* Mistral: the call being read is an element of a [TOOL_CALLS] [...] list */
    kn_bytes pend;    /* input not yet decided */
    call_st c;
    int n_calls;
    uint64_t rng;
    tc_events ev;
};

/* ---- setup -------------------------------------------------------------------------------------------------- */

void kn_tc_opts_init(kn_tc_opts *o, kn_chat_family family)
{
    memset(o, 0, sizeof *o);
    o->parse_think = family == KN_CHAT_QWEN3;
    o->bare_json = family == KN_CHAT_LLAMA3 || family == KN_CHAT_LLAMA31;
}

static int is_llama(const kn_toolparser *p) { return p->family == KN_CHAT_LLAMA3 || p->family == KN_CHAT_LLAMA31; }

/* The tag that opens a call in free text. */
static const char *call_tag(const kn_toolparser *p)
{
    return is_llama(p) ? TAG_PY : p->family == KN_CHAT_MISTRAL ? TAG_MISTRAL : TAG_CALL;
}

static void call_reset(call_st *c)
{
    kn_bytes_free(&c->raw);
    kn_bytes_free(&c->nbuf);
    kn_bytes_free(&c->abuf);
    free(c->name);
    memset(c, 0, sizeof *c);
}

static int copy_names(kn_toolparser *p, const kn_tc_opts *o)
{
    size_t n = o->n_tool_names;
    p->o.tool_names = NULL;
    p->o.n_tool_names = 0;
    if (n == 0 || !o->tool_names)
        return 0;
    if (!(p->names = calloc(n, sizeof *p->names)))
        return -1;
    p->o.n_tool_names = n;
    for (size_t k = 0; k < n; k++)
        if (!(p->names[k] = knc_strdup(o->tool_names[k] ? o->tool_names[k] : "")))
            return -1;
    return 0;
}

kn_toolparser *kn_toolparser_new(kn_chat_family family, const kn_tc_opts *o)
{
    kn_toolparser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->family = family;
    if (o)
        p->o = *o;
    else
        kn_tc_opts_init(&p->o, family);
    if (o && copy_names(p, o)) {
        kn_toolparser_free(p);
        return NULL;
    }
    p->rng = p->o.id_seed;
    if (!p->rng && getrandom(&p->rng, sizeof p->rng, 0) != (ssize_t)sizeof p->rng)
        p->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)p;
    kn_bytes_put(&p->pend, "", 1); /* pend.s is never NULL */
    p->pend.len = 0;
    if (p->pend.oom) {
        kn_toolparser_free(p);
        return NULL;
    }
    if (p->o.in_reasoning) {
        p->mode = M_THINK;
        p->think_lead = 1;
    }
    return p;
}

void kn_toolparser_free(kn_toolparser *p)
{
    if (!p)
        return;
    for (size_t k = 0; p->names && k < p->o.n_tool_names; k++)
        free(p->names[k]);
    free(p->names);
    kn_bytes_free(&p->pend);
    call_reset(&p->c);
    tc_events_free(&p->ev);
    free(p);
}

int kn_toolparser_n_calls(const kn_toolparser *p) { return p->n_calls; }

const kn_tc_event *kn_toolparser_events(const kn_toolparser *p, size_t *n)
{
    *n = p->ev.n;
    return p->ev.ev;
}

/* call_<24 letters and digits>, from a splitmix64 sequence; Mistral: 9 letters and digits (its template refuses
 * any other id when the call comes back in the conversation). */
static void make_id(kn_toolparser *p, char out[32])
{
    static const char an[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    int mistral = p->family == KN_CHAT_MISTRAL, pre = mistral ? 0 : 5, n = mistral ? 9 : 24;
    memcpy(out, "call_", (size_t)pre);
    for (int k = 0; k < n; k++) {
        uint64_t z = (p->rng += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        out[pre + k] = an[(z ^ (z >> 31)) % 62];
    }
    out[pre + n] = 0;
}

/* ---- text helpers ------------------------------------------------------------------------------------------- */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Length of the longest suffix of s[0..n) that is a proper prefix of tag. */
static size_t partial_suffix(const char *s, size_t n, const char *tag)
{
    size_t t = strlen(tag);
    for (size_t k = t - 1 < n ? t - 1 : n; k > 0; k--)
        if (memcmp(s + n - k, tag, k) == 0)
            return k;
    return 0;
}

static const char *find(const char *s, size_t n, const char *tag)
{
    size_t t = strlen(tag);
    for (size_t i = 0; i + t <= n; i++)
        if (s[i] == tag[0] && memcmp(s + i, tag, t) == 0)
            return s + i;
    return NULL;
}

/* s[0..n) is a prefix of tag (n may exceed nothing: longer input is compared on the tag's length). */
static int prefix_of(const char *s, size_t n, const char *tag)
{
    size_t t = strlen(tag);
    return memcmp(s, tag, n < t ? n : t) == 0;
}

/* ---- calls -------------------------------------------------------------------------------------------------- */

static void call_open(kn_toolparser *p, const char *pre, size_t npre, const char *tag, int tagged, int close_tag)
{
    call_reset(&p->c);
    p->c.tagged = tagged;
    p->c.close_tag = close_tag;
    kn_jsonc_init(&p->c.j, KN_JSONC_OBJECT_ONLY);
    kn_bytes_put(&p->c.raw, pre, npre);
    kn_bytes_puts(&p->c.raw, tag);
}

/* Not a call after all: withdraw it and hand its text on as content. */
static void call_abort(kn_toolparser *p)
{
    if (p->c.begun)
        tc_emit_mark(&p->ev, KN_TC_CALL_ABORT, p->n_calls, NULL, NULL);
    tc_emit_text(&p->ev, KN_TC_CONTENT, 0, p->c.raw.s, p->c.raw.len);
    call_reset(&p->c);
    p->mode = M_TEXT;
    p->in_list = 0;
}

static void send_args(kn_toolparser *p)
{
    tc_emit_text(&p->ev, KN_TC_CALL_ARGS, p->n_calls, p->c.abuf.s, p->c.abuf.len);
    p->c.abuf.len = 0;
}

static void call_done(kn_toolparser *p)
{
    if (!p->c.args_seen) /* no arguments key: a call without arguments */
        tc_emit_text(&p->ev, KN_TC_CALL_ARGS, p->n_calls, "{}", 2);
    tc_emit_mark(&p->ev, KN_TC_CALL_END, p->n_calls, NULL, NULL);
    p->n_calls++;
    call_reset(&p->c);
    p->mode = p->in_list ? M_MLIST : M_AFTER_CALL;
}

static int name_allowed(const kn_toolparser *p, const char *name)
{
    if (!*name)
        return 0;
    if (p->c.tagged || p->o.n_tool_names == 0)
        return 1;
    for (size_t k = 0; k < p->o.n_tool_names; k++)
        if (!strcmp(p->names[k], name))
            return 1;
    return 0;
}

/* Announce the call as soon as its name is known; arguments read before it go out with it. */
static void call_begin(kn_toolparser *p)
{
    char id[32];
    make_id(p, id);
    tc_emit_mark(&p->ev, KN_TC_CALL_BEGIN, p->n_calls, id, p->c.name);
    p->c.begun = 1;
    if (p->c.args_done || p->c.args_first == '{')
        send_args(p);
}

/* Decode a JSON string value (quotes included); NULL when it holds U+0000 or is no string. */
static char *decode_string(const kn_bytes *b)
{
    cJSON *v = kn_json_parse(b->s ? b->s : "", b->len, 0, NULL, 0, NULL, 0);
    char *s = cJSON_IsString(v) ? knc_strdup(v->valuestring) : NULL;
    cJSON_Delete(v);
    return s;
}

/* A value at depth 1 ended. -1: it makes the call malformed. */
static int value_end(kn_toolparser *p)
{
    call_st *c = &p->c;
    c->val_active = 0;
    if (c->cur == K_NAME) {
        if (!(c->name = decode_string(&c->nbuf)) || !name_allowed(p, c->name))
            return -1;
        call_begin(p);
        return 0;
    }
    if (c->cur != K_ARGS)
        return 0;
    c->args_done = 1;
    if (c->args_first == '"') { /* "arguments": "{\"city\": …}" — the string must hold a JSON object */
        char *s = decode_string(&c->abuf);
        int ok = s && kn_json_valid(s, strlen(s), KN_JSONC_OBJECT_ONLY);
        c->abuf.len = 0;
        if (ok)
            kn_bytes_puts(&c->abuf, s);
        free(s);
        if (!ok)
            return -1;
    }
    if (c->begun)
        send_args(p);
    return 0;
}

static void value_byte(kn_toolparser *p, char ch)
{
    call_st *c = &p->c;
    if (c->cur == K_NAME)
        kn_bytes_putc(&c->nbuf, ch);
    else if (c->cur == K_ARGS && c->begun && c->args_first == '{')
        tc_emit_text(&p->ev, KN_TC_CALL_ARGS, p->n_calls, &ch, 1);
    else if (c->cur == K_ARGS)
        kn_bytes_putc(&c->abuf, ch);
}

/* A value starts at depth 1. -1: a repeated name or arguments, or arguments that are neither object nor string. */
static int value_start(kn_toolparser *p, char ch)
{
    call_st *c = &p->c;
    c->val_active = 1;
    if (c->cur == K_NAME && c->name)
        return -1;
    if (c->cur == K_ARGS) {
        if (c->args_seen || (ch != '{' && ch != '"'))
            return -1;
        c->args_seen = 1;
        c->args_first = ch;
    }
    value_byte(p, ch);
    return 0;
}

static void key_done(call_st *c)
{
    c->n_keys++;
    int fits = c->keylen < sizeof c->key;
    c->key[fits ? c->keylen : 0] = 0;
    if (!fits)
        c->cur = K_OTHER;
    else if (!strcmp(c->key, "name"))
        c->cur = K_NAME;
    else if (!strcmp(c->key, "arguments") || !strcmp(c->key, "parameters"))
        c->cur = K_ARGS;
    else if (!strcmp(c->key, "type"))
        c->cur = K_TYPE;
    else
        c->cur = K_OTHER;
}

/* Follow keys and values at depth 1 around one accepted byte. -1: the call is malformed. */
static int track(kn_toolparser *p, char ch, kn_jsonc_where before, int dbefore)
{
    call_st *c = &p->c;
    kn_jsonc_where after = kn_jsonc_where_at(&c->j);
    int dafter = kn_jsonc_depth(&c->j);
    if (dafter != 1) {
        /* keys of nested objects are part of a value */
    } else if (before == KN_JSONC_AT_KEY && after == KN_JSONC_IN_KEY) {
        c->keylen = 0;
    } else if (before == KN_JSONC_IN_KEY && after == KN_JSONC_IN_KEY) {
        if (c->keylen < sizeof c->key)
            c->key[c->keylen] = ch;
        c->keylen++;
    } else if (before == KN_JSONC_IN_KEY && after == KN_JSONC_AFTER_KEY) {
        key_done(c);
        if (!c->tagged && c->n_keys == 1 && c->cur != K_NAME && c->cur != K_TYPE)
            return -1; /* bare JSON that does not open like a call is content */
    }
    if (c->val_active) {
        /* a number value ends at the byte after it, which is not part of it */
        if (!(dbefore == 1 && before == KN_JSONC_IN_NUMBER && after != KN_JSONC_IN_NUMBER))
            value_byte(p, ch);
        if (dafter <= 1 && after != KN_JSONC_IN_STRING && after != KN_JSONC_IN_NUMBER &&
            after != KN_JSONC_IN_LITERAL && value_end(p))
            return -1;
    } else if (dbefore == 1 && before == KN_JSONC_AT_VALUE && !is_ws(ch)) {
        if (value_start(p, ch))
            return -1;
    }
    return 0;
}

/* One byte of a call. 1: used; 0: the call is malformed and the byte was not used; -1: malformed, byte used. */
static int call_byte(kn_toolparser *p, char ch)
{
    call_st *c = &p->c;
    if (!c->in_obj) {
        if (is_ws(ch)) {
            kn_bytes_putc(&c->raw, ch);
            return 1;
        }
        if (ch != '{')
            return 0;
        c->in_obj = 1;
    }
    kn_jsonc_where before = kn_jsonc_where_at(&c->j);
    int dbefore = kn_jsonc_depth(&c->j);
    if (!kn_jsonc_push(&c->j, (unsigned char)ch))
        return 0;
    kn_bytes_putc(&c->raw, ch);
    if (track(p, ch, before, dbefore))
        return -1;
    if (kn_jsonc_depth(&c->j) == 0) { /* the object is closed */
        if (!c->name)
            return -1;
        if (c->close_tag)
            p->mode = M_CLOSING;
        else
            call_done(p);
    }
    return 1;
}

/* <|python_tag|> followed by no JSON: a builtin call name.call(k="v"), else code for the "python" tool. */
static void python_call(kn_toolparser *p)
{
    call_st *c = &p->c;
    const char *code = c->raw.s + c->py_start;
    size_t n = c->raw.len - c->py_start;
    char *args = tc_python_call(code, n, &c->name);
    if (!args) {
        size_t b = 0, e = n;
        while (b < e && is_ws(code[b]))
            b++;
        while (e > b && is_ws(code[e - 1]))
            e--;
        if (b == e) {
            call_abort(p);
            return;
        }
        kn_bytes j = {0};
        kn_bytes_puts(&j, "{\"code\": ");
        knj_dump_str(&j, code + b, e - b);
        kn_bytes_putc(&j, '}');
        args = knc_take(&j);
        c->name = knc_strdup("python");
    }
    if (!args || !c->name) {
        free(args);
        call_abort(p);
        return;
    }
    c->args_seen = 1;
    call_begin(p);
    tc_emit_text(&p->ev, KN_TC_CALL_ARGS, p->n_calls, args, strlen(args));
    free(args);
    call_done(p);
}

/* ---- modes -------------------------------------------------------------------------------------------------- */

/* Each step reads the undecided input s[0..n) and returns how many bytes it used. Returning 0 without a change of
 * mode means "wait for more input"; with final set (end of output) every step settles. */

static size_t step_text(kn_toolparser *p, const char *s, size_t n, int final)
{
    const char *tag = call_tag(p), *t = find(s, n, tag);
    if (t) {
        size_t body = (size_t)(t - s), ws = 0;
        while (ws < body && is_ws(s[body - ws - 1])) /* whitespace before a call is dropped */
            ws++;
        tc_emit_text(&p->ev, KN_TC_CONTENT, 0, s, body - ws);
        int py = tag == TAG_PY;
        call_open(p, s + body - ws, ws, tag, 1, tag == TAG_CALL);
        p->mode = py ? M_PYTAG : tag == TAG_MISTRAL ? M_MTAG : M_CALL;
        if (py)
            p->c.py_start = p->c.raw.len;
        return body + strlen(tag);
    }
    size_t keep = 0;
    if (!final) { /* hold what may still become the tag, and the whitespace before it */
        keep = partial_suffix(s, n, tag);
        while (keep < n && is_ws(s[n - keep - 1]))
            keep++;
    }
    tc_emit_text(&p->ev, KN_TC_CONTENT, 0, s, n - keep);
    return n - keep;
}

static size_t step_start(kn_toolparser *p, const char *s, size_t n, int final)
{
    size_t k = 0;
    while (k < n && is_ws(s[k]))
        k++;
    if (k == n && !final)
        return 0;
    if (k < n && p->o.parse_think && prefix_of(s + k, n - k, TAG_THINK)) {
        if (n - k >= strlen(TAG_THINK)) {
            p->mode = M_THINK;
            p->think_lead = 1;
            return k + strlen(TAG_THINK);
        }
        if (!final)
            return 0;
    }
    if (k < n && p->o.bare_json && s[k] == '{') {
        call_open(p, s, k, "", 0, 0);
        p->mode = M_CALL;
        return k;
    }
    p->mode = M_TEXT;
    return 0;
}

static size_t step_think(kn_toolparser *p, const char *s, size_t n, int final)
{
    size_t lead = 0;
    if (p->think_lead) {
        while (lead < n && s[lead] == '\n')
            lead++;
        s += lead;
        n -= lead;
    }
    const char *t = find(s, n, TAG_THINK_END);
    size_t end = t ? (size_t)(t - s) : final ? n : n - partial_suffix(s, n, TAG_THINK_END);
    size_t body = end;
    while (body > 0 && s[body - 1] == '\n') /* newlines before </think> are dropped: hold them */
        body--;
    if (body > 0) {
        tc_emit_text(&p->ev, KN_TC_REASONING, 0, s, body);
        p->think_lead = 0;
    }
    if (t) {
        p->mode = M_AFTER_THINK;
        return lead + end + strlen(TAG_THINK_END);
    }
    return lead + (final ? n : body);
}

static size_t step_after_think(kn_toolparser *p, const char *s, size_t n, int final)
{
    size_t k = 0;
    while (k < n && s[k] == '\n')
        k++;
    if (k < n || final) {
        p->mode = M_START;
        p->o.parse_think = 0;
    }
    return k;
}

static size_t step_call(kn_toolparser *p, const char *s, size_t n, int final)
{
    size_t k = 0;
    while (k < n && p->mode == M_CALL) {
        int r = call_byte(p, s[k]);
        if (r <= 0) {
            call_abort(p);
            return k + (r < 0);
        }
        k++;
    }
    if (p->mode == M_CALL && final)
        call_abort(p); /* the output ended inside the call */
    return k;
}

static size_t step_closing(kn_toolparser *p, const char *s, size_t n, int final)
{
    size_t k = 0, t = strlen(TAG_CALL_END);
    while (k < n && is_ws(s[k]))
        k++;
    if (n - k >= t && memcmp(s + k, TAG_CALL_END, t) == 0) {
        call_done(p);
        return k + t;
    }
    if (!final && prefix_of(s + k, n - k, TAG_CALL_END))
        return 0;
    call_done(p); /* no closing tag: the object alone makes the call */
    return k;
}

static size_t step_after_call(kn_toolparser *p, const char *s, size_t n, int final)
{
    size_t k = 0;
    while (k < n && (is_ws(s[k]) || (p->o.bare_json && s[k] == ';')))
        k++;
    if (k < n || final)
        p->mode = p->o.bare_json && k < n && s[k] == '{' ? M_START : M_TEXT;
    return k;
}

static size_t step_pytag(kn_toolparser *p, const char *s, size_t n, int final)
{
    call_st *c = &p->c;
    size_t k = 0;
    if (!c->py_code) {
        while (k < n && is_ws(s[k]))
            kn_bytes_putc(&c->raw, s[k++]);
        if (k < n && s[k] == '{') {
            p->mode = M_CALL;
            return k;
        }
        if (k == n && !final)
            return k;
        c->py_code = 1;
    }
    kn_bytes_put(&c->raw, s + k, n - k);
    if (final)
        python_call(p);
    return n;
}

/* ---- Mistral: [TOOL_CALLS] [{"name": …, "arguments": {…}}, …] and v11's [TOOL_CALLS]name[ARGS]{…} ------------ */

static size_t step_mtag(kn_toolparser *p, const char *s, size_t n, int final)
{
    size_t k = 0;
    while (k < n && is_ws(s[k]))
        kn_bytes_putc(&p->c.raw, s[k++]);
    if (k == n) {
        if (final)
            call_abort(p);
        return k;
    }
    if (s[k] == '[') {
        kn_bytes_putc(&p->c.raw, '[');
        p->in_list = 1;
        p->mode = M_CALL;
        return k + 1;
    }
    p->mode = M_MNAME;
    return k;
}

/* Between the objects of the list: ',' opens the next call, ']' ends the list. Anything else ends it too (the calls
 * read so far stand) and is content. */
static size_t step_mlist(kn_toolparser *p, const char *s, size_t n, int final)
{
    size_t k = 0;
    while (k < n && is_ws(s[k]))
        k++;
    if (k == n) {
        if (final)
            p->in_list = 0, p->mode = M_AFTER_CALL;
        return final ? k : 0;
    }
    if (s[k] == ',') {
        call_open(p, s, k + 1, "", 1, 0);
        p->mode = M_CALL;
        return k + 1;
    }
    p->in_list = 0;
    p->mode = s[k] == ']' ? M_AFTER_CALL : M_TEXT;
    return s[k] == ']' ? k + 1 : k;
}

/* v11: the name runs up to [ARGS] and looks like a function name; anything else makes the tag content. */
static size_t step_mname(kn_toolparser *p, const char *s, size_t n, int final)
{
    const char *t = find(s, n, TAG_ARGS);
    size_t len = t ? (size_t)(t - s) : n - partial_suffix(s, n, TAG_ARGS);
    int ok = len <= 128;
    for (size_t i = 0; i < len && ok; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
             s[i] == '_' || s[i] == '-' || s[i] == '.';
    if (!t && ok && !final)
        return 0; /* wait for [ARGS] */
    if (!t || !ok || len == 0 || !(p->c.name = knc_strndup(s, len))) {
        call_abort(p);
        return 0;
    }
    size_t used = len + strlen(TAG_ARGS);
    kn_bytes_put(&p->c.raw, s, used);
    p->c.args_seen = 1;
    p->c.args_first = '{';
    call_begin(p);
    p->mode = M_MARGS;
    return used;
}

/* v11's arguments: one JSON object, streamed as it comes. */
static size_t step_margs(kn_toolparser *p, const char *s, size_t n, int final)
{
    call_st *c = &p->c;
    size_t k = 0;
    for (; k < n; k++) {
        if (!c->in_obj && is_ws(s[k])) {
            kn_bytes_putc(&c->raw, s[k]);
            continue;
        }
        if ((!c->in_obj && s[k] != '{') || !kn_jsonc_push(&c->j, (unsigned char)s[k])) {
            call_abort(p);
            return k;
        }
        c->in_obj = 1;
        kn_bytes_putc(&c->raw, s[k]);
        tc_emit_text(&p->ev, KN_TC_CALL_ARGS, p->n_calls, s + k, 1);
        if (kn_jsonc_depth(&c->j) == 0) {
            call_done(p);
            return k + 1;
        }
    }
    if (final)
        call_abort(p);
    return k;
}

static size_t step(kn_toolparser *p, const char *s, size_t n, int final)
{
    switch (p->mode) {
    case M_START: return step_start(p, s, n, final);
    case M_TEXT: return step_text(p, s, n, final);
    case M_THINK: return step_think(p, s, n, final);
    case M_AFTER_THINK: return step_after_think(p, s, n, final);
    case M_CALL: return step_call(p, s, n, final);
    case M_CLOSING: return step_closing(p, s, n, final);
    case M_AFTER_CALL: return step_after_call(p, s, n, final);
    case M_MTAG: return step_mtag(p, s, n, final);
    case M_MLIST: return step_mlist(p, s, n, final);
    case M_MNAME: return step_mname(p, s, n, final);
    case M_MARGS: return step_margs(p, s, n, final);
    default: return step_pytag(p, s, n, final);
    }
}

static int run(kn_toolparser *p, int final)
{
    size_t off = 0;
    for (;;) {
        int mode = p->mode;
        size_t used = step(p, p->pend.s + off, p->pend.len - off, final);
        off += used;
        if (used == 0 && p->mode == mode)
            break;
    }
    memmove(p->pend.s, p->pend.s + off, p->pend.len - off);
    p->pend.len -= off;
    if (final)
        tc_flush(&p->ev);
    return tc_publish(&p->ev) || p->pend.oom || p->c.raw.oom ? -1 : 0;
}

int kn_toolparser_feed(kn_toolparser *p, const char *text, size_t len)
{
    tc_events_clear(&p->ev);
    kn_bytes_put(&p->pend, text, len);
    return p->pend.oom ? -1 : run(p, 0);
}

int kn_toolparser_finish(kn_toolparser *p)
{
    tc_events_clear(&p->ev);
    return run(p, 1);
}
