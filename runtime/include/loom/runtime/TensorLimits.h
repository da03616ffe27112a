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

#include "loom/runtime/CheckedMath.h"

#include <cstddef>
#include <cstdint>

namespace loom::runtime {

constexpr int64_t kMaxTensorDim = int64_t(1) << 40;
constexpr int64_t kMaxTensorElements = int64_t(1) << 50;
/// The largest arena (and constants blob) of a program, in bytes.
constexpr int64_t kMaxArenaBytes = int64_t(1) << 50;

/// The number of elements of a tensor of `shape`, or -1 when a dimension is
/// negative or above kMaxTensorDim, or the count above kMaxTensorElements.
inline int64_t checkedNumElements(const int64_t *shape, size_t rank) {
  return checkedProduct(shape, rank, 0, kMaxTensorDim, kMaxTensorElements);
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TENSORLIMITS_H
