//===- CpuBackend.cpp - The built-in CPU backend --------------------------===//

#include "CpuKernels.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace loom::runtime {
namespace {

class CpuBackend final : public Backend {
public:
  const char *name() const override { return "cpu"; }
  bool hostMemory() const override { return true; }

  void *allocate(size_t bytes) override {
    size_t n = (bytes + 63) / 64 * 64;
    if (n == 0)
      n = 64;
    void *p = std::aligned_alloc(64, n);
    if (!p)
      throw std::runtime_error("cpu backend: cannot allocate " +
                               std::to_string(bytes) + " bytes");
    std::memset(p, 0, n);
    return p;
  }
  void deallocate(void *ptr) override { std::free(ptr); }
  void copyToDevice(void *dst, const void *src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copyToHost(void *dst, const void *src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copyOnDevice(void *dst, const void *src, size_t bytes) override {
    std::memmove(dst, src, bytes);
  }

  void prepare(OpCall &call) override {
    call.kernel = nullptr;
    call.scratchBytes = 0;
    if (cpu::selectElementwise(call) || cpu::selectLinalg(call) ||
        cpu::selectShape(call) || cpu::selectModel(call) ||
        cpu::selectGradient(call))
      return;
    const char *n = opcodeName(call.op);
    throw std::runtime_error(std::string("cpu backend has no kernel for ") +
                             (n ? n : "?"));
  }
};

} // namespace

std::unique_ptr<Backend> createCpuBackend() {
  return std::make_unique<CpuBackend>();
}

} // namespace loom::runtime
