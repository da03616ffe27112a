//===- JobFiles.h - What a job reads and writes -----------------*- C++ -*-===//
//
// A job reads DIR/<name>.npy (or DIR/rank<R>/<name>.npy) for its inputs and
// writes its outputs in the same layout, plus a trace. This checks all of it
// before any step runs — a missing or misnamed input, an output location
// that cannot be written — and writes the outputs and the trace as a set:
// staged beside their targets and moved into place only once every rank has
// finished, so that a failed job or write leaves the files of the last job
// that finished, never a mix.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_LAUNCH_JOBFILES_H
#define LOOM_RUNTIME_LAUNCH_JOBFILES_H

#include "loom/runtime/Program.h"
#include "loom/runtime/launch/LaunchOptions.h"

#include <map>
#include <string>
#include <vector>

namespace loom::runtime {

/// What is wrong with `name` as the <name> of a file DIR/<name>.npy, or ""
/// if nothing: it must not be empty, ".", "..", or hold '/', '\' or NUL (an
/// output named "../../x" must not land outside DIR).
std::string fileNameProblem(const std::string &name);

/// Where rank `rank`'s file `name` lives under `dir`: dir/<name>.npy for
/// rank 0, dir/rank<R>/<name>.npy for the others.
std::string rankFile(const std::string &dir, int rank, const std::string &name);

/// Checks `dir` as the --inputs of a job of `worldSize` ranks running
/// `program`: it exists and is a directory, each <name>.npy in it or in a
/// rank<R>/ of it is a regular file named after an input or parameter of
/// the program, and each rank<R>/ is a directory of a rank of the job.
/// Files of other kinds (no .npy suffix) are left alone. Throws
/// std::runtime_error naming the path.
void checkInputs(const Program &program, const std::string &dir, int worldSize);

/// Checks the outputs and trace of `options` for ranks `ranks` of
/// `program`, as JobFiles does, without staging anything (for a launcher
/// whose ranks write them).
void checkOutputs(const LaunchOptions &options, const Program &program,
                  const std::vector<int> &ranks);

/// Removes what the ranks of job `jobId` staged for `outputsDir` and did
/// not commit: a launcher calls it after it ended them (a killed rank runs
/// no destructor). Nothing without a job id.
void removeStagedOutputs(const std::string &outputsDir,
                         const std::string &jobId);

/// Removes the staging directories of every JobFiles of this process: for a
/// watchdog about to end the process without running destructors.
void removeLiveStagedOutputs();

/// The outputs and trace of the ranks that this process runs.
class JobFiles {
public:
  /// Checks the outputs (names, the directory or its parent, no directory
  /// in a file's place) and the trace's directory, and creates a staging
  /// directory beside the outputs directory (named after `jobId`, if any,
  /// for removeStagedOutputs). Throws std::runtime_error.
  JobFiles(const LaunchOptions &options, const Program &program,
           std::vector<int> ranks, const std::string &jobId = "");
  /// Removes whatever is staged and not committed.
  ~JobFiles();
  JobFiles(const JobFiles &) = delete;
  JobFiles &operator=(const JobFiles &) = delete;

  /// The options the ranks run with: outputs go to the staging directory.
  const LaunchOptions &rankOptions() const { return rankOptions_; }
  /// Stages the trace (if the job writes one) with `text`.
  void stageTrace(const std::string &text);
  /// Moves every rank's staged outputs, then the trace, into place. Throws
  /// std::runtime_error, before moving anything, if a rank wrote no output
  /// or a target is taken by a directory.
  void commit();

private:
  LaunchOptions rankOptions_;
  /// Each rank's output names (a pipeline stage writes its own).
  std::map<int, std::vector<std::string>> outputs_;
  std::vector<int> ranks_;
  std::string target_, staging_, tracePath_, stagedTrace_;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_LAUNCH_JOBFILES_H
