//===- RankRunner.h - One rank of a job -------------------------*- C++ -*-===//
//
// Runs a program as one global rank of a job: places it on the rank, binds
// its inputs (.npy files or seeded values), runs it for the job's steps and
// writes its outputs. The launcher (Launcher.h) calls this on every rank it
// starts; it is public for runners that place ranks themselves.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_LAUNCH_RANKRUNNER_H
#define LOOM_RUNTIME_LAUNCH_RANKRUNNER_H

#include "loom/runtime/Runtime.h"
#include "loom/runtime/launch/LaunchOptions.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace loom::runtime {

/// What a finished rank reports.
struct RankResult {
  /// Global rank in the job, and the job's size.
  int rank = 0;
  int worldSize = 1;
  std::shared_ptr<const Program> program;
  int steps = 0;
  /// Wall time of the steps (not of setup or output writing).
  double elapsedMs = 0;
  uint64_t plannedPeakBytes = 0;
  uint64_t executedPeakBytes = 0;
  /// The inputs and parameters that were seeded (not read from a file).
  std::vector<std::string> seededInputs;
  /// The f32 outputs of one element (e.g. the loss), in output order.
  std::vector<std::pair<std::string, float>> scalars;
  /// One event per executed instruction, when the job writes a trace.
  std::vector<TraceEvent> events;
};

/// The mesh rank that global rank `rank` of a job of `worldSize` ranks runs
/// `program` as. A program whose mesh has one rank runs whole on every rank
/// (replicas), as mesh rank 0; any other program needs exactly one job rank
/// per mesh rank. Throws std::runtime_error naming both sizes otherwise.
int64_t meshRankFor(const Program &program, int rank, int worldSize);

/// Sets every input and parameter of `exec`: from `options.inputsDir`
/// (rank<R>/<name>.npy before <name>.npy) or else seeded from
/// `options.seed`, and returns the names of those seeded. Throws
/// std::runtime_error naming the input and file when a file's dtype or
/// shape is not the program's, or an input's name cannot name a file.
std::vector<std::string> bindInputs(Executor &exec,
                                    const LaunchOptions &options, int rank);

/// Writes the outputs of `exec` under `options.outputsDir` (rank 0's in the
/// directory itself, rank R's in rank<R>/), if it is set, each file
/// atomically. Throws std::runtime_error if an output's name cannot name a
/// file (JobFiles.h). The launcher points outputsDir at a staging
/// directory and moves the files into place once every rank is done.
void writeOutputs(const Executor &exec, const LaunchOptions &options, int rank);

/// Runs `program` as global rank `rank` of `worldSize`: checks and binds
/// inputs (checkInputs), runs `options.steps` times, writes outputs, and
/// calls `options.onRankDone`. `communicators` may be null when the program
/// needs none.
RankResult runRank(const LaunchOptions &options,
                   std::shared_ptr<const Program> program, int rank,
                   int worldSize, CommunicatorFactory communicators);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_LAUNCH_RANKRUNNER_H
