//===- ExpertDispatch.cpp - Where MoE layers split their slots ------------===//
//
// The MoE ops (dispatch, combine, combine_grad) count expert capacity per
// token group, a factor of the tokens and of the slots that splits over
// ranks like a batch. Under a plan's expert mesh the slot buffers are
// pinned where the MoE ops and the grouped matmuls read them; the
// partitioner turns each change of split into the dispatcher's collective.
//
//===----------------------------------------------------------------------===//

#include "ExpertDispatch.h"

#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Sharding/FactorSharding.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace loom;

bool loom::needsExpertDispatchPins(const ExpertFolding &folding) {
  return !folding.ep.empty();
}

namespace {

/// The ranks along `axes` of the folded mesh.
int64_t ranksAlong(const ExpertFolding &folding, ArrayRef<std::string> axes) {
  int64_t ranks = 1;
  for (const std::string &axis : axes)
    ranks *= folding.axisSize(axis);
  return ranks;
}

AxisList axisList(ArrayRef<std::string> axes) {
  AxisList list;
  for (const std::string &axis : axes)
    list.push_back(axis);
  return list;
}

} // namespace

LogicalResult loom::pinExpertDispatch(func::FuncOp func,
                                      const ExpertFolding &folding,
                                      TokenDispatcher dispatcher,
                                      FlatSymbolRefAttr mesh, StringRef plan) {
  MLIRContext *context = func.getContext();
  bool allToAll = dispatcher == TokenDispatcher::AllToAll;
  // The ranks that hold tokens apart at the MoE ops, outermost first.
  std::vector<std::string> tokenAxes = folding.edp;
  if (allToAll)
    llvm::append_range(tokenAxes, folding.ep);
  int64_t tokenRanks = ranksAlong(folding, tokenAxes);
  auto slots = [&](ArrayRef<std::string> experts,
                   ArrayRef<std::string> slotAxes) {
    TensorSharding s = TensorSharding::replicated(3);
    s.dims[0] = axisList(experts);
    s.dims[1] = axisList(slotAxes);
    return s.toAttr(context, mesh);
  };
  ShardingAttr atMoeOps =
      allToAll ? slots({}, tokenAxes) : slots(folding.ep, folding.edp);
  ShardingAttr atMatmuls = slots(folding.ep, folding.edp);

  auto groupsFit = [&](Operation *op, int64_t groups, int64_t tokenCount,
                       int64_t slotCount) -> FailureOr<int64_t> {
    if (groups % tokenRanks == 0)
      return groups;
    if (groups == 1 && slotCount == tokenCount)
      return tokenRanks; // dropless
    return op->emitError("plan '")
           << plan << "': the " << tokenRanks << " ranks along "
           << llvm::join(tokenAxes, ", ") << " dispatch their own tokens ("
           << (allToAll ? "dispatcher=alltoall counts expert capacity per rank"
                        : "expert data parallelism keeps each rank's tokens")
           << "), so each must hold whole token groups, but this op's "
           << slotCount << " slots per expert are counted over " << groups
           << " group(s) of its " << tokenCount
           << " tokens; build the model with token_groups a multiple of "
           << tokenRanks << " (loom-models --token-groups " << tokenRanks
           << ") [ep-token-groups]";
  };

  // All-to-all: the slots' split over the tokens' ranks reaches the
  // tokens (the residual stream), so it spreads as weakly as the
  // sequence-parallel seeds it meets there (a pin's strength would override
  // the tensor-parallel seeds of the layers around). Allgather: the
  // experts' split must win over the tokens' at the MoE ops (their tokens
  // are gathered over ep), so the pins are as strong as pins are.
  IntegerAttr strength;
  if (allToAll)
    strength =
        IntegerAttr::get(IntegerType::get(context, 64), kDefaultPriority + 1);
  OpBuilder b(context);
  // A pin of `value` before or after `op`, with its attributes (before the
  // op's own sharding is set).
  auto pin = [&](Operation *op, Value value, ShardingAttr sharding) {
    auto reshard = ReshardOp::create(b, op->getLoc(), value, sharding);
    reshard->setDiscardableAttrs(op->getDiscardableAttrDictionary());
    if (strength)
      reshard->setAttr(LoomDialect::kPriorityAttrName, strength);
    return reshard;
  };
  // The slot buffer a MoE op reads is pinned once per value as the MoE ops
  // split it; a value pinned for the experts' matmuls from one the MoE ops
  // made is read as that one.
  DenseMap<Value, Value> pinned;
  auto pinOperand = [&](Operation *op) {
    OpOperand &operand = op->getOpOperand(0);
    Value &value = pinned[operand.get()];
    if (!value) {
      b.setInsertionPoint(op);
      value = pin(op, operand.get(), atMoeOps);
    }
    operand.set(value);
  };
  // A slot buffer a MoE op makes, as the MoE ops split it, and what the
  // experts' matmuls (and their weight gradients, batched matmuls) read of
  // it as they split it.
  auto pinResult = [&](Operation *op, Value result) {
    b.setInsertionPointAfter(op);
    ReshardOp forMoeOps = pin(op, result, atMoeOps);
    result.replaceAllUsesExcept(forMoeOps, forMoeOps);
    pinned[forMoeOps] = forMoeOps;
    if (atMatmuls == atMoeOps)
      return;
    ReshardOp forMatmuls;
    for (OpOperand &use : llvm::make_early_inc_range(forMoeOps->getUses())) {
      if (!isa<GroupedMatmulOp, MatmulOp>(use.getOwner()))
        continue;
      if (!forMatmuls) {
        b.setInsertionPointAfter(forMoeOps);
        forMatmuls = pin(op, forMoeOps, atMatmuls);
        pinned[forMatmuls] = forMoeOps;
      }
      use.set(forMatmuls);
    }
  };
  WalkResult walk = func.walk([&](Operation *op) {
    if (!isa<DispatchOp, CombineOp, CombineGradOp>(op))
      return WalkResult::advance();
    auto expertsType = cast<RankedTensorType>(
        isa<DispatchOp>(op) ? op->getResult(0).getType()
                            : op->getOperand(0).getType());
    int64_t tokenCount =
        cast<ShapedType>(op->getOperand(1).getType()).getDimSize(0);
    auto fit = [&](auto moeOp) {
      FailureOr<int64_t> groups = groupsFit(
          op, moeOp.getTokenGroups(), tokenCount, expertsType.getDimSize(1));
      if (succeeded(groups))
        moeOp.setTokenGroups(*groups);
      return succeeded(groups);
    };
    if (auto dispatch = dyn_cast<DispatchOp>(op)) {
      if (!fit(dispatch))
        return WalkResult::interrupt();
      pinResult(op, dispatch.getResult());
      // The dispatch itself fills the slots as the MoE ops split them
      // (with the allgather dispatcher its experts' split wins over the
      // tokens' at full strength: its tokens are gathered).
      op->setAttr(LoomDialect::kShardingAttrName, atMoeOps);
      op->setAttr(LoomDialect::kPriorityAttrName,
                  strength ? strength
                           : IntegerAttr::get(IntegerType::get(context, 64),
                                              kPinnedPriority));
    } else if (auto combine = dyn_cast<CombineOp>(op)) {
      if (!fit(combine))
        return WalkResult::interrupt();
      pinOperand(op);
    } else {
      auto grad = cast<CombineGradOp>(op);
      if (!fit(grad))
        return WalkResult::interrupt();
      pinOperand(op);
      pinResult(op, grad.getInputGrad());
    }
    return WalkResult::advance();
  });
  return failure(walk.wasInterrupted());
}
