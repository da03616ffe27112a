//===- LrSchedule.cpp - Warm-up and cosine decay of the learning rate -----===//

#include "loom/runtime/train/LrSchedule.h"

#include <cmath>
#include <stdexcept>

using namespace loom::runtime;

std::string loom::runtime::lrScheduleProblem(const LrSchedule &s) {
  if (!std::isfinite(s.lr) || !std::isfinite(s.minLr) || s.minLr < 0 ||
      s.minLr > s.lr)
    return "the learning rates must be finite with 0 <= min lr (" +
           std::to_string(s.minLr) + ") <= lr (" + std::to_string(s.lr) + ")";
  if (s.warmup < 0)
    return "warm-up steps " + std::to_string(s.warmup) + " are negative";
  if (s.totalSteps < 1)
    return "total steps " + std::to_string(s.totalSteps) + " are < 1";
  if (s.decaySteps < -1)
    return "decay steps " + std::to_string(s.decaySteps) + " are negative";
  if (s.decaySteps == -1 && s.warmup > s.totalSteps)
    return "warm-up steps " + std::to_string(s.warmup) +
           " exceed the total steps " + std::to_string(s.totalSteps);
  return "";
}

double loom::runtime::learningRate(const LrSchedule &s, int64_t step) {
  if (std::string problem = lrScheduleProblem(s); !problem.empty())
    throw std::invalid_argument("learning-rate schedule: " + problem);
  if (step < 1)
    throw std::invalid_argument("learning-rate schedule: step " +
                                std::to_string(step) +
                                " is not an update (steps count from 1)");
  if (step <= s.warmup)
    return s.lr * double(step) / double(s.warmup);
  int64_t decay = s.decaySteps >= 0 ? s.decaySteps : s.totalSteps - s.warmup;
  // Compared as a difference: warmup + decay may exceed int64.
  if (step - s.warmup > decay)
    return s.minLr;
  double ratio = double(step - s.warmup) / double(decay);
  double coeff = 0.5 * (std::cos(M_PI * ratio) + 1.0);
  return s.minLr + coeff * (s.lr - s.minLr);
}
