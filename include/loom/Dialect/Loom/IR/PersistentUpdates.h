//===- PersistentUpdates.h - New values of parameters and state -*- C++ -*-===//
//
// A training step returns the new value of each parameter and optimizer
// state it updates: a function result marked `loom.param = "w"` (or
// `loom.state`) is the new value of the argument marked the same way. A
// program keeps parameters and state in place across steps, so the memory
// plan puts such a value in its argument's bytes and the emitter binds it
// through the argument.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECT_LOOM_IR_PERSISTENTUPDATES_H
#define LOOM_DIALECT_LOOM_IR_PERSISTENTUPDATES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/MapVector.h"

namespace loom {

/// Returned value → the argument it updates, in result order. Fails with a
/// diagnostic when a marked result names no argument of its kind, names
/// one twice, or returns the argument itself.
mlir::FailureOr<llvm::MapVector<mlir::Value, mlir::BlockArgument>>
getPersistentUpdates(mlir::func::FuncOp func);

/// The operands result `resultIndex` of a `Loom_InPlace` op may be written
/// over: any operand of a one-result op; for adamw, the parameter and
/// moments its results replace.
llvm::SmallVector<unsigned> getInPlaceOperands(mlir::Operation *op,
                                               unsigned resultIndex);

} // namespace loom

#endif // LOOM_DIALECT_LOOM_IR_PERSISTENTUPDATES_H
