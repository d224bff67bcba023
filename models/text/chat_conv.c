/* models/text/chat_conv.c: the conversation model (kn_chat) and its construction from OpenAI request JSON.
 * Input quirks of real clients are absorbed here, once: "developer" is a system message, content may be an array
 * of text parts, tool-call arguments may arrive as an object instead of a string. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/chat_impl.h"

kn_chat *kn_chat_new(void) { return calloc(1, sizeof(kn_chat)); }

static void msg_free(kn_chat_msg *m)
{
    free(m->content);
    free(m->reasoning_content);
    free(m->tool_call_id);
    free(m->name);
    for (size_t k = 0; k < m->n_tool_calls; k++) {
        free(m->tool_calls[k].id);
        free(m->tool_calls[k].name);
        free(m->tool_calls[k].arguments);
    }
    free(m->tool_calls);
}

void kn_chat_free(kn_chat *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_msgs; i++)
        msg_free(&c->msgs[i]);
    free(c->msgs);
    free(c->tools_json);
    free(c);
}

kn_chat_msg *kn_chat_add(kn_chat *c, kn_chat_role role, const char *content)
{
    if (c->n_msgs == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        kn_chat_msg *nm = realloc(c->msgs, cap * sizeof *nm);
        if (!nm)
            return NULL;
        c->msgs = nm;
        c->cap = cap;
    }
    kn_chat_msg *m = &c->msgs[c->n_msgs];
    memset(m, 0, sizeof *m);
    m->role = role;
    if (content && !(m->content = knc_strdup(content)))
        return NULL;
    c->n_msgs++;
    return m;
}

int kn_chat_add_tool_call(kn_chat_msg *m, const char *id, const char *name, const char *arguments)
{
    kn_chat_call *nc = realloc(m->tool_calls, (m->n_tool_calls + 1) * sizeof *nc);
    if (!nc)
        return -1;
    m->tool_calls = nc;
    kn_chat_call *tc = &nc[m->n_tool_calls];
    tc->id = id ? knc_strdup(id) : NULL;
    tc->name = knc_strdup(name ? name : "");
    tc->arguments = knc_strdup(arguments ? arguments : "{}");
    if ((id && !tc->id) || !tc->name || !tc->arguments) {
        free(tc->id);
        free(tc->name);
        free(tc->arguments);
        return -1;
    }
    m->n_tool_calls++;
    return 0;
}

int kn_chat_add_tool_result(kn_chat *c, const char *tool_call_id, const char *name, const char *content)
{
    kn_chat_msg *m = kn_chat_add(c, KN_ROLE_TOOL, content);
    if (!m)
        return -1;
    if ((tool_call_id && !(m->tool_call_id = knc_strdup(tool_call_id))) || (name && !(m->name = knc_strdup(name))))
        return -1; /* the message stays, with what was copied; kn_chat_free releases it */
    return 0;
}

int kn_chat_role_parse(const char *name)
{
    if (!strcmp(name, "system") || !strcmp(name, "developer"))
        return KN_ROLE_SYSTEM;
    if (!strcmp(name, "user"))
        return KN_ROLE_USER;
    if (!strcmp(name, "assistant"))
        return KN_ROLE_ASSISTANT;
    if (!strcmp(name, "tool"))
        return KN_ROLE_TOOL;
    return -1;
}

/* Every entry must be {"type": "function", "function": {"name": <string>, ...}}. */
static int check_tools(const cJSON *tools, char *err, size_t errlen)
{
    if (!cJSON_IsArray(tools)) {
        knc_err(err, errlen, "tools: expected an array");
        return -1;
    }
    size_t i = 0;
    for (const cJSON *t = tools->child; t; t = t->next, i++) {
        const char *type = knj_str(knj_get(t, "type"));
        const cJSON *fn = knj_get(t, "function");
        if (!cJSON_IsObject(t) || (type && strcmp(type, "function")) || !cJSON_IsObject(fn)) {
            knc_err(err, errlen, "tools[%zu]: expected {\"type\": \"function\", \"function\": {...}}", i);
            return -1;
        }
        const char *name = knj_str(knj_get(fn, "name"));
        if (!name || !*name) {
            knc_err(err, errlen, "tools[%zu].function.name: missing or not a string", i);
            return -1;
        }
        /* the name is printed into the prompt and read back from the model's output: it must survive both */
        if (strpbrk(name, "\"\\<>\n\r\t") || strlen(name) > 256) {
            knc_err(err, errlen, "tools[%zu].function.name: \"%.60s\" is not a valid function name (no quotes, "
                                 "backslashes, angle brackets or line breaks; at most 256 bytes)", i, name);
            return -1;
        }
    }
    return 0;
}

int kn_chat_set_tools(kn_chat *c, const char *tools_json, char *err, size_t errlen)
{
    free(c->tools_json);
    c->tools_json = NULL;
    if (!tools_json)
        return 0;
    char jerr[128];
    cJSON *v = kn_json_parse(tools_json, strlen(tools_json), 0, NULL, 0, jerr, sizeof jerr);
    if (!v) {
        knc_err(err, errlen, "tools: %s", jerr);
        return -1;
    }
    int rc = check_tools(v, err, errlen);
    cJSON_Delete(v);
    if (rc)
        return -1;
    if (!(c->tools_json = knc_strdup(tools_json))) {
        knc_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- from OpenAI JSON ---------------------------------------------------------------------------------------- */

/* content: string, null/absent, or an array of {"type": "text", "text": …} parts joined with "\n". */
static int take_content(const cJSON *v, char **out, const char *where, char *err, size_t errlen)
{
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v)) { /* U+0000 never gets this far: the reader refuses it */
        *out = knc_strdup(v->valuestring);
        goto done;
    }
    if (!cJSON_IsArray(v)) {
        knc_err(err, errlen, "%s: expected a string, null or an array of text parts", where);
        return -1;
    }
    kn_bytes b = {0};
    size_t i = 0;
    for (const cJSON *part = v->child; part; part = part->next, i++) {
        const char *type = knj_str(knj_get(part, "type"));
        const char *text = knj_str(knj_get(part, "text"));
        if (!type || strcmp(type, "text") || !text) {
            kn_bytes_free(&b);
            knc_err(err, errlen, "%s[%zu]: only {\"type\": \"text\", \"text\": ...} parts are supported", where, i);
            return -1;
        }
        if (i > 0)
            kn_bytes_putc(&b, '\n');
        kn_bytes_puts(&b, text);
    }
    *out = knc_take(&b);
done:
    if (!*out) {
        knc_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int opt_string(const cJSON *msg, const char *key, char **out, const char *where, char *err, size_t errlen)
{
    const cJSON *v = knj_get(msg, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v)) {
        knc_err(err, errlen, "%s.%s: expected a string", where, key);
        return -1;
    }
    if (!(*out = knc_strdup(v->valuestring))) {
        knc_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int take_tool_call(kn_chat_msg *m, const cJSON *tc, const char *where, char *err, size_t errlen)
{
    const cJSON *fn = knj_get(tc, "function");
    const char *name = knj_str(knj_get(fn, "name"));
    if (!name) {
        knc_err(err, errlen, "%s.function.name: missing or not a string", where);
        return -1;
    }
    const cJSON *args = knj_get(fn, "arguments");
    char *args_text = NULL;
    if (!args || cJSON_IsNull(args)) {
        args_text = knc_strdup("{}");
    } else if (cJSON_IsString(args)) {
        args_text = knc_strdup(args->valuestring);
    } else {
        kn_bytes b = {0};
        knj_dump(&b, args, -1);
        args_text = knc_take(&b);
    }
    const char *id = knj_str(knj_get(tc, "id"));
    int rc = args_text ? kn_chat_add_tool_call(m, id, name, args_text) : -1;
    free(args_text);
    if (rc)
        knc_err(err, errlen, "out of memory");
    return rc;
}

static int take_message(kn_chat *c, const cJSON *mv, size_t i, char *err, size_t errlen)
{
    char where[64];
    snprintf(where, sizeof where, "messages[%zu]", i);
    const char *role_name = knj_str(knj_get(mv, "role"));
    if (!role_name) {
        knc_err(err, errlen, "%s.role: missing or not a string", where);
        return -1;
    }
    int role = kn_chat_role_parse(role_name);
    if (role < 0) {
        knc_err(err, errlen, "%s.role: unknown role \"%.40s\"", where, role_name);
        return -1;
    }
    kn_chat_msg *m = kn_chat_add(c, (kn_chat_role)role, NULL);
    if (!m) {
        knc_err(err, errlen, "out of memory");
        return -1;
    }
    char cwhere[80];
    snprintf(cwhere, sizeof cwhere, "%s.content", where);
    if (take_content(knj_get(mv, "content"), &m->content, cwhere, err, errlen) ||
        opt_string(mv, "reasoning_content", &m->reasoning_content, where, err, errlen) ||
        opt_string(mv, "tool_call_id", &m->tool_call_id, where, err, errlen) ||
        opt_string(mv, "name", &m->name, where, err, errlen))
        return -1;
    const cJSON *tcs = knj_get(mv, "tool_calls");
    if (!tcs || cJSON_IsNull(tcs))
        return 0;
    if (!cJSON_IsArray(tcs) || role != KN_ROLE_ASSISTANT) {
        knc_err(err, errlen, "%s.tool_calls: expected an array on an assistant message", where);
        return -1;
    }
    size_t k = 0;
    for (const cJSON *tc = tcs->child; tc; tc = tc->next, k++) {
        char twhere[128];
        snprintf(twhere, sizeof twhere, "%s.tool_calls[%zu]", where, k);
        if (take_tool_call(m, tc, twhere, err, errlen))
            return -1;
    }
    return 0;
}

kn_chat *kn_chat_from_cjson(const cJSON *root, char *err, size_t errlen)
{
    const cJSON *msgs = cJSON_IsArray(root) ? root : knj_get(root, "messages");
    const cJSON *tools = knj_get(root, "tools");
    kn_chat *c = kn_chat_new();
    if (!c) {
        knc_err(err, errlen, "out of memory");
        return NULL;
    }
    if (!cJSON_IsArray(msgs)) {
        knc_err(err, errlen, "messages: missing or not an array");
        goto fail;
    }
    size_t i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++)
        if (take_message(c, m, i, err, errlen))
            goto fail;
    if (tools && !cJSON_IsNull(tools)) {
        if (check_tools(tools, err, errlen))
            goto fail;
        kn_bytes b = {0};
        knj_dump(&b, tools, -1);
        if (!(c->tools_json = knc_take(&b))) {
            knc_err(err, errlen, "out of memory");
            goto fail;
        }
    }
    return c;
fail:
    kn_chat_free(c);
    return NULL;
}

kn_chat *kn_chat_from_json(const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root = kn_json_parse(json, len, 0, NULL, 0, err, errlen);
    if (!root)
        return NULL;
    kn_chat *c = kn_chat_from_cjson(root, err, errlen);
    cJSON_Delete(root);
    return c;
}
