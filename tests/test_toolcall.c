/* tests/test_toolcall.c: parsing model output into content, reasoning and tool calls (models/text/toolcall.c).
 * Each case is parsed whole and checked against its expected result; then it is streamed in random-sized pieces
 * (1 byte up to the whole) many times, and the reply built from the events must equal the whole-text parse, with
 * well-formed events (ids and names once, valid UTF-8 per piece, arguments only for the open call). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/text/chat.h"
#include "models/text/json_constraint.h"
#include "check.h"


enum { F_THINK_ON = 1, F_IN_REASONING = 2, F_BARE = 4, F_NAMES = 8, F_NO_BARE = 16 };

typedef struct tcase {
    kn_chat_family fam;
    int flags;
    const char *in, *content, *reasoning;
    const char *calls[4][2]; /* name, arguments */
} tcase;

#define Q25 KN_CHAT_QWEN25
#define Q3 KN_CHAT_QWEN3
#define L31 KN_CHAT_LLAMA31
#define MIS KN_CHAT_MISTRAL
#define CALL(n, a) {n, a}
#define WEATHER "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"

static const tcase cases[] = {
    /* Qwen / Hermes */
    {Q25, 0, "Hello, world!", "Hello, world!", "", {{0}}},
    {Q25, 0, "", "", "", {{0}}},
    {Q25, 0, WEATHER, "", "", {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {Q25, 0, "Let me check.\n" WEATHER, "Let me check.", "", {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {Q25, 0, WEATHER "\n" WEATHER "\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>", "", "",
     {CALL("get_weather", "{\"city\": \"Paris\"}"), CALL("get_weather", "{\"city\": \"Paris\"}"), CALL("now", "{}")}},
    {Q25, 0, "<tool_call>\n{\"name\": \"s\", \"arguments\": {\"q\": \"a}b</tool_call> \\\"x\\\" {[\", \"n\": [1, 2.5e3, "
             "{\"k\": null}]}}\n</tool_call>",
     "", "", {CALL("s", "{\"q\": \"a}b</tool_call> \\\"x\\\" {[\", \"n\": [1, 2.5e3, {\"k\": null}]}")}},
    {Q25, 0, "<tool_call>{\"arguments\": {\"x\": 1}, \"name\": \"f\"}</tool_call>", "", "", {CALL("f", "{\"x\": 1}")}},
    {Q25, 0, "<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": [1, \\\"é\\\"]}\"}\n</tool_call>", "", "",
     {CALL("f", "{\"x\": [1, \"é\"]}")}},
    {Q25, 0, "<tool_call>\n{\"name\": \"f\", \"parameters\": {\"a\": true}}\n</tool_call>", "", "",
     {CALL("f", "{\"a\": true}")}},
    {Q25, 0, "<tool_call>\n{\"name\": \"now\"}\n</tool_call>", "", "", {CALL("now", "{}")}},
    {Q25, 0, "<tool_call>\n{\"type\": \"function\", \"name\": \"f\", \"id\": 7, \"arguments\": {}}\n</tool_call>", "", "",
     {CALL("f", "{}")}},
    {Q25, 0, WEATHER "\nDone, it is sunny.", "Done, it is sunny.", "", {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {Q25, 0, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}", "", "", {CALL("f", "{\"a\": 1}")}},
    {Q25, 0, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_c", "</tool_c", "",
     {CALL("f", "{\"a\": 1}")}},
    {Q25, 0, "  \n" WEATHER "\n\n", "", "", {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {Q25, 0, "Hello \n", "Hello \n", "", {{0}}},
    {Q25, 0, "I use <tool_", "I use <tool_", "", {{0}}},
    {Q25, 0, "a < b and c <t d", "a < b and c <t d", "", {{0}}},
    {Q25, 0, "Grüße 世界 🎉 " WEATHER, "Grüße 世界 🎉", "", {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {Q25, 0, "<tool_call>\n{\"name\": \"wé\", \"arguments\": {\"t\": \"日本語 🎉\"}}\n</tool_call>", "", "",
     {CALL("wé", "{\"t\": \"日本語 🎉\"}")}},
    /* malformed calls come back as content, untouched */
    {Q25, 0, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": }}\n</tool_call>",
     "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": }}\n</tool_call>", "", {{0}}},
    {Q25, 0, "<tool_call>\n{\"name\": \"f\", \"argu", "<tool_call>\n{\"name\": \"f\", \"argu", "", {{0}}},
    {Q25, 0, "<tool_call>{\"arguments\": {}}</tool_call>", "<tool_call>{\"arguments\": {}}</tool_call>", "", {{0}}},
    {Q25, 0, "<tool_call>{\"name\": 5, \"arguments\": {}}</tool_call>",
     "<tool_call>{\"name\": 5, \"arguments\": {}}</tool_call>", "", {{0}}},
    {Q25, 0, "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>",
     "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>", "", {{0}}},
    {Q25, 0, "<tool_call>\n<function=f>{}</function>\n</tool_call>",
     "<tool_call>\n<function=f>{}</function>\n</tool_call>", "", {{0}}},
    {Q25, 0, "a <tool_call> b", "a <tool_call> b", "", {{0}}},
    {Q25, 0, "<tool_call>{\"name\": \"f\", \"arguments\": \"not json\"}</tool_call>",
     "<tool_call>{\"name\": \"f\", \"arguments\": \"not json\"}</tool_call>", "", {{0}}},
    {Q25, 0, "<tool_call>{\"name\": \"f\", \"arguments\": {}, \"arguments\": {}}</tool_call>",
     "<tool_call>{\"name\": \"f\", \"arguments\": {}, \"arguments\": {}}</tool_call>", "", {{0}}},
    {Q25, 0, "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
     "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>", "", {{0}}},
    {Q25, 0, "<tool_call>{\"name\": \"f\", \"name\": \"g\"}</tool_call>",
     "<tool_call>{\"name\": \"f\", \"name\": \"g\"}</tool_call>", "", {{0}}},
    {Q25, 0, "ok\n<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1}} junk",
     "okjunk", "", {CALL("f", "{\"a\": 1}")}},
    {Q25, 0, WEATHER "\n<tool_call>\n{\"name\": \"g\", \"arguments\": {\"a\": tru}}\n</tool_call>",
     "<tool_call>\n{\"name\": \"g\", \"arguments\": {\"a\": tru}}\n</tool_call>", "",
     {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {Q25, 0, "bad \xff byte \xe6\x97 cut", "bad \xef\xbf\xbd byte \xef\xbf\xbd cut", "", {{0}}},
    /* Qwen3 thinking */
    {Q3, 0, "<think>\nreasoning here\n</think>\n\nThe answer.", "The answer.", "reasoning here", {{0}}},
    {Q3, 0, "<think>\nI should call.\n</think>\n\n" WEATHER, "", "I should call.",
     {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {Q3, 0, "<think>\nstill thinking", "", "still thinking", {{0}}},
    {Q3, 0, "<think>\n\n</think>\n\nQuick.", "Quick.", "", {{0}}},
    {Q3, 0, "Direct answer.", "Direct answer.", "", {{0}}},
    {Q3, 0, "<think>\na\n\nb\n</think>x", "x", "a\n\nb", {{0}}},
    {Q3, 0, "Hi <think>x</think>", "Hi <think>x</think>", "", {{0}}},
    {Q3, 0, "<thin", "<thin", "", {{0}}},
    {Q3, 0, "\n<think>r</think> spaced", " spaced", "r", {{0}}},
    {Q3, F_IN_REASONING, "thinking...\n</think>\n\nanswer", "answer", "thinking...", {{0}}},
    {Q3, F_IN_REASONING, "</think>\n\nanswer", "answer", "", {{0}}},
    {Q25, F_THINK_ON, "<think>t</think>c", "c", "t", {{0}}},
    {Q25, 0, "<think>t</think>c", "<think>t</think>c", "", {{0}}},
    /* Llama 3.x */
    {L31, 0, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", "", "",
     {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {L31, 0, "{\"type\": \"function\", \"name\": \"f\", \"parameters\": {}}", "", "", {CALL("f", "{}")}},
    {L31, 0, "{\"answer\": 42}", "{\"answer\": 42}", "", {{0}}},
    {L31, 0, "The capital is Paris.", "The capital is Paris.", "", {{0}}},
    {L31, 0, "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": 1}}", "", "", {CALL("f", "{\"a\": 1}")}},
    {L31, 0, "<|python_tag|>brave_search.call(query=\"kiln \\\"news\\\"\", n=3, safe=True)", "", "",
     {CALL("brave_search", "{\"query\": \"kiln \\\"news\\\"\", \"n\": 3, \"safe\": true}")}},
    {L31, 0, "<|python_tag|>import math\nprint(math.pi)", "", "",
     {CALL("python", "{\"code\": \"import math\\nprint(math.pi)\"}")}},
    {L31, 0, "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": \"y\"}}", "", "",
     {CALL("a", "{}"), CALL("b", "{\"x\": \"y\"}")}},
    {L31, F_NAMES, "{\"name\": \"unknown_tool\", \"parameters\": {}}",
     "{\"name\": \"unknown_tool\", \"parameters\": {}}", "", {{0}}},
    {L31, F_NAMES, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", "", "",
     {CALL("get_weather", "{\"city\": \"Oslo\"}")}},
    {L31, 0, "\n\n{\"name\": \"f\", \"parameters\": {}}", "", "", {CALL("f", "{}")}},
    {L31, 0, "{\"name\": \"f\", \"parameters\": {\"a\": }", "{\"name\": \"f\", \"parameters\": {\"a\": }", "", {{0}}},
    {L31, 0, "Sure. <|python_tag|>{\"name\": \"f\", \"parameters\": {}}", "Sure.", "", {CALL("f", "{}")}},
    {L31, 0, "{\"name\": \"f\", \"parameters\": {}} trailing text", "trailing text", "", {CALL("f", "{}")}},
    {L31, 0, "<|python_tag|>", "<|python_tag|>", "", {{0}}},
    {L31, 0, "{}", "{}", "", {{0}}},
    {L31, 0, "{\"name\": \"f\", \"parameters\": {}, \"extra\": [1, {\"a\": 2}]}", "", "", {CALL("f", "{}")}},
    {L31, F_NO_BARE, "{\"name\": \"f\", \"parameters\": {}}", "{\"name\": \"f\", \"parameters\": {}}", "", {{0}}},
    {Q25, F_BARE | F_NAMES, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}", "", "",
     {CALL("get_weather", "{\"city\": \"Rome\"}")}},
    {KN_CHAT_CHATML, 0, "x " WEATHER, "x", "", {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    /* Mistral: [TOOL_CALLS] [{…}, …] (v3; v3-tekken without the space), v11's [TOOL_CALLS]name[ARGS]{…} */
    {MIS, 0, "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]", "", "",
     {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {MIS, 0, "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}, \"id\": \"abcDEF123\"}, {\"arguments\": {\"x\": [1, "
             "\"]\"]}, \"name\": \"b\"},{\"name\": \"c\"}]", "", "",
     {CALL("a", "{}"), CALL("b", "{\"x\": [1, \"]\"]}"), CALL("c", "{}")}},
    {MIS, 0, "Let me look. [TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {\"a\": 1}}] Done.", "Let me look.Done.", "",
     {CALL("f", "{\"a\": 1}")}},
    {MIS, 0, "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {\"a\": 1}}", "", "", {CALL("f", "{\"a\": 1}")}},
    {MIS, 0, "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {\"a\": }}]",
     "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {\"a\": }}]", "", {{0}}},
    {MIS, 0, "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {}}, {\"name\": \"g\", \"arg", ", {\"name\": \"g\", \"arg",
     "", {CALL("f", "{}")}},
    {MIS, 0, "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {}} oops", "oops", "", {CALL("f", "{}")}},
    {MIS, 0, "[TOOL_CALLS]", "[TOOL_CALLS]", "", {{0}}},
    {MIS, 0, "I said [TOOL_CALL] once", "I said [TOOL_CALL] once", "", {{0}}},
    {MIS, 0, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}", "", "",
     {CALL("get_weather", "{\"city\": \"Paris\"}")}},
    {MIS, 0, "[TOOL_CALLS]a[ARGS]{}[TOOL_CALLS]b_2[ARGS] {\"k\": \"}\"}", "", "",
     {CALL("a", "{}"), CALL("b_2", "{\"k\": \"}\"}")}},
    {MIS, 0, "[TOOL_CALLS]not a name[ARGS]{}", "[TOOL_CALLS]not a name[ARGS]{}", "", {{0}}},
    {MIS, 0, "[TOOL_CALLS]f[ARGS]{\"a\": ", "[TOOL_CALLS]f[ARGS]{\"a\": ", "", {{0}}},
    {MIS, 0, "{\"name\": \"f\", \"arguments\": {}}", "{\"name\": \"f\", \"arguments\": {}}", "", {{0}}},
};

static void make_opts(const tcase *c, kn_tc_opts *o, uint64_t seed)
{
    static const char *const names[] = {"get_weather", "now"};
    kn_tc_opts_init(o, c->fam);
    if (c->flags & F_THINK_ON)
        o->parse_think = 1;
    if (c->flags & F_IN_REASONING)
        o->in_reasoning = 1;
    if (c->flags & F_BARE)
        o->bare_json = 1;
    if (c->flags & F_NO_BARE)
        o->bare_json = 0;
    if (c->flags & F_NAMES) {
        o->tool_names = names;
        o->n_tool_names = 2;
    }
    o->id_seed = seed;
}

/* Well-formed UTF-8: checked by wrapping the bytes in a JSON string with the validator (it enforces RFC 3629). */
static int valid_utf8(const char *s, size_t n)
{
    kn_jsonc j;
    kn_jsonc_init(&j, 0);
    if (!kn_jsonc_push(&j, '"'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c < 0x20)
            c = 'x'; /* only the encoding matters here */
        if (!kn_jsonc_push(&j, c))
            return 0;
    }
    return kn_jsonc_push(&j, '"');
}

static int same_reply(const kn_chat_reply *a, const kn_chat_reply *b)
{
    if (strcmp(a->content ? a->content : "", b->content ? b->content : "") ||
        strcmp(a->reasoning ? a->reasoning : "", b->reasoning ? b->reasoning : "") || a->n_calls != b->n_calls)
        return 0;
    for (size_t k = 0; k < a->n_calls; k++)
        if (strcmp(a->calls[k].name, b->calls[k].name) || strcmp(a->calls[k].arguments, b->calls[k].arguments) ||
            strcmp(a->calls[k].id, b->calls[k].id))
            return 0;
    return 1;
}

static unsigned long long rng = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Check the events of one feed and apply them. Returns 0 when they are well-formed. */
static int take_events(kn_toolparser *p, kn_chat_reply *r, int *open, const char **why)
{
    size_t n;
    const kn_tc_event *ev = kn_toolparser_events(p, &n);
    for (size_t i = 0; i < n; i++) {
        const kn_tc_event *e = &ev[i];
        int text = e->kind == KN_TC_CONTENT || e->kind == KN_TC_REASONING || e->kind == KN_TC_CALL_ARGS;
        if (text && (e->len == 0 || !valid_utf8(e->text, e->len)))
            return *why = "text event empty or not valid UTF-8", -1;
        if (e->kind == KN_TC_CALL_BEGIN) {
            if (*open || (size_t)e->index != r->n_calls || !e->id || !e->name ||
                (strncmp(e->id, "call_", 5) && strlen(e->id) != 9)) /* Mistral: 9 letters and digits */
                return *why = "CALL_BEGIN out of order or without id/name", -1;
            *open = 1;
        }
        if ((e->kind == KN_TC_CALL_ARGS || e->kind == KN_TC_CALL_END || e->kind == KN_TC_CALL_ABORT) &&
            (!*open || (size_t)e->index + 1 != r->n_calls))
            return *why = "call event for a call that is not open", -1;
        if (e->kind == KN_TC_CALL_END || e->kind == KN_TC_CALL_ABORT)
            *open = 0;
        if (kn_chat_reply_apply(r, e))
            return *why = "kn_chat_reply_apply failed", -1;
    }
    return 0;
}

static void check_case(size_t ci, const tcase *c)
{
    kn_tc_opts o;
    make_opts(c, &o, 1000 + ci);
    kn_chat_reply whole;
    char err[128];
    if (kn_toolcall_parse(c->fam, &o, c->in, strlen(c->in), &whole, err, sizeof err)) {
        CHECK(0, "case %zu: parse failed: %s", ci, err);
        return;
    }
    size_t want_calls = 0;
    while (want_calls < 4 && c->calls[want_calls][0])
        want_calls++;
    int ok = !strcmp(whole.content, c->content) && !strcmp(whole.reasoning, c->reasoning) &&
             whole.n_calls == want_calls;
    for (size_t k = 0; ok && k < want_calls; k++)
        ok = !strcmp(whole.calls[k].name, c->calls[k][0]) && !strcmp(whole.calls[k].arguments, c->calls[k][1]) &&
             kn_json_valid(whole.calls[k].arguments, strlen(whole.calls[k].arguments), KN_JSONC_OBJECT_ONLY);
    CHECK(ok, "case %zu (%s): content \"%s\" reasoning \"%s\" calls %zu (%s %s); want \"%s\" \"%s\" %zu", ci,
          kn_chat_family_name(c->fam), whole.content, whole.reasoning, whole.n_calls,
          whole.n_calls ? whole.calls[0].name : "-", whole.n_calls ? whole.calls[0].arguments : "-", c->content,
          c->reasoning, want_calls);
    /* streaming in random pieces */
    size_t len = strlen(c->in);
    for (int round = 0; round < 60; round++) {
        kn_toolparser *p = kn_toolparser_new(c->fam, &o);
        kn_chat_reply r = {0};
        int open = 0, bad = 0;
        const char *why = "";
        size_t max = round == 0 ? 1 : round == 1 ? len + 1 : 1 + rnd(round < 30 ? 4 : 16);
        for (size_t off = 0; off < len && !bad;) {
            size_t piece = 1 + rnd((unsigned)max);
            if (piece > len - off)
                piece = len - off;
            bad = kn_toolparser_feed(p, c->in + off, piece) || take_events(p, &r, &open, &why);
            off += piece;
        }
        bad = bad || kn_toolparser_finish(p) || take_events(p, &r, &open, &why) || open;
        if (!r.content)
            r.content = calloc(1, 1);
        if (!r.reasoning)
            r.reasoning = calloc(1, 1);
        CHECK(!bad && same_reply(&r, &whole), "case %zu round %d: streaming differs (%s): content \"%s\" calls %zu",
              ci, round, bad ? why : "result", r.content, r.n_calls);
        kn_chat_reply_free(&r);
        kn_toolparser_free(p);
    }
    kn_chat_reply_free(&whole);
}

/* Content goes out at once; only a possible tag (and the whitespace before it) waits. */
static void check_latency(void)
{
    static const struct {
        kn_chat_family fam;
        const char *feeds[4];
        const char *after[4]; /* content or reasoning emitted by each feed */
    } steps[] = {
        {Q25, {"Hello wor", "ld <tool", "_call>\n{\"name\": \"f\", \"argu", "ments\": {\"a\": 1}}"},
         {"Hello wor", "ld", "", ""}},
        {Q25, {"x <", "b", " <tool_call", "s>"}, {"x", " <b", "", " <tool_calls>"}},
        {Q3, {"<think>\nab", "c\n", "\nd</thi", "nk>\n\nok"}, {"ab", "c", "\n\nd", "ok"}},
        {L31, {"{\"name\": \"f\"", ", \"parameters\": {\"a\"", ": 1}}", ""}, {"", "", "", ""}},
        {L31, {"{\"result\"", ": 1}", "", ""}, {"{\"result\"", ": 1}", "", ""}},
    };
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        kn_tc_opts o;
        kn_tc_opts_init(&o, steps[s].fam);
        o.id_seed = 7;
        kn_toolparser *p = kn_toolparser_new(steps[s].fam, &o);
        for (int k = 0; k < 4 && steps[s].feeds[k]; k++) {
            kn_toolparser_feed(p, steps[s].feeds[k], strlen(steps[s].feeds[k]));
            size_t n;
            const kn_tc_event *ev = kn_toolparser_events(p, &n);
            char got[256] = "";
            for (size_t i = 0; i < n; i++)
                if (ev[i].kind == KN_TC_CONTENT || ev[i].kind == KN_TC_REASONING)
                    strncat(got, ev[i].text, ev[i].len < 200 ? ev[i].len : 200);
            CHECK(!strcmp(got, steps[s].after[k]), "latency %zu feed %d: emitted \"%s\", want \"%s\"", s, k, got,
                  steps[s].after[k]);
        }
        kn_toolparser_free(p);
    }
    /* the name is announced before the arguments end, and the arguments stream */
    kn_tc_opts o;
    kn_tc_opts_init(&o, Q25);
    kn_toolparser *p = kn_toolparser_new(Q25, &o);
    const char *a = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"ci";
    kn_toolparser_feed(p, a, strlen(a));
    size_t n;
    const kn_tc_event *ev = kn_toolparser_events(p, &n);
    int begun = 0, args = 0;
    for (size_t i = 0; i < n; i++) {
        begun |= ev[i].kind == KN_TC_CALL_BEGIN && !strcmp(ev[i].name, "get_weather");
        args |= ev[i].kind == KN_TC_CALL_ARGS && ev[i].len == 4 && !memcmp(ev[i].text, "{\"ci", 4);
    }
    CHECK(begun && args, "call begins with its name and streams arguments (begun %d, args %d)", begun, args);
    kn_toolparser_free(p);
}

/* Ids: unique per call, reproducible with a seed. */
static void check_ids(void)
{
    const char *in = WEATHER WEATHER WEATHER;
    kn_tc_opts o;
    kn_tc_opts_init(&o, Q25);
    kn_chat_reply a, b, c;
    kn_toolcall_parse(Q25, &o, in, strlen(in), &a, NULL, 0);
    kn_toolcall_parse(Q25, &o, in, strlen(in), &b, NULL, 0);
    o.id_seed = 42;
    kn_toolcall_parse(Q25, &o, in, strlen(in), &c, NULL, 0);
    CHECK(a.n_calls == 3 && strlen(a.calls[0].id) == 29 && strcmp(a.calls[0].id, a.calls[1].id) &&
              strcmp(a.calls[1].id, a.calls[2].id) && strcmp(a.calls[0].id, b.calls[0].id),
          "random ids unique");
    kn_chat_reply d;
    kn_toolcall_parse(Q25, &o, in, strlen(in), &d, NULL, 0);
    CHECK(!strcmp(c.calls[2].id, d.calls[2].id), "seeded ids reproducible");
    kn_chat_reply_free(&a);
    kn_chat_reply_free(&b);
    kn_chat_reply_free(&c);
    kn_chat_reply_free(&d);
    /* Mistral's template takes back only 9-character ids */
    const char *m = "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {}}, {\"name\": \"g\", \"arguments\": {}}]";
    kn_tc_opts_init(&o, MIS);
    kn_toolcall_parse(MIS, &o, m, strlen(m), &a, NULL, 0);
    int alnum = a.n_calls == 2;
    for (size_t k = 0; k < a.n_calls; k++)
        for (const char *q = a.calls[k].id; *q; q++)
            alnum &= (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9');
    CHECK(alnum && strlen(a.calls[0].id) == 9 && strlen(a.calls[1].id) == 9 && strcmp(a.calls[0].id, a.calls[1].id),
          "Mistral ids: 9 letters and digits (%s)", a.n_calls ? a.calls[0].id : "no calls");
    kn_chat_reply_free(&a);
}

/* Random outputs: text, calls (some broken), think blocks, mixed; streaming must agree with whole parsing. */
static void check_random(void)
{
    static const char *const bits[] = {
        "Hello", " ", "\n", "<", "<tool", "<tool_call>", "</tool_call>", "{", "}", "\"name\": \"f\"", ", ",
        "\"arguments\": ", "{\"a\": 1}", "\"x\"", "<think>", "</think>", "é", "\xe6\x97\xa5", "\xff", "[", "]",
        WEATHER, "<|python_tag|>", "g.call(a=\"b\")", ";", "{\"name\": \"get_weather\", \"parameters\": {}}", "tru",
        "\\", "\\\"", "[TOOL_CALLS]", " [", "[ARGS]", "f", "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {}}",
    };
    static const kn_chat_family fams[] = {Q25, Q3, L31, KN_CHAT_CHATML, MIS};
    int bad = 0;
    for (int t = 0; t < 400; t++) {
        char in[600] = "";
        for (int k = rnd(14); k > 0; k--)
            strcat(in, bits[rnd(sizeof bits / sizeof bits[0])]);
        tcase c = {fams[t % 5], 0, in, NULL, NULL, {{0}}};
        kn_tc_opts o;
        make_opts(&c, &o, 5 + t);
        kn_chat_reply whole;
        kn_toolcall_parse(c.fam, &o, in, strlen(in), &whole, NULL, 0);
        for (int round = 0; round < 8; round++) {
            kn_toolparser *p = kn_toolparser_new(c.fam, &o);
            kn_chat_reply r = {0};
            int open = 0, fail = 0;
            const char *why = "";
            size_t len = strlen(in);
            for (size_t off = 0; off < len && !fail;) {
                size_t piece = 1 + rnd(round < 4 ? 3 : 12);
                piece = piece > len - off ? len - off : piece;
                fail = kn_toolparser_feed(p, in + off, piece) || take_events(p, &r, &open, &why);
                off += piece;
            }
            fail = fail || kn_toolparser_finish(p) || take_events(p, &r, &open, &why) || open;
            if (!r.content)
                r.content = calloc(1, 1);
            if (!r.reasoning)
                r.reasoning = calloc(1, 1);
            if (fail || !same_reply(&r, &whole)) {
                if (bad++ < 5)
                    printf("FAIL random %d (%s) round %d: %s; input \"%s\"\n", t, kn_chat_family_name(c.fam), round,
                           fail ? why : "differs from whole parse", in);
            }
            kn_chat_reply_free(&r);
            kn_toolparser_free(p);
        }
        /* every byte of the input is somewhere: content, reasoning, or a call */
        int sane = valid_utf8(whole.content, strlen(whole.content));
        for (size_t k = 0; k < whole.n_calls; k++)
            sane &= kn_json_valid(whole.calls[k].arguments, strlen(whole.calls[k].arguments), KN_JSONC_OBJECT_ONLY);
        if (!sane && bad++ < 5)
            printf("FAIL random %d: invalid content or arguments; input \"%s\"\n", t, in);
        kn_chat_reply_free(&whole);
    }
    if (bad)
        failed += bad;
    else
        passed++;
    printf("400 random outputs x 8 chunkings: %d mismatches\n", bad);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(i, &cases[i]);
    check_latency();
    check_ids();
    check_random();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
