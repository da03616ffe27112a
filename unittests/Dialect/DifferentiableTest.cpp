//===- DifferentiableTest.cpp - Vector-Jacobian rules of the loom ops -----===//
//
// Each test parses a function whose first op is the op under test and whose
// last argument is its result cotangent, builds the rule right after the op,
// returns the operand cotangents and compares the whole function.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "gtest/gtest.h"

using namespace mlir;
using namespace loom;

namespace {

class DifferentiableTest : public ::testing::Test {
protected:
  DifferentiableTest() {
    DialectRegistry registry;
    registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
  }

  /// Parses `text` and returns its function's first op.
  Operation *parse(StringRef text) {
    module = parseSourceString<ModuleOp>(text, &context);
    EXPECT_TRUE(module) << text.str();
    func = *module->getOps<func::FuncOp>().begin();
    return &func.front().front();
  }

  /// Builds the cotangents of the first op's operands with `ct` (the last
  /// argument, or null) as its result cotangent. Records any error.
  LogicalResult build(Operation *op, bool withCotangent,
                      SmallVectorImpl<Value> &cotangents) {
    OpBuilder builder(op->getContext());
    builder.setInsertionPointAfter(op);
    Value ct = withCotangent ? func.getArguments().back() : Value();
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      error = diag.str();
      return success();
    });
    return buildOperandCotangents(builder, op, ct, cotangents);
  }

  /// The function after returning the operand cotangents of its first op.
  std::string vjp(StringRef text) {
    Operation *op = parse(text);
    SmallVector<Value> cotangents;
    if (failed(build(op, /*withCotangent=*/true, cotangents)))
      return "error: " + error;
    func.front().getTerminator()->setOperands(cotangents);
    EXPECT_TRUE(succeeded(verify(*module)));
    std::string printed;
    llvm::raw_string_ostream os(printed);
    func.print(os);
    return printed;
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
  func::FuncOp func;
  std::string error;
};

TEST_F(DifferentiableTest, AddPassesTheCotangentToBoth) {
  EXPECT_EQ(
      vjp(R"(
func.func @f(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>, %ct: tensor<2x3xf32>)
    -> (tensor<2x3xf32>, tensor<2x3xf32>) {
  %y = loom.add %a, %b : tensor<2x3xf32>
  return %a, %b : tensor<2x3xf32>, tensor<2x3xf32>
})"),
      R"(func.func @f(%arg0: tensor<2x3xf32>, %arg1: tensor<2x3xf32>, %arg2: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
  %0 = loom.add %arg0, %arg1 : tensor<2x3xf32>
  return %arg2, %arg2 : tensor<2x3xf32>, tensor<2x3xf32>
})");
}

TEST_F(DifferentiableTest, SubNegatesTheSubtrahend) {
  EXPECT_EQ(
      vjp(R"(
func.func @f(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>, %ct: tensor<2x3xf32>)
    -> (tensor<2x3xf32>, tensor<2x3xf32>) {
  %y = loom.sub %a, %b : tensor<2x3xf32>
  return %a, %b : tensor<2x3xf32>, tensor<2x3xf32>
})"),
      R"(func.func @f(%arg0: tensor<2x3xf32>, %arg1: tensor<2x3xf32>, %arg2: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
  %0 = loom.sub %arg0, %arg1 : tensor<2x3xf32>
  %1 = loom.neg %arg2 : tensor<2x3xf32>
  return %arg2, %1 : tensor<2x3xf32>, tensor<2x3xf32>
})");
}

TEST_F(DifferentiableTest, MulMultipliesByTheOtherFactor) {
  EXPECT_EQ(
      vjp(R"(
func.func @f(%a: tensor<2x3xbf16>, %b: tensor<2x3xbf16>, %ct: tensor<2x3xbf16>)
    -> (tensor<2x3xbf16>, tensor<2x3xbf16>) {
  %y = loom.mul %a, %b : tensor<2x3xbf16>
  return %a, %b : tensor<2x3xbf16>, tensor<2x3xbf16>
})"),
      R"(func.func @f(%arg0: tensor<2x3xbf16>, %arg1: tensor<2x3xbf16>, %arg2: tensor<2x3xbf16>) -> (tensor<2x3xbf16>, tensor<2x3xbf16>) {
  %0 = loom.mul %arg0, %arg1 : tensor<2x3xbf16>
  %1 = loom.mul %arg2, %arg1 : tensor<2x3xbf16>
  %2 = loom.mul %arg2, %arg0 : tensor<2x3xbf16>
  return %1, %2 : tensor<2x3xbf16>, tensor<2x3xbf16>
})");
}

TEST_F(DifferentiableTest, ScaleScalesByTheSameFactor) {
  EXPECT_EQ(
      vjp(R"(
func.func @f(%a: tensor<4xf32>, %ct: tensor<4xf32>) -> tensor<4xf32> {
  %y = loom.scale %a, 0.125 : tensor<4xf32>
  return %a : tensor<4xf32>
})"),
      R"(func.func @f(%arg0: tensor<4xf32>, %arg1: tensor<4xf32>) -> tensor<4xf32> {
  %0 = loom.scale %arg0, 1.250000e-01 : tensor<4xf32>
  %1 = loom.scale %arg1, 1.250000e-01 : tensor<4xf32>
  return %1 : tensor<4xf32>
})");
}

TEST_F(DifferentiableTest, ReshapeReshapesBack) {
  EXPECT_EQ(
      vjp(R"(
func.func @f(%a: tensor<2x3xf32>, %ct: tensor<6xf32>) -> tensor<2x3xf32> {
  %y = loom.reshape %a : tensor<2x3xf32> -> tensor<6xf32>
  return %a : tensor<2x3xf32>
})"),
      R"(func.func @f(%arg0: tensor<2x3xf32>, %arg1: tensor<6xf32>) -> tensor<2x3xf32> {
  %0 = loom.reshape %arg0 : tensor<2x3xf32> -> tensor<6xf32>
  %1 = loom.reshape %arg1 : tensor<6xf32> -> tensor<2x3xf32>
  return %1 : tensor<2x3xf32>
})");
}

TEST_F(DifferentiableTest, TransposeByTheInversePermutation) {
  EXPECT_EQ(
      vjp(R"(
func.func @f(%a: tensor<2x3x4xf32>, %ct: tensor<3x4x2xf32>) -> tensor<2x3x4xf32> {
  %y = loom.transpose %a, [1, 2, 0] : tensor<2x3x4xf32> -> tensor<3x4x2xf32>
  return %a : tensor<2x3x4xf32>
})"),
      R"(func.func @f(%arg0: tensor<2x3x4xf32>, %arg1: tensor<3x4x2xf32>) -> tensor<2x3x4xf32> {
  %0 = loom.transpose %arg0, [1, 2, 0] : tensor<2x3x4xf32> -> tensor<3x4x2xf32>
  %1 = loom.transpose %arg1, [2, 0, 1] : tensor<3x4x2xf32> -> tensor<2x3x4xf32>
  return %1 : tensor<2x3x4xf32>
})");
}

TEST_F(DifferentiableTest, NoResultCotangentGivesNoneAndBuildsNothing) {
  Operation *op = parse(R"(
func.func @f(%a: tensor<4xf32>, %b: tensor<4xf32>) {
  %y = loom.mul %a, %b : tensor<4xf32>
  return
})");
  SmallVector<Value> cotangents;
  ASSERT_TRUE(succeeded(build(op, /*withCotangent=*/false, cotangents)));
  EXPECT_EQ(cotangents, SmallVector<Value>(2, Value()));
  EXPECT_EQ(func.front().getOperations().size(), 2u);
}

TEST_F(DifferentiableTest, IntegerOperandsGetNoCotangent) {
  // Even when a caller hands an integer result a cotangent.
  Operation *op = parse(R"(
func.func @f(%ids: tensor<6xi32>, %ct: tensor<2x3xi32>) {
  %y = loom.reshape %ids : tensor<6xi32> -> tensor<2x3xi32>
  return
})");
  SmallVector<Value> cotangents;
  ASSERT_TRUE(succeeded(build(op, /*withCotangent=*/true, cotangents)));
  EXPECT_EQ(cotangents, SmallVector<Value>{Value()});
  EXPECT_EQ(func.front().getOperations().size(), 2u);
}

TEST_F(DifferentiableTest, OpsWithoutARuleAreReported) {
  EXPECT_EQ(vjp(R"(
func.func @f(%ct: tensor<4xf32>) {
  %y = loom.fill 1.0 : tensor<4xf32>
  return
})"),
            "error: 'loom.fill' op has no vector-Jacobian rule, so gradients "
            "cannot flow through it");
}

TEST_F(DifferentiableTest, CotangentsMustMatchTheResults) {
  EXPECT_EQ(vjp(R"(
func.func @f(%a: tensor<4xf32>, %ct: tensor<2x2xf32>) -> tensor<4xf32> {
  %y = loom.scale %a, 2.0 : tensor<4xf32>
  return %a : tensor<4xf32>
})"),
            "error: 'loom.scale' op cotangent of result #0 has type "
            "'tensor<2x2xf32>', expected 'tensor<4xf32>'");
}

} // namespace
