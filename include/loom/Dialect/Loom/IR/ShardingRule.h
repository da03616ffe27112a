//===- ShardingRule.h - Factor rules of how an op may be sharded -*- C++
//-*-===//
//
// An op's sharding rule in the style of OpenXLA Shardy's OpShardingRuleAttr:
// the op's iteration space is a list of factors with sizes; each dimension
// of each operand and result is the product of some factors, major to minor.
// Sharding a factor over mesh axes shards every dimension it appears in, so
// propagation moves shardings between tensors through shared factors, and a
// reshape that splits or merges dimensions maps each piece to its own
// factor. Each factor has a kind that says what the op needs when the factor
// is sharded.
//
// Printed as Shardy prints its rules, factors named i, j, k, ...:
//
//   ([i, k], [k, j])->([i, j]) {i=8, j=16, k=32} reduction={k}
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECT_LOOM_IR_SHARDINGRULE_H
#define LOOM_DIALECT_LOOM_IR_SHARDINGRULE_H

#include "mlir/IR/Operation.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/SmallVector.h"

#include <string>

namespace loom {

/// What an op needs when a factor is sharded over some mesh axes.
enum class FactorKind {
  /// Every tensor with the factor is sharded along it the same way, and the
  /// op runs on the shards unchanged (a matmul's batch, M and N; every
  /// dimension of an element-wise op).
  PassThrough,
  /// The op sums over the factor for every result that lacks it (a matmul's
  /// K; the rows of a norm's weight gradient, which the input gradient keeps
  /// and passes through): sharded, each rank computes a partial sum, so those
  /// results keep the axes as unreduced (a pending sum) until an all-reduce
  /// or reduce-scatter completes it.
  Reduction,
  /// The op needs the whole factor on every rank (the normalized dimension of
  /// a norm): a tensor sharded along it is gathered first.
  NeedReplication,
  /// Sharding the factor needs a partitioned form of the op's own (the
  /// vocabulary of an embedding or a cross-entropy: rows out of a rank's
  /// range masked, statistics combined across ranks); the partitioner asks
  /// the op for it, and gathers instead when the op has none.
  OwnPartition,
};

class ShardingRule {
public:
  /// The factors of one dimension, major to minor; their sizes multiply to
  /// the dimension's size.
  using DimFactors = llvm::SmallVector<int64_t, 2>;
  /// One DimFactors per dimension of a tensor.
  using TensorFactors = llvm::SmallVector<DimFactors, 4>;

  /// A rule without factors for tensors of these ranks.
  ShardingRule(llvm::ArrayRef<int64_t> operandRanks,
               llvm::ArrayRef<int64_t> resultRanks);
  /// A rule without factors for `op`'s operands and results.
  explicit ShardingRule(mlir::Operation *op);

  /// The element-wise rule: one pass-through factor per dimension of the
  /// first result, on that dimension of every operand and result.
  static ShardingRule getPointwise(mlir::Operation *op);
  /// The rule of a reshape of `inShape` (operand 0) to `outShape` (result
  /// 0): a dimension split or merged becomes several factors, and a piece of
  /// one shape that has no counterpart in the other (as when [3, 2] becomes
  /// [2, 3]) gets a factor of its own.
  static ShardingRule getReshape(llvm::ArrayRef<int64_t> inShape,
                                 llvm::ArrayRef<int64_t> outShape);

  /// Adds a factor and returns its index.
  int64_t addFactor(int64_t size, FactorKind kind = FactorKind::PassThrough);
  /// Appends `factor` to dimension `dim` of operand `operand` as its next,
  /// more minor, piece.
  void addOperandFactor(unsigned operand, int64_t dim, int64_t factor);
  void addResultFactor(unsigned result, int64_t dim, int64_t factor);

  int64_t getNumFactors() const { return factorSizes.size(); }
  int64_t getFactorSize(int64_t factor) const { return factorSizes[factor]; }
  FactorKind getFactorKind(int64_t factor) const { return factorKinds[factor]; }
  llvm::ArrayRef<TensorFactors> getOperands() const { return operands; }
  llvm::ArrayRef<TensorFactors> getResults() const { return results; }

  /// Checks that the rule fits `op`: one mapping per operand and result, one
  /// entry per dimension, every dimension made of at least one factor whose
  /// sizes multiply to the dimension's size, every factor used. Emits an
  /// error on `op` otherwise.
  mlir::LogicalResult verify(mlir::Operation *op) const;

  /// Shardy's text form, e.g. `([i, j])->([ij]) {i=2, j=4}`.
  void print(llvm::raw_ostream &os) const;
  std::string str() const;

private:
  llvm::SmallVector<int64_t> factorSizes;
  llvm::SmallVector<FactorKind> factorKinds;
  llvm::SmallVector<TensorFactors> operands;
  llvm::SmallVector<TensorFactors> results;
};

inline llvm::raw_ostream &operator<<(llvm::raw_ostream &os,
                                     const ShardingRule &rule) {
  rule.print(os);
  return os;
}

/// Shardy's name of factor `index`: i, j, ..., z, then z_1, z_2, ...
std::string getFactorSymbol(int64_t index);

} // namespace loom

#endif // LOOM_DIALECT_LOOM_IR_SHARDINGRULE_H
