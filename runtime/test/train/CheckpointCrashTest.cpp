//===- CheckpointCrashTest.cpp - Saves that crash -------------------------===//
//
// A save that ends at any point must leave the last complete checkpoint or
// the new one loadable, never neither. Two tests:
//
//   - a child process ends itself at each point of a save in turn (through
//     checkpointSaveProbe), when saving a new iteration and when replacing
//     an existing one: every point, deterministically;
//   - a child process saves in a loop and is killed with SIGKILL at random
//     moments: whatever happens between the points, e.g. inside a write.
//     This child is the test binary run again with the test SaverChild
//     selected.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/train/Checkpoint.h"

#include "TrainTestUtil.h"

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <random>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char **environ;

using namespace loom::runtime;
using namespace loom::test;

namespace {

constexpr const char *kDirVariable = "LOOM_TRAIN_TEST_SAVER_DIR";

/// Checkpoint `step`: tensors large enough that a save takes a while, each
/// value a function of the step and the tensor.
Checkpoint checkpointOf(int64_t step) {
  Checkpoint c;
  c.step = step;
  c.dataPosition = step * 3;
  c.model = "crash";
  c.programId = "p";
  for (int t = 0; t < 4; ++t) {
    HostTensor x(DType::F32, {64, 256});
    for (int64_t i = 0; i < x.numel(); ++i)
      x.as<float>()[i] = float(step * 10 + t);
    c.tensors["t" + std::to_string(t)] = std::move(x);
  }
  return c;
}

/// Checks that `c` is exactly checkpointOf(c.step).
void expectConsistent(const Checkpoint &c) {
  ASSERT_EQ(c.dataPosition, c.step * 3);
  ASSERT_EQ(c.tensors.size(), 4u);
  for (int t = 0; t < 4; ++t) {
    const HostTensor &x = c.tensors.at("t" + std::to_string(t));
    ASSERT_EQ(x.numel(), 64 * 256);
    for (int64_t i = 0; i < x.numel(); ++i)
      ASSERT_EQ(x.as<float>()[i], float(c.step * 10 + t)) << "step " << c.step;
  }
}

/// The child: from the latest checkpoint on, saves each next step twice
/// (the second save replaces an existing iteration) until it is killed.
TEST(CheckpointCrash, SaverChild) {
  const char *dir = std::getenv(kDirVariable);
  if (!dir)
    GTEST_SKIP()
        << "run by CheckpointCrash.KilledSavesLeaveALoadableCheckpoint";
  int64_t step = latestCheckpointStep(dir).value_or(0);
  for (int64_t i = 0;; ++i)
    saveCheckpoint(dir, checkpointOf(step + 1 + i / 2));
}

pid_t spawnSaver(const std::string &dir) {
  std::vector<std::string> env = {std::string(kDirVariable) + "=" + dir};
  for (char **e = environ; *e; ++e)
    env.push_back(*e);
  std::vector<char *> envp;
  for (std::string &e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string filter = "--gtest_filter=CheckpointCrash.SaverChild";
  char *argv[] = {exe.data(), filter.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << std::strerror(rc);
  return pid;
}

/// Checkpoint `step` whose values also depend on `version`: a replaced
/// iteration is told apart from its replacement.
Checkpoint versionOf(int64_t step, int version) {
  Checkpoint c = checkpointOf(step);
  c.seed = uint64_t(version);
  for (auto &[name, t] : c.tensors)
    t.as<float>()[0] = float(version);
  return c;
}

/// Whether `c` is exactly versionOf(step, version).
bool sameAs(const Checkpoint &c, int64_t step, int version) {
  Checkpoint want = versionOf(step, version);
  if (c.step != want.step || c.seed != want.seed ||
      c.dataPosition != want.dataPosition ||
      c.tensors.size() != want.tensors.size())
    return false;
  for (const auto &[name, t] : want.tensors)
    if (!c.tensors.count(name) || c.tensors.at(name).bytes != t.bytes)
      return false;
  return true;
}

/// The points of the save the child passes before it ends (the probe is a
/// plain function pointer, so this is a global).
int pointsLeft = 0;

TEST(CheckpointCrash, EveryPointOfASaveLeavesALoadableCheckpoint) {
  // Save step 2 over step 1; re-save step 1 (latest) over itself.
  for (bool replace : {false, true}) {
    int64_t newStep = replace ? 1 : 2;
    int points = 0;
    for (int crashPoint = 1;; ++crashPoint) {
      TempDir dir;
      saveCheckpoint(dir.path(), versionOf(1, 0));
      pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        // The child ends at the crashPoint-th point, as if killed there.
        pointsLeft = crashPoint;
        checkpointSaveProbe = [](const char *) {
          if (--pointsLeft == 0)
            ::_exit(0);
        };
        saveCheckpoint(dir.path(), versionOf(newStep, 1));
        ::_exit(3); // the save had fewer points
      }
      int status = 0;
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
      ASSERT_TRUE(WIFEXITED(status));
      if (WEXITSTATUS(status) == 3)
        break;
      ASSERT_EQ(WEXITSTATUS(status), 0);
      ++points;
      Checkpoint c;
      std::string error = errorOf([&] { c = loadCheckpoint(dir.path()); });
      ASSERT_EQ(error, "") << "replace " << replace << ", point " << crashPoint;
      EXPECT_TRUE(sameAs(c, 1, 0) || sameAs(c, newStep, 1))
          << "replace " << replace << ", point " << crashPoint << ": step "
          << c.step << " seed " << c.seed;
      // The next save clears what the crash left.
      saveCheckpoint(dir.path(), versionOf(3, 2));
      EXPECT_TRUE(sameAs(loadCheckpoint(dir.path()), 3, 2));
      int entries = 0;
      for (const auto &e : std::filesystem::directory_iterator(dir.path()))
        entries += e.path().filename().string()[0] == '.';
      EXPECT_EQ(entries, 0) << "point " << crashPoint;
    }
    // 4 tensors + staging, metadata, flush, move, flush, latest; and the
    // exchange when replacing.
    EXPECT_EQ(points, replace ? 11 : 10);
  }
}

TEST(CheckpointCrash, KilledSavesLeaveALoadableCheckpoint) {
  TempDir dir;
  std::string ckpt = dir / "ckpt";
  saveCheckpoint(ckpt, checkpointOf(0));
  // Fixed seed: the same delays every run. The kills land at whatever the
  // child is doing then: starting, writing tensors, renaming, or replacing
  // the latest file.
  std::mt19937 random(1234);
  std::uniform_int_distribution<int> delayMs(5, 80);
  int64_t last = 0;
  int progressed = 0;
  for (int round = 0; round < 20; ++round) {
    pid_t pid = spawnSaver(ckpt);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(delayMs(random)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    // It was killed, not ended by a failed save.
    ASSERT_TRUE(WIFSIGNALED(status))
        << "round " << round << ": status " << status;
    Checkpoint c;
    std::string error = errorOf([&] { c = loadCheckpoint(ckpt); });
    ASSERT_EQ(error, "") << "round " << round;
    expectConsistent(c);
    ASSERT_GE(c.step, last) << "round " << round;
    progressed += c.step > last;
    last = c.step;
  }
  // The kills did not all come before the first save finished.
  EXPECT_GT(progressed, 0);
  // Leftovers of the last kill are removed by the next save.
  saveCheckpoint(ckpt, checkpointOf(last + 1));
  int entries = 0;
  for (const auto &e : std::filesystem::directory_iterator(ckpt))
    entries += e.path().filename().string().rfind(".staging.", 0) == 0;
  EXPECT_EQ(entries, 0);
}

} // namespace
