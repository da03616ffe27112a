//===- JoinJobTest.cpp - Ranks of a job find each other -------------------===//
//
// Ranks are threads, each with its own client of one TCP store: joinJob
// only talks to the store.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/comm/JoinJob.h"

#include "loom/runtime/Communicator.h"

#include <gtest/gtest.h>

#include <thread>

using namespace loom::runtime;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

/// Joins every member at once through `port`; returns each one's error.
std::vector<std::string> joinAll(int port, const std::vector<JobMember> &ms,
                                 std::chrono::milliseconds deadline = 5000ms) {
  std::vector<std::string> errors(ms.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ms.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        auto store = makeTcpStore("127.0.0.1", port, 5000ms);
        joinJob(*store, "loom/job", ms[i], deadline);
      } catch (const std::exception &e) {
        errors[i] = e.what();
      }
    });
  for (std::thread &t : threads)
    t.join();
  return errors;
}

JobMember member(int rank, int world, uint64_t program = 0xabc) {
  return {rank, world, program, "job 'j'"};
}

bool has(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

TEST(JoinJob, RanksOfOneProgramJoin) {
  TcpStoreServer server(0);
  EXPECT_EQ(joinAll(server.port(), {member(0, 3), member(1, 3), member(2, 3)}),
            (std::vector<std::string>{"", "", ""}));
}

TEST(JoinJob, ARankOfAnotherProgramIsNamed) {
  TcpStoreServer server(0);
  auto errors =
      joinAll(server.port(), {member(0, 2), member(1, 2, /*program=*/0xdef)});
  EXPECT_TRUE(has(errors[0], "world rank 1 (pid ")) << errors[0];
  EXPECT_TRUE(has(errors[0], "runs another program (hash 0000000000000def) "
                             "than this rank (hash 0000000000000abc); every "
                             "rank of job 'j' must run the same program"))
      << errors[0];
  EXPECT_TRUE(has(errors[1], "world rank 0 (pid ")) << errors[1];
}

TEST(JoinJob, ARankOfAnotherWorldSizeFailsAtOnce) {
  TcpStoreServer server(0);
  auto start = Clock::now();
  // Rank 2 thinks the world has 3 ranks; the job has 2.
  auto errors = joinAll(server.port(), {member(0, 2), member(1, 2)});
  EXPECT_EQ(errors, (std::vector<std::string>{"", ""}));
  errors = joinAll(server.port(), {member(2, 3)});
  EXPECT_TRUE(has(errors[0], "world rank 0 (pid ")) << errors[0];
  EXPECT_TRUE(has(errors[0], "joined a world of 2 ranks, this rank a world "
                             "of 3"))
      << errors[0];
  EXPECT_LT(Clock::now() - start, 3s);
}

TEST(JoinJob, TwoProcessesCannotHoldOneRank) {
  TcpStoreServer server(0);
  EXPECT_EQ(joinAll(server.port(), {member(0, 2), member(1, 2)}),
            (std::vector<std::string>{"", ""}));
  // Another job with the same id and address claims rank 1 again.
  auto errors = joinAll(server.port(), {member(1, 2)});
  EXPECT_TRUE(has(errors[0], "world rank 1 of job 'j' is already taken by "
                             "pid "))
      << errors[0];
  EXPECT_TRUE(has(errors[0], "give each job its own LOOM_JOB_ID or "
                             "MASTER_PORT"))
      << errors[0];
}

TEST(JoinJob, AJobThatAnotherJobRanIntoWritesNothing) {
  TcpStoreServer server(0);
  auto store = makeTcpStore("127.0.0.1", server.port(), 5000ms);
  EXPECT_EQ(joinAll(server.port(), {member(0, 2), member(1, 2)}),
            (std::vector<std::string>{"", ""}));
  EXPECT_NO_THROW(checkJobAlone(*store, "loom/job", member(0, 2), 1000ms));
  // A rank of another job without a job id is refused rank 1...
  joinAll(server.port(), {member(1, 2)});
  // ... and the job that holds it learns that its ranks may be mixed.
  try {
    checkJobAlone(*store, "loom/job", member(0, 2), 1000ms);
    FAIL() << "a job shared with another one went on";
  } catch (const CommError &e) {
    EXPECT_TRUE(has(e.what(), "claimed it as well: two jobs share"))
        << e.what();
    EXPECT_TRUE(has(e.what(), "its outputs are not written")) << e.what();
  }
}

TEST(JoinJob, RanksThatNeverComeAreNamedAtTheDeadline) {
  TcpStoreServer server(0);
  auto start = Clock::now();
  auto errors = joinAll(server.port(), {member(0, 4), member(2, 4)}, 400ms);
  for (const std::string &error : errors)
    EXPECT_TRUE(has(error, "world ranks 1, 3 of job 'j' never joined within "
                           "400 ms"))
        << error;
  EXPECT_LT(Clock::now() - start, 3s);
}

} // namespace
