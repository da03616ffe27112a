//===- BackendRegistry.cpp - Creating backends ----------------------------===//

#include "loom/runtime/Backend.h"
#include "loom/runtime/BackendPlugin.h"

namespace loom::runtime {

std::unique_ptr<Backend> createBackend(const std::string &name,
                                       const std::string &options) {
  if (name == "cpu" || name.empty())
    return createCpuBackend();
  return loadBackendPlugin(name, options);
}

} // namespace loom::runtime
