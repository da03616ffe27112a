//===- LrSchedule.h - Warm-up and cosine decay of the learning rate -*- C++
//-*-===//
//
// Megatron-LM's OptimizerParamScheduler (megatron/core/
// optimizer_param_scheduler.py) with init_lr 0 and the cosine decay style:
//
//   step <= warmup:                 lr * step / warmup
//   warmup < step <= warmup+decay:  min_lr + (lr - min_lr) *
//                                   0.5 * (1 + cos(pi * (step - warmup) /
//                                   decay))
//   later:                          min_lr
//
// Steps are 1-based: step 1 is the first optimizer update, so with a warm-up
// the first update uses lr / warmup, never 0 (Megatron evaluates its
// schedule at the number of updates already done, which gives the first
// update lr 0; Loom's step s is Megatron's num_steps s).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_LRSCHEDULE_H
#define LOOM_RUNTIME_TRAIN_LRSCHEDULE_H

#include <cstdint>
#include <string>

namespace loom::runtime {

struct LrSchedule {
  /// The peak learning rate, reached at the end of the warm-up.
  double lr = 3e-4;
  /// The learning rate at the end of the decay and after it.
  double minLr = 0;
  /// Steps of linear warm-up from 0 (0: none).
  int64_t warmup = 0;
  /// Steps of cosine decay after the warm-up; -1: totalSteps - warmup.
  int64_t decaySteps = -1;
  /// The number of steps of the run (used when decaySteps is -1).
  int64_t totalSteps = 1;
};

/// What is wrong with `schedule`, or "": lr and minLr finite with
/// 0 <= minLr <= lr, warmup >= 0, totalSteps >= 1, decaySteps >= -1 and,
/// when derived, warmup <= totalSteps.
std::string lrScheduleProblem(const LrSchedule &schedule);

/// The learning rate of update `step` (1-based). Throws
/// std::invalid_argument when lrScheduleProblem is not empty or step < 1.
double learningRate(const LrSchedule &schedule, int64_t step);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_LRSCHEDULE_H
