#!/usr/bin/env bash
# Fuzzes parse + verify (+ print + re-parse) of the loom dialect with
# libFuzzer for a bounded time. Not part of CI.
#   bash scripts/fuzz-parser.sh [SECONDS]      (default 300)
# Builds in build-fuzz/ with clang-22; the corpus grows in build-fuzz/corpus,
# seeded from the lit tests. Crashes are saved as build-fuzz/crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
bash scripts/setup.sh >/dev/null
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang-22 CXX=clang++-22 cmake -G Ninja -S . -B build-fuzz \
    -DCMAKE_BUILD_TYPE=Release -DLOOM_BUILD_FUZZERS=ON \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit
fi
ninja -C build-fuzz -j"${LOOM_JOBS:-2}" loom-parse-fuzzer

corpus=build-fuzz/corpus
if [ ! -d "$corpus" ]; then
  mkdir -p "$corpus"
  # One seed per split-input-file case of the IR tests.
  n=0
  for f in $(find test -name '*.mlir' | sort); do
    csplit -s -z -f "$corpus/seed-$n-" "$f" '/^\/\/ -----/' '{*}' 2>/dev/null || cp "$f" "$corpus/seed-$n-00"
    n=$((n + 1))
  done
fi
dict=$(mktemp)
trap 'rm -f "$dict"' EXIT
for word in loom. func.func tensor 'loom.mesh @' 'mesh = @' '#loom.sharding<@' \
    '#loom.phase<' loom.layer loom.phase loom.constant loom.fill loom.convert \
    unreduced \
    matmul attention rmsnorm layernorm router dispatch combine grouped_matmul \
    all_gather all_reduce reduce_scatter all_to_all collective_permute \
    transpose_rhs causal top_k capacity num_experts gather_dim scatter_dim \
    split_dim concat_dim axes mesh bf16 f16 f32 i32 'array<i64:' loom.param \
    loom.sharding loom.offsets; do
  printf '"%s"\n' "$word" >> "$dict"
done
cd build-fuzz
./bin/loom-parse-fuzzer corpus -dict="$dict" -max_total_time="$seconds" \
  -max_len=4096 -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
  -artifact_prefix=./ 2>&1 | tail -25
