//===- loom-models.cpp - Print zoo models as loom IR ----------------------===//
//
//   loom-models --list
//   loom-models NAME [--layers N --hidden N ...] [-o FILE]
//   loom-models NAME --stats
//
//===----------------------------------------------------------------------===//

#include "loom/Analysis/ModelStats.h"
#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/Models/ModelZoo.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;
using namespace loom;

// LLVM's own command-line library reserves `--stats`, so this small tool
// parses its flags itself.

static const char *const usage = R"(usage: loom-models --list
       loom-models NAME [options] [-o FILE]
       loom-models NAME --stats

Prints the forward graph of a zoo model (parameters, tokens and targets in,
scalar loss out) as loom MLIR, or its parameter and FLOP counts as JSON.

options (each overrides the preset):
  --layers N  --hidden N  --heads N  --kv-heads N  --head-dim N  --ffn N
  --vocab N   --seq N     --batch N  --experts N   --topk N
  --capacity-factor F   expert capacity factor (0: dropless)
  --dtype f32|bf16|f16
  --stats               print {"total_params", "active_params",
                        "flops_per_token", ...} instead of the graph
  -o FILE               write to FILE instead of standard output
)";

namespace {
struct Options {
  std::string model;
  bool list = false;
  bool stats = false;
  std::string output = "-";
};
} // namespace

static int fail(const Twine &message) {
  errs() << "loom-models: error: " << message << "\n";
  return 1;
}

/// Parses argv into `options` and the preset overrides in `config`; returns
/// an error message on bad input.
static std::optional<std::string> parseArgs(int argc, char **argv,
                                            Options &options,
                                            ModelConfig &overrides,
                                            SmallVectorImpl<StringRef> &given) {
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
    if (arg == "-h" || arg == "--help") {
      outs() << usage;
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
    if (flag == "--dtype") {
      overrides.dtype = value.str();
      given.push_back("dtype");
      continue;
    }
    if (flag == "--capacity-factor") {
      if (value.getAsDouble(overrides.capacityFactor) ||
          overrides.capacityFactor < 0)
        return ("--capacity-factor needs a number >= 0, got '" + value + "'")
            .str();
      given.push_back("capacity-factor");
      continue;
    }
    struct DimFlag {
      StringRef name;
      int64_t ModelConfig::*field;
    };
    static const DimFlag dimFlags[] = {{"--layers", &ModelConfig::layers},
                                       {"--hidden", &ModelConfig::hidden},
                                       {"--heads", &ModelConfig::heads},
                                       {"--kv-heads", &ModelConfig::kvHeads},
                                       {"--head-dim", &ModelConfig::headDim},
                                       {"--ffn", &ModelConfig::ffn},
                                       {"--vocab", &ModelConfig::vocab},
                                       {"--seq", &ModelConfig::seq},
                                       {"--batch", &ModelConfig::batch},
                                       {"--experts", &ModelConfig::experts},
                                       {"--topk", &ModelConfig::topK}};
    const DimFlag *dim = llvm::find_if(
        dimFlags, [&](const DimFlag &d) { return d.name == flag; });
    if (dim == std::end(dimFlags))
      return ("unknown option '" + flag + "' (see --help)").str();
    int64_t number;
    if (value.getAsInteger(10, number))
      return (flag + " needs an integer, got '" + value + "'").str();
    overrides.*(dim->field) = number;
    given.push_back(flag.drop_front(2));
  }
  return std::nullopt;
}

/// Copies the settings the user gave from `overrides` onto the preset.
static void applyOverrides(const ModelConfig &overrides,
                           ArrayRef<StringRef> given, ModelConfig &config) {
  for (StringRef name : given) {
    if (name == "layers")
      config.layers = overrides.layers;
    else if (name == "hidden")
      config.hidden = overrides.hidden;
    else if (name == "heads")
      config.heads = overrides.heads;
    else if (name == "kv-heads")
      config.kvHeads = overrides.kvHeads;
    else if (name == "head-dim")
      config.headDim = overrides.headDim;
    else if (name == "ffn")
      config.ffn = overrides.ffn;
    else if (name == "vocab")
      config.vocab = overrides.vocab;
    else if (name == "seq")
      config.seq = overrides.seq;
    else if (name == "batch")
      config.batch = overrides.batch;
    else if (name == "experts")
      config.experts = overrides.experts;
    else if (name == "topk")
      config.topK = overrides.topK;
    else if (name == "capacity-factor")
      config.capacityFactor = overrides.capacityFactor;
    else if (name == "dtype")
      config.dtype = overrides.dtype;
  }
  // A dense preset made MoE by flags routes to two experts unless told.
  if (config.experts > 0 && config.topK == 0)
    config.topK = std::min<int64_t>(2, config.experts);
}

int main(int argc, char **argv) {
  InitLLVM y(argc, argv);
  Options options;
  ModelConfig overrides;
  SmallVector<StringRef> given;
  if (std::optional<std::string> error =
          parseArgs(argc, argv, options, overrides, given))
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
  applyOverrides(overrides, given, *config);
  if (std::optional<std::string> error = validateModelConfig(*config))
    return fail(options.model + ": " + *error);

  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      buildForwardModule(context, *config);
  if (failed(mlir::verify(*module)))
    return fail("the graph of '" + options.model + "' does not verify");

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
