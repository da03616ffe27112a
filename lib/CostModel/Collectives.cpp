//===- Collectives.cpp - Alpha-beta collective times and link choice ------===//

#include "loom/CostModel/Collectives.h"

#include "loom/runtime/Mesh.h"

using namespace loom::cost;

const char *loom::cost::collectiveName(Collective kind) {
  switch (kind) {
  case Collective::AllReduce:
    return "all-reduce";
  case Collective::AllGather:
    return "all-gather";
  case Collective::ReduceScatter:
    return "reduce-scatter";
  case Collective::AllToAll:
    return "all-to-all";
  case Collective::SendRecv:
    return "send/recv";
  }
  return "?";
}

double loom::cost::busBandwidthFactor(Collective kind, int64_t ranks) {
  if (kind == Collective::SendRecv)
    return 1;
  if (ranks <= 1)
    return 0;
  double n = double(ranks);
  if (kind == Collective::AllReduce)
    return 2 * (n - 1) / n;
  return (n - 1) / n;
}

int64_t loom::cost::latencySteps(Collective kind, int64_t ranks) {
  if (kind == Collective::SendRecv)
    return 1;
  if (ranks <= 1)
    return 0;
  return kind == Collective::AllReduce ? 2 * (ranks - 1) : ranks - 1;
}

double loom::cost::collectiveTime(Collective kind, int64_t ranks, double bytes,
                                  const Link &link) {
  int64_t steps = latencySteps(kind, ranks);
  if (steps == 0)
    return 0;
  return link.latency * double(steps) +
         busBandwidthFactor(kind, ranks) * bytes / link.bandwidth;
}

bool loom::cost::isWithinNode(const Cluster &cluster,
                              llvm::ArrayRef<int64_t> group) {
  for (int64_t rank : group)
    if (cluster.nodeOf(rank) != cluster.nodeOf(group.front()))
      return false;
  return true;
}

const Link &loom::cost::linkFor(const Cluster &cluster,
                                llvm::ArrayRef<int64_t> group) {
  return group.empty() || isWithinNode(cluster, group) ? cluster.intraNode
                                                       : cluster.interNode;
}

const char *loom::cost::axisName(MeshAxisKind axis) {
  switch (axis) {
  case MeshAxisKind::Tp:
    return "tp";
  case MeshAxisKind::Cp:
    return "cp";
  case MeshAxisKind::Dp:
    return "dp";
  case MeshAxisKind::Pp:
    return "pp";
  }
  return "?";
}

/// The mesh [pp, dp, cp, tp] (outermost first) and the index of `axis`.
static std::vector<int> meshSizes(const MeshDegrees &d) {
  return {int(d.pp), int(d.dp), int(d.cp), int(d.tp)};
}
static int meshIndex(MeshAxisKind axis) {
  switch (axis) {
  case MeshAxisKind::Pp:
    return 0;
  case MeshAxisKind::Dp:
    return 1;
  case MeshAxisKind::Cp:
    return 2;
  case MeshAxisKind::Tp:
    return 3;
  }
  return 3;
}

std::vector<std::vector<int64_t>>
loom::cost::groupsAlong(const MeshDegrees &degrees, MeshAxisKind axis) {
  std::vector<std::vector<int64_t>> groups;
  for (const std::vector<int> &group :
       loom::runtime::allMeshGroups(meshSizes(degrees), {meshIndex(axis)}))
    groups.emplace_back(group.begin(), group.end());
  return groups;
}

bool loom::cost::isAxisWithinNode(const Cluster &cluster,
                                  const MeshDegrees &degrees,
                                  MeshAxisKind axis) {
  for (const std::vector<int64_t> &group : groupsAlong(degrees, axis))
    if (!isWithinNode(cluster, group))
      return false;
  return true;
}

const Link &loom::cost::pipelineLink(const Cluster &cluster,
                                     const MeshDegrees &degrees,
                                     int64_t pipelineRank) {
  int64_t stride = degrees.tp * degrees.cp * degrees.dp;
  int64_t next = (pipelineRank + 1) % degrees.pp;
  for (int64_t i = 0; i < stride; ++i) {
    int64_t pair[2] = {pipelineRank * stride + i, next * stride + i};
    if (!isWithinNode(cluster, pair))
      return cluster.interNode;
  }
  return cluster.intraNode;
}
