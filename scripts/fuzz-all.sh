#!/usr/bin/env bash
# Runs every fuzzer of Loom for a fixed number of inputs each and prints, per
# fuzzer, the runs, the coverage libFuzzer reached (edges of Loom's own code,
# which the fuzzing builds instrument) and whether anything crashed. Not part
# of CI: it builds two clang-22 trees (build-fuzz, build-runtime-fuzz).
#   bash scripts/fuzz-all.sh [RUNS]        (default 1000000 each)
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
bash scripts/setup.sh >/dev/null

# The compiler, instrumented: parse + verify + print + re-parse of loom IR.
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang-22 CXX=clang++-22 cmake -G Ninja -S . -B build-fuzz \
    -DCMAKE_BUILD_TYPE=Release -DLOOM_BUILD_FUZZERS=ON \
    -DLOOM_RUNTIME_ENABLE_CUDA=OFF \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit >/dev/null
fi
ninja -C build-fuzz -j"${LOOM_JOBS:-2}" loom-parse-fuzzer || exit 1

# The runtime's loader and .npy reader.
rt=build-runtime-fuzz
cmake -S runtime -B "$rt" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-22 -DLOOM_RUNTIME_BUILD_TESTS=OFF \
  -DLOOM_RUNTIME_BUILD_BENCH=OFF -DLOOM_RUNTIME_BUILD_FUZZ=ON \
  -DLOOM_RUNTIME_ENABLE_CUDA=OFF >/dev/null
ninja -C "$rt" -j"${LOOM_JOBS:-2}" loom-loader-fuzzer loom-npy-fuzzer \
  loom-fuzz-seeds || exit 1

seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
# Seeds: every split-input-file case of the IR tests; valid programs; the
# .npy files of a run.
mkdir -p "$seeds/ir" "$seeds/programs" "$seeds/npy"
n=0
for f in $(find test -name '*.mlir' | sort); do
  csplit -s -z -f "$seeds/ir/seed-$n-" "$f" '/^\/\/ -----/' '{*}' 2>/dev/null ||
    cp "$f" "$seeds/ir/seed-$n-00"
  n=$((n + 1))
done
"$rt/loom-fuzz-seeds" "$seeds/programs"
build/bin/loom-run test/tools/loom-run/Inputs/gather-sum.mlir \
  --outputs "$seeds/npy" --quiet >/dev/null 2>&1 || true

run() { # NAME FUZZER SEEDS [FLAGS...]
  local name=$1 fuzzer=$2 seed=$3
  shift 3
  local corpus="build-fuzz/corpus-$name"
  mkdir -p "$corpus" "build-fuzz/artifacts-$name"
  local log
  log=$("$fuzzer" "$corpus" "$seed" -runs="$runs" -timeout=10 \
    -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts-$name/" "$@" 2>&1)
  local status=$?
  local done cov
  done=$(grep -o 'stat::number_of_executed_units: *[0-9]*' <<<"$log" |
    grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' <<<"$log" | tail -1 | grep -o '[0-9]*$')
  printf '%-8s runs %-9s coverage %-6s %s\n' "$name" "${done:-?}" \
    "${cov:-?}" "$([ $status -eq 0 ] && echo 'no crash' ||
                   echo "CRASH (build-fuzz/artifacts-$name/)")"
  [ $status -eq 0 ]
}

failed=0
run parser build-fuzz/bin/loom-parse-fuzzer "$seeds/ir" -max_len=4096 ||
  failed=1
run loader "$rt/loom-loader-fuzzer" "$seeds/programs" -max_len=65536 ||
  failed=1
run npy "$rt/loom-npy-fuzzer" "$seeds/npy" -max_len=4096 || failed=1
exit $failed
