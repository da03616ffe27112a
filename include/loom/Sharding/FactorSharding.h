//===- FactorSharding.h - Shardings seen through an op's factors -*- C++
//-*-===//
//
// The common ground of sharding propagation and partitioning: a tensor's
// sharding as mesh axes per dimension, the axes of each factor of an op's
// sharding rule (a dimension's axes split among its factors, major first),
// and back.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_SHARDING_FACTORSHARDING_H
#define LOOM_SHARDING_FACTORSHARDING_H

#include "loom/Dialect/Loom/IR/LoomAttrs.h"
#include "loom/Dialect/Loom/IR/ShardingRule.h"

#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallVector.h"

#include <limits>

namespace loom {

/// Mesh axes, major (outermost) first.
using AxisList = llvm::SmallVector<llvm::StringRef, 2>;

/// A tensor's sharding without its mesh: axes per dimension and the axes
/// over which it is a pending sum.
struct TensorSharding {
  llvm::SmallVector<AxisList> dims;
  AxisList unreduced;

  static TensorSharding replicated(int64_t rank) {
    TensorSharding s;
    s.dims.resize(rank);
    return s;
  }
  static TensorSharding fromAttr(ShardingAttr attr);
  ShardingAttr toAttr(mlir::MLIRContext *context,
                      mlir::FlatSymbolRefAttr mesh) const;
  bool isReplicated() const;
  bool operator==(const TensorSharding &other) const {
    return dims == other.dims && unreduced == other.unreduced;
  }
  bool operator!=(const TensorSharding &other) const {
    return !(*this == other);
  }
};

/// Which tensor of an op: operand or result, by index.
struct OpTensor {
  bool result;
  unsigned index;
};

/// The factors of each dimension of `tensor` in `rule`.
llvm::ArrayRef<ShardingRule::DimFactors>
getTensorFactors(const ShardingRule &rule, OpTensor tensor);

/// Splits the axes of a dimension made of `factors` (major first) among
/// them: each factor takes axes from the front while their product divides
/// its size. Axes that fit no factor are dropped.
llvm::SmallVector<AxisList> splitAmongFactors(const AxisList &axes,
                                              llvm::ArrayRef<int64_t> factors,
                                              const ShardingRule &rule,
                                              MeshAttr mesh);

/// Clears the axes of every factor that cannot split all the tensors it
/// appears in. Within a dimension a factor is split only under more major
/// factors split whole (axes as large as the factor): [B, S] merged into
/// B·S with S alone split is not a block of rows. A factor that cannot split
/// one of its tensors splits none, so that each tensor's piece is what the
/// op computes from the others' pieces.
void dropUnprojectableFactors(const ShardingRule &rule, MeshAttr mesh,
                              llvm::MutableArrayRef<AxisList> factorAxes);

/// Whether `prefix` is a prefix of `axes`.
inline bool isPrefixOf(llvm::ArrayRef<llvm::StringRef> prefix,
                       llvm::ArrayRef<llvm::StringRef> axes) {
  return prefix.size() <= axes.size() &&
         std::equal(prefix.begin(), prefix.end(), axes.begin());
}

/// The product of the sizes of `axes` in `mesh`.
int64_t axesSize(const AxisList &axes, MeshAttr mesh);

/// Sharding priorities, lower is stronger: a pin (loom.shard,
/// loom.reshard), a seed or propagated value without `loom.priority`, and a
/// value no sharding has reached.
constexpr int kPinnedPriority = 0;
constexpr int kDefaultPriority = 1;
constexpr int kUnsetPriority = std::numeric_limits<int>::max();

/// The sharding a pin op (loom.shard, loom.reshard) fixes, or null.
ShardingAttr getPinnedSharding(mlir::Operation *op);

/// The `loom.sharding` `v` carries (argument attribute, pin, or its
/// defining op's attribute, one or one per result), or null.
ShardingAttr getValueSharding(mlir::Value v);

/// The priority of `v`'s sharding: the `loom.priority` of its argument or
/// defining op (an integer, or an array with one per result), else
/// kPinnedPriority for a pin's result and kDefaultPriority for others. (A
/// pin fixes its value's sharding whatever its priority; the priority is
/// how strongly the sharding spreads from there.)
int getShardingPriority(mlir::Value v);

/// The part of a training step `op` belongs to: 2·microbatch for a
/// microbatch's forward, 2·microbatch + 1 for its backward (recomputed
/// forward ops included), -1 outside both (the optimizer, the loss sum).
/// Users of one part share a reshard of a value: a gathered value is made
/// again in the backward instead of being kept from the forward, as
/// Megatron-LM gathers a sequence-parallel input again for the weight
/// gradient and ZeRO-3 a parameter.
int64_t getStepPart(mlir::Operation *op);

} // namespace loom

#endif // LOOM_SHARDING_FACTORSHARDING_H
