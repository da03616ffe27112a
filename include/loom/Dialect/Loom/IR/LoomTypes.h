//===- LoomTypes.h - The tensors a program can hold -------------*- C++ -*-===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMTYPES_H
#define LOOM_DIALECT_LOOM_IR_LOOMTYPES_H

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Types.h"

namespace loom {

/// Checks that `type` is a tensor a program can hold: statically shaped,
/// of f32, bf16, f16, i32 or i64 elements, and within the sizes of
/// loom/runtime/TensorLimits.h (so that byte counts cannot overflow).
/// Otherwise reports, after `emitError()`'s prefix, why not.
mlir::LogicalResult verifyProgramTensorType(
    mlir::Type type, llvm::function_ref<mlir::InFlightDiagnostic()> emitError);

} // namespace loom

#endif // LOOM_DIALECT_LOOM_IR_LOOMTYPES_H
