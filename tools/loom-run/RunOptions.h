//===- RunOptions.h - loom-run's command line -------------------*- C++ -*-===//

#ifndef LOOM_TOOLS_LOOM_RUN_RUNOPTIONS_H
#define LOOM_TOOLS_LOOM_RUN_RUNOPTIONS_H

#include "loom/runtime/launch/LaunchOptions.h"
#include "loom/runtime/launch/Trainer.h"

#include <string>

namespace loom {

/// loom-run's command line: the model, the job (a library type the launcher
/// reads) and what only the tool itself does.
struct RunOptions {
  std::string modelPath;
  runtime::LaunchOptions launch;
  /// Print nothing but errors (no loss, no summary).
  bool quiet = false;
  bool help = false;

  /// A parallel plan (docs/PlanSpec.md) the MLIR is compiled under.
  std::string plan;
  /// --schedule FILE.csv: the pipeline schedule a plan with pp > 1 runs
  /// (a schedule by name is added to `plan`).
  std::string schedule;
  /// --overlap-grad-reduce: bucket the plan's data-parallel gradient
  /// reductions and overlap them with backward (--bucket-size bytes each).
  bool overlapGradReduce = false;
  int64_t bucketSize = 160000000;
  /// --train: compile the forward's training step and train it.
  bool train = false;
  runtime::TrainOptions training;
  /// The training step's compile options (-loom-autodiff's, Megatron-LM's
  /// flag names).
  int64_t microBatches = 1;
  std::string recompute = "none";
  double clipGrad = 1.0, weightDecay = 0.01, adamBeta1 = 0.9, adamBeta2 = 0.999,
         adamEps = 1e-8;
  /// Flags given, for the checks that depend on --train.
  bool stepsGiven = false, timeoutGiven = false;

  RunOptions() { training.schedule.lr = 1e-3; }
};

/// Parses argv; throws std::invalid_argument with a message naming the flag.
RunOptions parseRunOptions(int argc, char **argv);
const char *runUsage();

} // namespace loom

#endif // LOOM_TOOLS_LOOM_RUN_RUNOPTIONS_H
