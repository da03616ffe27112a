//===- Trace.cpp - Chrome traces of finished ranks ------------------------===//

#include "loom/runtime/launch/Trace.h"

#include "loom/runtime/AtomicFile.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <stdexcept>

using namespace loom::runtime;

std::string loom::runtime::jsonEscape(const std::string &text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out;
}

std::vector<ActionSpan>
loom::runtime::actionSpans(const Program &program,
                           const std::vector<TraceEvent> &events) {
  std::vector<InstructionSpan> ranges = program.actionSpans();
  if (ranges.empty())
    return {};
  // Each span runs from its first traced instruction's start to its last's
  // end; instruction i belongs to the span whose range holds it. The
  // events of several runs (steps) follow each other: a compute-stream
  // instruction before the previous one starts the next run.
  std::vector<const TraceEvent *> ordered;
  for (const TraceEvent &e : events)
    ordered.push_back(&e);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const TraceEvent *a, const TraceEvent *b) {
                     return a->startUs < b->startUs;
                   });
  std::map<std::pair<size_t, size_t>, ActionSpan> byRun;
  size_t run = 0;
  int64_t lastCompute = -1;
  for (const TraceEvent *e : ordered) {
    if (e->stream == StreamKind::Compute) {
      if (static_cast<int64_t>(e->instruction) < lastCompute)
        ++run;
      lastCompute = e->instruction;
    }
    auto it = std::upper_bound(
        ranges.begin(), ranges.end(), e->instruction,
        [](size_t i, const InstructionSpan &r) { return i < r.first; });
    if (it == ranges.begin())
      continue;
    size_t k = static_cast<size_t>(it - ranges.begin()) - 1;
    if (e->instruction > ranges[k].last)
      continue;
    double end = e->startUs + e->durationUs;
    auto [entry, inserted] = byRun.try_emplace({run, k});
    ActionSpan &span = entry->second;
    if (inserted) {
      span.action = ranges[k].action;
      span.startUs = e->startUs;
      span.endUs = end;
    } else {
      span.startUs = std::min(span.startUs, e->startUs);
      span.endUs = std::max(span.endUs, end);
    }
  }
  std::vector<ActionSpan> traced;
  for (auto &[key, span] : byRun) {
    traced.push_back(span);
    traced.back().run = key.first;
  }
  return traced;
}

/// Chrome's reserved colour names: forwards blue, backwards orange, weight
/// gradients green, waiting for a peer grey.
static const char *actionColor(const std::string &action) {
  switch (action.empty() ? ' ' : action[0]) {
  case 'F':
    return "rail_response";
  case 'B':
    return "rail_animation";
  case 'W':
    return "good";
  case 'r':
    return "grey";
  default:
    return "generic_work";
  }
}

/// One JSON event per line: a rank is a process, a stream a thread.
static void appendEvents(std::ostream &os, const RankResult &result,
                         bool &first) {
  auto sep = [&] {
    os << (first ? "" : ",\n");
    first = false;
  };
  sep();
  os << "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" << result.rank
     << ",\"args\":{\"name\":\"rank " << result.rank << "\"}}";
  for (int stream = 0; stream < 2; ++stream) {
    sep();
    os << "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":" << result.rank
       << ",\"tid\":" << stream << ",\"args\":{\"name\":\""
       << (stream == 0 ? "compute" : "comm") << "\"}}";
  }
  const Program &program = *result.program;
  // A pipeline stage: one more track with its schedule's actions.
  std::vector<ActionSpan> spans = actionSpans(program, result.events);
  if (!spans.empty()) {
    sep();
    os << "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":" << result.rank
       << ",\"tid\":2,\"args\":{\"name\":\"schedule\"}}";
  }
  for (const ActionSpan &span : spans) {
    sep();
    os << std::fixed << std::setprecision(3) << "{\"ph\":\"X\",\"name\":\""
       << jsonEscape(span.action) << "\",\"cname\":\""
       << actionColor(span.action) << "\",\"pid\":" << result.rank
       << ",\"tid\":2,\"ts\":" << span.startUs
       << ",\"dur\":" << span.endUs - span.startUs
       << ",\"args\":{\"run\":" << span.run << "}}";
  }
  for (const TraceEvent &e : result.events) {
    const InstrInfo &instr = program.instructions()[e.instruction];
    sep();
    os << std::fixed << std::setprecision(3) << "{\"ph\":\"X\",\"name\":\""
       << opcodeName(instr.op) << "\",\"pid\":" << result.rank
       << ",\"tid\":" << static_cast<int>(e.stream) << ",\"ts\":" << e.startUs
       << ",\"dur\":" << e.durationUs
       << ",\"args\":{\"instruction\":" << e.instruction << ",\"loc\":\""
       << jsonEscape(instr.loc) << "\"}}";
  }
}

static const char traceHeader[] =
    "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
static const char traceFooter[] = "\n]}\n";

std::string loom::runtime::renderTrace(const std::vector<RankResult> &results,
                                       bool complete) {
  std::ostringstream os;
  bool first = true;
  if (complete)
    os << traceHeader;
  for (const RankResult &result : results)
    appendEvents(os, result, first);
  if (complete)
    os << traceFooter;
  return os.str();
}

void loom::runtime::writeTrace(const std::string &path,
                               const std::vector<RankResult> &results,
                               bool complete) {
  writeFileAtomically(path, renderTrace(results, complete));
}

static std::string partsDir(const std::string &path, const std::string &jobId) {
  return path + ".parts" + (jobId.empty() ? "" : "." + jobId);
}

std::string loom::runtime::rankTracePartPath(const std::string &path,
                                             const std::string &jobId,
                                             int rank) {
  return partsDir(path, jobId) + "/rank" + std::to_string(rank);
}

void loom::runtime::mergeRankTraces(const std::string &path,
                                    const std::string &jobId, int nproc) {
  std::ostringstream os;
  os << traceHeader;
  for (int rank = 0; rank < nproc; ++rank) {
    std::string part = partsDir(path, jobId) + "/rank" + std::to_string(rank);
    std::ifstream in(part, std::ios::binary);
    if (!in)
      throw std::runtime_error("rank " + std::to_string(rank) +
                               " wrote no trace part '" + part + "'");
    std::ostringstream text;
    text << in.rdbuf();
    os << (rank ? ",\n" : "") << text.str();
  }
  os << traceFooter;
  writeFileAtomically(path, os.str());
  // Parts go only once the whole trace is safe, so a failed merge loses none.
  removeRankTraces(path, jobId);
}

void loom::runtime::removeRankTraces(const std::string &path,
                                     const std::string &jobId) {
  std::error_code ignored;
  std::filesystem::remove_all(partsDir(path, jobId), ignored);
}
