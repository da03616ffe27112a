#!/usr/bin/env bash
# Sets Loom up, builds everything and runs the whole test suite: lit tests
# (IR, CLI, execution) and the GoogleTest suites under ctest. The last line
# sums both runners' counts.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

echo "== lit"
/usr/lib/llvm-22/bin/lit -sv build/test 2>&1 | tee "$log/lit.txt"
lit_status=${PIPESTATUS[0]}

echo "== ctest"
(cd build && ctest --output-on-failure -j2 --timeout 300) 2>&1 | tee "$log/ctest.txt"
ctest_status=${PIPESTATUS[0]}

# lit ends with "  Passed: N (..%)" and, when any, "  Failed: N (..%)" lines.
lit_count() { awk -v k="$1" -F: '$1 ~ "^ *"k" *$" {split($2, a, " "); n += a[1]} END {print n + 0}' "$log/lit.txt"; }
lit_passed=$(lit_count Passed)
lit_failed=$(( $(lit_count Failed) + $(lit_count Unresolved) + $(lit_count "Timed Out") ))
ctest_line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log/ctest.txt" | tail -1)
ctest_failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$ctest_line")
ctest_total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$ctest_line")
passed=$(( ${lit_passed:-0} + ${ctest_total:-0} - ${ctest_failed:-0} ))
failed=$(( ${lit_failed:-0} + ${ctest_failed:-0} ))
if [ "$lit_status" -ne 0 ] || [ "$ctest_status" -ne 0 ]; then
  [ "$failed" -gt 0 ] || failed=1
fi
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
