//===- SpawnTest.cpp - Ranks as processes started here --------------------===//
//
// The spawned processes are shell scripts (spawnProcesses() takes the
// executable to run), so each test states what its ranks do.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/launch/Launcher.h"

#include "LaunchTestUtil.h"

#include <csignal>
#include <thread>

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
    // A program of one rank fits any number of ranks; the shell never
    // reads it.
    spawnProcesses(options, *allReduceSum(1), {"sh", "-c", script, arg0},
                   "/bin/sh");
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
      "$(env | grep -c '^RANK=') $LOOM_LAUNCHER_STORE $LOOM_JOB_ID "
      "$LOOM_JOB_TOKEN\" > \"$0/rank$RANK\"",
      dir.path());
  ::unsetenv("RANK");
  ::unsetenv("LOOM_TEST_INHERITED");
  EXPECT_EQ(failures, std::vector<std::string>{});
  // One job id and token for the job, each new.
  std::string identity = readFile(dir / "rank0").substr(27);
  EXPECT_EQ(identity.size(), 16 + 1 + 32 + 1u) << identity;
  for (int rank = 0; rank < 3; ++rank) {
    std::string r = std::to_string(rank);
    EXPECT_EQ(readFile(dir / ("rank" + r)),
              r + " " + r + " 3 3 127.0.0.1 kept 1 1 " + identity);
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

TEST(Spawn, AStoppedRankIsEndedAtOnceWhenAnotherFails) {
  LaunchOptions options;
  options.failureGrace = 60s; // a running rank would get this long
  auto start = std::chrono::steady_clock::now();
  std::vector<std::string> failures =
      spawnShell(options, 2,
                 "test $RANK = 1 && { sleep 0.5; exit 3; }; kill -STOP $$; "
                 "exec sleep 60");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
  EXPECT_EQ(failures,
            (std::vector<std::string>{
                "rank 0 was ended by signal 9 (Killed) while it was stopped",
                "rank 1 exited with status 3"}));
}

TEST(Spawn, AnInterruptedLauncherEndsEveryRank) {
  LaunchOptions options;
  options.nproc = 2;
  options.comm = LaunchComm::Gloo;
  std::thread interrupter([] {
    std::this_thread::sleep_for(500ms);
    ::kill(::getpid(), SIGTERM);
  });
  auto start = std::chrono::steady_clock::now();
  try {
    spawnProcesses(options, *allReduceSum(1), {"sh", "-c", "exec sleep 60"},
                   "/bin/sh");
    ADD_FAILURE() << "the ranks outlived an interrupted launcher";
  } catch (const LaunchError &e) {
    EXPECT_EQ(e.signal(), SIGTERM);
    EXPECT_EQ(e.failures(),
              (std::vector<std::string>{
                  "the launcher was interrupted by signal 15 (Terminated) "
                  "and ended every rank",
                  "rank 0 was ended by signal 9 (Killed)",
                  "rank 1 was ended by signal 9 (Killed)"}));
  }
  interrupter.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
}

TEST(Spawn, TheJobIdComesFromTheEnvironmentIfSet) {
  TempDir dir;
  ::setenv("LOOM_JOB_ID", "nightly-7", 1);
  std::vector<std::string> failures =
      spawnShell({}, 1, "echo $LOOM_JOB_ID > \"$0/id\"", dir.path());
  ::setenv("LOOM_JOB_ID", "no/slashes", 1);
  try {
    spawnShell({}, 1, "exit 0");
    ADD_FAILURE() << "spawned a job with an invalid id";
  } catch (const std::runtime_error &e) {
    EXPECT_NE(std::string(e.what()).find("LOOM_JOB_ID='no/slashes' is not a "
                                         "job id"),
              std::string::npos)
        << e.what();
  }
  ::unsetenv("LOOM_JOB_ID");
  EXPECT_EQ(failures, std::vector<std::string>{});
  EXPECT_EQ(readFile(dir / "id"), "nightly-7\n");
}

TEST(Spawn, NothingStartsForAJobThatDoesNotFit) {
  LaunchOptions options;
  options.nproc = 3;
  options.comm = LaunchComm::Gloo;
  // A marker the shell would leave if it ran.
  TempDir dir;
  std::vector<std::string> argv = {"sh", "-c", "touch \"$0/ran\"", dir.path()};
  EXPECT_THROW(spawnProcesses(options, *allReduceSum(2), argv, "/bin/sh"),
               std::runtime_error);
  options.nproc = kMaxLocalRanks + 1;
  EXPECT_THROW(spawnProcesses(options, *allReduceSum(1), argv, "/bin/sh"),
               std::invalid_argument);
  options.nproc = 1;
  options.inputsDir = dir / "missing";
  EXPECT_THROW(spawnProcesses(options, *allReduceSum(1), argv, "/bin/sh"),
               std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(dir / "ran"));
}

TEST(Spawn, ARankThatCannotStartIsNamed) {
  LaunchOptions options;
  options.nproc = 1;
  try {
    spawnProcesses(options, *allReduceSum(1), {"missing"},
                   "/nonexistent/loom-missing");
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
                       "mkdir -p \"$0.parts.$LOOM_JOB_ID\"; printf "
                       "'{\"rank\":%s}' $RANK > "
                       "\"$0.parts.$LOOM_JOB_ID/rank$RANK\"",
                       options.tracePath),
            std::vector<std::string>{});
  EXPECT_EQ(readFile(options.tracePath),
            "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n"
            "{\"rank\":0},\n{\"rank\":1}\n]}\n");
}

} // namespace
