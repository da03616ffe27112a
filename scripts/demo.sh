#!/usr/bin/env bash
# Sets Loom up, builds it and runs the main demo: a zoo model is printed as
# loom IR, verified and round-tripped by loom-opt, and summarized.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
export PATH="$PWD/build/bin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

model=${1:-tiny-llama}
echo "== loom-models $model: the forward graph (first lines)"
loom-models "$model" -o "$out/$model.mlir"
head -c 1200 "$out/$model.mlir"; echo " ..."
echo
echo "== loom-opt: parse, verify and print it again"
loom-opt --verify-roundtrip "$out/$model.mlir" -o "$out/$model.roundtrip.mlir"
if cmp -s "$out/$model.mlir" "$out/$model.roundtrip.mlir"; then
  echo "round trip: identical ($(wc -c < "$out/$model.mlir") bytes, $(grep -c ' = loom\.' "$out/$model.mlir") loom ops)"
else
  echo "round trip: texts differ" >&2; exit 1
fi
echo
echo "== loom-models $model --stats"
loom-models "$model" --stats
echo
echo "== llama3-405b at full size"
loom-models llama3-405b --stats
