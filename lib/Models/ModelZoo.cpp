//===- ModelZoo.cpp - Published and test model configurations -------------===//
//
// Dimensions follow each model's published configuration (Meta's Llama 3
// paper and config.json files, the GPT-3 paper, Mistral's and Qwen's model
// cards).
//
//===----------------------------------------------------------------------===//

#include "loom/Models/ModelZoo.h"
#include "loom/Models/ModelConfigKeys.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>
#include <tuple>

using namespace loom;

int64_t ModelConfig::getExpertCapacity() const {
  int64_t groups = std::max<int64_t>(1, tokenGroups);
  return groups * getGroupCapacity(getTokens() / groups);
}

int64_t ModelConfig::getGroupCapacity(int64_t tokens) const {
  if (capacityFactor <= 0.0)
    return tokens;
  // In floating point and clamped before the conversion: tokens · topK can
  // exceed 2^63 for sizes each within its range.
  double perExpert = static_cast<double>(tokens) * topK / experts;
  double capacity = std::ceil(perExpert * capacityFactor);
  if (!(capacity < static_cast<double>(tokens)))
    return tokens;
  return std::max<int64_t>(1, static_cast<int64_t>(capacity));
}

/// The dimensions every preset sets; the rest keeps ModelConfig's defaults
/// (a Llama-style block: RMSNorm, SwiGLU, RoPE, untied output layer).
static ModelConfig dims(llvm::StringRef name, int64_t layers, int64_t hidden,
                        int64_t heads, int64_t kvHeads, int64_t ffn,
                        int64_t vocab, int64_t seq, int64_t batch,
                        llvm::StringRef dtype) {
  ModelConfig c;
  c.name = name.str();
  c.layers = layers;
  c.hidden = hidden;
  c.heads = heads;
  c.kvHeads = kvHeads;
  c.ffn = ffn;
  c.vocab = vocab;
  c.seq = seq;
  c.batch = batch;
  c.dtype = dtype.str();
  return c;
}

/// GPT-2/3 blocks: LayerNorm with bias, GELU (tanh), learned positions,
/// biases on every linear layer, output layer tied to the embedding.
static ModelConfig gptStyle(ModelConfig c) {
  c.norm = NormKind::LayerNorm;
  c.mlp = MlpKind::Gelu;
  c.learnedPositions = true;
  c.linearBias = true;
  c.tiedEmbeddings = true;
  return c;
}

/// Routing of `experts` experts, `topK` per token.
static ModelConfig withExperts(ModelConfig c, int64_t experts, int64_t topK) {
  c.experts = experts;
  c.topK = topK;
  return c;
}

static ModelConfig withRopeTheta(ModelConfig c, double theta) {
  c.ropeTheta = theta;
  return c;
}

static std::vector<ModelConfig> buildPresets() {
  std::vector<ModelConfig> presets;
  // Llama 3: grouped-query attention with 8 key/value heads, 128K vocabulary.
  for (auto [name, layers, hidden, heads, ffn] :
       {std::tuple{"llama3-8b", 32, 4096, 32, 14336},
        {"llama3-70b", 80, 8192, 64, 28672},
        {"llama3-405b", 126, 16384, 128, 53248}})
    presets.push_back(withRopeTheta(
        dims(name, layers, hidden, heads, 8, ffn, 128256, 8192, 1, "bf16"),
        500000.0));
  presets.push_back(gptStyle(
      dims("gpt3-175b", 96, 12288, 96, 96, 4 * 12288, 50257, 2048, 1, "bf16")));
  // Mixtral: 8 experts, 2 per token, softmax over the chosen two.
  presets.push_back(
      withRopeTheta(withExperts(dims("mixtral-8x7b", 32, 4096, 32, 8, 14336,
                                     32000, 4096, 1, "bf16"),
                                8, 2),
                    1000000.0));
  presets.push_back(
      withRopeTheta(withExperts(dims("mixtral-8x22b", 56, 6144, 48, 8, 16384,
                                     32768, 4096, 1, "bf16"),
                                8, 2),
                    1000000.0));
  // Qwen3-30B-A3B: 128 experts, 8 per token, softmax before top-k and
  // renormalized; 128-wide heads (wider than hidden / heads); q/k RMSNorm.
  ModelConfig qwen =
      withRopeTheta(withExperts(dims("qwen3-30b-a3b", 48, 2048, 32, 4, 768,
                                     151936, 4096, 1, "bf16"),
                                128, 8),
                    1000000.0);
  qwen.headDim = 128;
  qwen.softmaxBeforeTopK = true;
  qwen.normalizeTopK = true;
  qwen.qkNorm = true;
  qwen.normEpsilon = 1e-6;
  presets.push_back(qwen);

  // Test models a CPU runs in well under a second.
  presets.push_back(
      gptStyle(dims("tiny-gpt", 2, 32, 4, 4, 128, 97, 16, 2, "f32")));
  ModelConfig tinyLlama =
      dims("tiny-llama", 2, 32, 4, 2, 96, 128, 16, 2, "f32");
  presets.push_back(tinyLlama);
  ModelConfig tinyMoe = withExperts(tinyLlama, 4, 2);
  tinyMoe.name = "tiny-moe";
  tinyMoe.ffn = 48;
  presets.push_back(tinyMoe);
  return presets;
}

static const std::vector<ModelConfig> &getPresets() {
  static const std::vector<ModelConfig> presets = buildPresets();
  return presets;
}

llvm::ArrayRef<llvm::StringRef> loom::getModelNames() {
  static const std::vector<llvm::StringRef> names = [] {
    std::vector<llvm::StringRef> result;
    for (const ModelConfig &config : getPresets())
      result.push_back(config.name);
    return result;
  }();
  return names;
}

std::optional<ModelConfig> loom::lookupModel(llvm::StringRef name) {
  for (const ModelConfig &config : getPresets())
    if (config.name == name)
      return config;
  return std::nullopt;
}

std::optional<std::string> loom::validateModelConfig(const ModelConfig &c) {
  // Each key on its own first, then the rules that relate keys.
  for (const ModelConfigKey &key : getModelConfigKeys())
    if (std::optional<std::string> problem = key.check(c))
      return key.name.str() + " " + *problem;
  if (c.headDim == 0 && c.hidden % c.heads != 0)
    return "hidden (" + std::to_string(c.hidden) +
           ") must be divisible by heads (" + std::to_string(c.heads) + ")";
  if (c.heads % c.kvHeads != 0)
    return "heads (" + std::to_string(c.heads) +
           ") must be a multiple of kv_heads (" + std::to_string(c.kvHeads) +
           ")";
  if (c.getHeadDim() % 2 != 0)
    return "the head dimension (" + std::to_string(c.getHeadDim()) +
           ") must be even for rotary embeddings";
  if (c.isMoE() && (c.topK < 1 || c.topK > c.experts))
    return "topk (" + std::to_string(c.topK) + ") must be in [1, experts (" +
           std::to_string(c.experts) + ")]";
  if (c.getTokens() % c.tokenGroups != 0)
    return "token_groups (" + std::to_string(c.tokenGroups) +
           ") must divide the " + std::to_string(c.getTokens()) +
           " tokens (batch x seq)";
  return std::nullopt;
}
