//===- Cluster.h - The hardware a training step is priced on ----*- C++ -*-===//
//
// A cluster for the cost model: nodes of GPUs with a peak matmul rate, HBM
// bandwidth and capacity, a link inside a node (NVLink) and one between
// nodes (InfiniBand), each with a bandwidth per GPU and a latency. Presets
// for NVIDIA H100 and A100 systems carry every constant with its source; a
// user describes another cluster in a small text file (`key = value` lines,
// docs/CostModel.md). Free of MLIR, so the planner and the runtime can use
// it.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COSTMODEL_CLUSTER_H
#define LOOM_COSTMODEL_CLUSTER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace loom::cost {

/// A link as the alpha-beta model sees it: a collective step costs
/// `latency` (alpha) and every byte 1 / `bandwidth` (beta).
struct Link {
  /// Bytes per second, per GPU, per direction.
  double bandwidth = 0;
  /// Seconds per step of a collective algorithm.
  double latency = 0;
};

/// One constant of a cluster, for printing: its file key, its value in the
/// file's unit, the unit and where it came from.
struct ClusterConstant {
  std::string key;
  double value = 0;
  std::string unit;
  std::string source;
};

struct Cluster {
  /// "h100-ib:8", or the name a cluster file gives.
  std::string name;
  int64_t gpusPerNode = 8;
  int64_t nodes = 1;
  /// Dense bf16 FLOP/s of one GPU (the datasheet's peak, no sparsity).
  double peakFlops = 0;
  /// The fraction of peakFlops large matmuls reach (0, 1].
  double matmulEfficiency = 1;
  /// HBM bytes per second and bytes of one GPU.
  double hbmBandwidth = 0;
  double hbmCapacity = 0;
  /// NVLink inside a node, InfiniBand between nodes.
  Link intraNode;
  Link interNode;
  /// Where each value came from, by file key (see getClusterKeys()).
  std::vector<ClusterConstant> constants;

  int64_t gpus() const { return gpusPerNode * nodes; }
  /// FLOP/s a matmul runs at: peakFlops · matmulEfficiency.
  double matmulFlops() const { return peakFlops * matmulEfficiency; }
  /// The node of a world rank: rank / gpusPerNode.
  int64_t nodeOf(int64_t rank) const { return rank / gpusPerNode; }
};

/// One key of the cluster file format.
struct ClusterKey {
  llvm::StringRef key;
  llvm::StringRef unit;
  llvm::StringRef description;
};

/// Every key of the cluster file, in the order constants are printed.
llvm::ArrayRef<ClusterKey> getClusterKeys();

/// The preset names, as `--cluster` takes them: "h100-node",
/// "h100-ib:N", "a100-ib:N".
llvm::ArrayRef<llvm::StringRef> getClusterPresetNames();

/// A preset by name: "h100-node" (one DGX H100), "h100-ib:N" (N nodes of 8
/// H100 SXM with NDR InfiniBand), "a100-ib:N" (N DGX A100 80GB with HDR
/// InfiniBand). Errors name the text and list the presets.
llvm::Expected<Cluster> getClusterPreset(llvm::StringRef spec);

/// Parses a cluster file: `key = value` lines, `#` starts a comment, blank
/// lines are ignored. `base = PRESET` (first) starts from a preset; every
/// other key then overrides one constant. Without a base every key is
/// required. Errors read "FILE:LINE: what is wrong".
llvm::Expected<Cluster> parseClusterFile(llvm::StringRef text,
                                         llvm::StringRef fileName);

/// Reads and parses a cluster file from disk.
llvm::Expected<Cluster> readClusterFile(llvm::StringRef path);

/// Checks that every value is in range (positive sizes and rates,
/// efficiency in (0, 1]); the problem names the key.
llvm::Error checkCluster(const Cluster &cluster);

} // namespace loom::cost

#endif // LOOM_COSTMODEL_CLUSTER_H
