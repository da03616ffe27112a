//===- LoomGradientOps.cpp - Verifiers of the backward-pass ops -----------===//
//
// Each gradient op checks its forward operands as the forward op does
// (ShapeChecks.h) and the cotangents against them; the types of the
// cotangents that match an operand are checked by the ops' AllTypesMatch.
//
//===----------------------------------------------------------------------===//

#include "ShapeChecks.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"

using namespace mlir;
using namespace loom;

LogicalResult RmsNormGradOp::verify() {
  if (failed(verifyEpsilon(*this, getEpsilon().convertToDouble())))
    return failure();
  return verifyNormWeight(*this, getInput().getType(), getWeight(), "weight");
}

LogicalResult LayerNormGradOp::verify() {
  if (failed(verifyEpsilon(*this, getEpsilon().convertToDouble())))
    return failure();
  return verifyNormWeight(*this, getInput().getType(), getWeight(), "weight");
}

LogicalResult SoftmaxGradOp::verify() {
  ShapeErrors err{getLoc(), getOperationName()};
  int64_t rank = getResult().getType().getRank();
  if (rank == 0)
    return emitOpError("result must have rank >= 1");
  return normalizeDim(getAxis(), rank, "axis", err);
}

LogicalResult AttentionGradOp::verify() {
  ShapeErrors err{getLoc(), getOperationName()};
  return checkAttentionOperands(getQuery(), getKey(), getValue(),
                                static_cast<int64_t>(getQueryOffset()), err);
}

LogicalResult AttentionBlockGradOp::verify() {
  ShapeErrors err{getLoc(), getOperationName()};
  FailureOr<RankedTensorType> q = checkAttentionOperands(
      getQuery(), getKey(), getValue(), std::nullopt, err);
  if (failed(q))
    return failure();
  RankedTensorType lse = getLogsumexp().getType();
  if (lse.getShape() != q->getShape().drop_back() ||
      !lse.getElementType().isF32())
    return emitOpError("logsumexp must be f32 ")
           << shapeString(q->getShape().drop_back())
           << " (the query's shape without the head dim), got " << lse;
  return success();
}

LogicalResult CrossEntropyGradOp::verify() {
  RankedTensorType logits = getLogits().getType();
  if (logits.getRank() < 1)
    return emitOpError("logits must have a vocabulary dimension");
  ArrayRef<int64_t> positions = logits.getShape().drop_back();
  ArrayRef<int64_t> targets = getTargets().getType().getShape();
  if (targets != positions)
    return emitOpError("targets shape ")
           << shapeString(targets)
           << " must equal the logits shape without the vocabulary "
              "dimension, "
           << shapeString(positions);
  return verifyLogSumExp(*this, getLogsumexp(), positions);
}

LogicalResult EmbeddingGradOp::verify() {
  RankedTensorType table = getTableGrad().getType();
  RankedTensorType dy = getResultGrad().getType();
  if (table.getRank() != 2)
    return emitOpError("table_grad must be [vocab, hidden], got rank ")
           << table.getRank();
  SmallVector<int64_t> expected(getIds().getType().getShape());
  expected.push_back(table.getDimSize(1));
  if (dy.getShape() != ArrayRef<int64_t>(expected))
    return emitOpError("result_grad shape ")
           << shapeString(dy.getShape()) << " must be the ids shape times "
           << "the hidden size, " << shapeString(expected);
  if (dy.getElementType() != table.getElementType())
    return emitOpError("result_grad element type ")
           << dy.getElementType() << " differs from table_grad's "
           << table.getElementType();
  return success();
}

LogicalResult RouterGradOp::verify() {
  ShapeErrors err{getLoc(), getOperationName()};
  RankedTensorType logits = getLogits().getType();
  if (logits.getRank() != 2)
    return emitOpError("logits must be [tokens, experts], got rank ")
           << logits.getRank();
  RankedTensorType indices = getIndices().getType();
  RankedTensorType dw = getWeightsGrad().getType();
  if (failed(checkRouting(indices, "indices", logits.getDimSize(0), err)))
    return failure();
  if (dw.getShape() != indices.getShape())
    return emitOpError("weights_grad shape ")
           << shapeString(dw.getShape()) << " differs from indices shape "
           << shapeString(indices.getShape());
  if (dw.getElementType() != logits.getElementType())
    return emitOpError("weights_grad element type ")
           << dw.getElementType() << " differs from the logits' "
           << logits.getElementType();
  int64_t k = indices.getDimSize(1), experts = logits.getDimSize(1);
  if (k < 1 || k > experts)
    return emitOpError("top_k = ")
           << k << " must be in [1, " << experts << "] (the number of experts)";
  return success();
}

LogicalResult CombineGradOp::verify() {
  ShapeErrors err{getLoc(), getOperationName()};
  RankedTensorType y = getInput().getType();
  RankedTensorType w = getWeights().getType();
  RankedTensorType idx = getIndices().getType();
  RankedTensorType dout = getResultGrad().getType();
  if (y.getRank() != 3)
    return emitOpError("input must be [experts, capacity, hidden], got rank ")
           << y.getRank();
  if (w.getRank() != 2 || w.getShape() != idx.getShape())
    return emitOpError("weights ")
           << shapeString(w.getShape()) << " and indices "
           << shapeString(idx.getShape()) << " must both be [tokens, top_k]";
  SmallVector<int64_t> expected{w.getDimSize(0), y.getDimSize(2)};
  if (dout.getShape() != ArrayRef<int64_t>(expected) ||
      dout.getElementType() != y.getElementType())
    return emitOpError("result_grad ")
           << dout << " must be the combined result, "
           << RankedTensorType::get(expected, y.getElementType());
  std::optional<int64_t> total;
  if (getTotalExperts())
    total = static_cast<int64_t>(*getTotalExperts());
  if (failed(checkExpertBlock(static_cast<int64_t>(getExpertStart()), total,
                              y.getDimSize(0), err)))
    return failure();
  return checkTokenGroups(static_cast<int64_t>(getTokenGroups()),
                          w.getDimSize(0), y.getDimSize(1), err);
}
