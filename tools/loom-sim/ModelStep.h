//===- ModelStep.h - loom-sim's --model mode --------------------*- C++ -*-===//
//
// Prices one training step of a zoo model under a plan on a cluster with
// the cost model (include/loom/CostModel) and prints the figures, every
// constant used and its source.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TOOLS_LOOM_SIM_MODELSTEP_H
#define LOOM_TOOLS_LOOM_SIM_MODELSTEP_H

#include <string>

namespace loom::sim {

struct ModelStepOptions {
  std::string model;
  std::string plan;
  /// A preset ("h100-ib:8") or a cluster file; exactly one is set.
  std::string cluster;
  std::string clusterFile;
  /// The simulated timeline: .svg (the schedule picture) or .json (Chrome
  /// trace); empty for none.
  std::string trace;
};

/// Runs the mode; prints errors as "loom-sim: error: ..." and returns the
/// exit code.
int runModelStep(const ModelStepOptions &options);

} // namespace loom::sim

#endif // LOOM_TOOLS_LOOM_SIM_MODELSTEP_H
