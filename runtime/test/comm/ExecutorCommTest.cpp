//===- ExecutorCommTest.cpp - The executor on the real communicators ------===//
//
// Programs with collectives run by the runtime's Executor on every rank of
// their mesh, with the local communicator (threads) and the Gloo
// communicator (forked processes), through executorCommunicators().
// Expected values are computed here from the collective's definition.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Mesh.h"
#include "loom/runtime/comm/ExecutorComms.h"
#include "loom/runtime/comm/LocalCommunicator.h"
#ifdef LOOM_HAVE_GLOO
#include "loom/runtime/comm/GlooCommunicator.h"
#endif

#include "Conformance.h"
#include "Processes.h"
#include "ProgramBuilder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <thread>

using namespace loom::runtime;
using namespace loom::runtime::test;
using namespace loom::test;
using namespace std::chrono_literals;

namespace {

/// x_r[i] = 100 r + i.
HostTensor rankTensor(std::vector<int64_t> shape, int r) {
  HostTensor t(DType::F32, shape);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.as<float>()[i] = static_cast<float>(100 * r + i);
  return t;
}

using Expect = std::function<std::vector<double>(int rank)>;

/// Compares a rank's output with the expectation; returns "" or a message.
std::string compare(const HostTensor &got, const std::vector<double> &want,
                    int rank) {
  std::vector<float> g = got.toF32();
  if (g.size() != want.size())
    return "rank " + std::to_string(rank) + ": " + std::to_string(g.size()) +
           " elements, expected " + std::to_string(want.size());
  for (size_t i = 0; i < g.size(); ++i)
    if (std::fabs(g[i] - want[i]) > 1e-5 * (1 + std::fabs(want[i])))
      return "rank " + std::to_string(rank) + " element " + std::to_string(i) +
             ": " + std::to_string(g[i]) + ", expected " +
             std::to_string(want[i]);
  return "";
}

/// One rank: executor over `comms`, input x = rankTensor, output y checked.
void runRank(const std::vector<uint8_t> &bytes, std::vector<int64_t> xShape,
             std::shared_ptr<CommunicatorProvider> comms, int r,
             const Expect &expect, Report &rep) {
  auto prog = Program::load(bytes.data(), bytes.size());
  ExecutorOptions o;
  o.rank = r;
  o.communicators = executorCommunicators(std::move(comms));
  Executor exec(prog, o);
  exec.setInput("x", rankTensor(xShape, r));
  exec.run();
  std::string err = compare(exec.getOutput("y"), expect(r), r);
  if (!err.empty())
    rep.fail(err);
}

void onThreads(const ProgramBuilder &b, std::vector<int64_t> xShape,
               const Expect &expect) {
  std::vector<uint8_t> bytes = b.finish();
  auto prog = Program::load(bytes.data(), bytes.size());
  int n = static_cast<int>(prog->mesh().size());
  auto world = LocalWorld::create(n, {20s});
  std::vector<Report> reports(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        runRank(bytes, xShape, world->provider(r), r, expect, reports[r]);
      } catch (const std::exception &e) {
        reports[r].fail("rank " + std::to_string(r) + " threw: " + e.what());
      }
    });
  for (auto &t : threads)
    t.join();
  for (int r = 0; r < n; ++r)
    EXPECT_TRUE(reports[r].ok()) << reports[r].str();
}

#ifdef LOOM_HAVE_GLOO
void onProcesses(const ProgramBuilder &b, std::vector<int64_t> xShape,
                 const Expect &expect) {
  std::vector<uint8_t> bytes = b.finish();
  int n = static_cast<int>(
      Program::load(bytes.data(), bytes.size())->mesh().size());
  TempDir dir;
  auto results = runProcesses(n, [&](int r, Report &rep) {
    GlooOptions o;
    o.rank = r;
    o.size = n;
    o.store = makeFileStore(dir.path());
    o.hostname = "127.0.0.1";
    o.deadline = 20s;
    runRank(bytes, xShape, createGlooCommunicators(o), r, expect, rep);
  });
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(results[r].status, 0) << "rank " << r;
    EXPECT_EQ(results[r].report, "") << "rank " << r;
  }
}
#endif

ProgramBuilder oneCollective(std::vector<std::pair<std::string, int64_t>> mesh,
                             std::vector<std::string> axes, Opcode op,
                             std::vector<int64_t> xs, std::vector<int64_t> ys,
                             std::vector<TAttr> attrs) {
  ProgramBuilder b("coll");
  b.mesh = std::move(mesh);
  int32_t c = b.comm(std::move(axes));
  uint32_t x = b.input("x", DType::F32, xs);
  uint32_t y = b.output("y", DType::F32, ys);
  b.op(op, {x}, {y}, std::move(attrs), c);
  return b;
}

/// Mean all-reduce over `axis` of mesh [dp=2, tp=2] (rank = 2 dp + tp).
Expect allReduceMean(const std::string &axis) {
  return [axis](int r) {
    int peer = axis == "tp" ? r ^ 1 : r ^ 2;
    std::vector<double> want;
    for (int i = 0; i < 3; ++i)
      want.push_back((100.0 * r + i + 100.0 * peer + i) / 2);
    return want;
  };
}

/// All-gather along dim 1 over [tp, dp]: group rank g = 2 tp + dp, so the
/// pieces come from global ranks 0, 2, 1, 3.
std::vector<double> gatheredTpDp(int) {
  const int order[4] = {0, 2, 1, 3};
  std::vector<double> want;
  for (int i = 0; i < 2; ++i)
    for (int g = 0; g < 4; ++g)
      for (int j = 0; j < 3; ++j)
        want.push_back(100.0 * order[g] + i * 3 + j);
  return want;
}

ProgramBuilder pipelineShift() {
  ProgramBuilder b("p2p");
  b.mesh = {{"pp", 3}};
  int32_t pp = b.comm({"pp"});
  uint32_t x = b.input("x", DType::F32, {2});
  uint32_t y = b.output("y", DType::F32, {2});
  b.op(Opcode::Fill, {}, {y}, {TAttr::F("value", -1)});
  b.op(Opcode::GroupStart, {}, {});
  b.op(Opcode::Send, {x}, {}, {TAttr::I("peer_shift", 1)}, pp);
  b.op(Opcode::Recv, {}, {y}, {TAttr::I("peer_shift", -1)}, pp);
  b.op(Opcode::GroupEnd, {}, {});
  return b;
}

/// The first stage has no peer to receive from: its recv gives zeros, not
/// the -1 filled before it.
std::vector<double> pipelineExpect(int r) {
  if (r == 0)
    return {0, 0};
  return {100.0 * (r - 1), 100.0 * (r - 1) + 1};
}

} // namespace

TEST(MeshGroups, MatchTheRuntimesMesh) {
  // MeshGroups.h (communicators) and Mesh (executor) must agree on group
  // members, their order and each rank's index.
  for (std::vector<int> sizes :
       {std::vector<int>{2, 3}, {2, 2, 2}, {3, 1, 4}, {2, 3, 2, 2}}) {
    Mesh mesh;
    for (size_t i = 0; i < sizes.size(); ++i) {
      mesh.axisNames.push_back("a" + std::to_string(i));
      mesh.axisSizes.push_back(sizes[i]);
    }
    int n = meshSize(sizes);
    std::vector<std::vector<int>> axisLists = {{}};
    for (int a = 0; a < static_cast<int>(sizes.size()); ++a) {
      axisLists.push_back({a});
      for (int b = 0; b < static_cast<int>(sizes.size()); ++b)
        if (b != a)
          axisLists.push_back({a, b});
    }
    for (const auto &axes : axisLists)
      for (int r = 0; r < n; ++r) {
        MeshGroup g = meshGroup(sizes, r, axes);
        std::vector<int64_t> ranks = mesh.groupRanks(r, axes);
        ASSERT_EQ(std::vector<int64_t>(g.members.begin(), g.members.end()),
                  ranks)
            << mesh.str() << " rank " << r;
        EXPECT_EQ(g.index, mesh.groupRank(r, axes));
      }
  }
}

TEST(ExecutorOnLocalComm, AllReduceOverEachAxis) {
  for (const char *axis : {"tp", "dp"})
    onThreads(oneCollective({{"dp", 2}, {"tp", 2}}, {axis}, Opcode::AllReduce,
                            {3}, {3}, {TAttr::S("reduction", "mean")}),
              {3}, allReduceMean(axis));
}

TEST(ExecutorOnLocalComm, AllGatherInGroupOrder) {
  onThreads(oneCollective({{"dp", 2}, {"tp", 2}}, {"tp", "dp"},
                          Opcode::AllGather, {2, 3}, {2, 12},
                          {TAttr::I("gather_dim", 1)}),
            {2, 3}, gatheredTpDp);
}

TEST(ExecutorOnLocalComm, AllToAll) {
  // split_dim 1, concat_dim 0: y_r = [x_0[:, 2r:2r+2]; x_1[:, 2r:2r+2]].
  onThreads(
      oneCollective({{"ep", 2}}, {"ep"}, Opcode::AllToAll, {2, 4}, {4, 2},
                    {TAttr::I("split_dim", 1), TAttr::I("concat_dim", 0)}),
      {2, 4}, [](int r) {
        std::vector<double> want;
        for (int q = 0; q < 2; ++q)
          for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j)
              want.push_back(100.0 * q + i * 4 + 2 * r + j);
        return want;
      });
}

TEST(ExecutorOnLocalComm, CollectivePermuteAndPipelineSendRecv) {
  onThreads(oneCollective({{"cp", 3}}, {"cp"}, Opcode::CollectivePermute, {2},
                          {2}, {TAttr::I("shift", 1)}),
            {2}, [](int r) {
              int from = (r + 2) % 3;
              return std::vector<double>{100.0 * from, 100.0 * from + 1};
            });
  onThreads(pipelineShift(), {2}, pipelineExpect);
}

TEST(ExecutorOnLocalComm, AFailingRankFailsItsPeersPromptly) {
  // Rank 1 never sets its input: run() throws before the all-reduce, its
  // executor (and communicators) go away, and ranks 0, 2, 3 get a CommError
  // instead of waiting out the deadline.
  std::vector<uint8_t> bytes =
      oneCollective({{"dp", 4}}, {"dp"}, Opcode::AllReduce, {3}, {3},
                    {TAttr::S("reduction", "sum")})
          .finish();
  auto world = LocalWorld::create(4, {60s});
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < 4; ++r)
    threads.emplace_back([&, r] {
      try {
        auto prog = Program::load(bytes.data(), bytes.size());
        ExecutorOptions o;
        o.rank = r;
        o.communicators = executorCommunicators(world->provider(r));
        Executor exec(prog, o);
        if (r != 1)
          exec.setInput("x", rankTensor({3}, r));
        exec.run();
      } catch (const std::exception &e) {
        errors[r] = e.what();
      }
    });
  for (auto &t : threads)
    t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_FALSE(errors[1].empty());
  for (int r : {0, 2, 3}) {
    EXPECT_NE(errors[r].find("all_reduce"), std::string::npos) << errors[r];
    EXPECT_NE(errors[r].find("world 1"), std::string::npos) << errors[r];
  }
}

#ifdef LOOM_HAVE_GLOO
TEST(ExecutorOnGloo, AllReduceAllGatherAndPipeline) {
  onProcesses(oneCollective({{"dp", 2}, {"tp", 2}}, {"dp"}, Opcode::AllReduce,
                            {3}, {3}, {TAttr::S("reduction", "mean")}),
              {3}, allReduceMean("dp"));
  onProcesses(oneCollective({{"dp", 2}, {"tp", 2}}, {"tp", "dp"},
                            Opcode::AllGather, {2, 3}, {2, 12},
                            {TAttr::I("gather_dim", 1)}),
              {2, 3}, gatheredTpDp);
  onProcesses(pipelineShift(), {2}, pipelineExpect);
}
#endif
