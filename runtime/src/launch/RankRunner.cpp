//===- RankRunner.cpp - One rank of a job ---------------------------------===//

#include "loom/runtime/launch/RankRunner.h"
#include "loom/runtime/Pieces.h"

#include "loom/runtime/Npy.h"
#include "loom/runtime/SeededInputs.h"
#include "loom/runtime/launch/JobFiles.h"

#include <cerrno>
#include <chrono>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>

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

/// "i32[3]", as BufferInfo::typeStr() spells a buffer's type.
std::string typeOf(const HostTensor &tensor) {
  std::ostringstream os;
  os << dtypeName(tensor.dtype) << "[";
  for (size_t i = 0; i < tensor.shape.size(); ++i)
    os << (i ? "," : "") << tensor.shape[i];
  os << "]";
  return os.str();
}

} // namespace

int64_t loom::runtime::meshRankFor(const Program &program, int rank,
                                   int worldSize) {
  int64_t meshRanks = program.mesh().size();
  if (meshRanks == 1)
    return 0;
  if (meshRanks != worldSize)
    throw std::runtime_error("the program's mesh " + program.mesh().str() +
                             " has " + std::to_string(meshRanks) +
                             " ranks but the job has " +
                             std::to_string(worldSize));
  return rank;
}

std::vector<std::string> loom::runtime::bindInputs(Executor &exec,
                                                   const LaunchOptions &options,
                                                   int rank) {
  const Program &program = exec.program();
  std::vector<std::string> seeded;
  for (const Binding &binding : program.inputs()) {
    const BufferInfo &buffer = program.buffers()[binding.buffer];
    std::string file;
    if (!options.inputsDir.empty()) {
      // A name like "../x" would read a file outside the directory.
      if (std::string problem = fileNameProblem(binding.name); !problem.empty())
        throw std::runtime_error(
            "the program's input '" + binding.name +
            "' cannot name a file in --inputs: " + problem);
      // Unlike outputs, rank 0 may have its own directory too.
      std::string own = options.inputsDir + "/rank" + std::to_string(rank) +
                        "/" + binding.name + ".npy";
      std::string shared = options.inputsDir + "/" + binding.name + ".npy";
      file = fileExists(own) ? own : fileExists(shared) ? shared : "";
    }
    // State (optimizer moments) not given stays zero, as the executor
    // made it; everything else not given is seeded.
    if (file.empty() && buffer.kind == BufferKind::State)
      continue;
    if (file.empty()) {
      // A piece of a split tensor is cut from the whole one the seed makes,
      // so that every plan starts from the same values.
      exec.setInput(binding.name,
                    pieceOf(seededWholeInput(program, binding, options.seed),
                            program, binding, exec.rank()));
      seeded.push_back(binding.name);
      continue;
    }
    HostTensor tensor = readNpy(file);
    // A whole tensor for a split input is cut into this rank's piece.
    if (binding.isSharded() && tensor.dtype == buffer.dtype &&
        tensor.shape == wholeShape(program, binding) &&
        tensor.shape != buffer.shape)
      tensor = pieceOf(tensor, program, binding, exec.rank());
    if (tensor.dtype != buffer.dtype || tensor.shape != buffer.shape)
      throw std::runtime_error(
          "input '" + binding.name + "' from " + file + " is " +
          typeOf(tensor) + " but the program needs " + buffer.typeStr() +
          (binding.isSharded()
               ? " (or the whole " +
                     typeOf(HostTensor(buffer.dtype,
                                       wholeShape(program, binding))) +
                     ")"
               : ""));
    exec.setInput(binding.name, tensor);
  }
  return seeded;
}

void loom::runtime::writeOutputs(const Executor &exec,
                                 const LaunchOptions &options, int rank) {
  if (options.outputsDir.empty())
    return;
  // Checked here too, where the file is written: whoever calls this, an
  // output named "../../x" must not land outside the directory.
  for (const Binding &binding : exec.program().outputs())
    if (std::string problem = fileNameProblem(binding.name); !problem.empty())
      throw std::runtime_error("the program's output '" + binding.name +
                               "' cannot name a file in --outputs: " + problem);
  makeDirectory(options.outputsDir);
  if (rank != 0)
    makeDirectory(options.outputsDir + "/rank" + std::to_string(rank));
  for (const Binding &binding : exec.program().outputs()) {
    try {
      writeNpy(rankFile(options.outputsDir, rank, binding.name),
               exec.getOutput(binding.name));
    } catch (const std::exception &e) {
      throw std::runtime_error("cannot write output '" + binding.name +
                               "': " + e.what());
    }
  }
}

RankResult loom::runtime::runRank(const LaunchOptions &options,
                                  std::shared_ptr<const Program> program,
                                  int rank, int worldSize,
                                  CommunicatorFactory communicators) {
  if (!options.inputsDir.empty())
    checkInputs(*program, options.inputsDir, worldSize);
  // A pipeline program: this rank runs its stage's program.
  program = programForRank(program, rank);
  ExecutorOptions execOptions;
  execOptions.rank = meshRankFor(*program, rank, worldSize);
  execOptions.communicators = std::move(communicators);
  execOptions.trace = !options.tracePath.empty();
  execOptions.backend = options.backend;
  Executor exec(program, execOptions);
  std::vector<std::string> seeded = bindInputs(exec, options, rank);

  auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < options.steps; ++step)
    exec.run();
  auto elapsed = std::chrono::steady_clock::now() - start;
  writeOutputs(exec, options, rank);

  RankResult result;
  result.rank = rank;
  result.worldSize = worldSize;
  result.program = program;
  result.steps = options.steps;
  result.seededInputs = std::move(seeded);
  result.elapsedMs = std::chrono::duration<double, std::milli>(elapsed).count();
  result.plannedPeakBytes = exec.plannedPeakBytes();
  result.executedPeakBytes = exec.executedPeakBytes();
  for (const Binding &binding : program->outputs()) {
    HostTensor t = exec.getOutput(binding.name);
    if (t.numel() == 1 && t.dtype == DType::F32)
      result.scalars.emplace_back(binding.name, t.as<float>()[0]);
  }
  result.events = exec.traceEvents();
  if (options.onRankDone)
    options.onRankDone(result);
  return result;
}
