//===- RankGroups.cpp - Which ranks form which groups ---------------------===//

#include "loom/runtime/launch/RankGroups.h"

#include <set>
#include <sstream>

namespace loom::runtime {

std::string describeRankGroups(const Program &program, size_t shown) {
  const Mesh &mesh = program.mesh();
  if (mesh.size() <= 1)
    return "";
  std::ostringstream os;
  os << "ranks: mesh @" << mesh.name << " " << mesh.str();
  if (!mesh.axisNames.empty())
    os << ", " << mesh.axisNames.back() << " fastest";
  os << "\n";
  // One line per set of axes, in the order the program first uses them.
  std::set<std::vector<int>> seen;
  for (const CommInfo &comm : program.communicators()) {
    const Mesh &on = program.meshes()[comm.mesh];
    if (on.name != mesh.name || comm.size <= 1 ||
        !seen.insert(comm.axes).second)
      continue;
    std::string axes;
    for (const std::string &name : comm.axisNames)
      axes += (axes.empty() ? "" : "×") + name;
    os << "  " << axes << " groups:";
    // The groups partition the ranks; each is listed from its first rank.
    std::set<int64_t> listed;
    size_t groups = 0;
    for (int64_t rank = 0; rank < mesh.size(); ++rank) {
      if (listed.count(rank))
        continue;
      std::vector<int64_t> members = mesh.groupRanks(rank, comm.axes);
      listed.insert(members.begin(), members.end());
      if (groups++ >= shown)
        continue;
      os << " {";
      for (size_t i = 0; i < members.size(); ++i)
        os << (i ? "," : "") << members[i];
      os << "}";
    }
    if (groups > shown)
      os << " and " << groups - shown << " more";
    os << "\n";
  }
  return os.str();
}

} // namespace loom::runtime
