//===- LocalCommunicatorTest.cpp - Ranks as threads -----------------------===//

#include "loom/runtime/comm/LocalCommunicator.h"

#include "Conformance.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

using namespace loom::runtime;
using namespace loom::runtime::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

/// Runs `body(rank, report)` on `n` threads of one LocalWorld; exceptions
/// become failures. Returns the per-rank reports.
std::vector<Report>
runRanks(int n, std::chrono::milliseconds deadline,
         const std::function<void(LocalWorld &, int, Report &)> &body) {
  auto world = LocalWorld::create(n, {deadline});
  std::vector<Report> reports(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        body(*world, r, reports[r]);
      } catch (const std::exception &e) {
        reports[r].fail("rank " + std::to_string(r) + " threw: " + e.what());
      }
    });
  for (auto &t : threads)
    t.join();
  return reports;
}

void expectAllOk(const std::vector<Report> &reports) {
  for (size_t r = 0; r < reports.size(); ++r)
    EXPECT_TRUE(reports[r].ok()) << reports[r].str();
}

/// A CommError caught by one rank, with when it arrived.
struct Caught {
  bool caught = false;
  std::string what;
  double seconds = 0;
};

template <typename Fn> Caught catchCommError(Fn fn) {
  Caught c;
  auto start = Clock::now();
  try {
    fn();
  } catch (const CommError &e) {
    c.caught = true;
    c.what = e.what();
  }
  c.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return c;
}

class LocalConformance : public ::testing::TestWithParam<int> {};

} // namespace

TEST_P(LocalConformance, Collectives) {
  int n = GetParam();
  ConformanceOptions opts;
  opts.exactOrder = true;
  expectAllOk(runRanks(n, 20s, [&](LocalWorld &w, int r, Report &rep) {
    auto comm = w.communicator(r);
    EXPECT_EQ(comm->rank(), r);
    EXPECT_EQ(comm->size(), n);
    runConformance(*comm, rep, opts);
  }));
}

TEST_P(LocalConformance, SendRecv) {
  int n = GetParam();
  expectAllOk(runRanks(n, 20s, [&](LocalWorld &w, int r, Report &rep) {
    auto comm = w.communicator(r);
    runSendRecv(*comm, rep);
  }));
}

INSTANTIATE_TEST_SUITE_P(Ranks, LocalConformance,
                         ::testing::Values(1, 2, 3, 4, 5, 8));

TEST(LocalCommunicator, MeshGroups) {
  // A [2, 3] mesh: groups over each axis, both axes in both orders, none.
  std::vector<int> sizes = {2, 3};
  expectAllOk(runRanks(6, 20s, [&](LocalWorld &w, int r, Report &rep) {
    auto comms = w.provider(r);
    for (std::vector<int> axes :
         {std::vector<int>{0}, {1}, {0, 1}, {1, 0}, {}}) {
      auto comm = comms->meshGroup(sizes, axes);
      checkGroupSum(*comm, meshGroup(sizes, r, axes).members, r, rep);
    }
    // Two communicators over the same members are independent.
    auto a = comms->meshGroup(sizes, {1});
    auto b = comms->meshGroup(sizes, {1});
    checkGroupSum(*b, meshGroup(sizes, r, {1}).members, r, rep);
    checkGroupSum(*a, meshGroup(sizes, r, {1}).members, r, rep);
  }));
}

TEST(LocalCommunicator, MeshFoldedOverStage) {
  // An MoE-style [2, 2] mesh over the ranks {4, 5, 6, 7} of a world of 8.
  std::vector<int> stage = {4, 5, 6, 7};
  expectAllOk(runRanks(8, 20s, [&](LocalWorld &w, int r, Report &rep) {
    if (r < 4)
      return;
    auto comms = w.provider(r);
    auto comm = comms->meshGroup({2, 2}, {0}, stage);
    std::vector<int> members = meshGroup({2, 2}, r - 4, {0}).members;
    for (int &m : members)
      m += 4;
    checkGroupSum(*comm, members, r, rep);
  }));
}

TEST(LocalCommunicator, DeadlineNamesMissingRank) {
  // Rank 2 never calls; ranks 0 and 1 fail after about the deadline.
  std::vector<Caught> caught(3);
  runRanks(3, 300ms, [&](LocalWorld &w, int r, Report &) {
    auto comm = w.communicator(r);
    if (r == 2) {
      std::this_thread::sleep_for(2000ms);
      return;
    }
    float x = 1;
    caught[r] = catchCommError(
        [&] { comm->allReduce(&x, 1, DType::F32, ReduceOp::Sum); });
  });
  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_TRUE(caught[r].caught);
    EXPECT_NE(caught[r].what.find("allReduce"), std::string::npos)
        << caught[r].what;
    EXPECT_NE(caught[r].what.find("on rank " + std::to_string(r)),
              std::string::npos)
        << caught[r].what;
    EXPECT_NE(caught[r].what.find("never arrived: rank 2"), std::string::npos)
        << caught[r].what;
    EXPECT_GE(caught[r].seconds, 0.25);
    EXPECT_LT(caught[r].seconds, 1.9); // before rank 2 leaves
  }
}

TEST(LocalCommunicator, EarlyExitFailsPeersPromptly) {
  std::vector<Caught> caught(3);
  runRanks(3, 30s, [&](LocalWorld &w, int r, Report &) {
    auto comm = w.communicator(r);
    if (r == 2)
      return; // leaves without calling
    std::vector<float> x(8, 1);
    caught[r] = catchCommError([&] {
      comm->allReduce(x.data(), x.size(), DType::F32, ReduceOp::Sum);
    });
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(caught[r].caught) << "rank " << r;
    EXPECT_NE(caught[r].what.find("rank 2"), std::string::npos)
        << caught[r].what;
    EXPECT_LT(caught[r].seconds, 5.0);
  }
}

TEST(LocalCommunicator, ExceptionOnOneRankAbortsOthers) {
  std::vector<Caught> caught(4);
  auto reports = runRanks(4, 30s, [&](LocalWorld &w, int r, Report &) {
    auto comm = w.communicator(r);
    float x = 1;
    comm->allReduce(&x, 1, DType::F32, ReduceOp::Sum); // all healthy
    if (r == 3)
      throw std::runtime_error("kernel failed");
    caught[r] = catchCommError([&] {
      comm->barrier();
      comm->barrier();
    });
  });
  EXPECT_FALSE(reports[3].ok());
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(reports[r].ok()) << reports[r].str();
    ASSERT_TRUE(caught[r].caught) << "rank " << r;
    EXPECT_NE(caught[r].what.find("exited with an exception"),
              std::string::npos)
        << caught[r].what;
    EXPECT_LT(caught[r].seconds, 5.0);
  }
}

TEST(LocalCommunicator, ExplicitAbort) {
  std::vector<Caught> caught(3);
  runRanks(3, 30s, [&](LocalWorld &w, int r, Report &) {
    auto comm = w.communicator(r);
    if (r == 1) {
      std::this_thread::sleep_for(50ms);
      w.abort(1, "out of memory");
      return;
    }
    std::vector<char> buf(16);
    caught[r] = catchCommError([&] {
      if (r == 0)
        comm->recv(buf.data(), buf.size(), 2);
      else
        comm->allReduce(buf.data(), 4, DType::F32, ReduceOp::Max);
    });
  });
  for (int r : {0, 2}) {
    ASSERT_TRUE(caught[r].caught) << "rank " << r;
    EXPECT_NE(caught[r].what.find("out of memory"), std::string::npos)
        << caught[r].what;
  }
}

TEST(LocalCommunicator, UnmatchedSendTimesOut) {
  std::vector<Caught> caught(2);
  runRanks(2, 200ms, [&](LocalWorld &w, int r, Report &) {
    auto comm = w.communicator(r);
    int32_t v = 7;
    if (r == 0)
      caught[0] = catchCommError([&] { comm->send(&v, 4, 1); });
    else
      std::this_thread::sleep_for(600ms);
  });
  ASSERT_TRUE(caught[0].caught);
  EXPECT_NE(caught[0].what.find("send of 4 bytes to rank 1"), std::string::npos)
      << caught[0].what;
  EXPECT_NE(caught[0].what.find("never posted a matching recv"),
            std::string::npos)
      << caught[0].what;
}

TEST(LocalCommunicator, RingOutsideGroupTimesOutInsteadOfHanging) {
  // Everyone sends first outside a group: a deadlock, reported.
  std::vector<Caught> caught(3);
  runRanks(3, 200ms, [&](LocalWorld &w, int r, Report &) {
    auto comm = w.communicator(r);
    int32_t out = r, in = -1;
    caught[r] = catchCommError([&] {
      comm->send(&out, 4, (r + 1) % 3);
      comm->recv(&in, 4, (r + 2) % 3);
    });
  });
  for (int r = 0; r < 3; ++r)
    EXPECT_TRUE(caught[r].caught) << "rank " << r;
}

TEST(LocalCommunicator, MismatchedCallsAreReported) {
  std::vector<Caught> caught(2);
  runRanks(2, 5s, [&](LocalWorld &w, int r, Report &) {
    auto comm = w.communicator(r);
    std::vector<float> x(8, 1);
    caught[r] = catchCommError([&] {
      comm->allReduce(x.data(), r == 0 ? 4 : 5, DType::F32, ReduceOp::Sum);
    });
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(caught[r].caught) << "rank " << r;
    EXPECT_NE(caught[r].what.find("disagree"), std::string::npos)
        << caught[r].what;
  }
}

TEST(LocalCommunicator, SizeMismatchInSendRecv) {
  std::vector<Caught> caught(2);
  runRanks(2, 5s, [&](LocalWorld &w, int r, Report &) {
    auto comm = w.communicator(r);
    char buf[8] = {};
    caught[r] = catchCommError([&] {
      if (r == 0)
        comm->send(buf, 8, 1);
      else
        comm->recv(buf, 4, 0);
    });
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(caught[r].caught) << "rank " << r;
    EXPECT_NE(caught[r].what.find("size mismatch"), std::string::npos)
        << caught[r].what;
  }
}

TEST(LocalCommunicator, InvalidArguments) {
  auto world = LocalWorld::create(2);
  EXPECT_THROW(world->group({0, 0}, 0), std::invalid_argument);
  EXPECT_THROW(world->group({0, 2}, 0), std::invalid_argument);
  EXPECT_THROW(world->group({1}, 0), std::invalid_argument);
  EXPECT_THROW(world->provider(2), std::invalid_argument);
  EXPECT_THROW(LocalWorld::create(0), std::invalid_argument);
  auto comm = world->group({0}, 0);
  char c = 0;
  EXPECT_THROW(comm->send(&c, 1, 1), CommError);
  EXPECT_THROW(comm->groupEnd(), CommError);
  EXPECT_THROW(comm->broadcast(&c, 1, DType::I32, 3), CommError);
}
