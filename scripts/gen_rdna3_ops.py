#!/usr/bin/env python3
"""Generate device/amd/rdna3_ops.{h,c}: the gfx1100 opcode numbers and mnemonics of each instruction encoding, read
off LLVM's own disassembler (llvm-mc) by disassembling every opcode value of every encoding. The interpreter's
semantics are written by hand against these names; this only fixes which number is which instruction.
Usage: scripts/gen_rdna3_ops.py [llvm-mc-19]   (run from the repository root)"""
import re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

MC = sys.argv[1] if len(sys.argv) > 1 else 'llvm-mc-19'
LIT = 0x3f800000


def mc(words):
    text = ','.join('0x%02x' % b for w in words for b in w.to_bytes(4, 'little')) + '\n'
    r = subprocess.run([MC, '-arch=amdgcn', '-mcpu=gfx1100', '--disassemble'], input=text, capture_output=True,
                       text=True)
    lines = [l.strip() for l in r.stdout.splitlines() if l.strip() and not l.strip().startswith('.')]
    if 'invalid' in r.stderr[:200] and r.stderr.find(':1:1:') >= 0:
        return None  # the first word itself was rejected
    return lines[0] if lines else None


def first_valid(variants):
    for words in variants:
        t = mc(words)
        if t:
            return t
    return None


def disassemble(cases):
    """cases: {op: [variant word lists]} (or one word list) -> {op: mnemonic}; ops LLVM rejects are left out."""
    out = {}
    with ThreadPoolExecutor(8) as ex:
        items = [(o, v if isinstance(v[0], list) else [v]) for o, v in cases.items()]
        for (o, _), t in zip(items, ex.map(lambda it: first_valid(it[1]), items)):
            if t:
                out[o] = re.sub(r'_(e32|e64)$', '', t.split()[0])
    return out


def vdual(x, y):
    """VOPD variants: operands an opcode does not read must be zero for LLVM to accept the encoding"""
    return [[(0x32 << 26) | (x << 22) | (y << 17) | (v1x << 9) | 258, (5 << 24) | (2 << 17) | (v1y << 9) | 260, LIT]
            for v1x in (2, 0) for v1y in (4, 0)]


enc = {
    'sop2': disassemble({o: [(2 << 30) | (o << 23) | (6 << 16) | (4 << 8) | 2] for o in range(0x60)}),
    'sopk': disassemble({o: [(0xb << 28) | (o << 23) | (6 << 16) | 0x10, LIT] for o in range(29)}),
    'sop1': disassemble({o: [(0x17d << 23) | (6 << 16) | (o << 8) | 2] for o in range(256)}),
    'sopc': disassemble({o: [(0x17e << 23) | (o << 16) | (4 << 8) | 2] for o in range(128)}),
    'sopp': disassemble({o: [(0x17f << 23) | (o << 16)] for o in range(128)}),
    'smem': disassemble({o: [(0x3d << 26) | (o << 18) | (4 << 6) | 1, 0xf8000010] for o in range(256)}),
    'vop1': disassemble({o: [[(0x3f << 25) | (4 << 17) | (o << 9) | 258], [(0x3f << 25) | (o << 9)]] for o in range(256)}),
    'vop2': disassemble({o: [(o << 25) | (4 << 17) | (6 << 9) | 258, LIT] for o in range(64)}),
    'vopc': disassemble({o: [(0x3e << 25) | (o << 17) | (6 << 9) | 258] for o in range(256)}),
    'vop3': disassemble({o: [[(0x35 << 26) | (o << 16) | 4, (s2 << 18) | (s1 << 9) | 258]
                             for s1, s2 in ((260, 262), (260, 0), (0, 0), (4, 0), (260, 106))] for o in range(1024)}),
    'vop3p': disassemble({o: [[(0xcc << 24) | (o << 16) | 4, (3 << 27) | (s2 << 18) | (s1 << 9) | 258]
                              for s1, s2 in ((260, 262), (260, 0), (0, 0))] for o in range(128)}),
    'vopdx': disassemble({o: vdual(o, 4) for o in range(16)}),
    'ds': disassemble({o: [[(0x36 << 26) | (o << 18), (dst << 24) | (d1 << 16) | (d0 << 8) | 2]
                           for dst, d0, d1 in ((4, 8, 6), (4, 8, 0), (4, 0, 0), (0, 8, 6), (0, 8, 0), (0, 0, 0))]
                        for o in range(256)}),
    'global': disassemble({o: [[(0x37 << 26) | (o << 18) | (2 << 16), (dst << 24) | (0x7c << 16) | (d << 8) | 2]
                               for dst, d in ((4, 6), (4, 0), (0, 6), (0, 0))] for o in range(128)}),
    'flat': disassemble({o: [[(0x37 << 26) | (o << 18), (dst << 24) | (0x7c << 16) | (d << 8) | 2]
                             for dst, d in ((4, 6), (4, 0), (0, 6), (0, 0))] for o in range(128)}),
    'scratch': disassemble({o: [[(0x37 << 26) | (o << 18) | (1 << 16), (dst << 24) | (2 << 16) | (d << 8) | 0]
                                for dst, d in ((4, 6), (4, 0), (0, 6), (0, 0))] for o in range(128)}),
    'mubuf': disassemble({o: [(0x38 << 26) | (o << 18), (0x80 << 24) | (1 << 16) | (4 << 8) | 2] for o in range(128)}),
}
# VOPD reports both halves "v_dual_x :: v_dual_y": the mnemonic is the X half; the Y table comes from the Y text.
ytext = {}
for o in range(32):
    t = first_valid(vdual(3, o))
    m = re.search(r'::\s*(v_dual_\w+)', t or '')
    if m:
        ytext[o] = m.group(1)
enc['vopdy'] = ytext

SIZES = {'sop2': 0x60, 'sopk': 32, 'sop1': 256, 'sopc': 128, 'sopp': 128, 'smem': 256, 'vop1': 256, 'vop2': 64,
         'vopc': 256, 'vop3': 1024, 'vop3p': 128, 'vopdx': 16, 'vopdy': 32, 'ds': 256, 'global': 128, 'flat': 128, 'scratch': 128,
         'mubuf': 128}
VOP3_BASE = {'vopc': 0, 'vop2': 256, 'vop1': 384}


def ident(fam, name):
    n = name.upper()
    if fam in ('vopdx', 'vopdy'):
        return 'VOPD_' + n[len('V_DUAL_'):]
    return n


h = ['/* Generated by scripts/gen_rdna3_ops.py from LLVM\'s gfx1100 disassembler: do not edit. The opcode numbers of',
     ' * each RDNA3 encoding. VOP1, VOP2 and VOPC instructions are executed by their VOP3 number (kn_rdna3_vop3_of). */',
     '#ifndef KN_AMD_RDNA3_OPS_H', '#define KN_AMD_RDNA3_OPS_H', '']
c = ['/* Generated by scripts/gen_rdna3_ops.py from LLVM\'s gfx1100 disassembler: do not edit. */',
     '#include "rdna3_ops.h"', '', '#include <stddef.h>', '']
seen = {}
for fam in SIZES:
    if fam in ('vop1', 'vop2', 'vopc', 'flat', 'scratch'):
        continue  # executed through their VOP3 (or GLOBAL) numbers
    names = enc[fam]
    lines = []
    for o in sorted(names):
        i = ident(fam, names[o])
        if fam == 'vopdy' and o in enc['vopdx'] and enc['vopdx'][o] == names[o]:
            continue
        if i in seen:
            i = fam.upper() + '_' + i
        seen[i] = fam
        lines.append('  %s = %d,' % (i, o))
    h += ['enum { /* %s */' % fam] + lines + ['};', '']
# VOP1/2/C numbers that have no VOP3 form at base+op (or a different one) get their own translation
xlat = {}
for fam, base in VOP3_BASE.items():
    t = []
    for o in range(SIZES[fam]):
        n = enc[fam].get(o)
        if n is None:
            t.append(-1)
        elif enc['vop3'].get(base + o) == n:
            t.append(base + o)
        else:
            ident_n = ident(fam, n)
            if ident_n not in seen:
                seen[ident_n] = fam
                h.insert(-1, '')
                extra = 1024 + len([k for k in seen if seen[k] == 'x'])
                seen[ident_n] = 'x'
                h += ['enum { %s = %d }; /* %s only: no VOP3 form */' % (ident_n, extra, fam.upper())]
                t.append(extra)
            else:
                t.append(-1)
    xlat[fam] = t
h += ['', '/* Mnemonic of an opcode of an encoding ("sop2", "vop3", ...), NULL when LLVM knows none. */',
      'const char *kn_rdna3_opname(const char *family, unsigned op);',
      '/* The VOP3 opcode (or a number >= 1024 for VOP2-only opcodes) executing a VOP1, VOP2 or VOPC opcode; -1 when none. */',
      'int kn_rdna3_vop3_of(const char *family, unsigned op);', '', '#endif', '']
for fam, n in SIZES.items():
    c.append('static const char *const %s_names[%d] = {' % (fam, n))
    c += ['  [%d] = "%s",' % (o, enc[fam][o]) for o in sorted(enc[fam])]
    c.append('};')
for fam, t in xlat.items():
    c.append('static const short %s_to_vop3[%d] = {%s};' % (fam, len(t), ','.join(str(x) for x in t)))
c += ['', 'static const struct {', '  const char *family;', '  const char *const *names;', '  unsigned n;',
      '} families[] = {']
c += ['  {"%s", %s_names, %d},' % (f, f, n) for f, n in SIZES.items()]
c += ['};', '', 'const char *kn_rdna3_opname(const char *family, unsigned op) {',
      '  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)',
      '    if (families[i].family[0] == family[0] && !__builtin_strcmp(families[i].family, family))',
      '      return op < families[i].n ? families[i].names[op] : NULL;', '  return NULL;', '}', '',
      'int kn_rdna3_vop3_of(const char *family, unsigned op) {',
      '  if (!__builtin_strcmp(family, "vop1")) return op < 256 ? vop1_to_vop3[op] : -1;',
      '  if (!__builtin_strcmp(family, "vop2")) return op < 64 ? vop2_to_vop3[op] : -1;',
      '  if (!__builtin_strcmp(family, "vopc")) return op < 256 ? vopc_to_vop3[op] : -1;', '  return -1;', '}', '']
open('device/amd/rdna3_ops.h', 'w').write('\n'.join(h))
open('device/amd/rdna3_ops.c', 'w').write('\n'.join(c))
for f in SIZES:
    print(f, len(enc[f]), file=sys.stderr)
