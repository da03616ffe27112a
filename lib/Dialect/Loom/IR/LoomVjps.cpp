//===- LoomVjps.cpp - Vector-Jacobian rules of the loom ops ---------------===//
//
// Each rule follows the contract in the description of
// DifferentiableOpInterface (LoomInterfaces.td): from the cotangents of an
// op's results, the ops that compute the cotangents of its operands. The
// math of each rule is in docs/OpSemantics.md ("Gradients").
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"

#include "mlir/IR/TypeUtilities.h"

#include <numeric>

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

static RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// A tensor of `type` filled with `value`.
static Value filled(OpBuilder &b, Location loc, Type type, double value) {
  return FillOp::create(b, loc, type, b.getF64FloatAttr(value));
}

/// `v` with its last two dimensions swapped.
static Value transposeLastTwo(OpBuilder &b, Location loc, Value v) {
  int64_t rank = tensorType(v).getRank();
  SmallVector<int64_t> perm(rank);
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[rank - 1], perm[rank - 2]);
  return TransposeOp::create(b, loc, v, b.getDenseI64ArrayAttr(perm));
}

/// `v` [..., n] as [rows, n].
static Value flattenRows(OpBuilder &b, Location loc, Value v) {
  RankedTensorType type = tensorType(v);
  int64_t n = type.getShape().back();
  int64_t rows = n ? type.getNumElements() / n : 0;
  return ReshapeOp::create(
      b, loc, RankedTensorType::get({rows, n}, type.getElementType()), v);
}

/// A rule whose op has no float operand reached by `ct` gives nulls.
static LogicalResult noCotangents(Operation *op,
                                  SmallVectorImpl<Value> &operandCotangents) {
  operandCotangents.assign(op->getNumOperands(), Value());
  return success();
}

//===----------------------------------------------------------------------===//
// Element types and element-wise ops
//===----------------------------------------------------------------------===//

LogicalResult ConvertOp::buildVjp(OpBuilder &builder,
                                  ValueRange resultCotangents,
                                  SmallVectorImpl<Value> &operandCotangents) {
  Value ct = flowing(resultCotangents[0], getInput().getType());
  if (ct)
    ct = ConvertOp::create(builder, getLoc(), getInput().getType(), ct);
  operandCotangents.push_back(ct);
  return success();
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
    negated = NegOp::create(builder, getLoc(), ct);
  operandCotangents.assign({ct, negated});
  return success();
}

LogicalResult MulOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                              SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  // Each factor's cotangent is the result's times the other factor.
  operandCotangents.push_back(MulOp::create(builder, getLoc(), ct, getRhs()));
  operandCotangents.push_back(MulOp::create(builder, getLoc(), ct, getLhs()));
  return success();
}

LogicalResult DivOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                              SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  // z = x / y: dx = ct / y, dy = −ct·x/y² = −(ct·z)/y.
  Location loc = getLoc();
  operandCotangents.push_back(DivOp::create(builder, loc, ct, getRhs()));
  Value ctTimesZ = MulOp::create(builder, loc, ct, getResult());
  Value quotient = DivOp::create(builder, loc, ctTimesZ, getRhs());
  operandCotangents.push_back(NegOp::create(builder, loc, quotient));
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

LogicalResult NegOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                              SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct)
    ct = NegOp::create(builder, getLoc(), ct);
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult SqrtOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                               SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct) {
    // d sqrt(x) = dx / (2 sqrt(x)), from the result.
    Value quotient = DivOp::create(builder, getLoc(), ct, getResult());
    ct = ScaleOp::create(builder, getLoc(), quotient,
                         builder.getF64FloatAttr(0.5));
  }
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult ExpOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                              SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct) // d e^x = e^x dx, from the result.
    ct = MulOp::create(builder, getLoc(), ct, getResult());
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult LogOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                              SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct) // d log x = dx / x.
    ct = DivOp::create(builder, getLoc(), ct, getInput());
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult GeluOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                               SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct)
    ct = GeluGradOp::create(builder, getLoc(), getInput(), ct,
                            getApproximateAttr());
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult SiluOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                               SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct)
    ct = SiluGradOp::create(builder, getLoc(), getInput(), ct);
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult SwigluOp::buildVjp(OpBuilder &builder,
                                 ValueRange resultCotangents,
                                 SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  // silu(gate)·up: d gate = silu'(gate)·(ct·up), d up = ct·silu(gate).
  Location loc = getLoc();
  Value ctUp = MulOp::create(builder, loc, ct, getUp());
  operandCotangents.push_back(
      SiluGradOp::create(builder, loc, getGate(), ctUp));
  Value activated = SiluOp::create(builder, loc, getGate());
  operandCotangents.push_back(MulOp::create(builder, loc, ct, activated));
  return success();
}

//===----------------------------------------------------------------------===//
// Normalization, softmax, position
//===----------------------------------------------------------------------===//

LogicalResult RmsNormOp::buildVjp(OpBuilder &builder,
                                  ValueRange resultCotangents,
                                  SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  auto grad = RmsNormGradOp::create(builder, getLoc(), getInput(), getWeight(),
                                    ct, getEpsilonAttr());
  operandCotangents.assign({grad.getInputGrad(), grad.getWeightGrad()});
  return success();
}

LogicalResult LayerNormOp::buildVjp(OpBuilder &builder,
                                    ValueRange resultCotangents,
                                    SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  auto grad = LayerNormGradOp::create(builder, getLoc(), getInput(),
                                      getWeight(), ct, getEpsilonAttr());
  operandCotangents.assign({grad.getInputGrad(), grad.getWeightGrad()});
  if (getBias())
    operandCotangents.push_back(grad.getBiasGrad());
  return success();
}

LogicalResult SoftmaxOp::buildVjp(OpBuilder &builder,
                                  ValueRange resultCotangents,
                                  SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct)
    ct = SoftmaxGradOp::create(builder, getLoc(), getResult(), ct,
                               getAxisAttr());
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult RopeOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                               SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct) {
    // A rotation's transpose is the rotation by the opposite angle.
    ct = RopeOp::create(builder, getLoc(), ct, getThetaAttr(),
                        getPositionOffsetAttr(),
                        getInverse() ? UnitAttr() : builder.getUnitAttr());
  }
  operandCotangents.push_back(ct);
  return success();
}

//===----------------------------------------------------------------------===//
// Attention, embedding, loss
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::buildVjp(OpBuilder &builder,
                                    ValueRange resultCotangents,
                                    SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  auto grad = AttentionGradOp::create(
      builder, getLoc(), getQuery(), getKey(), getValue(), getResult(), ct,
      getCausalAttr(), getScaleAttr(), getQueryOffsetAttr());
  operandCotangents.assign(
      {grad.getQueryGrad(), grad.getKeyGrad(), grad.getValueGrad()});
  return success();
}

LogicalResult EmbeddingOp::buildVjp(OpBuilder &builder,
                                    ValueRange resultCotangents,
                                    SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct)
    ct = EmbeddingGradOp::create(builder, getLoc(), getTable().getType(), ct,
                                 getIds(), getVocabStartAttr());
  operandCotangents.assign({ct, Value()});
  return success();
}

LogicalResult
CrossEntropyOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                         SmallVectorImpl<Value> &operandCotangents) {
  // The log-sum-exp of the vocab-parallel form is a constant of the loss:
  // exp(logits − logsumexp) is the softmax only where it is the true one,
  // so it gets no cotangent (the form is made after differentiation).
  Value ct = resultCotangents[0];
  if (ct)
    ct = CrossEntropyGradOp::create(
        builder, getLoc(), getLogits().getType(), getLogits(), getTargets(), ct,
        getLogsumexp(), getCountAttr(), getVocabStartAttr());
  operandCotangents.assign({ct, Value()});
  if (getLogsumexp())
    operandCotangents.push_back(Value());
  return success();
}

//===----------------------------------------------------------------------===//
// Matmul
//===----------------------------------------------------------------------===//

LogicalResult MatmulOp::buildVjp(OpBuilder &builder,
                                 ValueRange resultCotangents,
                                 SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  Location loc = getLoc();
  Value a = getLhs(), b = getRhs();
  bool ta = getTransposeLhs(), tb = getTransposeRhs();
  bool shared = tensorType(b).getRank() == 2 && tensorType(a).getRank() > 2;

  // y = op(a)·op(b). d op(a) = ct·op(b)ᵀ, which is a's cotangent, or its
  // transpose when a is transposed.
  Value dOpA = MatmulOp::create(builder, loc, ct, b, false, !tb);
  operandCotangents.push_back(ta ? transposeLastTwo(builder, loc, dOpA) : dOpA);

  // d op(b) = op(a)ᵀ·ct, summed over the batch when b is shared by it.
  Value lhs = a, rhs = ct;
  bool lhsTransposed = ta;
  if (shared) {
    // Fold the batch into the rows: [P·M, K] and [P·M, N].
    if (ta)
      lhs = transposeLastTwo(builder, loc, a);
    lhs = flattenRows(builder, loc, lhs);
    rhs = flattenRows(builder, loc, ct);
    lhsTransposed = false;
  }
  Value db =
      tb ? MatmulOp::create(builder, loc, rhs, lhs, true, lhsTransposed)
         : MatmulOp::create(builder, loc, lhs, rhs, !lhsTransposed, false);
  operandCotangents.push_back(db);
  return success();
}

LogicalResult
GroupedMatmulOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                          SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  Location loc = getLoc();
  bool tw = getTransposeWeight();
  // y[e] = x[e]·op(w[e]): dx[e] = ct[e]·op(w[e])ᵀ; dw[e] = x[e]ᵀ·ct[e]
  // (or its transpose, ct[e]ᵀ·x[e], for a transposed weight).
  operandCotangents.push_back(
      GroupedMatmulOp::create(builder, loc, ct, getWeight(), !tw));
  operandCotangents.push_back(
      tw ? MatmulOp::create(builder, loc, ct, getInput(), true, false)
         : MatmulOp::create(builder, loc, getInput(), ct, true, false));
  return success();
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

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

LogicalResult SliceOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                                SmallVectorImpl<Value> &operandCotangents) {
  Value ct = flowing(resultCotangents[0], getInput().getType());
  if (!ct)
    return noCotangents(*this, operandCotangents);
  // The cotangent padded with zeros back to the input's shape, one
  // dimension at a time.
  Location loc = getLoc();
  RankedTensorType in = tensorType(getInput());
  ArrayRef<int64_t> offsets = getOffsets(), sizes = getSizes();
  for (int64_t d = 0; d < in.getRank(); ++d) {
    int64_t before = offsets[d],
            after = in.getDimSize(d) - offsets[d] - sizes[d];
    if (!before && !after)
      continue;
    SmallVector<Value> pieces;
    auto zeros = [&](int64_t size) {
      SmallVector<int64_t> shape(tensorType(ct).getShape());
      shape[d] = size;
      pieces.push_back(filled(builder, loc,
                              RankedTensorType::get(shape, in.getElementType()),
                              0.0));
    };
    if (before)
      zeros(before);
    pieces.push_back(ct);
    if (after)
      zeros(after);
    ct = ConcatOp::create(builder, loc, pieces, d);
  }
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult ConcatOp::buildVjp(OpBuilder &builder,
                                 ValueRange resultCotangents,
                                 SmallVectorImpl<Value> &operandCotangents) {
  Value ct = flowing(resultCotangents[0], getResult().getType());
  if (!ct)
    return noCotangents(*this, operandCotangents);
  // Each input's cotangent is its piece of the result's.
  int64_t dim = getDim();
  RankedTensorType out = tensorType(getResult());
  int64_t offset = 0;
  for (Value input : getInputs()) {
    RankedTensorType type = tensorType(input);
    SmallVector<int64_t> offsets(out.getRank(), 0);
    offsets[dim] = offset;
    operandCotangents.push_back(SliceOp::create(
        builder, getLoc(), ct, builder.getDenseI64ArrayAttr(offsets),
        builder.getDenseI64ArrayAttr(type.getShape())));
    offset += type.getDimSize(dim);
  }
  return success();
}

LogicalResult BroadcastOp::buildVjp(OpBuilder &builder,
                                    ValueRange resultCotangents,
                                    SmallVectorImpl<Value> &operandCotangents) {
  Value ct = flowing(resultCotangents[0], getInput().getType());
  if (!ct)
    return noCotangents(*this, operandCotangents);
  // Sum over the result dimensions that repeat the input: the new ones and
  // those where the input has size 1.
  RankedTensorType in = tensorType(getInput()), out = tensorType(getResult());
  SmallVector<bool> kept(out.getRank(), false);
  for (auto [inputDim, resultDim] : llvm::enumerate(getDims()))
    kept[resultDim] = in.getDimSize(inputDim) == out.getDimSize(resultDim);
  SmallVector<int64_t> summed;
  for (int64_t d = 0; d < out.getRank(); ++d)
    if (!kept[d])
      summed.push_back(d);
  if (!summed.empty())
    ct =
        ReduceOp::create(builder, getLoc(), ct, ReduceKind::sum, summed, false);
  if (tensorType(ct) != in)
    ct = ReshapeOp::create(builder, getLoc(), in, ct);
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult ReduceOp::buildVjp(OpBuilder &builder,
                                 ValueRange resultCotangents,
                                 SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  if (getKind() == ReduceKind::max)
    return emitOpError("reduce max has no vector-Jacobian rule yet; gradients "
                       "flow only through sum and mean");
  // Every reduced element receives the cotangent of its result (divided by
  // the count for a mean, times 2x for a sum of squares): the cotangent with
  // the reduced dimensions kept as 1, broadcast back.
  Location loc = getLoc();
  RankedTensorType in = tensorType(getInput());
  SmallVector<int64_t> keptShape(in.getShape());
  int64_t count = 1;
  for (int64_t d : getDims()) {
    int64_t dim = d < 0 ? d + in.getRank() : d;
    count *= in.getDimSize(dim);
    keptShape[dim] = 1;
  }
  auto keptType = RankedTensorType::get(keptShape, in.getElementType());
  if (tensorType(ct) != keptType)
    ct = ReshapeOp::create(builder, loc, keptType, ct);
  SmallVector<int64_t> dims(in.getRank());
  std::iota(dims.begin(), dims.end(), 0);
  ct = BroadcastOp::create(builder, loc, in, ct, dims);
  if (getKind() == ReduceKind::mean && count > 1)
    ct =
        ScaleOp::create(builder, loc, ct, builder.getF64FloatAttr(1.0 / count));
  if (getKind() == ReduceKind::sum_squares)
    ct = ScaleOp::create(builder, loc,
                         MulOp::create(builder, loc, ct, getInput()),
                         builder.getF64FloatAttr(2.0));
  operandCotangents.push_back(ct);
  return success();
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::buildVjp(OpBuilder &builder,
                                 ValueRange resultCotangents,
                                 SmallVectorImpl<Value> &operandCotangents) {
  // The weights carry gradients to the logits; the choice of experts
  // (indices) does not.
  Value ct = resultCotangents[0];
  if (ct)
    ct = RouterGradOp::create(builder, getLoc(), getLogits().getType(),
                              getLogits(), getIndices(), ct,
                              getSoftmaxBeforeTopkAttr(), getNormalizeAttr());
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult DispatchOp::buildVjp(OpBuilder &builder,
                                   ValueRange resultCotangents,
                                   SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (ct) {
    // Each token's cotangent sums those of the slots it was copied to: a
    // combine with unit weights over the same slot assignment.
    Type weightsType =
        RankedTensorType::get(tensorType(getIndices()).getShape(),
                              tensorType(getInput()).getElementType());
    Value ones = filled(builder, getLoc(), weightsType, 1.0);
    ct = CombineOp::create(builder, getLoc(), ct, ones, getIndices(),
                           getExpertStartAttr(), getTotalExpertsAttr(),
                           getTokenGroupsAttr());
  }
  operandCotangents.assign({ct, Value()});
  return success();
}

LogicalResult CombineOp::buildVjp(OpBuilder &builder,
                                  ValueRange resultCotangents,
                                  SmallVectorImpl<Value> &operandCotangents) {
  Value ct = resultCotangents[0];
  if (!ct)
    return noCotangents(*this, operandCotangents);
  auto grad = CombineGradOp::create(
      builder, getLoc(), getInput().getType(), getWeights().getType(),
      getInput(), getWeights(), getIndices(), ct, getExpertStartAttr(),
      getTotalExpertsAttr(), getTokenGroupsAttr());
  operandCotangents.assign(
      {grad.getInputGrad(), grad.getWeightsGrad(), Value()});
  return success();
}

//===----------------------------------------------------------------------===//
// Collectives: each one's transpose over the same group
//===----------------------------------------------------------------------===//

LogicalResult AllReduceOp::buildVjp(OpBuilder &, ValueRange resultCotangents,
                                    SmallVectorImpl<Value> &operandCotangents) {
  // Megatron's convention for tensor parallelism: the reduced result feeds
  // computation replicated on every rank of the group, so each rank's
  // cotangent is already the whole one (g in Megatron's f/g pair).
  if (getReduction() != CollectiveReduction::sum)
    return emitOpError("only a sum all_reduce has a vector-Jacobian rule");
  operandCotangents.push_back(flowing(resultCotangents[0], getType()));
  return success();
}

LogicalResult AllGatherOp::buildVjp(OpBuilder &builder,
                                    ValueRange resultCotangents,
                                    SmallVectorImpl<Value> &operandCotangents) {
  Value ct = flowing(resultCotangents[0], getInput().getType());
  if (ct)
    ct = ReduceScatterOp::create(
        builder, getLoc(), getInput().getType(), ct,
        CollectiveReductionAttr::get(getContext(), CollectiveReduction::sum),
        getMeshAttr(), getAxesAttr(), getGatherDimAttr());
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult
ReduceScatterOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                          SmallVectorImpl<Value> &operandCotangents) {
  if (getReduction() != CollectiveReduction::sum)
    return emitOpError("only a sum reduce_scatter has a vector-Jacobian rule");
  Value ct = flowing(resultCotangents[0], getInput().getType());
  if (ct)
    ct = AllGatherOp::create(builder, getLoc(), getInput().getType(), ct,
                             getMeshAttr(), getAxesAttr(), getScatterDimAttr());
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult AllToAllOp::buildVjp(OpBuilder &builder,
                                   ValueRange resultCotangents,
                                   SmallVectorImpl<Value> &operandCotangents) {
  Value ct = flowing(resultCotangents[0], getInput().getType());
  if (ct)
    ct = AllToAllOp::create(builder, getLoc(), getInput().getType(), ct,
                            getMeshAttr(), getAxesAttr(), getConcatDimAttr(),
                            getSplitDimAttr());
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult
CollectivePermuteOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                              SmallVectorImpl<Value> &operandCotangents) {
  Value ct = flowing(resultCotangents[0], getInput().getType());
  if (ct)
    ct = CollectivePermuteOp::create(builder, getLoc(), getInput().getType(),
                                     ct, getMeshAttr(), getAxesAttr(),
                                     builder.getI64IntegerAttr(-getShift()));
  operandCotangents.push_back(ct);
  return success();
}

LogicalResult SendOp::buildVjp(OpBuilder &builder, ValueRange,
                               SmallVectorImpl<Value> &operandCotangents) {
  // The peer that received x sends back its cotangent: receive it from the
  // same peer (called even without result cotangents: a send has none).
  if (!isFloatTensor(getInput().getType()))
    return noCotangents(*this, operandCotangents);
  operandCotangents.push_back(
      RecvOp::create(builder, getLoc(), getInput().getType(), getMeshAttr(),
                     getAxesAttr(), getPeerShiftAttr()));
  return success();
}

LogicalResult RecvOp::buildVjp(OpBuilder &builder, ValueRange resultCotangents,
                               SmallVectorImpl<Value> &) {
  // Send the cotangent back to the peer it came from, zeros when none
  // reaches the result: the peer's backward waits for it either way.
  if (!isFloatTensor(getType()))
    return success();
  Value ct = resultCotangents[0];
  if (!ct)
    ct = filled(builder, getLoc(), getType(), 0.0);
  SendOp::create(builder, getLoc(), ct, getMeshAttr(), getAxesAttr(),
                 getPeerShiftAttr());
  return success();
}

//===----------------------------------------------------------------------===//
// The contract check
//===----------------------------------------------------------------------===//

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
