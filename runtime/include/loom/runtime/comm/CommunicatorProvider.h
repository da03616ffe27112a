//===- CommunicatorProvider.h - Communicators of one rank -------*- C++ -*-===//
//
// Makes the communicators of one rank: one per group of world ranks (the
// groups of a program's communicator table). Implemented by the local
// (threads), Gloo (processes) and NCCL (GPUs) communicators. The executor
// takes a CommunicatorFactory function (Runtime.h); ExecutorComms.h adapts a
// provider to it.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_COMMUNICATORPROVIDER_H
#define LOOM_RUNTIME_COMM_COMMUNICATORPROVIDER_H

#include "loom/runtime/Communicator.h"
#include "loom/runtime/Mesh.h"

#include <memory>
#include <vector>

namespace loom::runtime {

class CommunicatorProvider {
public:
  virtual ~CommunicatorProvider() = default;

  /// This process's (or thread's) rank in the world, and the world size.
  virtual int worldRank() const = 0;
  virtual int worldSize() const = 0;

  /// A communicator over the world ranks `members`, in group order; this
  /// rank must be one of them, and every member must ask for the same group.
  /// Creation does not block: multi-process communicators connect on their
  /// first call. Asking twice for the same members gives two independent
  /// communicators, matched across ranks by the order of the requests.
  virtual std::unique_ptr<Communicator>
  group(const std::vector<int> &members) = 0;

  /// The communicator over all ranks, in rank order.
  std::unique_ptr<Communicator> world() {
    std::vector<int> all(worldSize());
    for (int i = 0; i < worldSize(); ++i)
      all[i] = i;
    return group(all);
  }

  /// The communicator of this rank's group over mesh axes `axes` of a mesh
  /// with `axisSizes` (see Mesh.h). By default the mesh spans the
  /// world, mesh rank = world rank; otherwise `meshToWorld[i]` is the world
  /// rank at mesh rank i (e.g. the ranks of one pipeline stage for an MoE
  /// mesh folded over that stage) and must contain this rank.
  std::unique_ptr<Communicator>
  meshGroup(const std::vector<int> &axisSizes, const std::vector<int> &axes,
            const std::vector<int> &meshToWorld = {}) {
    int n = meshSize(axisSizes);
    int meshRank = worldRank();
    if (meshToWorld.empty()) {
      if (n != worldSize())
        throw std::invalid_argument("mesh of " + std::to_string(n) +
                                    " ranks does not match a world of " +
                                    std::to_string(worldSize()));
    } else {
      if (static_cast<int>(meshToWorld.size()) != n)
        throw std::invalid_argument(
            "mesh of " + std::to_string(n) + " ranks given " +
            std::to_string(meshToWorld.size()) + " world ranks");
      meshRank = -1;
      for (int i = 0; i < n; ++i)
        if (meshToWorld[i] == worldRank())
          meshRank = i;
      if (meshRank < 0)
        throw std::invalid_argument("world rank " +
                                    std::to_string(worldRank()) +
                                    " is not part of the mesh");
    }
    std::vector<int> members =
        loom::runtime::meshGroup(axisSizes, meshRank, axes).members;
    if (!meshToWorld.empty())
      for (int &m : members)
        m = meshToWorld[m];
    return group(members);
  }
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_COMMUNICATORPROVIDER_H
