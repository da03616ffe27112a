//===- Trainer.cpp - Training a model with its training-step program ------===//

#include "loom/runtime/launch/Trainer.h"

#include "loom/runtime/Runtime.h"
#include "loom/runtime/SeededInputs.h"
#include "loom/runtime/train/BatchSampler.h"
#include "loom/runtime/train/Checkpoint.h"
#include "loom/runtime/train/LossPlot.h"
#include "loom/runtime/train/Progress.h"
#include "loom/runtime/train/TokenSource.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>

using namespace loom::runtime;

namespace {

[[noreturn]] void fail(const std::string &message) {
  throw std::runtime_error(message);
}

/// The buffer bound to input `name`, or null.
const BufferInfo *inputBuffer(const Program &program, const std::string &name) {
  for (const Binding &b : program.inputs())
    if (b.name == name)
      return &program.buffers()[b.buffer];
  return nullptr;
}

bool hasOutput(const Program &program, const std::string &name) {
  for (const Binding &b : program.outputs())
    if (b.name == name)
      return true;
  return false;
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
  shape.rows = tokens->shape[0];
  shape.seq = tokens->shape[1];
  shape.tokens = tokens->dtype;
  shape.step = step->dtype;
  // The vocabulary: the logits' last dimension of the loss.
  for (const InstrInfo &instr : program.instructions())
    if ((instr.op == Opcode::CrossEntropy ||
         instr.op == Opcode::CrossEntropyGrad) &&
        !instr.operands.empty()) {
      shape.vocab = program.buffers()[instr.operands[0]].shape.back();
      break;
    }
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

} // namespace

std::string loom::runtime::trainingStateId(const Program &program) {
  // FNV-1a over "name dtype shape;" of every persistent buffer, by name.
  std::set<std::string> entries;
  for (const Binding *b : persistentBindings(program))
    entries.insert(b->name + " " + program.buffers()[b->buffer].typeStr());
  uint64_t hash = 14695981039346656037ull;
  for (const std::string &entry : entries)
    for (char c : entry + ";")
      hash = (hash ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  char text[32];
  std::snprintf(text, sizeof text, "state-%016llx",
                static_cast<unsigned long long>(hash));
  return text;
}

TrainResult loom::runtime::runTraining(const TrainOptions &options,
                                       const LaunchOptions &launch,
                                       std::shared_ptr<const Program> program) {
  const Program &P = *program;
  StepShape shape = checkTrainingStep(P);
  if (std::string problem = lrScheduleProblem(options.schedule);
      !problem.empty())
    fail("learning-rate schedule: " + problem);
  int64_t lastStep = options.schedule.totalSteps;
  std::string stateId = trainingStateId(P);

  // Data first: a data set too short for one batch fails before any work.
  std::unique_ptr<TokenSource> data = openTokenSource(options.dataPath);
  BatchSampler sampler(*data, shape.rows, shape.seq, shape.vocab);

  ExecutorOptions execOptions;
  execOptions.backend = launch.backend;
  Executor exec(program, execOptions);

  // Parameters and state: from the checkpoint, or initialized (state
  // starts at zero).
  TrainResult result;
  std::vector<const Binding *> persistent = persistentBindings(P);
  for (const Binding *b : persistent)
    result.persistentNames.push_back(b->name);
  std::optional<int64_t> saved;
  if (!options.loadDir.empty())
    saved = latestCheckpointStep(options.loadDir);
  if (saved) {
    Checkpoint c = loadCheckpoint(options.loadDir);
    if (std::string why =
            checkpointMismatch(options.loadDir, c, options.model, stateId);
        !why.empty())
      fail(why);
    for (const Binding *b : persistent) {
      auto it = c.tensors.find(b->name);
      if (it == c.tensors.end())
        fail("checkpoint " + options.loadDir + " has no tensor '" + b->name +
             "'");
      exec.setInput(b->name, it->second);
    }
    if (c.tensors.size() != persistent.size())
      fail("checkpoint " + options.loadDir + " holds " +
           std::to_string(c.tensors.size()) + " tensors, the program " +
           std::to_string(persistent.size()));
    if (c.step >= lastStep)
      fail("checkpoint " + options.loadDir + " is at step " +
           std::to_string(c.step) + ", not before the last step " +
           std::to_string(lastStep) + " (raise --steps to train further)");
    result.firstStep = c.step;
    sampler.setPosition(c.dataPosition);
  } else {
    for (const Binding *b : persistent) {
      const BufferInfo &buffer = P.buffers()[b->buffer];
      if (buffer.kind == BufferKind::Parameter)
        exec.setInput(b->name, seededInput(P, buffer, launch.seed));
    }
  }

  // The log is opened after the first step succeeds: bad data or a program
  // that fails leaves an earlier run's log as it was.
  std::unique_ptr<LossCsvWriter> log;
  auto openLog = [&] {
    std::error_code error;
    std::filesystem::create_directories(options.logDir, error);
    if (error)
      fail("--log " + options.logDir + ": " + error.message());
    log = std::make_unique<LossCsvWriter>(options.logDir + "/loss.csv",
                                          saved ? result.firstStep : -1);
  };
  std::unique_ptr<ProgressDisplay> progress;
  if (options.progress)
    progress = std::make_unique<ProgressDisplay>(*options.progress,
                                                 options.progressIsTerminal,
                                                 lastStep, result.firstStep);

  auto save = [&](int64_t step) {
    Checkpoint c;
    c.step = step;
    c.dataPosition = sampler.position();
    c.seed = launch.seed;
    c.model = options.model;
    c.programId = stateId;
    for (const Binding *b : persistent)
      c.tensors[b->name] = exec.getOutput(b->name);
    saveCheckpoint(options.saveDir, c);
    if (progress)
      progress->print("saved step " + std::to_string(step) + " to " +
                      checkpointIterationDir(options.saveDir, step));
  };

  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now();
  double tokensPerStep = static_cast<double>(shape.rows * shape.seq);
  for (int64_t step = result.firstStep + 1; step <= lastStep; ++step) {
    Clock::time_point begin = Clock::now();
    Batch batch = sampler.next();
    double lr = learningRate(options.schedule, step);
    exec.setInput("tokens", asIndices(batch.tokens, shape.tokens));
    exec.setInput("targets", asIndices(batch.targets, shape.tokens));
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
    if (!log && !options.logDir.empty())
      openLog();
    if (log)
      log->append(record);
    if (progress)
      progress->update(record);
    result.records.push_back(record);
    result.lastStep = step;
    bool exiting = options.exitInterval > 0 && step % options.exitInterval == 0;
    bool interval =
        options.saveInterval > 0 && step % options.saveInterval == 0;
    if (!options.saveDir.empty() && (interval || exiting || step == lastStep))
      save(step);
    if (exiting)
      break;
  }
  if (progress)
    progress->finish();
  if (log) {
    LossPlotOptions plot;
    plot.title =
        (options.model.empty() ? P.name() : options.model) + " training loss";
    writeLossSvg(options.logDir + "/loss.svg", log->records(), plot);
  }
  return result;
}
