//===- RunOptions.cpp - loom-run's command line ---------------------------===//

#include "RunOptions.h"

#include <chrono>
#include <stdexcept>
#include <string>

using namespace loom;

const char *loom::runUsage() {
  return R"(usage: loom-run MODEL.mlir|PROGRAM.loom [options]

Compiles a loom MLIR file (or loads a compiled program) and runs it on CPU
ranks. Inputs are read from .npy files named after the program's inputs and
parameters, or generated from a seed; outputs are written as .npy files.

options:
  --nproc N           start N ranks here, as torchrun does
  --comm local|gloo   ranks as threads of this process (local, default) or as
                      processes over Gloo/TCP (gloo)
  --inputs DIR        read DIR/<name>.npy for each input and parameter;
                      DIR/rank<R>/<name>.npy, if present, is rank R's own
  --outputs DIR       write rank 0's outputs as DIR/<name>.npy and other
                      ranks' as DIR/rank<R>/<name>.npy
  --seed S            seed for inputs that --inputs does not provide
                      (default 0)
  --steps K           run the program K times (default 1)
  --trace FILE        write a Chrome trace (one track per rank and stream)
  --backend NAME      cpu (default), cuda (the CUDA plugin, needs a GPU), or
                      the path of a backend plugin
  --deadline SECONDS  how long a collective waits for its peers (default 60)
  --timeout SECONDS   end the whole job after this long (default 600)
  --quiet             print nothing but errors

Without --nproc, the rank and world size come from torchrun (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT), Open MPI, PMI or Slurm variables; with
none set, one rank runs.
)";
}

static long parseInteger(const std::string &flag, const std::string &value,
                         long min) {
  size_t used = 0;
  long number = 0;
  try {
    number = std::stol(value, &used);
  } catch (const std::exception &) {
    used = 0;
  }
  if (used != value.size() || value.empty())
    throw std::invalid_argument(flag + " needs an integer, got '" + value +
                                "'");
  if (number < min)
    throw std::invalid_argument(flag + " must be >= " + std::to_string(min) +
                                ", got " + value);
  return number;
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
      launch.nproc = static_cast<int>(parseInteger(flag, value, 1));
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
      launch.seed = static_cast<uint64_t>(parseInteger(flag, value, 0));
    else if (flag == "--steps")
      launch.steps = static_cast<int>(parseInteger(flag, value, 1));
    else if (flag == "--trace")
      launch.tracePath = value;
    else if (flag == "--backend")
      launch.backend = value;
    else if (flag == "--timeout")
      launch.timeout = std::chrono::seconds(parseInteger(flag, value, 1));
    else if (flag == "--deadline")
      launch.deadline =
          std::chrono::milliseconds(1000 * parseInteger(flag, value, 1));
    else
      throw std::invalid_argument("unknown option '" + flag + "' (see --help)");
  }
  if (options.modelPath.empty())
    throw std::invalid_argument("no model or program given (see --help)");
  return options;
}
