// tests/serve/client.mjs: checks a running `kiln serve` with the official OpenAI SDK (openai@6) and raw HTTP.
// Env: BASE (http://127.0.0.1:PORT), KEY (the server's --api-key), MODEL (its model id), N_CTX, MAX_BODY.
// The model has random weights: its text is gibberish, so checks are about the protocol, forced tool calls (which
// must be valid whatever the weights), usage accounting, stop sequences, errors, concurrency and robustness.
import OpenAI from "openai";
import assert from "node:assert/strict";
import http from "node:http";

const BASE = process.env.BASE, KEY = process.env.KEY, MODEL = process.env.MODEL;
const N_CTX = +process.env.N_CTX, MAX_BODY = +process.env.MAX_BODY;
const only = process.env.ONLY ? new RegExp(process.env.ONLY) : null;
// KILN_SERVE_TIME_SCALE multiplies the bounds of waits (a request, the slots going idle): a slow device's runs raise it
const SCALE = Number(process.env.KILN_SERVE_TIME_SCALE ?? 1);
const c = new OpenAI({ baseURL: BASE + "/v1", apiKey: KEY, maxRetries: 0, timeout: 120000 * SCALE });
const url = new URL(BASE);

const tools = [
  { type: "function", function: { name: "get_weather", description: "Weather of a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } },
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { tz: { type: "string" } } } } },
  { type: "function", function: { name: "search", strict: false, parameters: { type: "object", properties: { q: { type: "string" } } } } },
];
const names = tools.map((t) => t.function.name);
const user = (text) => [{ role: "user", content: text }];

let passed = 0, failed = 0;
async function t(name, fn) {
  if (only && !only.test(name)) return;
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e.message}`);
  }
}

// A raw request: resolves {status, headers, body}. opts.abortAfterFirstData destroys the socket after the first
// SSE data arrives (a client that leaves mid-stream).
function raw(method, path, body, opts = {}) {
  return new Promise((resolve, reject) => {
    const headers = { ...(opts.headers ?? { Authorization: `Bearer ${KEY}` }) };
    if (body !== undefined && !headers["Content-Type"]) headers["Content-Type"] = "application/json";
    const req = http.request({ host: url.hostname, port: url.port, method, path, headers, agent: opts.agent }, (res) => {
      const chunks = [];
      res.on("data", (d) => {
        chunks.push(d);
        if (opts.abortAfterFirstData && Buffer.concat(chunks).includes("data: ")) {
          req.destroy();
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString(), aborted: true });
        }
      });
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on("error", (e) => (opts.abortAfterFirstData ? null : reject(e)));
    });
    req.on("error", (e) => (opts.abortAfterFirstData ? resolve({ status: 0, aborted: true }) : reject(e)));
    if (body !== undefined) req.write(typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    req.end();
  });
}

function errorShape(r, status, re) {
  assert.equal(r.status, status, `status ${r.status} body ${r.body}`);
  const e = JSON.parse(r.body).error;
  assert.equal(typeof e.message, "string");
  assert.equal(typeof e.type, "string");
  assert.ok("param" in e && "code" in e, r.body);
  if (re) assert.match(e.message, re);
  return e;
}

function checkArgs(call, allowed = names) {
  assert.equal(call.type, "function");
  assert.ok(allowed.includes(call.function.name), `unexpected tool ${call.function.name}`);
  assert.equal(typeof call.function.arguments, "string");
  const args = JSON.parse(call.function.arguments);
  assert.ok(args && typeof args === "object" && !Array.isArray(args), call.function.arguments);
  assert.ok(call.id && call.id.length <= 40);
}

// ---- endpoints --------------------------------------------------------------------------------------------------

await t("models list", async () => {
  const list = await c.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].id, MODEL);
  assert.equal(list.data[0].object, "model");
  const one = await c.models.retrieve(MODEL);
  assert.equal(one.id, MODEL);
});

await t("health and props", async () => {
  const h = await raw("GET", "/health", undefined, { headers: {} }); // no key needed
  assert.equal(h.status, 200);
  assert.equal(JSON.parse(h.body).status, "ok");
  const p = JSON.parse((await raw("GET", "/props")).body);
  assert.equal(p.default_generation_settings.n_ctx, N_CTX);
  assert.equal(p.chat_template_caps.supports_tool_calls, true);
});

await t("chat, not streamed", async () => {
  const r = await c.chat.completions.create({ model: MODEL, max_tokens: 12, store: false, metadata: { x: "y" },
    messages: [{ role: "developer", content: "Be brief." }, { role: "user", content: [{ type: "text", text: "Say hi" }] }] });
  assert.equal(r.object, "chat.completion");
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL);
  assert.equal(typeof r.created, "number");
  const ch = r.choices[0];
  assert.equal(ch.message.role, "assistant");
  assert.equal(typeof ch.message.content, "string");
  assert.ok(["stop", "length"].includes(ch.finish_reason));
  assert.ok(r.usage.prompt_tokens > 5 && r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  if (ch.finish_reason === "length") assert.equal(r.usage.completion_tokens, 12);
});

await t("chat, streamed with usage", async () => {
  let roles = 0, text = "", finish = null, usage = null, ids = new Set(), chunks = 0;
  const s = await c.chat.completions.create({ model: MODEL, max_tokens: 16, stream: true,
    stream_options: { include_usage: true }, messages: user("Tell a story") });
  for await (const k of s) {
    chunks++;
    ids.add(k.id);
    assert.equal(k.object, "chat.completion.chunk");
    if (k.usage) { usage = k.usage; assert.equal(k.choices.length, 0); }
    for (const ch of k.choices) {
      if (ch.delta.role) roles++;
      text += ch.delta.content ?? "";
      finish = ch.finish_reason ?? finish;
    }
  }
  assert.equal(roles, 1);
  assert.equal(ids.size, 1);
  assert.ok(["stop", "length"].includes(finish));
  assert.ok(usage && usage.completion_tokens >= 1 && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens);
  assert.ok(chunks >= 3);
});

await t("stream without include_usage has no usage chunk", async () => {
  const s = await c.chat.completions.create({ model: MODEL, max_tokens: 4, stream: true, messages: user("x") });
  for await (const k of s) assert.ok(!k.usage && k.choices.length === 1);
});

await t("completions, plain and streamed", async () => {
  const r = await c.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.equal(typeof r.choices[0].text, "string");
  assert.ok(r.usage.prompt_tokens >= 3 && r.usage.completion_tokens <= 10);
  let text = "", finish = null;
  for await (const k of await c.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 10,
    temperature: 0, stream: true })) {
    assert.equal(k.object, "text_completion");
    for (const ch of k.choices) { text += ch.text; finish = ch.finish_reason ?? finish; }
  }
  assert.ok(finish);
  assert.equal(text, r.choices[0].text, "greedy text differs between stream and not");
  const ids = await c.completions.create({ model: MODEL, prompt: [1, 2, 3, 4], max_tokens: 2 });
  assert.equal(ids.usage.prompt_tokens, 4);
});

// ---- tools ------------------------------------------------------------------------------------------------------

await t("tool_choice required, not streamed", async () => {
  for (let i = 0; i < 2; i++) {
    const r = await c.chat.completions.create({ model: MODEL, tools, tool_choice: "required", max_tokens: 32,
      temperature: 1, seed: 100 + i, messages: user("What's the weather in Paris?") });
    const ch = r.choices[0];
    assert.equal(ch.finish_reason, "tool_calls");
    assert.equal(ch.message.content, null);
    assert.ok(ch.message.tool_calls.length >= 1);
    ch.message.tool_calls.forEach((tc) => checkArgs(tc));
  }
});

await t("tool_choice named, not streamed (small max_tokens still closes the call)", async () => {
  for (const max_tokens of [3, 40]) {
    const r = await c.chat.completions.create({ model: MODEL, tools, max_tokens,
      tool_choice: { type: "function", function: { name: "get_time" } }, messages: user("time?") });
    assert.equal(r.choices[0].finish_reason, "tool_calls");
    checkArgs(r.choices[0].message.tool_calls[0], ["get_time"]);
  }
});

await t("tool_choice required, streamed (SDK stream helper)", async () => {
  const fin = await c.chat.completions.stream({ model: MODEL, tools, tool_choice: "required", max_tokens: 48,
    messages: user("Weather in Paris?") }).finalChatCompletion();
  const ch = fin.choices[0];
  assert.equal(ch.finish_reason, "tool_calls");
  checkArgs(ch.message.tool_calls[0]);
});

await t("tool_choice named, streamed: index on every delta, id/name once, arguments in pieces", async () => {
  let multi = 0;
  for (let seed = 1; seed <= 6 && !multi; seed++) {
    let ids = 0, nameDeltas = 0, argPieces = 0, args = "", finish = null, missingIndex = 0;
    for await (const k of await c.chat.completions.create({ model: MODEL, tools, max_tokens: 32, stream: true,
      temperature: 1.5, seed, tool_choice: { type: "function", function: { name: "get_weather" } },
      messages: user("What is the weather like in Paris today?") })) {
      for (const ch of k.choices) {
        finish = ch.finish_reason ?? finish;
        for (const tc of ch.delta.tool_calls ?? []) {
          if (typeof tc.index !== "number") missingIndex++;
          if (tc.id) ids++;
          if (tc.function?.name) nameDeltas++;
          if (tc.function?.arguments) { argPieces++; args += tc.function.arguments; }
        }
      }
    }
    assert.equal(missingIndex, 0);
    assert.equal(ids, 1);
    assert.equal(nameDeltas, 1);
    assert.equal(finish, "tool_calls");
    assert.equal(typeof JSON.parse(args), "object");
    if (argPieces >= 2) multi++;
  }
  assert.ok(multi, "the arguments never came in more than one piece");
});

// A call the model opens on its own (tool_choice auto), its opening token pushed up with logit_bias: the constraint
// that starts at the opening must make it a valid call. With parallel_tool_calls false exactly one call comes back
// (returned: the response); with parallel.atLeast, a second request (parallel calls allowed, parallel.opts added) must
// bring at least that many calls, each valid.
async function openedByModel(token, parallel) {
  const r = await c.chat.completions.create({ model: MODEL, tools, max_tokens: 60, parallel_tool_calls: false,
    logit_bias: { [token]: 100 }, messages: user("Weather?") });
  assert.equal(r.choices[0].finish_reason, "tool_calls", JSON.stringify(r.choices[0]));
  assert.equal(r.choices[0].message.tool_calls.length, 1);
  checkArgs(r.choices[0].message.tool_calls[0]);
  if (parallel) {
    const p = await c.chat.completions.create({ model: MODEL, tools, max_tokens: 90, logit_bias: { [token]: 100 },
      messages: user("Weather and time?"), ...parallel.opts });
    assert.ok(p.choices[0].message.tool_calls.length >= parallel.atLeast, JSON.stringify(p.choices[0]));
    p.choices[0].message.tool_calls.forEach((tc) => checkArgs(tc));
  }
  return r;
}

// Qwen's <tool_call> token.
const TOOL_CALL_TOKEN = 151657;
await t("auto tool calls opened by the model are constrained (parallel_tool_calls false: one call)", async () => {
  await openedByModel(TOOL_CALL_TOKEN);
});

// Llama 3 writes a call as the whole reply, a bare JSON object: '{' (token 90 of its vocabulary) pushed up opens one,
// and the constraint from there makes it {"name": <a tool>, "parameters": <valid arguments>}.
const BRACE_TOKEN = 90;
if (/llama3/.test(MODEL)) await t("llama 3: a call opened by the model is constrained (one call, then parallel ones)", async () => {
  await openedByModel(BRACE_TOKEN, { atLeast: 1 });
});

// Mistral opens a list of calls with its [TOOL_CALLS] control token (id 5, as in Mistral 7B v0.3's vocabulary):
// pushed up, it opens a call that the constraint makes [{"name": <a tool>, "arguments": <valid arguments>}].
const MISTRAL_TOOL_CALLS = 5;
if (/mistral/.test(MODEL) && !/v11/.test(MODEL)) await t("mistral: a [TOOL_CALLS] list opened by the model is constrained; 9-character ids round-trip", async () => {
  const r = await openedByModel(MISTRAL_TOOL_CALLS, { atLeast: 2, opts: { temperature: 0.7, seed: 3 } });
  const call = r.choices[0].message.tool_calls[0];
  assert.match(call.id, /^[A-Za-z0-9]{9}$/);
  // the call and its result go back into the conversation (Mistral's template takes 9-character ids only)
  const history = [{ role: "system", content: "Use tools." }, ...user("Weather?"),
    { role: "assistant", content: null, tool_calls: r.choices[0].message.tool_calls },
    { role: "tool", tool_call_id: call.id, content: "21 C" }];
  const r2 = await c.chat.completions.create({ model: MODEL, tools, messages: history, max_tokens: 4 });
  assert.equal(r2.choices[0].message.role, "assistant");
  assert.ok(r2.usage.prompt_tokens > 20);
  const bad = await raw("POST", "/v1/chat/completions", { model: MODEL, max_tokens: 2, tools, messages: [...user("x"),
    { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_time",
      arguments: "{}" } }] }] });
  errorShape(bad, 400, /length 9/);
});

// Mistral v11 writes each call as [TOOL_CALLS]name[ARGS]{…} (its template has no call ids): the same token opens one;
// several calls in one reply are each constrained, and a call with its result goes back into the conversation.
if (/mistral-v11/.test(MODEL)) await t("mistral v11: [TOOL_CALLS]name[ARGS] calls opened by the model are constrained, several in a reply; they round-trip", async () => {
  const r = await openedByModel(MISTRAL_TOOL_CALLS, { atLeast: 2, opts: { temperature: 0.7, seed: 3 } });
  const call = r.choices[0].message.tool_calls[0];
  const history = [{ role: "system", content: "Use tools." }, ...user("Weather?"),
    { role: "assistant", content: null, tool_calls: [{ ...call, id: "call_any_length" }] },
    { role: "tool", tool_call_id: "call_any_length", content: "21 C" }];
  const r2 = await c.chat.completions.create({ model: MODEL, tools, messages: history, max_tokens: 4 });
  assert.equal(r2.choices[0].message.role, "assistant");
  assert.ok(r2.usage.prompt_tokens > 20);
});

await t("auto tool calls, parallel, streamed: several calls, each valid, own index and id", async () => {
  let most = 0;
  for (let seed = 1; seed <= 4 && most < 2; seed++) {
    const fin = await c.chat.completions.stream({ model: MODEL, tools, max_tokens: 70, temperature: 0.7, seed,
      logit_bias: { [TOOL_CALL_TOKEN]: 100 }, messages: user("Weather and time?") }).finalChatCompletion();
    const calls = fin.choices[0].message.tool_calls;
    assert.ok(calls.length >= 1);
    calls.forEach((tc) => checkArgs(tc));
    assert.equal(new Set(calls.map((tc) => tc.id)).size, calls.length);
    most = Math.max(most, calls.length);
  }
  assert.ok(most >= 2, `never more than ${most} call`);
});

// A forced call near the end of the context: one token can lengthen the call's shortest ending by much more than the
// one position it takes ('{' of an item with required keys), so the ending must be forced before it no longer fits.
await t("tool_choice required at the end of the context still closes the call", async () => {
  const deep = [{ type: "function", function: { name: "plan", parameters: { type: "object", required: ["steps"],
    properties: { steps: { type: "array", items: { type: "object", required: ["first_field", "second_field", "third_field"],
      properties: { first_field: { type: "string" }, second_field: { type: "string" }, third_field: { type: "integer" } } } } } } } }];
  const probe = await c.chat.completions.create({ model: MODEL, tools: deep, tool_choice: "required", max_tokens: 1,
    messages: user("x") });
  const text = "x" + " go".repeat(Math.max(0, N_CTX - probe.usage.prompt_tokens - 40));
  for (let seed = 1; seed <= 6; seed++) {
    const r = await c.chat.completions.create({ model: MODEL, tools: deep, tool_choice: "required", temperature: 1.5, seed,
      messages: user(text) });
    assert.equal(r.choices[0].finish_reason, "tool_calls", `seed ${seed}: ${JSON.stringify(r.choices[0]).slice(0, 300)}`);
    checkArgs(r.choices[0].message.tool_calls[0], ["plan"]);
    assert.ok(r.usage.total_tokens <= N_CTX, JSON.stringify(r.usage));
  }
  // an ending longer in bytes than the positions left, shorter in tokens: still forced
  const keys = ["alpha_one", "beta_two", "gamma_three", "delta_four", "epsilon_five"];
  const wide = [{ type: "function", function: { name: "rec", parameters: { type: "object", required: keys,
    properties: Object.fromEntries(keys.map((k) => [k, { type: "string" }])) } } }];
  const probe2 = await c.chat.completions.create({ model: MODEL, tools: wide, tool_choice: "required", max_tokens: 1,
    messages: user("x") });
  const text2 = "x" + " go".repeat(Math.max(0, N_CTX - probe2.usage.prompt_tokens - 45));
  for (let seed = 1; seed <= 2; seed++) {
    const r = await c.chat.completions.create({ model: MODEL, tools: wide, tool_choice: "required", temperature: 1, seed,
      messages: user(text2) });
    assert.equal(r.choices[0].finish_reason, "tool_calls", `wide, seed ${seed}: ${JSON.stringify(r.choices[0]).slice(0, 300)}`);
    assert.deepEqual(Object.keys(JSON.parse(r.choices[0].message.tool_calls[0].function.arguments)).sort(), [...keys].sort());
  }
});

await t("tool result round trip", async () => {
  const history = [
    { role: "system", content: "You answer with tools." },
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function",
      function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } }] },
    { role: "tool", tool_call_id: "call_1", content: "{\"temp_c\": 21}" },
  ];
  const r = await c.chat.completions.create({ model: MODEL, tools, messages: history, max_tokens: 8 });
  assert.equal(r.choices[0].message.role, "assistant");
  const base = await c.chat.completions.create({ model: MODEL, tools, messages: history.slice(0, 2), max_tokens: 1 });
  assert.ok(r.usage.prompt_tokens > base.usage.prompt_tokens + 10, "tool call and result were not rendered");
  // arguments as an object, content as parts: accepted too
  history[2].tool_calls[0].function.arguments = { city: "Paris" };
  history[3].content = [{ type: "text", text: "21 C" }];
  const r2 = await c.chat.completions.create({ model: MODEL, tools, messages: history, max_tokens: 2 });
  assert.ok(r2.usage.prompt_tokens > base.usage.prompt_tokens);
});

await t("tool_choice none and response_format json_object", async () => {
  const r = await c.chat.completions.create({ model: MODEL, tools, tool_choice: "none", max_tokens: 6, messages: user("hi") });
  assert.equal(typeof r.choices[0].message.content, "string");
  for (const max_tokens of [5, 40]) {
    const j = await c.chat.completions.create({ model: MODEL, max_tokens, response_format: { type: "json_object" },
      messages: user("Give JSON") });
    const v = JSON.parse(j.choices[0].message.content);
    assert.ok(v && typeof v === "object" && !Array.isArray(v));
  }
});

// ---- usage, stop, prefix reuse ------------------------------------------------------------------------------------

await t("stop sequences", async () => {
  const req = { model: MODEL, temperature: 0, max_tokens: 40, messages: user("Count to twenty slowly") };
  await c.chat.completions.create({ ...req, max_tokens: 1 }); // same cached path for the two requests below
  const full = (await c.chat.completions.create(req)).choices[0].message.content;
  assert.ok(full.length >= 8, `too little text to cut: ${JSON.stringify(full)}`);
  const stop = full.slice(4, 7);
  const r = await c.chat.completions.create({ ...req, stop: [stop, "\u0001never"] });
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.equal(r.choices[0].message.content, full.slice(0, full.indexOf(stop)));
  let text = "";
  for await (const k of await c.chat.completions.create({ ...req, stop, stream: true }))
    for (const ch of k.choices) text += ch.delta.content ?? "";
  assert.equal(text, full.slice(0, full.indexOf(stop)));
});

await t("second turn evaluates only the new tokens (cached_tokens)", async () => {
  const msgs = [{ role: "system", content: "You are a terse assistant. ".repeat(8) }, ...user("First question, please answer.")];
  const r1 = await c.chat.completions.create({ model: MODEL, temperature: 0, max_tokens: 8, messages: msgs });
  const msgs2 = [...msgs, { role: "assistant", content: r1.choices[0].message.content }, ...user("And a second one?")];
  const r2 = await c.chat.completions.create({ model: MODEL, temperature: 0, max_tokens: 4, messages: msgs2 });
  const cached = r2.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached >= r1.usage.prompt_tokens, `cached ${cached} < first prompt ${r1.usage.prompt_tokens}`);
  assert.ok(cached < r2.usage.prompt_tokens);
  const r3 = await c.chat.completions.create({ model: MODEL, temperature: 0, max_tokens: 4, messages: msgs2 });
  assert.equal(r3.usage.prompt_tokens_details.cached_tokens, r3.usage.prompt_tokens - 1, "same prompt again");
});

// ---- errors -------------------------------------------------------------------------------------------------------

await t("errors: malformed JSON, missing messages, wrong types, unknown model, context, size, method, auth", async () => {
  const P = "/v1/chat/completions";
  errorShape(await raw("POST", P, "{\"messages\": [", {}), 400);
  errorShape(await raw("POST", P, { model: MODEL }), 400, /messages/);
  errorShape(await raw("POST", P, { messages: user("x"), temperature: "hot" }), 400, /temperature/);
  errorShape(await raw("POST", P, { messages: [{ role: "wizard", content: "x" }] }), 400, /role/);
  errorShape(await raw("POST", P, { messages: user("x"), tool_choice: "required" }), 400);
  const nf = errorShape(await raw("POST", P, { model: "gpt-17", messages: user("x") }), 404);
  assert.equal(nf.code, "model_not_found");
  const long = "hello world ".repeat(N_CTX);
  const cx = errorShape(await raw("POST", P, { messages: user(long) }), 400, /maximum context length is \d+ tokens/);
  assert.equal(cx.code, "context_length_exceeded");
  errorShape(await raw("POST", "/v1/completions", { prompt: long }), 400, /context length/);
  errorShape(await raw("POST", P, "x".repeat(MAX_BODY + 10)), 413);
  const m = errorShape(await raw("GET", P), 405);
  errorShape(await raw("PUT", "/v1/models"), 405);
  errorShape(await raw("GET", "/v1/nothing"), 404);
  errorShape(await raw("GET", "/v1/models", undefined, { headers: {} }), 401);
  errorShape(await raw("POST", P, { messages: user("x") }, { headers: { Authorization: "Bearer wrong" } }), 401);
  const o = await raw("OPTIONS", P, undefined, { headers: { Origin: "http://x", "Access-Control-Request-Method": "POST" } });
  assert.equal(o.status, 204);
  assert.equal(o.headers["access-control-allow-origin"], "*");
  // the SDK sees the same as its error classes
  try { await c.chat.completions.create({ model: MODEL, messages: "x" }); assert.fail("no error"); }
  catch (e) { assert.equal(e.status, 400); assert.equal(typeof e.error?.message, "string"); }
  try { await c.chat.completions.create({ model: "nope", messages: user("x") }); assert.fail("no error"); }
  catch (e) { assert.equal(e.status, 404); }
  void m;
});

// ---- load ---------------------------------------------------------------------------------------------------------

const SOAK_S = Number(process.env.KILN_SOAK_SECONDS ?? 60); /* the bar: 16 clients for 60 s */
await t(`16 concurrent streaming clients for ${SOAK_S} s`, async () => {
  const end = Date.now() + SOAK_S * 1000;
  let streams = 0;
  const worker = async (w) => {
    do {
      let finish = null, usage = null;
      for await (const k of await c.chat.completions.create({ model: MODEL, max_tokens: 6 + (w % 5), stream: true,
        stream_options: { include_usage: true }, messages: user(`client ${w} says hello ${streams}`) })) {
        if (k.usage) usage = k.usage;
        for (const ch of k.choices) finish = ch.finish_reason ?? finish;
      }
      assert.ok(finish && usage, `client ${w}: stream ended without finish/usage`);
      streams++;
    } while (Date.now() < end);
  };
  await Promise.all(Array.from({ length: 16 }, (_, w) => worker(w)));
  assert.ok(streams >= 16);
  console.log(`     ${streams} streams completed in ${SOAK_S} s, every one well-formed with finish_reason and usage`);
});

// Until /health says no slot runs and nothing is queued; the bound (60 s x KILN_SERVE_TIME_SCALE) is a backstop
async function waitIdle() {
  const end = Date.now() + 60000 * SCALE;
  for (;;) {
    const h = JSON.parse((await raw("GET", "/health")).body);
    if (h.slots_processing === 0 && h.requests_queued === 0) return h;
    if (Date.now() > end) assert.fail(`slots still busy after ${60 * SCALE} s: ${JSON.stringify(h)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

await t("100 disconnects mid-stream, then a request completes", async () => {
  const body = { model: MODEL, stream: true, max_tokens: 400, messages: user("Write a long essay") };
  for (let round = 0; round < 10; round++) {
    const rs = await Promise.all(Array.from({ length: 10 }, () => raw("POST", "/v1/chat/completions", body,
      { abortAfterFirstData: true })));
    rs.forEach((r) => assert.ok(r.aborted));
  }
  // non-streamed requests whose client closes run to their end (end of input may be a half-close: the client still
  // waits for its answer), then give their slots back
  const cut = Array.from({ length: 5 }, () => new Promise((resolve) => {
    const req = http.request({ host: url.hostname, port: url.port, method: "POST", path: "/v1/chat/completions",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" } });
    req.on("error", () => resolve());
    req.end(JSON.stringify({ ...body, stream: false, max_tokens: 40 }));
    setTimeout(() => { req.destroy(); resolve(); }, 300);
  }));
  await Promise.all(cut);
  await waitIdle(); // every cancelled generation gave its slot back
  const r = await c.chat.completions.create({ model: MODEL, max_tokens: 4, messages: user("still there?") });
  assert.ok(r.choices[0].finish_reason);
});

await t("1000 malformed requests get 4xx and the server stays up", async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const P = "/v1/chat/completions";
  const bad = [
    () => "", () => "{", () => "null", () => "[]", () => "{\"messages\": 1}", () => "{\"messages\": [1]}",
    () => "{\"messages\": [{\"role\": 5}]}", () => "{\"messages\": [{\"role\": \"user\", \"content\": 7}]}",
    () => "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\"}]}]}",
    () => "[".repeat(5000) + "]".repeat(5000), () => "{\"a\":" .repeat(3000),
    () => Buffer.from([0x7b, 0xff, 0xfe, 0x22, 0x80, 0x7d]), () => "{\"messages\": [], \"stream\": true}",
    () => JSON.stringify({ messages: user("x"), max_tokens: -1 }), () => JSON.stringify({ messages: user("x"), n: 3 }),
    () => JSON.stringify({ messages: user("x"), stop: [1] }), () => JSON.stringify({ messages: user("x"), seed: 1.5 }),
    () => JSON.stringify({ messages: user("x"), top_p: 7 }), () => "{\"messages\": \"\\ud800\"}",
    () => JSON.stringify({ messages: user("x"), tools: [{ type: "function", function: {} }] }),
    () => JSON.stringify({ messages: user("x"), response_format: "json" }),
    () => JSON.stringify({ prompt: "x" }), () => "\u0000\u0001\u0002",
    () => JSON.stringify({ messages: [{ role: "assistant", tool_calls: [{ function: { name: 3 } }] }] }),
  ];
  let n = 0, statuses = {};
  const run = async () => {
    while (n < 1000) {
      const i = n++;
      const r = await raw(i % 7 === 0 ? "GET" : "POST", i % 7 === 0 ? "/v1/chat/completions" : P,
        i % 7 === 0 ? undefined : bad[i % bad.length](), { agent });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      assert.ok(r.status >= 400 && r.status < 500, `request ${i} (${i % bad.length}): status ${r.status} ${r.body}`);
      JSON.parse(r.body);
    }
  };
  await Promise.all(Array.from({ length: 8 }, run));
  agent.destroy();
  console.log(`     statuses ${JSON.stringify(statuses)}`);
  assert.equal((await raw("GET", "/health")).status, 200);
  const r = await c.chat.completions.create({ model: MODEL, max_tokens: 2, messages: user("ok?") });
  assert.ok(r.choices[0].finish_reason);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
