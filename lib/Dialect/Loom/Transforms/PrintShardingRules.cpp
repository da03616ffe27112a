//===- PrintShardingRules.cpp - Report every op's sharding rule -----------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Dialect/Loom/Transforms/Passes.h"

namespace loom {
#define GEN_PASS_DEF_LOOMPRINTSHARDINGRULESPASS
#include "loom/Dialect/Loom/Transforms/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;

namespace {
struct LoomPrintShardingRulesPass
    : public loom::impl::LoomPrintShardingRulesPassBase<
          LoomPrintShardingRulesPass> {
  void runOnOperation() override {
    WalkResult result = getOperation()->walk([](ShardingRuleOpInterface op) {
      ShardingRule rule = op.getShardingRule();
      if (failed(rule.verify(op)))
        return WalkResult::interrupt();
      op.emitRemark() << "sharding rule: " << rule.str();
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
    markAllAnalysesPreserved();
  }
};
} // namespace
