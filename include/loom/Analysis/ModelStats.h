//===- ModelStats.h - Parameter and FLOP counts of a graph ------*- C++ -*-===//

#ifndef LOOM_ANALYSIS_MODELSTATS_H
#define LOOM_ANALYSIS_MODELSTATS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/LLVM.h"

namespace loom {

/// Counts read off a forward graph.
struct ModelStats {
  /// Elements of all `loom.param` arguments.
  int64_t totalParams = 0;
  /// Parameters each token uses: expert weights count with the fraction
  /// top_k / experts of the router that feeds them.
  int64_t activeParams = 0;
  /// Tokens per step: the element count of the `tokens` input.
  int64_t tokens = 0;
  /// Forward FLOPs of matmuls (2·M·N·K), grouped matmuls over their expert
  /// capacity, and attention (4·B·S²·H·D, unmasked as in Megatron's and
  /// PaLM's accounting) per step.
  double forwardFlops = 0;
  double getFlopsPerToken() const { return forwardFlops / tokens; }
};

/// Computes the statistics of `func`; fails with a diagnostic on the
/// function when it has no `tokens` input.
mlir::FailureOr<ModelStats> computeModelStats(mlir::func::FuncOp func);

} // namespace loom

#endif // LOOM_ANALYSIS_MODELSTATS_H
