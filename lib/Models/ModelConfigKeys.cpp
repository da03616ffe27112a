//===- ModelConfigKeys.cpp - ModelConfig settings by name -----------------===//

#include "loom/Models/ModelConfigKeys.h"

#include "loom/runtime/ParseNumber.h"
#include "llvm/ADT/STLExtras.h"

#include <cfloat>
#include <cmath>
#include <sstream>

using namespace loom;
using llvm::StringRef;

namespace {

using Problem = std::optional<std::string>;

/// Every integer key fits in 32 bits: token ids are i32, which bounds the
/// vocabulary, and a size beyond is no model anyone trains. The products of
/// sizes (tensor elements, parameter counts) are bounded where a graph is
/// built (loom-models checks them with 64-bit overflow checks).
constexpr int64_t kMaxSize = INT32_MAX;

/// A capacity factor of experts/topk already gives every expert room for
/// all tokens; the bound keeps tokens × factor far inside 64 bits.
constexpr double kMaxCapacityFactor = 16384;

Problem integerProblem(int64_t value, int64_t minimum) {
  if (value > kMaxSize)
    return runtime::rangeProblem(minimum, kMaxSize, std::to_string(value));
  if (value >= minimum)
    return std::nullopt;
  std::string rule =
      minimum == 1 ? "positive" : ">= " + std::to_string(minimum);
  return "must be " + rule + ", got " + std::to_string(value);
}

/// An integer key stored in `Field`, valid in [Minimum, kMaxSize].
template <int64_t ModelConfig::*Field, int64_t Minimum>
Problem checkInteger(const ModelConfig &config) {
  return integerProblem(config.*Field, Minimum);
}

template <int64_t ModelConfig::*Field, int64_t Minimum>
Problem parseInteger(ModelConfig &config, StringRef text) {
  int64_t value, below;
  if (Problem problem =
          runtime::parseInteger(text.str(), Minimum, kMaxSize, value)) {
    // Below the minimum, say it as check() does ("must be positive").
    if (!runtime::parseInteger(text.str(), INT64_MIN, Minimum - 1, below))
      return integerProblem(below, Minimum);
    return problem;
  }
  config.*Field = value;
  return std::nullopt;
}

/// The bound of the load-balancing loss weight (Megatron uses 1e-2 to 1e-3).
constexpr double kMaxAuxLossCoeff = 1e6;

/// A real key in [0, maximum]. Also rejects NaN and infinity.
Problem realProblem(double factor, double maximum) {
  std::ostringstream value;
  value << factor;
  if (std::isfinite(factor) && factor > maximum)
    return runtime::rangeProblem(0.0, maximum, value.str());
  if (std::isfinite(factor) && factor >= 0)
    return std::nullopt;
  return "must be a number >= 0, got " + value.str();
}

Problem parseRealKey(double &field, StringRef text, double maximum) {
  double value, large;
  if (!runtime::parseReal(text.str(), 0, maximum, value)) {
    field = value;
    return std::nullopt;
  }
  if (!runtime::parseReal(text.str(), 0, DBL_MAX, large))
    return runtime::rangeProblem(0.0, maximum, text.str());
  return "needs a number >= 0, got '" + text.str() + "'";
}

Problem checkCapacityFactor(const ModelConfig &config) {
  return realProblem(config.capacityFactor, kMaxCapacityFactor);
}

Problem parseCapacityFactor(ModelConfig &config, StringRef text) {
  return parseRealKey(config.capacityFactor, text, kMaxCapacityFactor);
}

Problem checkAuxLossCoeff(const ModelConfig &config) {
  return realProblem(config.auxLossCoeff, kMaxAuxLossCoeff);
}

Problem parseAuxLossCoeff(ModelConfig &config, StringRef text) {
  return parseRealKey(config.auxLossCoeff, text, kMaxAuxLossCoeff);
}

Problem dtypeProblem(StringRef dtype) {
  if (dtype == "f32" || dtype == "bf16" || dtype == "f16")
    return std::nullopt;
  return "must be f32, bf16 or f16, got '" + dtype.str() + "'";
}

Problem checkDType(const ModelConfig &config) {
  return dtypeProblem(config.dtype);
}

Problem parseDType(ModelConfig &config, StringRef text) {
  if (Problem problem = dtypeProblem(text))
    return problem;
  config.dtype = text.str();
  return std::nullopt;
}

template <int64_t ModelConfig::*Field, int64_t Minimum>
ModelConfigKey integerKey(StringRef name, StringRef description) {
  return {name, "N", description, parseInteger<Field, Minimum>,
          checkInteger<Field, Minimum>};
}

} // namespace

llvm::ArrayRef<ModelConfigKey> loom::getModelConfigKeys() {
  using C = ModelConfig;
  static const ModelConfigKey keys[] = {
      integerKey<&C::layers, 1>("layers", "transformer layers"),
      integerKey<&C::hidden, 1>("hidden", "hidden size"),
      integerKey<&C::heads, 1>("heads", "attention (query) heads"),
      integerKey<&C::kvHeads, 1>("kv_heads",
                                 "key/value heads (grouped-query attention)"),
      integerKey<&C::headDim, 0>("head_dim", "per-head size (0: hidden / "
                                             "heads)"),
      integerKey<&C::ffn, 1>("ffn", "feed-forward size (of each expert)"),
      integerKey<&C::vocab, 1>("vocab", "vocabulary size"),
      integerKey<&C::seq, 1>("seq", "sequence length"),
      integerKey<&C::batch, 1>("batch", "sequences per step"),
      integerKey<&C::experts, 0>("experts", "experts per MoE layer (0: dense)"),
      integerKey<&C::topK, 0>("topk", "experts per token (not given with "
                                      "experts: min(2, experts))"),
      {"capacity_factor", "F", "expert capacity factor (0: dropless)",
       parseCapacityFactor, checkCapacityFactor},
      integerKey<&C::tokenGroups, 1>(
          "token_groups", "groups of tokens whose expert capacity is counted "
                          "apart (one per rank: Megatron's alltoall "
                          "dispatcher)"),
      {"moe_aux_loss_coeff", "F",
       "weight of the router's load-balancing loss (0: none)",
       parseAuxLossCoeff, checkAuxLossCoeff},
      {"dtype", "f32|bf16|f16", "element type", parseDType, checkDType},
  };
  return keys;
}

const ModelConfigKey *loom::lookupModelConfigKey(StringRef name) {
  llvm::ArrayRef<ModelConfigKey> keys = getModelConfigKeys();
  const ModelConfigKey *key = llvm::find_if(
      keys, [&](const ModelConfigKey &k) { return k.name == name; });
  return key == keys.end() ? nullptr : key;
}

std::optional<std::string>
loom::setModelConfigKey(ModelConfig &config, StringRef name, StringRef text) {
  const ModelConfigKey *key = lookupModelConfigKey(name);
  if (!key)
    return "unknown model configuration key '" + name.str() + "'";
  if (Problem problem = key->parse(config, text))
    return name.str() + " " + *problem;
  return std::nullopt;
}

std::optional<std::string> loom::applyModelConfigSettings(
    ModelConfig &config,
    llvm::ArrayRef<std::pair<std::string, std::string>> settings) {
  bool topkGiven = false;
  for (const auto &[name, text] : settings) {
    if (std::optional<std::string> error =
            setModelConfigKey(config, name, text))
      return error;
    topkGiven |= name == "topk";
  }
  // Only a topk nobody gave takes the default; one that was given is
  // honoured or refused (validateModelConfig names topk 0 of an MoE model).
  if (config.isMoE() && config.topK == 0 && !topkGiven)
    config.topK = std::min<int64_t>(2, config.experts);
  if (!config.isMoE() && config.topK != 0 && topkGiven)
    return "topk (" + std::to_string(config.topK) +
           ") routes tokens to experts, but the model has none (experts is "
           "0)";
  return std::nullopt;
}
