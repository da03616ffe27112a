//===- LoomTypes.cpp - The tensors a program can hold ---------------------===//

#include "loom/Dialect/Loom/IR/LoomTypes.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/runtime/TensorLimits.h"

#include "mlir/IR/BuiltinTypes.h"

using namespace mlir;

LogicalResult
loom::verifyProgramTensorType(Type type,
                              function_ref<InFlightDiagnostic()> emitError) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape())
    return emitError() << "needs statically shaped tensors, got " << type;
  Type element = tensor.getElementType();
  if (!element.isF32() && !element.isBF16() && !element.isF16() &&
      !element.isSignlessInteger(32) && !element.isSignlessInteger(64))
    return emitError() << "needs tensors of f32, bf16, f16, i32 or i64 "
                          "elements, got "
                       << type;
  ArrayRef<int64_t> shape = tensor.getShape();
  if (runtime::checkedNumElements(shape.data(), shape.size()) < 0)
    return emitError() << "needs tensors of at most 2^50 elements and "
                          "dimensions of at most 2^40, got "
                       << type;
  return success();
}

/// The part of the check every op's tensors face (element types are the
/// ops' own constraints).
static LogicalResult verifyBounded(Operation *op, Type type, StringRef what,
                                   unsigned index) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape())
    return success();
  ArrayRef<int64_t> shape = tensor.getShape();
  if (loom::runtime::checkedNumElements(shape.data(), shape.size()) >= 0)
    return success();
  return op->emitOpError()
         << what << " #" << index << " " << type
         << " exceeds the sizes a program can hold (dimensions up to 2^40, "
            "at most 2^50 elements)";
}

LogicalResult loom::OpTrait::detail::verifyBoundedTensors(Operation *op) {
  for (auto [i, type] : llvm::enumerate(op->getOperandTypes()))
    if (failed(verifyBounded(op, type, "operand", i)))
      return failure();
  for (auto [i, type] : llvm::enumerate(op->getResultTypes()))
    if (failed(verifyBounded(op, type, "result", i)))
      return failure();
  return success();
}
