//===- Pipelines.cpp - Loom's named pass pipelines ------------------------===//

#include "loom/Pipelines/Pipelines.h"
#include "loom/Dialect/Loom/Transforms/Passes.h"
#include "loom/Pipelining/Passes.h"
#include "loom/Plan/PlanSpec.h"
#include "loom/Sharding/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void loom::buildLoomForwardToProgramPipeline(
    OpPassManager &pm, const ForwardToProgramOptions &options) {
  if (options.simplify) {
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
  }
  LoomLowerToProgramPassOptions lower;
  lower.reuse = options.reuse;
  lower.report = options.report;
  pm.addPass(createLoomLowerToProgramPass(lower));
}

void loom::buildLoomParallelizePipeline(OpPassManager &pm,
                                        const ParallelizeOptions &options) {
  LoomApplyPlanPassOptions apply;
  apply.plan = options.plan;
  apply.worldSize = options.worldSize;
  pm.addPass(createLoomApplyPlanPass(apply));
  pm.addPass(createLoomPropagateShardingPass());
  // ZeRO moves the optimizer onto the shardings the first propagation found
  // for its parameters; a second one spreads what that changed. (A plan that
  // does not parse is reported by -loom-apply-plan.)
  llvm::Expected<PlanSpec> spec = parsePlanSpec(options.plan);
  if (!spec)
    llvm::consumeError(spec.takeError());
  else if (spec->zero > 0) {
    LoomShardOptimizerPassOptions optimizer;
    optimizer.zero = spec->zero;
    pm.addPass(createLoomShardOptimizerPass(optimizer));
    pm.addPass(createLoomPropagateShardingPass());
  }
  pm.addPass(createLoomPartitionPass());
  // Context parallelism's ring (p2p, Megatron's default exchange) from the
  // all-gather form partitioning gives; for all_gather, the form itself in
  // the load-balanced order.
  CpCommType cpComm =
      spec ? spec->cpComm.value_or(CpCommType::P2P) : CpCommType::P2P;
  if (spec && spec->cp > 1 &&
      (cpComm == CpCommType::P2P || cpComm == CpCommType::AllGather ||
       cpComm == CpCommType::A2AP2P)) {
    LoomRingAttentionPassOptions ring;
    ring.keepGather = cpComm == CpCommType::AllGather;
    pm.addPass(createLoomRingAttentionPass(ring));
  }
  if (options.overlapGradReduce) {
    LoomOverlapGradReducePassOptions overlap;
    overlap.bucketSize = options.bucketSize;
    pm.addPass(createLoomOverlapGradReducePass(overlap));
  }
  // Pipeline stages: the per-rank step split by the schedule, one function
  // per pipeline rank.
  if (spec && spec->pp > 1) {
    LoomSplitPipelinePassOptions split;
    split.vpp = spec->vpp;
    split.firstLayers = spec->firstLayers.value_or(0);
    split.lastLayers = spec->lastLayers.value_or(0);
    split.balance = options.pipelineBalance;
    if (!options.schedule.empty())
      split.schedule = options.schedule;
    else {
      // 1F1B over several model chunks is Megatron's interleaved schedule.
      PipelineSchedule kind =
          spec->schedule.value_or(PipelineSchedule::OneFOneB);
      if (kind == PipelineSchedule::OneFOneB && spec->vpp > 1)
        kind = PipelineSchedule::Interleaved;
      split.schedule = stringifySchedule(kind).str();
    }
    pm.addPass(createLoomSplitPipelinePass(split));
  }
}

void loom::registerLoomPipelines() {
  PassPipelineRegistration<ParallelizeOptions>(
      "loom-parallelize",
      "Apply a parallel plan (its mesh and seeds), propagate shardings and "
      "partition into the per-rank graph",
      buildLoomParallelizePipeline);
  PassPipelineRegistration<ForwardToProgramOptions>(
      "loom-forward-to-program",
      "Simplify a loom graph and plan its memory, ready for "
      "loom-translate --loom-to-program",
      buildLoomForwardToProgramPipeline);
}
