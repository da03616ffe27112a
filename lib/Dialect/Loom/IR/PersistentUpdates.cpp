//===- PersistentUpdates.cpp - New values of parameters and state ---------===//

#include "loom/Dialect/Loom/IR/PersistentUpdates.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"

#include <numeric>

using namespace mlir;
using namespace loom;

FailureOr<llvm::MapVector<Value, BlockArgument>>
loom::getPersistentUpdates(func::FuncOp func) {
  llvm::MapVector<Value, BlockArgument> updates;
  if (func.isExternal())
    return updates;
  // Arguments by (attribute, name).
  DenseMap<std::pair<StringRef, StringRef>, BlockArgument> persistent;
  for (BlockArgument arg : func.getArguments())
    for (StringRef attr :
         {LoomDialect::kParamAttrName, LoomDialect::kStateAttrName})
      if (auto name =
              func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), attr))
        persistent[{attr, name.getValue()}] = arg;

  Operation *terminator = func.getBody().front().getTerminator();
  llvm::SmallPtrSet<BlockArgument, 8> updated;
  for (auto [i, value] : llvm::enumerate(terminator->getOperands()))
    for (StringRef attr :
         {LoomDialect::kParamAttrName, LoomDialect::kStateAttrName}) {
      auto name = func.getResultAttrOfType<StringAttr>(i, attr);
      if (!name)
        continue;
      BlockArgument arg = persistent.lookup({attr, name.getValue()});
      if (!arg)
        return func.emitError("result #")
               << i << " is the new value of " << attr << " '"
               << name.getValue() << "', but no argument is";
      if (!updated.insert(arg).second || updates.count(value))
        return func.emitError("result #")
               << i << " updates " << attr << " '" << name.getValue()
               << "' a second time";
      if (value == arg)
        return func.emitError("result #")
               << i << " returns " << attr << " '" << name.getValue()
               << "' unchanged; an update must be computed";
      if (value.getType() != arg.getType())
        return func.emitError("result #")
               << i << " (" << value.getType() << ") cannot update " << attr
               << " '" << name.getValue() << "' of type " << arg.getType();
      updates[value] = arg;
    }
  return updates;
}

SmallVector<unsigned> loom::getInPlaceOperands(Operation *op,
                                               unsigned resultIndex) {
  if (isa<AdamWOp>(op)) {
    // New parameter, first and second moments over the old ones.
    static const unsigned kReplaced[] = {0, 2, 3};
    return {kReplaced[resultIndex]};
  }
  if (op->getNumResults() != 1)
    return {};
  SmallVector<unsigned> all(op->getNumOperands());
  std::iota(all.begin(), all.end(), 0);
  return all;
}
