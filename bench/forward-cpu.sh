#!/usr/bin/env bash
# Forward pass on one CPU rank next to the same matmuls alone through
# OpenBLAS, in the same process: tiny-gpt and a mid-size GPT (hidden 1024,
# 4 layers, seq 512). Goal: the mid-size forward within 1.3x of its matmuls.
#   bash bench/forward-cpu.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin
runs=${1:-10}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

compile() { # name, loom-models args...
  local name=$1; shift
  $bin/loom-models "$@" -o "$tmp/$name.mlir"
  $bin/loom-opt "$tmp/$name.mlir" -loom-lower-to-program |
    $bin/loom-translate --loom-to-program -o "$tmp/$name.loom"
}
compile tiny-gpt tiny-gpt
compile mid-gpt tiny-gpt --hidden 1024 --heads 16 --kv-heads 16 --ffn 4096 \
  --layers 4 --seq 512 --batch 1 --vocab 32000
echo "OpenBLAS threads: ${OPENBLAS_NUM_THREADS:-default}"
echo "== tiny-gpt"
$bin/loom-bench-program "$tmp/tiny-gpt.loom" "$((runs * 100))"
echo "== mid-size GPT (hidden 1024, 4 layers, seq 512, vocab 32000)"
$bin/loom-bench-program "$tmp/mid-gpt.loom" "$runs"
