//===- ModelSize.h - What a model configuration would build ----*- C++ -*-===//
//
// loom-models refuses, before building anything, a configuration whose graph
// it cannot build or count: more operations than it builds (the graph and
// its text grow with them, and a typo in --layers would otherwise run a
// machine out of memory), or a tensor or parameter count whose arithmetic
// would overflow the 64-bit counts of the statistics.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TOOLS_LOOM_MODELS_MODELSIZE_H
#define LOOM_TOOLS_LOOM_MODELS_MODELSIZE_H

#include "loom/Models/ModelZoo.h"

#include <cstdint>
#include <optional>
#include <string>

namespace loom {

/// The most operations loom-models builds: about 1000 dense layers, eight
/// times Llama 3 405B's 126; such a graph builds in seconds and well under
/// a gigabyte.
constexpr int64_t kMaxModelOps = 20000;

/// The most elements of one tensor (2^48), and of all parameters (2^53,
/// exact in the doubles of the statistics): far above any model trained
/// today, and far enough from 2^63 that no count of the graph overflows.
constexpr int64_t kMaxTensorElements = int64_t(1) << 48;
constexpr int64_t kMaxParameters = int64_t(1) << 53;

/// The size of the graph of a valid configuration, or why it cannot be
/// built: "the logits (batch x seq x vocab) would have ... elements".
struct ModelSize {
  /// Operations of the module (the module, the function and its ops).
  int64_t ops = 0;
  /// Estimated bytes of the graph's text (about 100 per op and parameter).
  int64_t textBytes = 0;
  int64_t parameters = 0;
};

/// Counts what buildForwardModule() would make of `config` (valid per
/// validateModelConfig), with checked arithmetic. Returns the size, or
/// sets `problem` to what exceeds a limit.
std::optional<ModelSize> estimateModelSize(const ModelConfig &config,
                                           std::string &problem);

} // namespace loom

#endif // LOOM_TOOLS_LOOM_MODELS_MODELSIZE_H
