//===- PluginBackend.h - A Backend over a plugin's C table ------*- C++ -*-===//
//
// Host side, no device headers: wraps a LoomBackendPlugin table as the
// runtime's loom::runtime::Backend. Named (not anonymous) namespace so that
// backendPlugin()'s dynamic_cast works across shared-library copies.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_BACKENDS_CUDA_PLUGINBACKEND_H
#define LOOM_RUNTIME_SRC_BACKENDS_CUDA_PLUGINBACKEND_H

#include "loom/runtime/Backend.h"
#include "loom/runtime/BackendPlugin.h"

#include <map>
#include <mutex>
#include <string>

namespace loom::runtime::plugin {

class PluginBackend final : public Backend {
public:
  /// Takes ownership of the table (destroy() is called on destruction).
  explicit PluginBackend(const LoomBackendPlugin &table);
  ~PluginBackend() override;

  const char *name() const override { return table_.name; }
  bool hostMemory() const override { return false; }

  void *allocate(size_t bytes) override;
  void deallocate(void *ptr) override;
  void copyToDevice(void *dst, const void *src, size_t bytes) override;
  void copyToHost(void *dst, const void *src, size_t bytes) override;
  void copyOnDevice(void *dst, const void *src, size_t bytes) override;

  void prepare(OpCall &call) override;
  void release(OpCall &call) override;

  void recordEvent(int64_t event, StreamKind stream) override;
  void waitEvent(int64_t event, StreamKind stream) override;
  void synchronize() override;

  const LoomBackendPlugin &table() const { return table_; }
  LoomStream stream(StreamKind kind) const {
    return kind == StreamKind::Comm ? comm_ : compute_;
  }

  /// Throws for a failed call: KernelError for LOOM_DATA_ERROR, else
  /// std::runtime_error, with the plugin's last error.
  void check(int status, const std::string &what) const;

private:
  static void runKernel(const OpCall &call, KernelContext &ctx);
  LoomEvent event(int64_t id);

  LoomBackendPlugin table_;
  LoomStream compute_ = nullptr, comm_ = nullptr;
  std::mutex eventsMutex_;
  std::map<int64_t, LoomEvent> events_;
};

} // namespace loom::runtime::plugin

#endif // LOOM_RUNTIME_SRC_BACKENDS_CUDA_PLUGINBACKEND_H
