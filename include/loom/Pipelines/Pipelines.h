//===- Pipelines.h - Loom's named pass pipelines ----------------*- C++ -*-===//
//
// Each pipeline is a C++ function over an options struct, and is registered
// under a name so that `loom-opt -loom-forward-to-program{...}` and
// `parsePassPipeline` build exactly what the function builds.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PIPELINES_PIPELINES_H
#define LOOM_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace loom {

/// A forward (or already derived) step, as loom ops on global shapes, to a
/// module ready for the program emitter: simplified, then planned.
struct ForwardToProgramOptions
    : public mlir::PassPipelineOptions<ForwardToProgramOptions> {
  Option<bool> simplify{
      *this, "simplify",
      llvm::cl::desc("Canonicalize and CSE the graph before planning"),
      llvm::cl::init(true)};
  Option<bool> reuse{
      *this, "reuse",
      llvm::cl::desc("Share arena bytes between tensors whose lifetimes do not "
                     "overlap (false: a reference plan for testing)"),
      llvm::cl::init(true)};
  Option<bool> report{
      *this, "report",
      llvm::cl::desc("Remark the planned arena of every function"),
      llvm::cl::init(false)};
};

/// The name `loom-forward-to-program` is registered for.
void buildLoomForwardToProgramPipeline(mlir::OpPassManager &pm,
                                       const ForwardToProgramOptions &options);

/// A global graph (a forward or a training step) under a parallel plan to
/// the per-rank graph: the plan's mesh and seeds, propagation, partition.
struct ParallelizeOptions
    : public mlir::PassPipelineOptions<ParallelizeOptions> {
  Option<std::string> plan{
      *this, "plan",
      llvm::cl::desc("The plan spec (docs/PlanSpec.md), e.g. dp=2,tp=2")};
  Option<int64_t> worldSize{
      *this, "world-size",
      llvm::cl::desc("The job's ranks (0: the product of the degrees)"),
      llvm::cl::init(0)};
  Option<bool> overlapGradReduce{
      *this, "overlap-grad-reduce",
      llvm::cl::desc("Bucket the data-parallel gradient reductions and run "
                     "them asynchronously, overlapped with backward "
                     "(-loom-overlap-grad-reduce)"),
      llvm::cl::init(false)};
  Option<int64_t> bucketSize{
      *this, "bucket-size",
      llvm::cl::desc("Bytes per gradient bucket with overlap-grad-reduce"),
      llvm::cl::init(160000000)};
  Option<std::string> pipelineBalance{
      *this, "pipeline-balance",
      llvm::cl::desc("With pp > 1 and no uneven layout in the plan: 'even' "
                     "or 'cost' (-loom-split-pipeline's balance)"),
      llvm::cl::init("even")};
  Option<std::string> schedule{
      *this, "schedule",
      llvm::cl::desc("With pp > 1: a pipeline schedule CSV file "
                     "(docs/Schedules.md) to run instead of the plan's "
                     "schedule")};
};

/// The name `loom-parallelize` is registered for.
void buildLoomParallelizePipeline(mlir::OpPassManager &pm,
                                  const ParallelizeOptions &options);

/// Registers every named pipeline with the pass registry.
void registerLoomPipelines();

} // namespace loom

#endif // LOOM_PIPELINES_PIPELINES_H
