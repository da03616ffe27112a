//===- OpCost.h - FLOPs and bytes of one op ---------------------*- C++ -*-===//
//
// What `CostOpInterface` (LoomInterfaces.td) reports, and the tensor sizes
// its default implementations count.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECT_LOOM_IR_OPCOST_H
#define LOOM_DIALECT_LOOM_IR_OPCOST_H

#include "mlir/IR/TypeRange.h"

namespace loom {

/// The work of one op. FLOPs are doubles: a step of a large model exceeds
/// what an int64_t holds once summed, and a roofline divides them anyway.
struct OpCost {
  /// Multiply-adds of contractions, two FLOPs each: what matrix units run and
  /// what model-FLOPs accounting (MFU) counts.
  double matmulFlops = 0;
  /// All other arithmetic: what vector units run.
  double vectorFlops = 0;
  int64_t bytesRead = 0;
  int64_t bytesWritten = 0;

  double getFlops() const { return matmulFlops + vectorFlops; }
  int64_t getBytes() const { return bytesRead + bytesWritten; }
};

/// Bytes of a statically shaped tensor: elements times the element type's
/// bytes (sub-byte types round up).
int64_t getTensorBytes(mlir::Type type);
/// Sum of getTensorBytes over `types`.
int64_t getTensorBytes(mlir::TypeRange types);
/// Sum of the element counts of the tensors `types`.
int64_t getNumElements(mlir::TypeRange types);

} // namespace loom

#endif // LOOM_DIALECT_LOOM_IR_OPCOST_H
