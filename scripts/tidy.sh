#!/usr/bin/env bash
# Runs clang-tidy-22 with the tree's .clang-tidy over the given files (default:
# the compiler's and runtime's sources), using build/compile_commands.json.
# Not part of CI: a full run takes long on a small machine.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -f build/compile_commands.json ] || bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  mapfile -t files < <(git ls-files 'lib/*.cpp' 'tools/*.cpp' 'runtime/src/*.cpp')
else
  files=("$@")
fi
exec clang-tidy-22 -p build --quiet "${files[@]}"
