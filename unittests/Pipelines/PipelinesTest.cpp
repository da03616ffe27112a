//===- PipelinesTest.cpp - Pipelines from C++ and by name agree -----------===//

#include "loom/Pipelines/Pipelines.h"
#include "loom/Driver/CompileModule.h"
#include "loom/InitAll.h"
#include "loom/Models/ModelZoo.h"
#include "loom/Target/ProgramEmitter.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace loom;

namespace {

class Pipelines : public ::testing::Test {
protected:
  Pipelines() : context(registry()) {
    static bool registered = (registerAllPasses(), true);
    (void)registered;
  }

  static DialectRegistry registry() {
    DialectRegistry r;
    registerAllDialects(r);
    return r;
  }

  OwningOpRef<ModuleOp> model() {
    std::optional<ModelConfig> config = lookupModel("tiny-llama");
    return buildForwardModule(context, *config);
  }

  std::vector<uint8_t> fromOptions(const ForwardToProgramOptions &options) {
    OwningOpRef<ModuleOp> module = model();
    PassManager pm(&context);
    buildLoomForwardToProgramPipeline(pm, options);
    EXPECT_TRUE(succeeded(pm.run(*module)));
    FailureOr<std::vector<uint8_t>> bytes = emitProgram(*module);
    EXPECT_TRUE(succeeded(bytes));
    return succeeded(bytes) ? *bytes : std::vector<uint8_t>{};
  }

  std::vector<uint8_t> fromName(StringRef pipeline) {
    OwningOpRef<ModuleOp> module = model();
    FailureOr<OpPassManager> parsed = parsePassPipeline(pipeline);
    EXPECT_TRUE(succeeded(parsed));
    PassManager pm(&context);
    static_cast<OpPassManager &>(pm) = *parsed;
    EXPECT_TRUE(succeeded(pm.run(*module)));
    FailureOr<std::vector<uint8_t>> bytes = emitProgram(*module);
    EXPECT_TRUE(succeeded(bytes));
    return succeeded(bytes) ? *bytes : std::vector<uint8_t>{};
  }

  /// The tiny-llama training step (loom-autodiff), then `add`'s passes
  /// and loom-forward-to-program, as program bytes.
  std::vector<uint8_t> step(function_ref<void(OpPassManager &)> add) {
    OwningOpRef<ModuleOp> module = model();
    PassManager pm(&context);
    EXPECT_TRUE(succeeded(parsePassPipeline("loom-autodiff", pm)));
    add(pm);
    buildLoomForwardToProgramPipeline(pm, ForwardToProgramOptions());
    EXPECT_TRUE(succeeded(pm.run(*module)));
    FailureOr<std::vector<uint8_t>> bytes = emitProgram(*module);
    EXPECT_TRUE(succeeded(bytes));
    return succeeded(bytes) ? *bytes : std::vector<uint8_t>{};
  }

  MLIRContext context;
};

TEST_F(Pipelines, OptionsAndNameBuildTheSameProgram) {
  ForwardToProgramOptions defaults;
  std::vector<uint8_t> byOptions = fromOptions(defaults);
  EXPECT_EQ(byOptions, fromName("builtin.module(loom-forward-to-program)"));

  ForwardToProgramOptions reference;
  reference.reuse = false;
  std::vector<uint8_t> referencePlan = fromOptions(reference);
  EXPECT_EQ(referencePlan,
            fromName("builtin.module(loom-forward-to-program{reuse=false})"));
  // The option reaches the pass: without reuse the arena is larger.
  EXPECT_NE(referencePlan, byOptions);
}

TEST_F(Pipelines, OverlapGradReduceFromOptionsAndByName) {
  ParallelizeOptions options;
  options.plan = "dp=2";
  options.overlapGradReduce = true;
  options.bucketSize = 4096;
  std::vector<uint8_t> byOptions = step(
      [&](OpPassManager &pm) { buildLoomParallelizePipeline(pm, options); });
  EXPECT_EQ(byOptions, step([](OpPassManager &pm) {
              EXPECT_TRUE(succeeded(parsePassPipeline(
                  "loom-parallelize{plan=dp=2 overlap-grad-reduce=true "
                  "bucket-size=4096}",
                  pm)));
            }));
  // The options reach the pass: without overlap the program differs.
  ParallelizeOptions plain;
  plain.plan = "dp=2";
  EXPECT_NE(byOptions, step([&](OpPassManager &pm) {
              buildLoomParallelizePipeline(pm, plain);
            }));
}

TEST_F(Pipelines, TheDriverRunsThePipeline) {
  OwningOpRef<ModuleOp> module = model();
  CompileOptions options;
  options.reuse = false;
  FailureOr<std::vector<uint8_t>> bytes = compileModule(*module, options);
  ASSERT_TRUE(succeeded(bytes));
  ForwardToProgramOptions reference;
  reference.reuse = false;
  EXPECT_EQ(*bytes, fromOptions(reference));
}

TEST_F(Pipelines, TheDriverTakesATextualPipeline) {
  OwningOpRef<ModuleOp> module = model();
  CompileOptions options;
  options.pipeline = "builtin.module(loom-forward-to-program{simplify=false})";
  FailureOr<std::vector<uint8_t>> bytes = compileModule(*module, options);
  ASSERT_TRUE(succeeded(bytes));
  ForwardToProgramOptions noSimplify;
  noSimplify.simplify = false;
  EXPECT_EQ(*bytes, fromOptions(noSimplify));
}

} // namespace
