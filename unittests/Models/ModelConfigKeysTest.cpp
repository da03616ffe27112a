//===- ModelConfigKeysTest.cpp - ModelConfig settings by name -------------===//

#include "loom/Models/ModelConfigKeys.h"

#include "gtest/gtest.h"

#include <functional>

using namespace loom;

namespace {

/// A value for every key and how to see that it was set, in table order.
struct KeyCase {
  const char *name;
  const char *text;
  std::function<bool(const ModelConfig &)> isSet;
};

std::vector<KeyCase> everyKey() {
  return {
      {"layers", "5", [](const ModelConfig &c) { return c.layers == 5; }},
      {"hidden", "48", [](const ModelConfig &c) { return c.hidden == 48; }},
      {"heads", "6", [](const ModelConfig &c) { return c.heads == 6; }},
      {"kv_heads", "3", [](const ModelConfig &c) { return c.kvHeads == 3; }},
      {"head_dim", "10", [](const ModelConfig &c) { return c.headDim == 10; }},
      {"ffn", "77", [](const ModelConfig &c) { return c.ffn == 77; }},
      {"vocab", "99", [](const ModelConfig &c) { return c.vocab == 99; }},
      {"seq", "12", [](const ModelConfig &c) { return c.seq == 12; }},
      {"batch", "7", [](const ModelConfig &c) { return c.batch == 7; }},
      {"experts", "6", [](const ModelConfig &c) { return c.experts == 6; }},
      {"topk", "3", [](const ModelConfig &c) { return c.topK == 3; }},
      {"capacity_factor", "1.5",
       [](const ModelConfig &c) { return c.capacityFactor == 1.5; }},
      {"token_groups", "4",
       [](const ModelConfig &c) { return c.tokenGroups == 4; }},
      {"moe_aux_loss_coeff", "0.01",
       [](const ModelConfig &c) { return c.auxLossCoeff == 0.01; }},
      {"dtype", "bf16", [](const ModelConfig &c) { return c.dtype == "bf16"; }},
  };
}

TEST(ModelConfigKeys, EveryKeyIsSettable) {
  std::vector<KeyCase> cases = everyKey();
  llvm::ArrayRef<ModelConfigKey> keys = getModelConfigKeys();
  // A key added to the table without a case here fails this test.
  ASSERT_EQ(keys.size(), cases.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(keys[i].name, cases[i].name);
    EXPECT_EQ(lookupModelConfigKey(cases[i].name), &keys[i]);
    ModelConfig config = *lookupModel("tiny-llama");
    ASSERT_FALSE(cases[i].isSet(config)) << cases[i].name;
    EXPECT_EQ(setModelConfigKey(config, cases[i].name, cases[i].text),
              std::nullopt);
    EXPECT_TRUE(cases[i].isSet(config)) << cases[i].name;
  }
}

TEST(ModelConfigKeys, UnknownKeyIsNamed) {
  ModelConfig config;
  EXPECT_EQ(lookupModelConfigKey("kv-heads"), nullptr);
  EXPECT_EQ(setModelConfigKey(config, "depth", "3"),
            "unknown model configuration key 'depth'");
  EXPECT_EQ(setModelConfigKey(config, "kv-heads", "3"),
            "unknown model configuration key 'kv-heads'");
}

TEST(ModelConfigKeys, BadValueNamesTheKeyAndChangesNothing) {
  struct BadCase {
    const char *name, *text, *error;
  };
  const BadCase bad[] = {
      {"layers", "two", "layers needs an integer, got 'two'"},
      {"layers", "0", "layers must be positive, got 0"},
      {"hidden", "3.5", "hidden needs an integer, got '3.5'"},
      {"kv_heads", "", "kv_heads needs an integer, got ''"},
      {"head_dim", "-2", "head_dim must be >= 0, got -2"},
      {"experts", "-1", "experts must be >= 0, got -1"},
      {"topk", "-1", "topk must be >= 0, got -1"},
      {"capacity_factor", "-1",
       "capacity_factor needs a number >= 0, got '-1'"},
      {"capacity_factor", "inf",
       "capacity_factor needs a number >= 0, got 'inf'"},
      {"moe_aux_loss_coeff", "-0.5",
       "moe_aux_loss_coeff needs a number >= 0, got '-0.5'"},
      {"moe_aux_loss_coeff", "nan",
       "moe_aux_loss_coeff needs a number >= 0, got 'nan'"},
      {"dtype", "f64", "dtype must be f32, bf16 or f16, got 'f64'"},
  };
  const ModelConfig preset = *lookupModel("tiny-moe");
  for (const BadCase &c : bad) {
    ModelConfig config = preset;
    EXPECT_EQ(setModelConfigKey(config, c.name, c.text), std::string(c.error));
    EXPECT_EQ(config.layers, preset.layers);
    EXPECT_EQ(config.hidden, preset.hidden);
    EXPECT_EQ(config.kvHeads, preset.kvHeads);
    EXPECT_EQ(config.headDim, preset.headDim);
    EXPECT_EQ(config.experts, preset.experts);
    EXPECT_EQ(config.topK, preset.topK);
    EXPECT_EQ(config.capacityFactor, preset.capacityFactor);
    EXPECT_EQ(config.dtype, preset.dtype);
  }
}

TEST(ModelConfigKeys, ADensePresetMadeMoERoutesToTwoExperts) {
  using Settings = std::vector<std::pair<std::string, std::string>>;
  auto topK = [](const char *preset, Settings settings) {
    ModelConfig config = *lookupModel(preset);
    EXPECT_EQ(applyModelConfigSettings(config, settings), std::nullopt);
    return config.topK;
  };
  EXPECT_EQ(topK("tiny-llama", {{"experts", "4"}}), 2);
  EXPECT_EQ(topK("tiny-llama", {{"experts", "1"}}), 1);
  EXPECT_EQ(topK("tiny-llama", {{"experts", "4"}, {"topk", "1"}}), 1);
  EXPECT_EQ(topK("tiny-llama", {{"topk", "3"}, {"experts", "4"}}), 3);
  EXPECT_EQ(topK("tiny-llama", {}), 0);
  // An MoE preset keeps its own routing.
  EXPECT_EQ(topK("qwen3-30b-a3b", {{"experts", "64"}}), 8);
}

TEST(ModelConfigKeys, SettingsStopAtTheFirstError) {
  ModelConfig config = *lookupModel("tiny-llama");
  EXPECT_EQ(applyModelConfigSettings(
                config, {{"layers", "3"}, {"heads", "x"}, {"vocab", "5"}}),
            "heads needs an integer, got 'x'");
  EXPECT_EQ(config.layers, 3);
  EXPECT_EQ(config.vocab, lookupModel("tiny-llama")->vocab);
}

} // namespace
