//===- LossLog.h - The per-step CSV log of a training run -------*- C++ -*-===//
//
// One line per step under the header
//
//   step,loss,lr,grad_norm,tokens_per_s,elapsed_s
//
// each written with a single write(2) as the step ends, so that the log is
// current while the run goes on and a crash loses at most the line being
// written. A resumed run keeps the lines of the steps its checkpoint holds
// and drops those of steps it will redo.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_LOSSLOG_H
#define LOOM_RUNTIME_TRAIN_LOSSLOG_H

#include <cstdint>
#include <string>
#include <vector>

namespace loom::runtime {

/// What one training step reports.
struct StepRecord {
  int64_t step = 0;
  double loss = 0;
  double lr = 0;
  double gradNorm = 0;
  double tokensPerS = 0;
  /// Seconds since the run (this process) started.
  double elapsedS = 0;
};

inline constexpr char kLossCsvHeader[] =
    "step,loss,lr,grad_norm,tokens_per_s,elapsed_s";

/// The CSV line of `record`, newline included: "12,2.345678,0.0003,...".
/// Numbers keep float32 precision (%.7g); NaN and infinities print as nan
/// and inf, which NumPy and pandas read.
std::string lossCsvLine(const StepRecord &record);

/// Reads a log written by LossCsvWriter. A last line without its newline
/// (a write cut short by a crash) is dropped; any other malformed line
/// throws std::runtime_error "PATH:LINE: what".
std::vector<StepRecord> readLossCsv(const std::string &path);

class LossCsvWriter {
public:
  /// Starts the log at `path`: a new file holding the header; or, resuming
  /// after `resumeStep` completed steps (>= 0), the lines of steps
  /// <= resumeStep of an existing log (rewritten atomically first) followed
  /// by the new ones. Throws std::runtime_error naming the path.
  explicit LossCsvWriter(const std::string &path, int64_t resumeStep = -1);
  ~LossCsvWriter();
  LossCsvWriter(const LossCsvWriter &) = delete;
  LossCsvWriter &operator=(const LossCsvWriter &) = delete;

  /// Appends one line. Throws std::runtime_error when the write fails.
  void append(const StepRecord &record);

  /// Every record of the log, kept ones included (for the plot).
  const std::vector<StepRecord> &records() const { return records_; }
  const std::string &path() const { return path_; }

private:
  std::string path_;
  int fd_ = -1;
  std::vector<StepRecord> records_;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_LOSSLOG_H
