// tests/serve/ollama.mjs: the Ollama API of a running `kiln serve`, through the official `ollama` npm client: model
// listing, chat (plain, streamed, tools, format), generate (templated, raw, streamed), options, errors.
// Env: BASE (http://127.0.0.1:PORT), MODEL (the server's model id), KEY (its --api-key, if any). The model has random weights: checks are about
// the protocol, the constraints (valid whatever the weights) and the accounting.
import { Ollama } from "ollama";
import Ajv from "ajv";
import assert from "node:assert/strict";

const BASE = process.env.BASE, MODEL = process.env.MODEL, KEY = process.env.KEY;
const ollama = new Ollama({ host: BASE, headers: KEY ? { Authorization: `Bearer ${KEY}` } : {} });
const ajv = new Ajv({ strict: false });
const user = (content) => [{ role: "user", content }];
const weather = { type: "function", function: { name: "get_weather", description: "Weather of a city",
  parameters: { type: "object", properties: { city: { type: "string", minLength: 1 },
    unit: { enum: ["celsius", "fahrenheit"] } }, required: ["city", "unit"], additionalProperties: false } } };

let passed = 0, failed = 0;
async function t(name, fn) {
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

function final(r, maxEval) {
  assert.equal(r.model, MODEL);
  assert.equal(r.done, true);
  assert.ok(["stop", "length"].includes(r.done_reason), r.done_reason);
  assert.ok(r.prompt_eval_count >= 1 && r.eval_count >= 1 && r.eval_count <= maxEval, JSON.stringify(r));
  for (const k of ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"])
    assert.ok(Number.isInteger(r[k]) && r[k] >= 0, `${k} = ${r[k]}`);
  assert.ok(!isNaN(Date.parse(r.created_at)), r.created_at);
}

await t("list, show, ps, version", async () => {
  const l = await ollama.list();
  assert.equal(l.models[0].name, MODEL);
  assert.equal(l.models[0].details.format, "gguf");
  const s = await ollama.show({ model: MODEL });
  assert.ok(s.details.family && s.model_info["general.architecture"] === s.details.family);
  assert.ok(s.capabilities.includes("tools"));
  const p = await ollama.ps();
  assert.ok(p.models[0].context_length > 0);
  assert.match((await ollama.version()).version, /^\d+\.\d+\.\d+$/);
});

await t("chat, not streamed", async () => {
  const r = await ollama.chat({ model: MODEL, messages: user("Hello"), options: { num_predict: 6, seed: 1 } });
  assert.equal(r.message.role, "assistant");
  assert.equal(typeof r.message.content, "string");
  final(r, 6);
});

await t("chat, streamed, equals the same request not streamed", async () => {
  const req = { model: MODEL, messages: user("Tell me a story"), options: { num_predict: 8, temperature: 0 } };
  const whole = await ollama.chat(req);
  let text = "", last, n = 0;
  for await (const part of await ollama.chat({ ...req, stream: true })) {
    if (!part.done) (text += part.message.content), n++;
    last = part;
  }
  assert.ok(n >= 1);
  final(last, 8);
  assert.equal(text, whole.message.content);
});

await t("chat with tools: a forced call has object arguments valid under the schema", async () => {
  const validate = ajv.compile(weather.function.parameters);
  for (const stream of [false, true]) {
    const req = { model: MODEL, messages: user("Weather in Paris?"), tools: [weather], tool_choice: "required",
      options: { num_predict: 40 } };
    let calls = [];
    if (stream) {
      for await (const part of await ollama.chat({ ...req, stream })) calls.push(...(part.message.tool_calls ?? []));
    } else {
      calls = (await ollama.chat(req)).message.tool_calls ?? [];
    }
    assert.equal(calls.length, 1, JSON.stringify(calls));
    assert.equal(calls[0].function.name, "get_weather");
    assert.equal(typeof calls[0].function.arguments, "object");
    assert.ok(validate(calls[0].function.arguments), JSON.stringify(calls[0].function.arguments));
  }
});

await t("chat: a tool call and its result in the history", async () => {
  const messages = [...user("Weather in Paris?"),
    { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris", unit: "celsius" } } }] },
    { role: "tool", content: "18 degrees", tool_name: "get_weather" }];
  const r = await ollama.chat({ model: MODEL, messages, tools: [weather], options: { num_predict: 4 } });
  final(r, 40);
});

await t("chat, format json and a schema", async () => {
  const j = await ollama.chat({ model: MODEL, messages: user("JSON please"), format: "json", options: { num_predict: 24 } });
  assert.equal(typeof JSON.parse(j.message.content), "object");
  const schema = { type: "object", properties: { name: { type: "string", maxLength: 8 }, age: { type: "integer" },
    tags: { type: "array", items: { enum: ["a", "b"] }, minItems: 1, maxItems: 2 } }, required: ["name", "age", "tags"] };
  const s = await ollama.chat({ model: MODEL, messages: user("A person"), format: schema, options: { num_predict: 24 } });
  assert.ok(ajv.validate(schema, JSON.parse(s.message.content)), s.message.content);
});

await t("generate: templated, raw, streamed", async () => {
  const g = await ollama.generate({ model: MODEL, prompt: "Once upon a time", system: "Be brief", options: { num_predict: 5 } });
  assert.equal(typeof g.response, "string");
  final(g, 5);
  const raw = await ollama.generate({ model: MODEL, prompt: "Once upon a time", raw: true, options: { num_predict: 3 } });
  final(raw, 3);
  let text = "", last;
  for await (const part of await ollama.generate({ model: MODEL, prompt: "Hi", stream: true, options: { num_predict: 4, temperature: 0 } })) {
    text += part.response;
    last = part;
  }
  final(last, 4);
  const whole = await ollama.generate({ model: MODEL, prompt: "Hi", options: { num_predict: 4, temperature: 0 } });
  assert.equal(text, whole.response);
});

await t("options: num_ctx bounds prompt and reply; an empty request only loads", async () => {
  const probe = await ollama.generate({ model: MODEL, prompt: "count with me", options: { num_predict: 1 } });
  const r = await ollama.generate({ model: MODEL, prompt: "count with me", options: { num_ctx: probe.prompt_eval_count + 3, num_predict: 50 } });
  assert.ok(r.eval_count <= 3 && r.done_reason === "length", JSON.stringify(r));
  const l = await ollama.generate({ model: MODEL });
  assert.equal(l.done_reason, "load");
});

await t("errors in Ollama's shape", async () => {
  await assert.rejects(ollama.chat({ model: "no-such-model", messages: user("x") }), (e) => e.status_code === 404 && /not found/.test(e.error));
  await assert.rejects(ollama.chat({ model: MODEL, messages: user("x"), options: { temperature: "hot" } }),
    (e) => e.status_code === 400 && /options\.temperature/.test(e.error));
  await assert.rejects(ollama.chat({ model: MODEL, messages: user("x"), format: { type: "object", properties: { a: { type: "string", pattern: "x(?=y)" } } } }),
    (e) => e.status_code === 400 && /lookahead/.test(e.error));
  // bodies go through the server's one JSON reader: nesting past --max-json-depth is a 400 naming the field
  const deep = await fetch(BASE + "/api/chat", { method: "POST", headers: KEY ? { Authorization: `Bearer ${KEY}` } : {},
    body: `{"model":"${MODEL}","messages":[],"options":${"[".repeat(200)}${"]".repeat(200)}}` });
  assert.equal(deep.status, 400);
  assert.match((await deep.json()).error, /nested deeper than .*options/);
  const r = await fetch(BASE + "/api/pull", { method: "POST", body: "{}", headers: KEY ? { Authorization: `Bearer ${KEY}` } : {} });
  assert.equal(r.status, 404);
  assert.equal(typeof (await r.json()).error, "string");
});

console.log(`ollama client: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
