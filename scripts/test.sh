#!/bin/sh
# Runs the whole test suite (meson test) and prints the cases each test program checked, ending with
# "N passed, M failed". Tests that need ../shared/testdata skip with a message when it is absent.
cd "$(dirname "$0")/.."
meson test -C build --print-errorlogs --num-processes 2 "$@"
rc=$?
python3 scripts/test_summary.py build/meson-logs/testlog.json
exit $rc
