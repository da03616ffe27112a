//===- Mesh.h - Device mesh arithmetic --------------------------*- C++ -*-===//
//
// The one mesh arithmetic of Loom, header-only and free of MLIR, shared by
// the compiler (dialect verifiers, program emitter), the program loader,
// the executor and the communicators.
//
// A mesh is a list of named axes with sizes, outermost first: a rank's id is
// the row-major index of its coordinates, so the LAST axis varies fastest.
// Megatron order (tp fastest, then cp, dp, pp) is the mesh [pp, dp, cp, tp].
//
// A collective over a set of axes runs in the group of ranks that share
// every coordinate outside those axes. Group order: members are ordered by
// their coordinates on the group's axes, taken in the order the axes are
// listed, the last listed varying fastest; listing the axes in mesh order
// keeps the mesh's own order. A rank's index in its group is its position
// in that order.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_MESH_H
#define LOOM_RUNTIME_MESH_H

#include "loom/runtime/CheckedMath.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
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
/// A violated precondition: std::invalid_argument where exceptions exist
/// (the runtime); code built without them (the compiler) checks its inputs
/// first (checkedMeshSize) and never gets here.
inline void meshCheck(bool cond, const std::string &msg) {
  if (cond)
    return;
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
  throw std::invalid_argument("mesh groups: " + msg);
#else
  std::fprintf(stderr, "mesh groups: %s\n", msg.c_str());
  std::abort();
#endif
}
} // namespace detail

/// The number of ranks of a mesh with these axis sizes, or -1 when a size is
/// below 1 or the product exceeds `limit`. Never throws or overflows.
inline int64_t checkedMeshSize(const int64_t *sizes, size_t numAxes,
                               int64_t limit = INT32_MAX) {
  return checkedProduct(sizes, numAxes, 1, INT64_MAX, limit);
}

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

/// A named mesh, as a program declares it.
struct Mesh {
  std::string name;
  std::vector<std::string> axisNames;
  std::vector<int64_t> axisSizes;

  /// Number of ranks (product of the axis sizes; 1 for an empty mesh).
  int64_t size() const {
    int64_t n = 1;
    for (int64_t s : axisSizes)
      n *= s;
    return n;
  }
  /// Index of an axis by name, or -1.
  int axisIndex(const std::string &name) const {
    for (size_t i = 0; i < axisNames.size(); ++i)
      if (axisNames[i] == name)
        return static_cast<int>(i);
    return -1;
  }
  /// Coordinates of `rank`, one per axis.
  std::vector<int64_t> coords(int64_t rank) const {
    std::vector<int> c = meshCoords(intSizes(), static_cast<int>(rank));
    return std::vector<int64_t>(c.begin(), c.end());
  }
  /// Inverse of coords().
  int64_t rankOf(const std::vector<int64_t> &c) const {
    return meshRank(intSizes(), std::vector<int>(c.begin(), c.end()));
  }
  /// Product of the sizes of `axes` (axis indices).
  int64_t groupSize(const std::vector<int> &axes) const {
    int64_t n = 1;
    for (int a : axes)
      n *= axisSizes[a];
    return n;
  }
  /// Global ranks of the group through `rank` spanning `axes` (axis indices,
  /// major first), in group order.
  std::vector<int64_t> groupRanks(int64_t rank,
                                  const std::vector<int> &axes) const {
    std::vector<int> members =
        meshGroup(intSizes(), static_cast<int>(rank), axes).members;
    return std::vector<int64_t>(members.begin(), members.end());
  }
  /// `rank`'s index within its group spanning `axes`.
  int64_t groupRank(int64_t rank, const std::vector<int> &axes) const {
    return meshGroup(intSizes(), static_cast<int>(rank), axes).index;
  }
  /// "[pp=1, dp=2, tp=2]".
  std::string str() const {
    std::string s = "[";
    for (size_t i = 0; i < axisNames.size(); ++i) {
      if (i)
        s += ", ";
      s += axisNames[i] + "=" + std::to_string(axisSizes[i]);
    }
    return s + "]";
  }

private:
  // The program loader bounds meshes to 2^31 ranks, so int holds every rank.
  std::vector<int> intSizes() const {
    return std::vector<int>(axisSizes.begin(), axisSizes.end());
  }
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_MESH_H
