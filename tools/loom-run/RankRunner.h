//===- RankRunner.h - One rank of a loom-run job ----------------*- C++ -*-===//

#ifndef LOOM_TOOLS_LOOM_RUN_RANKRUNNER_H
#define LOOM_TOOLS_LOOM_RUN_RANKRUNNER_H

#include "RunOptions.h"

#include "loom/runtime/Runtime.h"

#include <memory>
#include <string>
#include <vector>

namespace loom {

/// What a finished rank reports.
struct RankResult {
  int rank = 0;
  std::vector<runtime::TraceEvent> events;
  std::shared_ptr<const runtime::Program> program;
};

/// Runs `program` as global rank `rank` of `worldSize`: binds inputs, runs
/// `options.steps` times, writes outputs and prints a summary (rank 0).
RankResult runRank(const RunOptions &options,
                   std::shared_ptr<const runtime::Program> program, int rank,
                   int worldSize, runtime::CommunicatorFactory communicators);

/// Writes the Chrome trace of finished ranks to `path`; with `complete`
/// false, writes only the event list (one process's part of a job).
void writeTraceEvents(const std::string &path,
                      const std::vector<RankResult> &results, bool complete);
void writeTraceIfAsked(const RunOptions &options,
                       const std::vector<RankResult> &results);
/// Joins the per-process parts `path.rank<R>` into one trace at `path`.
void mergeRankTraces(const std::string &path, int nproc);

} // namespace loom

#endif // LOOM_TOOLS_LOOM_RUN_RANKRUNNER_H
