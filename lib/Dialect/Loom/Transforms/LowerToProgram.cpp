//===- LowerToProgram.cpp - Assign every tensor its arena bytes -----------===//

#include "loom/Analysis/MemoryPlan.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Dialect/Loom/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace loom {
#define GEN_PASS_DEF_LOOMLOWERTOPROGRAMPASS
#include "loom/Dialect/Loom/Transforms/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;

namespace {
struct LoomLowerToProgramPass
    : public loom::impl::LoomLowerToProgramPassBase<LoomLowerToProgramPass> {
  using LoomLowerToProgramPassBase::LoomLowerToProgramPassBase;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      materializeOutputs(func);
      FailureOr<MemoryPlan> plan = planMemory(func, reuse);
      if (failed(plan) || failed(checkMemoryPlan(func, *plan)))
        return signalPassFailure();
      annotate(func, *plan);
      if (report)
        emitRemark(func.getLoc())
            << "memory plan: arena " << plan->arenaSize
            << " bytes, live lower bound " << plan->liveLowerBound << " bytes, "
            << plan->numValues << " tensors in " << plan->numStorages
            << " storages";
    }
  }

  /// A program output is a buffer an instruction writes: a function that
  /// returns an argument or a constant as it is (canonicalization can make
  /// it do so) returns a copy of it instead (a conversion to its own type).
  static void materializeOutputs(func::FuncOp func) {
    Operation *terminator = func.getBody().front().getTerminator();
    OpBuilder b(terminator);
    for (OpOperand &operand : terminator->getOpOperands()) {
      Value v = operand.get();
      if (!isa<BlockArgument>(v) && !v.getDefiningOp<ConstantOp>())
        continue;
      operand.set(b.create<ConvertOp>(terminator->getLoc(), v.getType(), v));
    }
  }

  static void annotate(func::FuncOp func, const MemoryPlan &plan) {
    Builder b(func.getContext());
    for (BlockArgument arg : func.getArguments())
      func.setArgAttr(arg.getArgNumber(), LoomDialect::kOffsetAttrName,
                      b.getI64IntegerAttr(plan.offsets.lookup(arg)));
    func.walk([&](Operation *op) {
      // Constants live in the program's constants blob, not the arena.
      if (op->getNumResults() == 0 || isa<func::FuncOp, ConstantOp>(op))
        return;
      SmallVector<int64_t> offsets;
      for (Value result : op->getResults())
        offsets.push_back(plan.offsets.lookup(result));
      op->setAttr(LoomDialect::kOffsetsAttrName,
                  b.getDenseI64ArrayAttr(offsets));
    });
    func->setAttr(LoomDialect::kArenaSizeAttrName,
                  b.getI64IntegerAttr(plan.arenaSize));
  }
};
} // namespace
