//===- ModelZooTest.cpp - Model configurations ----------------------------===//

#include "loom/Models/ModelZoo.h"
#include "loom/Analysis/ModelStats.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "gtest/gtest.h"

using namespace loom;

namespace {

TEST(ModelZoo, EveryPresetIsValidAndNamed) {
  ASSERT_FALSE(getModelNames().empty());
  for (llvm::StringRef name : getModelNames()) {
    std::optional<ModelConfig> config = lookupModel(name);
    ASSERT_TRUE(config) << name.str();
    EXPECT_EQ(config->name, name.str());
    EXPECT_FALSE(validateModelConfig(*config)) << name.str();
  }
  EXPECT_FALSE(lookupModel("llama9"));
}

TEST(ModelZoo, ValidationNamesTheSetting) {
  ModelConfig config = *lookupModel("tiny-llama");
  config.hidden = 30;
  EXPECT_EQ(*validateModelConfig(config),
            "hidden (30) must be divisible by heads (4)");
  config = *lookupModel("tiny-llama");
  config.kvHeads = 3;
  EXPECT_EQ(*validateModelConfig(config),
            "heads (4) must be a multiple of kv_heads (3)");
  config = *lookupModel("tiny-moe");
  config.topK = 0;
  EXPECT_EQ(*validateModelConfig(config),
            "topk (0) must be in [1, experts (4)]");
  config = *lookupModel("tiny-gpt");
  config.batch = -1;
  EXPECT_EQ(*validateModelConfig(config), "batch must be positive, got -1");
  config = *lookupModel("tiny-llama");
  config.headDim = 7;
  EXPECT_EQ(*validateModelConfig(config),
            "the head dimension (7) must be even for rotary embeddings");
  config = *lookupModel("tiny-moe");
  config.capacityFactor = -0.5;
  EXPECT_EQ(*validateModelConfig(config),
            "capacity_factor must be a number >= 0, got -0.5");
  config = *lookupModel("tiny-gpt");
  config.dtype = "f64";
  EXPECT_EQ(*validateModelConfig(config),
            "dtype must be f32, bf16 or f16, got 'f64'");
}

TEST(ModelZoo, ExpertCapacity) {
  ModelConfig config = *lookupModel("tiny-moe"); // 32 tokens, 4 experts, top 2
  config.capacityFactor = 1.0;
  EXPECT_EQ(config.getExpertCapacity(), 16);
  config.capacityFactor = 1.25;
  EXPECT_EQ(config.getExpertCapacity(), 20);
  config.capacityFactor = 0; // dropless
  EXPECT_EQ(config.getExpertCapacity(), 32);
  config.capacityFactor = 100; // never more slots than tokens
  EXPECT_EQ(config.getExpertCapacity(), 32);
  config.capacityFactor = 0.001;
  EXPECT_EQ(config.getExpertCapacity(), 1);
  // tokens · topK beyond 2^63, each size within its range: no wrap.
  config.batch = config.seq = (int64_t(1) << 31) - 1;
  config.experts = config.topK = (int64_t(1) << 31) - 1;
  config.capacityFactor = 16384;
  EXPECT_EQ(config.getExpertCapacity(), config.getTokens());
  config.capacityFactor = 0.5; // half the tokens, to a double's precision
  EXPECT_NEAR(static_cast<double>(config.getExpertCapacity()),
              config.getTokens() / 2.0, 1024.0);
}

/// Parameter counts from the graph agree with the closed-form count of a
/// Llama-style layer: attention, SwiGLU MLP and two norms.
TEST(ModelZoo, StatsMatchClosedForm) {
  mlir::MLIRContext context;
  ModelConfig c = *lookupModel("llama3-8b");
  c.layers = 2;
  c.seq = 16;
  auto module = buildForwardModule(context, c);
  ASSERT_TRUE(mlir::succeeded(mlir::verify(*module)));
  auto func = *module->getOps<mlir::func::FuncOp>().begin();
  mlir::FailureOr<ModelStats> stats = computeModelStats(func);
  ASSERT_TRUE(mlir::succeeded(stats));
  int64_t h = c.hidden, kv = c.kvHeads * c.getHeadDim();
  int64_t layer = h * h * 2 + h * kv * 2 + 3 * h * c.ffn + 2 * h;
  int64_t expected = c.layers * layer + 2 * c.vocab * h + h;
  EXPECT_EQ(stats->totalParams, expected);
  EXPECT_EQ(stats->activeParams, expected);
  EXPECT_EQ(stats->tokens, c.seq);
  // Forward matmul FLOPs are 2 per weight (but the embedding lookup) per
  // token, plus attention's 4·S·H per layer and token.
  double matmul = 2.0 * (expected - c.vocab * h - (2 * c.layers + 1) * h);
  double attention = 4.0 * c.seq * c.heads * c.getHeadDim() * c.layers;
  EXPECT_DOUBLE_EQ(stats->getFlopsPerToken(), matmul + attention);
}

TEST(ModelZoo, MoEActiveParamsCountTopKExperts) {
  mlir::MLIRContext context;
  ModelConfig c = *lookupModel("tiny-moe");
  auto module = buildForwardModule(context, c);
  auto func = *module->getOps<mlir::func::FuncOp>().begin();
  ModelStats stats = *computeModelStats(func);
  int64_t expertParams = c.layers * 3 * c.experts * c.hidden * c.ffn;
  EXPECT_EQ(stats.totalParams - stats.activeParams,
            expertParams - expertParams * c.topK / c.experts);
}

} // namespace
