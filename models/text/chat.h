/* models/text/chat.h: chat conversations, chat templates rendered in C, and tool-call parsing of model output.
 * A template family is picked from the GGUF's tokenizer.chat_template text; each family's renderer gives the same
 * bytes as the Jinja template it stands for (checked against jinja2 in tests/test_chat.c). Used by `kiln run` and
 * `kiln serve`. See docs/chat.md. */
#ifndef KN_CHAT_H
#define KN_CHAT_H

#include <stddef.h>
#include <stdint.h>

/* ---- template families ------------------------------------------------------------------------------------- */

typedef enum kn_chat_family {
    KN_CHAT_NONE = 0,
    KN_CHAT_CHATML,  /* plain ChatML: <|im_start|>role\n…<|im_end|>\n (tools get a Hermes block, see docs) */
    KN_CHAT_QWEN25,  /* ChatML + Hermes tools (Qwen2.5): "# Tools", <tools>, <tool_call>, <tool_response> */
    KN_CHAT_QWEN3,   /* Qwen2.5's tool format + <think> reasoning and enable_thinking */
    KN_CHAT_LLAMA3,  /* Llama 3.0 headers, no native tools */
    KN_CHAT_LLAMA31, /* Llama 3.1/3.2/3.3: "Environment: ipython", JSON calls {"name", "parameters"}, <|python_tag|> */
    KN_CHAT_GEMMA3,  /* Gemma 3: <start_of_turn>user/model, the system text prefixed to the first user turn, no tools */
    KN_CHAT_MISTRAL, /* Mistral v3 (7B v0.3, Mixtral 8x22B; `tight`: v3-tekken, Nemo): [INST]…[/INST], the tool list in
                        [AVAILABLE_TOOLS] before the last user turn, calls as [TOOL_CALLS] [{"name", "arguments"}];
                        `mistral_v` 7: the system message as [SYSTEM_PROMPT]…[/SYSTEM_PROMPT]; 11: calls as
                        [TOOL_CALLS]name[ARGS]{…} */
} kn_chat_family;

typedef struct kn_chat_template {
    kn_chat_family family;
    int exact;      /* every marker of the family's reference template was found in the text */
    int fallback;   /* no family matched (or no template): plain ChatML stands in */
    int builtin_tools_ok; /* Llama 3.1: the template renders builtin_tools as <|python_tag|>name.call(...) */
    int date_now;   /* Llama 3.2: the template dates the system block with strftime_now (today) */
    int tight;      /* Mistral v3-tekken (Nemo): no space after [INST], [AVAILABLE_TOOLS], [TOOL_CALLS], [TOOL_RESULTS] and
                       before an assistant reply (v3, 7B v0.3: spaces, the reply trimmed) */
    int mistral_v;  /* Mistral: 3 (the system text before the last user message), 7 ([SYSTEM_PROMPT] after BOS, [INST]
                       without a space, the reply as it is), 11 (as 7; tools as [AVAILABLE_TOOLS]<tools|tojson>, calls as
                       [TOOL_CALLS]name[ARGS]{…}, results as [TOOL_RESULTS]text[/TOOL_RESULTS], no call ids) */
    char default_system[4096]; /* system text used when the conversation has none ("" = none): ChatML families, and
                                  Mistral v7/v11 whose published templates write one; a date the template takes from
                                  strftime_now(FMT) is kept as "\x01FMT\x01" and written with today's date */
    char why[200];  /* one line on how the family was chosen, for logs */
} kn_chat_template;

/* Pick the family of a Jinja template text (NULL or "" when the GGUF has none). With allow_fallback, an unknown
 * text gives plain ChatML (fallback = 1); without it, -1 and an error that names what was not recognized. */
int kn_chat_template_detect(const char *text, int allow_fallback, kn_chat_template *out, char *err, size_t errlen);

/* A family chosen by name ("chatml", "qwen2.5", "qwen3", "llama3", "llama3.1", "gemma3", "mistral", or
 * "mistral-nemo" for Mistral's tight v3-tekken layout, "mistral-v7", "mistral-v11"): for --chat-template. */
int kn_chat_template_named(const char *name, kn_chat_template *out, char *err, size_t errlen);

const char *kn_chat_family_name(kn_chat_family f);
/* The family's template writes bos_token itself (Llama): do not let the tokenizer add a second BOS. */
int kn_chat_family_has_bos(kn_chat_family f);
/* NULL-terminated texts that end an assistant turn in this family (their tokens are end-of-generation). */
const char *const *kn_chat_family_stops(kn_chat_family f);

/* ---- conversations ----------------------------------------------------------------------------------------- */

typedef enum kn_chat_role { KN_ROLE_SYSTEM, KN_ROLE_USER, KN_ROLE_ASSISTANT, KN_ROLE_TOOL } kn_chat_role;

typedef struct kn_chat_call {
    char *id;        /* may be NULL in input conversations */
    char *name;
    char *arguments; /* JSON text (an object as OpenAI sends it, "{\"city\":\"Paris\"}") */
} kn_chat_call;

typedef struct kn_chat_msg {
    kn_chat_role role;
    char *content;           /* NULL = null (rendered as "") */
    char *reasoning_content; /* assistant: earlier reasoning (Qwen3 renders it), NULL when absent */
    kn_chat_call *tool_calls;
    size_t n_tool_calls;
    char *tool_call_id;      /* tool results */
    char *name;              /* tool results: the tool's name, optional */
} kn_chat_msg;

typedef struct kn_chat {
    kn_chat_msg *msgs;
    size_t n_msgs, cap;
    char *tools_json; /* the OpenAI `tools` array as JSON text; NULL = no tools */
} kn_chat;

kn_chat *kn_chat_new(void);
void kn_chat_free(kn_chat *c);
/* Append a message (content copied; NULL = null). Returns it, or NULL when out of memory. The pointer is valid
 * until the next kn_chat_add. */
kn_chat_msg *kn_chat_add(kn_chat *c, kn_chat_role role, const char *content);
/* Assistant tool call; arguments is JSON text (NULL = "{}"). 0 or -1 (out of memory). */
int kn_chat_add_tool_call(kn_chat_msg *m, const char *id, const char *name, const char *arguments);
/* A tool message answering tool_call_id (name may be NULL). */
int kn_chat_add_tool_result(kn_chat *c, const char *tool_call_id, const char *name, const char *content);
/* Set the tools (a JSON array of {"type":"function","function":{"name",…}}); checked, error names the entry. */
int kn_chat_set_tools(kn_chat *c, const char *tools_json, char *err, size_t errlen);
/* Role from its OpenAI name; "developer" is a system message. -1 when unknown. */
int kn_chat_role_parse(const char *name);

/* A conversation from OpenAI request JSON: an object with "messages" (and optional "tools"; other fields are
 * ignored) or a bare messages array. Content arrays of {"type":"text"} parts are joined with "\n"; arguments given
 * as objects are kept as JSON text. Errors name the field: "messages[2].tool_calls[0].function.name: missing". */
kn_chat *kn_chat_from_json(const char *json, size_t len, char *err, size_t errlen);
/* The same from a tree read by kn_json_parse (models/text/json_read.h), so a server reads its request body once. */
struct cJSON;
kn_chat *kn_chat_from_cjson(const struct cJSON *root, char *err, size_t errlen);

/* ---- rendering --------------------------------------------------------------------------------------------- */

typedef struct kn_chat_opts {
    int add_generation_prompt;        /* end with the assistant header (default 1) */
    int enable_thinking;              /* Qwen3: 1 (default) lets the model think; 0 adds an empty <think></think> */
    int tools_in_user_message;        /* Llama 3.1: 1 (the template's default) puts the tool list in the first user
                                         message; 0 puts it in the system message (what llama.cpp passes) */
    const char *date_string;          /* Llama 3.1 "Today Date:"; NULL: "26 Jul 2024", or today for strftime_now */
    const char *const *builtin_tools; /* Llama 3.1: NULL-terminated builtin tool names; NULL = none */
    const char *bos_token;            /* NULL: "<|begin_of_text|>" (Llama families), "<bos>" (Gemma), "<s>" (Mistral) */
    const char *eos_token;            /* NULL: "</s>" (Mistral ends each assistant turn with it) */
} kn_chat_opts;

void kn_chat_opts_init(kn_chat_opts *o);

/* A rendered prompt. data[] lists the byte ranges that came from the conversation (message text, tool JSON):
 * tokenize those without parsing special tokens, so "<|im_end|>" typed by a user stays text. */
typedef struct kn_chat_span {
    size_t off, len;
} kn_chat_span;

typedef struct kn_chat_prompt {
    char *text; /* NUL-terminated */
    size_t len;
    kn_chat_span *data;
    size_t n_data;
} kn_chat_prompt;

/* Render c with template t. Input is normalized first as llama.cpp does: null content is "", arguments that are a
 * JSON object are rendered as an object (not a quoted string). Returns 0, or -1 with err naming the problem (a
 * message the template cannot express, malformed tool JSON, out of memory). o may be NULL (defaults). */
int kn_chat_render_prompt(const kn_chat_template *t, const kn_chat *c, const kn_chat_opts *o, kn_chat_prompt *out,
                          char *err, size_t errlen);
void kn_chat_prompt_free(kn_chat_prompt *p);
/* The token ids of a rendered prompt as kiln feeds them to the model: template text with special-token text parsed,
 * the conversation's own text (data spans) without, and a BOS first when the tokenizer asks for one and the family's
 * template does not write it. *ids is malloc'd. 0, or -1 with err. */
struct kn_tokenizer;
int kn_chat_prompt_tokenize(const struct kn_tokenizer *t, kn_chat_family f, const kn_chat_prompt *p, int32_t **ids,
                            size_t *n, char *err, size_t errlen);
/* The same, as one malloc'd string (NULL on error). */
char *kn_chat_render(const kn_chat_template *t, const kn_chat *c, const kn_chat_opts *o, char *err, size_t errlen);

/* JSON text re-printed as Python's json.dumps(x, ensure_ascii=False[, indent]) prints it: what the templates'
 * `tojson` gives (", " and ": " separators, keys in input order, floats as Python repr). indent < 0: one line. */
char *kn_chat_tojson(const char *json, size_t len, int indent, char *err, size_t errlen);

/* ---- parsing model output: content, reasoning, tool calls ------------------------------------------------- */

typedef enum kn_tc_kind {
    KN_TC_CONTENT,    /* text: append to content */
    KN_TC_REASONING,  /* text: append to reasoning_content (<think>…</think>) */
    KN_TC_CALL_BEGIN, /* a tool call starts: index, id and name (each sent once) */
    KN_TC_CALL_ARGS,  /* text: the next piece of call `index`'s arguments JSON */
    KN_TC_CALL_END,   /* call `index` is complete and well-formed */
    KN_TC_CALL_ABORT, /* call `index` turned out malformed: forget it; its raw text follows as KN_TC_CONTENT and
                         the next call reuses the index */
} kn_tc_kind;

typedef struct kn_tc_event {
    kn_tc_kind kind;
    int index;        /* calls: 0, 1, … in order */
    const char *text; /* CONTENT, REASONING, CALL_ARGS (not NUL-terminated: use len) */
    size_t len;
    const char *id;   /* CALL_BEGIN */
    const char *name; /* CALL_BEGIN */
} kn_tc_event;

typedef struct kn_tc_opts {
    int parse_think;   /* split a leading <think>…</think> into reasoning (default: Qwen3) */
    int in_reasoning;  /* the prompt ended inside <think>: output starts as reasoning */
    int bare_json;     /* a reply that starts with {"name": …} is a call (default: Llama families) */
    const char *const *tool_names; /* when set, a bare JSON call must name one of these */
    size_t n_tool_names;
    uint64_t id_seed;  /* 0: random call ids; otherwise a reproducible sequence */
} kn_tc_opts;

void kn_tc_opts_init(kn_tc_opts *o, kn_chat_family family);

typedef struct kn_toolparser kn_toolparser;

/* An incremental parser: feed the decoded text of each generated token, read the events it produced. Content is
 * passed on at once, except text that may still become a tag ("<tool_c…"), whitespace next to a call, and an
 * incomplete UTF-8 sequence (every event's text ends on a character boundary; invalid bytes become U+FFFD). */
kn_toolparser *kn_toolparser_new(kn_chat_family family, const kn_tc_opts *o);
void kn_toolparser_free(kn_toolparser *p);
int kn_toolparser_feed(kn_toolparser *p, const char *text, size_t len); /* 0, or -1 out of memory */
int kn_toolparser_finish(kn_toolparser *p);                             /* end of output: flush, settle calls */
/* Events from the last feed/finish; valid until the next call on p. */
const kn_tc_event *kn_toolparser_events(const kn_toolparser *p, size_t *n);
int kn_toolparser_n_calls(const kn_toolparser *p); /* complete calls so far */

typedef struct kn_chat_reply {
    char *content;   /* never NULL after parsing ("" when none) */
    char *reasoning; /* never NULL after parsing */
    kn_chat_call *calls;
    size_t n_calls;
} kn_chat_reply;

/* Apply one event to a reply being built (zero-initialize the reply first). 0, or -1 out of memory. */
int kn_chat_reply_apply(kn_chat_reply *r, const kn_tc_event *ev);
/* Whole output at once: the same parser, fed in one piece. */
int kn_toolcall_parse(kn_chat_family family, const kn_tc_opts *o, const char *text, size_t len, kn_chat_reply *out,
                      char *err, size_t errlen);
void kn_chat_reply_free(kn_chat_reply *r);

#endif
