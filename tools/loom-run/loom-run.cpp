//===- loom-run.cpp - Compile and run a Loom program on CPU ranks ---------===//
//
//   loom-run MODEL.mlir|PROGRAM.loom [--nproc N] [--comm local|gloo]
//            [--inputs DIR] [--outputs DIR] [--seed S] [--steps K]
//            [--trace FILE] [--deadline SECONDS] [--timeout SECONDS]
//
// With --nproc N, loom-run starts the N ranks itself, as torchrun does: as
// threads of this process (--comm local) or as N processes over Gloo
// (--comm gloo). Without it, the rank and world size come from the
// launcher's environment (torchrun, Open MPI, PMI or Slurm variables), so the
// same command runs under mpirun or srun across machines; with none of those
// set it runs one rank.
//
// The launching lives in the runtime's loom_launch library; this tool parses
// flags, compiles MLIR and prints.
//
//===----------------------------------------------------------------------===//

#include "RunOptions.h"

#include "loom/Driver/CompileProgram.h"
#include "loom/runtime/Program.h"
#include "loom/runtime/comm/LaunchEnv.h"
#include "loom/runtime/launch/Launcher.h"
#include "loom/runtime/launch/RankGroups.h"
#include "loom/runtime/launch/Trainer.h"
#include "loom/runtime/launch/Watchdog.h"
#include "loom/runtime/train/Progress.h"

#include <csignal>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

using namespace loom;
using namespace loom::runtime;

namespace {

/// Reads the program: compiles MLIR (its training step with --train, under
/// `plan` on `ranks` ranks when given: a degree left out of the plan, dp by
/// default, takes what the ranks leave), or loads a program file.
std::shared_ptr<const Program>
loadOrCompile(const std::string &path, const RunOptions *train = nullptr,
              const std::string &plan = "", int ranks = 0,
              const RunOptions *parallel = nullptr) {
  bool isMlir =
      path.size() >= 5 && path.compare(path.size() - 5, 5, ".mlir") == 0;
  if (!isMlir) {
    std::shared_ptr<const Program> program = Program::loadFile(path);
    // Said once, by the process that starts the job.
    if (!program->hasChecksum() && !isSpawnedRank()) {
      std::string line = "loom-run: warning: " + path +
                         " carries no checksum (format 1.0): damage to it "
                         "may go unnoticed\n";
      std::cerr.write(line.data(), static_cast<std::streamsize>(line.size()));
    }
    return program;
  }
  std::vector<uint8_t> bytes;
  std::string error;
  CompileOptions compile;
  if (train || !plan.empty()) {
    std::ostringstream pipeline;
    pipeline << "builtin.module(";
    if (train)
      pipeline << "loom-autodiff{micro-batches=" << train->microBatches
               << " max-grad-norm=" << train->clipGrad
               << " weight-decay=" << train->weightDecay
               << " beta1=" << train->adamBeta1 << " beta2=" << train->adamBeta2
               << " epsilon=" << train->adamEps
               << " recompute=" << train->recompute << "}, ";
    if (!plan.empty())
      pipeline << "loom-parallelize{plan=\"" << plan << "\""
               << (ranks > 1 ? " world-size=" + std::to_string(ranks) : "")
               << (parallel && !parallel->schedule.empty()
                       ? " schedule=" + parallel->schedule
                       : "")
               << (parallel && parallel->overlapGradReduce
                       ? " overlap-grad-reduce=true bucket-size=" +
                             std::to_string(parallel->bucketSize)
                       : "")
               << "}, ";
    pipeline << "loom-forward-to-program)";
    compile.pipeline = pipeline.str();
  }
  if (!compileMlirFileToProgram(path, compile, bytes, error))
    throw std::runtime_error("cannot compile " + path + ":\n" + error);
  return Program::load(bytes.data(), bytes.size());
}

/// "seeded from --seed 0: w1, w2" for inputs that no file gave.
void printSeeded(const RankResult &result, const LaunchOptions &launch) {
  const std::vector<std::string> &names = result.seededInputs;
  if (names.empty())
    return;
  std::cout << (launch.inputsDir.empty()
                    ? "inputs seeded from --seed "
                    : "inputs not in --inputs, seeded from --seed ")
            << launch.seed << ":";
  constexpr size_t kShown = 12;
  for (size_t i = 0; i < names.size() && i < kShown; ++i)
    std::cout << (i ? ", " : " ") << names[i];
  if (names.size() > kShown)
    std::cout << " and " << names.size() - kShown << " more";
  std::cout << "\n";
}

/// "loss = 4.85203" for scalar outputs, then the run's figures.
void printSummary(const RankResult &result, const LaunchOptions &launch) {
  printSeeded(result, launch);
  for (const auto &[name, value] : result.scalars)
    std::cout << name << " = " << std::setprecision(9) << value << "\n";
  std::cout << "ran " << result.program->instructions().size()
            << " instructions x " << result.steps << " step(s) on "
            << result.worldSize << " rank(s) in " << std::fixed
            << std::setprecision(3) << result.elapsedMs << " ms; arena planned "
            << result.plannedPeakBytes << " bytes, executed peak "
            << result.executedPeakBytes << " bytes\n";
}

std::string seconds(std::chrono::milliseconds duration) {
  std::ostringstream os;
  os << duration.count() / 1000.0;
  return os.str();
}

/// Prints "loom-run: error: <message>" as one write: the ranks of a job share
/// the terminal, and lines written piecewise would interleave.
void printError(const std::string &message) {
  std::string line = "loom-run: error: " + message + "\n";
  std::cerr.write(line.data(), static_cast<std::streamsize>(line.size()));
  std::cerr.flush();
}

/// The model's name: the program's "model" metadata, else the file's stem.
std::string modelName(const Program &program, const std::string &path) {
  for (const auto &[key, value] : program.metadata())
    if (key == "model")
      return value;
  std::string stem = path.substr(path.find_last_of('/') + 1);
  return stem.substr(0, stem.find('.'));
}

/// loom-run --train: compile the training step, train, report.
int train(RunOptions &options) {
  std::shared_ptr<const Program> program =
      loadOrCompile(options.modelPath, &options, options.plan,
                    options.launch.nproc, &options);
  TrainOptions &training = options.training;
  training.model = modelName(*program, options.modelPath);
  if (training.dataPath.empty())
    training.dataPath = LOOM_DEFAULT_TRAINING_TEXT;
  if (!options.quiet) {
    training.progress = &std::cerr;
    training.progressIsTerminal = isTerminal(2);
    std::cout << "training " << training.model << " on " << training.dataPath
              << " for " << options.launch.steps << " steps ("
              << program->instructions().size() << " instructions, arena "
              << program->arenaSize() << " bytes)\n"
              << describeRankGroups(*program) << std::flush;
  }
  TrainResult result = runTraining(training, options.launch, program);
  if (!options.quiet && !result.records.empty()) {
    const StepRecord &first = result.records.front(),
                     &last = result.records.back();
    // Throughput over the steps after the first (which warms caches up).
    double rate = 0;
    size_t counted = 0;
    for (size_t i = result.records.size() > 1 ? 1 : 0;
         i < result.records.size(); ++i, ++counted)
      rate += result.records[i].tokensPerS;
    std::cout << std::fixed << std::setprecision(4) << "steps "
              << result.firstStep + 1 << ".." << result.lastStep << ": loss "
              << first.loss << " -> " << last.loss << " in "
              << std::setprecision(1) << last.elapsedS << " s, "
              << std::setprecision(0) << (counted ? rate / counted : 0)
              << " tokens/s\n";
    if (!training.logDir.empty())
      std::cout << "loss curve: " << training.logDir << "/loss.csv, "
                << training.logDir << "/loss.svg\n";
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  RunOptions options;
  try {
    options = parseRunOptions(argc, argv);
  } catch (const std::exception &e) {
    printError(e.what());
    return 2;
  }
  if (options.help) {
    std::cout << runUsage();
    return 0;
  }
  LaunchOptions &launch = options.launch;
  if (!options.quiet)
    launch.onRankDone = [&launch](const RankResult &result) {
      if (result.rank == 0)
        printSummary(result, launch);
    };
  std::string timeoutMessage = "loom-run: error: the job exceeded --timeout (" +
                               seconds(launch.timeout) +
                               " s); ending all ranks\n";
  try {
    if (options.train) {
      std::optional<ProcessWatchdog> watchdog;
      watchdog.emplace(launch.timeout, timeoutMessage);
      return train(options);
    }
    if (needsSpawn(launch)) {
      // The program is compiled and checked against the job before any
      // rank starts; each rank then compiles it again (and the ranks
      // check at rendezvous that they all got the same bytes).
      std::shared_ptr<const Program> program =
          loadOrCompile(options.modelPath, nullptr, options.plan,
                        options.launch.nproc, &options);
      if (!options.quiet)
        std::cout << describeRankGroups(*program) << std::flush;
      spawnProcesses(launch, *program,
                     std::vector<std::string>(argv, argv + argc));
      return 0;
    }
    // A spawned rank is ended by its launcher; every other run of this
    // process ends itself.
    std::optional<ProcessWatchdog> watchdog;
    if (!isSpawnedRank())
      watchdog.emplace(launch.timeout, timeoutMessage);
    // The world size a plan is compiled for: --nproc's, or the launcher's
    // (a rank of a launched job compiles what its launcher compiled).
    int ranks = launch.nproc;
    if (ranks <= 1 && !options.plan.empty() && launchEnvironmentPresent())
      ranks = detectLaunch().worldSize;
    std::shared_ptr<const Program> program = loadOrCompile(
        options.modelPath, nullptr, options.plan, ranks, &options);
    if (!options.quiet && !isSpawnedRank())
      std::cout << describeRankGroups(*program) << std::flush;
    runHere(launch, program);
    return 0;
  } catch (const LaunchError &e) {
    if (e.timedOut())
      std::cerr << timeoutMessage;
    for (const std::string &failure : e.failures())
      printError(failure);
    if (e.signal()) {
      // Die of the signal that stopped the launch, as its caller expects.
      std::signal(e.signal(), SIG_DFL);
      std::raise(e.signal());
    }
    return 1;
  } catch (const std::exception &e) {
    // In a launched job, say which rank could not even start its run.
    std::string where;
    if (const char *rank = std::getenv("RANK"))
      where = "rank " + std::string(rank) + ": ";
    printError(where + e.what());
    return 1;
  }
}
