/* models/text/chat_template.c: chat templates as C renderers, one per family, each following its Jinja template
 * statement by statement (the Jinja expression is quoted in comments where its exact semantics matter).
 * The family comes from chat_detect.c; see docs/chat.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/text/chat_impl.h"

void kn_chat_opts_init(kn_chat_opts *o)
{
    memset(o, 0, sizeof *o);
    o->add_generation_prompt = 1;
    o->enable_thinking = 1;
    o->tools_in_user_message = 1;
}

/* ---- rendering state --------------------------------------------------------------------------------------- */

/* One conversation message as the templates see it after normalization. */
typedef struct view_msg {
    const char *role;
    const char *content;   /* never NULL */
    const kn_chat_msg *m;
    cJSON **args;          /* per tool call: the parsed object, or NULL to use the text as a string */
} view_msg;

typedef struct rnd {
    kn_bytes b;
    kn_chat_span *spans;
    size_t n_spans, cap_spans;
    int oom;
    const kn_chat_template *t;
    const kn_chat_opts *o;
    view_msg *msgs;
    size_t n;
    cJSON *tools;          /* NULL when there are none (an empty list counts as none) */
    char *err;
    size_t errlen;
} rnd;

/* Template text. */
static void T(rnd *r, const char *s) { kn_bytes_puts(&r->b, s); }

/* Conversation data: recorded as a span so the tokenizer can keep special-token text in it literal. */
static void Dn(rnd *r, const char *s, size_t n)
{
    if (n == 0)
        return;
    size_t off = r->b.len;
    kn_bytes_put(&r->b, s, n);
    kn_chat_span *last = r->n_spans ? &r->spans[r->n_spans - 1] : NULL;
    if (last && last->off + last->len == off) {
        last->len += n;
        return;
    }
    if (r->n_spans == r->cap_spans) {
        size_t cap = r->cap_spans ? r->cap_spans * 2 : 16;
        kn_chat_span *ns = realloc(r->spans, cap * sizeof *ns);
        if (!ns) {
            r->oom = 1;
            return;
        }
        r->spans = ns;
        r->cap_spans = cap;
    }
    r->spans[r->n_spans++] = (kn_chat_span){off, n};
}

static void D(rnd *r, const char *s) { Dn(r, s, strlen(s)); }

/* `x | tojson` as conversation data. */
static void Djson(rnd *r, const cJSON *v, int indent)
{
    kn_bytes tmp = {0};
    knj_dump(&tmp, v, indent);
    if (tmp.oom)
        r->oom = 1;
    Dn(r, tmp.s ? tmp.s : "", tmp.len);
    kn_bytes_free(&tmp);
}

static void Djson_str(rnd *r, const char *s)
{
    kn_bytes tmp = {0};
    knj_dump_str(&tmp, s, strlen(s));
    if (tmp.oom)
        r->oom = 1;
    Dn(r, tmp.s ? tmp.s : "", tmp.len);
    kn_bytes_free(&tmp);
}

/* A tool call's arguments through `| tojson`: the object, or the text as a JSON string when it was no object. */
static void Dargs(rnd *r, const view_msg *vm, size_t k)
{
    if (vm->args[k])
        Djson(r, vm->args[k], -1);
    else
        Djson_str(r, vm->m->tool_calls[k].arguments);
}

/* ---- Python string methods the templates call ------------------------------------------------------------ */

/* Length of the Unicode whitespace character (str.isspace) at s, or 0. */
static size_t space_len(const unsigned char *s, size_t n)
{
    if (n >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0D) || (s[0] >= 0x1C && s[0] <= 0x20)))
        return 1;
    if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0))
        return 2;
    if (n >= 3 && s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80)
        return 3;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 ||
                                                    s[2] == 0xAF))
        return 3;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F)
        return 3;
    if (n >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80)
        return 3;
    return 0;
}

/* Jinja's `| trim`, i.e. Python's str.strip(): the span [*start, *start + *len) of s. */
static void py_strip(const char *s, size_t *start, size_t *len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t b = 0, e = strlen(s);
    for (size_t k; b < e && (k = space_len(u + b, e - b)) > 0;)
        b += k;
    for (;;) { /* from the end: try each possible width of the last character */
        size_t k = 0;
        for (size_t w = 1; w <= 3 && w <= e - b && !k; w++)
            if (space_len(u + e - w, w) == w)
                k = w;
        if (!k)
            break;
        e -= k;
    }
    *start = b;
    *len = e - b;
}

static void Dtrim(rnd *r, const char *s)
{
    size_t b, n;
    py_strip(s, &b, &n);
    Dn(r, s + b, n);
}

/* str.lstrip('\n') / str.rstrip('\n') on a span. */
static void lstrip_nl(const char **s, size_t *n)
{
    while (*n && **s == '\n')
        (*s)++, (*n)--;
}

static void rstrip_nl(const char *s, size_t *n)
{
    while (*n && s[*n - 1] == '\n')
        (*n)--;
}

/* Last occurrence of needle in [s, s+n). */
static const char *rfind(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = n >= k ? n - k + 1 : 0; i-- > 0;)
        if (memcmp(s + i, needle, k) == 0)
            return s + i;
    return NULL;
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int ends_with(const char *s, const char *p)
{
    size_t n = strlen(s), k = strlen(p);
    return n >= k && memcmp(s + n - k, p, k) == 0;
}

static int fail(rnd *r, const char *msg)
{
    knc_err(r->err, r->errlen, "%s", msg);
    return -1;
}

/* ---- ChatML, Qwen2.5 (Hermes tools) -------------------------------------------------------------------------- */

static const char tools_intro[] = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                                  "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char tools_outro[] =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n";

static void hermes_tool_list(rnd *r)
{
    T(r, tools_intro);
    for (const cJSON *t = r->tools->child; t; t = t->next) {
        T(r, "\n");
        Djson(r, t, -1);
    }
    T(r, tools_outro);
}

static int is_role(const view_msg *m, const char *role) { return strcmp(m->role, role) == 0; }

/* Consecutive tool results share one user turn. */
static void hermes_tool_result(rnd *r, size_t i)
{
    if (i == 0 || !is_role(&r->msgs[i - 1], "tool"))
        T(r, "<|im_start|>user");
    T(r, "\n<tool_response>\n");
    D(r, r->msgs[i].content);
    T(r, "\n</tool_response>");
    if (i + 1 == r->n || !is_role(&r->msgs[i + 1], "tool"))
        T(r, "<|im_end|>\n");
}

static void chatml_turn(rnd *r, const view_msg *m)
{
    T(r, "<|im_start|>");
    T(r, m->role);
    T(r, "\n");
    D(r, m->content);
    T(r, "<|im_end|>\n");
}

static int render_qwen25(rnd *r)
{
    const view_msg *m0 = &r->msgs[0];
    int sys0 = is_role(m0, "system");
    if (r->tools) {
        T(r, "<|im_start|>system\n");
        if (sys0)
            D(r, m0->content);
        else
            T(r, r->t->default_system);
        if (sys0 || r->t->default_system[0])
            T(r, "\n\n");
        hermes_tool_list(r);
    } else if (sys0) {
        chatml_turn(r, m0);
    } else if (r->t->default_system[0]) {
        T(r, "<|im_start|>system\n");
        T(r, r->t->default_system);
        T(r, "<|im_end|>\n");
    }
    for (size_t i = 0; i < r->n; i++) {
        const view_msg *m = &r->msgs[i];
        if (is_role(m, "user") || (is_role(m, "system") && i > 0) ||
            (is_role(m, "assistant") && m->m->n_tool_calls == 0)) {
            chatml_turn(r, m);
        } else if (is_role(m, "assistant")) {
            T(r, "<|im_start|>assistant");
            if (m->content[0]) {
                T(r, "\n");
                D(r, m->content);
            }
            for (size_t k = 0; k < m->m->n_tool_calls; k++) {
                T(r, "\n<tool_call>\n{\"name\": \"");
                D(r, m->m->tool_calls[k].name);
                T(r, "\", \"arguments\": ");
                Dargs(r, m, k);
                T(r, "}\n</tool_call>");
            }
            T(r, "<|im_end|>\n");
        } else if (is_role(m, "tool")) {
            hermes_tool_result(r, i);
        }
    }
    if (r->o->add_generation_prompt)
        T(r, "<|im_start|>assistant\n");
    return 0;
}

static int render_chatml(rnd *r)
{
    int has_calls = 0;
    for (size_t i = 0; i < r->n; i++)
        has_calls |= r->msgs[i].m->n_tool_calls > 0;
    if (r->tools || has_calls) /* plain ChatML has no tool syntax: use the Hermes layout (docs/chat.md) */
        return render_qwen25(r);
    if (r->t->default_system[0] && !is_role(&r->msgs[0], "system")) {
        T(r, "<|im_start|>system\n");
        T(r, r->t->default_system);
        T(r, "<|im_end|>\n");
    }
    for (size_t i = 0; i < r->n; i++)
        chatml_turn(r, &r->msgs[i]);
    if (r->o->add_generation_prompt)
        T(r, "<|im_start|>assistant\n");
    return 0;
}

/* ---- Qwen3 -------------------------------------------------------------------------------------------------- */

/* ns.last_query_index: the last user message that is not a wrapped tool response. */
static size_t qwen3_last_query(const rnd *r)
{
    for (size_t i = r->n; i-- > 0;) {
        const view_msg *m = &r->msgs[i];
        if (is_role(m, "user") &&
            !(starts_with(m->content, "<tool_response>") && ends_with(m->content, "</tool_response>")))
            return i;
    }
    return r->n - 1;
}

static void qwen3_assistant(rnd *r, size_t i, size_t last_query)
{
    const view_msg *m = &r->msgs[i];
    const char *content = m->content, *reason = "";
    size_t clen = strlen(content), rlen = 0;
    if (m->m->reasoning_content) {
        reason = m->m->reasoning_content;
        rlen = strlen(reason);
    } else if (strstr(content, "</think>")) {
        /* content.split('</think>')[-1].lstrip('\n') */
        const char *last = rfind(content, clen, "</think>") + 8;
        /* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
        size_t first = (size_t)(strstr(content, "</think>") - content);
        rstrip_nl(content, &first);
        const char *open = rfind(content, first, "<think>");
        reason = open ? open + 7 : content;
        rlen = first - (size_t)(reason - content);
        lstrip_nl(&reason, &rlen);
        clen -= (size_t)(last - content);
        content = last;
        lstrip_nl(&content, &clen);
    }
    T(r, "<|im_start|>assistant\n");
    if (i > last_query && (i + 1 == r->n || rlen > 0)) {
        const char *rs = reason, *cs = content;
        size_t rn = rlen, cn = clen;
        lstrip_nl(&rs, &rn);
        rstrip_nl(rs, &rn);
        lstrip_nl(&cs, &cn);
        T(r, "<think>\n");
        Dn(r, rs, rn);
        T(r, "\n</think>\n\n");
        Dn(r, cs, cn);
    } else {
        Dn(r, content, clen);
    }
    for (size_t k = 0; k < m->m->n_tool_calls; k++) {
        if (k > 0 || clen > 0)
            T(r, "\n");
        T(r, "<tool_call>\n{\"name\": \"");
        D(r, m->m->tool_calls[k].name);
        T(r, "\", \"arguments\": ");
        if (m->args[k]) /* `arguments is string` prints the text as it is */
            Djson(r, m->args[k], -1);
        else
            D(r, m->m->tool_calls[k].arguments);
        T(r, "}\n</tool_call>");
    }
    T(r, "<|im_end|>\n");
}

static int render_qwen3(rnd *r)
{
    const view_msg *m0 = &r->msgs[0];
    int sys0 = is_role(m0, "system");
    if (r->tools) {
        T(r, "<|im_start|>system\n");
        if (sys0) {
            D(r, m0->content);
            T(r, "\n\n");
        }
        hermes_tool_list(r);
    } else if (sys0) {
        chatml_turn(r, m0);
    }
    size_t last_query = qwen3_last_query(r);
    for (size_t i = 0; i < r->n; i++) {
        const view_msg *m = &r->msgs[i];
        if (is_role(m, "user") || (is_role(m, "system") && i > 0))
            chatml_turn(r, m);
        else if (is_role(m, "assistant"))
            qwen3_assistant(r, i, last_query);
        else if (is_role(m, "tool"))
            hermes_tool_result(r, i);
    }
    if (r->o->add_generation_prompt) {
        T(r, "<|im_start|>assistant\n");
        if (!r->o->enable_thinking)
            T(r, "<think>\n\n</think>\n\n");
    }
    return 0;
}

/* ---- Llama 3.0 and 3.1 ------------------------------------------------------------------------------------- */

static const char *bos(const rnd *r) { return r->o->bos_token ? r->o->bos_token : "<|begin_of_text|>"; }

static void llama_header(rnd *r, const char *role)
{
    T(r, "<|start_header_id|>");
    T(r, role);
    T(r, "<|end_header_id|>\n\n");
}

static int render_llama3(rnd *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (i == 0)
            T(r, bos(r));
        llama_header(r, r->msgs[i].role);
        Dtrim(r, r->msgs[i].content);
        T(r, "<|eot_id|>");
    }
    if (r->o->add_generation_prompt)
        llama_header(r, "assistant");
    return 0;
}

static int in_list(const char *const *list, const char *s)
{
    for (; list && *list; list++)
        if (!strcmp(*list, s))
            return 1;
    return 0;
}

static const char llama_format[] = "Respond in the format {\"name\": function name, \"parameters\": dictionary of "
                                   "argument name and its value}.Do not use variables.\n\n";

static void llama_tool_list(rnd *r)
{
    for (const cJSON *t = r->tools->child; t; t = t->next) {
        Djson(r, t, 4);
        T(r, "\n\n");
    }
}

static void llama31_system(rnd *r, const char *const *builtin, const char *system)
{
    llama_header(r, "system");
    if (builtin || r->tools)
        T(r, "Environment: ipython\n");
    if (builtin) {
        T(r, "Tools: ");
        int first = 1;
        for (const char *const *b = builtin; *b; b++) {
            if (!strcmp(*b, "code_interpreter"))
                continue;
            if (!first)
                T(r, ", ");
            D(r, *b);
            first = 0;
        }
        T(r, "\n\n");
    }
    T(r, "Cutting Knowledge Date: December 2023\n");
    T(r, "Today Date: ");
    char today[32];
    const char *date = r->o->date_string;
    if (!date && r->t->date_now) {
        time_t now = time(NULL);
        struct tm tm;
        date = localtime_r(&now, &tm) && strftime(today, sizeof today, "%d %b %Y", &tm) ? today : "26 Jul 2024";
    }
    D(r, date ? date : "26 Jul 2024");
    T(r, "\n\n");
    if (r->tools && !r->o->tools_in_user_message) {
        T(r, "You have access to the following functions. To call a function, please respond with JSON for a "
             "function call.");
        T(r, llama_format);
        llama_tool_list(r);
    }
    Dtrim(r, system);
    T(r, "<|eot_id|>");
}

/* builtin tool call: <|python_tag|>name.call(k="v", ...) — the template concatenates, so values must be strings. */
static int llama31_builtin_call(rnd *r, const view_msg *m)
{
    const cJSON *args = m->args[0];
    if (!args)
        return fail(r, "builtin tool call: arguments are not a JSON object");
    T(r, "<|python_tag|>");
    D(r, m->m->tool_calls[0].name);
    T(r, ".call(");
    for (const cJSON *a = args->child; a; a = a->next) {
        if (!cJSON_IsString(a))
            return fail(r, "builtin tool call: Llama 3.1's template needs string argument values");
        D(r, a->string);
        T(r, "=\"");
        D(r, a->valuestring);
        T(r, "\"");
        if (a->next)
            T(r, ", ");
    }
    T(r, ")");
    return 0;
}

static int llama31_message(rnd *r, const view_msg *m, const char *const *builtin)
{
    int tool = is_role(m, "tool") || is_role(m, "ipython");
    if (!tool && m->m->n_tool_calls == 0) {
        llama_header(r, m->role);
        Dtrim(r, m->content);
        T(r, "<|eot_id|>");
        return 0;
    }
    if (m->m->n_tool_calls > 0) {
        if (m->m->n_tool_calls != 1)
            return fail(r, "This model only supports single tool-calls at once! (Llama 3.1 template: one tool "
                           "call per assistant message)");
        llama_header(r, "assistant");
        if (in_list(builtin, m->m->tool_calls[0].name)) {
            if (llama31_builtin_call(r, m))
                return -1;
        } else {
            T(r, "{\"name\": \"");
            D(r, m->m->tool_calls[0].name);
            T(r, "\", \"parameters\": ");
            Dargs(r, m, 0);
            T(r, "}");
        }
        T(r, builtin ? "<|eom_id|>" : "<|eot_id|>");
        return 0;
    }
    llama_header(r, "ipython");
    Djson_str(r, m->content); /* a string `is iterable`, so the template writes it through tojson */
    T(r, "<|eot_id|>");
    return 0;
}

static int render_llama31(rnd *r)
{
    const char *const *builtin = r->t->builtin_tools_ok && r->o->builtin_tools ? r->o->builtin_tools : NULL;
    size_t i = 0;
    const char *system = "";
    if (is_role(&r->msgs[0], "system"))
        system = r->msgs[i++].content;
    T(r, bos(r));
    llama31_system(r, builtin, system);
    if (r->tools && r->o->tools_in_user_message) {
        if (i == r->n)
            return fail(r, "Cannot put tools in the first user message when there's no first user message!");
        llama_header(r, "user");
        T(r, "Given the following functions, please respond with a JSON for a function call with its proper "
             "arguments that best answers the given prompt.\n\n");
        T(r, llama_format);
        llama_tool_list(r);
        Dtrim(r, r->msgs[i++].content);
        T(r, "<|eot_id|>");
    }
    for (; i < r->n; i++)
        if (llama31_message(r, &r->msgs[i], builtin))
            return -1;
    if (r->o->add_generation_prompt)
        llama_header(r, "assistant");
    return 0;
}

static int render_llama(rnd *r)
{
    int has_calls = 0;
    for (size_t i = 0; i < r->n; i++)
        has_calls |= r->msgs[i].m->n_tool_calls > 0;
    if (r->t->family == KN_CHAT_LLAMA3 && !r->tools && !has_calls)
        return render_llama3(r);
    return render_llama31(r); /* Llama 3.0 has no tool syntax: use 3.1's (docs/chat.md) */
}

/* ---- Gemma 3 ---------------------------------------------------------------------------------------------- */

/* A system message is not a turn: its text + "\n\n" opens the first user turn. Roles must alternate
 * user/model from there (the template raises otherwise); assistant turns are called "model". */
static int render_gemma3(rnd *r)
{
    T(r, r->o->bos_token ? r->o->bos_token : "<bos>");
    size_t first = r->n && is_role(&r->msgs[0], "system") ? 1 : 0;
    for (size_t i = first; i < r->n; i++) {
        const view_msg *m = &r->msgs[i];
        if (is_role(m, "user") != ((i - first) % 2 == 0))
            return fail(r, "Conversation roles must alternate user/assistant/user/assistant/...");
        T(r, "<start_of_turn>");
        T(r, is_role(m, "assistant") ? "model" : m->role);
        T(r, "\n");
        if (first && i == first) { /* "first_user_prefix if loop.first" */
            D(r, r->msgs[0].content);
            T(r, "\n\n");
        }
        Dtrim(r, m->content);
        T(r, "<end_of_turn>\n");
    }
    if (r->o->add_generation_prompt)
        T(r, "<start_of_turn>model\n");
    return 0;
}

/* ---- Mistral v3 and v3-tekken ------------------------------------------------------------------------------ */

static int same_str(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

/* Jinja's `message == user_messages[-1]`: the two normalized message dicts are equal. */
static int same_msg(const view_msg *a, const view_msg *b)
{
    return !strcmp(a->role, b->role) && !strcmp(a->content, b->content) && same_str(a->m->name, b->m->name) &&
           same_str(a->m->tool_call_id, b->m->tool_call_id) &&
           same_str(a->m->reasoning_content, b->m->reasoning_content) &&
           a->m->n_tool_calls == 0 && b->m->n_tool_calls == 0;
}

/* `id|length != 9`: Python counts characters, not bytes. */
static int mistral_id_ok(const char *id)
{
    size_t n = 0;
    for (const unsigned char *u = (const unsigned char *)id; id && *u; u++)
        n += (*u & 0xC0) != 0x80;
    return id && n == 9;
}

static const char mistral_id_err[] = "Tool call IDs should be alphanumeric strings with length 9! (Mistral template: "
                                     "every tool call id and tool_call_id has 9 characters)";

/* [AVAILABLE_TOOLS] [{"type": "function", "function": {…}}, …][/AVAILABLE_TOOLS]: each function's keys in order
 * (but "return"), string values written as they are (not JSON-escaped: the template concatenates), others tojson. */
static int mistral_tool_list(rnd *r)
{
    T(r, r->t->tight ? "[AVAILABLE_TOOLS][" : "[AVAILABLE_TOOLS] [");
    for (const cJSON *t = r->tools->child; t; t = t->next) {
        const cJSON *fn = knj_get(t, "function");
        if (!cJSON_IsObject(fn))
            return fail(r, "tools: an entry has no \"function\" object (the Mistral template reads tool.function)");
        T(r, "{\"type\": \"function\", \"function\": {");
        int first = 1;
        for (const cJSON *kv = fn->child; kv; kv = kv->next) {
            if (!strcmp(kv->string, "return"))
                continue;
            if (!first)
                T(r, ", ");
            first = 0;
            T(r, "\"");
            D(r, kv->string);
            if (cJSON_IsString(kv)) {
                T(r, "\": \"");
                D(r, kv->valuestring);
                T(r, "\"");
            } else {
                T(r, "\": ");
                Djson(r, kv, -1);
            }
        }
        T(r, "}}");
        T(r, t->next ? ", " : "]");
    }
    T(r, "[/AVAILABLE_TOOLS]");
    return 0;
}

/* [TOOL_CALLS] [{"name": …, "arguments": …, "id": "…"}, …]</s>: `tool_call.function|tojson` without its last brace. */
static int mistral_calls(rnd *r, const view_msg *m, const char *eos)
{
    T(r, r->t->tight ? "[TOOL_CALLS][" : "[TOOL_CALLS] [");
    for (size_t k = 0; k < m->m->n_tool_calls; k++) {
        const kn_chat_call *c = &m->m->tool_calls[k];
        T(r, "{\"name\": ");
        Djson_str(r, c->name ? c->name : "");
        T(r, ", \"arguments\": ");
        Dargs(r, m, k);
        if (!mistral_id_ok(c->id))
            return fail(r, mistral_id_err);
        T(r, ", \"id\": \"");
        D(r, c->id);
        T(r, "\"}");
        if (k + 1 < m->m->n_tool_calls) {
            T(r, ", ");
        } else {
            T(r, "]");
            T(r, eos);
        }
    }
    return 0;
}

/* Mistral v7/v11's default system message (chat_detect.c): the template's text, each "\x01FMT\x01" written as
 * strftime_now(FMT) writes it, with the local date and time now. */
static void mistral_default_system(rnd *r)
{
    const char *s = r->t->default_system;
    time_t now = time(NULL);
    struct tm tm;
    int have_tm = localtime_r(&now, &tm) != NULL;
    while (*s) {
        const char *a = strchr(s, '\x01');
        if (!a) {
            T(r, s);
            return;
        }
        char lit[sizeof r->t->default_system], fmt[64], out[128];
        memcpy(lit, s, (size_t)(a - s));
        lit[a - s] = 0;
        T(r, lit);
        const char *b = strchr(a + 1, '\x01');
        size_t fl = b ? (size_t)(b - a - 1) : 0;
        if (!b || fl >= sizeof fmt)
            return;
        memcpy(fmt, a + 1, fl);
        fmt[fl] = 0;
        if (have_tm && strftime(out, sizeof out, fmt, &tm))
            T(r, out);
        s = b + 1;
    }
}

/* Mistral v11 (kiln's reference: tests/chat_templates/mistral-v11.jinja): the system message as [SYSTEM_PROMPT] after
 * BOS; tools as [AVAILABLE_TOOLS]<tools|tojson>[/AVAILABLE_TOOLS] before the last user message; an assistant message
 * as its text, then [TOOL_CALLS]name[ARGS]<arguments> per call (a string as it is, "" as {}), then EOS; results as
 * [TOOL_RESULTS]text[/TOOL_RESULTS]; no call ids, no alternation rule. */
static int render_mistral_v11(rnd *r)
{
    const char *eos = r->o->eos_token ? r->o->eos_token : "</s>";
    size_t first = 0;
    T(r, r->o->bos_token ? r->o->bos_token : "<s>");
    if (is_role(&r->msgs[0], "system")) {
        T(r, "[SYSTEM_PROMPT]");
        D(r, r->msgs[first++].content);
        T(r, "[/SYSTEM_PROMPT]");
    } else if (r->t->default_system[0]) {
        T(r, "[SYSTEM_PROMPT]");
        mistral_default_system(r);
        T(r, "[/SYSTEM_PROMPT]");
    }
    const view_msg *last_user = NULL;
    for (size_t i = first; i < r->n; i++)
        if (is_role(&r->msgs[i], "user"))
            last_user = &r->msgs[i];
    for (size_t i = first; i < r->n; i++) {
        const view_msg *m = &r->msgs[i];
        if (is_role(m, "user")) {
            if (r->tools && same_msg(m, last_user)) {
                T(r, "[AVAILABLE_TOOLS]");
                Djson(r, r->tools, -1);
                T(r, "[/AVAILABLE_TOOLS]");
            }
            T(r, "[INST]");
            D(r, m->content);
            T(r, "[/INST]");
        } else if (is_role(m, "assistant")) {
            D(r, m->content);
            for (size_t k = 0; k < m->m->n_tool_calls; k++) {
                const kn_chat_call *c = &m->m->tool_calls[k];
                T(r, "[TOOL_CALLS]");
                D(r, c->name ? c->name : "");
                T(r, "[ARGS]");
                if (m->args[k])
                    Djson(r, m->args[k], -1);
                else
                    D(r, c->arguments && *c->arguments ? c->arguments : "{}");
            }
            T(r, eos);
        } else if (is_role(m, "tool")) {
            T(r, "[TOOL_RESULTS]");
            D(r, m->content);
            T(r, "[/TOOL_RESULTS]");
        } else {
            char msg[160];
            snprintf(msg, sizeof msg, "Only user, assistant and tool roles are supported, got %.40s. (Mistral template)",
                     m->role);
            return fail(r, msg);
        }
    }
    return 0;
}

/* Mistral's v3 template: a system message is not a turn but prefixes the last user message, and only when that
 * message ends the conversation; tools are listed before the last user message (and before any earlier user message
 * equal to it); user/assistant must alternate, tool calls and results aside; ids have 9 characters. No generation
 * prompt: the model replies after [/INST]. v7 (mistral_v 7): the system message as [SYSTEM_PROMPT]…[/SYSTEM_PROMPT]
 * after BOS instead, [INST] without a space, the reply as it is. */
static int render_mistral(rnd *r)
{
    if (r->t->mistral_v == 11)
        return render_mistral_v11(r);
    int v7 = r->t->mistral_v == 7;
    const char *eos = r->o->eos_token ? r->o->eos_token : "</s>", *system = NULL;
    size_t first = 0;
    if (is_role(&r->msgs[0], "system"))
        system = r->msgs[first++].content;
    const view_msg *last_user = NULL;
    size_t turn = 0;
    for (size_t i = first; i < r->n; i++) {
        const view_msg *m = &r->msgs[i];
        if (is_role(m, "user"))
            last_user = m;
        if (is_role(m, "tool") || m->m->n_tool_calls > 0)
            continue;
        if (is_role(m, "user") != (turn++ % 2 == 0))
            return fail(r, "After the optional system message, conversation roles must alternate "
                           "user/assistant/user/assistant/...");
    }
    T(r, r->o->bos_token ? r->o->bos_token : "<s>");
    if (v7 && system) {
        T(r, "[SYSTEM_PROMPT]");
        D(r, system);
        T(r, "[/SYSTEM_PROMPT]");
    } else if (v7 && r->t->default_system[0]) {
        T(r, "[SYSTEM_PROMPT]");
        mistral_default_system(r);
        T(r, "[/SYSTEM_PROMPT]");
    }
    for (size_t i = first; i < r->n; i++) {
        const view_msg *m = &r->msgs[i];
        if (is_role(m, "user")) {
            if (r->tools && same_msg(m, last_user) && mistral_tool_list(r))
                return -1;
            T(r, r->t->tight || v7 ? "[INST]" : "[INST] ");
            if (i + 1 == r->n && system && !v7) {
                D(r, system);
                T(r, "\n\n");
            }
            D(r, m->content);
            T(r, "[/INST]");
        } else if (m->m->n_tool_calls > 0) {
            if (mistral_calls(r, m, eos))
                return -1;
        } else if (is_role(m, "assistant")) {
            if (r->t->tight || v7) {
                D(r, m->content);
            } else {
                T(r, " ");
                Dtrim(r, m->content);
            }
            T(r, eos);
        } else if (is_role(m, "tool")) {
            T(r, r->t->tight ? "[TOOL_RESULTS]{\"content\": " : "[TOOL_RESULTS] {\"content\": ");
            D(r, m->content); /* `content|string`: the text as it is, not a JSON string */
            T(r, ", ");
            if (!mistral_id_ok(m->m->tool_call_id))
                return fail(r, mistral_id_err);
            T(r, "\"call_id\": \"");
            D(r, m->m->tool_call_id);
            T(r, "\"}[/TOOL_RESULTS]");
        } else {
            return fail(r, "Only user and assistant roles are supported, with the exception of an initial optional "
                           "system message! (Mistral template)");
        }
    }
    return 0;
}

/* ---- entry points ------------------------------------------------------------------------------------------- */

static const char *const role_names[] = {"system", "user", "assistant", "tool"};

static void views_free(rnd *r)
{
    for (size_t i = 0; r->msgs && i < r->n; i++) {
        for (size_t k = 0; r->msgs[i].args && k < r->msgs[i].m->n_tool_calls; k++)
            cJSON_Delete(r->msgs[i].args[k]);
        free(r->msgs[i].args);
    }
    free(r->msgs);
    cJSON_Delete(r->tools);
}

/* Normalize the conversation the way llama.cpp does before a template sees it. */
static int build_views(rnd *r, const kn_chat *c)
{
    if (c->tools_json) {
        char jerr[128];
        if (!(r->tools = kn_json_parse(c->tools_json, strlen(c->tools_json), 0, NULL, 0, jerr, sizeof jerr))) {
            knc_err(r->err, r->errlen, "tools: %s", jerr);
            return -1;
        }
        if (!cJSON_IsArray(r->tools)) {
            knc_err(r->err, r->errlen, "tools: expected an array");
            return -1;
        }
        if (!r->tools->child) {
            cJSON_Delete(r->tools);
            r->tools = NULL;
        }
    }
    if (c->n_msgs == 0)
        return fail(r, "the conversation has no messages");
    if (!(r->msgs = calloc(c->n_msgs, sizeof *r->msgs)))
        return fail(r, "out of memory");
    r->n = c->n_msgs;
    for (size_t i = 0; i < c->n_msgs; i++) {
        const kn_chat_msg *m = &c->msgs[i];
        view_msg *v = &r->msgs[i];
        if ((unsigned)m->role > KN_ROLE_TOOL)
            return fail(r, "message with an invalid role");
        v->m = m;
        v->role = role_names[m->role];
        v->content = m->content ? m->content : "";
        if (m->n_tool_calls && !(v->args = calloc(m->n_tool_calls, sizeof *v->args)))
            return fail(r, "out of memory");
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            const char *a = m->tool_calls[k].arguments ? m->tool_calls[k].arguments : "";
            cJSON *obj = kn_json_parse(a, strlen(a), 0, NULL, 0, NULL, 0);
            if (obj && !cJSON_IsObject(obj)) {
                cJSON_Delete(obj);
                obj = NULL;
            }
            v->args[k] = obj; /* not an object: rendered as the string it is */
        }
    }
    return 0;
}

int kn_chat_render_prompt(const kn_chat_template *t, const kn_chat *c, const kn_chat_opts *o, kn_chat_prompt *out,
                          char *err, size_t errlen)
{
    kn_chat_opts defaults;
    kn_chat_opts_init(&defaults);
    memset(out, 0, sizeof *out);
    rnd r = {.t = t, .o = o ? o : &defaults, .err = err, .errlen = errlen};
    int rc = build_views(&r, c);
    if (rc == 0) {
        switch (t->family) {
        case KN_CHAT_CHATML: rc = render_chatml(&r); break;
        case KN_CHAT_QWEN25: rc = render_qwen25(&r); break;
        case KN_CHAT_QWEN3: rc = render_qwen3(&r); break;
        case KN_CHAT_LLAMA3: case KN_CHAT_LLAMA31: rc = render_llama(&r); break;
        case KN_CHAT_GEMMA3: rc = render_gemma3(&r); break;
        case KN_CHAT_MISTRAL: rc = render_mistral(&r); break;
        default: rc = fail(&r, "no chat template family chosen");
        }
    }
    views_free(&r);
    if (rc == 0 && (r.oom || r.b.oom))
        rc = fail(&r, "out of memory rendering the chat template");
    if (rc) {
        kn_bytes_free(&r.b);
        free(r.spans);
        return -1;
    }
    out->len = r.b.len;
    out->text = knc_take(&r.b);
    out->data = r.spans;
    out->n_data = r.n_spans;
    if (!out->text) {
        free(r.spans);
        memset(out, 0, sizeof *out);
        knc_err(err, errlen, "out of memory rendering the chat template");
        return -1;
    }
    return 0;
}

void kn_chat_prompt_free(kn_chat_prompt *p)
{
    free(p->text);
    free(p->data);
    memset(p, 0, sizeof *p);
}

char *kn_chat_render(const kn_chat_template *t, const kn_chat *c, const kn_chat_opts *o, char *err, size_t errlen)
{
    kn_chat_prompt p;
    if (kn_chat_render_prompt(t, c, o, &p, err, errlen))
        return NULL;
    free(p.data);
    return p.text;
}
