//===- Trace.h - Chrome traces of finished ranks ----------------*- C++ -*-===//
//
// Writes the trace events of finished ranks in the Chrome trace format
// (chrome://tracing, Perfetto): a process per rank, a thread per stream
// (compute, comm), one complete event per executed instruction with its
// source location; a pipeline stage's rank also gets a `schedule` thread
// with one event per schedule action (F, B, W, waiting in a receive, the
// optimizer). A multi-process job writes one part per process
// (rankTracePartPath) and the process that spawned them merges the parts.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_LAUNCH_TRACE_H
#define LOOM_RUNTIME_LAUNCH_TRACE_H

#include "loom/runtime/launch/RankRunner.h"

#include <string>
#include <vector>

namespace loom::runtime {

/// `text` as the contents of a JSON string: quotes and backslashes escaped,
/// control characters as \u00XX; other bytes (UTF-8) unchanged.
std::string jsonEscape(const std::string &text);

/// One schedule action of a pipeline stage as it ran: from the start of
/// its first instruction to the end of its last (µs, steady clock).
struct ActionSpan {
  std::string action;
  double startUs = 0, endUs = 0;
  /// Which run of the program (step) it belongs to, from 0.
  size_t run = 0;
};

/// The actions of a pipeline stage's run, from its program's
/// `pipeline.action_spans` metadata (the compiler's instruction ranges of
/// each action) and the run's trace events; empty for other programs.
std::vector<ActionSpan> actionSpans(const Program &program,
                                    const std::vector<TraceEvent> &events);

/// The trace of `results`: a whole JSON document, or with `complete` false
/// only its events, comma-separated one per line (a part to merge).
std::string renderTrace(const std::vector<RankResult> &results, bool complete);

/// Writes renderTrace(results, complete) to `path` atomically.
void writeTrace(const std::string &path, const std::vector<RankResult> &results,
                bool complete);

/// Where rank `rank` of multi-process job `jobId` writes its part of
/// `path`: in the temporary directory PATH.parts[.JOBID]/ beside it.
std::string rankTracePartPath(const std::string &path, const std::string &jobId,
                              int rank);

/// Joins the parts of ranks 0..nproc-1 into one trace at `path` and removes
/// them. Throws std::runtime_error naming the first rank without a part.
void mergeRankTraces(const std::string &path, const std::string &jobId,
                     int nproc);

/// Removes the parts of a job that failed.
void removeRankTraces(const std::string &path, const std::string &jobId);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_LAUNCH_TRACE_H
