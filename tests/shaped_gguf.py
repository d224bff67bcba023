#!/usr/bin/env python3
"""Write a GGUF with a real model's metadata and tensor table but no weight data (a sparse file: the data section
is a hole), so memory planning (`kiln run --dry-run`) can be checked at real sizes without the download.

  shaped_gguf.py OUT.gguf qwen2.5-14b-q4_k_m [LAYERS [LIKE.gguf]]

LAYERS overrides the layer count (every layer has the same kernels, so 2 layers give all of a model's shapes, the
Q6_K and the Q4_K variants of attn_v and ffn_down included, at a fraction of the work). LIKE.gguf lends its
tokenizer (the tokenizer.* keys, copied as they are; the vocabulary becomes its token count), so the file can run.

Tensor types follow llama.cpp's Q4_K_M mix: Q4_K everywhere except the output matrix and, in the first and last
eighth of the layers and every third layer between, attn_v and ffn_down, which are Q6_K; norms and biases F32."""
import struct, sys

F32, Q4_K, Q6_K = 0, 12, 14
BLOCK = {F32: (1, 4), Q4_K: (256, 144), Q6_K: (256, 210)}
SHAPES = {
    "qwen2.5-14b-q4_k_m": dict(arch="qwen2", layers=48, embd=5120, heads=40, kv=8, ffn=13824, vocab=152064,
                                ctx=32768),
    "qwen2.5-7b-q4_k_m": dict(arch="qwen2", layers=28, embd=3584, heads=28, kv=4, ffn=18944, vocab=152064,
                               ctx=32768),
}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, typ, val):
    fmt = {4: "<I", 6: "<f"}
    body = gstr(val) if typ == 8 else struct.pack(fmt[typ], val)
    return gstr(key) + struct.pack("<I", typ) + body


def tensors(s):
    e, hd = s["embd"], s["embd"] // s["heads"]
    kvd = hd * s["kv"]
    n = s["layers"]
    more = lambda i: i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2
    yield "token_embd.weight", [e, s["vocab"]], Q4_K
    yield "output_norm.weight", [e], F32
    yield "output.weight", [e, s["vocab"]], Q6_K
    for i in range(n):
        p = "blk.%d." % i
        yield p + "attn_norm.weight", [e], F32
        yield p + "attn_q.weight", [e, e], Q4_K
        yield p + "attn_q.bias", [e], F32
        yield p + "attn_k.weight", [e, kvd], Q4_K
        yield p + "attn_k.bias", [kvd], F32
        yield p + "attn_v.weight", [e, kvd], Q6_K if more(i) else Q4_K
        yield p + "attn_v.bias", [kvd], F32
        yield p + "attn_output.weight", [e, e], Q4_K
        yield p + "ffn_norm.weight", [e], F32
        yield p + "ffn_gate.weight", [e, s["ffn"]], Q4_K
        yield p + "ffn_up.weight", [e, s["ffn"]], Q4_K
        yield p + "ffn_down.weight", [s["ffn"], e], Q6_K if more(i) else Q4_K


SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def skip_value(b, o, typ):
    """offset past one GGUF value of type typ at b[o:]"""
    if typ in SCALAR:
        return o + SCALAR[typ]
    if typ == 8:
        return o + 8 + struct.unpack_from("<Q", b, o)[0]
    if typ == 9:
        et, n = struct.unpack_from("<IQ", b, o)
        o += 12
        if et in SCALAR:
            return o + n * SCALAR[et]
        for _ in range(n):
            o = skip_value(b, o, et)
        return o
    raise ValueError("GGUF value type %d" % typ)


def tokenizer_kvs(path):
    """the raw key-value records of LIKE's tokenizer.* keys, and its token count"""
    b = open(path, "rb").read(1 << 28)
    n_kv = struct.unpack_from("<Q", b, 16)[0]
    o, out, ntok = 24, [], 0
    for _ in range(n_kv):
        start = o
        klen = struct.unpack_from("<Q", b, o)[0]
        key = b[o + 8:o + 8 + klen].decode()
        o += 8 + klen
        typ = struct.unpack_from("<I", b, o)[0]
        end = skip_value(b, o + 4, typ)
        if key.startswith("tokenizer."):
            out.append(b[start:end])
            if key == "tokenizer.ggml.tokens":
                ntok = struct.unpack_from("<Q", b, o + 8)[0]
        o = end
    return out, ntok


def main():
    out, name = sys.argv[1], sys.argv[2]
    s = dict(SHAPES[name])
    if len(sys.argv) > 3:
        s["layers"] = int(sys.argv[3])
    tok = []
    if len(sys.argv) > 4:
        tok, s["vocab"] = tokenizer_kvs(sys.argv[4])
    a = s["arch"]
    meta = [kv("general.architecture", 8, a), kv("general.name", 8, name + " (shape only)"),
            kv(a + ".block_count", 4, s["layers"]), kv(a + ".embedding_length", 4, s["embd"]),
            kv(a + ".attention.head_count", 4, s["heads"]), kv(a + ".attention.head_count_kv", 4, s["kv"]),
            kv(a + ".feed_forward_length", 4, s["ffn"]), kv(a + ".context_length", 4, s["ctx"]),
            kv(a + ".rope.freq_base", 6, 1e6), kv(a + ".attention.layer_norm_rms_epsilon", 6, 1e-6)] + tok
    infos, off = [], 0
    for tname, ne, typ in tensors(s):
        per, nb = BLOCK[typ]
        count = 1
        for d in ne:
            count *= d
        infos.append(gstr(tname) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne) +
                     struct.pack("<IQ", typ, off))
        off += (count // per * nb + 31) // 32 * 32
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(meta)) + b"".join(meta) + b"".join(infos)
    head += b"\0" * (-len(head) % 32)
    with open(out, "wb") as f:
        f.write(head)
        f.truncate(len(head) + off)
    print("%s: %.2f GiB of weights" % (out, off / 2**30))


main()
