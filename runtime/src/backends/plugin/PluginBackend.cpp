//===- PluginBackend.cpp - A Backend over a plugin's C table --------------===//

#include "PluginBackend.h"

#include <cstring>
#include <stdexcept>
#include <vector>

using namespace loom::runtime;
using namespace loom::runtime::plugin;

namespace {

/// What prepare() keeps for one instruction: the C call and the operand
/// arrays it points into.
struct Prepared {
  LoomKernelCall call{};
  std::vector<LoomTensor> in, out;
};

LoomTensor toC(const TensorRef &t) {
  LoomTensor c{};
  c.data = t.data;
  c.dtype = static_cast<uint8_t>(t.dtype);
  c.rank = t.rank;
  for (int i = 0; i < t.rank && i < LOOM_PLUGIN_MAX_RANK; ++i)
    c.shape[i] = t.shape[i];
  return c;
}

} // namespace

PluginBackend::PluginBackend(const LoomBackendPlugin &table) : table_(table) {
  check(table_.createStream(table_.self, LOOM_STREAM_COMPUTE, &compute_),
        "create the compute stream");
  check(table_.createStream(table_.self, LOOM_STREAM_COMM, &comm_),
        "create the communication stream");
}

PluginBackend::~PluginBackend() {
  for (auto &e : events_)
    table_.destroyEvent(table_.self, e.second);
  if (compute_) {
    table_.synchronizeStream(table_.self, compute_);
    table_.destroyStream(table_.self, compute_);
  }
  if (comm_) {
    table_.synchronizeStream(table_.self, comm_);
    table_.destroyStream(table_.self, comm_);
  }
  table_.destroy(table_.self);
}

void PluginBackend::check(int status, const std::string &what) const {
  if (status == LOOM_OK)
    return;
  const char *e = table_.lastError ? table_.lastError(table_.self) : nullptr;
  std::string msg = std::string(table_.name) + " backend: " + what + ": " +
                    (e && *e ? e : "error " + std::to_string(status));
  if (status == LOOM_DATA_ERROR)
    throw KernelError(e && *e ? e : msg);
  throw std::runtime_error(msg);
}

void *PluginBackend::allocate(size_t bytes) {
  void *p = nullptr;
  check(table_.allocate(table_.self, bytes, &p), "allocate");
  return p;
}

void PluginBackend::deallocate(void *ptr) {
  // Called from destructors: report nothing.
  if (ptr)
    table_.deallocate(table_.self, ptr);
}

void PluginBackend::copyToDevice(void *dst, const void *src, size_t bytes) {
  check(table_.copyHostToDevice(table_.self, dst, src, bytes, compute_),
        "copy to device");
  check(table_.synchronizeStream(table_.self, compute_), "copy to device");
}

void PluginBackend::copyToHost(void *dst, const void *src, size_t bytes) {
  check(table_.copyDeviceToHost(table_.self, dst, src, bytes, compute_),
        "copy to host");
  check(table_.synchronizeStream(table_.self, compute_), "copy to host");
}

void PluginBackend::copyOnDevice(void *dst, const void *src, size_t bytes) {
  if (dst == src || bytes == 0)
    return;
  check(table_.copyDeviceToDevice(table_.self, dst, src, bytes, compute_),
        "copy on device");
}

void PluginBackend::prepare(OpCall &call) {
  call.kernel = nullptr;
  call.scratchBytes = 0;
  if (call.op == Opcode::Reshape &&
      (call.in[0].data == call.out[0].data || call.out[0].bytes == 0))
    return; // an alias: nothing to run
  auto p = std::make_unique<Prepared>();
  for (const TensorRef &t : call.in)
    p->in.push_back(toC(t));
  for (const TensorRef &t : call.out)
    p->out.push_back(toC(t));
  for (const auto *list : {&call.in, &call.out})
    for (const TensorRef &t : *list)
      if (t.rank > LOOM_PLUGIN_MAX_RANK)
        throw std::runtime_error(std::string(table_.name) +
                                 " backend: a tensor of rank " +
                                 std::to_string(t.rank) + " (at most 8)");
  p->call.opcode = static_cast<uint16_t>(call.op);
  p->call.index = call.index;
  p->call.numIn = static_cast<int32_t>(p->in.size());
  p->call.numOut = static_cast<int32_t>(p->out.size());
  p->call.in = p->in.data();
  p->call.out = p->out.data();
  p->call.attrs = call.attrs;
  size_t scratch = 0;
  int st = table_.prepare(table_.self, &p->call, &scratch);
  if (st != LOOM_OK) {
    const char *e = table_.lastError(table_.self);
    throw std::runtime_error(e && *e ? std::string(e)
                                     : std::string(table_.name) +
                                           " backend cannot run opcode " +
                                           std::to_string(p->call.opcode));
  }
  call.scratchBytes = scratch;
  call.backendData = p.release();
  call.kernel = &PluginBackend::runKernel;
}

void PluginBackend::release(OpCall &call) {
  if (call.kernel == &PluginBackend::runKernel) {
    delete static_cast<Prepared *>(call.backendData);
    call.backendData = nullptr;
  }
}

void PluginBackend::runKernel(const OpCall &call, KernelContext &ctx) {
  auto *self = static_cast<PluginBackend *>(ctx.backend);
  LoomKernelCall c = static_cast<const Prepared *>(call.backendData)->call;
  c.scratch = ctx.scratch;
  c.scratchBytes = ctx.scratchBytes;
  self->check(
      self->table_.run(self->table_.self, &c, self->stream(call.stream)),
      "instruction " + std::to_string(call.index));
}

LoomEvent PluginBackend::event(int64_t id) {
  std::lock_guard<std::mutex> lock(eventsMutex_);
  auto it = events_.find(id);
  if (it != events_.end())
    return it->second;
  LoomEvent e = nullptr;
  check(table_.createEvent(table_.self, &e), "create event");
  events_[id] = e;
  return e;
}

void PluginBackend::recordEvent(int64_t id, StreamKind stream) {
  check(table_.recordEvent(table_.self, event(id), this->stream(stream)),
        "record event " + std::to_string(id));
}

void PluginBackend::waitEvent(int64_t id, StreamKind stream) {
  check(table_.streamWaitEvent(table_.self, this->stream(stream), event(id)),
        "wait for event " + std::to_string(id));
}

void PluginBackend::synchronize() {
  check(table_.synchronizeStream(table_.self, compute_), "synchronize");
  check(table_.synchronizeStream(table_.self, comm_), "synchronize");
}

std::unique_ptr<Backend>
loom::runtime::wrapBackendPlugin(const LoomBackendPlugin &plugin) {
  if (plugin.abiVersion != LOOM_BACKEND_PLUGIN_ABI ||
      plugin.structSize != sizeof(LoomBackendPlugin))
    throw std::runtime_error(
        "backend plugin ABI mismatch: plugin has version " +
        std::to_string(plugin.abiVersion) + " (table of " +
        std::to_string(plugin.structSize) + " bytes), the runtime expects " +
        std::to_string(LOOM_BACKEND_PLUGIN_ABI) + " (" +
        std::to_string(sizeof(LoomBackendPlugin)) + " bytes)");
  return std::make_unique<PluginBackend>(plugin);
}

const LoomBackendPlugin *loom::runtime::backendPlugin(const Backend &backend) {
  auto *p = dynamic_cast<const PluginBackend *>(&backend);
  return p ? &p->table() : nullptr;
}
