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
  --plan SPEC         compile MODEL.mlir under a parallel plan (e.g.
                      dp=2,tp=2; docs/PlanSpec.md): one program for the
                      plan's ranks, run with --nproc or a launcher
  --schedule S        with a plan's pp > 1: the pipeline schedule, gpipe,
                      1f1b, interleaved or zb-h1 (the plan's schedule=), or
                      a schedule CSV file (docs/Schedules.md)
  --overlap-grad-reduce  with --plan: bucket the data-parallel gradient
                      reductions and run them on the communication thread,
                      overlapped with backward (Megatron-LM's flag)
  --bucket-size BYTES bytes per gradient bucket (default 160000000: 40M f32
                      parameters, Megatron's default)
  --trace FILE        write a Chrome trace (one track per rank and stream)
  --backend NAME      cpu (default), cuda (the CUDA plugin, needs a GPU), or
                      the path of a backend plugin
  --deadline SECONDS  how long a collective waits for its peers (default 60)
  --timeout SECONDS   end the whole job after this long (default 600)
  --quiet             print nothing but errors

training (--train):
  --train             compile MODEL.mlir's training step (forward, backward,
                      AdamW) and train it for --steps steps on --data
  --data PATH         a text file (a token per byte) or a Megatron indexed
                      data set (PREFIX, PREFIX.bin or PREFIX.idx); default:
                      the King James Bible the setup installs
  --lr X              peak learning rate (default 1e-3)
  --min-lr X          learning rate at the end of the cosine decay (default 0)
  --warmup N          steps of linear warm-up (default 0)
  --micro-batches N   microbatches per step, accumulated (default 1)
  --recompute POLICY  none, selective or full activation recompute (none)
  --clip-grad X       clip gradients to global norm X, 0: off (default 1.0)
  --weight-decay X    AdamW weight decay of matrices (default 0.01)
  --adam-beta1 X, --adam-beta2 X, --adam-eps X   (0.9, 0.999, 1e-8)
  --save DIR          write checkpoints to DIR (Megatron's layout) and the
                      loss curve there (loss.csv, loss.svg)
  --save-interval N   also checkpoint every N steps
  --exit-interval N   stop (with a checkpoint) after a step divisible by N
  --load DIR          resume from DIR's latest checkpoint, if any
  --log DIR           write loss.csv and loss.svg to DIR (default: --save)
  --seed S            seeds the initial parameters
Without a terminal, progress is a line every few steps.

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

static double realFlag(const std::string &flag, const std::string &value,
                       double min, double max) {
  double number = 0;
  if (runtime::NumberProblem problem =
          runtime::parseReal(value, min, max, number))
    throw std::invalid_argument(flag + " " + *problem);
  return number;
}

/// Sets the training option `flag`; false when it is not one.
static bool parseTrainingFlag(const std::string &flag, const std::string &value,
                              RunOptions &options) {
  runtime::TrainOptions &t = options.training;
  constexpr int64_t kMaxSteps = std::numeric_limits<int>::max();
  if (flag == "--data")
    t.dataPath = value;
  else if (flag == "--save")
    t.saveDir = value;
  else if (flag == "--load")
    t.loadDir = value;
  else if (flag == "--log")
    t.logDir = value;
  else if (flag == "--save-interval")
    t.saveInterval = integerFlag(flag, value, 1, kMaxSteps);
  else if (flag == "--exit-interval")
    t.exitInterval = integerFlag(flag, value, 1, kMaxSteps);
  else if (flag == "--lr")
    t.schedule.lr = realFlag(flag, value, 0.0, 1e3);
  else if (flag == "--min-lr")
    t.schedule.minLr = realFlag(flag, value, 0.0, 1e3);
  else if (flag == "--warmup")
    t.schedule.warmup = integerFlag(flag, value, 0, kMaxSteps);
  else if (flag == "--recompute") {
    if (value != "none" && value != "selective" && value != "full")
      throw std::invalid_argument(
          "--recompute must be none, selective or full, got '" + value + "'");
    options.recompute = value;
  } else if (flag == "--micro-batches")
    options.microBatches = integerFlag(flag, value, 1, int64_t(1) << 20);
  else if (flag == "--clip-grad")
    options.clipGrad = realFlag(flag, value, 0.0, 1e30);
  else if (flag == "--weight-decay")
    options.weightDecay = realFlag(flag, value, 0.0, 1e6);
  else if (flag == "--adam-beta1")
    options.adamBeta1 = realFlag(flag, value, 0.0, 0.999999);
  else if (flag == "--adam-beta2")
    options.adamBeta2 = realFlag(flag, value, 0.0, 0.999999);
  else if (flag == "--adam-eps")
    options.adamEps = realFlag(flag, value, 1e-30, 1.0);
  else
    return false;
  return true;
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
    if (arg == "--train") {
      options.train = true;
      continue;
    }
    if (arg == "--overlap-grad-reduce") {
      options.overlapGradReduce = true;
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
    else if (flag == "--steps") {
      launch.steps = static_cast<int>(
          integerFlag(flag, value, 1, std::numeric_limits<int>::max()));
      options.stepsGiven = true;
    } else if (flag == "--plan")
      options.plan = value;
    else if (flag == "--schedule")
      options.schedule = value;
    else if (flag == "--bucket-size")
      options.bucketSize =
          integerFlag(flag, value, 1, std::numeric_limits<int64_t>::max());
    else if (flag == "--trace")
      launch.tracePath = value;
    else if (flag == "--backend")
      launch.backend = value;
    else if (flag == "--timeout") {
      launch.timeout = secondsFlag(flag, value);
      options.timeoutGiven = true;
    } else if (parseTrainingFlag(flag, value, options))
      continue;
    else if (flag == "--deadline")
      launch.deadline = secondsFlag(flag, value);
    else
      throw std::invalid_argument("unknown option '" + flag + "' (see --help)");
  }
  if (options.modelPath.empty())
    throw std::invalid_argument("no model or program given (see --help)");
  if (!options.schedule.empty()) {
    if (options.plan.empty())
      throw std::invalid_argument("--schedule orders a plan's pipeline "
                                  "stages: add --plan with pp > 1");
    // A schedule by name is the plan's own key; a file goes to the
    // pipeline splitter as it is.
    bool file =
        options.schedule.size() > 4 &&
        options.schedule.compare(options.schedule.size() - 4, 4, ".csv") == 0;
    if (!file) {
      options.plan += ",schedule=" + options.schedule;
      options.schedule.clear();
    }
  }
  if (options.overlapGradReduce && options.plan.empty())
    throw std::invalid_argument("--overlap-grad-reduce overlaps a plan's "
                                "data-parallel reductions: add --plan");
  runtime::TrainOptions &t = options.training;
  bool trainingFlags = !t.dataPath.empty() || !t.saveDir.empty() ||
                       !t.loadDir.empty() || !t.logDir.empty();
  if (trainingFlags && !options.train)
    throw std::invalid_argument(
        "--data, --save, --load and --log train a model: add --train");
  if (options.train) {
    if (!launch.inputsDir.empty() || !launch.outputsDir.empty())
      throw std::invalid_argument(
          "--train reads --data and writes --save; --inputs and --outputs "
          "run a program once (use --load to start from a checkpoint)");
    if (launch.nproc > 1 && options.plan.empty())
      throw std::invalid_argument(
          "--train on several ranks needs a --plan (e.g. --plan dp=" +
          std::to_string(launch.nproc) + ")");
    if (t.schedule.minLr > t.schedule.lr)
      throw std::invalid_argument("--min-lr must not exceed --lr");
    if (!options.stepsGiven)
      launch.steps = 100;
    t.schedule.totalSteps = launch.steps;
    if (t.schedule.warmup > launch.steps)
      throw std::invalid_argument(
          "--warmup " + std::to_string(t.schedule.warmup) +
          " exceeds --steps " + std::to_string(launch.steps));
    if (t.logDir.empty())
      t.logDir = t.saveDir;
    // Training runs as long as it takes unless a timeout is given.
    if (!options.timeoutGiven)
      launch.timeout = std::chrono::hours(24 * 365);
  }
  return options;
}
