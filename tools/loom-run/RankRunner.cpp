//===- RankRunner.cpp - One rank of a loom-run job ------------------------===//

#include "RankRunner.h"

#include "loom/runtime/AtomicFile.h"
#include "loom/runtime/Npy.h"
#include "loom/runtime/SeededInputs.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <sys/stat.h>

using namespace loom;
using namespace loom::runtime;

namespace {

bool fileExists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void makeDirectory(const std::string &path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create directory '" + path + "'");
}

void bindInputs(Executor &exec, const RunOptions &options, int rank) {
  const Program &program = exec.program();
  for (const Binding &binding : program.inputs()) {
    const BufferInfo &buffer = program.buffers()[binding.buffer];
    std::string file;
    if (!options.inputsDir.empty()) {
      std::string own = options.inputsDir + "/rank" + std::to_string(rank) +
                        "/" + binding.name + ".npy";
      std::string shared = options.inputsDir + "/" + binding.name + ".npy";
      file = fileExists(own) ? own : fileExists(shared) ? shared : "";
    }
    if (file.empty()) {
      exec.setInput(binding.name, seededInput(program, buffer, options.seed));
      continue;
    }
    HostTensor tensor = readNpy(file);
    if (tensor.dtype != buffer.dtype || tensor.shape != buffer.shape) {
      std::ostringstream shape;
      shape << dtypeName(tensor.dtype) << "[";
      for (size_t i = 0; i < tensor.shape.size(); ++i)
        shape << (i ? "," : "") << tensor.shape[i];
      shape << "]";
      throw std::runtime_error("input '" + binding.name + "' from " + file +
                               " is " + shape.str() +
                               " but the program needs " + buffer.typeStr());
    }
    exec.setInput(binding.name, tensor);
  }
}

void writeOutputs(Executor &exec, const RunOptions &options, int rank) {
  if (options.outputsDir.empty())
    return;
  std::string dir = options.outputsDir;
  makeDirectory(dir);
  if (rank != 0) {
    dir += "/rank" + std::to_string(rank);
    makeDirectory(dir);
  }
  for (const Binding &binding : exec.program().outputs())
    writeNpy(dir + "/" + binding.name + ".npy", exec.getOutput(binding.name));
}

/// "loss = 4.85203" for scalar outputs.
void printScalars(const Executor &exec) {
  for (const Binding &binding : exec.program().outputs()) {
    HostTensor t = exec.getOutput(binding.name);
    if (t.numel() != 1 || t.dtype != DType::F32)
      continue;
    std::cout << binding.name << " = " << std::setprecision(9)
              << t.as<float>()[0] << "\n";
  }
}

} // namespace

RankResult loom::runRank(const RunOptions &options,
                         std::shared_ptr<const Program> program, int rank,
                         int worldSize, CommunicatorFactory communicators) {
  int64_t meshRanks = program->mesh().size();
  // A program without a mesh runs whole on every rank (replicas).
  bool replicated = meshRanks == 1;
  if (!replicated && meshRanks != worldSize)
    throw std::runtime_error("the program's mesh " + program->mesh().str() +
                             " has " + std::to_string(meshRanks) +
                             " ranks but the job has " +
                             std::to_string(worldSize));
  ExecutorOptions execOptions;
  execOptions.rank = replicated ? 0 : rank;
  execOptions.communicators = std::move(communicators);
  execOptions.trace = !options.tracePath.empty();
  execOptions.backend = options.backend;
  Executor exec(program, execOptions);
  bindInputs(exec, options, rank);

  auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < options.steps; ++step)
    exec.run();
  double ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - start)
                  .count();
  writeOutputs(exec, options, rank);

  if (rank == 0 && !options.quiet) {
    printScalars(exec);
    std::cout << "ran " << program->instructions().size() << " instructions x "
              << options.steps << " step(s) on " << worldSize << " rank(s) in "
              << std::fixed << std::setprecision(3) << ms
              << " ms; arena planned " << exec.plannedPeakBytes()
              << " bytes, executed peak " << exec.executedPeakBytes()
              << " bytes\n";
  }
  RankResult result;
  result.rank = rank;
  result.events = exec.traceEvents();
  result.program = program;
  return result;
}

//===----------------------------------------------------------------------===//
// Chrome trace
//===----------------------------------------------------------------------===//

namespace {
std::string jsonEscape(const std::string &s) {
  std::string out;
  for (char c : s) {
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
void appendEvents(std::ostream &os, const RankResult &result, bool &first) {
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

} // namespace

void loom::writeTraceEvents(const std::string &path,
                            const std::vector<RankResult> &results,
                            bool complete) {
  std::ostringstream os;
  bool first = true;
  if (complete)
    os << "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  for (const RankResult &result : results)
    appendEvents(os, result, first);
  if (complete)
    os << "\n]}\n";
  writeFileAtomically(path, os.str());
}

void loom::writeTraceIfAsked(const RunOptions &options,
                             const std::vector<RankResult> &results) {
  if (!options.tracePath.empty())
    writeTraceEvents(options.tracePath, results, /*complete=*/true);
}

void loom::mergeRankTraces(const std::string &path, int nproc) {
  std::ostringstream os;
  os << "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  for (int rank = 0; rank < nproc; ++rank) {
    std::string part = path + ".rank" + std::to_string(rank);
    std::ifstream in(part, std::ios::binary);
    if (!in)
      throw std::runtime_error("rank " + std::to_string(rank) +
                               " wrote no trace part '" + part + "'");
    std::stringstream text;
    text << in.rdbuf();
    os << (rank ? ",\n" : "") << text.str();
    std::remove(part.c_str());
  }
  os << "\n]}\n";
  writeFileAtomically(path, os.str());
}
