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

#include <algorithm>
#include <cmath>
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

//===- The CUDA plugin against the CPU backend (with a GPU only) ----------===//

namespace {

/// A host tensor for one operand or result.
struct Host {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<char> bytes;
};

int64_t count(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

template <typename E>
Host hostOf(DType dt, std::vector<int64_t> shape, const std::vector<E> &v) {
  Host h{dt, std::move(shape), {}};
  h.bytes.resize(v.size() * sizeof(E));
  std::memcpy(h.bytes.data(), v.data(), h.bytes.size());
  EXPECT_EQ(static_cast<int64_t>(v.size()), count(h.shape));
  return h;
}

/// Uniform values in [lo, hi) from a fixed seed.
std::vector<float> randomFloats(int64_t n, uint32_t seed, float lo = -1.0f,
                                float hi = 1.0f) {
  std::vector<float> v(n);
  for (float &x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = lo + (hi - lo) * static_cast<float>(seed >> 8) / 16777216.0f;
  }
  return v;
}

Host f32(std::vector<int64_t> shape, uint32_t seed, float lo = -1.0f,
         float hi = 1.0f) {
  return hostOf(DType::F32, shape, randomFloats(count(shape), seed, lo, hi));
}

Host i32(std::vector<int64_t> shape, const std::vector<int32_t> &v) {
  return hostOf(DType::I32, std::move(shape), v);
}

Host i64(std::vector<int64_t> shape, const std::vector<int64_t> &v) {
  return hostOf(DType::I64, std::move(shape), v);
}

/// A result of this dtype and shape.
Host result(std::vector<int64_t> shape, DType dt = DType::F32) {
  Host h{dt, std::move(shape), {}};
  h.bytes.resize(count(h.shape) * dtypeSize(dt));
  return h;
}

TensorRef refOf(void *data, const Host &h) {
  TensorRef t = tensor(data, h.shape);
  t.dtype = h.dtype;
  t.bytes = t.numel * dtypeSize(h.dtype);
  return t;
}

/// Runs one instruction on `b`; returns its results (KernelError passes).
std::vector<Host> runOn(Backend &b, Opcode op, const OpAttrs &attrs,
                        const std::vector<Host> &in, std::vector<Host> out) {
  OpCall call;
  call.op = op;
  call.attrs = attrs;
  std::vector<void *> mem;
  for (const Host &h : in) {
    mem.push_back(b.allocate(h.bytes.size()));
    b.copyToDevice(mem.back(), h.bytes.data(), h.bytes.size());
    call.in.push_back(refOf(mem.back(), h));
  }
  for (const Host &h : out) {
    mem.push_back(b.allocate(h.bytes.size()));
    call.out.push_back(refOf(mem.back(), h));
  }
  b.prepare(call);
  void *scratch = call.scratchBytes ? b.allocate(call.scratchBytes) : nullptr;
  auto cleanup = [&] {
    b.synchronize();
    b.release(call);
    if (scratch)
      b.deallocate(scratch);
    for (void *p : mem)
      b.deallocate(p);
  };
  try {
    KernelContext ctx{scratch, call.scratchBytes, &b};
    call.kernel(call, ctx);
    b.synchronize();
  } catch (...) {
    cleanup();
    throw;
  }
  for (size_t i = 0; i < out.size(); ++i)
    b.copyToHost(out[i].bytes.data(), call.out[i].data, out[i].bytes.size());
  cleanup();
  return out;
}

std::vector<float> floatsOf(const Host &h) {
  int64_t n = count(h.shape);
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) {
    if (h.dtype == DType::F32) {
      std::memcpy(&v[i], h.bytes.data() + 4 * i, 4);
    } else {
      uint16_t u;
      std::memcpy(&u, h.bytes.data() + 2 * i, 2);
      v[i] = h.dtype == DType::BF16 ? bf16ToF32(u) : f16ToF32(u);
    }
  }
  return v;
}

LoomAttrValue floatAttr(double f) { return {f, 0, {}, 0, 1}; }
LoomAttrValue intAttr(int64_t i) { return {0, i, {}, 0, 1}; }

/// The CUDA backend, or null (the test skips) where there is no GPU.
std::unique_ptr<Backend> cudaOrSkip() {
  std::unique_ptr<Backend> backend;
  withBackendPath(LOOM_TEST_CUDA_PLUGIN_DIR, [&] {
    try {
      backend = createBackend("cuda");
    } catch (const std::runtime_error &e) {
      EXPECT_NE(std::string(e.what()).find("no usable CUDA device"),
                std::string::npos)
          << e.what();
    }
  });
  return backend;
}

/// Runs the instruction on the CPU backend and twice on CUDA: the two CUDA
/// runs agree bit for bit (no atomics), and CUDA agrees with the CPU within
/// `tol` (relative to max(1, |cpu|)).
void expectLikeCpu(Backend &gpu, Opcode op, const OpAttrs &attrs,
                   const std::vector<Host> &in, const std::vector<Host> &out,
                   float tol = 1e-5f) {
  std::unique_ptr<Backend> cpu = createBackend("cpu");
  std::vector<Host> want = runOn(*cpu, op, attrs, in, out);
  std::vector<Host> got = runOn(gpu, op, attrs, in, out);
  std::vector<Host> again = runOn(gpu, op, attrs, in, out);
  for (size_t r = 0; r < out.size(); ++r) {
    EXPECT_EQ(got[r].bytes, again[r].bytes)
        << opcodeName(op) << " result " << r << " is not deterministic";
    std::vector<float> w = floatsOf(want[r]), g = floatsOf(got[r]);
    for (size_t i = 0; i < w.size(); ++i)
      if (g[i] != w[i]) // equal infinities (a log-sum-exp's −∞) pass
        ASSERT_NEAR(g[i], w[i], tol * std::max(1.0f, std::fabs(w[i])))
            << opcodeName(op) << " result " << r << " element " << i;
  }
}

/// The plugin's data error for a bad index, as a KernelError message.
std::string dataError(Backend &gpu, Opcode op, const OpAttrs &attrs,
                      const std::vector<Host> &in,
                      const std::vector<Host> &out) {
  try {
    runOn(gpu, op, attrs, in, out);
  } catch (const KernelError &e) {
    return e.what();
  }
  return "no KernelError";
}

} // namespace

TEST(CudaPlugin, ElementwiseGradientsMatchTheCpu) {
  auto gpu = cudaOrSkip();
  if (!gpu)
    GTEST_SKIP() << "no CUDA device";
  OpAttrs none{};
  expectLikeCpu(*gpu, Opcode::Sqrt, none, {f32({70}, 1, 0.0f, 9.0f)},
                {result({70})});
  expectLikeCpu(*gpu, Opcode::SiluGrad, none,
                {f32({3, 33}, 2), f32({3, 33}, 3)}, {result({3, 33})});
  for (auto approx :
       {attr::GeluApproximation::none, attr::GeluApproximation::tanh}) {
    OpAttrs a{};
    a.values[attr::GeluGrad::approximate] =
        intAttr(static_cast<int64_t>(approx));
    expectLikeCpu(*gpu, Opcode::GeluGrad, a,
                  {f32({3, 33}, 4, -4.0f, 4.0f), f32({3, 33}, 5)},
                  {result({3, 33})});
  }
}

TEST(CudaPlugin, NormAndSoftmaxGradientsMatchTheCpu) {
  auto gpu = cudaOrSkip();
  if (!gpu)
    GTEST_SKIP() << "no CUDA device";
  OpAttrs eps{};
  eps.values[attr::RmsNormGrad::epsilon] = floatAttr(1e-5);
  std::vector<int64_t> xs = {3, 7, 40};
  expectLikeCpu(*gpu, Opcode::RmsNormGrad, eps,
                {f32(xs, 6), f32({40}, 7), f32(xs, 8)},
                {result(xs), result({40})});
  expectLikeCpu(*gpu, Opcode::LayerNormGrad, eps,
                {f32(xs, 9), f32({40}, 10), f32(xs, 11)},
                {result(xs), result({40}), result({40})});
  for (int64_t axis : {2, 1}) { // contiguous rows, then strided
    OpAttrs a{};
    a.values[attr::SoftmaxGrad::axis] = intAttr(axis);
    expectLikeCpu(*gpu, Opcode::SoftmaxGrad, a,
                  {f32({4, 9, 6}, 12, 0.0f, 1.0f), f32({4, 9, 6}, 13)},
                  {result({4, 9, 6})});
  }
}

TEST(CudaPlugin, LossAndEmbeddingGradientsMatchTheCpu) {
  auto gpu = cudaOrSkip();
  if (!gpu)
    GTEST_SKIP() << "no CUDA device";
  OpAttrs none{};
  Host dloss = hostOf(DType::F32, {}, std::vector<float>{0.75f});
  expectLikeCpu(*gpu, Opcode::CrossEntropyGrad, none,
                {f32({2, 3, 11}, 14, -3.0f, 3.0f),
                 i64({2, 3}, {0, 10, 4, 4, 7, 1}), dloss},
                {result({2, 3, 11})});
  // Repeated ids: rows add up in position order, exactly as on the CPU.
  Host ids = i32({2, 5}, {3, 0, 3, 5, 1, 3, 3, 0, 2, 5});
  expectLikeCpu(*gpu, Opcode::EmbeddingGrad, none, {f32({2, 5, 8}, 15), ids},
                {result({6, 8})}, 0.0f);

  std::string e = dataError(*gpu, Opcode::EmbeddingGrad, none,
                            {f32({1, 3, 8}, 16), i32({1, 3}, {0, 6, -1})},
                            {result({6, 8})});
  EXPECT_NE(e.find("embedding id 6 at position 1 is outside [0, 6)"),
            std::string::npos)
      << e;
  e = dataError(*gpu, Opcode::CrossEntropyGrad, none,
                {f32({2, 4}, 17), i32({2}, {1, 9}), dloss}, {result({2, 4})});
  EXPECT_NE(e.find("cross_entropy target 9 at position 1 is outside [0, 4)"),
            std::string::npos)
      << e;
}

TEST(CudaPlugin, MixtureOfExpertsGradientsMatchTheCpu) {
  auto gpu = cudaOrSkip();
  if (!gpu)
    GTEST_SKIP() << "no CUDA device";
  Host ids = i32({5, 2}, {0, 3, 5, 1, 2, 3, 3, 0, 4, 2});
  for (int sbt = 0; sbt < 2; ++sbt)
    for (int norm = 0; norm < 2; ++norm) {
      OpAttrs a{};
      a.values[attr::RouterGrad::softmax_before_topk] = intAttr(sbt);
      a.values[attr::RouterGrad::normalize] = intAttr(norm);
      expectLikeCpu(*gpu, Opcode::RouterGrad, a,
                    {f32({5, 6}, 18, -2.0f, 2.0f), ids, f32({5, 2}, 19)},
                    {result({5, 6})});
    }
  // Expert 3 gets three tokens but has room for two: the third is dropped.
  OpAttrs none{};
  Host moeIds = i64({4, 2}, {3, 0, 1, 3, 3, 2, 0, 1});
  expectLikeCpu(*gpu, Opcode::CombineGrad, none,
                {f32({4, 2, 6}, 20), f32({4, 2}, 21), moeIds, f32({4, 6}, 22)},
                {result({4, 2, 6}), result({4, 2})});

  std::string e =
      dataError(*gpu, Opcode::CombineGrad, none,
                {f32({4, 2, 6}, 20), f32({4, 2}, 21),
                 i64({4, 2}, {3, 0, 1, 4, 3, 2, 0, 1}), f32({4, 6}, 22)},
                {result({4, 2, 6}), result({4, 2})});
  EXPECT_NE(e.find("combine_grad expert index 4 at position 3 is outside "
                   "[0, 4)"),
            std::string::npos)
      << e;
}

TEST(CudaPlugin, ExpertBlocksMatchTheCpu) {
  auto gpu = cudaOrSkip();
  if (!gpu)
    GTEST_SKIP() << "no CUDA device";
  // 6 experts in blocks of 2 and 3; expert 3 has five choices, so capacity
  // 2 drops some. Slots are the whole op's.
  const int64_t e = 6, k = 2, t = 7, h = 5;
  Host ids = i64({t, k}, {0, 3, 3, 1, 3, 5, 2, 3, 4, 1, 3, 0, 5, 2});
  for (int64_t cap : {t, int64_t{2}})
    for (int64_t size : {2, 3})
      for (int64_t start = 0; start < e; start += size) {
        SCOPED_TRACE("capacity " + std::to_string(cap) + ", experts " +
                     std::to_string(start) + " +" + std::to_string(size));
        OpAttrs d{};
        d.values[attr::Dispatch::num_experts] = intAttr(size);
        d.values[attr::Dispatch::capacity] = intAttr(cap);
        d.values[attr::Dispatch::expert_start] = intAttr(start);
        d.values[attr::Dispatch::total_experts] = intAttr(e);
        expectLikeCpu(*gpu, Opcode::Dispatch, d, {f32({t, h}, 23), ids},
                      {result({size, cap, h})}, 0.0f);
        OpAttrs c{};
        c.values[attr::Combine::expert_start] = intAttr(start);
        c.values[attr::Combine::total_experts] = intAttr(e);
        expectLikeCpu(*gpu, Opcode::Combine, c,
                      {f32({size, cap, h}, 24), f32({t, k}, 25), ids},
                      {result({t, h})});
        OpAttrs g{};
        g.values[attr::CombineGrad::expert_start] = intAttr(start);
        g.values[attr::CombineGrad::total_experts] = intAttr(e);
        expectLikeCpu(
            *gpu, Opcode::CombineGrad, g,
            {f32({size, cap, h}, 26), f32({t, k}, 27), ids, f32({t, h}, 28)},
            {result({size, cap, h}), result({t, k})});
      }
  // An index past the block but inside the 6 experts has no slot; one past
  // the 6 is an error naming total_experts' limit.
  OpAttrs d{};
  d.values[attr::Dispatch::num_experts] = intAttr(2);
  d.values[attr::Dispatch::capacity] = intAttr(2);
  d.values[attr::Dispatch::expert_start] = intAttr(2);
  d.values[attr::Dispatch::total_experts] = intAttr(e);
  std::string err =
      dataError(*gpu, Opcode::Dispatch, d,
                {f32({3, h}, 29), i32({3, 1}, {3, 5, 6})}, {result({2, 2, h})});
  EXPECT_NE(err.find("dispatch expert index 6 at position 2 is outside [0, 6)"),
            std::string::npos)
      << err;
}

TEST(CudaPlugin, AttentionGradMatchesTheCpu) {
  auto gpu = cudaOrSkip();
  if (!gpu)
    GTEST_SKIP() << "no CUDA device";
  // 40 query rows: two blocks of the backward; 4 query heads on 2 kv heads.
  std::vector<int64_t> qs = {2, 40, 4, 8}, ks = {2, 40, 2, 8};
  for (int causal = 0; causal < 2; ++causal) {
    OpAttrs a{};
    a.values[attr::AttentionGrad::causal] = intAttr(causal);
    expectLikeCpu(
        *gpu, Opcode::AttentionGrad, a,
        {f32(qs, 23), f32(ks, 24), f32(ks, 25), f32(qs, 26), f32(qs, 27)},
        {result(qs), result(ks), result(ks)}, 1e-4f);
  }
  // bf16 through f32 copies, with an explicit scale.
  OpAttrs a{};
  a.values[attr::AttentionGrad::causal] = intAttr(1);
  a.values[attr::AttentionGrad::scale] = floatAttr(0.5);
  auto bf16 = [](std::vector<int64_t> shape, uint32_t seed) {
    std::vector<float> v = randomFloats(count(shape), seed);
    std::vector<uint16_t> u(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      u[i] = f32ToBf16(v[i]);
    return hostOf(DType::BF16, std::move(shape), u);
  };
  std::vector<int64_t> q1 = {1, 33, 2, 16}, k1 = {1, 33, 1, 16};
  expectLikeCpu(
      *gpu, Opcode::AttentionGrad, a,
      {bf16(q1, 28), bf16(k1, 29), bf16(k1, 30), bf16(q1, 31), bf16(q1, 32)},
      {result(q1, DType::BF16), result(k1, DType::BF16),
       result(k1, DType::BF16)},
      2e-2f);
}

TEST(CudaPlugin, AttentionBlocksMatchTheCpu) {
  auto gpu = cudaOrSkip();
  if (!gpu)
    GTEST_SKIP() << "no CUDA device";
  // 40 query rows (two blocks of the backward) against a block of 24 keys;
  // 4 query heads on 2 kv heads. The offsets give a block wholly visible,
  // one on the diagonal, and one that the first queries do not see (their
  // log-sum-exp is −∞, their rows zero).
  std::vector<int64_t> qs = {2, 40, 4, 8}, ks = {2, 24, 2, 8}, ls = {2, 40, 4};
  struct Offsets {
    int causal;
    int64_t query, key;
  } cases[] = {{0, 0, 0}, {1, 40, 0}, {1, 16, 16}, {1, 0, 8}};
  for (const Offsets &o : cases) {
    OpAttrs a{};
    a.values[attr::AttentionBlock::causal] = intAttr(o.causal);
    a.values[attr::AttentionBlock::query_offset] = intAttr(o.query);
    a.values[attr::AttentionBlock::key_offset] = intAttr(o.key);
    expectLikeCpu(*gpu, Opcode::AttentionBlock, a,
                  {f32(qs, 33), f32(ks, 34), f32(ks, 35)},
                  {result(qs), result(ls)}, 1e-4f);
    OpAttrs g{};
    g.values[attr::AttentionBlockGrad::causal] = intAttr(o.causal);
    g.values[attr::AttentionBlockGrad::query_offset] = intAttr(o.query);
    g.values[attr::AttentionBlockGrad::key_offset] = intAttr(o.key);
    expectLikeCpu(*gpu, Opcode::AttentionBlockGrad, g,
                  {f32(qs, 36), f32(ks, 37), f32(ks, 38), f32(qs, 39),
                   f32(qs, 40), f32(ls, 41, 1.0f, 3.0f)},
                  {result(qs), result(ks), result(ks)}, 1e-4f);
  }
  // bf16 through f32 copies, with an explicit scale; the log-sum-exp is f32.
  auto bf16 = [](std::vector<int64_t> shape, uint32_t seed) {
    std::vector<float> v = randomFloats(count(shape), seed);
    std::vector<uint16_t> u(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      u[i] = f32ToBf16(v[i]);
    return hostOf(DType::BF16, std::move(shape), u);
  };
  std::vector<int64_t> q1 = {1, 33, 2, 16}, k1 = {1, 20, 1, 16},
                       l1 = {1, 33, 2};
  OpAttrs a{};
  a.values[attr::AttentionBlock::causal] = intAttr(1);
  a.values[attr::AttentionBlock::scale] = floatAttr(0.5);
  a.values[attr::AttentionBlock::query_offset] = intAttr(33);
  a.values[attr::AttentionBlock::key_offset] = intAttr(20);
  expectLikeCpu(*gpu, Opcode::AttentionBlock, a,
                {bf16(q1, 42), bf16(k1, 43), bf16(k1, 44)},
                {result(q1, DType::BF16), result(l1)}, 2e-2f);
  OpAttrs g{};
  g.values[attr::AttentionBlockGrad::causal] = intAttr(1);
  g.values[attr::AttentionBlockGrad::scale] = floatAttr(0.5);
  g.values[attr::AttentionBlockGrad::query_offset] = intAttr(33);
  g.values[attr::AttentionBlockGrad::key_offset] = intAttr(20);
  expectLikeCpu(*gpu, Opcode::AttentionBlockGrad, g,
                {bf16(q1, 45), bf16(k1, 46), bf16(k1, 47), bf16(q1, 48),
                 bf16(q1, 49), f32(l1, 50, 1.0f, 3.0f)},
                {result(q1, DType::BF16), result(k1, DType::BF16),
                 result(k1, DType::BF16)},
                2e-2f);
}

#endif
