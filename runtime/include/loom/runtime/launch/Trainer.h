//===- Trainer.h - Training a model with its training-step program -*- C++
//-*-===//
//
// `loom-run --train`: runs a training-step program (what -loom-autodiff
// makes of a forward) step after step on batches of a token data set, with
// a learning-rate schedule, a progress display, a loss log and curve, and
// checkpoints to resume from.
//
// The program's conventions (those of -loom-autodiff): inputs `tokens` and
// `targets` (integer [rows, seq], the step's whole batch), `lr` (a scalar
// f32) and `step` (a scalar integer, 1 for the first update); outputs
// `loss` and `grad_norm` (scalar f32); parameters and optimizer state are
// its persistent buffers, saved and restored by name.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_LAUNCH_TRAINER_H
#define LOOM_RUNTIME_LAUNCH_TRAINER_H

#include "loom/runtime/Program.h"
#include "loom/runtime/launch/LaunchOptions.h"
#include "loom/runtime/train/LossLog.h"
#include "loom/runtime/train/LrSchedule.h"

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace loom::runtime {

struct TrainOptions {
  /// Token data: a text file (one token per byte) or a Megatron indexed
  /// data set (PREFIX, PREFIX.bin or PREFIX.idx).
  std::string dataPath;
  /// The model's name, for checkpoints and the curve's title.
  std::string model;
  /// The learning rate of each step; its totalSteps is the run's last step.
  LrSchedule schedule;
  /// Checkpoints go to saveDir every saveInterval steps (0: only at the
  /// end); "" for none.
  std::string saveDir;
  int64_t saveInterval = 0;
  /// Stop after the first step divisible by exitInterval (0: never), with
  /// a checkpoint when saving: Megatron-LM's --exit-interval.
  int64_t exitInterval = 0;
  /// Resume from the latest checkpoint in loadDir ("" or none saved there:
  /// start from freshly initialized parameters).
  std::string loadDir;
  /// loss.csv and loss.svg go here ("" for none).
  std::string logDir;
  /// Where the progress is shown, and whether it is a terminal (a redrawn
  /// bar) or not (a line every few steps); null for none.
  std::ostream *progress = nullptr;
  bool progressIsTerminal = false;
};

struct TrainResult {
  /// The steps this run did: firstStep + 1 .. lastStep (firstStep is the
  /// checkpoint's step when resumed, else 0).
  int64_t firstStep = 0, lastStep = 0;
  /// The steps of this run, as logged.
  std::vector<StepRecord> records;
  /// Parameters and optimizer state by name, at the end.
  std::vector<std::string> persistentNames;
};

/// Trains on one rank (this process) with `launch`'s backend and seed (the
/// initialization of parameters not loaded). Throws std::runtime_error
/// naming the problem: a program that is not a training step, data shorter
/// than one batch, a checkpoint of another model, a loss that is no longer
/// finite.
TrainResult runTraining(const TrainOptions &options,
                        const LaunchOptions &launch,
                        std::shared_ptr<const Program> program);

/// The identity of a training program's state: its parameters' and
/// optimizer state's names, types and shapes (a checkpoint of one loads
/// into another with the same identity, whatever else differs).
std::string trainingStateId(const Program &program);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_LAUNCH_TRAINER_H
