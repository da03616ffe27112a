//===- CudaPlugin.cpp - Entry point of the CUDA backend plugin ------------===//
//
// libloom_cuda.so: loomCreateBackendPlugin() picks a device, creates the cuBLAS
// handles and fills the LoomBackendPlugin table (BackendPlugin.h). Memory,
// copies, streams and events map to the CUDA runtime one to one; kernels are
// dispatched by opcode to CudaKernels.cu and CudaLinalg.cpp.
//
//===----------------------------------------------------------------------===//

#include "CudaPlugin.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

using namespace loom::runtime;
using namespace loom::runtime::cuda;

namespace {
thread_local std::string tlsError;
} // namespace

int loom::runtime::cuda::fail(int code, const std::string &msg) {
  tlsError = msg;
  return code;
}
const char *loom::runtime::cuda::lastErrorMessage() { return tlsError.c_str(); }

int loom::runtime::cuda::checkCuda(cudaError_t e, const char *what) {
  if (e == cudaSuccess)
    return LOOM_OK;
  return fail(LOOM_ERROR, std::string("cuda backend: ") + what + ": " +
                              cudaGetErrorName(e) + " (" +
                              cudaGetErrorString(e) + ")");
}

int loom::runtime::cuda::checkCublas(cublasStatus_t s, const char *what) {
  if (s == CUBLAS_STATUS_SUCCESS)
    return LOOM_OK;
  return fail(LOOM_ERROR, std::string("cuda backend: ") + what + ": " +
                              cublasGetStatusName(s) + " (" +
                              cublasGetStatusString(s) + ")");
}

int loom::runtime::cuda::streamBlas(PluginState &st, cudaStream_t s,
                                    StreamBlas **out) {
  std::lock_guard<std::mutex> lock(st.blasMutex);
  StreamBlas &b = st.blas[s];
  if (!b.blas) {
    int rc = checkCublas(cublasCreate(&b.blas), "cublasCreate");
    if (rc != LOOM_OK)
      return rc;
    // Exact f32 (no TF32): results comparable with the CPU backend.
    cublasSetMathMode(b.blas, CUBLAS_DEFAULT_MATH);
    rc = checkCuda(cudaMalloc(&b.workspace, st.workspaceBytes), "cudaMalloc");
    if (rc != LOOM_OK)
      return rc;
    // The same workspace serves cuBLAS and cuBLASLt on this stream.
    rc = checkCublas(cublasSetWorkspace(b.blas, b.workspace, st.workspaceBytes),
                     "cublasSetWorkspace");
    if (rc != LOOM_OK)
      return rc;
  }
  int rc = checkCublas(cublasSetStream(b.blas, s), "cublasSetStream");
  if (rc != LOOM_OK)
    return rc;
  // cublasSetStream resets the workspace to the default pool.
  rc = checkCublas(cublasSetWorkspace(b.blas, b.workspace, st.workspaceBytes),
                   "cublasSetWorkspace");
  if (rc != LOOM_OK)
    return rc;
  *out = &b;
  return LOOM_OK;
}

int64_t loom::runtime::cuda::numel(const LoomTensor &t) {
  int64_t n = 1;
  for (int i = 0; i < t.rank; ++i)
    n *= t.shape[i];
  return n;
}

size_t loom::runtime::cuda::dtypeBytes(int dtype) {
  switch (dtype) {
  case LOOM_F32:
  case LOOM_I32:
    return 4;
  case LOOM_BF16:
  case LOOM_F16:
    return 2;
  default:
    return 8;
  }
}

#define TRY(expr)                                                              \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ != LOOM_OK)                                                        \
      return rc_;                                                              \
  } while (0)

namespace {

PluginState &state(void *self) { return *static_cast<PluginState *>(self); }

int setDevice(PluginState &st) {
  return checkCuda(cudaSetDevice(st.device), "cudaSetDevice");
}

bool isFloat(int dt) {
  return dt == LOOM_F32 || dt == LOOM_BF16 || dt == LOOM_F16;
}
bool isInt(int dt) { return dt == LOOM_I32 || dt == LOOM_I64; }

const char *opName(uint16_t op) {
  switch (op) {
#define LOOM_OPCODE(NAME, VALUE, STR, ...)                                     \
  case VALUE:                                                                  \
    return STR;
#include "loom/runtime/OpTable.inc"
  default:
    return nullptr;
  }
}

/// The experts of a dispatch, combine or combine_grad whose experts
/// dimension is `size`: from expert_start (slot `startAttr`) of
/// total_experts (`totalAttr`; default `size`), as the CPU kernels read them.
ExpertBlock expertBlock(const LoomKernelCall &c, int startAttr, int totalAttr,
                        int groupsAttr, int64_t size) {
  const LoomAttrValue &total = c.attrs.values[totalAttr];
  const LoomAttrValue &groups = c.attrs.values[groupsAttr];
  return {c.attrs.values[startAttr].i, size, total.present ? total.i : size,
          groups.present ? groups.i : 1};
}
/// x[T, H], ids[T, k] -> out[E, C, H].
ExpertBlock dispatchBlock(const LoomKernelCall &c) {
  return expertBlock(c, attr::Dispatch::expert_start,
                     attr::Dispatch::total_experts,
                     attr::Dispatch::token_groups, c.out[0].shape[0]);
}
/// y[E, C, H], w, ids -> out.
ExpertBlock combineBlock(const LoomKernelCall &c) {
  return expertBlock(c, attr::Combine::expert_start,
                     attr::Combine::total_experts, attr::Combine::token_groups,
                     c.in[0].shape[0]);
}
/// y[E, C, H], w, ids, dout -> dy, dw.
ExpertBlock combineGradBlock(const LoomKernelCall &c) {
  return expertBlock(c, attr::CombineGrad::expert_start,
                     attr::CombineGrad::total_experts,
                     attr::CombineGrad::token_groups, c.in[0].shape[0]);
}

int unsupported(const LoomKernelCall &c, const std::string &why) {
  const char *n = opName(c.opcode);
  return fail(LOOM_UNSUPPORTED,
              std::string("cuda backend has no kernel for ") +
                  (n ? n : ("opcode " + std::to_string(c.opcode)).c_str()) +
                  (why.empty() ? "" : ": " + why));
}

void rowMajorStrides(const LoomTensor &t, int64_t *s) {
  int64_t acc = 1;
  for (int i = t.rank - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= t.shape[i];
  }
}

//===- Table functions ----------------------------------------------------===//

const char *lastError(void *) { return lastErrorMessage(); }

const char *deviceName(void *self) { return state(self).deviceName.c_str(); }

void destroy(void *self) {
  PluginState *st = static_cast<PluginState *>(self);
  cudaSetDevice(st->device);
  cudaDeviceSynchronize();
  if (st->lt)
    cublasLtDestroy(st->lt);
  for (auto &entry : st->blas) {
    if (entry.second.blas)
      cublasDestroy(entry.second.blas);
    if (entry.second.workspace)
      cudaFree(entry.second.workspace);
  }
  if (st->err)
    cudaFree(st->err);
  if (st->errHost)
    cudaFreeHost(st->errHost);
  delete st;
}

int allocate(void *self, size_t bytes, void **ptr) {
  TRY(setDevice(state(self)));
  cudaError_t e = cudaMalloc(ptr, std::max<size_t>(bytes, 256));
  if (e != cudaSuccess) {
    size_t freeB = 0, totalB = 0;
    cudaMemGetInfo(&freeB, &totalB);
    return fail(LOOM_ERROR, "cuda backend: cannot allocate " +
                                std::to_string(bytes) + " bytes (" +
                                std::to_string(freeB >> 20) + " MiB free of " +
                                std::to_string(totalB >> 20) +
                                " MiB): " + cudaGetErrorString(e));
  }
  return LOOM_OK;
}

int deallocate(void *self, void *ptr) {
  TRY(setDevice(state(self)));
  return checkCuda(cudaFree(ptr), "cudaFree");
}

int copy(void *self, void *dst, const void *src, size_t bytes,
         LoomStream stream, cudaMemcpyKind kind, const char *what) {
  TRY(setDevice(state(self)));
  if (bytes == 0)
    return LOOM_OK;
  if (!stream)
    return checkCuda(cudaMemcpy(dst, src, bytes, kind), what);
  return checkCuda(
      cudaMemcpyAsync(dst, src, bytes, kind, static_cast<cudaStream_t>(stream)),
      what);
}

int copyH2D(void *self, void *dst, const void *src, size_t bytes,
            LoomStream s) {
  return copy(self, dst, src, bytes, s, cudaMemcpyHostToDevice,
              "copy to device");
}
int copyD2H(void *self, void *dst, const void *src, size_t bytes,
            LoomStream s) {
  return copy(self, dst, src, bytes, s, cudaMemcpyDeviceToHost, "copy to host");
}
int copyD2D(void *self, void *dst, const void *src, size_t bytes,
            LoomStream s) {
  return copy(self, dst, src, bytes, s, cudaMemcpyDeviceToDevice,
              "copy on device");
}

int createStream(void *self, int kind, LoomStream *out) {
  TRY(setDevice(state(self)));
  int least = 0, greatest = 0;
  cudaDeviceGetStreamPriorityRange(&least, &greatest);
  cudaStream_t s = nullptr;
  // Communication gets the higher priority so that it is not starved by
  // compute kernels it overlaps with.
  TRY(checkCuda(
      cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking,
                                   kind == LOOM_STREAM_COMM ? greatest : least),
      "cudaStreamCreate"));
  *out = s;
  return LOOM_OK;
}

int destroyStream(void *self, LoomStream s) {
  TRY(setDevice(state(self)));
  return checkCuda(cudaStreamDestroy(static_cast<cudaStream_t>(s)),
                   "cudaStreamDestroy");
}

int synchronizeStream(void *self, LoomStream s) {
  TRY(setDevice(state(self)));
  return checkCuda(cudaStreamSynchronize(static_cast<cudaStream_t>(s)),
                   "cudaStreamSynchronize");
}

int createEvent(void *self, LoomEvent *out) {
  TRY(setDevice(state(self)));
  cudaEvent_t e = nullptr;
  TRY(checkCuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming),
                "cudaEventCreate"));
  *out = e;
  return LOOM_OK;
}

int destroyEvent(void *self, LoomEvent e) {
  TRY(setDevice(state(self)));
  return checkCuda(cudaEventDestroy(static_cast<cudaEvent_t>(e)),
                   "cudaEventDestroy");
}

int recordEvent(void *self, LoomEvent e, LoomStream s) {
  TRY(setDevice(state(self)));
  return checkCuda(cudaEventRecord(static_cast<cudaEvent_t>(e),
                                   static_cast<cudaStream_t>(s)),
                   "cudaEventRecord");
}

int streamWaitEvent(void *self, LoomStream s, LoomEvent e) {
  TRY(setDevice(state(self)));
  return checkCuda(cudaStreamWaitEvent(static_cast<cudaStream_t>(s),
                                       static_cast<cudaEvent_t>(e), 0),
                   "cudaStreamWaitEvent");
}

//===- Kernels ------------------------------------------------------------===//

int prepare(void *self, const LoomKernelCall *cp, size_t *scratch) {
  const LoomKernelCall &c = *cp;
  *scratch = 0;
  if (isLinalg(c.opcode))
    return prepareLinalg(state(self), c, scratch);
  int dt = c.numOut > 0 ? static_cast<int>(c.out[0].dtype) : LOOM_F32;
  auto needFloat = [&]() -> int {
    if (!isFloat(dt))
      return unsupported(c, "element type must be f32, bf16 or f16");
    for (int i = 0; i < c.numIn; ++i)
      if (c.in[i].dtype != dt)
        return unsupported(c, "operands of different element types");
    return LOOM_OK;
  };
  auto sameOutputs = [&] {
    for (int i = 0; i < c.numOut; ++i)
      if (c.out[i].dtype != dt)
        return false;
    return true;
  };
  if (isElementwise(c.opcode))
    return needFloat();
  switch (c.opcode) {
  case kFill:
  case kCopy:
  case kConvert:
  case kReshape:
  case kTranspose:
  case kSlice:
  case kConcat:
  case kBroadcast:
  case kAdamW:
  case kEmbedding:
    return LOOM_OK;
  case kRmsNorm:
  case kLayerNorm:
  case kSoftmax:
  case kRope:
    return needFloat();
  case kReduce:
    if (!isFloat(c.in[0].dtype) || c.in[0].dtype != dt)
      return unsupported(c, "element type must be f32, bf16 or f16");
    return LOOM_OK;
  case kCrossEntropy: {
    if (!isFloat(c.in[0].dtype))
      return unsupported(c, "logits must be f32, bf16 or f16");
    int64_t v = c.in[0].rank ? c.in[0].shape[c.in[0].rank - 1] : 1;
    int64_t rows = v ? numel(c.in[0]) / v : 0;
    *scratch = align256(std::max<int64_t>(rows, 1) * sizeof(float));
    return LOOM_OK;
  }
  case kRouter:
    if (!isFloat(c.in[0].dtype) || c.out[0].dtype != c.in[0].dtype)
      return unsupported(c, "logits and weights must share a float type");
    *scratch = align256(numel(c.in[0]) * sizeof(float));
    return LOOM_OK;
  case kDispatch: {
    ExpertBlock block = dispatchBlock(c);
    *scratch = align256((block.total + numel(c.in[1])) * sizeof(int64_t));
    return LOOM_OK;
  }
  case kCombine: {
    if (!isFloat(c.in[0].dtype) || c.in[1].dtype != c.in[0].dtype ||
        c.out[0].dtype != c.in[0].dtype)
      return unsupported(c, "expert outputs, weights and result must share "
                            "a float type");
    ExpertBlock block = combineBlock(c);
    *scratch = align256((block.total + numel(c.in[2])) * sizeof(int64_t));
    return LOOM_OK;
  }
  case kRmsNormGrad:
  case kLayerNormGrad: {
    TRY(needFloat());
    if (!sameOutputs())
      return unsupported(c, "gradients must share the input's float type");
    int64_t h = c.in[0].rank ? c.in[0].shape[c.in[0].rank - 1] : 1;
    int64_t rows = h ? numel(c.in[0]) / h : 0;
    *scratch = normGradScratchBytes(rows, h, c.opcode == kRmsNormGrad ? 1 : 2);
    return LOOM_OK;
  }
  case kSoftmaxGrad:
    return needFloat();
  case kCrossEntropyGrad:
    if (!isFloat(c.in[0].dtype) || c.out[0].dtype != c.in[0].dtype)
      return unsupported(c, "logits and gradient must share a float type");
    if (!isInt(c.in[1].dtype))
      return unsupported(c, "targets must be i32 or i64");
    if (c.in[2].dtype != LOOM_F32)
      return unsupported(c, "the loss cotangent must be f32");
    return LOOM_OK;
  case kEmbeddingGrad:
    if (!isFloat(dt) || c.in[0].dtype != dt)
      return unsupported(c, "table gradient and row gradients must share a "
                            "float type");
    if (!isInt(c.in[1].dtype))
      return unsupported(c, "ids must be i32 or i64");
    *scratch =
        embeddingGradScratchBytes(c.out[0].shape[0], c.out[0].shape[1], dt);
    return LOOM_OK;
  case kRouterGrad:
    if (!isFloat(c.in[0].dtype) || c.in[2].dtype != c.in[0].dtype ||
        c.out[0].dtype != c.in[0].dtype)
      return unsupported(c, "logits, weight gradients and result must share "
                            "a float type");
    if (!isInt(c.in[1].dtype))
      return unsupported(c, "expert indices must be i32 or i64");
    *scratch = routerGradScratchBytes(c.in[0].shape[0], c.in[0].shape[1],
                                      c.in[1].shape[1]);
    return LOOM_OK;
  case kCombineGrad: {
    int t = c.in[0].dtype;
    if (!isFloat(t) || c.in[1].dtype != t || c.in[3].dtype != t ||
        !sameOutputs() || dt != t)
      return unsupported(c, "expert outputs, weights, gradients and results "
                            "must share a float type");
    if (!isInt(c.in[2].dtype))
      return unsupported(c, "expert indices must be i32 or i64");
    ExpertBlock block = combineGradBlock(c);
    *scratch = align256((block.total + numel(c.in[2])) * sizeof(int64_t));
    return LOOM_OK;
  }
  default:
    return unsupported(c, "");
  }
}

/// Launches, then reads the kernel's data-error record back (a stream
/// synchronization, only for the kernels that can meet bad ids).
int checkedLaunch(PluginState &st, cudaStream_t s, const char *what,
                  const std::function<cudaError_t()> &launch) {
  TRY(checkCuda(cudaMemsetAsync(st.err, 0, sizeof(DeviceError), s),
                "cudaMemsetAsync"));
  TRY(checkCuda(launch(), what));
  TRY(checkCuda(cudaMemcpyAsync(st.errHost, st.err, sizeof(DeviceError),
                                cudaMemcpyDeviceToHost, s),
                "cudaMemcpyAsync"));
  TRY(checkCuda(cudaStreamSynchronize(s), what));
  const DeviceError &e = *st.errHost;
  if (e.code == 0)
    return LOOM_OK;
  // The CPU kernels' words: "dispatch expert index", "router_grad expert
  // index", ...
  std::string name = e.code == kErrEmbeddingId          ? "embedding id"
                     : e.code == kErrCrossEntropyTarget ? "cross_entropy target"
                     : e.code == kErrExpertIndex
                         ? std::string(what) + " expert index"
                         : "adamw step";
  if (e.code == kErrAdamWStep)
    return fail(LOOM_DATA_ERROR,
                "adamw step must be >= 1, got " + std::to_string(e.value));
  return fail(LOOM_DATA_ERROR,
              name + " " + std::to_string(e.value) + " at position " +
                  std::to_string(e.position) + " is outside [0, " +
                  std::to_string(e.limit) + ")");
}

/// The vocab-parallel piece an instruction's `vocab_start` (and its
/// log-sum-exp operand, when the loss has one) describe.
VocabPiece vocabPiece(const LoomAttrValue &start,
                      const LoomTensor *logsumexp = nullptr) {
  VocabPiece piece;
  piece.present = start.present;
  piece.start = start.present ? start.i : 0;
  piece.logsumexp =
      logsumexp ? static_cast<const float *>(logsumexp->data) : nullptr;
  return piece;
}

int run(void *self, const LoomKernelCall *cp, LoomStream stream) {
  PluginState &st = state(self);
  const LoomKernelCall &c = *cp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  TRY(setDevice(st));
  if (isLinalg(c.opcode))
    return runLinalg(st, c, s);
  const LoomTensor *in = c.in;
  const LoomTensor &y = c.out[0];
  int dt = y.dtype;
  int64_t n = numel(y);
  const LoomKernelAttrs &a = c.attrs;
  const char *what = opName(c.opcode) ? opName(c.opcode) : "kernel";

  if (isElementwise(c.opcode))
    return checkCuda(launchElementwise(c.opcode, in[0].data,
                                       c.numIn > 1 ? in[1].data : nullptr,
                                       y.data, dt, n, a, s),
                     what);
  switch (c.opcode) {
  case kFill:
    return checkCuda(
        launchFill(y.data, dt, n,
                   static_cast<float>(a.values[attr::Fill::value].f), s),
        what);
  case kCopy:
  case kConvert:
    if (in[0].dtype == dt)
      return checkCuda(y.data == in[0].data
                           ? cudaSuccess
                           : cudaMemcpyAsync(y.data, in[0].data,
                                             n * dtypeBytes(dt),
                                             cudaMemcpyDeviceToDevice, s),
                       what);
    return checkCuda(launchConvert(in[0].data, in[0].dtype, y.data, dt, n, s),
                     what);
  case kReshape:
    if (y.data == in[0].data)
      return LOOM_OK;
    return checkCuda(cudaMemcpyAsync(y.data, in[0].data, n * dtypeBytes(dt),
                                     cudaMemcpyDeviceToDevice, s),
                     what);
  case kRmsNorm:
  case kLayerNorm: {
    int64_t h = in[0].rank ? in[0].shape[in[0].rank - 1] : 1;
    int64_t rows = h ? numel(in[0]) / h : 0;
    static_assert(static_cast<int>(attr::RmsNorm::epsilon) ==
                  static_cast<int>(attr::LayerNorm::epsilon));
    float eps = static_cast<float>(a.values[attr::RmsNorm::epsilon].f);
    if (c.opcode == kRmsNorm)
      return checkCuda(
          launchRmsNorm(in[0].data, in[1].data, y.data, dt, rows, h, eps, s),
          what);
    return checkCuda(launchLayerNorm(in[0].data, in[1].data,
                                     c.numIn > 2 ? in[2].data : nullptr, y.data,
                                     dt, rows, h, eps, s),
                     what);
  }
  case kSoftmax: {
    int ax = static_cast<int>(a.values[attr::Softmax::axis].i);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < ax; ++i)
      outer *= in[0].shape[i];
    for (int i = ax + 1; i < in[0].rank; ++i)
      inner *= in[0].shape[i];
    return checkCuda(
        launchSoftmax(in[0].data, y.data, dt, outer, in[0].shape[ax], inner, s),
        what);
  }
  case kRope:
    return checkCuda(launchRope(in[0].data, y.data, dt, in[0].shape[0],
                                in[0].shape[1], in[0].shape[2], in[0].shape[3],
                                a.values[attr::Rope::position_offset].i,
                                a.values[attr::Rope::theta].f,
                                a.values[attr::Rope::inverse].i != 0, s),
                     what);
  case kAdamW: {
    AdamWArgs w{};
    w.p = in[0].data;
    w.g = in[1].data;
    w.m = in[2].data;
    w.v = in[3].data;
    w.pt = in[0].dtype;
    w.gt = in[1].dtype;
    w.mt = in[2].dtype;
    w.vt = in[3].dtype;
    w.step = in[4].data;
    w.stepType = in[4].dtype;
    w.po = c.out[0].data;
    w.mo = c.out[1].data;
    w.vo = c.out[2].data;
    w.pot = c.out[0].dtype;
    w.mot = c.out[1].dtype;
    w.vot = c.out[2].dtype;
    w.lr = static_cast<const float *>(in[5].data);
    w.gradNorm = c.numIn > 6 ? static_cast<const float *>(in[6].data) : nullptr;
    w.beta1 = a.values[attr::AdamW::beta1].f;
    w.beta2 = a.values[attr::AdamW::beta2].f;
    w.eps = a.values[attr::AdamW::epsilon].f;
    w.weightDecay = a.values[attr::AdamW::weight_decay].f;
    w.maxGradNorm = a.values[attr::AdamW::max_grad_norm].f;
    w.n = numel(in[0]);
    return checkedLaunch(st, s, what,
                         [&] { return launchAdamW(w, st.err, s); });
  }
  case kEmbedding: {
    int64_t rowBytes = in[0].shape[1] * dtypeBytes(in[0].dtype);
    VocabPiece piece = vocabPiece(a.values[attr::Embedding::vocab_start]);
    return checkedLaunch(st, s, what, [&] {
      return launchEmbedding(in[0].data, in[0].shape[0], rowBytes, in[1].data,
                             in[1].dtype, numel(in[1]), piece, y.data, st.err,
                             s);
    });
  }
  case kCrossEntropy: {
    int64_t v = in[0].rank ? in[0].shape[in[0].rank - 1] : 1;
    int64_t rows = numel(in[1]);
    return checkedLaunch(st, s, what, [&] {
      const LoomAttrValue &count = a.values[attr::CrossEntropy::count];
      VocabPiece piece = vocabPiece(a.values[attr::CrossEntropy::vocab_start],
                                    c.numIn > 2 ? &in[2] : nullptr);
      return launchCrossEntropy(in[0].data, in[0].dtype, rows, v, in[1].data,
                                in[1].dtype, count.present ? count.i : 0, piece,
                                static_cast<float *>(y.data),
                                static_cast<float *>(c.scratch), st.err, s);
    });
  }
  case kTranspose:
  case kSlice:
  case kBroadcast: {
    GatherPlan p{};
    p.rank = y.rank;
    p.count = n;
    for (int i = 0; i < y.rank; ++i)
      p.shape[i] = y.shape[i];
    int64_t xs[LOOM_PLUGIN_MAX_RANK] = {};
    rowMajorStrides(in[0], xs);
    if (c.opcode == kTranspose) {
      for (int i = 0; i < y.rank; ++i)
        p.srcStride[i] = xs[a.values[attr::Transpose::permutation].ints[i]];
    } else if (c.opcode == kSlice) {
      for (int i = 0; i < in[0].rank; ++i) {
        p.srcStride[i] = xs[i];
        p.base += a.values[attr::Slice::offsets].ints[i] * xs[i];
      }
    } else {
      for (int i = 0; i < in[0].rank; ++i)
        if (in[0].shape[i] != 1)
          p.srcStride[a.values[attr::Broadcast::dims].ints[i]] = xs[i];
    }
    return checkCuda(launchGather(in[0].data, y.data, p,
                                  static_cast<int>(dtypeBytes(dt)), s),
                     what);
  }
  case kConcat: {
    int d = static_cast<int>(a.values[attr::Concat::dim].i);
    size_t es = dtypeBytes(dt);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < d; ++i)
      outer *= y.shape[i];
    for (int i = d + 1; i < y.rank; ++i)
      inner *= y.shape[i];
    size_t yRow = y.shape[d] * inner * es, acc = 0;
    for (int k = 0; k < c.numIn; ++k) {
      size_t chunk = in[k].shape[d] * inner * es;
      if (chunk && outer)
        TRY(checkCuda(cudaMemcpy2DAsync(static_cast<char *>(y.data) + acc, yRow,
                                        in[k].data, chunk, chunk, outer,
                                        cudaMemcpyDeviceToDevice, s),
                      what));
      acc += chunk;
    }
    return LOOM_OK;
  }
  case kReduce: {
    bool reduced[LOOM_PLUGIN_MAX_RANK] = {};
    const LoomAttrValue &dims = a.values[attr::Reduce::dims];
    for (int i = 0; i < dims.numInts; ++i)
      reduced[dims.ints[i]] = true;
    auto kind = static_cast<attr::ReduceKind>(a.values[attr::Reduce::kind].i);
    int reduce = kind == attr::ReduceKind::max    ? LOOM_REDUCE_MAX
                 : kind == attr::ReduceKind::mean ? LOOM_REDUCE_AVG
                                                  : LOOM_REDUCE_SUM;
    bool square = kind == attr::ReduceKind::sum_squares;
    return checkCuda(launchReduce(in[0].data, y.data, dt, in[0].rank,
                                  in[0].shape, reduced, reduce, square, s),
                     what);
  }
  case kRouter:
    return checkCuda(
        launchRouter(in[0].data, in[0].dtype, in[0].shape[0], in[0].shape[1],
                     a.values[attr::Router::top_k].i,
                     a.values[attr::Router::softmax_before_topk].i,
                     a.values[attr::Router::normalize].i, c.out[0].data,
                     static_cast<int32_t *>(c.out[1].data),
                     static_cast<float *>(c.scratch), s),
        what);
  case kDispatch: {
    int64_t rowBytes = in[0].shape[1] * dtypeBytes(in[0].dtype);
    return checkedLaunch(st, s, what, [&] {
      return launchDispatch(in[0].data, in[0].shape[0], rowBytes, in[1].data,
                            in[1].dtype, in[1].shape[1], dispatchBlock(c),
                            y.shape[1], y.data,
                            static_cast<int64_t *>(c.scratch), st.err, s);
    });
  }
  case kCombine:
    return checkedLaunch(st, s, what, [&] {
      return launchCombine(
          in[0].data, in[1].data, in[0].dtype, in[2].data, in[2].dtype,
          in[1].shape[0], in[1].shape[1], combineBlock(c), in[0].shape[1],
          in[0].shape[2], y.data, static_cast<int64_t *>(c.scratch), st.err, s);
    });
  case kRmsNormGrad:
  case kLayerNormGrad: {
    // x, w, dy -> dx, dw (, db)
    int64_t h = in[0].rank ? in[0].shape[in[0].rank - 1] : 1;
    int64_t rows = h ? numel(in[0]) / h : 0;
    static_assert(static_cast<int>(attr::RmsNormGrad::epsilon) ==
                  static_cast<int>(attr::LayerNormGrad::epsilon));
    float eps = static_cast<float>(a.values[attr::RmsNormGrad::epsilon].f);
    if (c.opcode == kRmsNormGrad)
      return checkCuda(launchRmsNormGrad(in[0].data, in[1].data, in[2].data,
                                         y.data, c.out[1].data, dt, rows, h,
                                         eps, c.scratch, s),
                       what);
    return checkCuda(launchLayerNormGrad(in[0].data, in[1].data, in[2].data,
                                         y.data, c.out[1].data, c.out[2].data,
                                         dt, rows, h, eps, c.scratch, s),
                     what);
  }
  case kSoftmaxGrad: {
    int ax = static_cast<int>(a.values[attr::SoftmaxGrad::axis].i);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < ax; ++i)
      outer *= in[0].shape[i];
    for (int i = ax + 1; i < in[0].rank; ++i)
      inner *= in[0].shape[i];
    return checkCuda(launchSoftmaxGrad(in[0].data, in[1].data, y.data, dt,
                                       outer, in[0].shape[ax], inner, s),
                     what);
  }
  case kCrossEntropyGrad: {
    int64_t v = in[0].rank ? in[0].shape[in[0].rank - 1] : 1;
    return checkedLaunch(st, s, what, [&] {
      const LoomAttrValue &count = a.values[attr::CrossEntropyGrad::count];
      VocabPiece piece =
          vocabPiece(a.values[attr::CrossEntropyGrad::vocab_start],
                     c.numIn > 3 ? &in[3] : nullptr);
      return launchCrossEntropyGrad(
          in[0].data, dt, numel(in[1]), v, in[1].data, in[1].dtype,
          static_cast<const float *>(in[2].data), count.present ? count.i : 0,
          piece, y.data, st.err, s);
    });
  }
  case kEmbeddingGrad:
    return checkedLaunch(st, s, what, [&] {
      return launchEmbeddingGrad(
          in[0].data, in[1].data, in[1].dtype, numel(in[1]), y.data, dt,
          y.shape[0], y.shape[1],
          vocabPiece(a.values[attr::EmbeddingGrad::vocab_start]), c.scratch,
          st.err, s);
    });
  case kRouterGrad:
    return checkedLaunch(st, s, what, [&] {
      return launchRouterGrad(
          in[0].data, dt, in[1].data, in[1].dtype, in[2].data, y.data,
          in[0].shape[0], in[0].shape[1], in[1].shape[1],
          a.values[attr::RouterGrad::softmax_before_topk].i,
          a.values[attr::RouterGrad::normalize].i, c.scratch, st.err, s);
    });
  case kCombineGrad:
    // y[E, C, H], w[T, k], ids[T, k], dout[T, H] -> dy, dw
    return checkedLaunch(st, s, what, [&] {
      return launchCombineGrad(
          in[0].data, in[1].data, dt, in[2].data, in[2].dtype, in[3].data,
          in[1].shape[0], in[1].shape[1], combineGradBlock(c), in[0].shape[1],
          in[0].shape[2], y.data, c.out[1].data,
          static_cast<int64_t *>(c.scratch), st.err, s);
    });
  default:
    return unsupported(c, "");
  }
}

void copyError(char *error, size_t size, const std::string &msg) {
  if (error && size) {
    std::snprintf(error, size, "%s", msg.c_str());
  }
}

} // namespace

extern "C" __attribute__((visibility("default"))) int
loomCreateBackendPlugin(const char *options, LoomBackendPlugin *out,
                        char *error, size_t errorSize) {
  if (!out)
    return LOOM_INVALID_ARGUMENT;
  std::memset(out, 0, sizeof(*out));

  // Options: "device=N" (comma-separated key=value pairs).
  int device = -1;
  for (std::string opts = options ? options : ""; !opts.empty();) {
    size_t comma = opts.find(',');
    std::string kv = opts.substr(0, comma);
    opts = comma == std::string::npos ? "" : opts.substr(comma + 1);
    if (kv.rfind("device=", 0) == 0) {
      device = std::atoi(kv.c_str() + 7);
    } else if (!kv.empty()) {
      copyError(error, errorSize,
                "cuda backend: unknown option '" + kv +
                    "' (expected device=N)");
      return LOOM_INVALID_ARGUMENT;
    }
  }

  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    copyError(error, errorSize,
              std::string("cuda backend: no usable CUDA device (") +
                  (e != cudaSuccess ? std::string(cudaGetErrorName(e)) + ": " +
                                          cudaGetErrorString(e)
                                    : std::string("no device found")) +
                  "); is a GPU visible (CUDA_VISIBLE_DEVICES) and the NVIDIA "
                  "driver installed?");
    return LOOM_NO_DEVICE;
  }
  if (device < 0) {
    const char *lr = std::getenv("LOCAL_RANK");
    device = lr ? std::atoi(lr) % count : 0;
  }
  if (device >= count) {
    copyError(error, errorSize,
              "cuda backend: device " + std::to_string(device) +
                  " requested but only " + std::to_string(count) + " visible");
    return LOOM_INVALID_ARGUMENT;
  }

  auto *st = new PluginState();
  st->device = device;
  auto bail = [&](const std::string &msg) {
    copyError(error, errorSize, msg);
    destroy(st);
    return LOOM_ERROR;
  };
  if (setDevice(*st) != LOOM_OK)
    return bail(lastErrorMessage());
  cudaDeviceProp prop{};
  if (checkCuda(cudaGetDeviceProperties(&prop, device),
                "cudaGetDeviceProperties") != LOOM_OK)
    return bail(lastErrorMessage());
  st->deviceName = std::string(prop.name) + ", sm_" +
                   std::to_string(prop.major) + std::to_string(prop.minor) +
                   ", " + std::to_string(prop.totalGlobalMem >> 30) + " GiB";
  if (checkCublas(cublasLtCreate(&st->lt), "cublasLtCreate") != LOOM_OK)
    return bail(lastErrorMessage());
  if (checkCuda(
          cudaMalloc(reinterpret_cast<void **>(&st->err), sizeof(DeviceError)),
          "cudaMalloc") != LOOM_OK ||
      checkCuda(cudaMallocHost(reinterpret_cast<void **>(&st->errHost),
                               sizeof(DeviceError)),
                "cudaMallocHost") != LOOM_OK)
    return bail(lastErrorMessage());

  out->abiVersion = LOOM_BACKEND_PLUGIN_ABI;
  out->structSize = sizeof(LoomBackendPlugin);
  out->name = "cuda";
  out->self = st;
  out->lastError = &lastError;
  out->destroy = &destroy;
  out->deviceName = &deviceName;
  out->allocate = &allocate;
  out->deallocate = &deallocate;
  out->copyHostToDevice = &copyH2D;
  out->copyDeviceToHost = &copyD2H;
  out->copyDeviceToDevice = &copyD2D;
  out->createStream = &createStream;
  out->destroyStream = &destroyStream;
  out->synchronizeStream = &synchronizeStream;
  out->createEvent = &createEvent;
  out->destroyEvent = &destroyEvent;
  out->recordEvent = &recordEvent;
  out->streamWaitEvent = &streamWaitEvent;
  out->prepare = &prepare;
  out->run = &run;
  fillCommTable(*out);
  return LOOM_OK;
}
