//===- LoomOps.cpp - Shape inference and verifiers of the loom ops --------===//
//
// Every check names the offending dimension so that a user can find the
// mistake in a model of hundreds of layers.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "ShapeChecks.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallSet.h"

#include <cmath>

using namespace mlir;
using namespace loom;

// Each op's getProgramOpcode(), from its Loom_Lowers trait (loom-tblgen).
#include "loom/Dialect/Loom/IR/LoomProgramOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Sharding annotations
//===----------------------------------------------------------------------===//

/// A sharding annotation's mesh exists and the sharding fits the value.
static LogicalResult verifyAnnotation(Operation *op, ShardingAttr sharding,
                                      ShapedType type) {
  auto mesh =
      SymbolTable::lookupNearestSymbolFrom<MeshOp>(op, sharding.getMesh());
  if (!mesh)
    return op->emitOpError("names mesh ")
           << sharding.getMesh()
           << ", which no 'loom.mesh' of the module declares";
  return sharding.verifyFor(mesh.getShape(), type,
                            [&] { return op->emitOpError(); });
}

LogicalResult ShardOp::verify() {
  return verifyAnnotation(*this, getSharding(), getInput().getType());
}

LogicalResult ReshardOp::verify() {
  return verifyAnnotation(*this, getSharding(), getInput().getType());
}

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

LogicalResult ConvertOp::verify() {
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  if (in.getShape() != out.getShape())
    return emitOpError("result shape ")
           << shapeString(out.getShape()) << " differs from input shape "
           << shapeString(in.getShape());
  return success();
}

//===----------------------------------------------------------------------===//
// Attention, embedding, loss
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, AttentionOp::getOperationName()};
  FailureOr<RankedTensorType> q = checkAttentionOperands(
      adaptor.getQuery(), adaptor.getKey(), adaptor.getValue(),
      static_cast<int64_t>(adaptor.getQueryOffset()), err);
  if (failed(q))
    return failure();
  results.push_back(*q);
  return success();
}

LogicalResult
AttentionBlockOp::inferReturnTypes(MLIRContext *context,
                                   std::optional<Location> loc, Adaptor adaptor,
                                   SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, AttentionBlockOp::getOperationName()};
  FailureOr<RankedTensorType> q =
      checkAttentionOperands(adaptor.getQuery(), adaptor.getKey(),
                             adaptor.getValue(), std::nullopt, err);
  if (failed(q))
    return failure();
  results.push_back(*q);
  results.push_back(RankedTensorType::get(q->getShape().drop_back(),
                                          Float32Type::get(context)));
  return success();
}

double AttentionOp::getEffectiveScale() {
  if (std::optional<llvm::APFloat> scale = getScale())
    return scale->convertToDouble();
  int64_t headDim = getQuery().getType().getDimSize(3);
  return 1.0 / std::sqrt(static_cast<double>(headDim));
}

LogicalResult EmbeddingOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, EmbeddingOp::getOperationName()};
  auto table = staticTensor(adaptor.getTable(), "table", err);
  auto ids = staticTensor(adaptor.getIds(), "ids", err);
  if (failed(table) || failed(ids))
    return failure();
  if (table->getRank() != 2)
    return err.fail("table must be [vocab, hidden], got rank ",
                    table->getRank());
  SmallVector<int64_t> shape(ids->getShape());
  shape.push_back(table->getDimSize(1));
  results.push_back(RankedTensorType::get(shape, table->getElementType()));
  return success();
}

LogicalResult CrossEntropyOp::inferReturnTypes(MLIRContext *context,
                                               std::optional<Location> loc,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, CrossEntropyOp::getOperationName()};
  auto logits = staticTensor(adaptor.getLogits(), "logits", err);
  auto targets = staticTensor(adaptor.getTargets(), "targets", err);
  if (failed(logits) || failed(targets))
    return failure();
  if (logits->getRank() < 1)
    return err.fail("logits must have a vocabulary dimension");
  ArrayRef<int64_t> positions = logits->getShape().drop_back();
  if (targets->getShape() != positions)
    return err.fail("targets shape ", shapeString(targets->getShape()),
                    " must equal the logits shape without the vocabulary "
                    "dimension, ",
                    shapeString(positions));
  results.push_back(RankedTensorType::get({}, Float32Type::get(context)));
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  return verifyLogSumExp(*this, getLogsumexp(),
                         getLogits().getType().getShape().drop_back());
}

//===----------------------------------------------------------------------===//
// Matmul
//===----------------------------------------------------------------------===//

LogicalResult MatmulOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, MatmulOp::getOperationName()};
  auto lhs = staticTensor(adaptor.getLhs(), "lhs", err);
  auto rhs = staticTensor(adaptor.getRhs(), "rhs", err);
  if (failed(lhs) || failed(rhs))
    return failure();
  int64_t lr = lhs->getRank(), rr = rhs->getRank();
  if (lr < 2 || rr < 2)
    return err.fail("lhs and rhs must have rank >= 2, got ", lr, " and ", rr);
  if (lhs->getElementType() != rhs->getElementType())
    return err.fail("lhs and rhs element types differ: ", lhs->getElementType(),
                    " vs ", rhs->getElementType());
  ArrayRef<int64_t> lBatch = lhs->getShape().drop_back(2);
  ArrayRef<int64_t> rBatch = rhs->getShape().drop_back(2);
  if (rr != 2 && lBatch != rBatch)
    return err.fail("batch dimensions differ: lhs ", shapeString(lBatch),
                    ", rhs ", shapeString(rBatch), " (rhs may also have none)");
  bool tl = adaptor.getTransposeLhs(), tr = adaptor.getTransposeRhs();
  int64_t lhsKDim = tl ? lr - 2 : lr - 1, lhsMDim = tl ? lr - 1 : lr - 2;
  int64_t rhsKDim = tr ? rr - 1 : rr - 2, rhsNDim = tr ? rr - 2 : rr - 1;
  int64_t k = lhs->getDimSize(lhsKDim), rk = rhs->getDimSize(rhsKDim);
  if (k != rk)
    return err.fail("contracting dimensions differ: lhs dim ", lhsKDim, " is ",
                    k, ", rhs dim ", rhsKDim, " is ", rk);
  SmallVector<int64_t> shape(lBatch);
  shape.push_back(lhs->getDimSize(lhsMDim));
  shape.push_back(rhs->getDimSize(rhsNDim));
  results.push_back(RankedTensorType::get(shape, lhs->getElementType()));
  return success();
}

LogicalResult
GroupedMatmulOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                  Adaptor adaptor,
                                  SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, GroupedMatmulOp::getOperationName()};
  auto x = staticTensor(adaptor.getInput(), "input", err);
  auto w = staticTensor(adaptor.getWeight(), "weight", err);
  if (failed(x) || failed(w))
    return failure();
  if (x->getRank() != 3 || w->getRank() != 3)
    return err.fail("input must be [experts, capacity, in] and weight "
                    "[experts, in, out]; got ranks ",
                    x->getRank(), " and ", w->getRank());
  if (x->getElementType() != w->getElementType())
    return err.fail("input and weight element types differ");
  if (x->getDimSize(0) != w->getDimSize(0))
    return err.fail("experts (dim 0) differ: input has ", x->getDimSize(0),
                    ", weight has ", w->getDimSize(0));
  bool tw = adaptor.getTransposeWeight();
  int64_t wk = w->getDimSize(tw ? 2 : 1), wn = w->getDimSize(tw ? 1 : 2);
  if (x->getDimSize(2) != wk)
    return err.fail("contracting dimensions differ: input dim 2 is ",
                    x->getDimSize(2), ", weight dim ", tw ? 2 : 1, " is ", wk);
  results.push_back(RankedTensorType::get(
      {x->getDimSize(0), x->getDimSize(1), wn}, x->getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// Normalization, softmax, rope
//===----------------------------------------------------------------------===//

LogicalResult RmsNormOp::verify() {
  if (failed(verifyEpsilon(*this, getEpsilon().convertToDouble())))
    return failure();
  return verifyNormWeight(*this, getInput().getType(), getWeight(), "weight");
}

LogicalResult LayerNormOp::verify() {
  if (failed(verifyEpsilon(*this, getEpsilon().convertToDouble())) ||
      failed(
          verifyNormWeight(*this, getInput().getType(), getWeight(), "weight")))
    return failure();
  if (Value bias = getBias())
    return verifyNormWeight(*this, getInput().getType(), bias, "bias");
  return success();
}

LogicalResult SoftmaxOp::verify() {
  ShapeErrors err{getLoc(), getOperationName()};
  int64_t rank = getInput().getType().getRank();
  if (rank == 0)
    return emitOpError("input must have rank >= 1");
  if (failed(normalizeDim(getAxis(), rank, "axis", err)))
    return failure();
  return success();
}

LogicalResult RopeOp::verify() {
  RankedTensorType type = getInput().getType();
  if (type.getRank() != 4)
    return emitOpError("input must be [batch, seq, heads, head_dim], got rank ")
           << type.getRank();
  if (type.getDimSize(3) % 2 != 0)
    return emitOpError("head_dim (dim 3) must be even, got ")
           << type.getDimSize(3);
  if (static_cast<int64_t>(getPositionOffset()) < 0)
    return emitOpError("position_offset must be >= 0, got ")
           << static_cast<int64_t>(getPositionOffset());
  if (!(getTheta().convertToDouble() > 0.0))
    return emitOpError("theta must be positive, got ")
           << getTheta().convertToDouble();
  return success();
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::verify() {
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  if (in.getElementType() != out.getElementType())
    return emitOpError("element type changes from ")
           << in.getElementType() << " to " << out.getElementType();
  if (in.getNumElements() != out.getNumElements())
    return emitOpError("input ")
           << shapeString(in.getShape()) << " has " << in.getNumElements()
           << " elements but result " << shapeString(out.getShape()) << " has "
           << out.getNumElements();
  return success();
}

LogicalResult TransposeOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, TransposeOp::getOperationName()};
  auto in = staticTensor(adaptor.getInput(), "input", err);
  if (failed(in))
    return failure();
  ArrayRef<int64_t> perm = adaptor.getPermutation();
  if (static_cast<int64_t>(perm.size()) != in->getRank())
    return err.fail("permutation has ", perm.size(),
                    " entries but the input has rank ", in->getRank());
  SmallVector<bool> seen(perm.size(), false);
  SmallVector<int64_t> shape;
  for (int64_t p : perm) {
    if (p < 0 || p >= in->getRank() || seen[p])
      return err.fail("permutation ", shapeString(perm),
                      " is not a permutation of the input dimensions");
    seen[p] = true;
    shape.push_back(in->getDimSize(p));
  }
  results.push_back(RankedTensorType::get(shape, in->getElementType()));
  return success();
}

LogicalResult SliceOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, SliceOp::getOperationName()};
  auto in = staticTensor(adaptor.getInput(), "input", err);
  if (failed(in))
    return failure();
  ArrayRef<int64_t> offsets = adaptor.getOffsets(), sizes = adaptor.getSizes();
  if (static_cast<int64_t>(offsets.size()) != in->getRank() ||
      static_cast<int64_t>(sizes.size()) != in->getRank())
    return err.fail("offsets and sizes need one entry per input dimension (",
                    in->getRank(), "), got ", offsets.size(), " and ",
                    sizes.size());
  for (int64_t d = 0, e = in->getRank(); d < e; ++d)
    if (offsets[d] < 0 || sizes[d] < 0 ||
        offsets[d] + sizes[d] > in->getDimSize(d))
      return err.fail("dimension ", d, ": slice [", offsets[d], ", ",
                      offsets[d] + sizes[d], ") is outside [0, ",
                      in->getDimSize(d), ")");
  results.push_back(RankedTensorType::get(sizes, in->getElementType()));
  return success();
}

LogicalResult ConcatOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, ConcatOp::getOperationName()};
  if (adaptor.getInputs().empty())
    return err.fail("needs at least one input");
  auto first = staticTensor(adaptor.getInputs().front(), "input #0", err);
  if (failed(first))
    return failure();
  auto dim = normalizeDim(adaptor.getDim(), first->getRank(), "dim", err);
  if (failed(dim))
    return failure();
  SmallVector<int64_t> shape(first->getShape());
  shape[*dim] = 0;
  for (auto [i, v] : llvm::enumerate(adaptor.getInputs())) {
    auto type = staticTensor(v, "input", err);
    if (failed(type))
      return failure();
    if (type->getRank() != first->getRank() ||
        type->getElementType() != first->getElementType())
      return err.fail(
          "input #", i, " has type ", *type,
          ", which does not match input #0's rank and element type");
    for (int64_t d = 0, e = type->getRank(); d < e; ++d)
      if (d != *dim && type->getDimSize(d) != first->getDimSize(d))
        return err.fail("input #", i, " has size ", type->getDimSize(d),
                        " in dimension ", d, " but input #0 has ",
                        first->getDimSize(d));
    shape[*dim] += type->getDimSize(*dim);
  }
  results.push_back(RankedTensorType::get(shape, first->getElementType()));
  return success();
}

LogicalResult BroadcastOp::verify() {
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  ArrayRef<int64_t> dims = getDims();
  if (in.getElementType() != out.getElementType())
    return emitOpError("element type changes from ")
           << in.getElementType() << " to " << out.getElementType();
  if (static_cast<int64_t>(dims.size()) != in.getRank())
    return emitOpError("dims has ")
           << dims.size() << " entries but the input has rank " << in.getRank();
  for (auto [i, d] : llvm::enumerate(dims)) {
    if (d < 0 || d >= out.getRank())
      return emitOpError("dims[")
             << i << "] = " << d << " is out of range for result rank "
             << out.getRank();
    if (i > 0 && d <= dims[i - 1])
      return emitOpError("dims must be strictly increasing");
    int64_t size = in.getDimSize(i);
    if (size != 1 && size != out.getDimSize(d))
      return emitOpError("input dimension ")
             << i << " of size " << size << " cannot broadcast to result "
             << "dimension " << d << " of size " << out.getDimSize(d);
  }
  return success();
}

LogicalResult ReduceOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, ReduceOp::getOperationName()};
  auto in = staticTensor(adaptor.getInput(), "input", err);
  if (failed(in))
    return failure();
  SmallVector<bool> reduced(in->getRank(), false);
  for (int64_t d : adaptor.getDims()) {
    if (d < 0 || d >= in->getRank())
      return err.fail("reduced dimension ", d, " is out of range for rank ",
                      in->getRank());
    if (reduced[d])
      return err.fail("dimension ", d, " is reduced twice");
    reduced[d] = true;
  }
  SmallVector<int64_t> shape;
  for (int64_t d = 0, e = in->getRank(); d < e; ++d) {
    if (!reduced[d])
      shape.push_back(in->getDimSize(d));
    else if (adaptor.getKeepDims())
      shape.push_back(1);
  }
  results.push_back(RankedTensorType::get(shape, in->getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::inferReturnTypes(MLIRContext *context,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, RouterOp::getOperationName()};
  auto logits = staticTensor(adaptor.getLogits(), "logits", err);
  if (failed(logits))
    return failure();
  if (logits->getRank() != 2)
    return err.fail("logits must be [tokens, experts], got rank ",
                    logits->getRank());
  int64_t experts = logits->getDimSize(1), k = adaptor.getTopK();
  if (k < 1 || k > experts)
    return err.fail("top_k = ", k, " must be in [1, ", experts,
                    "] (the number of experts)");
  SmallVector<int64_t> shape{logits->getDimSize(0), k};
  results.push_back(RankedTensorType::get(shape, logits->getElementType()));
  results.push_back(
      RankedTensorType::get(shape, IntegerType::get(context, 32)));
  return success();
}

LogicalResult DispatchOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, DispatchOp::getOperationName()};
  auto x = staticTensor(adaptor.getInput(), "input", err);
  auto idx = staticTensor(adaptor.getIndices(), "indices", err);
  if (failed(x) || failed(idx))
    return failure();
  if (x->getRank() != 2)
    return err.fail("input must be [tokens, hidden], got rank ", x->getRank());
  if (failed(checkRouting(*idx, "indices", x->getDimSize(0), err)))
    return failure();
  // I64Attr accessors return uint64_t; read them as the signed values written.
  int64_t experts = adaptor.getNumExperts(), capacity = adaptor.getCapacity();
  if (experts < 1 || capacity < 1)
    return err.fail("num_experts (", experts, ") and capacity (", capacity,
                    ") must be >= 1");
  std::optional<int64_t> total;
  if (adaptor.getTotalExperts())
    total = static_cast<int64_t>(*adaptor.getTotalExperts());
  if (failed(checkExpertBlock(static_cast<int64_t>(adaptor.getExpertStart()),
                              total, experts, err)) ||
      failed(checkTokenGroups(static_cast<int64_t>(adaptor.getTokenGroups()),
                              x->getDimSize(0), capacity, err)))
    return failure();
  results.push_back(RankedTensorType::get({experts, capacity, x->getDimSize(1)},
                                          x->getElementType()));
  return success();
}

LogicalResult CombineOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &results) {
  ShapeErrors err{loc, CombineOp::getOperationName()};
  auto y = staticTensor(adaptor.getInput(), "input", err);
  auto w = staticTensor(adaptor.getWeights(), "weights", err);
  auto idx = staticTensor(adaptor.getIndices(), "indices", err);
  if (failed(y) || failed(w) || failed(idx))
    return failure();
  if (y->getRank() != 3)
    return err.fail("input must be [experts, capacity, hidden], got rank ",
                    y->getRank());
  if (w->getRank() != 2 || w->getShape() != idx->getShape())
    return err.fail("weights ", shapeString(w->getShape()), " and indices ",
                    shapeString(idx->getShape()),
                    " must both be [tokens, top_k]");
  std::optional<int64_t> total;
  if (adaptor.getTotalExperts())
    total = static_cast<int64_t>(*adaptor.getTotalExperts());
  if (failed(checkExpertBlock(static_cast<int64_t>(adaptor.getExpertStart()),
                              total, y->getDimSize(0), err)) ||
      failed(checkTokenGroups(static_cast<int64_t>(adaptor.getTokenGroups()),
                              w->getDimSize(0), y->getDimSize(1), err)))
    return failure();
  results.push_back(RankedTensorType::get({w->getDimSize(0), y->getDimSize(2)},
                                          y->getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

LogicalResult AdamWOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &results) {
  results.push_back(adaptor.getParam().getType());
  results.push_back(adaptor.getExpAvg().getType());
  results.push_back(adaptor.getExpAvgSq().getType());
  return success();
}

LogicalResult AdamWOp::verify() {
  ArrayRef<int64_t> shape = getParam().getType().getShape();
  for (auto [name, v] : {std::pair{"grad", getGrad()},
                         {"exp_avg", getExpAvg()},
                         {"exp_avg_sq", getExpAvgSq()}}) {
    ArrayRef<int64_t> other = cast<RankedTensorType>(v.getType()).getShape();
    if (other != shape)
      return emitOpError() << name << " shape " << shapeString(other)
                           << " differs from param shape "
                           << shapeString(shape);
  }
  for (auto [name, beta] : {std::pair{"beta1", getBeta1().convertToDouble()},
                            {"beta2", getBeta2().convertToDouble()}})
    if (beta < 0.0 || beta >= 1.0)
      return emitOpError() << name << " must be in [0, 1), got " << beta;
  if (!(getEpsilon().convertToDouble() > 0.0))
    return emitOpError("epsilon must be positive, got ")
           << getEpsilon().convertToDouble();
  if (getWeightDecay().convertToDouble() < 0.0)
    return emitOpError("weight_decay must be >= 0, got ")
           << getWeightDecay().convertToDouble();
  double maxNorm = getMaxGradNorm().convertToDouble();
  if (!(maxNorm >= 0.0) || std::isinf(maxNorm))
    return emitOpError("max_grad_norm must be finite and >= 0, got ")
           << maxNorm;
  if (maxNorm > 0.0 && !getGradNorm())
    return emitOpError("max_grad_norm needs the grad_norm operand");
  return success();
}

#define GET_OP_CLASSES
#include "loom/Dialect/Loom/IR/LoomOps.cpp.inc"
