#!/usr/bin/env bash
# Parse + verify + print of the largest zoo graph (llama3-405b, 126 layers)
# with loom-opt; goal: a few seconds at most. Prints the best of 3 runs next
# to the time loom-models takes to build and print the same graph.
#   bash bench/parse-llama3-405b.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

best() { # best wall time of 3 runs of "$@", in seconds
  local best=999999
  for _ in 1 2 3; do
    local start end
    start=$(date +%s.%N)
    "$@" > /dev/null
    end=$(date +%s.%N)
    best=$(awk -v a="$best" -v b="$(awk -v s="$start" -v e="$end" 'BEGIN{print e-s}')" 'BEGIN{print (b<a)?b:a}')
  done
  echo "$best"
}

$bin/loom-models llama3-405b -o "$tmp/405b.mlir"
bytes=$(wc -c < "$tmp/405b.mlir")
ops=$(grep -c ' = loom\.' "$tmp/405b.mlir")
parse=$(best $bin/loom-opt "$tmp/405b.mlir" -o "$tmp/out.mlir")
build=$(best $bin/loom-models llama3-405b -o "$tmp/again.mlir")
echo "llama3-405b: $ops loom ops, $bytes bytes of IR"
printf "loom-opt parse+verify+print: %.3f s   (goal: a few seconds)\n" "$parse"
printf "loom-models build+verify+print (reference): %.3f s\n" "$build"
printf "ratio parse/build: %.2f\n" "$(awk -v p="$parse" -v b="$build" 'BEGIN{print p/b}')"
