#!/bin/sh
# Fuzzes the Loom program loader with libFuzzer for a bounded time.
#
# usage: runtime/fuzz/run-fuzz.sh [SECONDS] [extra libFuzzer flags...]
#
# Builds runtime/ with clang (CXX, default clang++-22) and ASan + UBSan in
# $LOOM_FUZZ_BUILD (default build-runtime-fuzz next to runtime/), writes a
# seed corpus of valid programs, and runs loom-loader-fuzzer for SECONDS
# (default 60). Crashing inputs land in $LOOM_FUZZ_BUILD/artifacts/.
set -eu

seconds=${1:-60}
[ $# -gt 0 ] && shift
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${LOOM_FUZZ_BUILD:-$(dirname "$src")/build-runtime-fuzz}
cxx=${CXX:-clang++-22}

cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$cxx" -DLOOM_RUNTIME_BUILD_TESTS=OFF \
  -DLOOM_RUNTIME_BUILD_BENCH=OFF -DLOOM_RUNTIME_BUILD_FUZZ=ON >/dev/null
ninja -C "$build" -j2 loom-loader-fuzzer loom-fuzz-seeds

mkdir -p "$build/corpus" "$build/seeds" "$build/artifacts"
"$build/loom-fuzz-seeds" "$build/seeds"
exec "$build/loom-loader-fuzzer" "$build/corpus" "$build/seeds" \
  -max_total_time="$seconds" -max_len=65536 -timeout=10 \
  -artifact_prefix="$build/artifacts/" "$@"
