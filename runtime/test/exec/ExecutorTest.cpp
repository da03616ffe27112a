//===- ExecutorTest.cpp - Executor, arena, mesh and collectives -----------===//

#include "TestComm.h"
#include "TestUtil.h"

#include <cstdio>
#include <set>
#include <unistd.h>

using namespace loom::runtime;
using namespace loom::test;

namespace {

std::shared_ptr<const Program> load(const ProgramBuilder &b) {
  auto bytes = b.finish();
  return Program::load(bytes.data(), bytes.size());
}

//===- mesh ---------------------------------------------------------------===//

TEST(Mesh, RowMajorCoordinatesAndGroups) {
  Mesh m{"world", {"pp", "dp", "tp"}, {2, 3, 2}};
  EXPECT_EQ(m.size(), 12);
  EXPECT_EQ(m.coords(7), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(m.rankOf({1, 2, 0}), 10);
  // tp group of rank 7: ranks 6, 7; dp group: 7, 9, 11.
  EXPECT_EQ(m.groupRanks(7, {2}), (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(m.groupRanks(7, {1}), (std::vector<int64_t>{7, 9, 11}));
  EXPECT_EQ(m.groupRank(9, {1}), 1);
  // Axis order of the group decides group order: [tp, dp] puts tp major.
  EXPECT_EQ(m.groupRanks(0, {2, 1}), (std::vector<int64_t>{0, 2, 4, 1, 3, 5}));
  EXPECT_EQ(m.groupRank(3, {2, 1}), 4);
}

//===- arena and bindings -------------------------------------------------===//

/// x -> matmul -> gelu -> rmsnorm -> y with a reused temporary.
ProgramBuilder chainProgram() {
  ProgramBuilder b("chain");
  uint32_t x = b.input("x", DType::F32, {4, 8});
  uint32_t w = b.parameter("w", DType::F32, {8, 8});
  uint32_t nw = b.parameter("norm_w", DType::F32, {8});
  uint32_t t0 = b.buffer("t0", DType::F32, {4, 8});
  uint32_t t1 = b.buffer("t1", DType::F32, {4, 8});
  // t2 reuses x's bytes (x is dead after the matmul).
  uint32_t t2 = b.bufferAt("t2", DType::F32, {4, 8}, b.buffers[x].offset);
  uint32_t y = b.output("y", DType::F32, {4, 8});
  b.op(Opcode::Matmul, {x, w}, {t0});
  b.op(Opcode::Gelu, {t0}, {t1});
  b.op(Opcode::Scale, {t1}, {t2}, {TAttr::F("factor", 2)});
  b.op(Opcode::RmsNorm, {t2, nw}, {y}, {TAttr::F("epsilon", 1e-6)});
  return b;
}

TEST(Executor, ExecutedPeakEqualsPlannedPeak) {
  auto b = chainProgram();
  auto prog = load(b);
  Executor exec(prog, {});
  EXPECT_EQ(exec.executedPeakBytes(), 0u);
  exec.setInput("x", randomF32({4, 8}, 1));
  exec.setInput("w", randomF32({8, 8}, 2));
  exec.setInput("norm_w", randomF32({8}, 3));
  exec.run();
  EXPECT_EQ(exec.plannedPeakBytes(), b.arenaTop);
  EXPECT_EQ(exec.executedPeakBytes(), exec.plannedPeakBytes());
}

TEST(Executor, ComputesAChain) {
  auto prog = load(chainProgram());
  Executor exec(prog, {});
  auto x = randomF32({4, 8}, 1), w = randomF32({8, 8}, 2),
       nw = randomF32({8}, 3);
  exec.setInput("x", x);
  exec.setInput("w", w);
  exec.setInput("norm_w", nw);
  exec.run();
  auto xv = x.toF32(), wv = w.toF32(), nv = nw.toF32();
  std::vector<double> want;
  for (int i = 0; i < 4; ++i) {
    std::vector<double> row(8);
    double ss = 0;
    for (int j = 0; j < 8; ++j) {
      double s = 0;
      for (int k = 0; k < 8; ++k)
        s += double(xv[i * 8 + k]) * wv[k * 8 + j];
      row[j] = 2 * 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
      ss += row[j] * row[j];
    }
    for (int j = 0; j < 8; ++j)
      want.push_back(row[j] / std::sqrt(ss / 8 + 1e-6) * nv[j]);
  }
  expectNear(exec.getOutput("y"), want, 1e-5);
  // Parameters are also outputs.
  expectNear(exec.getOutput("norm_w"),
             std::vector<double>(nv.begin(), nv.end()), 0);
}

TEST(Executor, ReportsBindingErrors) {
  auto prog = load(chainProgram());
  Executor exec(prog, {});
  EXPECT_THROW(exec.setInput("nope", nullptr, 0), ExecutionError);
  std::vector<float> small(3);
  try {
    exec.setInput("x", small.data(), 12);
    FAIL();
  } catch (const ExecutionError &e) {
    EXPECT_STREQ(e.what(), "input 'x' (f32[4,8]) needs 128 bytes, got 12");
  }
  EXPECT_THROW(exec.setInput("x", randomF32({8, 4}, 1)), ExecutionError);
  exec.setInput("x", randomF32({4, 8}, 1));
  try {
    exec.run();
    FAIL();
  } catch (const ExecutionError &e) {
    EXPECT_STREQ(e.what(),
                 "input 'w' of program 'chain' was never set before run()");
  }
  EXPECT_THROW(exec.getOutput("t0"), ExecutionError);
  EXPECT_THROW(Executor(prog, ExecutorOptions{5, {}, "cpu", nullptr}),
               ExecutionError);
  EXPECT_THROW(Executor(prog, ExecutorOptions{0, {}, "nosuchbackend", nullptr}),
               std::runtime_error);
}

TEST(Executor, ParametersPersistAcrossRuns) {
  // Two AdamW steps in place; the step counter is an input.
  ProgramBuilder b("opt");
  uint32_t p = b.parameter("p", DType::F32, {3});
  uint32_t m = b.parameter("m", DType::F32, {3});
  uint32_t v = b.parameter("v", DType::F32, {3});
  uint32_t g = b.input("g", DType::F32, {3});
  uint32_t step = b.input("step", DType::I32, {});
  uint32_t lr = b.input("lr", DType::F32, {});
  b.op(Opcode::AdamW, {p, g, m, v, step, lr}, {p, m, v},
       {TAttr::F("beta1", 0.9), TAttr::F("beta2", 0.99),
        TAttr::F("epsilon", 1e-8), TAttr::F("weight_decay", 0)});
  Executor exec(load(b), {});
  exec.setInput("p", tensorF32({3}, {1, 2, 3}));
  exec.setInput("m", tensorF32({3}, {0, 0, 0}));
  exec.setInput("v", tensorF32({3}, {0, 0, 0}));
  exec.setInput("g", tensorF32({3}, {1, -1, 0.5f}));
  exec.setInput("lr", tensorF32({}, {0.1f}));
  double pw[3] = {1, 2, 3}, mw[3] = {0, 0, 0}, vw[3] = {0, 0, 0};
  double gw[3] = {1, -1, 0.5};
  for (int t = 1; t <= 2; ++t) {
    exec.setInput("step", tensorInt<int>(DType::I32, {}, {t}));
    exec.run();
    for (int i = 0; i < 3; ++i) {
      mw[i] = 0.9 * mw[i] + 0.1 * gw[i];
      vw[i] = 0.99 * vw[i] + 0.01 * gw[i] * gw[i];
      pw[i] -= 0.1 * (mw[i] / (1 - std::pow(0.9, t))) /
               (std::sqrt(vw[i] / (1 - std::pow(0.99, t))) + 1e-8);
    }
  }
  expectNear(exec.getOutput("p"), {pw[0], pw[1], pw[2]}, 1e-6);
}

TEST(Executor, ReshapeAliasIsANoOp) {
  ProgramBuilder b;
  uint32_t x = b.input("x", DType::F32, {2, 3});
  uint32_t t = b.buffer("t", DType::F32, {2, 3});
  uint32_t view = b.bufferAt("view", DType::F32, {6}, b.buffers[t].offset);
  uint32_t y = b.output("y", DType::F32, {6});
  b.op(Opcode::Scale, {x}, {t}, {TAttr::F("factor", 3)});
  b.op(Opcode::Reshape, {t}, {view});
  b.op(Opcode::Silu, {view}, {y});
  Executor exec(load(b), {});
  exec.setInput("x", tensorF32({2, 3}, {1, 2, 3, 4, 5, 6}));
  exec.run();
  std::vector<double> want;
  for (int i = 1; i <= 6; ++i)
    want.push_back(3.0 * i / (1 + std::exp(-3.0 * i)));
  expectNear(exec.getOutput("y"), want, 1e-6);
}

TEST(Executor, RankDependentSliceAndRope) {
  // Mesh [cp=2]: rank r takes rows [2r, 2r + 2) and rotates them at their
  // global positions.
  ProgramBuilder b;
  b.mesh = {{"cp", 2}};
  uint32_t x = b.input("x", DType::F32, {1, 4, 1, 2});
  uint32_t s = b.buffer("s", DType::F32, {1, 2, 1, 2});
  uint32_t y = b.output("y", DType::F32, {1, 2, 1, 2});
  b.op(Opcode::Slice, {x}, {s},
       {TAttr::Is("offsets", {0, 0, 0, 0}).term("cp", {0, 2, 0, 0}),
        TAttr::Is("sizes", {1, 2, 1, 2})});
  b.op(
      Opcode::Rope, {s}, {y},
      {TAttr::F("theta", 100), TAttr::I("position_offset", 0).term("cp", {2})});
  auto prog = load(b);
  auto xin = tensorF32({1, 4, 1, 2}, {1, 0, 1, 0, 1, 0, 1, 0});
  for (int r = 0; r < 2; ++r) {
    Executor exec(prog, ExecutorOptions{r, {}, "cpu", nullptr});
    EXPECT_EQ(exec.coords(), (std::vector<int64_t>{r}));
    exec.setInput("x", xin);
    exec.run();
    // x = (1, 0) at position p rotates to (cos p, sin p) (D = 2, f = 1).
    int p0 = 2 * r;
    expectNear(exec.getOutput("y"),
               {std::cos(p0), std::sin(p0), std::cos(p0 + 1), std::sin(p0 + 1)},
               1e-6);
  }
}

TEST(Executor, SingleRankCollectivesAreLocal) {
  ProgramBuilder b;
  b.mesh = {{"tp", 1}};
  int32_t tp = b.comm({"tp"});
  uint32_t x = b.input("x", DType::F32, {2});
  uint32_t y = b.output("y", DType::F32, {2});
  uint32_t z = b.output("z", DType::F32, {2});
  b.op(Opcode::AllReduce, {x}, {y}, {TAttr::S("reduction", "mean")}, tp);
  b.op(Opcode::AllGather, {y}, {z}, {TAttr::I("gather_dim", 0)}, tp);
  Executor exec(load(b), {});
  exec.setInput("x", tensorF32({2}, {4, 5}));
  exec.run();
  expectNear(exec.getOutput("z"), {4, 5}, 0);
}

TEST(Executor, MissingFactoryIsAnError) {
  ProgramBuilder b;
  b.mesh = {{"tp", 2}};
  int32_t tp = b.comm({"tp"});
  uint32_t x = b.input("x", DType::F32, {2});
  uint32_t y = b.output("y", DType::F32, {2});
  b.op(Opcode::AllReduce, {x}, {y}, {TAttr::S("reduction", "sum")}, tp);
  try {
    Executor exec(load(b), {});
    FAIL();
  } catch (const ExecutionError &e) {
    EXPECT_STREQ(e.what(), "communicator 0 [tp:0,1] spans 2 ranks, but no "
                           "communicator factory was given");
  }
}

//===- collectives over threads -------------------------------------------===//

/// Runs `prog` on every rank of its mesh; inputs come from `input(rank)`,
/// the output "y" of every rank is returned.
std::vector<HostTensor> runAllRanks(const std::shared_ptr<const Program> &prog,
                                    const std::function<HostTensor(int)> &input,
                                    TestCommFactory *fac = nullptr) {
  int n = static_cast<int>(prog->mesh().size());
  TestCommFactory local;
  TestCommFactory &f = fac ? *fac : local;
  std::vector<HostTensor> out(n);
  runRanks(n, [&](int r) {
    ExecutorOptions o;
    o.rank = r;
    o.communicators = f.factory();
    Executor exec(prog, o);
    exec.setInput("x", input(r));
    exec.run();
    out[r] = exec.getOutput("y");
  });
  return out;
}

/// x_r[i] = 100 r + i.
HostTensor rankTensor(std::vector<int64_t> shape, int r) {
  HostTensor t(DType::F32, shape);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.as<float>()[i] = static_cast<float>(100 * r + i);
  return t;
}

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

TEST(Collectives, TwoMeshesOverTheSameRanks) {
  // world [dp=2, tp=2]: tp groups {0,1}, {2,3}. experts [etp=2, ep=2] over
  // the same four ranks: etp groups {0,2}, {1,3}. y sums over world's tp,
  // then over experts' etp.
  ProgramBuilder b("folded");
  b.mesh = {{"dp", 2}, {"tp", 2}};
  b.moreMeshes = {{"experts", {{"etp", 2}, {"ep", 2}}}};
  int32_t tp = b.comm({"tp"}, 0);
  int32_t etp = b.comm({"etp"}, 1);
  uint32_t x = b.input("x", DType::F32, {1});
  uint32_t t = b.buffer("t", DType::F32, {1});
  uint32_t y = b.output("y", DType::F32, {1});
  b.op(Opcode::AllReduce, {x}, {t}, {TAttr::S("reduction", "sum")}, tp);
  b.op(Opcode::AllReduce, {t}, {y}, {TAttr::S("reduction", "sum")}, etp);
  auto prog = load(b);
  ASSERT_EQ(prog->meshes().size(), 2u);
  // x_r = 100 r.
  auto out = runAllRanks(prog, [](int r) { return rankTensor({1}, r); });
  // tp sums: ranks 0,1 -> 100; ranks 2,3 -> 500. etp pairs {0,2}, {1,3}
  // add one of each: 600 everywhere.
  for (int r = 0; r < 4; ++r)
    expectNear(out[r], {600}, 0, "rank");
  // Over experts' ep ({0,1}, {2,3}) instead, the tp sums double: 200 on
  // ranks 0 and 1, 1000 on ranks 2 and 3.
  ProgramBuilder c = b;
  c.comms[1] = {1, {"ep"}};
  auto byEp = runAllRanks(load(c), [](int r) { return rankTensor({1}, r); });
  expectNear(byEp[0], {200}, 0, "rank 0 over ep");
  expectNear(byEp[3], {1000}, 0, "rank 3 over ep");
}

TEST(Collectives, AllReduceOverEachAxisOfA2DMesh) {
  // Mesh [dp=2, tp=2]: rank = 2 dp + tp.
  for (const char *axis : {"tp", "dp"}) {
    auto prog =
        load(oneCollective({{"dp", 2}, {"tp", 2}}, {axis}, Opcode::AllReduce,
                           {3}, {3}, {TAttr::S("reduction", "mean")}));
    auto out = runAllRanks(prog, [](int r) { return rankTensor({3}, r); });
    for (int r = 0; r < 4; ++r) {
      int peer = std::string(axis) == "tp" ? r ^ 1 : r ^ 2;
      std::vector<double> want;
      for (int i = 0; i < 3; ++i)
        want.push_back((100.0 * r + i + 100.0 * peer + i) / 2);
      expectNear(out[r], want, 1e-6, axis);
    }
  }
}

TEST(Collectives, AllGatherAlongAnInnerDimInGroupOrder) {
  // Group over [tp, dp] of mesh [dp=2, tp=2]: group rank g = 2 tp + dp, so
  // the gathered pieces come from global ranks 0, 2, 1, 3.
  auto prog = load(oneCollective({{"dp", 2}, {"tp", 2}}, {"tp", "dp"},
                                 Opcode::AllGather, {2, 3}, {2, 12},
                                 {TAttr::I("gather_dim", 1)}));
  auto out = runAllRanks(prog, [](int r) { return rankTensor({2, 3}, r); });
  const int order[4] = {0, 2, 1, 3};
  std::vector<double> want;
  for (int i = 0; i < 2; ++i)
    for (int g = 0; g < 4; ++g)
      for (int j = 0; j < 3; ++j)
        want.push_back(100.0 * order[g] + i * 3 + j);
  for (int r = 0; r < 4; ++r)
    expectNear(out[r], want, 0);
}

TEST(Collectives, ReduceScatterAlongAnInnerDim) {
  auto prog = load(oneCollective(
      {{"tp", 2}}, {"tp"}, Opcode::ReduceScatter, {2, 4}, {2, 2},
      {TAttr::I("scatter_dim", 1), TAttr::S("reduction", "sum")}));
  auto out = runAllRanks(prog, [](int r) { return rankTensor({2, 4}, r); });
  for (int r = 0; r < 2; ++r) {
    std::vector<double> want;
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        int idx = i * 4 + r * 2 + j;
        want.push_back((0.0 + idx) + (100.0 + idx));
      }
    expectNear(out[r], want, 0);
  }
}

TEST(Collectives, AllToAllSplitAndConcatDims) {
  // split_dim 1, concat_dim 0: y_r = [x_0[:, 2r:2r+2]; x_1[:, 2r:2r+2]].
  auto prog = load(
      oneCollective({{"ep", 2}}, {"ep"}, Opcode::AllToAll, {2, 4}, {4, 2},
                    {TAttr::I("split_dim", 1), TAttr::I("concat_dim", 0)}));
  auto out = runAllRanks(prog, [](int r) { return rankTensor({2, 4}, r); });
  for (int r = 0; r < 2; ++r) {
    std::vector<double> want;
    for (int q = 0; q < 2; ++q)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j)
          want.push_back(100.0 * q + i * 4 + 2 * r + j);
    expectNear(out[r], want, 0, "split 1 concat 0");
  }
  // split_dim 0, concat_dim 1: y_r[i, 2q + j] = x_q[2r + i, j].
  auto prog2 = load(
      oneCollective({{"ep", 2}}, {"ep"}, Opcode::AllToAll, {4, 2}, {2, 4},
                    {TAttr::I("split_dim", 0), TAttr::I("concat_dim", 1)}));
  auto out2 = runAllRanks(prog2, [](int r) { return rankTensor({4, 2}, r); });
  for (int r = 0; r < 2; ++r) {
    std::vector<double> want;
    for (int i = 0; i < 2; ++i)
      for (int q = 0; q < 2; ++q)
        for (int j = 0; j < 2; ++j)
          want.push_back(100.0 * q + (2 * r + i) * 2 + j);
    expectNear(out2[r], want, 0, "split 0 concat 1");
  }
}

TEST(Collectives, CollectivePermute) {
  auto prog = load(oneCollective({{"cp", 3}}, {"cp"}, Opcode::CollectivePermute,
                                 {2}, {2}, {TAttr::I("shift", 1)}));
  auto out = runAllRanks(prog, [](int r) { return rankTensor({2}, r); });
  for (int r = 0; r < 3; ++r) {
    int from = (r + 2) % 3;
    expectNear(out[r], {100.0 * from, 100.0 * from + 1}, 0);
  }
}

TEST(Collectives, SendRecvInAGroupSkipsMissingPeers) {
  // Pipeline of 3 stages: every rank sends to the next and receives from the
  // previous in one group; the first has no peer, so its recv gives zeros
  // (not the -1 filled before), and the last sends nothing.
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
  TestCommFactory f;
  auto out = runAllRanks(load(b), [](int r) { return rankTensor({2}, r); }, &f);
  expectNear(out[0], {0, 0}, 0);
  expectNear(out[1], {0, 1}, 0);
  expectNear(out[2], {100, 101}, 0);
}

TEST(Collectives, FactorySeesGroupsAndKeys) {
  auto prog =
      load(oneCollective({{"dp", 2}, {"tp", 2}}, {"dp"}, Opcode::AllReduce, {1},
                         {1}, {TAttr::S("reduction", "sum")}));
  TestCommFactory f;
  runAllRanks(prog, [](int r) { return rankTensor({1}, r); }, &f);
  ASSERT_EQ(f.groups.size(), 4u);
  std::set<std::string> keys;
  for (const CommGroup &g : f.groups) {
    keys.insert(g.key);
    EXPECT_EQ(g.ranks[g.groupRank], g.worldRank);
    EXPECT_EQ(g.worldSize, 4);
  }
  EXPECT_EQ(keys, (std::set<std::string>{"dp:0,2", "dp:1,3"}));
}

//===- npy ----------------------------------------------------------------===//

TEST(Npy, RoundTripsEveryDType) {
  char dir[] = "/tmp/loom-npy-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  for (DType t :
       {DType::F32, DType::BF16, DType::F16, DType::I32, DType::I64}) {
    HostTensor x = randomF32({2, 3}, 7, -10, 10).convert(t);
    std::string path = std::string(dir) + "/x.npy";
    writeNpy(path, x);
    HostTensor y = readNpy(path);
    EXPECT_EQ(y.dtype, t);
    EXPECT_EQ(y.shape, x.shape);
    EXPECT_EQ(y.bytes, x.bytes);
    std::remove(path.c_str());
  }
  HostTensor s = tensorF32({}, {3.5f});
  writeNpy(std::string(dir) + "/s.npy", s);
  EXPECT_EQ(readNpy(std::string(dir) + "/s.npy").shape.size(), 0u);
  std::remove((std::string(dir) + "/s.npy").c_str());
  rmdir(dir);
}

TEST(Npy, HeaderIsNumpyCompatible) {
  std::string bytes = serializeNpy(tensorF32({3}, {1, 2, 3}));
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ((bytes.size() - 12) % 64, 0u);
  EXPECT_NE(
      bytes.find("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"),
      std::string::npos);
  EXPECT_THROW(parseNpy(bytes.data(), bytes.size() - 1), NpyError);
  EXPECT_THROW(readNpy("/nonexistent.npy"), NpyError);
}

} // namespace
