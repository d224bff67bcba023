#!/usr/bin/env python3
"""Include arrows (docs/architecture.md): apps -> models -> ops -> graph -> codegen -> device, with device/base/
(what every layer shares) at the bottom. A quoted include that points up the arrows fails, and so do these:
device/base/ includes only device/base/; model definitions (models/arch/) include no codegen/ or device/ header;
the rest of models/ and ops/ see device/ only through device/base/ and never codegen/ (they reach devices through
graph/graph.h); graph/graph.h itself exposes only device/base/; apps/ include codegen/ or device/ only where listed
below, with the reason. Prints one line per violation and the usual summary; exit 1 on any."""
import os, re, sys

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..'))
LEVEL = {'device/base': -1, 'device': 0, 'codegen': 1, 'graph': 2, 'ops': 3, 'models': 4, 'apps': 5}
APPS_ALLOWED = {  # file -> headers below graph/ it may include, and why
    'apps/cache.c': {'codegen/cache.h': 'kiln cache lists and disassembles the kernel cache',
                     'device/amd/codeobj.h': 'kiln cache show reads AMD code objects'},
    'apps/bench.c': {'device/device.h': 'kiln bench prints the per-kernel counters of a counting device'},
}
INC = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def layer(path):
    if path.startswith('device/base/'): return 'device/base'
    top = path.split('/', 1)[0]
    return top if top in LEVEL else None


def resolve(src, inc):
    for base in (os.path.dirname(src), ''):
        p = os.path.normpath(os.path.join(base, inc))
        if os.path.isfile(os.path.join(root, p)): return p
    return None


bad = checked = 0
for top in ('device', 'codegen', 'graph', 'ops', 'models', 'apps'):
    for d, _, names in os.walk(os.path.join(root, top)):
        for n in sorted(names):
            if not n.endswith(('.c', '.h')): continue
            src = os.path.relpath(os.path.join(d, n), root)
            sl = layer(src)
            for inc in INC.findall(open(os.path.join(root, src), errors='replace').read()):
                tgt = resolve(src, inc)
                checked += 1
                if tgt is None or layer(tgt) is None: continue
                tl, why = layer(tgt), None
                if LEVEL[tl] > LEVEL[sl]: why = f'points up the arrows ({sl} -> {tl})'
                elif sl == 'device/base' and tl != 'device/base': why = 'device/base/ includes only device/base/'
                elif src.startswith('models/arch/') and tl in ('device', 'device/base', 'codegen'):
                    why = 'a model definition includes no codegen/ or device/ header (use graph/graph.h, ops/ops.h)'
                elif sl in ('models', 'ops') and tl in ('device', 'codegen'):
                    why = f'{sl}/ reaches devices and codegen through graph/graph.h (device/base/ aside)'
                elif src == 'graph/graph.h' and tl not in ('graph', 'device/base'):
                    why = 'graph/graph.h re-exports only device/base/'
                elif sl == 'apps' and tl in ('device', 'codegen') and tgt not in APPS_ALLOWED.get(src, {}):
                    why = 'apps/ use devices through graph/graph.h (or list the file in APPS_ALLOWED with a reason)'
                if why:
                    bad += 1
                    print(f'FAIL: {src} includes "{inc}": {why}')
# One JSON parser: cJSON builds trees only behind models/text/json_read.c (kn_json_parse), the hardened reader
PARSE = re.compile(r'\bcJSON_Parse\w*\s*\(')
for top in ('device', 'codegen', 'graph', 'ops', 'models', 'apps'):
    for d, _, names in os.walk(os.path.join(root, top)):
        for n in sorted(names):
            src = os.path.relpath(os.path.join(d, n), root)
            if not n.endswith(('.c', '.h')) or src == 'models/text/json_read.c': continue
            checked += 1
            if PARSE.search(open(os.path.join(root, src), errors='replace').read()):
                bad += 1
                print(f'FAIL: {src} parses JSON with cJSON directly: use kn_json_parse (models/text/json_read.h)')
print(f'{checked - bad} passed, {bad} failed')
sys.exit(1 if bad else 0)
