//===- SpawnTest.cpp - Ranks as processes started here --------------------===//
//
// The spawned processes are shell scripts (spawnProcesses() takes the
// executable to run), so each test states what its ranks do.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/launch/Launcher.h"

#include "LaunchTestUtil.h"

using namespace loom::runtime;
using namespace loom::test;
using namespace std::chrono_literals;

namespace {

/// Spawns `nproc` copies of `sh -c SCRIPT ARG0` and returns the failures.
std::vector<std::string> spawnShell(LaunchOptions options, int nproc,
                                    const std::string &script,
                                    const std::string &arg0 = "sh",
                                    bool *timedOut = nullptr) {
  options.nproc = nproc;
  options.comm = LaunchComm::Gloo;
  try {
    spawnProcesses(options, {"sh", "-c", script, arg0}, "/bin/sh");
  } catch (const LaunchError &e) {
    if (timedOut)
      *timedOut = e.timedOut();
    return e.failures();
  }
  return {};
}

TEST(Spawn, RanksSeeATorchrunEnvironment) {
  TempDir dir;
  ::setenv("LOOM_TEST_INHERITED", "kept", 1);
  ::setenv("RANK", "7", 1); // replaced in the children, not duplicated
  std::vector<std::string> failures = spawnShell(
      {}, 3,
      "test -n \"$MASTER_PORT\" || exit 9; echo \"$RANK $LOCAL_RANK "
      "$WORLD_SIZE $LOCAL_WORLD_SIZE $MASTER_ADDR $LOOM_TEST_INHERITED "
      "$(env | grep -c '^RANK=')\" > \"$0/rank$RANK\"",
      dir.path());
  ::unsetenv("RANK");
  ::unsetenv("LOOM_TEST_INHERITED");
  EXPECT_EQ(failures, std::vector<std::string>{});
  for (int rank = 0; rank < 3; ++rank) {
    std::string r = std::to_string(rank);
    EXPECT_EQ(readFile(dir / ("rank" + r)),
              r + " " + r + " 3 3 127.0.0.1 kept 1\n");
  }
}

TEST(Spawn, EveryFailedRankIsNamed) {
  LaunchOptions options;
  options.failureGrace = 10s; // rank 2 exits on its own
  EXPECT_EQ(spawnShell(options, 3, "exit $RANK"),
            (std::vector<std::string>{"rank 1 exited with status 1",
                                      "rank 2 exited with status 2"}));
}

TEST(Spawn, AFailureEndsTheOthersAfterTheGrace) {
  LaunchOptions options;
  options.failureGrace = 100ms;
  auto start = std::chrono::steady_clock::now();
  bool timedOut = true;
  std::vector<std::string> failures = spawnShell(
      options, 2, "test $RANK = 0 && exit 3; exec sleep 60", "sh", &timedOut);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
  EXPECT_FALSE(timedOut);
  EXPECT_EQ(failures, (std::vector<std::string>{
                          "rank 0 exited with status 3",
                          "rank 1 was ended by signal 9 (Killed)"}));
}

TEST(Spawn, TheTimeoutEndsAllRanks) {
  LaunchOptions options;
  options.timeout = 1s;
  bool timedOut = false;
  std::vector<std::string> failures =
      spawnShell(options, 2, "exec sleep 60", "sh", &timedOut);
  EXPECT_TRUE(timedOut);
  EXPECT_EQ(failures, (std::vector<std::string>{
                          "rank 0 was ended by signal 9 (Killed)",
                          "rank 1 was ended by signal 9 (Killed)"}));
}

TEST(Spawn, ARankThatCannotStartIsNamed) {
  LaunchOptions options;
  options.nproc = 1;
  try {
    spawnProcesses(options, {"missing"}, "/nonexistent/loom-missing");
    FAIL() << "spawned a missing executable";
  } catch (const LaunchError &e) {
    EXPECT_EQ(e.failures(),
              std::vector<std::string>{"rank 0 exited with status 127"});
  }
}

TEST(Spawn, TracePartsAreMerged) {
  TempDir dir;
  LaunchOptions options;
  options.tracePath = dir / "trace.json";
  EXPECT_EQ(spawnShell(options, 2,
                       "printf '{\"rank\":%s}' $RANK > \"$0.rank$RANK\"",
                       options.tracePath),
            std::vector<std::string>{});
  EXPECT_EQ(readFile(options.tracePath),
            "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n"
            "{\"rank\":0},\n{\"rank\":1}\n]}\n");
}

} // namespace
