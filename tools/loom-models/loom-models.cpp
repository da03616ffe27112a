//===- loom-models.cpp - Print zoo models as loom IR ----------------------===//
//
//   loom-models --list
//   loom-models NAME [--layers N --hidden N --kv-heads N ...] [-o FILE]
//   loom-models NAME --stats
//   loom-models NAME --train [--micro-batches N --clip-grad X ...]
//
//===----------------------------------------------------------------------===//

#include "ModelSize.h"

#include "loom/Analysis/ModelStats.h"
#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/Dialect/Loom/Transforms/Passes.h"
#include "loom/Models/ModelConfigKeys.h"
#include "loom/Models/ModelZoo.h"
#include "loom/Pipelines/Pipelines.h"
#include "loom/Plan/PlanSpec.h"
#include "loom/Plan/PlanValidation.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include "loom/runtime/ParseNumber.h"

#include <algorithm>

using namespace llvm;
using namespace loom;

// LLVM's own command-line library reserves `--stats`, so this small tool
// parses its flags itself; their values go through the configuration keys,
// which parse numbers with the runtime's one number parser
// (loom/runtime/ParseNumber.h) and state each key's range.

/// The flag that sets configuration key `key`: kv_heads is --kv-heads.
static std::string flagFor(StringRef key) {
  std::string flag = "--" + key.str();
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

static std::string usage() {
  std::string text = R"(usage: loom-models --list
       loom-models NAME [options] [-o FILE]
       loom-models NAME --stats

Prints the forward graph of a zoo model (parameters, tokens and targets in,
scalar loss out) as loom MLIR, or its parameter and FLOP counts as JSON.

options (each overrides the preset's configuration key of that name;
--kv-heads sets kv_heads):
)";
  for (const ModelConfigKey &key : getModelConfigKeys()) {
    // A flag too long for its column puts its description on the next line.
    std::string flag = flagFor(key.name) + " " + key.valueHint.str();
    if (flag.size() >= 22)
      flag += "\n" + std::string(24, ' ');
    else
      flag.resize(22, ' ');
    text += formatv("  {0}{1}\n", flag, key.description);
  }
  text += R"(  --stats               print {"total_params", "active_params",
                        "flops_per_token", ...} instead of the graph
  -o FILE               write to FILE instead of standard output

training step (-loom-autodiff; Megatron-LM's flag names and defaults):
  --train               print the training step (forward, backward, AdamW)
                        instead of the forward
  --micro-batches N     microbatches per step (gradient accumulation), 1
  --recompute POLICY    none, selective (attention results) or full (each
                        layer from its input), none
  --precision P         f32, or bf16/f16 mixed precision: the model computes
                        in P (as --dtype P), the step keeps f32 master
                        weights, gradient sums and AdamW moments
  --clip-grad X         clip gradients to global L2 norm X (0: off), 1.0
  --weight-decay X      AdamW decoupled weight decay, 0.01
  --adam-beta1 X        0.9
  --adam-beta2 X        0.999
  --adam-eps X          1e-8
  --emit-gradients      also output each parameter's gradient (<name>.grad)

parallel plans (docs/PlanSpec.md):
  --plan SPEC           print the per-rank graph under SPEC (e.g. dp=2,tp=2):
                        the mesh, local shapes and the collectives
)";
  return text;
}

namespace {
struct Options {
  std::string model;
  bool list = false;
  bool stats = false;
  bool train = false;
  LoomAutodiffPassOptions training;
  /// A parallel plan: print the per-rank graph.
  std::string plan;
  std::string output = "-";
  /// (configuration key, value) in the order given.
  std::vector<std::pair<std::string, std::string>> settings;
};
} // namespace

static int fail(const Twine &message) {
  errs() << "loom-models: error: " << message << "\n";
  return 1;
}

/// Sets the training option of `flag` from `value`: nullopt when `flag` is
/// not a training flag, else what is wrong with the value (or nothing).
static std::optional<loom::runtime::NumberProblem>
parseTrainingFlag(StringRef flag, StringRef value,
                  LoomAutodiffPassOptions &training) {
  using loom::runtime::parseInteger;
  using loom::runtime::parseReal;
  std::string_view text(value.data(), value.size());
  if (flag == "--recompute") {
    if (value != "none" && value != "selective" && value != "full")
      return "must be none, selective or full, got '" + value.str() + "'";
    training.recompute = value.str();
    return loom::runtime::NumberProblem();
  }
  if (flag == "--micro-batches") {
    int64_t n = 1;
    loom::runtime::NumberProblem problem =
        parseInteger(text, 1, int64_t(1) << 20, n);
    training.microBatches = n;
    return problem;
  }
  struct RealFlag {
    StringRef name;
    double min, max;
    double LoomAutodiffPassOptions::*field;
  };
  static const RealFlag reals[] = {
      {"--clip-grad", 0.0, 1e30, &LoomAutodiffPassOptions::maxGradNorm},
      {"--weight-decay", 0.0, 1e6, &LoomAutodiffPassOptions::weightDecay},
      {"--adam-beta1", 0.0, 0.999999, &LoomAutodiffPassOptions::beta1},
      {"--adam-beta2", 0.0, 0.999999, &LoomAutodiffPassOptions::beta2},
      {"--adam-eps", 1e-30, 1.0, &LoomAutodiffPassOptions::epsilon},
  };
  for (const RealFlag &real : reals)
    if (flag == real.name)
      return parseReal(text, real.min, real.max, training.*real.field);
  return std::nullopt;
}

/// Parses argv into `options`; returns an error message on bad input.
static std::optional<std::string> parseArgs(int argc, char **argv,
                                            Options &options) {
  for (int i = 1; i < argc; ++i) {
    StringRef arg = argv[i];
    if (arg == "--list") {
      options.list = true;
      continue;
    }
    if (arg == "--stats") {
      options.stats = true;
      continue;
    }
    if (arg == "--train") {
      options.train = true;
      continue;
    }
    if (arg == "--emit-gradients") {
      options.training.emitGradients = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      outs() << usage();
      exit(0);
    }
    if (!arg.starts_with("-")) {
      if (!options.model.empty())
        return ("more than one model given: '" + options.model + "' and '" +
                arg + "'")
            .str();
      options.model = arg.str();
      continue;
    }
    // Flags with a value: "--flag value" or "--flag=value".
    StringRef flag = arg, value;
    if (arg.contains('=')) {
      std::tie(flag, value) = arg.split('=');
    } else {
      if (i + 1 >= argc)
        return ("missing value after '" + arg + "'").str();
      value = argv[++i];
    }
    if (flag == "-o") {
      options.output = value.str();
      continue;
    }
    if (flag == "--plan") {
      options.plan = value.str();
      continue;
    }
    // Megatron's mixed precision: the model computes in bf16 (or f16); the
    // training step keeps f32 master weights, gradients and moments.
    if (flag == "--precision") {
      if (value != "f32" && value != "bf16" && value != "f16")
        return ("--precision must be f32, bf16 or f16, got '" + value + "'")
            .str();
      options.settings.emplace_back("dtype", value.str());
      continue;
    }
    if (std::optional<std::optional<std::string>> problem =
            parseTrainingFlag(flag, value, options.training)) {
      if (*problem)
        return (flag + " " + **problem).str();
      continue;
    }
    const ModelConfigKey *key =
        llvm::find_if(getModelConfigKeys(), [&](const ModelConfigKey &k) {
          return flagFor(k.name) == flag;
        });
    if (key == getModelConfigKeys().end())
      return ("unknown option '" + flag + "' (see --help)").str();
    // Check the value now, naming the flag as typed; the model it applies
    // to may come later on the command line.
    ModelConfig scratch;
    if (std::optional<std::string> problem = key->parse(scratch, value))
      return (flag + " " + *problem).str();
    options.settings.emplace_back(key->name.str(), value.str());
  }
  return std::nullopt;
}

int main(int argc, char **argv) {
  InitLLVM y(argc, argv);
  Options options;
  if (std::optional<std::string> error = parseArgs(argc, argv, options))
    return fail(*error);
  if (options.list) {
    for (StringRef name : getModelNames())
      outs() << name << "\n";
    return 0;
  }
  if (options.model.empty())
    return fail("no model given; run 'loom-models --list' for the names");
  std::optional<ModelConfig> config = lookupModel(options.model);
  if (!config) {
    std::string known;
    for (StringRef name : getModelNames())
      known += " " + name.str();
    return fail("unknown model '" + options.model + "'; known models:" + known);
  }
  if (std::optional<std::string> error =
          applyModelConfigSettings(*config, options.settings))
    return fail(options.model + ": " + *error);
  if (!options.plan.empty() && !options.stats) {
    // A model built for a plan has Megatron's padded vocabulary (a multiple
    // of vocab_multiple x tp), so that tensor parallelism splits it.
    llvm::Expected<PlanSpec> spec = parsePlanSpec(options.plan);
    if (!spec)
      return fail("plan '" + options.plan +
                  "': " + llvm::toString(spec.takeError()));
    std::optional<int64_t> padded = padVocabulary(*spec, config->vocab);
    if (padded && *padded != config->vocab) {
      llvm::errs() << "loom-models: the vocabulary (" << config->vocab
                   << ") is padded to " << *padded
                   << ", a multiple of vocab_multiple * tp = "
                   << spec->vocabMultiple << " * " << spec->tp
                   << ", as Megatron pads it\n";
      config->vocab = *padded;
    }
  }
  if (std::optional<std::string> error = validateModelConfig(*config))
    return fail(options.model + ": " + *error);
  std::string tooLarge;
  if (!estimateModelSize(*config, tooLarge))
    return fail(options.model + ": " + tooLarge);

  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      buildForwardModule(context, *config);
  if (failed(mlir::verify(*module)))
    return fail("the graph of '" + options.model + "' does not verify");

  if (options.train && options.stats)
    return fail("--stats counts the forward; give it without --train");
  if (options.train) {
    mlir::PassManager pm(&context);
    pm.addPass(createLoomAutodiffPass(options.training));
    if (failed(pm.run(*module)))
      return fail("cannot derive the training step of '" + options.model + "'");
  }
  if (!options.plan.empty()) {
    if (options.stats)
      return fail("--stats counts the global model; give it without --plan");
    mlir::PassManager pm(&context);
    ParallelizeOptions parallel;
    parallel.plan = options.plan;
    buildLoomParallelizePipeline(pm, parallel);
    if (failed(pm.run(*module)))
      return fail("cannot apply plan '" + options.plan + "' to '" +
                  options.model + "'");
  }

  std::string errorMessage;
  auto output = mlir::openOutputFile(options.output, &errorMessage);
  if (!output)
    return fail(errorMessage);
  if (options.stats) {
    auto func = *module->getOps<mlir::func::FuncOp>().begin();
    mlir::FailureOr<ModelStats> stats = computeModelStats(func);
    if (failed(stats))
      return 1;
    json::Object object{
        {"model", config->name},
        {"total_params", stats->totalParams},
        {"active_params", stats->activeParams},
        {"flops_per_token", stats->getFlopsPerToken()},
        {"tokens_per_step", stats->tokens},
        {"layers", config->layers},
    };
    output->os() << formatv("{0:2}", json::Value(std::move(object))) << "\n";
  } else {
    module->print(output->os());
    output->os() << "\n";
  }
  output->keep();
  return 0;
}
