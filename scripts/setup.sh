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
  libopenblas-dev libgloo-dev
  libgtest-dev libgmock-dev
  python3 python3-numpy
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

LLVM_PREFIX=/usr/lib/llvm-22
if [ ! -f build/build.ninja ]; then
  cmake -G Ninja -S . -B build \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit"
fi
ninja -C build -j"${LOOM_JOBS:-2}" "$@"
