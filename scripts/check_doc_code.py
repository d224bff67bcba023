#!/usr/bin/env python3
"""Every C code block of the docs that teach the API (docs/graph-api.md, docs/models.md) compiles against the
source tree's headers: each ```c block is written to a file of its own and compiled with -Wall -Werror, so a
block that calls a function the headers do not declare, or with the wrong arguments, fails. A block is a whole
file (its includes included). Usage: check_doc_code.py SOURCE_DIR"""
import os, re, subprocess, sys, tempfile

src = os.path.abspath(sys.argv[1])
DOCS = ['docs/graph-api.md', 'docs/models.md']
BLOCK = re.compile(r'^```c\n(.*?)^```', re.M | re.S)
passed = failed = 0
with tempfile.TemporaryDirectory() as tmp:
    for doc in DOCS:
        text = open(os.path.join(src, doc)).read()
        for i, m in enumerate(BLOCK.finditer(text)):
            line = text.count('\n', 0, m.start()) + 1
            path = os.path.join(tmp, f'{os.path.basename(doc)[:-3]}_{i}.c')
            open(path, 'w').write(m.group(1))
            cmd = ['cc', '-std=gnu11', '-Wall', '-Werror', '-I', src, '-c', path, '-o', path + '.o']
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                failed += 1
                print(f'FAIL: {doc}:{line}: the C block does not compile:\n{r.stderr.strip()}')
            else:
                passed += 1
    if passed + failed == 0:
        failed += 1
        print('FAIL: no C code blocks found in ' + ', '.join(DOCS))
print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)
