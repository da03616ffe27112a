//===- MeshTest.cpp - Mesh arithmetic -------------------------------------===//

#include "loom/runtime/Mesh.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

using namespace loom::runtime;

TEST(Mesh, CoordsRoundTrip) {
  std::vector<int> sizes = {2, 3, 4};
  EXPECT_EQ(meshSize(sizes), 24);
  EXPECT_EQ(meshCoords(sizes, 0), (std::vector<int>{0, 0, 0}));
  EXPECT_EQ(meshCoords(sizes, 1), (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(meshCoords(sizes, 4), (std::vector<int>{0, 1, 0}));
  EXPECT_EQ(meshCoords(sizes, 23), (std::vector<int>{1, 2, 3}));
  for (int r = 0; r < 24; ++r)
    EXPECT_EQ(meshRank(sizes, meshCoords(sizes, r)), r);
  EXPECT_EQ(meshSize({}), 1);
  EXPECT_EQ(meshCoords({}, 0), std::vector<int>{});
}

TEST(Mesh, MegatronOrder) {
  // [pp, dp, tp] = [2, 2, 2]: tp fastest. Rank 5 = (pp 1, dp 0, tp 1).
  std::vector<int> sizes = {2, 2, 2};
  MeshGroup tp = meshGroup(sizes, 5, {2});
  EXPECT_EQ(tp.members, (std::vector<int>{4, 5}));
  EXPECT_EQ(tp.index, 1);
  EXPECT_EQ(tp.color, 2); // (pp 1, dp 0)
  MeshGroup dp = meshGroup(sizes, 5, {1});
  EXPECT_EQ(dp.members, (std::vector<int>{5, 7}));
  EXPECT_EQ(dp.index, 0);
  MeshGroup pp = meshGroup(sizes, 5, {0});
  EXPECT_EQ(pp.members, (std::vector<int>{1, 5}));
  EXPECT_EQ(pp.index, 1);
  MeshGroup dptp = meshGroup(sizes, 5, {1, 2});
  EXPECT_EQ(dptp.members, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(dptp.index, 1);
  EXPECT_EQ(dptp.color, 1);
}

TEST(Mesh, AxisOrderDefinesGroupOrder) {
  std::vector<int> sizes = {2, 3};
  MeshGroup a = meshGroup(sizes, 4, {0, 1});
  EXPECT_EQ(a.members, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(a.index, 4);
  MeshGroup b = meshGroup(sizes, 4, {1, 0});
  EXPECT_EQ(b.members, (std::vector<int>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(b.index, 3);
  EXPECT_EQ(b.members[b.index], 4);
}

TEST(Mesh, EmptyAxesGiveSingleton) {
  MeshGroup g = meshGroup({2, 3}, 4, {});
  EXPECT_EQ(g.members, std::vector<int>{4});
  EXPECT_EQ(g.index, 0);
  EXPECT_EQ(g.color, 4);
}

TEST(Mesh, GroupsPartitionTheMesh) {
  std::vector<int> sizes = {3, 2, 5};
  for (std::vector<int> axes :
       {std::vector<int>{0}, {1}, {2}, {0, 2}, {2, 0}, {0, 1, 2}, {}}) {
    auto groups = allMeshGroups(sizes, axes);
    int groupSize = 1;
    for (int a : axes)
      groupSize *= sizes[a];
    EXPECT_EQ(static_cast<int>(groups.size()), 30 / groupSize);
    std::set<int> seen;
    for (size_t c = 0; c < groups.size(); ++c) {
      ASSERT_EQ(static_cast<int>(groups[c].size()), groupSize);
      for (size_t i = 0; i < groups[c].size(); ++i) {
        int r = groups[c][i];
        EXPECT_TRUE(seen.insert(r).second) << "rank " << r << " twice";
        MeshGroup g = meshGroup(sizes, r, axes);
        EXPECT_EQ(g.members, groups[c]);
        EXPECT_EQ(g.index, static_cast<int>(i));
        EXPECT_EQ(g.color, static_cast<int>(c));
      }
    }
    EXPECT_EQ(seen.size(), 30u);
  }
}

TEST(Mesh, Errors) {
  EXPECT_THROW(meshCoords({2, 3}, 6), std::invalid_argument);
  EXPECT_THROW(meshCoords({2, 3}, -1), std::invalid_argument);
  EXPECT_THROW(meshSize({2, 0}), std::invalid_argument);
  EXPECT_THROW(meshGroup({2, 3}, 0, {2}), std::invalid_argument);
  EXPECT_THROW(meshGroup({2, 3}, 0, {1, 1}), std::invalid_argument);
  EXPECT_THROW(meshRank({2, 3}, {1}), std::invalid_argument);
  EXPECT_THROW(meshRank({2, 3}, {1, 3}), std::invalid_argument);
}
