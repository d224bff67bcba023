/* models/text/toolcall_out.c: what the tool-call parser hands out: its event list (UTF-8-safe text pieces), the reply
 * built from events, whole-text parsing, and Llama 3.1's builtin-call syntax `name.call(k="v")` turned into JSON. */
#include <stdlib.h>
#include <string.h>

#include "models/text/chat_impl.h"
#include "models/text/json_constraint.h"

/* ---- events ------------------------------------------------------------------------------------------------- */

void tc_events_clear(tc_events *e)
{
    e->n = 0;
    e->buf.len = 0;
}

void tc_events_free(tc_events *e)
{
    free(e->ev);
    free(e->off);
    kn_bytes_free(&e->buf);
    kn_bytes_free(&e->carry);
    memset(e, 0, sizeof *e);
}

static kn_tc_event *new_event(tc_events *e, kn_tc_kind kind, int index)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        kn_tc_event *nev = realloc(e->ev, cap * sizeof *nev);
        if (nev)
            e->ev = nev;
        size_t *noff = realloc(e->off, cap * 3 * sizeof *noff);
        if (noff)
            e->off = noff;
        if (!nev || !noff) {
            e->oom = 1;
            return NULL;
        }
        e->cap = cap;
    }
    kn_tc_event *ev = &e->ev[e->n];
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ev->index = index;
    size_t *off = &e->off[3 * e->n];
    off[0] = off[1] = off[2] = (size_t)-1;
    e->n++;
    return ev;
}

/* Bytes of the UTF-8 sequence starting at s (n available): its length when complete and valid, 0 when it is a
 * valid but incomplete start, -k when its first k bytes are the longest valid part of a broken sequence (they
 * become one U+FFFD, as Python's errors="replace" does). NUL counts as broken too: replies are C strings, and a
 * NUL (a model can emit the byte token <0x00>) would cut them short or vanish depending on how the text was fed. */
static int utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c == 0)
        return -1;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return -1;
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n)
            return 0;
        if (s[k] < lo || s[k] > hi)
            return -k;
        lo = 0x80, hi = 0xBF;
    }
    return need + 1;
}

/* Append the valid part of s to the event's text; returns how many trailing bytes are an incomplete sequence. */
static size_t put_valid(tc_events *e, const char *s, size_t n, int final)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        int k = utf8_seq(u + i, n - i);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        kn_bytes_put(&e->buf, s + run, i - run);
        if (k == 0 && !final)
            return n - i;
        kn_bytes_put(&e->buf, "\xEF\xBF\xBD", 3); /* U+FFFD for bytes that make no valid character */
        i += k ? (size_t)-k : n - i; /* an incomplete sequence at the very end: all of it */
        run = i;
    }
    kn_bytes_put(&e->buf, s + run, n - run);
    return 0;
}

static void emit_valid(tc_events *e, kn_tc_kind kind, int index, const char *s, size_t n, int final)
{
    size_t before = e->buf.len;
    kn_tc_event *last = e->n ? &e->ev[e->n - 1] : NULL;
    int merge = last && last->kind == kind && last->index == index &&
                e->off[3 * (e->n - 1)] + last->len == e->buf.len;
    size_t held = put_valid(e, s, n, final);
    size_t added = e->buf.len - before;
    if (held) {
        kn_bytes_put(&e->carry, s + n - held, held);
        e->carry_kind = kind;
        e->carry_index = index;
    }
    if (added == 0)
        return;
    if (merge) {
        last->len += added;
        return;
    }
    kn_tc_event *ev = new_event(e, kind, index);
    if (!ev)
        return;
    ev->len = added;
    e->off[3 * (e->n - 1)] = before;
}

static void flush_carry(tc_events *e, int final)
{
    if (e->carry.len == 0)
        return;
    kn_bytes c = e->carry;
    memset(&e->carry, 0, sizeof e->carry);
    emit_valid(e, e->carry_kind, e->carry_index, c.s, c.len, final);
    kn_bytes_free(&c);
}

void tc_emit_text(tc_events *e, kn_tc_kind kind, int index, const char *s, size_t n)
{
    if (e->carry.len && (e->carry_kind != kind || e->carry_index != index))
        flush_carry(e, 1);
    if (n == 0)
        return;
    if (e->carry.len) {
        kn_bytes_put(&e->carry, s, n);
        flush_carry(e, 0);
        return;
    }
    emit_valid(e, kind, index, s, n, 0);
}

void tc_emit_mark(tc_events *e, kn_tc_kind kind, int index, const char *id, const char *name)
{
    flush_carry(e, 1);
    kn_tc_event *ev = new_event(e, kind, index);
    if (!ev)
        return;
    size_t *off = &e->off[3 * (e->n - 1)];
    if (id) {
        off[1] = e->buf.len;
        kn_bytes_put(&e->buf, id, strlen(id) + 1);
    }
    if (name) {
        off[2] = e->buf.len;
        kn_bytes_put(&e->buf, name, strlen(name) + 1);
    }
}

void tc_flush(tc_events *e) { flush_carry(e, 1); }

int tc_publish(tc_events *e)
{
    if (e->oom || e->buf.oom || e->carry.oom)
        return -1;
    for (size_t i = 0; i < e->n; i++) {
        size_t *off = &e->off[3 * i];
        e->ev[i].text = off[0] != (size_t)-1 ? e->buf.s + off[0] : NULL;
        e->ev[i].id = off[1] != (size_t)-1 ? e->buf.s + off[1] : NULL;
        e->ev[i].name = off[2] != (size_t)-1 ? e->buf.s + off[2] : NULL;
    }
    return 0;
}

/* ---- replies ------------------------------------------------------------------------------------------------ */

static int append(char **dst, const char *s, size_t n)
{
    size_t have = *dst ? strlen(*dst) : 0;
    char *d = realloc(*dst, have + n + 1);
    if (!d)
        return -1;
    memcpy(d + have, s, n);
    d[have + n] = 0;
    *dst = d;
    return 0;
}

int kn_chat_reply_apply(kn_chat_reply *r, const kn_tc_event *ev)
{
    switch (ev->kind) {
    case KN_TC_CONTENT: return append(&r->content, ev->text, ev->len);
    case KN_TC_REASONING: return append(&r->reasoning, ev->text, ev->len);
    case KN_TC_CALL_BEGIN: {
        if ((size_t)ev->index != r->n_calls)
            return -1;
        kn_chat_call *nc = realloc(r->calls, (r->n_calls + 1) * sizeof *nc);
        if (!nc)
            return -1;
        r->calls = nc;
        kn_chat_call *c = &nc[r->n_calls];
        c->id = knc_strdup(ev->id ? ev->id : "");
        c->name = knc_strdup(ev->name ? ev->name : "");
        c->arguments = knc_strdup("");
        r->n_calls++;
        return c->id && c->name && c->arguments ? 0 : -1;
    }
    case KN_TC_CALL_ARGS:
        if ((size_t)ev->index >= r->n_calls)
            return -1;
        return append(&r->calls[ev->index].arguments, ev->text, ev->len);
    case KN_TC_CALL_ABORT:
        if ((size_t)ev->index + 1 != r->n_calls)
            return -1;
        r->n_calls--;
        free(r->calls[r->n_calls].id);
        free(r->calls[r->n_calls].name);
        free(r->calls[r->n_calls].arguments);
        return 0;
    default: return 0;
    }
}

void kn_chat_reply_free(kn_chat_reply *r)
{
    free(r->content);
    free(r->reasoning);
    for (size_t k = 0; k < r->n_calls; k++) {
        free(r->calls[k].id);
        free(r->calls[k].name);
        free(r->calls[k].arguments);
    }
    free(r->calls);
    memset(r, 0, sizeof *r);
}

static int apply_all(kn_toolparser *p, kn_chat_reply *out)
{
    size_t n;
    const kn_tc_event *ev = kn_toolparser_events(p, &n);
    for (size_t i = 0; i < n; i++)
        if (kn_chat_reply_apply(out, &ev[i]))
            return -1;
    return 0;
}

int kn_toolcall_parse(kn_chat_family family, const kn_tc_opts *o, const char *text, size_t len, kn_chat_reply *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    kn_toolparser *p = kn_toolparser_new(family, o);
    int rc = p ? 0 : -1;
    if (rc == 0)
        rc = kn_toolparser_feed(p, text, len);
    if (rc == 0)
        rc = apply_all(p, out);
    if (rc == 0)
        rc = kn_toolparser_finish(p);
    if (rc == 0)
        rc = apply_all(p, out);
    kn_toolparser_free(p);
    if (rc == 0 && !out->content)
        rc = append(&out->content, "", 0);
    if (rc == 0 && !out->reasoning)
        rc = append(&out->reasoning, "", 0);
    if (rc) {
        kn_chat_reply_free(out);
        knc_err(err, errlen, "out of memory parsing model output");
    }
    return rc;
}

/* ---- Llama 3.1 builtin calls -------------------------------------------------------------------------------- */

static int ident_char(char c, int first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* A Python literal: a quoted string (with backslash escapes), a number, True/False/None. Written as JSON. */
static size_t py_value(const char *s, size_t i, size_t n, kn_bytes *out)
{
    if (i < n && (s[i] == '"' || s[i] == '\'')) {
        char q = s[i++];
        kn_bytes str = {0};
        while (i < n && s[i] != q) {
            if (s[i] == '\\' && i + 1 < n) {
                char e = s[++i];
                kn_bytes_putc(&str, e == 'n' ? '\n' : e == 't' ? '\t' : e);
            } else {
                kn_bytes_putc(&str, s[i]);
            }
            i++;
        }
        if (i == n) {
            kn_bytes_free(&str);
            return 0;
        }
        knj_dump_str(out, str.s ? str.s : "", str.len);
        kn_bytes_free(&str);
        return i + 1;
    }
    static const char *const words[][2] = {{"True", "true"}, {"False", "false"}, {"None", "null"}};
    for (size_t w = 0; w < 3; w++) {
        size_t k = strlen(words[w][0]);
        if (n - i >= k && memcmp(s + i, words[w][0], k) == 0) {
            kn_bytes_puts(out, words[w][1]);
            return i + k;
        }
    }
    size_t start = i;
    while (i < n && strchr("+-.0123456789eE", s[i]) && s[i])
        i++;
    if (i == start || !kn_json_valid(s + start, i - start, 0))
        return 0;
    kn_bytes_put(out, s + start, i - start);
    return i;
}

char *tc_python_call(const char *s, size_t n, char **name)
{
    *name = NULL;
    size_t i = skip_ws(s, 0, n), start = i;
    while (i < n && ident_char(s[i], i == start))
        i++;
    if (i == start || n - i < 6 || memcmp(s + i, ".call(", 6))
        return NULL;
    size_t name_end = i;
    i += 6;
    kn_bytes args = {0};
    kn_bytes_putc(&args, '{');
    for (int first = 1;; first = 0) {
        i = skip_ws(s, i, n);
        if (i < n && s[i] == ')')
            break;
        if (!first) {
            if (i >= n || s[i] != ',')
                goto fail;
            i = skip_ws(s, i + 1, n);
            kn_bytes_puts(&args, ", ");
        }
        size_t k0 = i;
        while (i < n && ident_char(s[i], i == k0))
            i++;
        if (i == k0)
            goto fail;
        knj_dump_str(&args, s + k0, i - k0);
        kn_bytes_puts(&args, ": ");
        i = skip_ws(s, i, n);
        if (i >= n || s[i] != '=')
            goto fail;
        if (!(i = py_value(s, skip_ws(s, i + 1, n), n, &args)))
            goto fail;
    }
    if (skip_ws(s, i + 1, n) != n)
        goto fail;
    kn_bytes_putc(&args, '}');
    *name = knc_strndup(s + start, name_end - start);
    char *json = knc_take(&args);
    if (!*name || !json) {
        free(*name);
        free(json);
        *name = NULL;
        return NULL;
    }
    return json;
fail:
    kn_bytes_free(&args);
    return NULL;
}
