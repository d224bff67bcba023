#!/usr/bin/env python3
"""Sum the per-case results that each kiln test program prints ("N passed, M failed") from meson's test log.
A test program that crashed or printed no summary counts as one failed case; a skipped one is listed."""
import json, re, sys

passed = failed = 0
skipped = []
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError as e:
    print(f"no test log ({e})\n0 passed, 1 failed")
    sys.exit(1)
for line in lines:
    t = json.loads(line)
    res, out = t.get("result"), t.get("stdout") or ""
    m = re.findall(r"^(\d+) passed, (\d+) failed", out, re.M)
    if res == "SKIP":
        reason = out.strip().splitlines()[-1] if out.strip() else "skipped"
        skipped.append(f"{t['name']}: {reason}")
        continue
    if m:
        p, f = map(int, m[-1])
        if res != "OK" and f == 0:
            f = 1
        passed += p
        failed += f
    elif res == "OK":
        passed += 1
    else:
        failed += 1
        print(f"{t['name']}: {res} with no summary line")
for s in skipped:
    print(f"skipped {s}")
print(f"{passed} passed, {failed} failed")
