//===- FactorSharding.cpp - Shardings seen through an op's factors --------===//

#include "loom/Sharding/FactorSharding.h"

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
