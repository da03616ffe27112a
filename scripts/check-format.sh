#!/usr/bin/env bash
# Fails (and prints the offending files) when a tracked C/C++ source does not
# follow .clang-format. The tree is formatted as a whole, so every changed
# line is checked by checking every file. Pinned to clang-format-22, which
# scripts/setup.sh installs: another version formats some constructs
# differently.
set -uo pipefail
cd "$(dirname "$0")/.."
format=${CLANG_FORMAT:-clang-format-22}
if ! command -v "$format" >/dev/null; then
  echo "check-format: $format not found (scripts/setup.sh installs it)" >&2
  exit 2
fi
bad=0
while IFS= read -r file; do
  if ! "$format" --dry-run -Werror "$file" >/dev/null 2>&1; then
    echo "check-format: $file is not formatted; run: $format -i $file" >&2
    bad=$((bad + 1))
  fi
done < <(git ls-files '*.c' '*.cpp' '*.h' '*.cu')
if [ "$bad" -ne 0 ]; then
  echo "check-format: $bad file(s) need formatting" >&2
  exit 1
fi
echo "check-format: all files formatted"
