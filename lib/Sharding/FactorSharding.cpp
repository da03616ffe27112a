//===- FactorSharding.cpp - Shardings seen through an op's factors --------===//

#include "loom/Sharding/FactorSharding.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace loom;

TensorSharding TensorSharding::fromAttr(ShardingAttr attr) {
  TensorSharding s;
  for (unsigned dim = 0, e = attr.getDimAxes().size(); dim < e; ++dim)
    s.dims.push_back(AxisList(attr.getAxesOfDim(dim)));
  for (Attribute axis : attr.getUnreducedAxes())
    s.unreduced.push_back(cast<StringAttr>(axis).getValue());
  return s;
}

ShardingAttr TensorSharding::toAttr(MLIRContext *context,
                                    FlatSymbolRefAttr mesh) const {
  Builder b(context);
  auto strings = [&](const AxisList &axes) {
    SmallVector<Attribute> names;
    for (StringRef axis : axes)
      names.push_back(b.getStringAttr(axis));
    return b.getArrayAttr(names);
  };
  SmallVector<Attribute> dimAxes;
  for (const AxisList &axes : dims)
    dimAxes.push_back(strings(axes));
  return ShardingAttr::get(context, mesh, b.getArrayAttr(dimAxes),
                           strings(unreduced));
}

bool TensorSharding::isReplicated() const {
  return unreduced.empty() &&
         llvm::all_of(dims, [](const AxisList &axes) { return axes.empty(); });
}

ArrayRef<ShardingRule::DimFactors>
loom::getTensorFactors(const ShardingRule &rule, OpTensor tensor) {
  return tensor.result ? rule.getResults()[tensor.index]
                       : rule.getOperands()[tensor.index];
}

int64_t loom::axesSize(const AxisList &axes, MeshAttr mesh) {
  int64_t size = 1;
  for (StringRef axis : axes)
    size *= mesh.getAxisSize(axis);
  return size;
}

SmallVector<AxisList> loom::splitAmongFactors(const AxisList &axes,
                                              ArrayRef<int64_t> factors,
                                              const ShardingRule &rule,
                                              MeshAttr mesh) {
  SmallVector<AxisList> split(factors.size());
  size_t next = 0;
  for (auto [i, factor] : llvm::enumerate(factors)) {
    int64_t size = rule.getFactorSize(factor), taken = 1;
    while (next < axes.size()) {
      int64_t axis = mesh.getAxisSize(axes[next]);
      if (size % (taken * axis) != 0)
        break;
      taken *= axis;
      split[i].push_back(axes[next++]);
    }
    // The next factor starts only where this one is whole: a factor split
    // only partly (size 4 over one axis of 2) ends the dimension's axes.
    if (taken != size && next < axes.size())
      break;
  }
  return split;
}

ShardingAttr loom::getPinnedSharding(Operation *op) {
  if (auto shard = dyn_cast_or_null<ShardOp>(op))
    return shard.getSharding();
  if (auto reshard = dyn_cast_or_null<ReshardOp>(op))
    return reshard.getSharding();
  return {};
}

/// The owner of block argument `arg` when it is a function's argument.
static func::FuncOp argumentOwner(BlockArgument arg) {
  return dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp());
}

ShardingAttr loom::getValueSharding(Value v) {
  if (auto arg = dyn_cast<BlockArgument>(v)) {
    func::FuncOp func = argumentOwner(arg);
    return func ? func.getArgAttrOfType<ShardingAttr>(
                      arg.getArgNumber(), LoomDialect::kShardingAttrName)
                : ShardingAttr();
  }
  Operation *def = v.getDefiningOp();
  if (ShardingAttr pinned = getPinnedSharding(def))
    return pinned;
  Attribute attr = def->getAttr(LoomDialect::kShardingAttrName);
  if (auto array = dyn_cast_or_null<ArrayAttr>(attr))
    return cast<ShardingAttr>(array[cast<OpResult>(v).getResultNumber()]);
  return dyn_cast_or_null<ShardingAttr>(attr);
}

int loom::getShardingPriority(Value v) {
  Attribute attr;
  if (auto arg = dyn_cast<BlockArgument>(v)) {
    if (func::FuncOp func = argumentOwner(arg))
      attr =
          func.getArgAttr(arg.getArgNumber(), LoomDialect::kPriorityAttrName);
  } else {
    Operation *def = v.getDefiningOp();
    attr = def->getAttr(LoomDialect::kPriorityAttrName);
    if (auto array = dyn_cast_or_null<ArrayAttr>(attr))
      attr = array[cast<OpResult>(v).getResultNumber()];
    if (!attr && getPinnedSharding(def))
      return kPinnedPriority;
  }
  if (auto p = dyn_cast_or_null<IntegerAttr>(attr))
    return static_cast<int>(p.getInt());
  return kDefaultPriority;
}

int64_t loom::getStepPart(Operation *op) {
  auto phase = op->getAttrOfType<PhaseAttr>(LoomDialect::kPhaseAttrName);
  if (!phase)
    return -1;
  auto microbatch =
      op->getAttrOfType<IntegerAttr>(LoomDialect::kMicrobatchAttrName);
  bool backward = phase.getValue() != Phase::fwd ||
                  op->hasAttr(LoomDialect::kRecomputedAttrName);
  return 2 * (microbatch ? microbatch.getInt() : 0) + (backward ? 1 : 0);
}

void loom::dropUnprojectableFactors(const ShardingRule &rule, MeshAttr mesh,
                                    MutableArrayRef<AxisList> factorAxes) {
  auto dropInDim = [&](const ShardingRule::DimFactors &factors) {
    bool changed = false, blocked = false;
    for (int64_t factor : factors) {
      AxisList &axes = factorAxes[factor];
      if (blocked && !axes.empty()) {
        axes.clear();
        changed = true;
      }
      if (axes.empty() || axesSize(axes, mesh) != rule.getFactorSize(factor))
        blocked = true;
    }
    return changed;
  };
  // Clearing a factor can block the factors minor to it elsewhere.
  for (bool changed = true; changed;) {
    changed = false;
    for (auto tensors : {rule.getOperands(), rule.getResults()})
      for (const ShardingRule::TensorFactors &tensor : tensors)
        for (const ShardingRule::DimFactors &factors : tensor)
          changed |= dropInDim(factors);
  }
}
