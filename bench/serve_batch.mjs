#!/usr/bin/env node
// bench/serve_batch.mjs: continuous batching in `kiln serve`, measured with real streaming HTTP clients.
//
//   node bench/serve_batch.mjs KILN MODEL.gguf [--clients 8] [--tokens 48] [--reps 5] [--long 2000] [--ctx 4096]
//                              [--ban 151643,151645] [--skip-long]
//
// Starts `KILN serve -m MODEL --parallel max(clients, 5)`, warms every pass size up, then reports (medians of
// --reps runs, all in this one run of the script, so the ratios compare like with like):
//   1. one client alone: its decode rate (tokens after the first / time from the first to the last token);
//   2. --clients concurrent streaming clients: their aggregate decode rate (all their tokens after each one's first,
//      over the time from the first client's first token to the last client's last), and its ratio to 1;
//   3. `KILN bench` on the same file (tg of --tokens after a 16-token prompt): 1's rate against it;
//   (1, 2 and 3 take turns, one of each per rep, so a host whose load changes affects them alike)
//   4. 4 streams decoding, then a --long-token prompt arriving: the p95 gap between consecutive tokens of the 4
//      streams before it arrived and while it was prefilled (until its first token), and their ratio.
// The --ban token ids get a logit bias of -100 so random-weight models do not end early (Qwen2.5's end tokens by
// default). The model is what bench/make_model writes: a Qwen2.5-0.5B-shaped Q4_K_M file, e.g.
//   build/bench/make_model /tmp/q05.gguf ../shared/testdata/models/tiny-qwen2-Q4_K_M.gguf --shape 0.5b --type q4_k_m
import { spawn, execFileSync } from "node:child_process";

const argv = process.argv.slice(2);
if (argv.length < 2 || argv.includes("-h") || argv.includes("--help")) {
  console.log("usage: node bench/serve_batch.mjs KILN MODEL.gguf [--clients N] [--tokens N] [--reps N] [--long N] [--ctx N] " +
              "[--ban id,id] [--skip-long]");
  process.exit(argv.length < 2 ? 2 : 0);
}
const [KILN, MODEL] = argv;
const opt = (name, def) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : def;
};
const CLIENTS = Number(opt("--clients", 8)), TOKENS = Number(opt("--tokens", 48)), REPS = Number(opt("--reps", 5));
const LONG = Number(opt("--long", 2000)), CTX = Number(opt("--ctx", 4096));
const BAN = Object.fromEntries(String(opt("--ban", "151643,151645")).split(",").filter(Boolean).map((id) => [id, -100]));
const SKIP_LONG = argv.includes("--skip-long");
const PARALLEL = Math.max(CLIENTS, 5);

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const pct = (v, p) => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const now = () => performance.now() / 1000;
const WORDS = ("time person year way day thing man world life hand part child eye woman place work week case point " +
  "government company number group problem fact river stone garden window music paper market story letter " +
  "mountain question answer minute evening morning table chair bottle silver yellow orange purple animal").split(" ");
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed / 2147483648);
const text = (n) => Array.from({ length: n }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(" ");

// ---- the server ---------------------------------------------------------------------------------------------------
// a long idle timeout: kept-alive connections wait while `kiln bench` runs between the reps
const server = spawn(KILN, ["serve", "-m", MODEL, "--port", "0", "-c", String(CTX), "--parallel", String(PARALLEL),
                            "--idle-timeout", "3600"],
                     { stdio: ["ignore", "ignore", "pipe"] });
let log = "";
const base = await new Promise((resolve, reject) => {
  server.stderr.on("data", (d) => {
    log += d;
    const m = /listening on (http:\/\/[0-9.]+:\d+)/.exec(log);
    if (m) resolve(m[1]);
  });
  server.on("exit", (c) => reject(new Error(`kiln serve exited (${c}):\n${log}`)));
});
process.on("exit", () => server.kill("SIGTERM"));
process.on("uncaughtException", (e) => {
  console.error(`${e.stack ?? e}\nserver log:\n${log.slice(-4000)}`);
  process.exit(1);
});
console.log(`kiln serve at ${base}, --parallel ${PARALLEL}, context ${CTX}`);

// One streaming completion: the arrival time of every token chunk, and the usage.
async function stream(prompt, maxTokens, signal) {
  const t0 = now();
  const r = await fetch(`${base}/v1/completions`, {
    method: "POST", headers: { "Content-Type": "application/json" }, signal,
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true, logit_bias: BAN,
                           stream_options: { include_usage: true } }),
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const times = [];
  let usage = null, buf = "";
  const dec = new TextDecoder();
  try {
    for await (const chunk of r.body) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
        const j = JSON.parse(ev.slice(6));
        if (j.choices?.length && j.choices[0].text) times.push(now());
        if (j.usage) usage = j.usage;
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") throw e;
  }
  return { t0, times, usage };
}

const rate = (s) => (s.times.length > 1 ? (s.times.length - 1) / (s.times.at(-1) - s.times[0]) : 0);

async function concurrent(n, tokens) {
  const runs = await Promise.all(Array.from({ length: n }, (_, i) => stream(`${i} ${text(12)}`, tokens)));
  const first = Math.min(...runs.map((s) => s.times[0])), last = Math.max(...runs.map((s) => s.times.at(-1)));
  const toks = runs.reduce((a, s) => a + s.times.length - 1, 0);
  return toks / (last - first);
}

// ---- warm-up: every batch size and the prompt passes are compiled (or loaded from the disk cache) ------------------
let t = now();
await stream(text(LONG / 4), 2);
for (let n = 1; n <= CLIENTS; n *= 2) await concurrent(n, 8);
await concurrent(CLIENTS, 8);
console.log(`warm-up ${(now() - t).toFixed(1)} s`);

// ---- 1, 2, 3: one client, CLIENTS together, kiln bench, taking turns (the host's load changes over time) -----------
const one = [], many = [], bench = [];
for (let r = 0; r < REPS; r++) {
  one.push(rate(await stream(`alone ${r} ${text(12)}`, TOKENS)));
  many.push(await concurrent(CLIENTS, TOKENS));
  const out = execFileSync(KILN, ["bench", "-m", MODEL, "-p", "16", "-n", String(TOKENS), "-r", "1", "--ttft", "0"],
                           { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  bench.push(Number(/^tg\d+\s+([0-9.]+) tok\/s/m.exec(out)?.[1]));
}
const oneR = median(one), manyR = median(many), tg = median(bench);
const list = (v) => v.map((x) => x.toFixed(2)).join(" ");
console.log(`1 client:   ${oneR.toFixed(2)} tok/s decode (median of ${REPS}: ${list(one)})`);
console.log(`${CLIENTS} clients: ${manyR.toFixed(2)} tok/s aggregate decode (median of ${REPS}: ${list(many)}) = ` +
            `${(manyR / oneR).toFixed(2)}x one client`);
console.log(`kiln bench: tg${TOKENS} ${tg.toFixed(2)} tok/s (median of ${REPS}: ${list(bench)}); 1 client at ` +
            `${((100 * oneR) / tg).toFixed(1)}% of it`);

// ---- 4: a long prompt arriving while 4 streams decode ---------------------------------------------------------------
if (!SKIP_LONG) {
  const ctl = new AbortController();
  const streams = Array.from({ length: 4 }, (_, i) => stream(`stream ${i} ${text(12)}`, CTX - 64, ctl.signal));
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  // the streams' token times are filled in as they arrive: read them through the pending promises' objects
  const live = [];
  const orig = streams.map((p) => p.then((s) => live.push(s)));
  // a baseline: let them decode for a while (their times are only visible once they end, so they are aborted at
  // the end and the window is cut by timestamps)
  await wait(2000);
  const tStart = now();
  await wait(8000);
  const tSend = now();
  const long = await stream(`long ${text(Math.round(LONG * 0.95))}`, 1);
  const tDone = long.times[0] ?? now();
  await wait(500);
  ctl.abort();
  await Promise.all(orig);
  const before = [], during = [];
  for (const s of live)
    for (let i = 1; i < s.times.length; i++) {
      const a = s.times[i - 1], b = s.times[i];
      if (a >= tStart && b <= tSend) before.push(b - a);
      else if (b > tSend && b <= tDone) during.push(b - a);
    }
  const p95b = pct(before, 95), p95d = pct(during, 95);
  console.log(`long prompt: ${long.usage?.prompt_tokens ?? "?"} tokens, first token after ${(tDone - tSend).toFixed(1)} s ` +
              `while 4 streams decoded`);
  console.log(`4 streams' inter-token gap p95: ${(1e3 * p95b).toFixed(0)} ms before (${before.length} gaps), ` +
              `${(1e3 * p95d).toFixed(0)} ms during the prefill (${during.length} gaps) = ${(p95d / p95b).toFixed(2)}x`);
}
server.kill("SIGTERM");
process.exit(0);
