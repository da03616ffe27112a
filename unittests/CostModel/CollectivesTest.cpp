//===- CollectivesTest.cpp - Alpha-beta collectives and link choice -------===//
//
// NCCL's bus bandwidth factors, the alpha-beta time, and which link a group
// of ranks in Megatron's order runs on.
//
//===----------------------------------------------------------------------===//

#include "loom/CostModel/Collectives.h"

#include "gtest/gtest.h"

using namespace loom::cost;

namespace {

Cluster preset(const char *name) {
  auto cluster = getClusterPreset(name);
  EXPECT_TRUE(bool(cluster));
  return cluster ? *cluster : Cluster();
}

// nccl-tests' PERFORMANCE.md: busbw = algbw · factor.
TEST(CollectivesTest, BusBandwidthFactors) {
  EXPECT_DOUBLE_EQ(busBandwidthFactor(Collective::AllReduce, 8), 2.0 * 7 / 8);
  EXPECT_DOUBLE_EQ(busBandwidthFactor(Collective::AllGather, 8), 7.0 / 8);
  EXPECT_DOUBLE_EQ(busBandwidthFactor(Collective::ReduceScatter, 4), 3.0 / 4);
  EXPECT_DOUBLE_EQ(busBandwidthFactor(Collective::AllToAll, 2), 0.5);
  EXPECT_DOUBLE_EQ(busBandwidthFactor(Collective::SendRecv, 2), 1.0);
  EXPECT_DOUBLE_EQ(busBandwidthFactor(Collective::AllReduce, 1), 0.0);
  EXPECT_EQ(latencySteps(Collective::AllReduce, 8), 14);
  EXPECT_EQ(latencySteps(Collective::AllGather, 8), 7);
  EXPECT_EQ(latencySteps(Collective::SendRecv, 2), 1);
  EXPECT_EQ(latencySteps(Collective::ReduceScatter, 1), 0);
}

TEST(CollectivesTest, AlphaBetaTime) {
  Link link{100e9, 2e-6};
  // All-reduce of 1 GB over 4 ranks: 6 steps of 2 us + 1.5 GB at 100 GB/s.
  EXPECT_DOUBLE_EQ(collectiveTime(Collective::AllReduce, 4, 1e9, link),
                   6 * 2e-6 + 1.5e9 / 100e9);
  EXPECT_DOUBLE_EQ(collectiveTime(Collective::AllGather, 4, 1e9, link),
                   3 * 2e-6 + 0.75e9 / 100e9);
  // All-to-all: each rank keeps 1/n of its buffer and sends the rest.
  EXPECT_EQ(latencySteps(Collective::AllToAll, 8), 7);
  EXPECT_DOUBLE_EQ(collectiveTime(Collective::AllToAll, 8, 1e9, link),
                   7 * 2e-6 + 0.875e9 / 100e9);
  EXPECT_DOUBLE_EQ(collectiveTime(Collective::SendRecv, 2, 1e6, link),
                   2e-6 + 1e6 / 100e9);
  EXPECT_DOUBLE_EQ(collectiveTime(Collective::AllReduce, 1, 1e9, link), 0.0);
}

// Megatron order: rank = tp + tp·(cp + cp·(dp + dp·pp)).
TEST(CollectivesTest, GroupsInMegatronOrder) {
  MeshDegrees d{2, 1, 2, 2};
  auto dp = groupsAlong(d, MeshAxisKind::Dp);
  std::vector<std::vector<int64_t>> expectDp = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
  EXPECT_EQ(dp, expectDp);
  auto tp = groupsAlong(d, MeshAxisKind::Tp);
  std::vector<std::vector<int64_t>> expectTp = {{0, 1}, {2, 3}, {4, 5}, {6, 7}};
  EXPECT_EQ(tp, expectTp);
  auto pp = groupsAlong(d, MeshAxisKind::Pp);
  std::vector<std::vector<int64_t>> expectPp = {{0, 4}, {1, 5}, {2, 6}, {3, 7}};
  EXPECT_EQ(pp, expectPp);
}

// tp=8 inside a node runs on NVLink; dp and pp across nodes on InfiniBand.
TEST(CollectivesTest, LinkSelection) {
  Cluster c = preset("h100-ib:8");
  MeshDegrees d{8, 1, 2, 4};
  EXPECT_TRUE(isAxisWithinNode(c, d, MeshAxisKind::Tp));
  EXPECT_FALSE(isAxisWithinNode(c, d, MeshAxisKind::Dp));
  EXPECT_FALSE(isAxisWithinNode(c, d, MeshAxisKind::Pp));
  int64_t tpGroup[] = {0, 1, 2, 3, 4, 5, 6, 7};
  int64_t dpGroup[] = {0, 8};
  EXPECT_EQ(&linkFor(c, tpGroup), &c.intraNode);
  EXPECT_EQ(&linkFor(c, dpGroup), &c.interNode);
  EXPECT_EQ(&pipelineLink(c, d, 0), &c.interNode);

  // tp=4, dp=2 fill one node: both axes stay on NVLink.
  MeshDegrees small{4, 1, 2, 8};
  EXPECT_TRUE(isAxisWithinNode(c, small, MeshAxisKind::Tp));
  EXPECT_TRUE(isAxisWithinNode(c, small, MeshAxisKind::Dp));
  EXPECT_FALSE(isAxisWithinNode(c, small, MeshAxisKind::Pp));

  // tp=16 spans two nodes: the slowest link is InfiniBand.
  MeshDegrees wide{16, 1, 4, 1};
  EXPECT_FALSE(isAxisWithinNode(c, wide, MeshAxisKind::Tp));

  // One node: pipeline neighbours talk over NVLink.
  Cluster node = preset("h100-node");
  MeshDegrees inNode{2, 1, 1, 4};
  for (int64_t r = 0; r < 4; ++r)
    EXPECT_EQ(&pipelineLink(node, inNode, r), &node.intraNode);
}

// The time of a tp=8 all-gather inside an H100 node and a dp=2 all-reduce
// across nodes, with the presets' constants.
TEST(CollectivesTest, PresetTimes) {
  Cluster c = preset("h100-ib:2");
  double bytes = 2.0 * 8192 * 8192; // one bf16 [8192, 8192] activation
  EXPECT_DOUBLE_EQ(collectiveTime(Collective::AllGather, 8, bytes, c.intraNode),
                   7 * 1e-6 + 7.0 / 8 * bytes / 450e9);
  EXPECT_DOUBLE_EQ(collectiveTime(Collective::AllReduce, 2, bytes, c.interNode),
                   2 * 5e-6 + bytes / 50e9);
}

} // namespace
