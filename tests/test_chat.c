/* tests/test_chat.c: the C chat-template renderers against the real Jinja templates rendered by jinja2.
 * tests/render_jinja.py renders every conversation of tests/chat_cases.json with every template (Qwen2.5 and Qwen3
 * from the testdata GGUFs, the others from tests/chat_templates/) at test time; each result must match byte for
 * byte, and an input the template rejects must be rejected here too. Also: Python-compatible tojson on random
 * JSON, template detection, conversation parsing errors. Skips (77) without python3-jinja2 or ../shared/testdata. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "models/text/chat.h"
#include "models/gguf.h"
#include "models/text/tokenizer.h"
#include "check.h"


static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = 0;
    fclose(f);
    return s;
}

static int write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fputs(s, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int run_python(const char *args)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "python3 %s", args);
    return system(cmd);
}

/* Where two renderings part, with some context, for the failure line. */
static void show_diff(const char *want, const char *got)
{
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    size_t from = i > 30 ? i - 30 : 0;
    printf("      differ at byte %zu\n      jinja: \"", i);
    for (size_t k = from; want[k] && k < i + 40; k++)
        putchar(want[k] == '\n' ? '|' : want[k]);
    printf("\"\n      C:     \"");
    for (size_t k = from; got[k] && k < i + 40; k++)
        putchar(got[k] == '\n' ? '|' : got[k]);
    printf("\"\n");
}

static void opts_from_kwargs(const cJSON *kw, kn_chat_opts *o, const char **builtin, size_t maxb)
{
    kn_chat_opts_init(o);
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(kw, "add_generation_prompt")))
        o->add_generation_prompt = cJSON_IsTrue(v);
    if ((v = cJSON_GetObjectItemCaseSensitive(kw, "enable_thinking")))
        o->enable_thinking = cJSON_IsTrue(v);
    if ((v = cJSON_GetObjectItemCaseSensitive(kw, "tools_in_user_message")))
        o->tools_in_user_message = cJSON_IsTrue(v);
    if ((v = cJSON_GetObjectItemCaseSensitive(kw, "date_string")))
        o->date_string = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(kw, "builtin_tools"))) {
        size_t n = 0;
        const cJSON *b;
        cJSON_ArrayForEach(b, v) if (n + 1 < maxb) builtin[n++] = b->valuestring;
        builtin[n] = NULL;
        o->builtin_tools = builtin;
    }
}

/* Spans lie in order inside the text, and the user's marker text is always inside one. */
static int spans_ok(const kn_chat_prompt *p, const char *marker)
{
    size_t end = 0;
    for (size_t k = 0; k < p->n_data; k++) {
        if (p->data[k].off < end || p->data[k].len == 0 || p->data[k].off + p->data[k].len > p->len)
            return 0;
        end = p->data[k].off + p->data[k].len;
    }
    for (const char *m = strstr(p->text, marker); m; m = strstr(m + 1, marker)) {
        size_t off = (size_t)(m - p->text), len = strlen(marker);
        int inside = 0;
        for (size_t k = 0; k < p->n_data; k++)
            inside |= off >= p->data[k].off && off + len <= p->data[k].off + p->data[k].len;
        if (!inside)
            return 0;
    }
    return 1;
}

static void check_case(const cJSON *c, const kn_chat_template *t)
{
    const char *tname = cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring;
    const char *conv = cJSON_GetObjectItemCaseSensitive(c, "conversation")->valuestring;
    const char *optset = cJSON_GetObjectItemCaseSensitive(c, "optset")->valuestring;
    const char *text = cJSON_GetObjectItemCaseSensitive(c, "conv_text")->valuestring;
    int want_ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "ok"));
    char err[256] = "";
    kn_chat *chat = kn_chat_from_json(text, strlen(text), err, sizeof err);
    CHECK(chat, "%s / %s: kn_chat_from_json: %s", tname, conv, err);
    if (!chat)
        return;
    kn_chat_opts o;
    const char *builtin[8];
    opts_from_kwargs(cJSON_GetObjectItemCaseSensitive(c, "kwargs"), &o, builtin, 8);
    kn_chat_prompt p;
    int rc = kn_chat_render_prompt(t, chat, &o, &p, err, sizeof err);
    if (!want_ok) {
        CHECK(rc != 0, "%s / %s / %s: jinja fails (%s) but C rendered", tname, conv, optset,
              cJSON_GetObjectItemCaseSensitive(c, "error")->valuestring);
    } else if (rc != 0) {
        CHECK(0, "%s / %s / %s: C failed: %s", tname, conv, optset, err);
    } else {
        const char *want = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        int same = strcmp(want, p.text) == 0 && strlen(want) == p.len;
        CHECK(same, "%s / %s / %s: rendering differs from jinja2", tname, conv, optset);
        if (!same)
            show_diff(want, p.text);
        CHECK(spans_ok(&p, "typed by a user"), "%s / %s / %s: data spans", tname, conv, optset);
    }
    if (rc == 0)
        kn_chat_prompt_free(&p);
    kn_chat_free(chat);
}

/* The C GGUF reader gives the same template text as the Python one (the path `kiln` takes). */
static void check_gguf_reader(const char *name, const char *text, const char *testdata)
{
    const char *file = !strcmp(name, "qwen2.5") ? "tiny-qwen2-Q4_K_M.gguf"
                       : !strcmp(name, "qwen3") ? "tiny-qwen3-Q4_K_M.gguf"
                                                : NULL;
    if (!file)
        return;
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/models/%s", testdata, file);
    kn_gguf *g = kn_gguf_open(path, err, sizeof err);
    const char *mine = g ? kn_gguf_get_str(g, "tokenizer.chat_template", NULL) : NULL;
    CHECK(mine && !strcmp(mine, text), "%s: tokenizer.chat_template from the C reader differs (%s)", path,
          g ? "text" : err);
    kn_gguf_close(g);
}

static void check_templates_and_cases(const char *dir, const char *testdata, const char *tmp)
{
    char args[4096], out[1024];
    snprintf(out, sizeof out, "%s/cases.json", tmp);
    snprintf(args, sizeof args, "'%s/render_jinja.py' cases '%s/chat_cases.json' '%s/chat_templates' '%s' '%s'", dir,
             dir, dir, testdata, out);
    CHECK(run_python(args) == 0, "render_jinja.py cases failed");
    char *json = read_file(out);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    free(json);
    CHECK(root, "cannot read %s", out);
    if (!root)
        return;
    const cJSON *templates = cJSON_GetObjectItemCaseSensitive(root, "templates"), *tj;
    int n_cases = 0;
    cJSON_ArrayForEach(tj, templates)
    {
        const char *text = cJSON_GetObjectItemCaseSensitive(tj, "text")->valuestring;
        check_gguf_reader(tj->string, text, testdata);
        const char *family = cJSON_GetObjectItemCaseSensitive(tj, "family")->valuestring;
        int exact = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tj, "exact"));
        kn_chat_template t;
        char err[256];
        int rc = kn_chat_template_detect(text, 0, &t, err, sizeof err);
        CHECK(rc == 0 && !strcmp(kn_chat_family_name(t.family), family) && t.exact == exact,
              "template %s: detected %s (exact %d), want %s (exact %d)", tj->string,
              rc ? err : kn_chat_family_name(t.family), t.exact, family, exact);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases"))
        {
            if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring, tj->string))
                continue;
            check_case(c, &t);
            n_cases++;
        }
    }
    printf("%d template renderings compared with jinja2\n", n_cases);
    cJSON_Delete(root);
}

/* ---- tojson on random JSON ----------------------------------------------------------------------------------- */

static unsigned long long rng = 0x1234abcd9876ull;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void put(char **s, size_t *len, const char *t)
{
    size_t n = strlen(t);
    *s = realloc(*s, *len + n + 1);
    memcpy(*s + *len, t, n + 1);
    *len += n;
}

static void rand_number(char **s, size_t *len)
{
    static const char *const fixed[] = {"0", "-0", "1.0", "-0.0", "1e5", "1E+2", "2.50", "1e-7", "0.0001", "1e16",
                                        "1e15", "123456789012345678901234567890", "5e-324", "1.7976931348623157e308",
                                        "0.1", "100", "-1", "1e400", "9007199254740993", "1.5e-5"};
    char t[64];
    switch (rnd(4)) {
    case 0: put(s, len, fixed[rnd(sizeof fixed / sizeof fixed[0])]); return;
    case 1: snprintf(t, sizeof t, "%d", (int)rnd(2000000) - 1000000); break;
    case 2: {
        double m = (double)rnd(1u << 30) / (double)(1u << 30) * 10.0;
        int e = (int)rnd(60) - 30;
        snprintf(t, sizeof t, "%s%.*e", rnd(2) ? "-" : "", (int)rnd(17), m * (e < 0 ? 1e-1 : 1.0));
        char *p = strchr(t, 'e');
        snprintf(p, sizeof t - (size_t)(p - t), "e%d", e);
        break;
    }
    default: snprintf(t, sizeof t, "%.*f", (int)rnd(8) + 1, (double)rnd(1000000) / 7.0); break;
    }
    put(s, len, t);
}

static void rand_string(char **s, size_t *len)
{
    static const char *const pieces[] = {"a", "Z", " ", "\\n", "\\t", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r",
                                         "\\u0001", "\\u001f", "\\u00e9", "é", "日本", "🎉", "\\ud83c\\udf89",
                                         "\\u2028", "<", ">", "&", "'", "\x7f", "\\u0041", "\\uFFFD"};
    put(s, len, "\"");
    for (unsigned k = rnd(8); k > 0; k--)
        put(s, len, pieces[rnd(sizeof pieces / sizeof pieces[0])]);
    put(s, len, "\"");
}

static void rand_value(char **s, size_t *len, int depth)
{
    unsigned kind = depth > 3 ? rnd(5) : rnd(7);
    static const char *const ws[] = {"", " ", "\n  ", "\t"};
    switch (kind) {
    case 0: rand_number(s, len); break;
    case 1: rand_string(s, len); break;
    case 2: put(s, len, rnd(2) ? "true" : "false"); break;
    case 3: put(s, len, "null"); break;
    case 4: rand_number(s, len); break;
    case 5:
    case 6: {
        int obj = kind == 5;
        put(s, len, obj ? "{" : "[");
        unsigned n = rnd(5);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                put(s, len, ",");
            put(s, len, ws[rnd(4)]);
            if (obj) {
                char key[16];
                snprintf(key, sizeof key, "\"k%u\"", rnd(6)); /* repeated keys now and then */
                put(s, len, key);
                put(s, len, ws[rnd(4)]);
                put(s, len, ":");
            }
            rand_value(s, len, depth + 1);
        }
        put(s, len, obj ? "}" : "]");
        break;
    }
    }
}

static void check_tojson(const char *dir, const char *tmp)
{
    enum { N = 400 };
    char *texts[N];
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; i < N; i++) {
        texts[i] = NULL;
        size_t len = 0;
        put(&texts[i], &len, "");
        rand_value(&texts[i], &len, i % 3 == 0 ? 0 : 2);
        cJSON_AddItemToArray(list, cJSON_CreateString(texts[i]));
    }
    char in[1024], out[1024], args[4096];
    snprintf(in, sizeof in, "%s/tojson_in.json", tmp);
    snprintf(out, sizeof out, "%s/tojson_out.json", tmp);
    char *s = cJSON_PrintUnformatted(list);
    CHECK(s && write_file(in, s) == 0, "cannot write %s", in);
    free(s);
    cJSON_Delete(list);
    snprintf(args, sizeof args, "'%s/render_jinja.py' tojson '%s' '%s'", dir, in, out);
    CHECK(run_python(args) == 0, "render_jinja.py tojson failed");
    char *json = read_file(out);
    cJSON *res = json ? cJSON_Parse(json) : NULL;
    free(json);
    CHECK(res && cJSON_GetArraySize(res) == N, "cannot read %s", out);
    for (int i = 0; res && i < N; i++) {
        const cJSON *pair = cJSON_GetArrayItem(res, i);
        for (int form = 0; form < 2; form++) {
            char err[128];
            char *mine = kn_chat_tojson(texts[i], strlen(texts[i]), form ? 4 : -1, err, sizeof err);
            const char *want = cJSON_GetArrayItem(pair, form)->valuestring;
            CHECK(mine && !strcmp(mine, want), "tojson%s of %s: got %s, python %s", form ? "(indent=4)" : "",
                  texts[i], mine ? mine : err, want);
            free(mine);
        }
    }
    cJSON_Delete(res);
    for (int i = 0; i < N; i++)
        free(texts[i]);
}

/* ---- no Python needed --------------------------------------------------------------------------------------- */

static void check_detection(void)
{
    kn_chat_template t;
    char err[256];
    CHECK(kn_chat_template_detect("{{ '### User:' + messages[0].content }}", 0, &t, err, sizeof err) == -1 &&
              strstr(err, "<|im_start|>") && strstr(err, "--chat-template"),
          "unknown template without fallback: %s", err);
    CHECK(kn_chat_template_detect(NULL, 0, &t, err, sizeof err) == -1 && strstr(err, "no tokenizer.chat_template"),
          "no template: %s", err);
    CHECK(kn_chat_template_detect("[INST]", 1, &t, err, sizeof err) == 0 && t.family == KN_CHAT_CHATML && t.fallback,
          "fallback to chatml");
    CHECK(kn_chat_template_detect("<|im_start|>{% if tools %}<tool_call>{% endif %}", 0, &t, err, sizeof err) == 0 &&
              t.family == KN_CHAT_QWEN25 && !t.exact,
          "hermes-like template is qwen2.5, not exact");
    CHECK(kn_chat_template_detect("<|start_header_id|>x<|end_header_id|>{{ strftime_now('%d') }} ipython", 0, &t, err,
                                  sizeof err) == 0 &&
              t.family == KN_CHAT_LLAMA31 && t.date_now && !t.builtin_tools_ok,
          "llama 3.2-like template");
    CHECK(kn_chat_template_named("qwen3", &t, err, sizeof err) == 0 && t.family == KN_CHAT_QWEN3, "named qwen3");
    CHECK(kn_chat_template_named("vicuna", &t, err, sizeof err) == -1 && strstr(err, "mistral-nemo"), "named unknown");
    CHECK(kn_chat_template_named("mistral-nemo", &t, err, sizeof err) == 0 && t.family == KN_CHAT_MISTRAL && t.tight,
          "named mistral-nemo");
    CHECK(kn_chat_template_named("mistral", &t, err, sizeof err) == 0 && t.family == KN_CHAT_MISTRAL && !t.tight,
          "named mistral");
    /* Mistral v0.2 (no tools): the v3 layout stands in, not exact; v7's [SYSTEM_PROMPT] is not v3 either */
    CHECK(kn_chat_template_detect("{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
                                  "{% endfor %}", 0, &t, err, sizeof err) == 0 && t.family == KN_CHAT_MISTRAL &&
              !t.exact && !t.tight,
          "mistral v0.2-like template");
    CHECK(kn_chat_template_detect("[SYSTEM_PROMPT]{{ s }}[/SYSTEM_PROMPT][INST]{{ u }}[/INST]", 0, &t, err, sizeof err) ==
                  0 && t.family == KN_CHAT_MISTRAL && !t.exact && t.tight && t.mistral_v == 7,
          "mistral v7-like template");
    CHECK(kn_chat_template_detect("[SYSTEM_PROMPT]{{ s }}[/SYSTEM_PROMPT][INST]{{ u }}[/INST]{{ '[TOOL_CALLS] [' }}", 0, &t,
                                  err, sizeof err) == 0 && t.mistral_v == 7 && !t.tight,
          "mistral v7-like template with spaced tool markers");
    CHECK(kn_chat_template_detect("[SYSTEM_PROMPT]{{ s }}[/SYSTEM_PROMPT][INST]{{ u }}[/INST]{{ '[TOOL_CALLS]' + n + "
                                  "'[ARGS]' + a }}", 0, &t, err, sizeof err) == 0 &&
              t.family == KN_CHAT_MISTRAL && !t.exact && t.tight && t.mistral_v == 11,
          "mistral v11-like template");
    CHECK(kn_chat_template_named("mistral-v11", &t, err, sizeof err) == 0 && t.family == KN_CHAT_MISTRAL &&
              t.mistral_v == 11 && kn_chat_template_named("mistral-v7", &t, err, sizeof err) == 0 && t.mistral_v == 7 &&
              !t.tight && kn_chat_template_named("mistral", &t, err, sizeof err) == 0 && t.mistral_v != 7 &&
              t.mistral_v != 11,
          "named mistral-v7, mistral-v11");
    /* the published v7/v11 templates' default system message, dated by strftime_now (single or double quotes, the
     * date anywhere in it); an expression kiln cannot evaluate gives none rather than a wrong one */
    {
        static const char v7_default[] =
            "{%- set today = strftime_now('%d %B %Y') %}\n{%- set default_system_message = 'Model X.\\nToday is ' + today "
            "+ \" (\\\"local\\\").\" %}\n{%- if messages[0]['role'] == 'system' %}{%- set system_message = "
            "messages[0]['content'] %}{%- else %}{%- set system_message = default_system_message %}{%- endif %}"
            "{{- bos_token }}{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}[INST][/INST]";
        CHECK(kn_chat_template_detect(v7_default, 0, &t, err, sizeof err) == 0 && t.mistral_v == 7 &&
                  !strcmp(t.default_system, "Model X.\nToday is \x01%d %B %Y\x01 (\"local\").") && strstr(t.why, "default"),
              "mistral v7 default system message read: %s", t.default_system);
        static const char hi[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
        kn_chat *c = kn_chat_from_json(hi, strlen(hi), err, sizeof err);
        char *r = c ? kn_chat_render(&t, c, NULL, err, sizeof err) : NULL;
        char want[256], day[64];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(day, sizeof day, "%d %B %Y", &tm);
        snprintf(want, sizeof want, "<s>[SYSTEM_PROMPT]Model X.\nToday is %s (\"local\").[/SYSTEM_PROMPT][INST]hi[/INST]", day);
        CHECK(r && !strcmp(r, want), "mistral v7 default system message rendered with today's date: %s", r ? r : err);
        free(r);
        kn_chat_free(c);
        CHECK(kn_chat_template_detect("{%- set default_system_message = 'a' + x|upper %}{%- set system_message = "
                                      "default_system_message %}[SYSTEM_PROMPT][INST][/INST]", 0, &t, err, sizeof err) == 0 &&
                  t.mistral_v == 7 && !t.default_system[0],
              "mistral default system message with a filter: none");
    }
    CHECK(!strcmp(kn_chat_family_stops(KN_CHAT_LLAMA31)[0], "<|eot_id|>") && kn_chat_family_has_bos(KN_CHAT_LLAMA3) &&
              !kn_chat_family_has_bos(KN_CHAT_QWEN3) && kn_chat_family_has_bos(KN_CHAT_MISTRAL) &&
              !strcmp(kn_chat_family_stops(KN_CHAT_MISTRAL)[0], "</s>"),
          "stops and bos");
}

static void check_from_json_errors(void)
{
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"messages\": 3}", "messages: missing or not an array"},
        {"{\"model\": \"x\"}", "messages: missing"},
        {"[{\"role\": \"wizard\", \"content\": \"x\"}]", "messages[0].role: unknown role"},
        {"[{\"content\": \"x\"}]", "messages[0].role: missing"},
        {"[{\"role\": \"user\", \"content\": 5}]", "messages[0].content: expected"},
        {"[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]", "messages[0].content[0]: only"},
        {"[{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {}}]}]",
         "messages[0].tool_calls[0].function.name: missing"},
        {"[{\"role\": \"user\", \"tool_calls\": []}]", "messages[0].tool_calls: expected an array on an assistant"},
        {"{\"messages\": [], \"tools\": [{\"type\": \"function\"}]}", "tools[0]: expected"},
        {"{\"messages\": [], \"tools\": [{\"function\": {\"name\": 1}}]}", "tools[0].function.name"},
        {"[{\"role\": \"user\", \"content\": \"x\"}", "JSON text ends early"},
        {"[{\"role\": \"user\", \"content\": \"x\"}]]", "invalid JSON at byte 34"},
        {"[{\"role\": \"user\", \"content\": \"\\ud800\"}]", "lone UTF-16 surrogate"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        kn_chat *c = kn_chat_from_json(bad[i].json, strlen(bad[i].json), err, sizeof err);
        CHECK(!c && strstr(err, bad[i].want), "from_json(%s): got \"%s\", want \"%s\"", bad[i].json, err,
              bad[i].want);
        kn_chat_free(c);
    }
    /* The builder API gives the same prompt as the JSON path. */
    const char *json = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                       "\"tool_calls\": [{\"id\": \"c\", \"function\": {\"name\": \"f\", \"arguments\": "
                       "\"{\\\"a\\\":1}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": \"c\", \"content\": \"r\"}], "
                       "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}";
    char err[256];
    kn_chat *a = kn_chat_from_json(json, strlen(json), err, sizeof err), *b = kn_chat_new();
    kn_chat_add(b, KN_ROLE_USER, "Hi");
    kn_chat_msg *m = kn_chat_add(b, KN_ROLE_ASSISTANT, NULL);
    kn_chat_add_tool_call(m, "c", "f", "{\"a\":1}");
    kn_chat_add_tool_result(b, "c", NULL, "r");
    CHECK(kn_chat_set_tools(b, "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", err, sizeof err) == 0,
          "set_tools: %s", err);
    CHECK(kn_chat_set_tools(b, "{\"type\": 1}", err, sizeof err) == -1 && strstr(err, "tools: expected an array"),
          "set_tools object");
    kn_chat_set_tools(b, "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", err, sizeof err);
    for (int f = KN_CHAT_CHATML; f <= KN_CHAT_LLAMA31; f++) {
        kn_chat_template t;
        kn_chat_template_named(kn_chat_family_name((kn_chat_family)f), &t, err, sizeof err);
        char *ra = a ? kn_chat_render(&t, a, NULL, err, sizeof err) : NULL;
        char *rb = kn_chat_render(&t, b, NULL, err, sizeof err);
        CHECK(ra && rb && !strcmp(ra, rb), "builder vs JSON, family %s", kn_chat_family_name((kn_chat_family)f));
        free(ra);
        free(rb);
    }
    kn_chat_free(a);
    kn_chat_free(b);
    kn_chat *empty = kn_chat_new();
    kn_chat_template t;
    kn_chat_template_named("qwen2.5", &t, err, sizeof err);
    CHECK(!kn_chat_render(&t, empty, NULL, err, sizeof err) && strstr(err, "no messages"), "empty conversation");
    kn_chat_free(empty);
}

/* ---- the chat references of ../shared/testdata, token for token ------------------------------------------- */

static char *slurp_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n)
        free(b), b = NULL;
    if (b)
        b[n] = 0;
    fclose(f);
    return b;
}

/* The conversation behind refs/<model>.chat.json, rendered by the model's own template and tokenized as kiln
 * feeds it, gives the reference's prompt_tokens exactly. */
static void check_chat_ref(const char *testdata, const char *model, const char *user, const char *tools)
{
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/models/%s.gguf", testdata, model);
    kn_gguf *g = kn_gguf_open(path, err, sizeof err);
    kn_tokenizer *tok = g ? kn_tokenizer_load(g, err, sizeof err) : NULL;
    snprintf(path, sizeof path, "%s/refs/%s.chat.json", testdata, model);
    char *js = slurp_file(path);
    cJSON *ref = js ? cJSON_Parse(js) : NULL;
    free(js);
    CHECK(tok && ref, "%s chat reference: %s", model, tok ? "refs file unreadable" : err);
    kn_chat_template t;
    kn_chat *c = kn_chat_new();
    kn_chat_prompt p = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok && ref && c) {
        kn_chat_add(c, KN_ROLE_SYSTEM, "You are a helpful assistant.");
        kn_chat_add(c, KN_ROLE_USER, user);
        int rc = kn_chat_template_detect(kn_gguf_get_str(g, "tokenizer.chat_template", NULL), 0, &t, err, sizeof err);
        if (!rc && tools)
            rc = kn_chat_set_tools(c, tools, err, sizeof err);
        if (!rc)
            rc = kn_chat_render_prompt(&t, c, NULL, &p, err, sizeof err);
        if (!rc)
            rc = kn_chat_prompt_tokenize(tok, t.family, &p, &ids, &n, err, sizeof err);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(ref, "prompt_tokens"), *x;
        size_t i = 0, first_diff = (size_t)-1;
        cJSON_ArrayForEach(x, want)
        {
            if (first_diff == (size_t)-1 && (i >= n || ids[i] != x->valueint))
                first_diff = i;
            i++;
        }
        if (first_diff == (size_t)-1 && i != n)
            first_diff = i < n ? i : n;
        CHECK(!rc && first_diff == (size_t)-1, "%s chat prompt (%s): %zu tokens, reference %zu, first difference at %zd%s%s",
              model, rc ? "?" : kn_chat_family_name(t.family), n, i, (ssize_t)first_diff, rc ? ": " : "", rc ? err : "");
    }
    free(ids);
    kn_chat_prompt_free(&p);
    kn_chat_free(c);
    cJSON_Delete(ref);
    kn_tokenizer_free(tok);
    kn_gguf_close(g);
}

static void check_chat_refs(const char *testdata)
{
    static const char weather[] =
        "[{\"type\": \"function\", \"function\": {\"name\": \"get_current_weather\", \"description\": \"Get the "
        "current weather in a given location\", \"parameters\": {\"type\": \"object\", \"properties\": {\"location\": "
        "{\"type\": \"string\", \"description\": \"The city, e.g. Paris\"}, \"unit\": {\"type\": \"string\", \"enum\": "
        "[\"celsius\", \"fahrenheit\"]}}, \"required\": [\"location\"]}}}]";
    check_chat_ref(testdata, "tiny-qwen2-Q4_K_M", "What is 2+2?", NULL);
    check_chat_ref(testdata, "tiny-qwen3-Q4_K_M", "What is 2+2?", NULL);
    check_chat_ref(testdata, "tiny-llama3-Q4_K_M", "What is the weather like in Paris today?", weather);
    check_chat_ref(testdata, "tiny-gemma3-Q4_K_M", "What is the weather like in Paris today?", NULL);
}

int main(int argc, char **argv)
{
    check_detection();
    check_from_json_errors();
    const char *dir = argc > 1 ? argv[1] : "tests";
    const char *testdata = getenv("KILN_TESTDATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tiny-qwen3-Q4_K_M.gguf", testdata ? testdata : "../shared/testdata");
    const char *skip = access(path, R_OK) != 0 ? "the jinja comparisons need ../shared/testdata"
                       : system("python3 -c 'import jinja2' >/dev/null 2>&1") != 0
                           ? "python3 with jinja2 is missing (Debian: apt install python3-jinja2)"
                       : strchr(dir, '\'') || (testdata && strchr(testdata, '\'')) ? "a path holds a quote character"
                                                                                 : NULL;
    if (skip) {
        printf("SKIP: %s (%s); %d passed, %d failed without it\n", skip, path, passed, failed);
        return failed ? 1 : 77;
    }
    char tmp[] = "/tmp/kiln-test-chat-XXXXXX";
    if (!mkdtemp(tmp)) {
        printf("FAIL: mkdtemp\n");
        return 1;
    }
    check_chat_refs(testdata ? testdata : "../shared/testdata");
    check_templates_and_cases(dir, testdata ? testdata : "../shared/testdata", tmp);
    check_tojson(dir, tmp);
    char cleanup[1200];
    snprintf(cleanup, sizeof cleanup, "rm -rf '%s'", tmp);
    if (system(cleanup) != 0)
        printf("note: could not remove %s\n", tmp);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
