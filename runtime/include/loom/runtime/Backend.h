//===- Backend.h - Kernel backends (CPU built in, CUDA plugin) --*- C++ -*-===//
//
// A backend owns device memory and runs the compute instructions of a
// program. The executor decodes every instruction once, per rank, into an
// OpCall (resolved pointers, shapes and attributes), asks the backend to
// prepare it (pick a kernel, size its scratch), and then only calls
// `call.kernel(call, ctx)` while running. Collectives are not the backend's
// business: the executor hands backend pointers to a Communicator.
//
// The CPU backend is built in ("cpu"). Other backends are plugins behind the
// C table of BackendPlugin.h: createBackend("cuda") loads libloom_cuda.so,
// createBackend("/path/libfoo.so") a plugin file (loadBackendPlugin()).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_BACKEND_H
#define LOOM_RUNTIME_BACKEND_H

#include "loom/runtime/BackendPlugin.h"
#include "loom/runtime/DType.h"
#include "loom/runtime/Opcode.h"
#include "loom/runtime/Program.h"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::runtime {

/// Raised by a kernel for a run-time data error (an id out of range). The
/// executor adds the instruction and its source location.
class KernelError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A buffer as a kernel sees it.
struct TensorRef {
  void *data = nullptr;
  DType dtype = DType::F32;
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t numel = 1;
  uint64_t bytes = 0;

  int64_t dim(int i) const { return shape[i < 0 ? i + rank : i]; }
  template <typename T> T *as() const { return static_cast<T *>(data); }
};

/// Attributes resolved for one rank, at the slots of the op table
/// (attr::Softmax::axis, ...): the plugin ABI's struct, so that calls cross
/// into plugins unchanged.
using OpAttrs = LoomKernelAttrs;

struct OpCall;
struct KernelContext;
using KernelFn = void (*)(const OpCall &call, KernelContext &ctx);

/// One decoded instruction.
struct OpCall {
  Opcode op = Opcode::Invalid;
  uint32_t index = 0; ///< instruction index in the program
  StreamKind stream = StreamKind::Compute;
  std::vector<TensorRef> in, out;
  OpAttrs attrs = {};
  /// Set by Backend::prepare; null means "nothing to do" (an alias reshape).
  KernelFn kernel = nullptr;
  /// Bytes of scratch the kernel needs (set by Backend::prepare).
  size_t scratchBytes = 0;
  /// Backend-private data (e.g. a cached plan); owned by the backend.
  void *backendData = nullptr;
};

/// Attribute `slot` of a call: attrOf(c, attr::Scale::factor).f.
inline const LoomAttrValue &attrOf(const OpCall &call, int slot) {
  return call.attrs.values[slot];
}

struct KernelContext {
  void *scratch = nullptr; ///< at least call.scratchBytes, 64-byte aligned
  size_t scratchBytes = 0;
  class Backend *backend = nullptr;
};

class Backend {
public:
  virtual ~Backend() = default;
  virtual const char *name() const = 0;
  /// True when the backend's memory is ordinary host memory.
  virtual bool hostMemory() const = 0;

  virtual void *allocate(size_t bytes) = 0;
  virtual void deallocate(void *ptr) = 0;
  virtual void copyToDevice(void *dst, const void *src, size_t bytes) = 0;
  virtual void copyToHost(void *dst, const void *src, size_t bytes) = 0;
  virtual void copyOnDevice(void *dst, const void *src, size_t bytes) = 0;

  /// Chooses the kernel of a decoded compute instruction and sets
  /// call.kernel and call.scratchBytes. Throws std::runtime_error if the
  /// backend cannot run it. Also used by the executor for the transposes
  /// that pack collective operands.
  virtual void prepare(OpCall &call) = 0;
  /// Releases what prepare() stored in call.backendData.
  virtual void release(OpCall &call) { (void)call; }

  /// Stream ordering (no-ops on an in-order backend).
  virtual void recordEvent(int64_t event, StreamKind stream) {
    (void)event;
    (void)stream;
  }
  virtual void waitEvent(int64_t event, StreamKind stream) {
    (void)event;
    (void)stream;
  }
  /// Waits until all launched work is done.
  virtual void synchronize() {}
};

/// "cpu", a plugin name ("cuda": libloom_cuda.so) or a path to a plugin.
/// Throws std::runtime_error if it cannot be created.
std::unique_ptr<Backend> createBackend(const std::string &name,
                                       const std::string &options = "");

/// The built-in CPU backend (OpenBLAS for matmuls).
std::unique_ptr<Backend> createCpuBackend();

} // namespace loom::runtime

#endif // LOOM_RUNTIME_BACKEND_H
