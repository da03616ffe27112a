//===- MeshGroups.h - Communicator groups of a device mesh ------*- C++ -*-===//
//
// Mesh arithmetic shared by the executor and the communicators. A mesh is a
// list of axis sizes; ranks are laid out row-major (the last axis varies
// fastest), so with sizes [pp, dp, cp, tp] the tp axis is the fastest, as in
// Megatron. A collective over a set of axes runs in the group of ranks that
// share every coordinate outside those axes.
//
// Group order: members are ordered by their coordinates on the group's axes,
// taken in the order the axes are listed, the last listed varying fastest.
// Listing the axes in mesh order therefore keeps the mesh's own order. The
// index of a rank in its group is its position in that order.
//
// Header-only and free of any communicator, so that the loader, the executor
// and the tests can use it without linking the communicator library.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_MESHGROUPS_H
#define LOOM_RUNTIME_COMM_MESHGROUPS_H

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::runtime {

/// The ranks of one communicator group and the position of a rank in it.
struct MeshGroup {
  /// World ranks of the members, in group order.
  std::vector<int> members;
  /// Index of the queried rank in `members`.
  int index = -1;
  /// Identifies the group among all groups over the same axes: the linear
  /// index of the rank's coordinates on the other axes (row-major, mesh
  /// order). Groups over the same axes have colors 0 .. numGroups - 1.
  int color = -1;
};

namespace detail {
inline void meshCheck(bool cond, const std::string &msg) {
  if (!cond)
    throw std::invalid_argument("mesh groups: " + msg);
}
} // namespace detail

/// Number of ranks of a mesh (product of the axis sizes; 1 for no axes).
inline int meshSize(const std::vector<int> &axisSizes) {
  int64_t n = 1;
  for (size_t i = 0; i < axisSizes.size(); ++i) {
    detail::meshCheck(axisSizes[i] > 0, "axis " + std::to_string(i) +
                                            " has size " +
                                            std::to_string(axisSizes[i]));
    n *= axisSizes[i];
    detail::meshCheck(n <= INT32_MAX, "mesh has more than 2^31 ranks");
  }
  return static_cast<int>(n);
}

/// Coordinates of `rank` (row-major, last axis fastest).
inline std::vector<int> meshCoords(const std::vector<int> &axisSizes,
                                   int rank) {
  int n = meshSize(axisSizes);
  detail::meshCheck(rank >= 0 && rank < n, "rank " + std::to_string(rank) +
                                               " outside a mesh of " +
                                               std::to_string(n) + " ranks");
  std::vector<int> coords(axisSizes.size());
  for (size_t i = axisSizes.size(); i-- > 0;) {
    coords[i] = rank % axisSizes[i];
    rank /= axisSizes[i];
  }
  return coords;
}

/// Rank at `coords` (row-major, last axis fastest).
inline int meshRank(const std::vector<int> &axisSizes,
                    const std::vector<int> &coords) {
  detail::meshCheck(coords.size() == axisSizes.size(),
                    "got " + std::to_string(coords.size()) +
                        " coordinates for a mesh of " +
                        std::to_string(axisSizes.size()) + " axes");
  meshSize(axisSizes);
  int64_t rank = 0;
  for (size_t i = 0; i < axisSizes.size(); ++i) {
    detail::meshCheck(coords[i] >= 0 && coords[i] < axisSizes[i],
                      "coordinate " + std::to_string(coords[i]) +
                          " outside axis " + std::to_string(i) + " of size " +
                          std::to_string(axisSizes[i]));
    rank = rank * axisSizes[i] + coords[i];
  }
  return static_cast<int>(rank);
}

/// The group of `rank` over mesh axes `axes` (indices into axisSizes, in the
/// order that defines group order; each at most once). No axes gives the
/// singleton group {rank}; all axes in mesh order give the whole mesh.
inline MeshGroup meshGroup(const std::vector<int> &axisSizes, int rank,
                           const std::vector<int> &axes) {
  std::vector<int> coords = meshCoords(axisSizes, rank);
  std::vector<bool> inGroup(axisSizes.size(), false);
  for (int a : axes) {
    detail::meshCheck(a >= 0 && static_cast<size_t>(a) < axisSizes.size(),
                      "axis " + std::to_string(a) + " outside a mesh of " +
                          std::to_string(axisSizes.size()) + " axes");
    detail::meshCheck(!inGroup[a],
                      "axis " + std::to_string(a) + " listed twice");
    inGroup[a] = true;
  }

  MeshGroup group;
  int groupSize = 1;
  for (int a : axes)
    groupSize *= axisSizes[a];
  group.members.reserve(groupSize);
  std::vector<int> c = coords;
  for (int i = 0; i < groupSize; ++i) {
    // Decompose i over the group axes, last listed fastest.
    int rest = i;
    for (size_t k = axes.size(); k-- > 0;) {
      c[axes[k]] = rest % axisSizes[axes[k]];
      rest /= axisSizes[axes[k]];
    }
    group.members.push_back(meshRank(axisSizes, c));
  }

  int index = 0;
  for (int a : axes)
    index = index * axisSizes[a] + coords[a];
  group.index = index;

  int color = 0;
  for (size_t a = 0; a < axisSizes.size(); ++a)
    if (!inGroup[a])
      color = color * axisSizes[a] + coords[a];
  group.color = color;
  return group;
}

/// Every group over `axes`, ordered by color; together they partition the
/// mesh.
inline std::vector<std::vector<int>>
allMeshGroups(const std::vector<int> &axisSizes, const std::vector<int> &axes) {
  int n = meshSize(axisSizes);
  std::vector<std::vector<int>> groups;
  for (int r = 0; r < n; ++r) {
    MeshGroup g = meshGroup(axisSizes, r, axes);
    if (g.index != 0)
      continue;
    if (static_cast<size_t>(g.color) >= groups.size())
      groups.resize(g.color + 1);
    groups[g.color] = std::move(g.members);
  }
  return groups;
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_MESHGROUPS_H
