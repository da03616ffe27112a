//===- Trace.cpp - Chrome traces of finished ranks ------------------------===//

#include "loom/runtime/launch/Trace.h"

#include "loom/runtime/AtomicFile.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
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
