//===- LauncherTest.cpp - Ranks as threads, or this process's rank --------===//

#include "loom/runtime/launch/Launcher.h"
#include "loom/runtime/launch/Trace.h"

#include "LaunchTestUtil.h"

using namespace loom::runtime;
using namespace loom::test;
using namespace std::chrono_literals;

namespace {

TEST(Launcher, ThreadsRunEveryRankOfTheMesh) {
  TempDir dir;
  writeX(dir / "in/rank0", {1, 2});
  writeX(dir / "in/rank1", {10, 20});
  LaunchOptions options;
  options.nproc = 2;
  options.inputsDir = dir / "in";
  options.tracePath = dir / "trace.json";
  std::vector<RankResult> results = runLocalThreads(options, allReduceSum(2));
  ASSERT_EQ(results.size(), 2u);
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(results[rank].rank, rank);
    EXPECT_EQ(results[rank].worldSize, 2);
    EXPECT_EQ(results[rank].scalars[0].second, 33.0f);
  }
  EXPECT_EQ(readFile(options.tracePath), renderTrace(results, true));
}

TEST(Launcher, ThreadsReportEveryFailedRank) {
  TempDir dir;
  writeX(dir / "in/rank0", {1, 2});
  writeX(dir / "in/rank1", {1, 2, 3});
  LaunchOptions options;
  options.nproc = 2;
  options.inputsDir = dir / "in";
  options.outputsDir = dir / "out";
  options.deadline = 10s;
  options.tracePath = dir / "trace.json";
  try {
    runLocalThreads(options, allReduceSum(2));
    FAIL() << "a job with a failed rank succeeded";
  } catch (const LaunchError &e) {
    ASSERT_EQ(e.failures().size(), 2u) << e.what();
    // Rank 0 waited in the all-reduce for rank 1, which never came.
    EXPECT_EQ(e.failures()[0].rfind("rank 0: ", 0), 0u) << e.what();
    EXPECT_NE(e.failures()[0].find("rank 1 failed"), std::string::npos)
        << e.what();
    EXPECT_EQ(e.failures()[1].rfind("rank 1: input 'x' from ", 0), 0u)
        << e.what();
    EXPECT_FALSE(e.timedOut());
  }
  // Rank 0 finished its steps, but a failed job writes nothing at all.
  EXPECT_FALSE(std::filesystem::exists(options.tracePath));
  EXPECT_FALSE(std::filesystem::exists(options.outputsDir));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1); // in/
}

TEST(Launcher, NoStepRunsForAJobThatCannotWriteItsOutputs) {
  TempDir dir;
  LaunchOptions options;
  options.nproc = 2;
  options.outputsDir = dir / "missing/out";
  bool ran = false;
  options.onRankDone = [&](const RankResult &) { ran = true; };
  EXPECT_THROW(runLocalThreads(options, allReduceSum(2)), std::runtime_error);
  options.nproc = 0;
  EXPECT_THROW(runHere(options, allReduceSum(1)), std::runtime_error);
  EXPECT_FALSE(ran);
}

TEST(Launcher, WithoutALaunchOneRankRuns) {
  if (launchEnvironmentPresent() || isSpawnedRank())
    GTEST_SKIP() << "the test itself runs under a launcher";
  TempDir dir;
  LaunchOptions options;
  options.tracePath = dir / "trace.json";
  std::vector<RankResult> results = runHere(options, allReduceSum(1));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].worldSize, 1);
  EXPECT_EQ(readFile(options.tracePath), renderTrace(results, true));
  // A mesh of two ranks does not fit on one.
  EXPECT_THROW(runHere(options, allReduceSum(2)), std::runtime_error);
}

TEST(Launcher, ProcessesAreSpawnedNotRunHere) {
  if (isSpawnedRank())
    GTEST_SKIP() << "the test itself is a spawned rank";
  LaunchOptions options;
  options.nproc = 2;
  options.comm = LaunchComm::Gloo;
  EXPECT_TRUE(needsSpawn(options));
  EXPECT_THROW(runHere(options, allReduceSum(2)), std::invalid_argument);
  options.comm = LaunchComm::Local;
  EXPECT_FALSE(needsSpawn(options));
}

#ifdef LOOM_HAVE_GLOO
LaunchInfo soloLaunch() {
  LaunchInfo launch;
  launch.launcher = "torchrun";
  launch.rank = 0;
  launch.worldSize = 1;
  launch.masterAddr = "127.0.0.1";
  launch.masterPort = pickFreePort();
  return launch;
}

TEST(Launcher, GlooRankWritesItsTracePart) {
  TempDir dir;
  LaunchOptions options;
  options.deadline = 10s;
  options.tracePath = dir / "trace.json";
  RankResult result = runGlooRank(options, allReduceSum(1), soloLaunch());
  EXPECT_EQ(readFile(options.tracePath + ".parts/rank0"),
            renderTrace({result}, /*complete=*/false));
  EXPECT_FALSE(std::filesystem::exists(options.tracePath));
}

TEST(Launcher, GlooRankErrorsNameTheRank) {
  LaunchOptions options;
  options.deadline = 10s;
  try {
    runGlooRank(options, allReduceSum(2), soloLaunch());
    FAIL() << "a 2-rank mesh ran on a 1-rank job";
  } catch (const LaunchError &e) {
    ASSERT_EQ(e.failures().size(), 1u);
    EXPECT_EQ(e.failures()[0], "rank 0: the program's mesh [tp=2] has 2 "
                               "ranks but the job has 1");
  }
}
#endif

} // namespace
