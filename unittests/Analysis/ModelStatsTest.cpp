//===- ModelStatsTest.cpp - Parameter counts that do not wrap -------------===//

#include "loom/Analysis/ModelStats.h"
#include "loom/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "gtest/gtest.h"

using namespace mlir;
using namespace loom;

namespace {

/// A function over `params` parameters of 2^50 elements each.
std::string hugeModel(int params) {
  std::string text = "func.func @m(%t: tensor<4xi32> {loom.input = \"tokens\"}";
  for (int i = 0; i < params; ++i)
    text += ", %p" + std::to_string(i) +
            ": tensor<33554432x33554432xf32> {loom.param = \"p" +
            std::to_string(i) + "\"}";
  return text + ") { return }";
}

TEST(ModelStats, CountsUpTo2To63) {
  DialectRegistry registry;
  registerAllDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  // 8191 · 2^50 < 2^63: counted exactly.
  OwningOpRef<ModuleOp> fits =
      parseSourceString<ModuleOp>(hugeModel(8191), &context);
  ASSERT_TRUE(fits);
  auto stats = computeModelStats(*fits->getOps<func::FuncOp>().begin());
  ASSERT_TRUE(succeeded(stats));
  EXPECT_EQ(stats->totalParams, int64_t(8191) << 50);

  // 8192 · 2^50 = 2^63 does not fit: an error, not a negative count.
  OwningOpRef<ModuleOp> over =
      parseSourceString<ModuleOp>(hugeModel(8192), &context);
  ASSERT_TRUE(over);
  std::string message;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
    message = d.str();
    return success();
  });
  EXPECT_TRUE(failed(computeModelStats(*over->getOps<func::FuncOp>().begin())));
  EXPECT_NE(message.find("more than 2^63"), std::string::npos) << message;
}

} // namespace
