/* models/text/chat_detect.c: which chat-template family a GGUF's tokenizer.chat_template belongs to, by the markers
 * each family's template carries; also the families' names, stop texts and BOS handling. See docs/chat.md. */
#include <stdio.h>
#include <string.h>

#include "models/text/chat_impl.h"

static const char *const family_names[] = {"none",     "chatml",   "qwen2.5", "qwen3",
                                           "llama3",   "llama3.1", "gemma3",  "mistral"};

const char *kn_chat_family_name(kn_chat_family f)
{
    return (unsigned)f < sizeof family_names / sizeof family_names[0] ? family_names[f] : "?";
}

int kn_chat_family_has_bos(kn_chat_family f)
{
    return f == KN_CHAT_LLAMA3 || f == KN_CHAT_LLAMA31 || f == KN_CHAT_GEMMA3 || f == KN_CHAT_MISTRAL;
}

const char *const *kn_chat_family_stops(kn_chat_family f)
{
    static const char *const chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
    static const char *const llama[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", NULL};
    static const char *const gemma[] = {"<end_of_turn>", "<eos>", NULL};
    static const char *const mistral[] = {"</s>", NULL};
    return f == KN_CHAT_GEMMA3 ? gemma : f == KN_CHAT_MISTRAL ? mistral : kn_chat_family_has_bos(f) ? llama : chatml;
}

static int has(const char *text, const char *s) { return strstr(text, s) != NULL; }

static int has_all(const char *text, const char *const *marks)
{
    for (; *marks; marks++)
        if (!has(text, *marks))
            return 0;
    return 1;
}

/* The system text a ChatML template writes when the conversation has none: a literal
 * '<|im_start|>system\n…<|im_end|>' in the template source (Qwen2.5: "You are Qwen, created by Alibaba Cloud…"). */
static void find_default_system(const char *text, char *out, size_t outlen)
{
    static const char open[] = "<|im_start|>system\\n";
    out[0] = 0;
    for (const char *p = strstr(text, open); p; p = strstr(p + 1, open)) {
        const char *s = p + strlen(open), *e = strstr(s, "<|im_end|>");
        if (!e || e == s || (size_t)(e - s) >= outlen || strpbrk(s, "'\"{}+") < e)
            continue;
        size_t n = 0;
        for (const char *q = s; q < e; q++) { /* Jinja string escapes */
            if (*q == '\\' && q + 1 < e) {
                q++;
                out[n++] = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q;
            } else {
                out[n++] = *q;
            }
        }
        out[n] = 0;
        return;
    }
}

/* A Jinja string literal at *p (quote ' or "), its escapes decoded, appended to out at *n; 0, or -1 when it is not
 * one or does not fit. */
static int jinja_string(const char **p, char *out, size_t *n, size_t outlen)
{
    char q = **p;
    if (q != '"' && q != '\'')
        return -1;
    for (const char *s = *p + 1; *s; s++) {
        char c = *s;
        if (c == q) {
            *p = s + 1;
            return 0;
        }
        if (c == '\\' && s[1]) {
            c = *++s;
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
        }
        if (*n + 2 >= outlen)
            return -1;
        out[(*n)++] = c;
    }
    return -1;
}

/* Mistral's published v7/v11 templates (Small 3, 3.1, 3.2) write a default system message when the conversation has
 * none, dated with the day the prompt is rendered:
 *     {%- set today = strftime_now("%Y-%m-%d") %}
 *     {%- set default_system_message = "You are … The current date is " + today + ".\n\n…" %}
 *     … {%- set system_message = default_system_message %}
 * The expression is read here: string literals joined with +, and names set from strftime_now(FMT), each kept as
 * "\x01FMT\x01" for the renderer to format. Anything else in it (a filter, another call) and out stays "". */
static void find_default_system_expr(const char *text, char *out, size_t outlen)
{
    out[0] = 0;
    const char *p = strstr(text, "set default_system_message");
    if (!p || !has(text, "set system_message = default_system_message"))
        return;
    p += strlen("set default_system_message");
    while (*p == ' ')
        p++;
    if (*p++ != '=')
        return;
    size_t n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (*p == '"' || *p == '\'') {
            if (jinja_string(&p, out, &n, outlen))
                return (void)(out[0] = 0);
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_') {
            char name[64], set[96];
            size_t k = 0;
            while (k < sizeof name - 1 && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                                           (*p >= '0' && *p <= '9')))
                name[k++] = *p++;
            name[k] = 0;
            snprintf(set, sizeof set, "set %s = strftime_now(", name);
            const char *f = strstr(text, set);
            if (!f || n + 1 >= outlen)
                return (void)(out[0] = 0);
            f += strlen(set);
            out[n++] = '\x01';
            if (jinja_string(&f, out, &n, outlen) || *f != ')' || n + 1 >= outlen)
                return (void)(out[0] = 0);
            out[n++] = '\x01';
        } else {
            return (void)(out[0] = 0);
        }
        while (*p == ' ' || *p == '\n')
            p++;
        if (*p == '+') {
            p++;
            continue;
        }
        if (strncmp(p, "%}", 2) && strncmp(p, "-%}", 3))
            return (void)(out[0] = 0);
        out[n] = 0;
        return;
    }
}

static void set_why(kn_chat_template *t, const char *why)
{
    snprintf(t->why, sizeof t->why, "%s (%s)", kn_chat_family_name(t->family), why);
}

static void detect_chatml(const char *text, kn_chat_template *t)
{
    static const char *const qwen3[] = {"<tool_call>", "<tool_response>", "last_query_index", "reasoning_content",
                                        "enable_thinking", "<think>\\n\\n</think>\\n\\n", NULL};
    static const char *const qwen25[] = {"# Tools\\n\\nYou may call one or more functions", "<tools>",
                                         "<tool_response>", "tool_call.arguments | tojson", NULL};
    find_default_system(text, t->default_system, sizeof t->default_system);
    if (has(text, "<think>") || has(text, "enable_thinking")) {
        t->family = KN_CHAT_QWEN3;
        t->exact = has_all(text, qwen3);
        set_why(t, "<|im_start|> and <think>");
    } else if (has(text, "<tool_call>")) {
        t->family = KN_CHAT_QWEN25;
        t->exact = has_all(text, qwen25);
        set_why(t, "<|im_start|> and <tool_call>");
    } else {
        t->family = KN_CHAT_CHATML;
        t->exact = !has(text, "tool") && (has(text, "message['content']") || has(text, "message.content"));
        set_why(t, "<|im_start|>");
    }
}

static void detect_llama(const char *text, kn_chat_template *t)
{
    static const char *const llama31[] = {"Environment: ipython\\n", "Cutting Knowledge Date: December 2023\\n",
                                          "tools_in_user_message", "\"parameters\": ", "| tojson(indent=4)",
                                          "bos_token", NULL};
    static const char *const llama3[] = {"<|eot_id|>", "bos_token", "| trim", NULL};
    if (has(text, "ipython")) {
        t->family = KN_CHAT_LLAMA31;
        t->exact = has_all(text, llama31);
        t->builtin_tools_ok = has(text, "builtin_tools") && has(text, "<|python_tag|>");
        t->date_now = has(text, "strftime_now");
        set_why(t, "<|start_header_id|> and ipython");
    } else {
        t->family = KN_CHAT_LLAMA3;
        t->exact = has_all(text, llama3) && !has(text, "tool");
        set_why(t, "<|start_header_id|>");
    }
}

/* Mistral v3 (7B Instruct v0.3, Mixtral 8x22B) writes "[INST] " with a space; v3-tekken (Nemo) writes none. Older
 * [INST] templates (v0.1/v0.2, no tools) are rendered in the v3 layout. Newer ones: [SYSTEM_PROMPT] (v7: Mistral Small
 * 3/3.1) puts the system message first, [ARGS] (v11: Small 3.2, Magistral, Devstral) writes calls as
 * [TOOL_CALLS]name[ARGS]{…}; their [INST] has no space, and the spacing of the tool markers follows "[TOOL_CALLS] [".
 * Exact for kiln's reference templates of each form (tests/chat_templates); a default system message the template
 * writes when the conversation has none (the published v7/v11 ones, dated with today) is read from its text. */
static void detect_mistral(const char *text, kn_chat_template *t)
{
    static const char *const common[] = {"bos_token", "eos_token", "user_messages[-1]", "tool.items()",
                                         "if key != \"return\"", "tool_call.function|tojson", "out[:-1]",
                                         "tool_call.id|length != 9", "Only user and assistant roles are supported", NULL};
    static const char *const v3[] = {"\"[AVAILABLE_TOOLS] [\"", "\"[TOOL_CALLS] [\"", "'[TOOL_RESULTS] {\"content\": '", NULL};
    static const char *const tekken[] = {"\"[AVAILABLE_TOOLS][\"", "\"[TOOL_CALLS][\"", "'[TOOL_RESULTS]{\"content\": '", NULL};
    static const char *const v7[] = {"\"[SYSTEM_PROMPT]\" + system_message + \"[/SYSTEM_PROMPT]\"",
                                     "\"[INST]\" + message[\"content\"] + \"[/INST]\"", "message[\"content\"] + eos_token", NULL};
    static const char *const v11[] = {"bos_token", "eos_token", "user_messages[-1]",
                                      "\"[SYSTEM_PROMPT]\" + system_message + \"[/SYSTEM_PROMPT]\"",
                                      "\"[AVAILABLE_TOOLS]\" + tools|tojson + \"[/AVAILABLE_TOOLS]\"",
                                      "\"[TOOL_CALLS]\" + tool[\"function\"][\"name\"] + \"[ARGS]\" + arguments",
                                      "\"[TOOL_RESULTS]\" + message[\"content\"]|string + \"[/TOOL_RESULTS]\"", NULL};
    t->family = KN_CHAT_MISTRAL;
    t->mistral_v = has(text, "[ARGS]") ? 11 : has(text, "[SYSTEM_PROMPT]") ? 7 : 3;
    t->tight = t->mistral_v != 3 && has(text, "[TOOL_CALLS]") ? !has(text, "[TOOL_CALLS] [") : !has(text, "[INST] ");
    int tools = has_all(text, t->tight ? tekken : v3);
    if (t->mistral_v == 11)
        t->exact = has_all(text, v11);
    else if (t->mistral_v == 7)
        t->exact = has_all(text, common) && tools && has_all(text, v7);
    else
        t->exact = has_all(text, common) && tools && has(text, "loop.last and system_message is defined") &&
                   has(text, t->tight ? "message[\"content\"] + eos_token" : "\" \" + message[\"content\"]|trim + eos_token");
    if (t->mistral_v != 3)
        find_default_system_expr(text, t->default_system, sizeof t->default_system);
    set_why(t, t->mistral_v == 11 ? (t->default_system[0] ? "[INST] and [ARGS]: v11, [TOOL_CALLS]name[ARGS]{...}, a default "
                                                            "system message"
                                                          : "[INST] and [ARGS]: v11, [TOOL_CALLS]name[ARGS]{...}")
               : t->mistral_v == 7 ? (t->default_system[0] ? "[INST] and [SYSTEM_PROMPT]: v7, a default system message"
                                                           : "[INST] and [SYSTEM_PROMPT]: v7")
               : t->tight ? "[INST] and no space after it: v3-tekken" : "[INST]");
}

int kn_chat_template_detect(const char *text, int allow_fallback, kn_chat_template *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (text && has(text, "<|im_start|>")) {
        detect_chatml(text, out);
        return 0;
    }
    if (text && has(text, "<|start_header_id|>") && has(text, "<|end_header_id|>")) {
        detect_llama(text, out);
        return 0;
    }
    if (text && has(text, "<start_of_turn>") && has(text, "<end_of_turn>")) {
        static const char *const gemma3[] = {"bos_token", "first_user_prefix", "\"model\"", "| trim",
                                             "Conversation roles must alternate", NULL};
        out->family = KN_CHAT_GEMMA3;
        out->exact = has_all(text, gemma3) && !has(text, "tool");
        set_why(out, "<start_of_turn>");
        return 0;
    }
    if (text && has(text, "[INST]") && has(text, "[/INST]")) {
        detect_mistral(text, out);
        return 0;
    }
    const char *why = !text || !*text ? "the model has no tokenizer.chat_template"
                                      : "tokenizer.chat_template has none of the <|im_start|> (ChatML, Qwen), "
                                        "<|start_header_id|> (Llama 3), <start_of_turn> (Gemma) or [INST] (Mistral) "
                                        "markers";
    if (!allow_fallback) {
        knc_err(err, errlen, "%s; choose a family with --chat-template (chatml, qwen2.5, qwen3, llama3, llama3.1, gemma3, "
                "mistral, mistral-nemo, mistral-v7, mistral-v11)", why);
        return -1;
    }
    out->family = KN_CHAT_CHATML;
    out->fallback = 1;
    snprintf(out->why, sizeof out->why, "chatml (fallback: %s)", why);
    return 0;
}

int kn_chat_template_named(const char *name, kn_chat_template *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!strcmp(name, "mistral-nemo") || !strcmp(name, "mistral-v7") || !strcmp(name, "mistral-v11")) {
        out->family = KN_CHAT_MISTRAL;
        out->exact = 1;
        out->mistral_v = name[9] == '1' ? 11 : name[9] == '7' ? 7 : 3;
        out->tight = out->mistral_v != 7; /* v7 as Mistral Small 3.1's template: spaced tool markers */
        set_why(out, out->mistral_v == 3 ? "named mistral-nemo: v3-tekken" : "named");
        return 0;
    }
    for (size_t f = 1; f < sizeof family_names / sizeof family_names[0]; f++) {
        if (strcmp(name, family_names[f]))
            continue;
        out->family = (kn_chat_family)f;
        out->exact = 1;
        if (f == KN_CHAT_QWEN25)
            strcpy(out->default_system, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
        out->builtin_tools_ok = f == KN_CHAT_LLAMA31;
        set_why(out, "named");
        return 0;
    }
    knc_err(err, errlen, "unknown chat template family \"%.40s\" (chatml, qwen2.5, qwen3, llama3, llama3.1, gemma3, mistral, "
            "mistral-nemo, mistral-v7, mistral-v11)", name);
    return -1;
}
