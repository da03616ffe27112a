//===- Mesh.h - Device mesh arithmetic --------------------------*- C++ -*-===//
//
// A mesh is a list of named axes with sizes, outermost first: a rank's id is
// the row-major index of its coordinates, so the LAST axis varies fastest.
// Megatron order (tp fastest, then cp, dp, pp) is the mesh [pp, dp, cp, tp].
//
// A group spanning a list of axes (major first) holds the ranks that share
// this rank's coordinates on every other axis; a rank's index in the group is
// the row-major index of its coordinates along the group's axes in the order
// given.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_MESH_H
#define LOOM_RUNTIME_MESH_H

#include <cstdint>
#include <string>
#include <vector>

namespace loom::runtime {

struct Mesh {
  std::vector<std::string> axisNames;
  std::vector<int64_t> axisSizes;

  /// Number of ranks (product of the axis sizes; 1 for an empty mesh).
  int64_t size() const;
  /// Index of an axis by name, or -1.
  int axisIndex(const std::string &name) const;
  /// Coordinates of `rank`, one per axis.
  std::vector<int64_t> coords(int64_t rank) const;
  /// Inverse of coords().
  int64_t rankOf(const std::vector<int64_t> &coords) const;
  /// Product of the sizes of `axes` (axis indices).
  int64_t groupSize(const std::vector<int> &axes) const;
  /// Global ranks of the group through `rank` spanning `axes` (axis indices,
  /// major first), in group order.
  std::vector<int64_t> groupRanks(int64_t rank,
                                  const std::vector<int> &axes) const;
  /// `rank`'s index within its group spanning `axes`.
  int64_t groupRank(int64_t rank, const std::vector<int> &axes) const;
  /// "[pp=1, dp=2, tp=2]".
  std::string str() const;

private:
  std::vector<int> intSizes() const;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_MESH_H
