//===- Mesh.cpp - Device mesh arithmetic ----------------------------------===//

#include "loom/runtime/Mesh.h"

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

std::vector<int64_t> Mesh::coords(int64_t rank) const {
  std::vector<int64_t> c(axisSizes.size());
  for (size_t i = axisSizes.size(); i-- > 0;) {
    c[i] = rank % axisSizes[i];
    rank /= axisSizes[i];
  }
  return c;
}

int64_t Mesh::rankOf(const std::vector<int64_t> &c) const {
  int64_t r = 0;
  for (size_t i = 0; i < axisSizes.size(); ++i)
    r = r * axisSizes[i] + c[i];
  return r;
}

int64_t Mesh::groupSize(const std::vector<int> &axes) const {
  int64_t n = 1;
  for (int a : axes)
    n *= axisSizes[a];
  return n;
}

std::vector<int64_t> Mesh::groupRanks(int64_t rank,
                                      const std::vector<int> &axes) const {
  std::vector<int64_t> base = coords(rank);
  int64_t n = groupSize(axes);
  std::vector<int64_t> ranks;
  ranks.reserve(n);
  for (int64_t g = 0; g < n; ++g) {
    std::vector<int64_t> c = base;
    int64_t rest = g;
    for (size_t i = axes.size(); i-- > 0;) {
      c[axes[i]] = rest % axisSizes[axes[i]];
      rest /= axisSizes[axes[i]];
    }
    ranks.push_back(rankOf(c));
  }
  return ranks;
}

int64_t Mesh::groupRank(int64_t rank, const std::vector<int> &axes) const {
  std::vector<int64_t> c = coords(rank);
  int64_t g = 0;
  for (int a : axes)
    g = g * axisSizes[a] + c[a];
  return g;
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
