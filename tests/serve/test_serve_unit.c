/* Unit tests of `kiln serve`'s pieces that need no model: the constrained-output acceptor (random calls and JSON
 * objects from a reference printer, cut at random points and completed), request validation (every field of the
 * wrong type is a 400 naming it), and the OpenAI output built from model text split at random points (streamed
 * chunks and whole responses, checked by parsing them back with cJSON). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/serve.h"

static int n_pass, n_fail;
#define CHECK(cond, ...)                                                                                               \
  do {                                                                                                                 \
    if (cond) n_pass++;                                                                                                \
    else {                                                                                                             \
      n_fail++;                                                                                                        \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                                    \
      printf(__VA_ARGS__);                                                                                             \
      printf("\n");                                                                                                    \
    }                                                                                                                  \
  } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

/* ---- a reference JSON printer for random values ------------------------------------------------------------ */

static void gen_string(kn_bytes *b, bool plain) {
  static const char *parts[] = {"a", "Paris", " ", "x_y", "\\\"", "\\\\", "\\n", "\\u00e9", "\xc3\xa9", "\xe2\x82\xac", "7"};
  int n = (int)rnd(6), np = plain ? 4 : (int)(sizeof parts / sizeof *parts);
  kn_bytes_puts(b, "\"");
  for (int i = 0; i < n; i++) kn_bytes_puts(b, parts[rnd((uint32_t)np)]);
  kn_bytes_puts(b, "\"");
}

static void gen_value(kn_bytes *b, int depth, bool plain);

static void gen_object(kn_bytes *b, int depth, bool plain) {
  int n = (int)rnd(depth > 2 ? 2 : 4);
  kn_bytes_puts(b, rnd(2) ? "{" : "{ ");
  for (int i = 0; i < n; i++) {
    if (i) kn_bytes_puts(b, rnd(2) ? ", " : ",");
    gen_string(b, plain);
    kn_bytes_puts(b, rnd(2) ? ": " : ":");
    gen_value(b, depth + 1, plain);
  }
  kn_bytes_puts(b, "}");
}

static void gen_value(kn_bytes *b, int depth, bool plain) {
  switch (rnd(depth > 3 ? 4 : 7)) {
  case 0: gen_string(b, plain); break;
  case 1: /* digits 1-9: cJSON takes leading zeros, JSON does not */
    kn_bytes_puts(b, rnd(2) ? "-" : "");
    for (int k = 0, n = 1 + (int)rnd(5); k < n; k++) kn_bytes_printf(b, "%u", 1 + rnd(9));
    break;
  case 2: kn_bytes_puts(b, rnd(2) ? "true" : "null"); break;
  case 3: kn_bytes_puts(b, "false"); break;
  case 4:
  case 5: gen_object(b, depth, plain); break;
  default: {
    int n = (int)rnd(4);
    kn_bytes_puts(b, "[");
    for (int i = 0; i < n; i++) {
      if (i) kn_bytes_puts(b, ",");
      gen_value(b, depth + 1, plain);
    }
    kn_bytes_puts(b, "]");
  }
  }
}

/* ---- the acceptor -------------------------------------------------------------------------------------------- */

static const char *NAMES[] = {"get_weather", "get", "search_web", "s", "read_file", "write_file"};

static void make_spec(kc_spec *k, int n_names, bool tail) {
  memset(k, 0, sizeof *k);
  k->json = true;
  k->tail = tail ? strdup("}\n</tool_call>") : NULL;
  k->choices = calloc((size_t)n_names, sizeof *k->choices);
  for (int i = 0; i < n_names; i++) {
    kn_bytes b = {0};
    kn_bytes_printf(&b, "%s\", \"arguments\": ", NAMES[i]);
    k->choices[k->n_choices++] = b.s;
  }
}

/* Same JSON text after a parse and a compact print (duplicate keys are kept in order, which cJSON_Compare misses). */
static bool same_json(const char *a, const char *b) {
  cJSON *x = cJSON_Parse(a ? a : ""), *y = cJSON_Parse(b ? b : "");
  char *px = x ? cJSON_PrintUnformatted(x) : NULL, *py = y ? cJSON_PrintUnformatted(y) : NULL;
  bool same = px && py && !strcmp(px, py);
  free(px), free(py), cJSON_Delete(x), cJSON_Delete(y);
  return same;
}

static bool feed_all(kc_state *k, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!kc_push(k, (unsigned char)s[i])) return false;
  return true;
}

/* The JSON object inside a finished output: between the choice and the tail. */
static bool json_part_is_object(const kc_spec *sp, int choice, const char *s, size_t n) {
  size_t a = sp->n_choices ? strlen(sp->choices[choice]) : 0, t = sp->tail ? strlen(sp->tail) : 0;
  if (n < a + t) return false;
  char *j = strndup(s + a, n - a - t);
  cJSON *v = cJSON_Parse(j);
  bool ok = v && cJSON_IsObject(v);
  cJSON_Delete(v);
  free(j);
  return ok;
}

static void test_acceptor(void) {
  for (int iter = 0; iter < 400; iter++) {
    int n_names = (int)(rnd(2) ? 1 + rnd(6) : 0);
    bool tail = rnd(2);
    kc_spec sp;
    make_spec(&sp, n_names, tail);
    int choice = n_names ? (int)rnd((uint32_t)n_names) : 0;
    kn_bytes out = {0};
    if (n_names) kn_bytes_puts(&out, sp.choices[choice]);
    gen_object(&out, 0, false);
    if (tail) kn_bytes_puts(&out, sp.tail);

    kc_state k;
    kc_init(&k, &sp);
    CHECK(feed_all(&k, out.s, out.len) && k.phase == KC_DONE, "valid output rejected: %s", out.s);

    /* cut at a random point, complete with the closure: a finished output whose JSON parses as an object */
    size_t cut = rnd((uint32_t)out.len + 1);
    kc_init(&k, &sp);
    feed_all(&k, out.s, cut);
    kn_bytes cl = {0};
    kc_closure(&k, &cl);
    kn_bytes whole = {0};
    kn_bytes_put(&whole, out.s, cut);
    kn_bytes_put(&whole, cl.s ? cl.s : "", cl.len);
    kc_state k2;
    kc_init(&k2, &sp);
    bool fin = feed_all(&k2, whole.s ? whole.s : "", whole.len) && k2.phase == KC_DONE;
    CHECK(fin && json_part_is_object(&sp, k2.cand, whole.s, whole.len), "closure of '%.*s' gave '%s'", (int)cut,
          out.s, cl.s ? cl.s : "");

    /* the forced literal, where only one choice is still possible, is the rest of that choice */
    if (n_names) {
      size_t at = rnd((uint32_t)strlen(sp.choices[choice]));
      kc_init(&k, &sp);
      feed_all(&k, out.s, at);
      const char *lit;
      size_t nl = kc_forced(&k, &lit);
      /* reference: the longest common next bytes of the live choices */
      size_t want = strlen(sp.choices[choice]) - at;
      for (int i = 0; i < n_names; i++) {
        if (strncmp(sp.choices[i], sp.choices[choice], at) || strlen(sp.choices[i]) < at) continue;
        size_t m = 0;
        while (m < want && sp.choices[i][at + m] == sp.choices[choice][at + m]) m++;
        want = m;
      }
      CHECK(nl == want && (nl == 0 || !memcmp(lit, sp.choices[choice] + at, nl)), "forced %zu bytes at %zu of %s, want %zu",
            nl, at, sp.choices[choice], want);
      /* a byte no live choice has there is rejected */
      CHECK(!kc_accepts(&k, "#", 1), "'#' accepted inside a choice");
    }
    if (tail) { /* a wrong tail is rejected */
      kc_init(&k, &sp);
      size_t n = out.len;
      out.s[n - 2] ^= 0x20; /* '_' of </tool_call> changes */
      CHECK(!kc_accepts(&k, out.s, n), "a wrong tail was accepted");
    }
    kn_bytes_free(&out), kn_bytes_free(&cl), kn_bytes_free(&whole);
    kc_spec_free(&sp);
  }
}

/* A list of calls (Mistral's [{…}, {…}] with parallel_tool_calls): after a call's object the tail ends the list or the
 * separator opens another call of one of the tools; outputs of 1-4 random calls are accepted whole, a cut one is
 * completed into a list that parses, the tail and separator share their first byte only, and without a separator
 * (parallel calls off) the second call is refused. */
static void test_call_list(void) {
  const char *before = " [{\"name\": \"";
  for (int iter = 0; iter < 200; iter++) {
    int n_names = 1 + (int)rnd(6);
    kc_spec sp;
    make_spec(&sp, n_names, false);
    for (int i = 0; i < n_names; i++) {
      kn_bytes b = {0};
      kn_bytes_printf(&b, "%s%s", before, sp.choices[i]);
      free(sp.choices[i]), sp.choices[i] = b.s;
    }
    sp.tail = strdup("}]"), sp.sep = strdup("}, {\"name\": \""), sp.skip = strlen(before);
    kn_bytes out = {0};
    int calls = 1 + (int)rnd(4);
    size_t first = 0; /* where the first call's object ends */
    for (int c = 0; c < calls; c++) {
      const char *ch = sp.choices[rnd((uint32_t)n_names)];
      kn_bytes_puts(&out, c ? ch + sp.skip : ch);
      gen_object(&out, 0, false);
      if (c == 0) first = out.len;
      kn_bytes_puts(&out, c + 1 < calls ? sp.sep : sp.tail);
    }
    kn_bytes_puts(&out, ""); /* a string even for an empty output */
    kc_state k;
    kc_init(&k, &sp);
    CHECK(feed_all(&k, out.s, out.len) && k.phase == KC_DONE, "a list of %d calls rejected: %s", calls, out.s);
    /* a cut output closes into a list of valid calls */
    size_t cut = rnd((uint32_t)out.len + 1);
    kc_init(&k, &sp);
    feed_all(&k, out.s, cut);
    kn_bytes cl = {0}, whole = {0};
    kc_closure(&k, &cl);
    kn_bytes_puts(&whole, "");
    kn_bytes_put(&whole, out.s, cut), kn_bytes_put(&whole, cl.s ? cl.s : "", cl.len);
    kc_state k2;
    kc_init(&k2, &sp);
    cJSON *list = cJSON_Parse(whole.s + 1);
    CHECK(feed_all(&k2, whole.s, whole.len) && k2.phase == KC_DONE && cJSON_IsArray(list) &&
              cJSON_GetArraySize(list) >= 1,
          "closure of '%.*s' gave '%s'", (int)cut, out.s, cl.s ? cl.s : "");
    cJSON_Delete(list);
    /* after the first object: "}" is forced (tail and separator share it), then either may follow */
    kc_init(&k, &sp);
    feed_all(&k, out.s, first);
    const char *lit;
    CHECK(k.phase == KC_TAIL && kc_forced(&k, &lit) == 1 && *lit == '}', "forced after a call: %zu", kc_forced(&k, &lit));
    kc_push(&k, '}');
    CHECK(kc_forced(&k, &lit) == 0 && kc_accepts(&k, "]", 1) && kc_accepts(&k, ", {\"name\": \"", 11) &&
              !kc_accepts(&k, ",]", 2),
          "tail or separator after '}'");
    free(sp.sep), sp.sep = NULL; /* parallel calls off: one call per list */
    kc_init(&k, &sp);
    CHECK(calls == 1 ? feed_all(&k, out.s, out.len) : !kc_accepts(&k, out.s, out.len), "without a separator: %s", out.s);
    kn_bytes_free(&out), kn_bytes_free(&cl), kn_bytes_free(&whole);
    kc_spec_free(&sp);
  }
}

/* Structural damage to a JSON object: the acceptor agrees with cJSON (plain strings and integers only, where the
 * two parsers have the same rules). */
static void test_acceptor_vs_cjson(void) {
  static const char ins[] = "{}[]\":, 1a";
  kc_spec sp = {.json = true};
  for (int iter = 0; iter < 1500; iter++) {
    kn_bytes b = {0};
    gen_object(&b, 0, true);
    size_t at = rnd((uint32_t)b.len);
    char *m = malloc(b.len + 2);
    if (rnd(2)) { /* delete a byte */
      memcpy(m, b.s, at), memcpy(m + at, b.s + at + 1, b.len - at - 1), m[b.len - 1] = 0;
    } else { /* insert one */
      memcpy(m, b.s, at), m[at] = ins[rnd(sizeof ins - 1)], memcpy(m + at + 1, b.s + at, b.len - at), m[b.len + 1] = 0;
    }
    kc_state k;
    kc_init(&k, &sp);
    bool ours = feed_all(&k, m, strlen(m)) && k.phase == KC_DONE;
    cJSON *v = cJSON_ParseWithOpts(m, NULL, 1);
    bool ref = v && cJSON_IsObject(v);
    cJSON_Delete(v);
    CHECK(ours == ref, "acceptor says %d, cJSON says %d for %s", ours, ref, m);
    free(m), kn_bytes_free(&b);
  }
}

/* ---- request validation -------------------------------------------------------------------------------------- */

static void test_requests(void) {
  static const struct {
    req_kind kind;
    const char *body;
    int status;
    const char *param;
  } cases[] = {
      {REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"store\":false,\"x\":{}}", 0, NULL},
      {REQ_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]", 400, NULL},
      {REQ_CHAT, "[1,2]", 400, NULL},
      {REQ_CHAT, "", 400, NULL},
      {REQ_CHAT, "{\"model\":\"m\"}", 400, "messages"},
      {REQ_CHAT, "{\"messages\":\"hi\"}", 400, "messages"},
      {REQ_CHAT, "{\"messages\":[]}", 400, "messages"},
      {REQ_CHAT, "{\"messages\":[{}],\"model\":5}", 400, "model"},
      {REQ_CHAT, "{\"messages\":[{}],\"temperature\":\"hot\"}", 400, "temperature"},
      {REQ_CHAT, "{\"messages\":[{}],\"temperature\":-1}", 400, "temperature"},
      {REQ_CHAT, "{\"messages\":[{}],\"top_p\":2}", 400, "top_p"},
      {REQ_CHAT, "{\"messages\":[{}],\"top_k\":1.5}", 400, "top_k"},
      {REQ_CHAT, "{\"messages\":[{}],\"max_tokens\":\"10\"}", 400, "max_tokens"},
      {REQ_CHAT, "{\"messages\":[{}],\"max_completion_tokens\":-3}", 400, "max_completion_tokens"},
      {REQ_CHAT, "{\"messages\":[{}],\"seed\":\"x\"}", 400, "seed"},
      {REQ_CHAT, "{\"messages\":[{}],\"stop\":5}", 400, "stop"},
      {REQ_CHAT, "{\"messages\":[{}],\"stop\":[\"a\",3]}", 400, "stop"},
      {REQ_CHAT, "{\"messages\":[{}],\"stream\":\"yes\"}", 400, "stream"},
      {REQ_CHAT, "{\"messages\":[{}],\"stream_options\":{\"include_usage\":1}}", 400, "include_usage"},
      {REQ_CHAT, "{\"messages\":[{}],\"n\":2}", 400, "n"},
      {REQ_CHAT, "{\"messages\":[{}],\"tools\":{}}", 400, "tools"},
      {REQ_CHAT, "{\"messages\":[{}],\"tools\":[{\"type\":\"function\"}]}", 400, "tools"},
      {REQ_CHAT, "{\"messages\":[{}],\"tool_choice\":\"required\"}", 400, "tool_choice"},
      {REQ_CHAT, "{\"messages\":[{}],\"tool_choice\":\"sometimes\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}", 400, "tool_choice"},
      {REQ_CHAT, "{\"messages\":[{}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}},\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}", 400, "tool_choice"},
      {REQ_CHAT, "{\"messages\":[{}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}},\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}", 0, NULL},
      {REQ_CHAT, "{\"messages\":[{}],\"parallel_tool_calls\":0}", 400, "parallel_tool_calls"},
      {REQ_CHAT, "{\"messages\":[{}],\"response_format\":{\"type\":\"yaml\"}}", 400, "response_format"},
      {REQ_CHAT, "{\"messages\":[{}],\"response_format\":{\"type\":\"json_object\"},\"temperature\":null}", 0, NULL},
      {REQ_COMPLETION, "{\"prompt\":\"hi\",\"max_tokens\":3,\"stop\":\"\\n\"}", 0, NULL},
      {REQ_COMPLETION, "{\"prompt\":[1,2,3]}", 0, NULL},
      {REQ_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", 400, "prompt"},
      {REQ_COMPLETION, "{\"prompt\":[1,-2]}", 400, "prompt"},
      {REQ_COMPLETION, "{\"prompt\":{}}", 400, "prompt"},
      {REQ_COMPLETION, "{}", 400, "prompt"},
  };
  kn_sample_params d = kn_sample_defaults();
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    oai_req q;
    oai_error e = {0};
    int rc = oai_parse(cases[i].body, strlen(cases[i].body), cases[i].kind, &d, 0, &q, &e);
    if (cases[i].status == 0) {
      CHECK(rc == 0, "case %zu rejected: %s", i, e.message);
    } else {
      CHECK(rc < 0 && e.status == cases[i].status, "case %zu: rc %d status %d (%s)", i, rc, e.status, e.message);
      if (cases[i].param)
        CHECK(e.param && !strcmp(e.param, cases[i].param), "case %zu: param %s, expected %s", i, e.param ? e.param : "null",
              cases[i].param);
      char *js = oai_error_json(&e);
      cJSON *v = cJSON_Parse(js), *err = cJSON_GetObjectItem(v, "error");
      CHECK(cJSON_IsString(cJSON_GetObjectItem(err, "message")) && cJSON_IsString(cJSON_GetObjectItem(err, "type")) &&
                cJSON_GetObjectItem(err, "param") && cJSON_GetObjectItem(err, "code"),
            "case %zu: error body %s", i, js);
      cJSON_Delete(v);
      free(js);
    }
    oai_req_free(&q);
  }
  /* values are taken over */
  const char *b = "{\"messages\":[{}],\"temperature\":0.25,\"top_k\":7,\"max_tokens\":9,\"seed\":42,\"stop\":[\"x\",\"yy\"],"
                  "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"frequency_penalty\":0.5}";
  oai_req q;
  oai_error e;
  CHECK(oai_parse(b, strlen(b), REQ_CHAT, &d, 0, &q, &e) == 0 && q.sp.temperature == 0.25f && q.sp.top_k == 7 &&
            q.max_tokens == 9 && q.sp.seed == 42 && q.n_stops == 2 && !strcmp(q.stops[1], "yy") && q.stream &&
            q.include_usage && q.sp.frequency_penalty == 0.5f,
        "parameters not taken over");
  oai_req_free(&q);
}

/* ---- output: SSE chunks and responses ------------------------------------------------------------------------ */

/* Feed text to o in random pieces. */
static void feed_random(oai_out *o, const char *text, kn_bytes *sse) {
  size_t n = strlen(text), at = 0;
  while (at < n) {
    size_t k = 1 + rnd(6);
    if (k > n - at) k = n - at;
    oai_out_feed(o, text + at, k, sse);
    at += k;
  }
}

typedef struct {
  kn_bytes content, args, name, id;
  int n_role, n_names, n_ids, n_chunks, bad_index;
  const char *finish;
  bool usage, done, framing_ok;
  char finish_buf[32];
  int cached;
} parsed_stream;

static void parse_sse(const char *s, parsed_stream *p) {
  memset(p, 0, sizeof *p);
  p->framing_ok = true;
  p->cached = -1;
  const char *line = s;
  while (*line) {
    const char *end = strstr(line, "\n\n");
    if (!end || strncmp(line, "data: ", 6)) {
      p->framing_ok = false;
      return;
    }
    char *payload = strndup(line + 6, (size_t)(end - line - 6));
    if (strchr(payload, '\n')) p->framing_ok = false;
    if (!strcmp(payload, "[DONE]")) {
      p->done = true;
    } else {
      cJSON *c = cJSON_Parse(payload);
      p->n_chunks++;
      if (!c || strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "object")), "chat.completion.chunk")) p->framing_ok = false;
      cJSON *u = cJSON_GetObjectItem(c, "usage");
      if (u) p->usage = true, p->cached = cJSON_GetObjectItem(cJSON_GetObjectItem(u, "prompt_tokens_details"), "cached_tokens")->valueint;
      cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0);
      cJSON *d = cJSON_GetObjectItem(ch, "delta"), *f = cJSON_GetObjectItem(ch, "finish_reason");
      if (cJSON_IsString(f)) snprintf(p->finish_buf, sizeof p->finish_buf, "%s", f->valuestring), p->finish = p->finish_buf;
      if (cJSON_GetObjectItem(d, "role")) p->n_role++;
      const char *txt = cJSON_GetStringValue(cJSON_GetObjectItem(d, "content"));
      if (txt) kn_bytes_puts(&p->content, txt);
      cJSON *tc = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "tool_calls"), 0);
      if (tc) {
        if (!cJSON_IsNumber(cJSON_GetObjectItem(tc, "index"))) p->bad_index++;
        cJSON *fn = cJSON_GetObjectItem(tc, "function");
        if (cJSON_GetObjectItem(tc, "id")) p->n_ids++, kn_bytes_puts(&p->id, cJSON_GetObjectItem(tc, "id")->valuestring);
        if (cJSON_GetObjectItem(fn, "name")) p->n_names++, kn_bytes_puts(&p->name, cJSON_GetObjectItem(fn, "name")->valuestring);
        const char *a = cJSON_GetStringValue(cJSON_GetObjectItem(fn, "arguments"));
        if (a) kn_bytes_puts(&p->args, a);
      }
      cJSON_Delete(c);
    }
    free(payload);
    line = end + 2;
  }
}

static void test_output(void) {
  static srv S;
  char err[256];
  memset(&S, 0, sizeof S);
  snprintf(S.model_id, sizeof S.model_id, "tiny");
  CHECK(kn_chat_template_named("qwen2.5", &S.tmpl, err, sizeof err) == 0, "template: %s", err);
  const char *tools = "{\"messages\":[{}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}],"
                      "\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
  kn_sample_params d = kn_sample_defaults();
  for (int iter = 0; iter < 60; iter++) {
    oai_req q;
    oai_error e;
    CHECK(oai_parse(tools, strlen(tools), REQ_CHAT, &d, 0, &q, &e) == 0, "%s", e.message);
    q.stream = iter % 2 == 0;
    srv_job *j = job_new();
    j->forced_is_call = true;
    j->n_prompt = 40 + iter, j->n_cached = 30, j->n_gen = 12, j->done = true, j->finish = FIN_TOOL;
    kn_bytes args = {0}, text = {0};
    gen_object(&args, 0, false);
    const char *prefill = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ";
    kn_bytes_printf(&text, "%s}\n</tool_call>", args.s);
    oai_out o;
    CHECK(oai_out_init(&o, &S, &q, j, prefill) == 0, "init");
    kn_bytes sse = {0};
    if (q.stream) oai_out_start(&o, &sse);
    feed_random(&o, text.s, &sse);
    oai_out_finish(&o, j, &sse);
    if (q.stream) {
      parsed_stream p;
      parse_sse(sse.s, &p);
      CHECK(p.framing_ok && p.done && p.usage && p.cached == 30, "stream framing/usage: %s", sse.s);
      CHECK(p.n_role == 1 && p.n_names == 1 && p.n_ids == 1 && p.bad_index == 0, "role %d names %d ids %d", p.n_role,
            p.n_names, p.n_ids);
      CHECK(p.name.s && !strcmp(p.name.s, "get_weather") && p.finish && !strcmp(p.finish, "tool_calls"), "call name/finish");
      CHECK(same_json(p.args.s, args.s), "streamed arguments '%s' != '%s'", p.args.s ? p.args.s : "", args.s);
      kn_bytes_free(&p.content), kn_bytes_free(&p.args), kn_bytes_free(&p.name), kn_bytes_free(&p.id);
    } else {
      char *resp = oai_out_response(&o, j);
      cJSON *r = cJSON_Parse(resp), *msg = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "choices"), 0), "message");
      cJSON *tc = cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "tool_calls"), 0);
      const char *a = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(tc, "function"), "arguments"));
      CHECK(cJSON_IsNull(cJSON_GetObjectItem(msg, "content")) && same_json(a, args.s), "response %s", resp);
      CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "object")), "chat.completion") &&
                cJSON_GetObjectItem(cJSON_GetObjectItem(r, "usage"), "total_tokens")->valueint == 52 + iter,
            "response fields %s", resp);
      cJSON_Delete(r);
      free(resp);
    }
    oai_out_free(&o);
    kn_bytes_free(&sse), kn_bytes_free(&args), kn_bytes_free(&text);
    job_unref(j);
    oai_req_free(&q);
  }
  /* plain text in random pieces comes back whole, with stop as the finish reason */
  const char *body = "{\"messages\":[{}],\"stream\":true}";
  const char *words[] = {"Hello", " world", "<b>", "</b>", " \xc3\xbc", "\n", "<tool", "<", "{\"a\": 1}", " x"};
  for (int iter = 0; iter < 60; iter++) {
    oai_req q;
    oai_error e;
    oai_parse(body, strlen(body), REQ_CHAT, &d, 0, &q, &e);
    srv_job *j = job_new();
    j->done = true, j->finish = FIN_STOP;
    kn_bytes text = {0};
    kn_bytes_puts(&text, "Hi");
    for (int k = 0, n = (int)rnd(12); k < n; k++) kn_bytes_puts(&text, words[rnd(sizeof words / sizeof *words)]);
    oai_out o;
    oai_out_init(&o, &S, &q, j, NULL);
    kn_bytes sse = {0};
    oai_out_start(&o, &sse);
    feed_random(&o, text.s, &sse);
    oai_out_finish(&o, j, &sse);
    parsed_stream p;
    parse_sse(sse.s, &p);
    CHECK(p.framing_ok && p.done && !p.usage && p.finish && !strcmp(p.finish, "stop"), "text stream %s", sse.s);
    CHECK(p.content.s && !strcmp(p.content.s, text.s), "content '%s' != '%s'", p.content.s ? p.content.s : "", text.s);
    kn_bytes_free(&p.content), kn_bytes_free(&p.args), kn_bytes_free(&p.name), kn_bytes_free(&p.id);
    oai_out_free(&o);
    kn_bytes_free(&sse), kn_bytes_free(&text);
    job_unref(j);
    oai_req_free(&q);
  }
}

/* A call the model leaves unfinished (no constraint was active): no tool_calls, its raw text is content. */
static void test_malformed_call(void) {
  static srv S;
  char err[256];
  memset(&S, 0, sizeof S);
  snprintf(S.model_id, sizeof S.model_id, "tiny");
  kn_chat_template_named("qwen2.5", &S.tmpl, err, sizeof err);
  const char *body = "{\"messages\":[{}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}]}";
  const char *tails[] = {"{\"city\": ", "{\"arguments\": {}}\n</tool_call>", "not json at all",
                         "{\"name\": \"get_weather\", \"arguments\": [1]}"};
  kn_sample_params d = kn_sample_defaults();
  for (int iter = 0; iter < 40; iter++) {
    oai_req q;
    oai_error e;
    oai_parse(body, strlen(body), REQ_CHAT, &d, 0, &q, &e);
    q.stream = (iter / 4) % 2;
    srv_job *j = job_new();
    j->done = true, j->finish = FIN_STOP;
    kn_bytes text = {0};
    kn_bytes_printf(&text, "Sure.%s<tool_call>\n%s", iter % 4 < 2 ? " " : "\n", tails[iter % 4]);
    oai_out o;
    oai_out_init(&o, &S, &q, j, NULL);
    kn_bytes sse = {0};
    if (q.stream) oai_out_start(&o, &sse);
    feed_random(&o, text.s, &sse);
    oai_out_finish(&o, j, &sse);
    if (q.stream) {
      parsed_stream p;
      parse_sse(sse.s, &p);
      CHECK(p.framing_ok && p.n_ids == 0 && p.finish && !strcmp(p.finish, "stop"), "malformed call streamed: %s", sse.s);
      CHECK(p.content.s && !strcmp(p.content.s, text.s), "content '%s' != '%s'", p.content.s ? p.content.s : "", text.s);
      kn_bytes_free(&p.content), kn_bytes_free(&p.args), kn_bytes_free(&p.name), kn_bytes_free(&p.id);
    } else {
      char *resp = oai_out_response(&o, j);
      cJSON *r = cJSON_Parse(resp), *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "choices"), 0);
      cJSON *msg = cJSON_GetObjectItem(ch, "message");
      const char *content = cJSON_GetStringValue(cJSON_GetObjectItem(msg, "content"));
      CHECK(!cJSON_GetObjectItem(msg, "tool_calls") && content && !strcmp(content, text.s) &&
                !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ch, "finish_reason")), "stop"),
            "malformed call: %s", resp);
      cJSON_Delete(r);
      free(resp);
    }
    oai_out_free(&o);
    kn_bytes_free(&sse), kn_bytes_free(&text);
    job_unref(j);
    oai_req_free(&q);
  }
}

int main(void) {
  test_acceptor();
  test_call_list();
  test_acceptor_vs_cjson();
  test_requests();
  test_output();
  test_malformed_call();
  printf("%d passed, %d failed\n", n_pass, n_fail);
  return n_fail ? 1 : 0;
}
