//===- Collectives.h - Collective times by the alpha-beta model -*- C++ -*-===//
//
// The time of a collective over a group of ranks: latency steps · alpha plus
// the bytes each GPU moves over the group's slowest link, with NCCL's bus
// bandwidth factors (nccl-tests, doc/PERFORMANCE.md): a collective of size S
// over n ranks moves factor · S bytes through each GPU's link, factor being
// 2(n-1)/n for all-reduce, (n-1)/n for all-gather, reduce-scatter and
// all-to-all, and 1 for send/recv. S is nccl-tests' size: the buffer of an
// all-reduce, the gathered output of an all-gather, the input of a
// reduce-scatter.
//
// A group spans one node when all its ranks share rank / gpusPerNode; then
// it runs over the intra-node link (NVLink), else over the inter-node link
// (InfiniBand). Ranks are in Megatron's order (tp fastest, then cp, dp,
// pp): world rank = tp_rank + tp·(cp_rank + cp·(dp_rank + dp·pp_rank)), the
// mesh [pp, dp, cp, tp] of loom/runtime/Mesh.h.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COSTMODEL_COLLECTIVES_H
#define LOOM_COSTMODEL_COLLECTIVES_H

#include "loom/CostModel/Cluster.h"

#include "llvm/ADT/ArrayRef.h"

#include <cstdint>
#include <vector>

namespace loom::cost {

enum class Collective {
  AllReduce,
  AllGather,
  ReduceScatter,
  AllToAll,
  SendRecv
};

/// "all-reduce", "all-gather", "reduce-scatter", "all-to-all", "send/recv".
const char *collectiveName(Collective kind);

/// NCCL's bus bandwidth factor for `ranks` ranks (nccl-tests'
/// PERFORMANCE.md): bytes through each GPU's link per byte of size.
double busBandwidthFactor(Collective kind, int64_t ranks);

/// Steps of the ring algorithm, each paying the link's latency once:
/// 2(n-1) for all-reduce, n-1 for all-gather, reduce-scatter and
/// all-to-all, 1 for send/recv.
int64_t latencySteps(Collective kind, int64_t ranks);

/// alpha · steps + factor · bytes / bandwidth; 0 for a group of one rank
/// (send/recv: always one step).
double collectiveTime(Collective kind, int64_t ranks, double bytes,
                      const Link &link);

/// Whether every rank of `group` lies in one node.
bool isWithinNode(const Cluster &cluster, llvm::ArrayRef<int64_t> group);

/// The slowest link `group` spans: intra-node when it lies in one node,
/// else inter-node.
const Link &linkFor(const Cluster &cluster, llvm::ArrayRef<int64_t> group);

/// The axes of the dense mesh, in Megatron's rank order from fastest.
enum class MeshAxisKind { Tp, Cp, Dp, Pp };
const char *axisName(MeshAxisKind axis);

/// Degrees of the dense mesh.
struct MeshDegrees {
  int64_t tp = 1, cp = 1, dp = 1, pp = 1;
  int64_t size() const { return tp * cp * dp * pp; }
};

/// Every group along `axis` (each a list of world ranks, in group order),
/// from the shared mesh arithmetic (loom/runtime/Mesh.h).
std::vector<std::vector<int64_t>> groupsAlong(const MeshDegrees &degrees,
                                              MeshAxisKind axis);

/// Whether every group along `axis` lies in one node: its collectives then
/// run on the intra-node link.
bool isAxisWithinNode(const Cluster &cluster, const MeshDegrees &degrees,
                      MeshAxisKind axis);

/// The link of the point-to-point transfers from pipeline rank
/// `pipelineRank` to (pipelineRank + 1) mod pp (world ranks that differ by
/// tp·cp·dp): intra-node when every such pair lies in one node.
const Link &pipelineLink(const Cluster &cluster, const MeshDegrees &degrees,
                         int64_t pipelineRank);

} // namespace loom::cost

#endif // LOOM_COSTMODEL_COLLECTIVES_H
