//===- loom-run.cpp - Compile and run a Loom program on CPU ranks ---------===//
//
//   loom-run MODEL.mlir|PROGRAM.loom [--nproc N] [--comm local|gloo]
//            [--inputs DIR] [--outputs DIR] [--seed S] [--steps K]
//            [--trace FILE] [--timeout SECONDS]
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

#include <cstdlib>
#include <iomanip>
#include <iostream>

using namespace loom;
using namespace loom::runtime;

namespace {

/// Reads the program: compiles MLIR, or loads a program file.
std::shared_ptr<const Program> loadOrCompile(const std::string &path) {
  bool isMlir =
      path.size() >= 5 && path.compare(path.size() - 5, 5, ".mlir") == 0;
  if (!isMlir)
    return Program::loadFile(path);
  std::vector<uint8_t> bytes;
  std::string error;
  if (!compileMlirFileToProgram(path, CompileOptions(), bytes, error))
    throw std::runtime_error("cannot compile " + path + ":\n" + error);
  return Program::load(bytes.data(), bytes.size());
}

/// "loss = 4.85203" for scalar outputs, then the run's figures.
void printSummary(const RankResult &result) {
  for (const auto &[name, value] : result.scalars)
    std::cout << name << " = " << std::setprecision(9) << value << "\n";
  std::cout << "ran " << result.program->instructions().size()
            << " instructions x " << result.steps << " step(s) on "
            << result.worldSize << " rank(s) in " << std::fixed
            << std::setprecision(3) << result.elapsedMs << " ms; arena planned "
            << result.plannedPeakBytes << " bytes, executed peak "
            << result.executedPeakBytes << " bytes\n";
}

} // namespace

int main(int argc, char **argv) {
  RunOptions options;
  try {
    options = parseRunOptions(argc, argv);
  } catch (const std::exception &e) {
    std::cerr << "loom-run: error: " << e.what() << "\n";
    return 2;
  }
  if (options.help) {
    std::cout << runUsage();
    return 0;
  }
  LaunchOptions &launch = options.launch;
  if (!options.quiet)
    launch.onRankDone = [](const RankResult &result) {
      if (result.rank == 0)
        printSummary(result);
    };
  try {
    // Spawned ranks run this same command; spawn before compiling, which
    // each of them does.
    if (needsSpawn(launch)) {
      spawnProcesses(launch, std::vector<std::string>(argv, argv + argc));
      return 0;
    }
    runHere(launch, loadOrCompile(options.modelPath));
    return 0;
  } catch (const LaunchError &e) {
    if (e.timedOut())
      std::cerr << "loom-run: error: the job exceeded --timeout ("
                << launch.timeout.count() << " s); ending all ranks\n";
    for (const std::string &failure : e.failures())
      std::cerr << "loom-run: error: " << failure << "\n";
    return 1;
  } catch (const std::exception &e) {
    // In a launched job, say which rank could not even start its run.
    std::string where;
    if (const char *rank = std::getenv("RANK"))
      where = "rank " + std::string(rank) + ": ";
    std::cerr << "loom-run: error: " << where << e.what() << "\n";
    return 1;
  }
}
