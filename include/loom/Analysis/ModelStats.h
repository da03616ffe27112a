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
  /// Forward model FLOPs per step: the matmul FLOPs of every op's
  /// CostOpInterface (matmuls, grouped matmuls over their expert capacity,
  /// attention unmasked), as Megatron's and PaLM's accounting counts them.
  double forwardFlops = 0;
  double getFlopsPerToken() const { return forwardFlops / tokens; }
};

/// Computes the statistics of `func`; fails with a diagnostic on the
/// function when it has no `tokens` input.
mlir::FailureOr<ModelStats> computeModelStats(mlir::func::FuncOp func);

} // namespace loom

#endif // LOOM_ANALYSIS_MODELSTATS_H
