//===- LoomShardingRules.cpp - Sharding rules of the loom ops -------------===//
//
// Element-wise ops take the interface's default (one pass-through factor per
// dimension). Factors are added in the order Shardy adds them, so rules
// print as Shardy prints the rules of the corresponding StableHLO ops.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"

using namespace mlir;
using namespace loom;

ShardingRule MatmulOp::getShardingRule() {
  RankedTensorType lhs = getLhs().getType(), rhs = getRhs().getType();
  int64_t lhsRank = lhs.getRank(), rhsRank = rhs.getRank();
  int64_t batch = lhsRank - 2;
  bool rhsHasBatch = rhsRank > 2;
  int64_t lhsK = getTransposeLhs() ? lhsRank - 2 : lhsRank - 1;
  int64_t lhsM = getTransposeLhs() ? lhsRank - 1 : lhsRank - 2;
  int64_t rhsK = getTransposeRhs() ? rhsRank - 1 : rhsRank - 2;
  int64_t rhsN = getTransposeRhs() ? rhsRank - 2 : rhsRank - 1;

  ShardingRule rule(*this);
  // Batch dimensions pass through; a weight without them is shared by all.
  for (int64_t dim = 0; dim < batch; ++dim) {
    int64_t factor = rule.addFactor(lhs.getDimSize(dim));
    rule.addOperandFactor(0, dim, factor);
    if (rhsHasBatch)
      rule.addOperandFactor(1, dim, factor);
    rule.addResultFactor(0, dim, factor);
  }
  int64_t m = rule.addFactor(lhs.getDimSize(lhsM));
  rule.addOperandFactor(0, lhsM, m);
  rule.addResultFactor(0, batch, m);
  int64_t n = rule.addFactor(rhs.getDimSize(rhsN));
  rule.addOperandFactor(1, rhsN, n);
  rule.addResultFactor(0, batch + 1, n);
  int64_t k = rule.addFactor(lhs.getDimSize(lhsK), FactorKind::Reduction);
  rule.addOperandFactor(0, lhsK, k);
  rule.addOperandFactor(1, rhsK, k);
  return rule;
}

ShardingRule ReshapeOp::getShardingRule() {
  return ShardingRule::getReshape(getInput().getType().getShape(),
                                  getResult().getType().getShape());
}

ShardingRule TransposeOp::getShardingRule() {
  ShardingRule rule(*this);
  RankedTensorType input = getInput().getType();
  for (auto [dim, inputDim] : llvm::enumerate(getPermutation())) {
    int64_t factor = rule.addFactor(input.getDimSize(inputDim));
    rule.addOperandFactor(0, inputDim, factor);
    rule.addResultFactor(0, dim, factor);
  }
  return rule;
}

/// x[..., H] normalized over H with vectors [H] (weight, bias): the leading
/// dimensions pass through; H needs replication, since the statistics of a
/// row span all of it.
static ShardingRule getNormRule(Operation *op) {
  ShardingRule rule(op);
  auto input = cast<RankedTensorType>(op->getOperand(0).getType());
  int64_t last = input.getRank() - 1;
  for (int64_t dim = 0; dim < last; ++dim) {
    int64_t factor = rule.addFactor(input.getDimSize(dim));
    rule.addOperandFactor(0, dim, factor);
    rule.addResultFactor(0, dim, factor);
  }
  int64_t hidden =
      rule.addFactor(input.getDimSize(last), FactorKind::NeedReplication);
  rule.addOperandFactor(0, last, hidden);
  for (unsigned vector = 1; vector < op->getNumOperands(); ++vector)
    rule.addOperandFactor(vector, 0, hidden);
  rule.addResultFactor(0, last, hidden);
  return rule;
}

ShardingRule RmsNormOp::getShardingRule() { return getNormRule(*this); }
ShardingRule LayerNormOp::getShardingRule() { return getNormRule(*this); }

//===----------------------------------------------------------------------===//
// Rules built from factors shared by several tensors
//===----------------------------------------------------------------------===//

namespace {
/// One dimension of one operand or result.
struct TensorDim {
  bool result;
  unsigned index;
  int64_t dim;
};
TensorDim operand(unsigned index, int64_t dim) { return {false, index, dim}; }
TensorDim result(unsigned index, int64_t dim) { return {true, index, dim}; }

/// Adds a factor of `size` and `kind` that makes up each of `dims`.
int64_t share(ShardingRule &rule, int64_t size, FactorKind kind,
              ArrayRef<TensorDim> dims) {
  int64_t factor = rule.addFactor(size, kind);
  for (const TensorDim &d : dims) {
    if (d.result)
      rule.addResultFactor(d.index, d.dim, factor);
    else
      rule.addOperandFactor(d.index, d.dim, factor);
  }
  return factor;
}

int64_t dimSize(Value v, int64_t dim) {
  return cast<ShapedType>(v.getType()).getDimSize(dim);
}
int64_t rankOf(Value v) { return cast<ShapedType>(v.getType()).getRank(); }

/// Every dimension of operand 0 passes through to the same dimension of
/// each listed operand and result, but `special`, which gets `kind`.
ShardingRule alongAxis(Operation *op, int64_t special, FactorKind kind,
                       ArrayRef<unsigned> operands,
                       ArrayRef<unsigned> results) {
  ShardingRule rule(op);
  Value x = op->getOperand(0);
  for (int64_t d = 0; d < rankOf(x); ++d) {
    int64_t factor = rule.addFactor(
        dimSize(x, d), d == special ? kind : FactorKind::PassThrough);
    for (unsigned i : operands)
      rule.addOperandFactor(i, d, factor);
    for (unsigned i : results)
      rule.addResultFactor(i, d, factor);
  }
  return rule;
}

/// Every dimension of `x` is one factor of its own, pass-through (filled or
/// computed element by element) or replicated.
ShardingRule ownFactors(Operation *op, FactorKind kind) {
  ShardingRule rule(op);
  Value y = op->getResult(0);
  for (int64_t d = 0; d < rankOf(y); ++d)
    share(rule, dimSize(y, d), kind, {result(0, d)});
  return rule;
}

int64_t normalizeAxis(int64_t axis, int64_t rank) {
  return axis < 0 ? axis + rank : axis;
}
} // namespace

//===----------------------------------------------------------------------===//
// Constants and softmax, rope
//===----------------------------------------------------------------------===//

// Each rank fills its own piece; a constant's data is one piece, so it is
// replicated.
ShardingRule FillOp::getShardingRule() {
  return ownFactors(*this, FactorKind::PassThrough);
}
ShardingRule ConstantOp::getShardingRule() {
  return ownFactors(*this, FactorKind::NeedReplication);
}

ShardingRule SoftmaxOp::getShardingRule() {
  int64_t axis = normalizeAxis(getAxis(), getInput().getType().getRank());
  return alongAxis(*this, axis, FactorKind::NeedReplication, {0}, {0});
}

ShardingRule SoftmaxGradOp::getShardingRule() {
  int64_t axis = normalizeAxis(getAxis(), getResult().getType().getRank());
  return alongAxis(*this, axis, FactorKind::NeedReplication, {0, 1}, {0});
}

// x[B, S, N, D]: batch, sequence (each rank at its own positions) and heads
// pass through; the rotated pairs (i, i + D/2) need all of D.
ShardingRule RopeOp::getShardingRule() {
  return alongAxis(*this, 3, FactorKind::NeedReplication, {0}, {0});
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// q[B, S, Hq, D], k and v [B, Sk, Hkv, D] and the tensors shaped like them
/// (`likeQuery`, `likeKey`): the batch passes through; the query heads are
/// (key/value head, head in its group), so sharding the key/value heads
/// shards every head of a group together; each query row needs all keys and
/// all of D. The query positions split as `querySeqKind` says: each rank
/// computes its rows against all keys (context parallelism's all-gather
/// form, the rows' position set by query_offset), and in the gradient
/// dk and dv are then partial sums over the query shards.
static ShardingRule getAttentionRule(Operation *op,
                                     ArrayRef<TensorDim> likeQuery,
                                     ArrayRef<TensorDim> likeKey,
                                     FactorKind querySeqKind) {
  ShardingRule rule(op);
  Value q = op->getOperand(0), k = op->getOperand(1);
  int64_t hq = dimSize(q, 2), hkv = dimSize(k, 2);
  auto addTo = [&](int64_t factor, ArrayRef<TensorDim> tensors, int64_t dim) {
    for (const TensorDim &t : tensors) {
      if (t.result)
        rule.addResultFactor(t.index, dim, factor);
      else
        rule.addOperandFactor(t.index, dim, factor);
    }
  };
  int64_t batch = rule.addFactor(dimSize(q, 0));
  addTo(batch, likeQuery, 0);
  addTo(batch, likeKey, 0);
  int64_t seq = rule.addFactor(dimSize(q, 1), querySeqKind);
  addTo(seq, likeQuery, 1);
  int64_t keys = rule.addFactor(dimSize(k, 1), FactorKind::NeedReplication);
  addTo(keys, likeKey, 1);
  int64_t groups = rule.addFactor(hkv);
  addTo(groups, likeQuery, 2);
  addTo(groups, likeKey, 2);
  if (hq != hkv) {
    int64_t inGroup = rule.addFactor(hq / hkv, FactorKind::NeedReplication);
    addTo(inGroup, likeQuery, 2);
  }
  int64_t head = rule.addFactor(dimSize(q, 3), FactorKind::NeedReplication);
  addTo(head, likeQuery, 3);
  addTo(head, likeKey, 3);
  return rule;
}

ShardingRule AttentionOp::getShardingRule() {
  return getAttentionRule(*this, {operand(0, 0), result(0, 0)},
                          {operand(1, 0), operand(2, 0)},
                          FactorKind::PassThrough);
}

ShardingRule AttentionGradOp::getShardingRule() {
  return getAttentionRule(
      *this, {operand(0, 0), operand(3, 0), operand(4, 0), result(0, 0)},
      {operand(1, 0), operand(2, 0), result(1, 0), result(2, 0)},
      FactorKind::Reduction);
}

//===----------------------------------------------------------------------===//
// Embedding and loss
//===----------------------------------------------------------------------===//

// table[V, H], ids[...] -> [..., H]: positions and H pass through; a
// vocabulary split over ranks is the vocab-parallel embedding (each rank
// looks up the ids in its range, the others give 0, and the partial rows
// are summed).
ShardingRule EmbeddingOp::getShardingRule() {
  ShardingRule rule(*this);
  int64_t positions = rankOf(getIds());
  for (int64_t d = 0; d < positions; ++d)
    share(rule, dimSize(getIds(), d), FactorKind::PassThrough,
          {operand(1, d), result(0, d)});
  share(rule, dimSize(getTable(), 1), FactorKind::PassThrough,
        {operand(0, 1), result(0, positions)});
  share(rule, dimSize(getTable(), 0), FactorKind::OwnPartition,
        {operand(0, 0)});
  return rule;
}

// dy[..., H], ids[...] -> table[V, H]: the rows of positions summed.
ShardingRule EmbeddingGradOp::getShardingRule() {
  ShardingRule rule(*this);
  int64_t positions = rankOf(getIds());
  for (int64_t d = 0; d < positions; ++d)
    share(rule, dimSize(getIds(), d), FactorKind::Reduction,
          {operand(0, d), operand(1, d)});
  share(rule, dimSize(getResultGrad(), positions), FactorKind::PassThrough,
        {operand(0, positions), result(0, 1)});
  share(rule, dimSize(getTableGrad(), 0), FactorKind::OwnPartition,
        {result(0, 0)});
  return rule;
}

// logits[..., V], targets[...] -> the mean: summed over positions (the
// partitioner divides by the global count), and a vocabulary split over
// ranks is the vocab-parallel cross-entropy.
ShardingRule CrossEntropyOp::getShardingRule() {
  ShardingRule rule(*this);
  int64_t positions = rankOf(getTargets());
  for (int64_t d = 0; d < positions; ++d) {
    SmallVector<TensorDim> dims = {operand(0, d), operand(1, d)};
    if (getLogsumexp())
      dims.push_back(operand(2, d));
    share(rule, dimSize(getTargets(), d), FactorKind::Reduction, dims);
  }
  share(rule, dimSize(getLogits(), positions), FactorKind::OwnPartition,
        {operand(0, positions)});
  return rule;
}

ShardingRule CrossEntropyGradOp::getShardingRule() {
  ShardingRule rule(*this);
  int64_t positions = rankOf(getTargets());
  for (int64_t d = 0; d < positions; ++d) {
    SmallVector<TensorDim> dims = {operand(0, d), operand(1, d), result(0, d)};
    if (getLogsumexp())
      dims.push_back(operand(3, d));
    share(rule, dimSize(getTargets(), d), FactorKind::PassThrough, dims);
  }
  share(rule, dimSize(getLogits(), positions), FactorKind::OwnPartition,
        {operand(0, positions), result(0, positions)});
  return rule;
}

//===----------------------------------------------------------------------===//
// Norm gradients, grouped matmul
//===----------------------------------------------------------------------===//

/// x, w, dy -> dx, dw (, db): rows pass through to dx and are summed into
/// the weight gradients; H needs replication, as in the norm.
static ShardingRule getNormGradRule(Operation *op) {
  ShardingRule rule(op);
  Value x = op->getOperand(0);
  int64_t last = rankOf(x) - 1;
  for (int64_t d = 0; d < last; ++d)
    share(rule, dimSize(x, d), FactorKind::Reduction,
          {operand(0, d), operand(2, d), result(0, d)});
  int64_t hidden = share(
      rule, dimSize(x, last), FactorKind::NeedReplication,
      {operand(0, last), operand(1, 0), operand(2, last), result(0, last)});
  for (unsigned r = 1; r < op->getNumResults(); ++r)
    rule.addResultFactor(r, 0, hidden);
  return rule;
}

ShardingRule RmsNormGradOp::getShardingRule() { return getNormGradRule(*this); }
ShardingRule LayerNormGradOp::getShardingRule() {
  return getNormGradRule(*this);
}

// x[E, C, K] times w[E, K, N] (or [E, N, K]): experts and rows pass
// through, K is summed.
ShardingRule GroupedMatmulOp::getShardingRule() {
  ShardingRule rule(*this);
  bool tw = getTransposeWeight();
  share(rule, dimSize(getInput(), 0), FactorKind::PassThrough,
        {operand(0, 0), operand(1, 0), result(0, 0)});
  share(rule, dimSize(getInput(), 1), FactorKind::PassThrough,
        {operand(0, 1), result(0, 1)});
  share(rule, dimSize(getResult(), 2), FactorKind::PassThrough,
        {operand(1, tw ? 1 : 2), result(0, 2)});
  share(rule, dimSize(getInput(), 2), FactorKind::Reduction,
        {operand(0, 2), operand(1, tw ? 2 : 1)});
  return rule;
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

// A dimension kept whole passes through; a cut one needs replication.
ShardingRule SliceOp::getShardingRule() {
  ShardingRule rule(*this);
  RankedTensorType in = getInput().getType();
  for (int64_t d = 0; d < in.getRank(); ++d) {
    bool whole = getSizes()[d] == in.getDimSize(d);
    if (whole) {
      share(rule, in.getDimSize(d), FactorKind::PassThrough,
            {operand(0, d), result(0, d)});
      continue;
    }
    share(rule, in.getDimSize(d), FactorKind::NeedReplication, {operand(0, d)});
    share(rule, getSizes()[d], FactorKind::NeedReplication, {result(0, d)});
  }
  return rule;
}

// The joined dimension needs replication; the others pass through.
ShardingRule ConcatOp::getShardingRule() {
  ShardingRule rule(*this);
  int64_t dim = getDim();
  RankedTensorType out = getResult().getType();
  for (int64_t d = 0; d < out.getRank(); ++d) {
    if (d == dim) {
      for (auto [i, input] : llvm::enumerate(getInputs()))
        share(rule, dimSize(input, d), FactorKind::NeedReplication,
              {operand(i, d)});
      share(rule, out.getDimSize(d), FactorKind::NeedReplication,
            {result(0, d)});
      continue;
    }
    int64_t factor = rule.addFactor(out.getDimSize(d));
    for (unsigned i = 0; i < getInputs().size(); ++i)
      rule.addOperandFactor(i, d, factor);
    rule.addResultFactor(0, d, factor);
  }
  return rule;
}

// Input dimension i maps to result dimension dims[i] when they are equal;
// the result's other dimensions repeat the input, so each rank can make
// its own piece of them.
ShardingRule BroadcastOp::getShardingRule() {
  ShardingRule rule(*this);
  RankedTensorType in = getInput().getType(), out = getResult().getType();
  SmallVector<int64_t> inputDimOf(out.getRank(), -1);
  for (auto [i, d] : llvm::enumerate(getDims()))
    inputDimOf[d] = i;
  for (int64_t d = 0; d < out.getRank(); ++d) {
    int64_t i = inputDimOf[d];
    if (i >= 0 && in.getDimSize(i) == out.getDimSize(d)) {
      share(rule, out.getDimSize(d), FactorKind::PassThrough,
            {operand(0, i), result(0, d)});
      continue;
    }
    if (i >= 0)
      share(rule, 1, FactorKind::PassThrough, {operand(0, i)});
    share(rule, out.getDimSize(d), FactorKind::PassThrough, {result(0, d)});
  }
  return rule;
}

// Reduced dimensions are summed (a mean is a sum the partitioner divides by
// the global count, a sum of squares adds its partial sums); a max needs them
// whole.
ShardingRule ReduceOp::getShardingRule() {
  ShardingRule rule(*this);
  RankedTensorType in = getInput().getType();
  SmallVector<bool> reduced(in.getRank(), false);
  for (int64_t d : getDims())
    reduced[normalizeAxis(d, in.getRank())] = true;
  FactorKind summed = getKind() == ReduceKind::max ? FactorKind::NeedReplication
                                                   : FactorKind::Reduction;
  int64_t out = 0;
  for (int64_t d = 0; d < in.getRank(); ++d) {
    if (!reduced[d]) {
      share(rule, in.getDimSize(d), FactorKind::PassThrough,
            {operand(0, d), result(0, out++)});
      continue;
    }
    share(rule, in.getDimSize(d), summed, {operand(0, d)});
    if (getKeepDims())
      share(rule, 1, FactorKind::PassThrough, {result(0, out++)});
  }
  return rule;
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

// Tokens pass through; choosing experts needs all of them.
ShardingRule RouterOp::getShardingRule() {
  ShardingRule rule(*this);
  share(rule, dimSize(getLogits(), 0), FactorKind::PassThrough,
        {operand(0, 0), result(0, 0), result(1, 0)});
  share(rule, dimSize(getLogits(), 1), FactorKind::NeedReplication,
        {operand(0, 1)});
  share(rule, dimSize(getWeights(), 1), FactorKind::NeedReplication,
        {result(0, 1), result(1, 1)});
  return rule;
}

ShardingRule RouterGradOp::getShardingRule() {
  ShardingRule rule(*this);
  share(rule, dimSize(getLogits(), 0), FactorKind::PassThrough,
        {operand(0, 0), operand(1, 0), operand(2, 0), result(0, 0)});
  share(rule, dimSize(getLogits(), 1), FactorKind::NeedReplication,
        {operand(0, 1), result(0, 1)});
  share(rule, dimSize(getIndices(), 1), FactorKind::NeedReplication,
        {operand(1, 1), operand(2, 1)});
  return rule;
}

// Slots are given in token order over all tokens: tokens and slots need
// replication; the experts split into blocks (expert parallelism, the own
// partition: each rank fills its experts' slots, which are those of the
// whole dispatch); the hidden dimension passes through.
/// The token groups of dispatch, combine and combine_grad (token_groups):
/// the major factor of the tokens and of each expert's slots, split like a
/// batch (each rank's groups fill their own slots: Megatron-Core's
/// all-to-all dispatcher), over a factor within a group that needs all of
/// it. `tokens` and `slots` list the dimensions of each.
static void shareTokenGroups(ShardingRule &rule, int64_t groups, int64_t tokens,
                             int64_t slots, ArrayRef<TensorDim> tokenDims,
                             ArrayRef<TensorDim> slotDims) {
  SmallVector<TensorDim> both(tokenDims);
  both.append(slotDims.begin(), slotDims.end());
  share(rule, groups, FactorKind::PassThrough, both);
  share(rule, tokens / groups, FactorKind::NeedReplication, tokenDims);
  share(rule, slots / groups, FactorKind::NeedReplication, slotDims);
}

ShardingRule DispatchOp::getShardingRule() {
  ShardingRule rule(*this);
  shareTokenGroups(rule, getTokenGroups(), dimSize(getInput(), 0),
                   dimSize(getResult(), 1), {operand(0, 0), operand(1, 0)},
                   {result(0, 1)});
  share(rule, dimSize(getIndices(), 1), FactorKind::NeedReplication,
        {operand(1, 1)});
  // Expert parallelism: a rank's block of the experts (expert_start).
  share(rule, dimSize(getResult(), 0), FactorKind::OwnPartition,
        {result(0, 0)});
  share(rule, dimSize(getInput(), 1), FactorKind::PassThrough,
        {operand(0, 1), result(0, 2)});
  return rule;
}

ShardingRule CombineOp::getShardingRule() {
  ShardingRule rule(*this);
  // A block of the experts gives the rank's part of each token's sum.
  share(rule, dimSize(getInput(), 0), FactorKind::OwnPartition,
        {operand(0, 0)});
  shareTokenGroups(
      rule, getTokenGroups(), dimSize(getWeights(), 0), dimSize(getInput(), 1),
      {operand(1, 0), operand(2, 0), result(0, 0)}, {operand(0, 1)});
  share(rule, dimSize(getWeights(), 1), FactorKind::NeedReplication,
        {operand(1, 1), operand(2, 1)});
  share(rule, dimSize(getInput(), 2), FactorKind::PassThrough,
        {operand(0, 2), result(0, 1)});
  return rule;
}

// The weight cotangents sum over the hidden dimension, which the input
// cotangent keeps.
ShardingRule CombineGradOp::getShardingRule() {
  ShardingRule rule(*this);
  share(rule, dimSize(getInput(), 0), FactorKind::OwnPartition,
        {operand(0, 0), result(0, 0)});
  shareTokenGroups(rule, getTokenGroups(), dimSize(getWeights(), 0),
                   dimSize(getInput(), 1),
                   {operand(1, 0), operand(2, 0), operand(3, 0), result(1, 0)},
                   {operand(0, 1), result(0, 1)});
  share(rule, dimSize(getWeights(), 1), FactorKind::NeedReplication,
        {operand(1, 1), operand(2, 1), result(1, 1)});
  share(rule, dimSize(getInput(), 2), FactorKind::Reduction,
        {operand(0, 2), operand(3, 1), result(0, 2)});
  return rule;
}
