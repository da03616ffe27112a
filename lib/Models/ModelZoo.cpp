//===- ModelZoo.cpp - Published and test model configurations -------------===//
//
// Dimensions follow each model's published configuration (Meta's Llama 3
// paper and config.json files, the GPT-3 paper, Mistral's and Qwen's model
// cards).
//
//===----------------------------------------------------------------------===//

#include "loom/Models/ModelZoo.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace loom;

int64_t ModelConfig::getExpertCapacity() const {
  int64_t tokens = getTokens();
  if (capacityFactor <= 0.0)
    return tokens;
  double perExpert = static_cast<double>(tokens * topK) / experts;
  int64_t capacity = static_cast<int64_t>(std::ceil(perExpert * capacityFactor));
  return std::max<int64_t>(1, std::min(capacity, tokens));
}

static ModelConfig llama3(llvm::StringRef name, int64_t layers, int64_t hidden,
                          int64_t heads, int64_t ffn) {
  ModelConfig c;
  c.name = name.str();
  c.layers = layers;
  c.hidden = hidden;
  c.heads = heads;
  c.kvHeads = 8;
  c.ffn = ffn;
  c.vocab = 128256;
  c.seq = 8192;
  c.batch = 1;
  c.dtype = "bf16";
  c.ropeTheta = 500000.0;
  return c;
}

static ModelConfig mixtral(llvm::StringRef name, int64_t layers, int64_t hidden,
                           int64_t heads, int64_t ffn, int64_t vocab) {
  ModelConfig c;
  c.name = name.str();
  c.layers = layers;
  c.hidden = hidden;
  c.heads = heads;
  c.kvHeads = 8;
  c.ffn = ffn;
  c.vocab = vocab;
  c.seq = 4096;
  c.batch = 1;
  c.experts = 8;
  c.topK = 2;
  c.dtype = "bf16";
  c.ropeTheta = 1000000.0;
  return c;
}

static std::vector<ModelConfig> buildPresets() {
  std::vector<ModelConfig> presets;
  presets.push_back(llama3("llama3-8b", 32, 4096, 32, 14336));
  presets.push_back(llama3("llama3-70b", 80, 8192, 64, 28672));
  presets.push_back(llama3("llama3-405b", 126, 16384, 128, 53248));

  ModelConfig gpt3;
  gpt3.name = "gpt3-175b";
  gpt3.layers = 96;
  gpt3.hidden = 12288;
  gpt3.heads = 96;
  gpt3.kvHeads = 96;
  gpt3.ffn = 4 * 12288;
  gpt3.vocab = 50257;
  gpt3.seq = 2048;
  gpt3.batch = 1;
  gpt3.dtype = "bf16";
  gpt3.norm = NormKind::LayerNorm;
  gpt3.mlp = MlpKind::Gelu;
  gpt3.learnedPositions = true;
  gpt3.linearBias = true;
  gpt3.tiedEmbeddings = true;
  presets.push_back(gpt3);

  presets.push_back(mixtral("mixtral-8x7b", 32, 4096, 32, 14336, 32000));
  presets.push_back(mixtral("mixtral-8x22b", 56, 6144, 48, 16384, 32768));

  ModelConfig qwen;
  qwen.name = "qwen3-30b-a3b";
  qwen.layers = 48;
  qwen.hidden = 2048;
  qwen.heads = 32;
  qwen.kvHeads = 4;
  qwen.headDim = 128;
  qwen.ffn = 768;
  qwen.vocab = 151936;
  qwen.seq = 4096;
  qwen.batch = 1;
  qwen.experts = 128;
  qwen.topK = 8;
  qwen.softmaxBeforeTopK = true;
  qwen.normalizeTopK = true;
  qwen.qkNorm = true;
  qwen.dtype = "bf16";
  qwen.ropeTheta = 1000000.0;
  qwen.normEpsilon = 1e-6;
  presets.push_back(qwen);

  ModelConfig tinyGpt;
  tinyGpt.name = "tiny-gpt";
  tinyGpt.layers = 2;
  tinyGpt.hidden = 32;
  tinyGpt.heads = 4;
  tinyGpt.kvHeads = 4;
  tinyGpt.ffn = 128;
  tinyGpt.vocab = 97;
  tinyGpt.seq = 16;
  tinyGpt.batch = 2;
  tinyGpt.norm = NormKind::LayerNorm;
  tinyGpt.mlp = MlpKind::Gelu;
  tinyGpt.learnedPositions = true;
  tinyGpt.linearBias = true;
  tinyGpt.tiedEmbeddings = true;
  presets.push_back(tinyGpt);

  ModelConfig tinyLlama;
  tinyLlama.name = "tiny-llama";
  tinyLlama.layers = 2;
  tinyLlama.hidden = 32;
  tinyLlama.heads = 4;
  tinyLlama.kvHeads = 2;
  tinyLlama.ffn = 96;
  tinyLlama.vocab = 128;
  tinyLlama.seq = 16;
  tinyLlama.batch = 2;
  presets.push_back(tinyLlama);

  ModelConfig tinyMoe = tinyLlama;
  tinyMoe.name = "tiny-moe";
  tinyMoe.ffn = 48;
  tinyMoe.experts = 4;
  tinyMoe.topK = 2;
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

std::optional<std::string>
loom::validateModelConfig(const ModelConfig &c) {
  auto positive = [](int64_t v) { return v > 0; };
  struct Setting {
    const char *flag;
    int64_t value;
  };
  for (Setting s : {Setting{"--layers", c.layers}, {"--hidden", c.hidden},
                    {"--heads", c.heads}, {"--kv-heads", c.kvHeads},
                    {"--ffn", c.ffn}, {"--vocab", c.vocab}, {"--seq", c.seq},
                    {"--batch", c.batch}})
    if (!positive(s.value))
      return std::string(s.flag) + " must be positive, got " +
             std::to_string(s.value);
  if (c.headDim == 0 && c.hidden % c.heads != 0)
    return "--hidden (" + std::to_string(c.hidden) +
           ") must be divisible by --heads (" + std::to_string(c.heads) + ")";
  if (c.heads % c.kvHeads != 0)
    return "--heads (" + std::to_string(c.heads) +
           ") must be a multiple of --kv-heads (" + std::to_string(c.kvHeads) +
           ")";
  if (c.getHeadDim() % 2 != 0)
    return "the head dimension (" + std::to_string(c.getHeadDim()) +
           ") must be even for rotary embeddings";
  if (c.experts < 0)
    return "--experts must be >= 0, got " + std::to_string(c.experts);
  if (c.isMoE() && (c.topK < 1 || c.topK > c.experts))
    return "--topk (" + std::to_string(c.topK) + ") must be in [1, --experts (" +
           std::to_string(c.experts) + ")]";
  if (c.dtype != "f32" && c.dtype != "bf16" && c.dtype != "f16")
    return "--dtype must be f32, bf16 or f16, got '" + c.dtype + "'";
  return std::nullopt;
}
