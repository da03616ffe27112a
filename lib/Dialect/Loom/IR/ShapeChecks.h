//===- ShapeChecks.h - Shape checks shared by the loom op verifiers -------===//
//
// The checks that a forward op and its gradient op (LoomGradientOps.td) make
// alike, so that both name the offending dimension in the same words.
// Internal to the dialect library.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_LIB_DIALECT_LOOM_IR_SHAPECHECKS_H
#define LOOM_LIB_DIALECT_LOOM_IR_SHAPECHECKS_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Operation.h"

#include <optional>
#include <string>

namespace loom {

/// Emits errors at an optional location (builders infer types without one).
struct ShapeErrors {
  std::optional<mlir::Location> loc;
  /// Prefixes messages as op verifiers do: "'loom.matmul' op ...".
  llvm::StringRef opName;

  template <typename... Args> mlir::LogicalResult fail(Args &&...args) const {
    return mlir::emitOptionalError(loc, "'", opName, "' op ",
                                   std::forward<Args>(args)...);
  }
};

/// `[2, 16, 64]`.
std::string shapeString(llvm::ArrayRef<int64_t> shape);

/// `v`'s type as a statically shaped tensor, or an error naming `what`.
mlir::FailureOr<mlir::RankedTensorType>
staticTensor(mlir::Value v, llvm::StringRef what, const ShapeErrors &err);

/// Normalizes a possibly negative dimension index; fails if out of range.
mlir::FailureOr<int64_t> normalizeDim(int64_t dim, int64_t rank,
                                      llvm::StringRef what,
                                      const ShapeErrors &err);

/// Checks that `weight` is a vector matching the last dimension of `input`.
mlir::LogicalResult verifyNormWeight(mlir::Operation *op,
                                     mlir::RankedTensorType input,
                                     mlir::Value weight, llvm::StringRef what);

/// Checks the log-sum-exp of a vocab-parallel cross-entropy (when given):
/// f32, one per position.
mlir::LogicalResult verifyLogSumExp(mlir::Operation *op, mlir::Value logsumexp,
                                    llvm::ArrayRef<int64_t> positions);

/// Checks a normalization's epsilon.
mlir::LogicalResult verifyEpsilon(mlir::Operation *op, double epsilon);

/// Checks attention's q[B, Sq, Hq, D], k and v[B, Sk, Hkv, D]; with
/// `queryOffset`, that the queries stand at positions queryOffset ..
/// queryOffset + Sq - 1 of the keys' sequence (not for a block of the keys,
/// which may lie anywhere). Returns q's type (the result's).
mlir::FailureOr<mlir::RankedTensorType>
checkAttentionOperands(mlir::Value query, mlir::Value key, mlir::Value value,
                       std::optional<int64_t> queryOffset,
                       const ShapeErrors &err);

/// Checks an expert-parallel block: experts start .. start + local - 1 of
/// `total` (default: local).
mlir::LogicalResult checkExpertBlock(int64_t start,
                                     std::optional<int64_t> total,
                                     int64_t local, const ShapeErrors &err);

/// Checks dispatch's token groups: `groups` >= 1 dividing both the tokens
/// and the slots of each expert.
mlir::LogicalResult checkTokenGroups(int64_t groups, int64_t tokens,
                                     int64_t slots, const ShapeErrors &err);

/// Checks a [tokens, k] routing tensor against `tokens`.
mlir::LogicalResult checkRouting(mlir::RankedTensorType routing,
                                 llvm::StringRef what, int64_t tokens,
                                 const ShapeErrors &err);

} // namespace loom

#endif // LOOM_LIB_DIALECT_LOOM_IR_SHAPECHECKS_H
