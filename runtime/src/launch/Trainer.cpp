//===- Trainer.cpp - Training a model with its training-step program ------===//

#include "loom/runtime/launch/Trainer.h"

#include "loom/runtime/Pieces.h"
#include "loom/runtime/Runtime.h"
#include "loom/runtime/SeededInputs.h"
#include "loom/runtime/comm/ExecutorComms.h"
#include "loom/runtime/comm/LocalCommunicator.h"
#include "loom/runtime/train/BatchSampler.h"
#include "loom/runtime/train/Checkpoint.h"
#include "loom/runtime/train/LossPlot.h"
#include "loom/runtime/train/Progress.h"
#include "loom/runtime/train/TokenSource.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

using namespace loom::runtime;

namespace {

[[noreturn]] void fail(const std::string &message) {
  throw std::runtime_error(message);
}

/// The programs that run: a pipeline program's stages, or the program.
std::vector<const Program *> runningPrograms(const Program &program) {
  std::vector<const Program *> programs;
  for (const auto &stage : program.stages())
    programs.push_back(stage.get());
  if (programs.empty())
    programs.push_back(&program);
  return programs;
}

/// The binding of input `name` and its program (the first stage that has
/// it), or nulls.
std::pair<const Program *, const Binding *>
inputBinding(const Program &program, const std::string &name) {
  for (const Program *p : runningPrograms(program))
    for (const Binding &b : p->inputs())
      if (b.name == name)
        return {p, &b};
  return {nullptr, nullptr};
}

/// The buffer bound to input `name` (in any stage), or null.
const BufferInfo *inputBuffer(const Program &program, const std::string &name) {
  auto [owner, binding] = inputBinding(program, name);
  return binding ? &owner->buffers()[binding->buffer] : nullptr;
}

/// Whether every program that runs has output `name`.
bool hasOutput(const Program &program, const std::string &name) {
  for (const Program *p : runningPrograms(program))
    if (std::none_of(p->outputs().begin(), p->outputs().end(),
                     [&](const Binding &b) { return b.name == name; }))
      return false;
  return true;
}

/// What the trainer needs of the program, checked up front.
struct StepShape {
  int64_t rows = 0, seq = 0, vocab = 0;
  DType tokens = DType::I32, step = DType::I32;
};

StepShape checkTrainingStep(const Program &program) {
  auto need = [&](const char *name) {
    const BufferInfo *b = inputBuffer(program, name);
    if (!b)
      fail("program '" + program.name() +
           "' is not a training step: it has no input '" + name +
           "' (compile the forward with loom-run --train, or loom-models "
           "--train)");
    return b;
  };
  const BufferInfo *tokens = need("tokens"), *targets = need("targets"),
                   *lr = need("lr"), *step = need("step");
  for (const char *out : {"loss", "grad_norm"})
    if (!hasOutput(program, out))
      fail("program '" + program.name() +
           "' is not a training step: it has no output '" + out + "'");
  StepShape shape;
  if (tokens->shape.size() != 2 || tokens->shape != targets->shape ||
      !isInteger(tokens->dtype) || tokens->dtype != targets->dtype)
    fail("inputs 'tokens' and 'targets' must be integer [rows, seq] of one "
         "type, got " +
         tokens->typeStr() + " and " + targets->typeStr());
  if (lr->dtype != DType::F32 || !lr->shape.empty())
    fail("input 'lr' must be a scalar f32, got " + lr->typeStr());
  if (!isInteger(step->dtype) || !step->shape.empty())
    fail("input 'step' must be a scalar integer, got " + step->typeStr());
  // The whole batch: a rank's tokens may be its piece of it.
  auto [owner, binding] = inputBinding(program, "tokens");
  std::vector<int64_t> whole = wholeShape(*owner, *binding);
  shape.rows = whole[0];
  shape.seq = whole[1];
  shape.tokens = tokens->dtype;
  shape.step = step->dtype;
  // The vocabulary: the logits' last dimension of the loss (on a
  // pipeline's last stage).
  for (const Program *p : runningPrograms(program))
    for (const InstrInfo &instr : p->instructions())
      if ((instr.op == Opcode::CrossEntropy ||
           instr.op == Opcode::CrossEntropyGrad) &&
          !instr.operands.empty() && shape.vocab < 1)
        shape.vocab = p->buffers()[instr.operands[0]].shape.back();
  if (shape.vocab < 1)
    fail("program '" + program.name() +
         "' has no cross_entropy: cannot tell its vocabulary");
  return shape;
}

/// `tensor` ([rows, seq] i32 from the sampler) in the program's integer type.
HostTensor asIndices(const HostTensor &tensor, DType dtype) {
  if (dtype == DType::I32)
    return tensor;
  HostTensor wide(DType::I64, tensor.shape);
  for (int64_t i = 0; i < tensor.numel(); ++i)
    wide.as<int64_t>()[i] = tensor.as<int32_t>()[i];
  return wide;
}

HostTensor scalarInteger(DType dtype, int64_t value) {
  HostTensor t(dtype, {});
  if (dtype == DType::I32)
    t.as<int32_t>()[0] = static_cast<int32_t>(value);
  else
    t.as<int64_t>()[0] = value;
  return t;
}

float scalarOutput(const Executor &exec, const std::string &name) {
  HostTensor t = exec.getOutput(name);
  return t.as<float>()[0];
}

/// The program's parameters and optimizer state (its persistent buffers),
/// by binding name.
std::vector<const Binding *> persistentBindings(const Program &program) {
  std::vector<const Binding *> bindings;
  for (const Binding &b : program.inputs())
    if (isPersistent(program.buffers()[b.buffer].kind))
      bindings.push_back(&b);
  return bindings;
}

/// Every persistent tensor of the job once (a pipeline's stages hold
/// theirs; a tied parameter is in two), with the program it is in.
std::vector<std::pair<const Program *, const Binding *>>
jobPersistentBindings(const Program &program) {
  std::vector<std::pair<const Program *, const Binding *>> all;
  std::set<std::string> seen;
  for (const Program *p : runningPrograms(program))
    for (const Binding *b : persistentBindings(*p))
      if (seen.insert(b->name).second)
        all.push_back({p, b});
  return all;
}

} // namespace

std::string loom::runtime::trainingStateId(const Program &program) {
  // FNV-1a over "name dtype whole-shape;" of every persistent tensor, by
  // name: the same for every plan of one model, so that a checkpoint (of
  // whole tensors) resumes under another plan.
  std::set<std::string> entries;
  for (auto [owner, b] : jobPersistentBindings(program)) {
    const BufferInfo &buffer = owner->buffers()[b->buffer];
    std::string entry = b->name + " " + dtypeName(buffer.dtype) + "[";
    for (int64_t d : wholeShape(*owner, *b))
      entry += std::to_string(d) + ",";
    entries.insert(entry + "]");
  }
  uint64_t hash = 14695981039346656037ull;
  for (const std::string &entry : entries)
    for (char c : entry + ";")
      hash = (hash ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  char text[32];
  std::snprintf(text, sizeof text, "state-%016llx",
                static_cast<unsigned long long>(hash));
  return text;
}

namespace {

/// A barrier of the ranks of one job that a failed rank releases.
class RankBarrier {
public:
  explicit RankBarrier(int count) : count_(count) {}
  /// Waits for every rank; throws when the job failed meanwhile.
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    int64_t generation = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      changed_.notify_all();
    } else {
      changed_.wait(lock, [&] { return generation_ != generation || failed_; });
    }
    if (failed_)
      throw std::runtime_error("another rank failed");
  }
  void fail() {
    std::lock_guard<std::mutex> lock(mutex_);
    failed_ = true;
    changed_.notify_all();
  }

private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int count_, arrived_ = 0;
  int64_t generation_ = 0;
  bool failed_ = false;
};

/// What the ranks of one training job share.
struct TrainJob {
  const TrainOptions &options;
  const LaunchOptions &launch;
  std::shared_ptr<const Program> program;
  StepShape shape;
  std::string stateId;
  int64_t lastStep = 0;
  /// The checkpoint resumed from (whole tensors), if any.
  std::optional<Checkpoint> resumed;
  /// Whole tensors being put together from every rank's pieces to save.
  std::mutex piecesMutex;
  std::map<std::string, HostTensor> wholes;
  RankBarrier barrier;
  TrainResult result;

  TrainJob(const TrainOptions &options, const LaunchOptions &launch,
           std::shared_ptr<const Program> program, int ranks)
      : options(options), launch(launch), program(std::move(program)),
        barrier(ranks) {}
};

/// One rank's training loop; rank 0 also reports, logs and saves.
void trainRank(TrainJob &job, int64_t rank, CommunicatorFactory comms) {
  const TrainOptions &options = job.options;
  // A pipeline program: this rank runs its stage's program.
  std::shared_ptr<const Program> own = programForRank(job.program, rank);
  const Program &P = *own;
  const StepShape &shape = job.shape;
  bool lead = rank == 0;

  // Every rank reads the same data and cuts its piece of each batch.
  std::unique_ptr<TokenSource> data = openTokenSource(options.dataPath);
  BatchSampler sampler(*data, shape.rows, shape.seq, shape.vocab);

  ExecutorOptions execOptions;
  execOptions.backend = job.launch.backend;
  execOptions.rank = rank;
  execOptions.communicators = std::move(comms);
  Executor exec(own, execOptions);
  auto bindingOf = [&](const std::string &name) -> const Binding & {
    for (const Binding &b : P.inputs())
      if (b.name == name)
        return b;
    fail("no input '" + name + "'");
  };
  auto setPiece = [&](const std::string &name, const HostTensor &whole) {
    exec.setInput(name, pieceOf(whole, P, bindingOf(name), rank));
  };

  // Parameters and state: from the checkpoint, or initialized (state
  // starts at zero), each rank taking its pieces of the whole tensors.
  std::vector<const Binding *> persistent = persistentBindings(P);
  if (job.resumed) {
    for (const Binding *b : persistent)
      setPiece(b->name, job.resumed->tensors.at(b->name));
    sampler.setPosition(job.resumed->dataPosition);
  } else {
    for (const Binding *b : persistent)
      if (P.buffers()[b->buffer].kind == BufferKind::Parameter)
        setPiece(b->name, seededWholeInput(P, *b, job.launch.seed));
  }
  int64_t firstStep = job.resumed ? job.resumed->step : 0;

  // The log is opened after the first step succeeds: bad data or a program
  // that fails leaves an earlier run's log as it was.
  std::unique_ptr<LossCsvWriter> log;
  auto openLog = [&] {
    std::error_code error;
    std::filesystem::create_directories(options.logDir, error);
    if (error)
      fail("--log " + options.logDir + ": " + error.message());
    log = std::make_unique<LossCsvWriter>(options.logDir + "/loss.csv",
                                          job.resumed ? firstStep : -1);
  };
  std::unique_ptr<ProgressDisplay> progress;
  if (lead && options.progress)
    progress = std::make_unique<ProgressDisplay>(
        *options.progress, options.progressIsTerminal, job.lastStep, firstStep);

  // Every rank puts its pieces into the whole tensors; rank 0 saves them.
  auto save = [&](int64_t step) {
    {
      std::lock_guard<std::mutex> lock(job.piecesMutex);
      for (const Binding *b : persistent) {
        HostTensor piece = exec.getOutput(b->name);
        HostTensor &whole = job.wholes[b->name];
        if (whole.shape.empty() && whole.bytes.empty())
          whole = HostTensor(piece.dtype, wholeShape(P, *b));
        placePiece(whole, piece, P, *b, rank);
      }
    }
    job.barrier.wait();
    if (lead) {
      Checkpoint c;
      c.step = step;
      c.dataPosition = sampler.position();
      c.seed = job.launch.seed;
      c.model = options.model;
      c.programId = job.stateId;
      c.tensors = job.wholes;
      saveCheckpoint(options.saveDir, c);
      if (progress)
        progress->print("saved step " + std::to_string(step) + " to " +
                        checkpointIterationDir(options.saveDir, step));
    }
    job.barrier.wait();
  };

  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now();
  double tokensPerStep = static_cast<double>(shape.rows * shape.seq);
  for (int64_t step = firstStep + 1; step <= job.lastStep; ++step) {
    Clock::time_point begin = Clock::now();
    Batch batch = sampler.next();
    double lr = learningRate(options.schedule, step);
    // (A pipeline's first stage reads the tokens, its last the targets.)
    if (P.findInput("tokens") >= 0)
      setPiece("tokens", asIndices(batch.tokens, shape.tokens));
    if (P.findInput("targets") >= 0)
      setPiece("targets", asIndices(batch.targets, shape.tokens));
    exec.setInput("lr", HostTensor::f32({}, {static_cast<float>(lr)}));
    exec.setInput("step", scalarInteger(shape.step, step));
    exec.run();
    Clock::time_point end = Clock::now();

    StepRecord record;
    record.step = step;
    record.loss = scalarOutput(exec, "loss");
    record.gradNorm = scalarOutput(exec, "grad_norm");
    record.lr = lr;
    double seconds = std::chrono::duration<double>(end - begin).count();
    record.tokensPerS = seconds > 0 ? tokensPerStep / seconds : 0;
    record.elapsedS = std::chrono::duration<double>(end - start).count();
    if (!std::isfinite(record.loss) || !std::isfinite(record.gradNorm))
      fail("step " + std::to_string(step) + ": the loss (" +
           std::to_string(record.loss) + ") or the gradient norm (" +
           std::to_string(record.gradNorm) +
           ") is not finite; stopping without saving (lower --lr?)");
    if (lead) {
      if (!log && !options.logDir.empty())
        openLog();
      if (log)
        log->append(record);
      if (progress)
        progress->update(record);
      job.result.records.push_back(record);
      job.result.lastStep = step;
    }
    bool exiting = options.exitInterval > 0 && step % options.exitInterval == 0;
    bool interval =
        options.saveInterval > 0 && step % options.saveInterval == 0;
    if (!options.saveDir.empty() &&
        (interval || exiting || step == job.lastStep))
      save(step);
    if (exiting)
      break;
  }
  if (!lead)
    return;
  if (progress)
    progress->finish();
  if (log) {
    LossPlotOptions plot;
    plot.title =
        (options.model.empty() ? P.name() : options.model) + " training loss";
    writeLossSvg(options.logDir + "/loss.svg", log->records(), plot);
  }
}

} // namespace

TrainResult loom::runtime::runTraining(const TrainOptions &options,
                                       const LaunchOptions &launch,
                                       std::shared_ptr<const Program> program) {
  const Program &P = *program;
  int64_t ranks = P.mesh().size();
  if (launch.nproc > 1 && launch.nproc != ranks)
    fail("program '" + P.name() + "' runs on " + std::to_string(ranks) +
         " ranks (mesh " + P.mesh().str() + "), not --nproc " +
         std::to_string(launch.nproc));
  if (ranks > 1 && launch.comm != LaunchComm::Local)
    fail("training on ranks of their own processes (--comm gloo) is not "
         "built yet; train with --comm local");
  TrainJob job(options, launch, program, static_cast<int>(ranks));
  job.shape = checkTrainingStep(P);
  if (std::string problem = lrScheduleProblem(options.schedule);
      !problem.empty())
    fail("learning-rate schedule: " + problem);
  job.lastStep = options.schedule.totalSteps;
  job.stateId = trainingStateId(P);

  // Data first: a data set too short for one batch fails before any work.
  {
    std::unique_ptr<TokenSource> data = openTokenSource(options.dataPath);
    BatchSampler check(*data, job.shape.rows, job.shape.seq, job.shape.vocab);
    check.next();
  }
  std::vector<std::pair<const Program *, const Binding *>> persistent =
      jobPersistentBindings(P);
  for (auto [owner, b] : persistent)
    job.result.persistentNames.push_back(b->name);
  if (!options.loadDir.empty() && latestCheckpointStep(options.loadDir)) {
    Checkpoint c = loadCheckpoint(options.loadDir);
    if (std::string why =
            checkpointMismatch(options.loadDir, c, options.model, job.stateId);
        !why.empty())
      fail(why);
    for (auto [owner, b] : persistent) {
      auto it = c.tensors.find(b->name);
      if (it == c.tensors.end())
        fail("checkpoint " + options.loadDir + " has no tensor '" + b->name +
             "'");
      if (it->second.shape != wholeShape(*owner, *b))
        fail("checkpoint " + options.loadDir + ": '" + b->name +
             "' has another shape than the program's");
    }
    if (c.tensors.size() != persistent.size())
      fail("checkpoint " + options.loadDir + " holds " +
           std::to_string(c.tensors.size()) + " tensors, the program " +
           std::to_string(persistent.size()));
    if (c.step >= job.lastStep)
      fail("checkpoint " + options.loadDir + " is at step " +
           std::to_string(c.step) + ", not before the last step " +
           std::to_string(job.lastStep) + " (raise --steps to train further)");
    job.result.firstStep = c.step;
    job.resumed = std::move(c);
  }

  if (ranks == 1) {
    trainRank(job, 0, CommunicatorFactory());
    return std::move(job.result);
  }
  // Ranks as threads over the local communicator; the first failure ends
  // the others (their collectives and barriers fail at once).
  LocalWorldOptions worldOptions;
  worldOptions.deadline = launch.deadline;
  auto world = LocalWorld::create(static_cast<int>(ranks), worldOptions);
  std::vector<std::string> errors(ranks);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < ranks; ++rank)
    threads.emplace_back([&, rank] {
      try {
        std::shared_ptr<CommunicatorProvider> provider = world->provider(rank);
        trainRank(job, rank, executorCommunicators(provider));
      } catch (const std::exception &e) {
        errors[rank] = e.what();
        world->abort(rank,
                     "rank " + std::to_string(rank) + " failed: " + e.what());
        job.barrier.fail();
      }
    });
  for (std::thread &t : threads)
    t.join();
  // The first failure is the cause; the others' are its consequences.
  for (int rank = 0; rank < ranks; ++rank)
    if (!errors[rank].empty() && errors[rank] != "another rank failed" &&
        errors[rank].find("failed:") == std::string::npos)
      fail(ranks > 1 ? "rank " + std::to_string(rank) + ": " + errors[rank]
                     : errors[rank]);
  for (int rank = 0; rank < ranks; ++rank)
    if (!errors[rank].empty())
      fail("rank " + std::to_string(rank) + ": " + errors[rank]);
  return std::move(job.result);
}
