//===- RunOptions.h - loom-run's command line -------------------*- C++ -*-===//

#ifndef LOOM_TOOLS_LOOM_RUN_RUNOPTIONS_H
#define LOOM_TOOLS_LOOM_RUN_RUNOPTIONS_H

#include "loom/runtime/launch/LaunchOptions.h"

#include <string>

namespace loom {

/// loom-run's command line: the model, the job (a library type the launcher
/// reads) and what only the tool itself does.
struct RunOptions {
  std::string modelPath;
  runtime::LaunchOptions launch;
  /// Print nothing but errors (no loss, no summary).
  bool quiet = false;
  bool help = false;
};

/// Parses argv; throws std::invalid_argument with a message naming the flag.
RunOptions parseRunOptions(int argc, char **argv);
const char *runUsage();

} // namespace loom

#endif // LOOM_TOOLS_LOOM_RUN_RUNOPTIONS_H
