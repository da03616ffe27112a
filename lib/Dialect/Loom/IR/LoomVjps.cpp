//===- LoomVjps.cpp - Vector-Jacobian rules of the loom ops ---------------===//
//
// Each rule follows the contract in the description of
// DifferentiableOpInterface (LoomInterfaces.td).
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"

#include "mlir/IR/TypeUtilities.h"

using namespace mlir;
using namespace loom;

static bool isFloatTensor(Type type) {
  return isa<FloatType>(getElementTypeOrSelf(type));
}

/// The cotangent `ct` when gradients flow through a value of `type`: null
/// when there is none or the value is an integer tensor.
static Value flowing(Value ct, Type type) {
  return ct && isFloatTensor(type) ? ct : Value();
}

LogicalResult AddOp::buildVjp(OpBuilder &, ValueRange resultCotangents,
                              SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  operandCotangents.assign({ct, ct});
  return success();
}

LogicalResult SubOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                              SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  Value negated;
  if (ct)
    negated =
        ScaleOp::create(builder, getLoc(), ct, builder.getF64FloatAttr(-1.0));
  operandCotangents.assign({ct, negated});
  return success();
}

LogicalResult MulOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                              SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct) {
    operandCotangents.assign(2, Value());
    return success();
  }
  // Each factor's cotangent is the result's times the other factor.
  operandCotangents.push_back(MulOp::create(builder, getLoc(), ct, getRhs()));
  operandCotangents.push_back(MulOp::create(builder, getLoc(), ct, getLhs()));
  return success();
}

LogicalResult ScaleOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                                SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct)
    ct = ScaleOp::create(builder, getLoc(), ct, getFactorAttr());
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult ReshapeOp::buildVjp(OpBuilder &builder,
                                  ValueRange resultCotangents,
                                  SmallVectorImpl<Value> &operandCotangents) {
  Value ct = flowing(resultCotangents[0], getInput().getType());
  if (ct)
    ct = ReshapeOp::create(builder, getLoc(), getInput().getType(), ct);
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult TransposeOp::buildVjp(OpBuilder &builder,
                                    ValueRange resultCotangents,
                                    SmallVectorImpl<Value> &operandCotangents) {
  Value ct = flowing(resultCotangents[0], getInput().getType());
  if (ct) {
    // Result dimension i came from input dimension permutation[i].
    ArrayRef<int64_t> permutation = getPermutation();
    SmallVector<int64_t> inverse(permutation.size());
    for (auto [dim, inputDim] : llvm::enumerate(permutation))
      inverse[inputDim] = dim;
    ct = TransposeOp::create(builder, getLoc(), ct,
                             builder.getDenseI64ArrayAttr(inverse));
  }
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult
loom::buildOperandCotangents(OpBuilder &builder, Operation *op,
                             ValueRange resultCotangents,
                             SmallVectorImpl<Value> &operandCotangents) {
  auto differentiable = dyn_cast<DifferentiableOpInterface>(op);
  if (!differentiable)
    return op->emitOpError("has no vector-Jacobian rule, so gradients cannot "
                           "flow through it");
  if (resultCotangents.size() != op->getNumResults())
    return op->emitOpError("got ")
           << resultCotangents.size() << " result cotangents for "
           << op->getNumResults() << " results";
  for (auto [index, result, ct] :
       llvm::enumerate(op->getResults(), resultCotangents))
    if (ct && ct.getType() != result.getType())
      return op->emitOpError("cotangent of result #")
             << index << " has type " << ct.getType() << ", expected "
             << result.getType();

  operandCotangents.clear();
  if (failed(differentiable.buildVjp(builder, resultCotangents,
                                     operandCotangents)))
    return failure();
  if (operandCotangents.size() != op->getNumOperands())
    return op->emitOpError("vector-Jacobian rule gave ")
           << operandCotangents.size() << " cotangents for "
           << op->getNumOperands() << " operands";
  for (auto [index, operand, ct] :
       llvm::enumerate(op->getOperands(), operandCotangents)) {
    if (!ct)
      continue;
    if (!isFloatTensor(operand.getType()))
      return op->emitOpError("vector-Jacobian rule gave integer operand #")
             << index << " a cotangent";
    if (ct.getType() != operand.getType())
      return op->emitOpError("vector-Jacobian rule gave operand #")
             << index << " a cotangent of type " << ct.getType()
             << ", expected " << operand.getType();
  }
  return success();
}
