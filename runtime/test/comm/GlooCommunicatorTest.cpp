//===- GlooCommunicatorTest.cpp - Ranks as processes over loopback --------===//
//
// Every test forks its ranks: each child builds its own Gloo transport and
// meets the others through a file store in a fresh directory (or a TCP store
// served by rank 0).
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/comm/GlooCommunicator.h"

#include "Conformance.h"
#include "Processes.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

using namespace loom::runtime;
using namespace loom::runtime::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

GlooOptions fileOptions(const std::string &dir, int rank, int size,
                        std::chrono::milliseconds deadline) {
  GlooOptions o;
  o.rank = rank;
  o.size = size;
  o.store = makeFileStore(dir);
  o.hostname = "127.0.0.1";
  o.deadline = deadline;
  o.reportGrace = std::min<std::chrono::milliseconds>(deadline / 2, 1000ms);
  return o;
}

void expectAllOk(const std::vector<ProcessResult> &results) {
  for (size_t r = 0; r < results.size(); ++r) {
    EXPECT_EQ(results[r].status, 0) << "rank " << r;
    EXPECT_EQ(results[r].report, "") << "rank " << r;
  }
}

/// Checks, inside a child, that `fn` throws a CommError containing every
/// one of `needles` within [minSeconds, maxSeconds].
template <typename Fn>
void expectCommError(Report &rep, int rank, Fn fn,
                     const std::vector<std::string> &needles, double minSeconds,
                     double maxSeconds) {
  auto start = Clock::now();
  std::string what;
  try {
    fn();
    rep.fail("rank " + std::to_string(rank) + ": no CommError");
    return;
  } catch (const CommError &e) {
    what = e.what();
  }
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (std::getenv("LOOM_TEST_VERBOSE"))
    std::fprintf(stderr, "rank %d after %.2f s: %s\n", rank, s, what.c_str());
  for (const auto &n : needles)
    if (what.find(n) == std::string::npos)
      rep.fail("rank " + std::to_string(rank) + ": '" + n +
               "' missing from: " + what);
  if (s < minSeconds || s > maxSeconds)
    rep.fail("rank " + std::to_string(rank) + ": CommError after " +
             std::to_string(s) + " s, expected [" + std::to_string(minSeconds) +
             ", " + std::to_string(maxSeconds) + "]: " + what);
}

class GlooConformance : public ::testing::TestWithParam<int> {};

} // namespace

TEST_P(GlooConformance, CollectivesAndSendRecv) {
  int n = GetParam();
  TempDir dir;
  expectAllOk(runProcesses(n, [&](int r, Report &rep) {
    auto comms = createGlooCommunicators(fileOptions(dir.path(), r, n, 20s));
    auto comm = comms->world();
    if (comm->rank() != r || comm->size() != n)
      rep.fail("world communicator has rank " + std::to_string(comm->rank()) +
               " of " + std::to_string(comm->size()));
    runConformance(*comm, rep);
    runSendRecv(*comm, rep);
  }));
}

INSTANTIATE_TEST_SUITE_P(Ranks, GlooConformance,
                         ::testing::Values(1, 2, 3, 4, 5, 8));

TEST(GlooCommunicator, MeshGroups) {
  std::vector<int> sizes = {2, 3};
  TempDir dir;
  expectAllOk(runProcesses(6, [&](int r, Report &rep) {
    auto comms = createGlooCommunicators(fileOptions(dir.path(), r, 6, 20s));
    for (std::vector<int> axes : {std::vector<int>{0}, {1}, {1, 0}, {}}) {
      auto comm = comms->meshGroup(sizes, axes);
      checkGroupSum(*comm, meshGroup(sizes, r, axes).members, r, rep);
    }
    // Two communicators over the same ranks are independent.
    auto a = comms->meshGroup(sizes, {1});
    auto b = comms->meshGroup(sizes, {1});
    checkGroupSum(*b, meshGroup(sizes, r, {1}).members, r, rep);
    checkGroupSum(*a, meshGroup(sizes, r, {1}).members, r, rep);
  }));
}

TEST(GlooCommunicator, GroupsMayBeCreatedInAnyOrder) {
  // Created in a cyclic order (eager connection would deadlock: 0 waits for
  // 1 on A, 1 for 2 on C, 2 for 0 on B), used in a consistent one.
  const std::vector<int> A = {0, 1}, B = {0, 2}, C = {1, 2};
  TempDir dir;
  expectAllOk(runProcesses(
      3,
      [&](int r, Report &rep) {
        auto comms =
            createGlooCommunicators(fileOptions(dir.path(), r, 3, 10s));
        std::map<std::string, std::unique_ptr<Communicator>> g;
        const char *order[3][2] = {{"A", "B"}, {"C", "A"}, {"B", "C"}};
        const std::map<std::string, std::vector<int>> members = {
            {"A", A}, {"B", B}, {"C", C}};
        for (const char *name : order[r])
          g[name] = comms->group(members.at(name));
        const char *use[3][2] = {{"A", "B"}, {"A", "C"}, {"B", "C"}};
        for (const char *name : use[r])
          checkGroupSum(*g[name], members.at(name), r, rep);
      },
      30s));
}

TEST(GlooCommunicator, DeadlineNamesMissingRank) {
  // Rank 2 is connected but never calls; the others fail after about the
  // deadline and name it.
  TempDir dir;
  expectAllOk(runProcesses(
      3,
      [&](int r, Report &rep) {
        auto comms =
            createGlooCommunicators(fileOptions(dir.path(), r, 3, 1000ms));
        auto comm = comms->world();
        comm->barrier(); // connected
        if (r == 2) {
          std::this_thread::sleep_for(3500ms);
          return;
        }
        std::vector<float> x(64, 1.0f);
        expectCommError(
            rep, r,
            [&] {
              comm->allReduce(x.data(), x.size(), DType::F32, ReduceOp::Sum);
            },
            {"allReduce", "on rank " + std::to_string(r),
             "no failure report): rank 2"},
            0.0, 3.4);
      },
      30s));
}

TEST(GlooCommunicator, EarlyExitFailsPeersPromptly) {
  TempDir dir;
  expectAllOk(runProcesses(
      3,
      [&](int r, Report &rep) {
        auto comms =
            createGlooCommunicators(fileOptions(dir.path(), r, 3, 20s));
        auto comm = comms->world();
        // Everyone is connected and through one collective; then rank 2 leaves
        // without a word.
        comm->barrier();
        if (r == 2)
          ::_exit(0);
        std::vector<float> x(64, 1.0f);
        expectCommError(
            rep, r,
            [&] {
              comm->allReduce(x.data(), x.size(), DType::F32, ReduceOp::Sum);
              comm->allReduce(x.data(), x.size(), DType::F32, ReduceOp::Sum);
            },
            {"allReduce", "rank 2"}, 0.0, 5.0);
      },
      30s));
}

TEST(GlooCommunicator, SendToDeadPeerNamesPeer) {
  TempDir dir;
  expectAllOk(runProcesses(
      2,
      [&](int r, Report &rep) {
        auto comms =
            createGlooCommunicators(fileOptions(dir.path(), r, 2, 1000ms));
        auto comm = comms->world();
        comm->barrier(); // connected
        if (r == 1) {
          std::this_thread::sleep_for(3000ms);
          return;
        }
        int32_t v = 1;
        expectCommError(
            rep, r, [&] { comm->send(&v, 4, 1); },
            {"send", "peer rank 1 (world 1)"}, 0.5, 2.9);
      },
      30s));
}

TEST(GlooCommunicator, ConnectDeadlineNamesMissingRank) {
  TempDir dir;
  expectAllOk(runProcesses(
      3,
      [&](int r, Report &rep) {
        auto comms =
            createGlooCommunicators(fileOptions(dir.path(), r, 3, 1000ms));
        if (r == 2) {
          std::this_thread::sleep_for(3000ms);
          return;
        }
        // Creating the communicator does not block; its first use connects.
        auto world = comms->world();
        expectCommError(
            rep, r, [&] { world->barrier(); },
            {"connecting", "never arrived", "rank 2 (world 2)"}, 0.5, 2.9);
        // The communicator stays failed.
        expectCommError(
            rep, r, [&] { world->barrier(); }, {"failed earlier"}, 0.0, 0.5);
      },
      30s));
}

TEST(GlooCommunicator, TorchrunStyleLaunch) {
  // RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; rank 0 serves the store.
  int port = pickFreePort();
  expectAllOk(runProcesses(3, [&](int r, Report &rep) {
    ::setenv("RANK", std::to_string(r).c_str(), 1);
    ::setenv("WORLD_SIZE", "3", 1);
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    auto comms = createGlooCommunicators(glooOptionsFromEnvironment(20s));
    if (comms->worldRank() != r || comms->worldSize() != 3)
      rep.fail("wrong rank/size from the environment");
    auto world = comms->world();
    checkGroupSum(*world, {0, 1, 2}, r, rep);
    auto pair =
        comms->group(r < 2 ? std::vector<int>{1, 0} : std::vector<int>{2});
    checkGroupSum(*pair, r < 2 ? std::vector<int>{1, 0} : std::vector<int>{2},
                  r, rep);
    world->barrier(); // rank 0 keeps serving until everyone is done
  }));
}

TEST(GlooCommunicator, InvalidOptions) {
  GlooOptions o;
  EXPECT_THROW(createGlooCommunicators(o), CommError);
  TempDir dir;
  o = fileOptions(dir.path(), 0, 1, 1000ms);
  auto comms = createGlooCommunicators(o);
  EXPECT_THROW(comms->group({1}), std::invalid_argument);
  EXPECT_THROW(comms->group({0, 0}), std::invalid_argument);
  auto self = comms->world();
  int32_t a = 5, b = 0;
  self->groupStart();
  self->send(&a, 4, 0);
  self->recv(&b, 4, 0);
  self->groupEnd();
  EXPECT_EQ(b, 5);
  EXPECT_THROW(self->send(&a, 4, 0), CommError);
  EXPECT_THROW(self->recv(&b, 4, 3), CommError);
}
