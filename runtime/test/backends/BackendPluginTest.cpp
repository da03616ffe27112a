//===- BackendPluginTest.cpp - Plugin loading and the C table adapter -----===//
//
// No GPU here: the adapter is tested with a host-memory plugin table, and
// the real libloom_cuda.so is loaded to check that it links, initializes
// far enough to find that there is no device, and says so.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/BackendPlugin.h"
#include "loom/runtime/Backend.h"
#include "loom/runtime/comm/NcclCommunicator.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace loom::runtime;

namespace {

/// A plugin whose "device" is host memory: add (f32) and a kernel that
/// always reports a data error.
struct Fake {
  int streamsCreated = 0, eventsCreated = 0, records = 0, waits = 0;
  int syncs = 0, runs = 0, destroyed = 0;
  LoomStream lastStream = nullptr;
  std::string error;
  int computeTag = 0, commTag = 0;
};

Fake *fake(void *self) { return static_cast<Fake *>(self); }

const char *fLastError(void *self) { return fake(self)->error.c_str(); }
void fDestroy(void *self) { ++fake(self)->destroyed; }
const char *fDeviceName(void *) { return "host"; }
int fAllocate(void *, size_t bytes, void **p) {
  *p = std::calloc(1, bytes ? bytes : 1);
  return LOOM_OK;
}
int fDeallocate(void *, void *p) {
  std::free(p);
  return LOOM_OK;
}
int fCopy(void *, void *dst, const void *src, size_t bytes, LoomStream) {
  std::memmove(dst, src, bytes);
  return LOOM_OK;
}
int fCreateStream(void *self, int kind, LoomStream *out) {
  Fake *f = fake(self);
  ++f->streamsCreated;
  *out = kind == LOOM_STREAM_COMM ? static_cast<void *>(&f->commTag)
                                  : static_cast<void *>(&f->computeTag);
  return LOOM_OK;
}
int fDestroyStream(void *, LoomStream) { return LOOM_OK; }
int fSync(void *self, LoomStream) {
  ++fake(self)->syncs;
  return LOOM_OK;
}
int fCreateEvent(void *self, LoomEvent *out) {
  ++fake(self)->eventsCreated;
  *out = new int(0);
  return LOOM_OK;
}
int fDestroyEvent(void *, LoomEvent e) {
  delete static_cast<int *>(e);
  return LOOM_OK;
}
int fRecord(void *self, LoomEvent, LoomStream) {
  ++fake(self)->records;
  return LOOM_OK;
}
int fWait(void *self, LoomStream, LoomEvent) {
  ++fake(self)->waits;
  return LOOM_OK;
}
int fPrepare(void *self, const LoomKernelCall *c, size_t *scratch) {
  if (c->opcode == static_cast<uint16_t>(Opcode::Add) ||
      c->opcode == static_cast<uint16_t>(Opcode::CrossEntropy)) {
    *scratch = 128;
    return LOOM_OK;
  }
  fake(self)->error =
      "fake has no kernel for opcode " + std::to_string(c->opcode);
  return LOOM_UNSUPPORTED;
}
int fRun(void *self, const LoomKernelCall *c, LoomStream s) {
  Fake *f = fake(self);
  ++f->runs;
  f->lastStream = s;
  if (!c->scratch || c->scratchBytes < 128) {
    f->error = "no scratch";
    return LOOM_ERROR;
  }
  if (c->opcode == static_cast<uint16_t>(Opcode::CrossEntropy)) {
    f->error = "cross_entropy target 9 at position 0 is outside [0, 4)";
    return LOOM_DATA_ERROR;
  }
  int64_t n = 1;
  for (int i = 0; i < c->out[0].rank; ++i)
    n *= c->out[0].shape[i];
  const float *a = static_cast<const float *>(c->in[0].data);
  const float *b = static_cast<const float *>(c->in[1].data);
  float *y = static_cast<float *>(c->out[0].data);
  for (int64_t i = 0; i < n; ++i)
    y[i] = a[i] + b[i];
  return LOOM_OK;
}

LoomBackendPlugin fakeTable(Fake &f) {
  LoomBackendPlugin t{};
  t.abiVersion = LOOM_BACKEND_PLUGIN_ABI;
  t.structSize = sizeof(LoomBackendPlugin);
  t.name = "fake";
  t.self = &f;
  t.lastError = &fLastError;
  t.destroy = &fDestroy;
  t.deviceName = &fDeviceName;
  t.allocate = &fAllocate;
  t.deallocate = &fDeallocate;
  t.copyHostToDevice = &fCopy;
  t.copyDeviceToHost = &fCopy;
  t.copyDeviceToDevice = &fCopy;
  t.createStream = &fCreateStream;
  t.destroyStream = &fDestroyStream;
  t.synchronizeStream = &fSync;
  t.createEvent = &fCreateEvent;
  t.destroyEvent = &fDestroyEvent;
  t.recordEvent = &fRecord;
  t.streamWaitEvent = &fWait;
  t.prepare = &fPrepare;
  t.run = &fRun;
  return t;
}

TensorRef tensor(void *data, std::vector<int64_t> shape) {
  TensorRef t;
  t.data = data;
  t.dtype = DType::F32;
  t.rank = static_cast<int>(shape.size());
  t.numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    t.shape[i] = shape[i];
    t.numel *= shape[i];
  }
  t.bytes = t.numel * 4;
  return t;
}

/// Runs `fn` with LOOM_BACKEND_PATH set to `value` (unset if null).
template <typename Fn> void withBackendPath(const char *value, Fn fn) {
  const char *old = std::getenv("LOOM_BACKEND_PATH");
  std::string saved = old ? old : "";
  if (value)
    ::setenv("LOOM_BACKEND_PATH", value, 1);
  else
    ::unsetenv("LOOM_BACKEND_PATH");
  fn();
  if (old)
    ::setenv("LOOM_BACKEND_PATH", saved.c_str(), 1);
  else
    ::unsetenv("LOOM_BACKEND_PATH");
}

} // namespace

TEST(BackendPlugin, AdapterRunsKernelsThroughTheTable) {
  Fake f;
  {
    auto backend = wrapBackendPlugin(fakeTable(f));
    EXPECT_STREQ(backend->name(), "fake");
    EXPECT_FALSE(backend->hostMemory());
    EXPECT_EQ(f.streamsCreated, 2);
    ASSERT_NE(backendPlugin(*backend), nullptr);

    std::vector<float> a = {1, 2, 3}, b = {10, 20, 30};
    float *da = static_cast<float *>(backend->allocate(12));
    float *db = static_cast<float *>(backend->allocate(12));
    float *dy = static_cast<float *>(backend->allocate(12));
    backend->copyToDevice(da, a.data(), 12);
    backend->copyToDevice(db, b.data(), 12);

    OpCall call;
    call.op = Opcode::Add;
    call.stream = StreamKind::Comm;
    call.in = {tensor(da, {3}), tensor(db, {3})};
    call.out = {tensor(dy, {3})};
    backend->prepare(call);
    ASSERT_NE(call.kernel, nullptr);
    EXPECT_EQ(call.scratchBytes, 128u);
    std::vector<char> scratch(128);
    KernelContext ctx{scratch.data(), scratch.size(), backend.get()};
    call.kernel(call, ctx);
    EXPECT_EQ(f.lastStream, static_cast<void *>(&f.commTag));
    std::vector<float> y(3);
    backend->copyToHost(y.data(), dy, 12);
    EXPECT_EQ(y, (std::vector<float>{11, 22, 33}));
    backend->release(call);

    // Data errors become KernelError with the plugin's message.
    OpCall ce;
    ce.op = Opcode::CrossEntropy;
    ce.in = {tensor(da, {3}), tensor(db, {3})};
    ce.out = {tensor(dy, {})};
    backend->prepare(ce);
    try {
      ce.kernel(ce, ctx);
      FAIL() << "no KernelError";
    } catch (const KernelError &e) {
      EXPECT_NE(std::string(e.what()).find("target 9"), std::string::npos);
    }
    backend->release(ce);

    // Unsupported opcodes are reported at prepare time.
    OpCall bad;
    bad.op = Opcode::Attention;
    bad.in = {tensor(da, {3})};
    bad.out = {tensor(dy, {3})};
    try {
      backend->prepare(bad);
      FAIL() << "prepared an unsupported opcode";
    } catch (const std::runtime_error &e) {
      EXPECT_NE(std::string(e.what()).find("opcode 30"), std::string::npos)
          << e.what();
    }

    // An alias reshape needs no kernel.
    OpCall alias;
    alias.op = Opcode::Reshape;
    alias.in = {tensor(da, {3})};
    alias.out = {tensor(da, {3, 1})};
    backend->prepare(alias);
    EXPECT_EQ(alias.kernel, nullptr);

    backend->recordEvent(7, StreamKind::Compute);
    backend->waitEvent(7, StreamKind::Comm);
    backend->waitEvent(7, StreamKind::Compute);
    EXPECT_EQ(f.eventsCreated, 1);
    EXPECT_EQ(f.records, 1);
    EXPECT_EQ(f.waits, 2);
    backend->synchronize();

    backend->deallocate(da);
    backend->deallocate(db);
    backend->deallocate(dy);
  }
  EXPECT_EQ(f.destroyed, 1);
}

TEST(BackendPlugin, AbiMismatchIsRejected) {
  Fake f;
  LoomBackendPlugin t = fakeTable(f);
  t.abiVersion = 99;
  EXPECT_THROW(wrapBackendPlugin(t), std::runtime_error);
}

TEST(BackendPlugin, NcclNeedsAPluginWithNccl) {
  Fake f;
  std::shared_ptr<Backend> backend = wrapBackendPlugin(fakeTable(f));
  NcclOptions o;
  o.rank = 0;
  o.size = 1;
  try {
    createNcclCommunicators(backend, o);
    FAIL() << "no CommError";
  } catch (const CommError &e) {
    EXPECT_NE(std::string(e.what()).find("built without NCCL"),
              std::string::npos)
        << e.what();
  }
}

TEST(BackendPlugin, MissingPluginIsExplained) {
  withBackendPath("/nonexistent-loom-dir", [] {
    try {
      loadBackendPlugin("cuda");
      // Possible only where libloom_cuda.so is on the loader's path.
      GTEST_SKIP() << "libloom_cuda.so is on the default loader path";
    } catch (const std::runtime_error &e) {
      std::string what = e.what();
      if (std::getenv("LOOM_TEST_VERBOSE"))
        std::fprintf(stderr, "%s\n", what.c_str());
      if (what.find("was not found") == std::string::npos)
        // Found after all, next to the executable (bin/../lib in the
        // compiler's build tree): then it must have failed on the device.
        GTEST_SKIP() << "plugin found next to the executable: " << what;
      EXPECT_NE(what.find("libloom_cuda.so was not found"), std::string::npos)
          << what;
      EXPECT_NE(what.find("/nonexistent-loom-dir/libloom_cuda.so"),
                std::string::npos)
          << what;
    }
  });
}

#ifdef LOOM_TEST_CUDA_PLUGIN_DIR
TEST(BackendPlugin, CudaPluginLoadsAndReportsTheDevice) {
  withBackendPath(LOOM_TEST_CUDA_PLUGIN_DIR, [] {
    std::unique_ptr<Backend> backend;
    try {
      backend = createBackend("cuda");
    } catch (const std::runtime_error &e) {
      // The expected outcome on a machine without a GPU: the plugin and its
      // CUDA libraries loaded, and it found no device.
      std::string what = e.what();
      if (std::getenv("LOOM_TEST_VERBOSE"))
        std::fprintf(stderr, "%s\n", what.c_str());
      EXPECT_NE(what.find("no usable CUDA device"), std::string::npos) << what;
      return;
    }
    // With a GPU: a fill and a copy back.
    ASSERT_NE(backendPlugin(*backend), nullptr);
    float *d = static_cast<float *>(backend->allocate(16));
    OpCall fill;
    fill.op = Opcode::Fill;
    fill.attrs.values[attr::Fill::value] = {2.5, 0, {}, 0, 1};
    fill.out = {tensor(d, {4})};
    backend->prepare(fill);
    KernelContext ctx{nullptr, 0, backend.get()};
    fill.kernel(fill, ctx);
    backend->synchronize();
    std::vector<float> h(4);
    backend->copyToHost(h.data(), d, 16);
    EXPECT_EQ(h, std::vector<float>(4, 2.5f));
    backend->release(fill);
    backend->deallocate(d);
  });
}

#endif
