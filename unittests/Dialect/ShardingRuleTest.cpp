//===- ShardingRuleTest.cpp - Factor rules and reshape factorization ------===//
//
// Reshape rules for the shapes of Shardy's own tests, and for random shape
// pairs the property that makes a shared factor right: it sits at the same
// place of the linear index on both sides.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "gtest/gtest.h"

#include <random>

using namespace mlir;
using namespace loom;

namespace {

std::string reshape(ArrayRef<int64_t> in, ArrayRef<int64_t> out) {
  return ShardingRule::getReshape(in, out).str();
}

TEST(ShardingRule, FactorSymbols) {
  EXPECT_EQ(getFactorSymbol(0), "i");
  EXPECT_EQ(getFactorSymbol(17), "z");
  EXPECT_EQ(getFactorSymbol(18), "z_1");
}

TEST(ShardingRule, PrintsKinds) {
  ShardingRule rule({2, 1}, {2});
  int64_t m = rule.addFactor(8);
  int64_t k = rule.addFactor(32, FactorKind::Reduction);
  int64_t h = rule.addFactor(4, FactorKind::NeedReplication);
  rule.addOperandFactor(0, 0, m);
  rule.addOperandFactor(0, 1, h);
  rule.addOperandFactor(0, 1, k);
  rule.addOperandFactor(1, 0, k);
  rule.addResultFactor(0, 0, m);
  rule.addResultFactor(0, 1, h);
  EXPECT_EQ(rule.str(), "([i, kj], [j])->([i, k]) {i=8, j=32, k=4} "
                        "reduction={j} need_replication={k}");
  EXPECT_EQ(ShardingRule({0}, {0}).str(), "([])->([])");
}

TEST(ShardingRule, ReshapeSplitsAndMerges) {
  EXPECT_EQ(reshape({2, 4}, {8}), "([i, j])->([ij]) {i=2, j=4}");
  EXPECT_EQ(reshape({8}, {2, 4}), "([ij])->([i, j]) {i=2, j=4}");
  EXPECT_EQ(reshape({4, 12}, {4, 2, 3, 2}),
            "([i, jkl])->([i, j, k, l]) {i=4, j=2, k=3, l=2}");
  EXPECT_EQ(reshape({8, 4, 5}, {2, 16, 5}),
            "([ij, k, l])->([i, jk, l]) {i=2, j=4, k=4, l=5}");
}

TEST(ShardingRule, ReshapePiecesWithoutCounterpart) {
  EXPECT_EQ(reshape({3, 2}, {2, 3}), "([j, k])->([i, l]) {i=2, j=3, k=2, l=3}");
  EXPECT_EQ(reshape({6, 4}, {4, 6}),
            "([ik, ln])->([ij, mn]) {i=2, j=2, k=3, l=2, m=3, n=2}");
  EXPECT_EQ(reshape({2, 3, 8}, {3, 4, 4}),
            "([i, k, mn])->([j, lm, n]) {i=2, j=3, k=3, l=2, m=2, n=4}");
  EXPECT_EQ(reshape({5, 2, 5, 3}, {5, 3, 5, 2}),
            "([i, j, l, n])->([i, k, m, o]) "
            "{i=5, j=2, k=3, l=5, m=5, n=3, o=2}");
}

TEST(ShardingRule, ReshapeUnitAndEmptyDimensions) {
  EXPECT_EQ(reshape({1, 8, 4}, {8, 1, 4, 1}),
            "([i, j, l])->([j, k, l, m]) {i=1, j=8, k=1, l=4, m=1}");
  EXPECT_EQ(reshape({32}, {8, 1, 4}), "([ik])->([i, j, k]) {i=8, j=1, k=4}");
  EXPECT_EQ(reshape({8, 4}, {32, 1}), "([i, j])->([ij, k]) {i=8, j=4, k=1}");
  EXPECT_EQ(reshape({1, 1}, {}), "([i, j])->([]) {i=1, j=1}");
  // Nothing lines up without elements.
  EXPECT_EQ(reshape({4, 0}, {0, 8}), "([i, j])->([k, l]) {i=4, j=0, k=0, l=8}");
}

/// The stride in the linear index of every factor of a tensor (the product
/// of the sizes of the factors minor to it).
DenseMap<int64_t, int64_t> factorStrides(const ShardingRule &rule,
                                         const ShardingRule::TensorFactors &t) {
  DenseMap<int64_t, int64_t> strides;
  int64_t stride = 1;
  for (const auto &dim : llvm::reverse(t))
    for (int64_t factor : llvm::reverse(dim)) {
      strides[factor] = stride;
      stride *= rule.getFactorSize(factor);
    }
  return strides;
}

/// A random shape with `elements` elements, unit dimensions included.
SmallVector<int64_t> randomShape(std::mt19937 &rng, int64_t elements) {
  SmallVector<int64_t> shape;
  while (elements > 1) {
    SmallVector<int64_t> divisors;
    for (int64_t d = 2; d <= elements; ++d)
      if (elements % d == 0)
        divisors.push_back(d);
    int64_t d = divisors[rng() % std::min<size_t>(divisors.size(), 4)];
    shape.push_back(d);
    elements /= d;
    if (rng() % 6 == 0)
      shape.push_back(1);
  }
  return shape;
}

TEST(ShardingRule, ReshapeSharedFactorsLineUp) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    const int64_t sizes[] = {1, 6, 12, 24, 60, 64, 72, 120, 360, 512};
    int64_t elements = sizes[rng() % std::size(sizes)];
    SmallVector<int64_t> in = randomShape(rng, elements);
    SmallVector<int64_t> out = randomShape(rng, elements);
    ShardingRule rule = ShardingRule::getReshape(in, out);
    std::string what = rule.str();
    // Every dimension is made of factors multiplying to its size.
    for (auto [shape, tensor] : {std::pair{ArrayRef(in), rule.getOperands()[0]},
                                 {ArrayRef(out), rule.getResults()[0]}}) {
      ASSERT_EQ(tensor.size(), shape.size()) << what;
      for (auto [size, factors] : llvm::zip(shape, tensor)) {
        int64_t product = 1;
        for (int64_t factor : factors)
          product *= rule.getFactorSize(factor);
        EXPECT_FALSE(factors.empty()) << what;
        EXPECT_EQ(product, size) << what;
      }
    }
    // A factor of both sides covers the same digits of the linear index.
    DenseMap<int64_t, int64_t> inStrides =
        factorStrides(rule, rule.getOperands()[0]);
    DenseMap<int64_t, int64_t> outStrides =
        factorStrides(rule, rule.getResults()[0]);
    for (int64_t factor = 0; factor < rule.getNumFactors(); ++factor) {
      EXPECT_TRUE(inStrides.count(factor) || outStrides.count(factor)) << what;
      if (inStrides.count(factor) && outStrides.count(factor))
        EXPECT_EQ(inStrides[factor], outStrides[factor])
            << "factor " << getFactorSymbol(factor) << " of " << what;
    }
  }
}

TEST(ShardingRule, IdenticalShapesShareEverything) {
  EXPECT_EQ(reshape({2, 16, 64}, {2, 16, 64}),
            "([i, j, k])->([i, j, k]) {i=2, j=16, k=64}");
}

class ShardingRuleVerifyTest : public ::testing::Test {
protected:
  ShardingRuleVerifyTest() {
    DialectRegistry registry;
    registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
    module = parseSourceString<ModuleOp>(
        "func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {\n"
        "  %0 = loom.add %x, %x : tensor<2x8xf32>\n"
        "  return %0 : tensor<2x8xf32>\n}",
        &context);
    module->walk([&](AddOp op) { add = op; });
  }

  /// The error `rule.verify(add)` reports, or "" if it passes.
  std::string verifyError(const ShardingRule &rule) {
    std::string message;
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      message = diag.str();
      return success();
    });
    if (succeeded(rule.verify(add)))
      return "";
    return message;
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
  AddOp add;
};

TEST_F(ShardingRuleVerifyTest, AcceptsTheOpsOwnRule) {
  ASSERT_TRUE(add);
  EXPECT_EQ(verifyError(cast<ShardingRuleOpInterface>(*add).getShardingRule()),
            "");
}

TEST_F(ShardingRuleVerifyTest, RejectsRulesThatDoNotFit) {
  ShardingRule wrongSize = ShardingRule::getPointwise(add);
  wrongSize.addOperandFactor(1, 1, wrongSize.addFactor(2));
  EXPECT_EQ(verifyError(wrongSize),
            "'loom.add' op sharding rule: dimension 1 of operand #1 has size 8 "
            "but its factors multiply to 16");

  ShardingRule unused = ShardingRule::getPointwise(add);
  unused.addFactor(3);
  EXPECT_EQ(verifyError(unused),
            "'loom.add' op sharding rule: factor k=3 is in no operand or "
            "result");

  EXPECT_EQ(verifyError(ShardingRule({2}, {2})),
            "'loom.add' op sharding rule maps 1 operands but the op has 2");
  ShardingRule lowRank({2, 1}, {2});
  for (int64_t dim : {0, 1}) {
    int64_t factor = lowRank.addFactor(dim == 0 ? 2 : 8);
    lowRank.addOperandFactor(0, dim, factor);
    lowRank.addResultFactor(0, dim, factor);
  }
  lowRank.addOperandFactor(1, 0, 0);
  EXPECT_EQ(verifyError(lowRank),
            "'loom.add' op sharding rule gives operand #1 1 dimensions but it "
            "has rank 2");
  EXPECT_EQ(verifyError(ShardingRule({2, 2}, {2})),
            "'loom.add' op sharding rule: dimension 0 of operand #0 has no "
            "factor");
}

} // namespace
