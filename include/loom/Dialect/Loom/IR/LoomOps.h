//===- LoomOps.h - Model graph and collective ops ---------------*- C++ -*-===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMOPS_H
#define LOOM_DIALECT_LOOM_IR_LOOMOPS_H

#include "loom/Dialect/Loom/IR/LoomAttrs.h"
#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/Dialect/Loom/IR/OpCost.h"
#include "loom/Dialect/Loom/IR/ShardingRule.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace loom {
class MeshOp;
} // namespace loom

#include "loom/Dialect/Loom/IR/LoomInterfaces.h.inc"

namespace loom::OpTrait {
namespace detail {
/// Checks every statically shaped tensor operand and result of `op`
/// against loom/runtime/TensorLimits.h.
mlir::LogicalResult verifyBoundedTensors(mlir::Operation *op);
} // namespace detail

/// `Loom_BoundedTensors`: shapes small enough for overflow-free arithmetic.
template <typename ConcreteType>
class BoundedTensors
    : public mlir::OpTrait::TraitBase<ConcreteType, BoundedTensors> {
public:
  static mlir::LogicalResult verifyTrait(mlir::Operation *op) {
    return detail::verifyBoundedTensors(op);
  }
};

/// A result may be written over an operand of the same size
/// (`Loom_InPlace` in LoomProgram.td): the memory plan asks this trait.
template <typename ConcreteType>
class InPlace : public mlir::OpTrait::TraitBase<ConcreteType, InPlace> {};
} // namespace loom::OpTrait

#define GET_OP_CLASSES
#include "loom/Dialect/Loom/IR/LoomOps.h.inc"

namespace loom {
/// Builds the cotangents of `op`'s operands through its
/// DifferentiableOpInterface and checks the interface's contract: one entry
/// per operand, each null or of the operand's type. Emits an error on `op`
/// and fails when the op has no vector-Jacobian rule, when its rule fails,
/// or when the rule breaks the contract.
mlir::LogicalResult
buildOperandCotangents(mlir::OpBuilder &builder, mlir::Operation *op,
                       mlir::ValueRange resultCotangents,
                       llvm::SmallVectorImpl<mlir::Value> &operandCotangents);
} // namespace loom

#endif // LOOM_DIALECT_LOOM_IR_LOOMOPS_H
