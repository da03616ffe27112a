//===- RunOptions.cpp - loom-run's command line ---------------------------===//

#include "RunOptions.h"

#include "loom/runtime/ParseNumber.h"

#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>

using namespace loom;

const char *loom::runUsage() {
  return R"(usage: loom-run MODEL.mlir|PROGRAM.loom [options]

Compiles a loom MLIR file (or loads a compiled program) and runs it on CPU
ranks. Inputs are read from .npy files named after the program's inputs and
parameters, or generated from a seed; outputs are written as .npy files.

options:
  --nproc N           start N ranks here (1 to 1024), as torchrun does
  --comm local|gloo   ranks as threads of this process (local, default) or as
                      processes over Gloo/TCP (gloo)
  --inputs DIR        read DIR/<name>.npy for each input and parameter;
                      DIR/rank<R>/<name>.npy, if present, is rank R's own; a
                      .npy named after no input is an error
  --outputs DIR       write rank 0's outputs as DIR/<name>.npy and other
                      ranks' as DIR/rank<R>/<name>.npy, all at once when
                      every rank is done
  --seed S            seed for inputs that --inputs does not provide
                      (default 0)
  --steps K           run the program K times (default 1)
  --trace FILE        write a Chrome trace (one track per rank and stream)
  --backend NAME      cpu (default), cuda (the CUDA plugin, needs a GPU), or
                      the path of a backend plugin
  --deadline SECONDS  how long a collective waits for its peers (default 60)
  --timeout SECONDS   end the whole job after this long (default 600)
  --quiet             print nothing but errors

Durations are seconds to the millisecond (0.5), at most a year.

Without --nproc, the rank and world size come from torchrun (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT), Open MPI, PMI or Slurm variables; with
none set, one rank runs. LOOM_JOB_ID names the job (else TORCHELASTIC_RUN_ID,
SLURM_JOB_ID.SLURM_STEP_ID or PMIX_NAMESPACE): ranks of another job at the
same MASTER_ADDR:MASTER_PORT are refused. LOOM_JOB_TOKEN, if set, is a secret
every rank must share.
)";
}

// The limits of each number (ranks, steps, seconds) are the runtime's:
// nothing is wrapped into range or read only as far as it parses.

static int64_t integerFlag(const std::string &flag, const std::string &value,
                           int64_t min, int64_t max) {
  int64_t number = 0;
  if (runtime::NumberProblem problem =
          runtime::parseInteger(value, min, max, number))
    throw std::invalid_argument(flag + " " + *problem);
  return number;
}

/// Durations reach Gloo's and the kernel's waits as milliseconds; a year
/// is far above any job and far below where they overflow.
static std::chrono::milliseconds secondsFlag(const std::string &flag,
                                             const std::string &value) {
  constexpr std::chrono::milliseconds kMin{1}, kMax{365LL * 24 * 3600 * 1000};
  std::chrono::milliseconds duration{0};
  if (runtime::NumberProblem problem =
          runtime::parseSeconds(value, kMin, kMax, duration))
    throw std::invalid_argument(flag + " " + *problem);
  return duration;
}

RunOptions loom::parseRunOptions(int argc, char **argv) {
  RunOptions options;
  runtime::LaunchOptions &launch = options.launch;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      options.help = true;
      return options;
    }
    if (arg == "--quiet") {
      options.quiet = true;
      continue;
    }
    if (arg.rfind("-", 0) != 0) {
      if (!options.modelPath.empty())
        throw std::invalid_argument("more than one model given: '" +
                                    options.modelPath + "' and '" + arg + "'");
      options.modelPath = arg;
      continue;
    }
    std::string flag = arg, value;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else {
      if (i + 1 >= argc)
        throw std::invalid_argument("missing value after '" + arg + "'");
      value = argv[++i];
    }
    if (flag == "--nproc")
      launch.nproc = static_cast<int>(
          integerFlag(flag, value, 1, runtime::kMaxLocalRanks));
    else if (flag == "--comm") {
      if (value != "local" && value != "gloo")
        throw std::invalid_argument("--comm must be local or gloo, got '" +
                                    value + "'");
      launch.comm = value == "gloo" ? runtime::LaunchComm::Gloo
                                    : runtime::LaunchComm::Local;
    } else if (flag == "--inputs")
      launch.inputsDir = value;
    else if (flag == "--outputs")
      launch.outputsDir = value;
    else if (flag == "--seed")
      launch.seed = static_cast<uint64_t>(
          integerFlag(flag, value, 0, std::numeric_limits<int64_t>::max()));
    else if (flag == "--steps")
      launch.steps = static_cast<int>(
          integerFlag(flag, value, 1, std::numeric_limits<int>::max()));
    else if (flag == "--trace")
      launch.tracePath = value;
    else if (flag == "--backend")
      launch.backend = value;
    else if (flag == "--timeout")
      launch.timeout = secondsFlag(flag, value);
    else if (flag == "--deadline")
      launch.deadline = secondsFlag(flag, value);
    else
      throw std::invalid_argument("unknown option '" + flag + "' (see --help)");
  }
  if (options.modelPath.empty())
    throw std::invalid_argument("no model or program given (see --help)");
  return options;
}
