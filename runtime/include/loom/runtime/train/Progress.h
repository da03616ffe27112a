//===- Progress.h - What a training run shows while it runs -----*- C++ -*-===//
//
// On a terminal, one line redrawn in place (carriage return, erase to the
// end of the line) at most ten times a second:
//
//    120/1000 [##----------------]  12% loss 2.3456 | 12.3k tok/s |
//    1m23s<10m05s
//
// Elsewhere (a log file, a pipe, CI), plain lines every K steps and at the
// end, each whole, so that logs stay readable:
//
//   step 100/1000 loss 2.3456 lr 3.00e-04 tokens/s 12345 eta 1m23s
//
// Time comes from the records (elapsed seconds), never from a clock here,
// so the output is a function of the records.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_PROGRESS_H
#define LOOM_RUNTIME_TRAIN_PROGRESS_H

#include "loom/runtime/train/LossLog.h"

#include <cstdint>
#include <ostream>
#include <string>

namespace loom::runtime {

/// A duration for people: "7s", "1m23s", "2h05m", "3d04h"; rounded to the
/// unit shown; "?" when negative or not finite (no estimate yet).
std::string formatDuration(double seconds);

/// A rate in 3 significant figures: "950", "12.3k", "4.56M", "1.23G".
std::string formatRate(double perSecond);

/// Whether `fd` is a terminal (isatty).
bool isTerminal(int fd);

/// The plain-line period for `steps` steps: about 20 lines per run, at a
/// round number of steps (1, 2 or 5 x 10^k).
int64_t defaultProgressEvery(int64_t steps);

class ProgressDisplay {
public:
  /// Shows the progress of steps firstStep + 1 .. totalSteps (firstStep: the
  /// steps a resumed run starts after) on `out`, redrawn in place when
  /// `terminal`, else a line every `every` steps (0: defaultProgressEvery).
  ProgressDisplay(std::ostream &out, bool terminal, int64_t totalSteps,
                  int64_t firstStep = 0, int64_t every = 0);

  /// Reports a finished step; draws when it is time to.
  void update(const StepRecord &record);
  /// Prints `line` (a message of the run) without breaking the display: on
  /// a terminal the bar is erased, the line printed and the bar redrawn.
  void print(const std::string &line);
  /// Draws the last step (if not yet drawn) and ends the line.
  void finish();

  /// The estimated seconds left after `record`, or -1 before any step.
  double eta(const StepRecord &record) const;

private:
  std::string barLine(const StepRecord &r) const;
  std::string plainLine(const StepRecord &r, bool last) const;

  std::ostream &out_;
  bool terminal_;
  int64_t total_, first_, every_;
  StepRecord last_;
  bool haveLast_ = false, lastDrawn_ = false, onLine_ = false;
  double lastDrawS_ = 0;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_PROGRESS_H
