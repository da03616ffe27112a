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
