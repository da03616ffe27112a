//===- MemoryPlanTest.cpp - Properties of the static arena plan -----------===//
//
// For random graphs and for every zoo model: the plan passes the replay
// check (no read sees bytes that another op overwrote), parameters never
// share bytes, the arena is at least the live lower bound, and sharing never
// makes the arena larger than giving every tensor its own bytes.
//
//===----------------------------------------------------------------------===//

#include "loom/Analysis/MemoryPlan.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/InitAll.h"
#include "loom/Models/ModelZoo.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "gtest/gtest.h"

#include <random>
#include <sstream>

using namespace mlir;
using namespace loom;

namespace {

class MemoryPlanTest : public ::testing::Test {
protected:
  MemoryPlanTest() {
    DialectRegistry registry;
    registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
  }

  /// The plan of `func`, after checking the properties every plan has.
  MemoryPlan planAndCheck(func::FuncOp func) {
    FailureOr<MemoryPlan> plan = planMemory(func);
    EXPECT_TRUE(succeeded(plan));
    EXPECT_TRUE(succeeded(checkMemoryPlan(func, *plan)));
    FailureOr<MemoryPlan> separate = planMemory(func, /*reuse=*/false);
    EXPECT_TRUE(succeeded(separate));
    EXPECT_TRUE(succeeded(checkMemoryPlan(func, *separate)));
    EXPECT_GE(plan->arenaSize, plan->liveLowerBound);
    EXPECT_LE(plan->arenaSize, separate->arenaSize);
    // Arguments (parameters and inputs) overlap nothing else.
    for (BlockArgument param : func.getArguments()) {
      if (!func.getArgAttr(param.getArgNumber(), LoomDialect::kParamAttrName))
        continue;
      int64_t begin = plan->offsets.lookup(param);
      int64_t end = begin + getTensorBytes(param.getType());
      for (auto [value, offset] : plan->offsets) {
        if (value == Value(param))
          continue;
        int64_t otherEnd = offset + getTensorBytes(value.getType());
        EXPECT_FALSE(offset < end && begin < otherEnd)
            << "a tensor overlaps parameter #" << param.getArgNumber();
      }
    }
    for (auto [value, offset] : plan->offsets)
      EXPECT_EQ(offset % kArenaAlignment, 0);
    return *plan;
  }

  MLIRContext context;
};

/// A random straight-line graph over [rows, cols] tensors: element-wise ops,
/// matmuls, reshapes and norms reading random earlier values, so lifetimes
/// interleave in many ways.
std::string randomGraph(std::mt19937 &rng, int numOps) {
  std::ostringstream os;
  const char *t = "tensor<8x16xf32>";
  os << "func.func @g(%w: tensor<16x16xf32> {loom.param = \"w\"}, "
        "%n: tensor<16xf32> {loom.param = \"n\"}, %x: "
     << t << ") -> " << t << " {\n";
  std::vector<std::string> values = {"%x"};
  auto pick = [&] {
    // Prefer recent values, sometimes reach far back.
    size_t n = values.size();
    size_t back = std::uniform_int_distribution<size_t>(0, n - 1)(rng);
    if (rng() % 3 != 0)
      back = std::min<size_t>(back, 2);
    return values[n - 1 - back];
  };
  for (int i = 0; i < numOps; ++i) {
    std::string v = "%v" + std::to_string(i);
    switch (rng() % 6) {
    case 0:
      os << "  " << v << " = loom.add " << pick() << ", " << pick() << " : "
         << t << "\n";
      break;
    case 1:
      os << "  " << v << " = loom.gelu " << pick() << " : " << t << "\n";
      break;
    case 2:
      os << "  " << v << " = loom.matmul " << pick() << ", %w : " << t
         << ", tensor<16x16xf32> -> " << t << "\n";
      break;
    case 3: {
      std::string r = v + "r";
      os << "  " << r << " = loom.reshape " << pick() << " : " << t
         << " -> tensor<128xf32>\n";
      os << "  " << v << " = loom.reshape " << r << " : tensor<128xf32> -> "
         << t << "\n";
      break;
    }
    case 4:
      os << "  " << v << " = loom.rmsnorm " << pick() << ", %n : " << t
         << ", tensor<16xf32>\n";
      break;
    default:
      os << "  " << v << " = loom.swiglu " << pick() << ", " << pick() << " : "
         << t << "\n";
      break;
    }
    values.push_back(v);
  }
  os << "  %sum = loom.add " << values.back() << ", " << pick() << " : " << t
     << "\n";
  os << "  return %sum : " << t << "\n}\n";
  return os.str();
}

TEST_F(MemoryPlanTest, RandomGraphs) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text = randomGraph(rng, 5 + trial % 40);
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
    ASSERT_TRUE(module) << text;
    ASSERT_TRUE(succeeded(verify(*module))) << text;
    auto func = *module->getOps<func::FuncOp>().begin();
    planAndCheck(func);
    if (HasFailure()) {
      ADD_FAILURE() << "graph of trial " << trial << ":\n" << text;
      return;
    }
  }
}

TEST_F(MemoryPlanTest, EveryZooModel) {
  for (llvm::StringRef name : getModelNames()) {
    ModelConfig config = *lookupModel(name);
    // Published models at test size: the graph's structure is what matters.
    config.layers = 2;
    config.hidden = 64;
    config.heads = 4;
    config.kvHeads = config.kvHeads >= 4 ? 4 : config.kvHeads;
    config.headDim = 0;
    config.ffn = 96;
    config.vocab = 100;
    config.seq = 8;
    config.batch = 2;
    config.experts = std::min<int64_t>(config.experts, 8);
    config.topK = std::min(config.topK, config.experts);
    ASSERT_FALSE(validateModelConfig(config)) << name.str();
    OwningOpRef<ModuleOp> module = buildForwardModule(context, config);
    ASSERT_TRUE(succeeded(verify(*module))) << name.str();
    MemoryPlan plan = planAndCheck(*module->getOps<func::FuncOp>().begin());
    EXPECT_GT(plan.numValues, plan.numStorages) << name.str();
  }
}

/// The replay check catches a plan that puts two live values on the same
/// bytes.
TEST_F(MemoryPlanTest, ReplayCatchesClobberedReads) {
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(R"(
    func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
      %a = loom.gelu %x : tensor<4xf32>
      %b = loom.silu %x : tensor<4xf32>
      %c = loom.add %a, %b : tensor<4xf32>
      return %c : tensor<4xf32>
    })",
                                                             &context);
  auto func = *module->getOps<func::FuncOp>().begin();
  MemoryPlan plan = *planMemory(func);
  EXPECT_TRUE(succeeded(checkMemoryPlan(func, plan)));
  // Put %b over %a while %a is still to be read.
  Block &block = func.getBody().front();
  Value a = block.getOperations().front().getResult(0);
  Value b = std::next(block.begin())->getResult(0);
  plan.offsets[b] = plan.offsets[a];
  context.getDiagEngine().registerHandler(
      [](Diagnostic &) { return success(); });
  EXPECT_TRUE(failed(checkMemoryPlan(func, plan)));
}

} // namespace
