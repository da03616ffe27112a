//===- Reduce.h - Element-wise reductions of the host communicators -------===//
//
// The reduction arithmetic that the local and Gloo communicators share, so
// that both give the same answer: floats are reduced in f32 (bf16/f16 are
// widened on load and rounded once on store), integers in 64 bits; Max/Min
// propagate NaN; Avg is the sum divided by the group size.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_REDUCE_H
#define LOOM_RUNTIME_COMM_REDUCE_H

#include "loom/runtime/Communicator.h"
#include "loom/runtime/DType.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace loom::runtime::comm {

template <typename T> inline T combine(ReduceOp op, T a, T b) {
  switch (op) {
  case ReduceOp::Sum:
  case ReduceOp::Avg:
    return a + b;
  case ReduceOp::Max:
    if (a != a) // NaN wins
      return a;
    if (b != b)
      return b;
    return a < b ? b : a;
  case ReduceOp::Min:
    if (a != a)
      return a;
    if (b != b)
      return b;
    return b < a ? b : a;
  }
  return a;
}

/// out[i] = inputs[0][i] op inputs[1][i] op ... op inputs[n-1][i], combined
/// left to right (rank 0 first) for every i, then divided by n for Avg.
/// `out` may alias any input.
void reduceInOrder(DType dtype, ReduceOp op, const void *const *inputs,
                   int numInputs, void *out, size_t count);

/// Element-wise `inout[i] = inout[i] op in[i]` for f32, i32 or i64 (the
/// types the Gloo communicator reduces on the wire).
void combineInto(DType dtype, ReduceOp op, void *inout, const void *in,
                 size_t count);

/// Divides each element by `n` (the Avg finalization) for f32, i32 or i64.
void divideBy(DType dtype, void *data, size_t count, int n);

/// Widens bf16/f16 to f32 and rounds f32 back to bf16/f16.
void widenToF32(DType dtype, const void *in, float *out, size_t count);
void narrowFromF32(DType dtype, const float *in, void *out, size_t count);

} // namespace loom::runtime::comm

#endif // LOOM_RUNTIME_COMM_REDUCE_H
