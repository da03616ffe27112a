//===- Mesh.cpp - Device mesh arithmetic ----------------------------------===//

#include "loom/runtime/Mesh.h"
#include "loom/runtime/comm/MeshGroups.h"

namespace loom::runtime {

int64_t Mesh::size() const {
  int64_t n = 1;
  for (int64_t s : axisSizes)
    n *= s;
  return n;
}

int Mesh::axisIndex(const std::string &name) const {
  for (size_t i = 0; i < axisNames.size(); ++i)
    if (axisNames[i] == name)
      return static_cast<int>(i);
  return -1;
}

// The row-major arithmetic lives in comm/MeshGroups.h (header-only, shared
// with the communicators); the verifier bounds meshes to 2^31 ranks, so the
// int it works in holds every rank.

std::vector<int> Mesh::intSizes() const {
  return std::vector<int>(axisSizes.begin(), axisSizes.end());
}

std::vector<int64_t> Mesh::coords(int64_t rank) const {
  std::vector<int> c = meshCoords(intSizes(), static_cast<int>(rank));
  return std::vector<int64_t>(c.begin(), c.end());
}

int64_t Mesh::rankOf(const std::vector<int64_t> &c) const {
  return meshRank(intSizes(), std::vector<int>(c.begin(), c.end()));
}

int64_t Mesh::groupSize(const std::vector<int> &axes) const {
  int64_t n = 1;
  for (int a : axes)
    n *= axisSizes[a];
  return n;
}

std::vector<int64_t> Mesh::groupRanks(int64_t rank,
                                      const std::vector<int> &axes) const {
  std::vector<int> members =
      meshGroup(intSizes(), static_cast<int>(rank), axes).members;
  return std::vector<int64_t>(members.begin(), members.end());
}

int64_t Mesh::groupRank(int64_t rank, const std::vector<int> &axes) const {
  return meshGroup(intSizes(), static_cast<int>(rank), axes).index;
}

std::string Mesh::str() const {
  std::string s = "[";
  for (size_t i = 0; i < axisNames.size(); ++i) {
    if (i)
      s += ", ";
    s += axisNames[i] + "=" + std::to_string(axisSizes[i]);
  }
  return s + "]";
}

} // namespace loom::runtime
