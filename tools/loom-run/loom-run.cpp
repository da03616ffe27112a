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
#include "loom/runtime/launch/Launcher.h"
#include "loom/runtime/launch/Watchdog.h"

#include <csignal>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

using namespace loom;
using namespace loom::runtime;

namespace {

/// Reads the program: compiles MLIR, or loads a program file.
std::shared_ptr<const Program> loadOrCompile(const std::string &path) {
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
  if (!compileMlirFileToProgram(path, CompileOptions(), bytes, error))
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
    if (needsSpawn(launch)) {
      // The program is compiled and checked against the job before any
      // rank starts; each rank then compiles it again (and the ranks
      // check at rendezvous that they all got the same bytes).
      spawnProcesses(launch, *loadOrCompile(options.modelPath),
                     std::vector<std::string>(argv, argv + argc));
      return 0;
    }
    // A spawned rank is ended by its launcher; every other run of this
    // process ends itself.
    std::optional<ProcessWatchdog> watchdog;
    if (!isSpawnedRank())
      watchdog.emplace(launch.timeout, timeoutMessage);
    runHere(launch, loadOrCompile(options.modelPath));
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
