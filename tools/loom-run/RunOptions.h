//===- RunOptions.h - loom-run's command line -------------------*- C++ -*-===//

#ifndef LOOM_TOOLS_LOOM_RUN_RUNOPTIONS_H
#define LOOM_TOOLS_LOOM_RUN_RUNOPTIONS_H

#include <chrono>
#include <cstdint>
#include <string>

namespace loom {

struct RunOptions {
  std::string modelPath;
  /// Ranks to start; 0 means "not given" (launcher environment or 1 rank).
  int nproc = 0;
  std::string comm = "local";
  std::string inputsDir;
  std::string outputsDir;
  uint64_t seed = 0;
  int steps = 1;
  std::string tracePath;
  /// "cpu", "cuda", or the path of a backend plugin.
  std::string backend = "cpu";
  /// Whole-job limit for spawned processes.
  std::chrono::seconds timeout{600};
  /// How long a collective waits for its peers.
  std::chrono::milliseconds deadline{60000};
  bool quiet = false;
  bool help = false;
};

/// Parses argv; throws std::invalid_argument with a message naming the flag.
RunOptions parseRunOptions(int argc, char **argv);
const char *runUsage();

} // namespace loom

#endif // LOOM_TOOLS_LOOM_RUN_RUNOPTIONS_H
