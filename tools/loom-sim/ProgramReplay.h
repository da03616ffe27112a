//===- ProgramReplay.h - loom-sim --program: a compiled step, priced -*- C++
//-*-===//
//
// Replays a compiled program (one per pipeline rank, with its schedule) on a
// modeled cluster: each instruction priced by the cost model (matmul and
// attention FLOPs at the cluster's matmul rate, other kernels' bytes at its
// memory bandwidth, collectives by the alpha-beta model on the link their
// group spans), summed per schedule action from the program's
// `pipeline.action_spans`, then the schedule simulated with those costs.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TOOLS_LOOM_SIM_PROGRAMREPLAY_H
#define LOOM_TOOLS_LOOM_SIM_PROGRAMREPLAY_H

#include <string>

namespace loom::sim {

struct ProgramReplayOptions {
  std::string program;
  /// A preset ("h100-node") or a cluster file; at most one is set (the
  /// default is h100-node).
  std::string cluster;
  std::string clusterFile;
  /// The simulated timeline as SVG; empty for none.
  std::string svg;
};

/// Runs the mode; prints errors as "loom-sim: error: ..." and returns the
/// exit code.
int runProgramReplay(const ProgramReplayOptions &options);

} // namespace loom::sim

#endif // LOOM_TOOLS_LOOM_SIM_PROGRAMREPLAY_H
