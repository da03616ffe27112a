//===- OpCostTest.cpp - FLOPs and bytes of the loom ops -------------------===//
//
// Each op's cost against the rule in CostOpInterface's description, worked
// out by hand for small shapes.
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

using namespace mlir;
using namespace loom;

namespace {

class OpCostTest : public ::testing::Test {
protected:
  OpCostTest() {
    DialectRegistry registry;
    registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
  }

  /// The cost of the single loom op in `body`, a function body over the
  /// arguments `args`.
  OpCost cost(StringRef args, StringRef body) {
    std::string text =
        ("func.func @f(" + args + ") {\n" + body + "\n  return\n}").str();
    module = parseSourceString<ModuleOp>(text, &context);
    EXPECT_TRUE(module) << text;
    if (!module)
      return {};
    CostOpInterface found;
    int count = 0;
    module->walk([&](CostOpInterface op) {
      found = op;
      ++count;
    });
    EXPECT_EQ(count, 1) << text;
    return found ? found.getCost() : OpCost();
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
};

TEST_F(OpCostTest, MatmulIsTwoMNKPerBatch) {
  // [2, 4] batch rows of K = 32 against an [out, in] weight.
  OpCost c =
      cost("%x: tensor<2x4x32xf32>, %w: tensor<16x32xf32>",
           "%0 = loom.matmul %x, %w {transpose_rhs} : tensor<2x4x32xf32>,"
           " tensor<16x32xf32> -> tensor<2x4x16xf32>");
  EXPECT_EQ(c.matmulFlops, 2.0 * 2 * 4 * 16 * 32);
  EXPECT_EQ(c.vectorFlops, 0);
  EXPECT_EQ(c.bytesRead, (2 * 4 * 32 + 16 * 32) * 4);
  EXPECT_EQ(c.bytesWritten, 2 * 4 * 16 * 4);
}

TEST_F(OpCostTest, MatmulTransposedLhsContractsItsRows) {
  OpCost c = cost("%a: tensor<32x8xf32>, %b: tensor<32x16xf32>",
                  "%0 = loom.matmul %a, %b {transpose_lhs} : tensor<32x8xf32>,"
                  " tensor<32x16xf32> -> tensor<8x16xf32>");
  EXPECT_EQ(c.matmulFlops, 2.0 * 8 * 16 * 32);
}

TEST_F(OpCostTest, GroupedMatmulCountsEveryCapacitySlot) {
  OpCost c = cost("%x: tensor<4x8x16xbf16>, %w: tensor<4x16x32xbf16>",
                  "%0 = loom.grouped_matmul %x, %w : tensor<4x8x16xbf16>,"
                  " tensor<4x16x32xbf16> -> tensor<4x8x32xbf16>");
  EXPECT_EQ(c.matmulFlops, 2.0 * 4 * 8 * 32 * 16);
  EXPECT_EQ(c.vectorFlops, 0);
  EXPECT_EQ(c.bytesRead, (4 * 8 * 16 + 4 * 16 * 32) * 2);
  EXPECT_EQ(c.bytesWritten, 4 * 8 * 32 * 2);
}

TEST_F(OpCostTest, AttentionIsUnmaskedOverQueryHeads) {
  // B = 2, S = 16, 8 query heads over 2 key/value heads, D = 64; causal
  // masking does not change the count.
  OpCost c = cost("%q: tensor<2x16x8x64xf32>, %kv: tensor<2x16x2x64xf32>",
                  "%0 = loom.attention %q, %kv, %kv {causal} : "
                  "tensor<2x16x8x64xf32>, tensor<2x16x2x64xf32>, "
                  "tensor<2x16x2x64xf32> -> tensor<2x16x8x64xf32>");
  EXPECT_EQ(c.matmulFlops, 4.0 * 2 * 16 * 16 * 8 * 64);
  EXPECT_EQ(c.vectorFlops, 6.0 * 2 * 8 * 16 * 16);
  EXPECT_EQ(c.bytesRead, (2 * 16 * 8 * 64 + 2 * 2 * 16 * 2 * 64) * 4);
  EXPECT_EQ(c.bytesWritten, 2 * 16 * 8 * 64 * 4);
}

TEST_F(OpCostTest, ElementwiseDefaultIsOnePerElement) {
  OpCost c =
      cost("%x: tensor<2x8xf32>", "%0 = loom.add %x, %x : tensor<2x8xf32>");
  EXPECT_EQ(c.matmulFlops, 0);
  EXPECT_EQ(c.vectorFlops, 16);
  EXPECT_EQ(c.bytesRead, 2 * 16 * 4);
  EXPECT_EQ(c.bytesWritten, 16 * 4);
  EXPECT_EQ(
      cost("%x: tensor<2x8xf32>", "%0 = loom.scale %x, 2.0 : tensor<2x8xf32>")
          .vectorFlops,
      16);
}

TEST_F(OpCostTest, Activations) {
  StringRef x = "%x: tensor<2x8xf32>";
  EXPECT_EQ(cost(x, "%0 = loom.gelu %x : tensor<2x8xf32>").vectorFlops, 5 * 16);
  EXPECT_EQ(cost(x, "%0 = loom.gelu %x approximate tanh : tensor<2x8xf32>")
                .vectorFlops,
            9 * 16);
  EXPECT_EQ(cost(x, "%0 = loom.silu %x : tensor<2x8xf32>").vectorFlops, 4 * 16);
  EXPECT_EQ(cost(x, "%0 = loom.swiglu %x, %x : tensor<2x8xf32>").vectorFlops,
            5 * 16);
}

TEST_F(OpCostTest, NormsSoftmaxRope) {
  StringRef args = "%x: tensor<2x16x64xf32>, %w: tensor<64xf32>";
  OpCost rms = cost(
      args, "%0 = loom.rmsnorm %x, %w : tensor<2x16x64xf32>, tensor<64xf32>");
  EXPECT_EQ(rms.vectorFlops, 4 * 2048);
  EXPECT_EQ(rms.bytesRead, (2048 + 64) * 4);
  EXPECT_EQ(cost(args, "%0 = loom.layernorm %x, %w : tensor<2x16x64xf32>, "
                       "tensor<64xf32>")
                .vectorFlops,
            6 * 2048);
  EXPECT_EQ(cost(args, "%0 = loom.layernorm %x, %w, %w : "
                       "tensor<2x16x64xf32>, tensor<64xf32>, tensor<64xf32>")
                .vectorFlops,
            7 * 2048);
  EXPECT_EQ(
      cost(args, "%0 = loom.softmax %x : tensor<2x16x64xf32>").vectorFlops,
      5 * 2048);
  EXPECT_EQ(cost("%x: tensor<2x16x8x64xbf16>",
                 "%0 = loom.rope %x : tensor<2x16x8x64xbf16>")
                .vectorFlops,
            3 * 2 * 16 * 8 * 64);
}

TEST_F(OpCostTest, LossAndReductions) {
  OpCost ce = cost("%l: tensor<2x16x100xf32>, %t: tensor<2x16xi32>",
                   "%0 = loom.cross_entropy %l, %t : tensor<2x16x100xf32>, "
                   "tensor<2x16xi32> -> tensor<f32>");
  EXPECT_EQ(ce.vectorFlops, 4 * 3200);
  EXPECT_EQ(ce.bytesRead, 3200 * 4 + 32 * 4);
  EXPECT_EQ(ce.bytesWritten, 4);
  StringRef x = "%x: tensor<4x8xf32>";
  EXPECT_EQ(cost(x, "%0 = loom.reduce sum %x {dims = array<i64: 1>} : "
                    "tensor<4x8xf32> -> tensor<4xf32>")
                .vectorFlops,
            32);
  EXPECT_EQ(cost(x, "%0 = loom.reduce mean %x {dims = array<i64: 1>} : "
                    "tensor<4x8xf32> -> tensor<4xf32>")
                .vectorFlops,
            32 + 4);
}

TEST_F(OpCostTest, MixtureOfExperts) {
  StringRef logits = "%l: tensor<32x8xf32>";
  // Mixtral: select 2 of 8 (2·8 comparisons), softmax over the 2.
  EXPECT_EQ(cost(logits, "%w, %i = loom.router %l {top_k = 2 : i64} : "
                         "tensor<32x8xf32> -> tensor<32x2xf32>, "
                         "tensor<32x2xi32>")
                .vectorFlops,
            32 * (2 * 8 + 5 * 2));
  // Qwen3: softmax over all 8, select 2, renormalize the 2.
  EXPECT_EQ(cost(logits, "%w, %i = loom.router %l {top_k = 2 : i64, "
                         "softmax_before_topk, normalize} : tensor<32x8xf32> "
                         "-> tensor<32x2xf32>, tensor<32x2xi32>")
                .vectorFlops,
            32 * (2 * 8 + 5 * 8 + 2 * 2));
  OpCost combine = cost(
      "%y: tensor<8x16x64xf32>, %w: tensor<32x2xf32>, %i: tensor<32x2xi32>",
      "%0 = loom.combine %y, %w, %i : tensor<8x16x64xf32>, tensor<32x2xf32>, "
      "tensor<32x2xi32> -> tensor<32x64xf32>");
  EXPECT_EQ(combine.vectorFlops, 2 * 32 * 2 * 64);
  EXPECT_EQ(cost("%x: tensor<32x64xf32>, %i: tensor<32x2xi32>",
                 "%0 = loom.dispatch %x, %i {num_experts = 8 : i64, "
                 "capacity = 16 : i64} : tensor<32x64xf32>, tensor<32x2xi32> "
                 "-> tensor<8x16x64xf32>")
                .vectorFlops,
            0);
}

TEST_F(OpCostTest, AdamW) {
  OpCost c =
      cost("%p: tensor<64xbf16>, %m: tensor<64xf32>, %s: tensor<i32>, "
           "%lr: tensor<f32>",
           "%0:3 = loom.adamw %p, %p, %m, %m, %s, %lr : tensor<64xbf16>, "
           "tensor<64xbf16>, tensor<64xf32>, tensor<64xf32>, tensor<i32>, "
           "tensor<f32>");
  EXPECT_EQ(c.vectorFlops, 15 * 64);
  EXPECT_EQ(c.bytesRead, 2 * 64 * 2 + 2 * 64 * 4 + 4 + 4);
  EXPECT_EQ(c.bytesWritten, 64 * 2 + 2 * 64 * 4);
}

TEST_F(OpCostTest, DataMovementHasNoFlops) {
  OpCost embedding = cost("%t: tensor<100x64xf32>, %ids: tensor<2x16xi32>",
                          "%0 = loom.embedding %t, %ids : tensor<100x64xf32>, "
                          "tensor<2x16xi32> -> tensor<2x16x64xf32>");
  EXPECT_EQ(embedding.getFlops(), 0);
  // The ids and the 32 rows gathered, not the table.
  EXPECT_EQ(embedding.bytesRead, 32 * 4 + 32 * 64 * 4);
  EXPECT_EQ(embedding.bytesWritten, 32 * 64 * 4);

  StringRef x = "%x: tensor<4x8xf32>";
  OpCost slice = cost(x, "%0 = loom.slice %x {offsets = array<i64: 0, 4>, "
                         "sizes = array<i64: 4, 4>} : tensor<4x8xf32> -> "
                         "tensor<4x4xf32>");
  EXPECT_EQ(slice.getFlops(), 0);
  EXPECT_EQ(slice.bytesRead, 16 * 4);
  EXPECT_EQ(slice.bytesWritten, 16 * 4);

  OpCost reshape =
      cost(x, "%0 = loom.reshape %x : tensor<4x8xf32> -> tensor<32xf32>");
  EXPECT_EQ(reshape.getFlops(), 0);
  EXPECT_EQ(reshape.getBytes(), 0);

  OpCost convert =
      cost(x, "%0 = loom.convert %x : tensor<4x8xf32> -> tensor<4x8xbf16>");
  EXPECT_EQ(convert.getFlops(), 0);
  EXPECT_EQ(convert.bytesRead, 32 * 4);
  EXPECT_EQ(convert.bytesWritten, 32 * 2);

  OpCost fill = cost("", "%0 = loom.fill 0.0 : tensor<4x8xbf16>");
  EXPECT_EQ(fill.getFlops(), 0);
  EXPECT_EQ(fill.bytesRead, 0);
  EXPECT_EQ(fill.bytesWritten, 32 * 2);

  for (StringRef body :
       {"%0 = loom.transpose %x, [1, 0] : tensor<4x8xf32> -> tensor<8x4xf32>",
        "%0 = loom.concat %x, %x {dim = 0 : i64} : tensor<4x8xf32>, "
        "tensor<4x8xf32> -> tensor<8x8xf32>",
        "%0 = loom.broadcast %x, [1, 2] : tensor<4x8xf32> -> "
        "tensor<3x4x8xf32>"}) {
    OpCost c = cost(x, body);
    EXPECT_EQ(c.getFlops(), 0) << body.str();
    EXPECT_GT(c.bytesWritten, 0) << body.str();
  }
}

/// Every op that lowers to a kernel has a cost; collectives are priced by the
/// communication model instead.
TEST_F(OpCostTest, EveryKernelOpHasACost) {
  auto *dialect = context.getLoadedDialect<LoomDialect>();
  ASSERT_TRUE(dialect);
  int kernels = 0;
  for (RegisteredOperationName name : context.getRegisteredOperations()) {
    if (&name.getDialect() != dialect ||
        !name.hasInterface<ProgramOpInterface>() ||
        name.hasInterface<CollectiveOpInterface>())
      continue;
    ++kernels;
    EXPECT_TRUE(name.hasInterface<CostOpInterface>())
        << name.getStringRef().str() << " has no CostOpInterface";
  }
  EXPECT_GT(kernels, 20);
}

} // namespace
