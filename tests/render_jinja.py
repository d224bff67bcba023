#!/usr/bin/env python3
"""Render chat conversations with the real Jinja templates, as transformers does (jinja2 sandbox, trim_blocks,
lstrip_blocks, tojson = json.dumps(ensure_ascii=False)), for tests/test_chat.c to compare with its C renderers.

usage: render_jinja.py cases CHAT_CASES.json TEMPLATE_DIR TESTDATA_DIR OUT.json
         every conversation x template x option set of CHAT_CASES.json -> OUT.json:
         {"templates": {NAME: {"text", "family", "exact"}},
          "cases": [{"template", "conversation", "optset", "kwargs", "conv_text", "ok", "text" | "error"}]}
       render_jinja.py tojson IN.json OUT.json
         IN: a list of JSON texts; OUT: [[json.dumps(v, ensure_ascii=False), ... indent=4], ...]
The conversation is normalized the way kiln (and llama.cpp) normalize it before rendering; see docs/chat.md."""
import json
import os
import struct
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def gguf_string(path, key):
    """The value of one string key of a GGUF file's metadata (test helper; GGUF v2/v3, little-endian)."""
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        version, = struct.unpack("<I", f.read(4))
        if version < 2:
            raise ValueError(f"{path}: GGUF version {version} not supported")
        _, n_kv = struct.unpack("<QQ", f.read(16))

        def read_str():
            n, = struct.unpack("<Q", f.read(8))
            return f.read(n)

        def skip(t):
            if t in sizes:
                f.seek(sizes[t], 1)
            elif t == 8:
                read_str()
            elif t == 9:
                at, n = struct.unpack("<IQ", f.read(12))
                for _ in range(n):
                    skip(at)
            else:
                raise ValueError(f"{path}: unknown GGUF value type {t}")

        for _ in range(n_kv):
            k = read_str().decode("utf-8")
            t, = struct.unpack("<I", f.read(4))
            if k == key and t == 8:
                return read_str().decode("utf-8")
            skip(t)
    raise KeyError(f"{path}: no {key}")


def normalize(conv):
    """What kiln's renderer sees: developer -> system, text parts joined with newlines, null content -> "",
    arguments that hold a JSON object -> that object, empty tool lists -> none."""
    out = []
    for m in conv["messages"]:
        role = "system" if m["role"] == "developer" else m["role"]
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(p["text"] for p in content)
        n = {"role": role, "content": "" if content is None else content}
        if m.get("reasoning_content") is not None:
            n["reasoning_content"] = m["reasoning_content"]
        for k in ("tool_call_id", "name"):
            if m.get(k) is not None:
                n[k] = m[k]
        calls = []
        for tc in m.get("tool_calls") or []:
            fn = tc["function"]
            args = fn.get("arguments")
            if args is None:
                args = {}
            elif isinstance(args, str):
                try:
                    parsed = json.loads(args)
                    if isinstance(parsed, dict):
                        args = parsed
                except ValueError:
                    pass
            call = {"type": "function", "function": {"name": fn["name"], "arguments": args}}
            if tc.get("id") is not None:
                call["id"] = tc["id"]
            calls.append(call)
        if calls:
            n["tool_calls"] = calls
        out.append(n)
    tools = conv.get("tools") or None
    return out, tools


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def render_cases(cases_path, template_dir, testdata_dir, out_path):
    with open(cases_path, encoding="utf-8") as f:
        spec = json.load(f)
    env = make_env()
    templates, compiled = {}, {}
    for name, src in spec["templates"].items():
        if "gguf" in src:
            text = gguf_string(os.path.join(testdata_dir, src["gguf"]), "tokenizer.chat_template")
        else:
            with open(os.path.join(template_dir, src["file"]), encoding="utf-8") as f:
                text = f.read()
        templates[name] = {"text": text, "family": src["family"], "exact": src["exact"]}
        compiled[name] = (env.from_string(text), src)
    cases = []
    for conv in spec["conversations"]:
        full = {"messages": conv["messages"]}
        if conv.get("tools"):
            full["tools"] = spec["toolsets"][conv["tools"]]
        has_tools = bool(full.get("tools")) or any(m.get("tool_calls") for m in conv["messages"])
        for name, (tmpl, src) in compiled.items():
            if has_tools and not src["tools"]:
                continue  # kiln renders tools for these in another family's layout; nothing to compare with
            for opt in spec["optsets"]:
                if "families" in opt and src["family"] not in opt["families"]:
                    continue
                case = {"template": name, "conversation": conv["name"], "optset": opt["name"],
                        "kwargs": opt["kwargs"], "conv_text": json.dumps(full, ensure_ascii=False)}
                try:
                    messages, tools = normalize(full)
                    kwargs = dict(opt["kwargs"])
                    kwargs.setdefault("add_generation_prompt", True)
                    kwargs.setdefault("bos_token", src.get("bos_token", "<|begin_of_text|>"))
                    if "eos_token" in src:
                        kwargs.setdefault("eos_token", src["eos_token"])
                    case["text"] = tmpl.render(messages=messages, tools=tools, documents=None, **kwargs)
                    case["ok"] = True
                except Exception as e:  # the C renderer must fail on the same inputs
                    case["ok"] = False
                    case["error"] = f"{type(e).__name__}: {e}"
                cases.append(case)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"templates": templates, "cases": cases}, f, ensure_ascii=False)


def dump_json(in_path, out_path):
    with open(in_path, encoding="utf-8") as f:
        texts = json.load(f)
    out = []
    for text in texts:
        v = json.loads(text)
        out.append([json.dumps(v, ensure_ascii=False), json.dumps(v, ensure_ascii=False, indent=4)])
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "cases":
        render_cases(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "tojson":
        dump_json(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
