//===- RankRunnerTest.cpp - One rank of a job -----------------------------===//

#include "loom/runtime/launch/RankRunner.h"

#include "LaunchTestUtil.h"
#include "loom/runtime/SeededInputs.h"

using namespace loom::runtime;
using namespace loom::test;

namespace {

std::vector<float> values(const HostTensor &t) { return t.toF32(); }

TEST(RankRunner, OneRankProgramIsReplicatedOnEveryRank) {
  auto program = allReduceSum(1);
  for (int rank = 0; rank < 4; ++rank)
    EXPECT_EQ(meshRankFor(*program, rank, 4), 0);
}

TEST(RankRunner, MeshRanksMustEqualTheWorldSize) {
  auto program = allReduceSum(2);
  EXPECT_EQ(meshRankFor(*program, 0, 2), 0);
  EXPECT_EQ(meshRankFor(*program, 1, 2), 1);
  for (int worldSize : {1, 3}) {
    try {
      meshRankFor(*program, 0, worldSize);
      FAIL() << "placed a 2-rank mesh on " << worldSize << " rank(s)";
    } catch (const std::runtime_error &e) {
      EXPECT_EQ(std::string(e.what()),
                "the program's mesh [tp=2] has 2 ranks but the job has " +
                    std::to_string(worldSize));
    }
  }
}

TEST(RankRunner, RanksOwnInputsComeBeforeSharedOnes) {
  TempDir dir;
  writeX(dir / "in", {1, 2});
  writeX(dir / "in/rank1", {10, 20});
  LaunchOptions options;
  options.inputsDir = dir / "in";
  options.outputsDir = dir / "out";
  // The replicated program runs on ranks 0..2 with no communicator.
  std::vector<float> losses;
  for (int rank = 0; rank < 3; ++rank) {
    RankResult result = runRank(options, allReduceSum(1), rank, 3, nullptr);
    ASSERT_EQ(result.scalars.size(), 1u);
    EXPECT_EQ(result.scalars[0].first, "loss");
    losses.push_back(result.scalars[0].second);
  }
  EXPECT_EQ(losses, (std::vector<float>{3, 30, 3}));
  // Rank 0's outputs in the directory itself, the others' in rank<R>/.
  EXPECT_EQ(values(readNpy(dir / "out/y.npy")), (std::vector<float>{1, 2}));
  EXPECT_EQ(values(readNpy(dir / "out/rank1/y.npy")),
            (std::vector<float>{10, 20}));
  EXPECT_EQ(values(readNpy(dir / "out/rank2/loss.npy")),
            (std::vector<float>{3}));
}

TEST(RankRunner, InputOfTheWrongShapeNamesTheFile) {
  TempDir dir;
  writeX(dir.path(), {1, 2, 3});
  LaunchOptions options;
  options.inputsDir = dir.path();
  try {
    runRank(options, allReduceSum(1), 0, 1, nullptr);
    FAIL() << "ran with an input of the wrong shape";
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()), "input 'x' from " + (dir / "x.npy") +
                                         " is f32[3] but the program needs "
                                         "f32[2]");
  }
}

TEST(RankRunner, MissingInputsAreSeeded) {
  auto program = allReduceSum(1);
  const BufferInfo &x = program->buffers()[program->inputs()[0].buffer];
  for (uint64_t seed : {0u, 7u}) {
    LaunchOptions options;
    options.seed = seed;
    std::vector<float> expected = seededInput(*program, x, seed).toF32();
    RankResult result = runRank(options, program, 0, 1, nullptr);
    EXPECT_FLOAT_EQ(result.scalars[0].second, expected[0] + expected[1]);
    EXPECT_EQ(result.seededInputs, std::vector<std::string>{"x"});
  }
}

TEST(RankRunner, ResultCountsStepsAndEventsAndIsReported) {
  auto program = allReduceSum(1);
  LaunchOptions options;
  options.steps = 3;
  options.tracePath = "unused.json"; // runRank records; it never writes
  int reported = 0;
  options.onRankDone = [&](const RankResult &result) {
    ++reported;
    EXPECT_EQ(result.rank, 1);
  };
  RankResult result = runRank(options, program, 1, 2, nullptr);
  EXPECT_EQ(reported, 1);
  EXPECT_EQ(result.rank, 1);
  EXPECT_EQ(result.worldSize, 2);
  EXPECT_EQ(result.steps, 3);
  EXPECT_EQ(result.events.size(), 3 * program->instructions().size());
  EXPECT_EQ(result.plannedPeakBytes, program->arenaSize());
  EXPECT_EQ(result.executedPeakBytes, program->arenaSize());
  EXPECT_FALSE(std::filesystem::exists("unused.json"));
}

} // namespace
