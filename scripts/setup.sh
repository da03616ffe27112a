#!/usr/bin/env bash
# Installs what Loom needs on Debian 12 (as root) and builds it in build/.
# Idempotent and incremental: installed packages are skipped, and Ninja
# rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache git pkg-config
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  clang-22 libclang-rt-22-dev clang-format-22 clang-tidy-22
  libzstd-dev zlib1g-dev
  libflatbuffers-dev flatbuffers-compiler
  libopenblas-openmp-dev libgloo-dev
  libgtest-dev libgmock-dev
  python3 python3-numpy python3-venv
  bible-kjv bible-kjv-text
)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# OpenBLAS built on OpenMP: the CPU kernels' `omp parallel` loops and
# OpenBLAS's gemms then share one pool of threads (GCC's libgomp) instead of
# two pools competing for the cores. Debian installs the variants side by
# side and picks one through alternatives (libopenblas.so.0, libblas.so.3,
# the CMake config Loom finds OpenBLAS by, ...); pthread outranks OpenMP, so
# select every OpenMP alternative, and reconfigure a build that linked
# another variant.
switched=0
while read -r name _; do
  omp=$(update-alternatives --list "$name" 2>/dev/null | grep -m1 /openblas-openmp/) || continue
  [ "$(readlink -f "/etc/alternatives/$name")" = "$(readlink -f "$omp")" ] && continue
  $SUDO update-alternatives --quiet --set "$name" "$omp"
  switched=1
done < <(update-alternatives --get-selections)

LLVM_PREFIX=/usr/lib/llvm-22
if [ "$switched" -eq 1 ] && [ -f build/build.ninja ]; then
  cmake build >/dev/null
fi
if [ ! -f build/build.ninja ]; then
  cmake -G Ninja -S . -B build \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit"
fi

# The default training text of `loom-run --train`: the King James Bible
# (public domain), one verse per line without its reference, 4.1 MB of
# ASCII. Debian ships it compressed for its reader `bible`, which prints
# every verse when given the whole range and no terminal.
KJV=build/data/kjv.txt
if [ ! -s "$KJV" ]; then
  mkdir -p build/data
  bible -f Gen1:1-Rev22:21 </dev/null |
    sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' >"$KJV.tmp"
  verses=$(wc -l <"$KJV.tmp")
  if [ "$verses" -ne 31102 ]; then
    echo "setup: bible printed $verses verses, not the 31102 of the KJV" >&2
    exit 1
  fi
  mv "$KJV.tmp" "$KJV"
fi

ninja -C build -j"${LOOM_JOBS:-2}" "$@"
