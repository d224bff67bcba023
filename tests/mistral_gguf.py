#!/usr/bin/env python3
"""Make a Mistral-style test model from a llama SentencePiece GGUF (tiny-llama): its weights as they are, tokens 3-9
become Mistral v3's control tokens ([INST], [/INST], [TOOL_CALLS], [AVAILABLE_TOOLS], [/AVAILABLE_TOOLS],
[TOOL_RESULTS], [/TOOL_RESULTS]: the ids they have in Mistral 7B v0.3's vocabulary, where the byte tokens
<0x00>..<0x06> sat), tokens 17, 18 and 32 the later ones ([SYSTEM_PROMPT], [/SYSTEM_PROMPT] of v7, [ARGS] of v11: their
ids in the tekken vocabularies, where <0x0E>, <0x0F> and <0x1D> sat), and tokenizer.chat_template is the given Jinja
file.

  mistral_gguf.py IN.gguf TEMPLATE.jinja OUT.gguf

No Mistral model is in ../shared/testdata; this gives `kiln serve` one to run the [TOOL_CALLS] format on."""
import struct
import sys

SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
CONTROL = ["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
           "[/TOOL_RESULTS]"]
FIRST = 3  # id of [INST]
LATER = {17: "[SYSTEM_PROMPT]", 18: "[/SYSTEM_PROMPT]", 32: "[ARGS]"}
TYPE_CONTROL = 3


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def read_value(b, o, typ):
    """(python value, offset past it) of one GGUF value"""
    if typ in SCALAR:
        fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
        return struct.unpack_from(fmt[typ], b, o)[0], o + SCALAR[typ]
    if typ == 8:
        n = struct.unpack_from("<Q", b, o)[0]
        return b[o + 8:o + 8 + n], o + 8 + n
    if typ == 9:
        et, n = struct.unpack_from("<IQ", b, o)
        o += 12
        items = []
        for _ in range(n):
            v, o = read_value(b, o, et)
            items.append(v)
        return (et, items), o
    raise ValueError("GGUF value type %d" % typ)


def write_value(typ, v):
    if typ in SCALAR:
        fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
        return struct.pack(fmt[typ], v)
    if typ == 8:
        return gstr(v)
    et, items = v
    return struct.pack("<IQ", et, len(items)) + b"".join(write_value(et, x) for x in items)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, tmpl_path, out = sys.argv[1:]
    b = open(src, "rb").read()
    if b[:4] != b"GGUF":
        sys.exit(f"{src}: not a GGUF file")
    version, n_t, n_kv = struct.unpack_from("<IQQ", b, 4)
    o, kvs = 24, []
    for _ in range(n_kv):
        klen = struct.unpack_from("<Q", b, o)[0]
        key = b[o + 8:o + 8 + klen].decode()
        o += 8 + klen
        typ = struct.unpack_from("<I", b, o)[0]
        v, o = read_value(b, o + 4, typ)
        kvs.append([key, typ, v])
    infos_start = o
    for _ in range(n_t):  # name, n_dims, dims, type, offset
        n = struct.unpack_from("<Q", b, o)[0]
        o += 8 + n
        nd = struct.unpack_from("<I", b, o)[0]
        o += 4 + 8 * nd + 4 + 8
    infos = b[infos_start:o]
    align = next((v for k, t, v in kvs if k == "general.alignment"), 32)
    data_start = (o + align - 1) // align * align
    keys = {k: kv for kv in kvs for k in [kv[0]]}
    if keys.get("tokenizer.ggml.model", [0, 0, b""])[2] != b"llama":
        sys.exit(f"{src}: needs a llama SentencePiece tokenizer")
    toks, types = keys["tokenizer.ggml.tokens"][2][1], keys["tokenizer.ggml.token_type"][2][1]
    for i, name in list(enumerate(CONTROL, FIRST)) + list(LATER.items()):
        toks[i] = name.encode()
        types[i] = TYPE_CONTROL
    tmpl = open(tmpl_path, encoding="utf-8").read()
    if "tokenizer.chat_template" in keys:
        keys["tokenizer.chat_template"][2] = tmpl.encode()
    else:
        kvs.append(["tokenizer.chat_template", 8, tmpl.encode()])
    for kv in kvs:
        if kv[0] == "general.name":
            kv[2] = b"tiny-mistral"
    head = b"GGUF" + struct.pack("<IQQ", version, n_t, len(kvs))
    head += b"".join(gstr(k) + struct.pack("<I", t) + write_value(t, v) for k, t, v in kvs) + infos
    head += b"\0" * ((-len(head)) % align)
    with open(out, "wb") as f:
        f.write(head)
        f.write(b[data_start:])


if __name__ == "__main__":
    main()
