//===- ModelStats.cpp - Parameter and FLOP counts of a graph --------------===//

#include "loom/Analysis/ModelStats.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/runtime/CheckedMath.h"

#include "llvm/ADT/SmallPtrSet.h"

using namespace mlir;
using namespace loom;

static int64_t numElements(Value v) {
  return cast<ShapedType>(v.getType()).getNumElements();
}

/// The router whose choices place the rows of `v`, found by walking back
/// through the ops between a `loom.dispatch` and an expert matmul.
static RouterOp findRouter(Value v) {
  SmallVector<Value> worklist{v};
  llvm::SmallPtrSet<Operation *, 16> visited;
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val().getDefiningOp();
    if (!op || !visited.insert(op).second)
      continue;
    if (auto dispatch = dyn_cast<DispatchOp>(op))
      return dispatch.getIndices().getDefiningOp<RouterOp>();
    llvm::append_range(worklist, op->getOperands());
  }
  return {};
}

/// Fraction of `param`'s elements a token uses.
static double activeFraction(BlockArgument param) {
  for (Operation *user : param.getUsers()) {
    auto grouped = dyn_cast<GroupedMatmulOp>(user);
    if (!grouped || grouped.getWeight() != param)
      continue;
    if (RouterOp router = findRouter(grouped.getInput())) {
      int64_t experts =
          cast<ShapedType>(router.getLogits().getType()).getDimSize(1);
      return static_cast<double>(router.getTopK()) / experts;
    }
  }
  return 1.0;
}

FailureOr<ModelStats> loom::computeModelStats(func::FuncOp func) {
  ModelStats stats;
  double active = 0;
  for (BlockArgument arg : func.getArguments()) {
    unsigned i = arg.getArgNumber();
    if (auto input =
            func.getArgAttrOfType<StringAttr>(i, LoomDialect::kInputAttrName);
        input && input.getValue() == "tokens")
      stats.tokens = numElements(arg);
    if (!func.getArgAttr(i, LoomDialect::kParamAttrName))
      continue;
    // Each tensor has at most 2^50 elements, but a graph may have many.
    if (!runtime::checkedAccumulate(stats.totalParams, numElements(arg)))
      return func.emitError("model statistics: the parameters number more "
                            "than 2^63 elements");
    active += activeFraction(arg) * numElements(arg);
  }
  if (stats.tokens == 0)
    return func.emitError("model statistics need an argument marked {")
           << LoomDialect::kInputAttrName << " = \"tokens\"}";
  stats.activeParams = static_cast<int64_t>(active + 0.5);
  func.walk(
      [&](CostOpInterface op) { stats.forwardFlops += op.getMatmulFlops(); });
  return stats;
}
