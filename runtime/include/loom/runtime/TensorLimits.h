//===- TensorLimits.h - The sizes a Loom tensor may have --------*- C++ -*-===//
//
// One rule for the sizes of tensors, shared by the compiler (memory plan,
// verifiers, emitter) and the program loader: dimensions up to 2^40 and up
// to 2^50 elements, so that element counts, byte sizes and arena offsets
// (at most 8 bytes per element) never overflow 64-bit arithmetic. Header-only
// and free of MLIR and exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TENSORLIMITS_H
#define LOOM_RUNTIME_TENSORLIMITS_H

#include <cstddef>
#include <cstdint>

namespace loom::runtime {

constexpr int64_t kMaxTensorDim = int64_t(1) << 40;
constexpr int64_t kMaxTensorElements = int64_t(1) << 50;

/// The number of elements of a tensor of `shape`, or -1 when a dimension is
/// negative or above kMaxTensorDim, or the count above kMaxTensorElements.
inline int64_t checkedNumElements(const int64_t *shape, size_t rank) {
  int64_t n = 1;
  for (size_t i = 0; i < rank; ++i) {
    int64_t d = shape[i];
    if (d < 0 || d > kMaxTensorDim)
      return -1;
    if (d && n > kMaxTensorElements / d)
      return -1;
    n *= d;
  }
  return n;
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TENSORLIMITS_H
