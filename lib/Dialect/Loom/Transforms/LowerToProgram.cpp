//===- LowerToProgram.cpp - Assign every tensor its arena bytes -----------===//

#include "loom/Analysis/MemoryPlan.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Dialect/Loom/IR/PersistentUpdates.h"
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
      if (failed(copyLateUpdates(func, reuse)))
        return signalPassFailure();
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
      // (A wait's result is its collective's bytes, not an output buffer.)
      if (!isa<BlockArgument>(v) && !v.getDefiningOp<ConstantOp>() &&
          !v.getDefiningOp<WaitOp>())
        continue;
      operand.set(ConvertOp::create(b, terminator->getLoc(), v.getType(), v));
    }
  }

  /// A new parameter or state value takes its argument's bytes. Computed
  /// in place over the argument by the argument's last reader (adamw), it
  /// is there already; otherwise it is copied there at the end, after every
  /// read of the old value.
  static LogicalResult copyLateUpdates(func::FuncOp func, bool reuse) {
    auto updates = getPersistentUpdates(func);
    if (failed(updates))
      return failure();
    Operation *terminator = func.getBody().front().getTerminator();
    OpBuilder b(terminator);
    for (auto [value, argument] : *updates) {
      if (reuse && isLastReaderInPlace(value, argument))
        continue;
      Value copy = ConvertOp::create(b, value.getLoc(), value.getType(), value);
      for (OpOperand &use : terminator->getOpOperands())
        if (use.get() == value)
          use.set(copy);
    }
    return success();
  }

  /// Whether `value` is computed in place over `argument` by its last
  /// reader (no view of the argument outlives it).
  static bool isLastReaderInPlace(Value value, BlockArgument argument) {
    auto result = dyn_cast<OpResult>(value);
    if (!result)
      return false;
    Operation *op = result.getOwner();
    if (!op->hasTrait<loom::OpTrait::InPlace>())
      return false;
    bool tied =
        llvm::any_of(getInPlaceOperands(op, result.getResultNumber()),
                     [&](unsigned i) { return op->getOperand(i) == argument; });
    return tied && llvm::all_of(argument.getUsers(), [&](Operation *user) {
             return user == op ||
                    (!isa<ReshapeOp>(user) && user->isBeforeInBlock(op));
           });
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
