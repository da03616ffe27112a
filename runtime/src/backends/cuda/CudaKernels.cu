//===- CudaKernels.cu - CUDA kernels of the Loom backend plugin -----------===//
//
// Element-wise, row (norms, softmax, RoPE, loss), shape and mixture-of-experts
// kernels. The math is KernelMath.h's (shared with the CPU backend: its
// activations, fastExp, RoPE angles, AdamW, router); row reductions are split
// across a block, so their summation order differs from the CPU's. Storage
// types are DType.h's (float, bf16_t, f16_t), computed in f32 and rounded on
// store.
//
// Grid-stride loops everywhere, so grids can be capped.
//
//===----------------------------------------------------------------------===//

#include "CudaKernels.h"

#include "loom/runtime/DType.h"
#include "loom/runtime/KernelMath.h"

#include <cuda_runtime.h>

#include <algorithm>

namespace loom::runtime::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRowThreads = 256;

unsigned blocksFor(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>(b, 65535)));
}
unsigned rowBlocks(int64_t rows) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>(rows, 65535)));
}

#define GRID_STRIDE(i, n)                                                      \
  for (int64_t i =                                                             \
           static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;        \
       i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

//===- Loads and stores by run-time dtype ---------------------------------===//

__device__ inline float loadF(const void *p, int dt, int64_t i) {
  switch (dt) {
  case LOOM_F32:
    return static_cast<const float *>(p)[i];
  case LOOM_BF16:
    return bf16ToF32(static_cast<const uint16_t *>(p)[i]);
  case LOOM_F16:
    return f16ToF32(static_cast<const uint16_t *>(p)[i]);
  case LOOM_I32:
    return static_cast<float>(static_cast<const int32_t *>(p)[i]);
  default:
    return static_cast<float>(static_cast<const int64_t *>(p)[i]);
  }
}

__device__ inline void storeF(void *p, int dt, int64_t i, float v) {
  switch (dt) {
  case LOOM_F32:
    static_cast<float *>(p)[i] = v;
    return;
  case LOOM_BF16:
    static_cast<uint16_t *>(p)[i] = f32ToBf16(v);
    return;
  case LOOM_F16:
    static_cast<uint16_t *>(p)[i] = f32ToF16(v);
    return;
  case LOOM_I32:
    static_cast<int32_t *>(p)[i] = static_cast<int32_t>(v);
    return;
  default:
    static_cast<int64_t *>(p)[i] = static_cast<int64_t>(v);
  }
}

__device__ inline int64_t loadIndex(const void *p, int dt, int64_t i) {
  return dt == LOOM_I32 ? static_cast<const int32_t *>(p)[i]
                        : static_cast<const int64_t *>(p)[i];
}

__device__ inline void recordError(DeviceError *e, int code, int64_t pos,
                                   int64_t value, int64_t limit) {
  if (atomicCAS(&e->code, 0, code) == 0) {
    e->position = pos;
    e->value = value;
    e->limit = limit;
  }
}

//===- Block reductions ---------------------------------------------------===//

__device__ inline float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum (or max) over the block, returned to every thread. `sh` holds 32
/// floats; the block is a multiple of 32 threads.
template <bool Max> __device__ float blockReduce(float v, float *sh) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int warps = (blockDim.x + 31) >> 5;
  v = Max ? warpMax(v) : warpSum(v);
  if (lane == 0)
    sh[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? sh[lane] : (Max ? -INFINITY : 0.0f);
    v = Max ? warpMax(v) : warpSum(v);
    if (lane == 0)
      sh[0] = v;
  }
  __syncthreads();
  float total = sh[0];
  __syncthreads();
  return total;
}

//===- Fill, convert, gather ----------------------------------------------===//

__global__ void fillK(void *out, int dt, int64_t n, float value) {
  GRID_STRIDE(i, n) {
    if (dt == LOOM_I32)
      static_cast<int32_t *>(out)[i] = static_cast<int32_t>(value);
    else if (dt == LOOM_I64)
      static_cast<int64_t *>(out)[i] = static_cast<int64_t>(value);
    else
      storeF(out, dt, i, value);
  }
}

__global__ void convertK(const void *in, int it, void *out, int ot, int64_t n) {
  bool inInt = it == LOOM_I32 || it == LOOM_I64;
  bool outInt = ot == LOOM_I32 || ot == LOOM_I64;
  GRID_STRIDE(i, n) {
    if (inInt && outInt) {
      int64_t v = loadIndex(in, it, i);
      if (ot == LOOM_I32)
        static_cast<int32_t *>(out)[i] = static_cast<int32_t>(v);
      else
        static_cast<int64_t *>(out)[i] = v;
    } else {
      storeF(out, ot, i, loadF(in, it, i));
    }
  }
}

template <typename E>
__global__ void gatherK(const E *in, E *out, GatherPlan p) {
  GRID_STRIDE(i, p.count) {
    int64_t rest = i, src = p.base;
    for (int d = p.rank - 1; d >= 0; --d) {
      int64_t c = rest % p.shape[d];
      rest /= p.shape[d];
      src += c * p.srcStride[d];
    }
    out[i] = in[src];
  }
}

//===- Element-wise ops ---------------------------------------------------===//

// One functor per element-wise op of the op table, calling its KernelMath.h
// function (the CPU backend calls the same one).
#define LOOM_ELEMENTWISE_OP(NAME, ARITY, FN)                                   \
  struct NAME##Math {                                                          \
    template <typename... Args> __device__ static float apply(Args... args) {  \
      return math::FN(args...);                                                \
    }                                                                          \
  };
#include "loom/runtime/OpTable.inc"

template <typename T, typename Math>
__global__ void unaryK(const T *x, T *out, int64_t n, LoomKernelAttrs a) {
  GRID_STRIDE(i, n) { out[i] = fromF32<T>(Math::apply(toF32(x[i]), a)); }
}

template <typename T, typename Math>
__global__ void binaryK(const T *x, const T *y, T *out, int64_t n,
                        LoomKernelAttrs a) {
  GRID_STRIDE(i, n) {
    out[i] = fromF32<T>(Math::apply(toF32(x[i]), toF32(y[i]), a));
  }
}

//===- Rows ---------------------------------------------------------------===//

template <typename T>
__global__ void rmsnormK(const T *x, const T *w, T *y, int64_t rows, int64_t h,
                         float eps) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * h;
    T *yr = y + r * h;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
      float v = toF32(xr[i]);
      ss += v * v;
    }
    ss = blockReduce<false>(ss, sh);
    float inv = 1.0f / sqrtf(ss / static_cast<float>(h) + eps);
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x)
      yr[i] = fromF32<T>(toF32(xr[i]) * inv * toF32(w[i]));
  }
}

template <typename T>
__global__ void layernormK(const T *x, const T *w, const T *b, T *y,
                           int64_t rows, int64_t h, float eps) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * h;
    T *yr = y + r * h;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x)
      s += toF32(xr[i]);
    float mean = blockReduce<false>(s, sh) / static_cast<float>(h);
    float v = 0.0f;
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
      float d = toF32(xr[i]) - mean;
      v += d * d;
    }
    float var = blockReduce<false>(v, sh) / static_cast<float>(h);
    float inv = 1.0f / sqrtf(var + eps);
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
      float o = (toF32(xr[i]) - mean) * inv * toF32(w[i]);
      if (b)
        o += toF32(b[i]);
      yr[i] = fromF32<T>(o);
    }
  }
}

/// Contiguous rows (inner == 1): one block per row.
template <typename T>
__global__ void softmaxRowsK(const T *x, T *y, int64_t rows, int64_t n) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * n;
    T *yr = y + r * n;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      mx = fmaxf(mx, toF32(xr[i]));
    mx = blockReduce<true>(mx, sh);
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      s += math::fastExp(toF32(xr[i]) - mx);
    float inv = 1.0f / blockReduce<false>(s, sh);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      yr[i] = fromF32<T>(math::fastExp(toF32(xr[i]) - mx) * inv);
  }
}

/// Strided rows: one thread per row, KernelMath's row function.
template <typename T>
__global__ void softmaxStridedK(const T *x, T *y, int64_t outer, int64_t n,
                                int64_t inner) {
  GRID_STRIDE(r, outer * inner) {
    int64_t o = r / inner, j = r % inner;
    int64_t base = o * n * inner + j;
    math::softmaxRow(x + base, y + base, n, inner);
  }
}

template <typename T>
__global__ void ropeK(const T *x, T *y, int64_t b, int64_t sq, int64_t heads,
                      int64_t d, int64_t offset, double theta, bool inverse) {
  int64_t half = d / 2;
  GRID_STRIDE(idx, b * sq * heads * half) {
    int64_t i = idx % half;
    int64_t head = idx / half; // (ib * sq + is) * heads + ih
    int64_t is = (head / heads) % sq;
    const T *xh = x + head * d;
    T *yh = y + head * d;
    float c, s;
    math::ropeAngle(is + offset, i, d, theta, c, s);
    if (inverse)
      s = -s;
    float x1 = toF32(xh[i]), x2 = toF32(xh[i + half]);
    yh[i] = fromF32<T>(x1 * c - x2 * s);
    yh[i + half] = fromF32<T>(x2 * c + x1 * s);
  }
}

__global__ void maskedSoftmaxK(float *scores, int64_t rows, int64_t sq,
                               int64_t sk, bool causal) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float *row = scores + r * sk;
    int64_t q = r % sq;
    int64_t valid = causal ? (q + 1 < sk ? q + 1 : sk) : sk;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < valid; i += blockDim.x)
      mx = fmaxf(mx, row[i]);
    mx = blockReduce<true>(mx, sh);
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < valid; i += blockDim.x) {
      float e = math::fastExp(row[i] - mx);
      row[i] = e;
      s += e;
    }
    float inv = 1.0f / blockReduce<false>(s, sh);
    for (int64_t i = threadIdx.x; i < sk; i += blockDim.x)
      row[i] = i < valid ? row[i] * inv : 0.0f;
  }
}

//===- AdamW --------------------------------------------------------------===//

__global__ void adamwK(AdamWArgs a, DeviceError *err) {
  int64_t step = loadIndex(a.step, a.stepType, 0);
  if (step < 1) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
      recordError(err, kErrAdamWStep, 0, step, 1);
    return;
  }
  math::AdamWParams prm = math::adamwParams(
      *a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, step, a.maxGradNorm,
      a.gradNorm ? static_cast<double>(*a.gradNorm) : -1.0);
  GRID_STRIDE(i, a.n) {
    float p = loadF(a.p, a.pt, i), g = loadF(a.g, a.gt, i);
    float m = loadF(a.m, a.mt, i), v = loadF(a.v, a.vt, i);
    math::adamwUpdate(p, g, m, v, prm);
    storeF(a.po, a.pot, i, p);
    storeF(a.mo, a.mot, i, m);
    storeF(a.vo, a.vot, i, v);
  }
}

//===- Embedding, loss, reduce --------------------------------------------===//

template <typename E>
__global__ void embeddingK(const E *table, int64_t vocab, int64_t rowElems,
                           const void *ids, int idType, int64_t n, E *out,
                           DeviceError *err) {
  GRID_STRIDE(idx, n * rowElems) {
    int64_t i = idx / rowElems, j = idx % rowElems;
    int64_t id = loadIndex(ids, idType, i);
    if (id < 0 || id >= vocab) {
      if (j == 0)
        recordError(err, kErrEmbeddingId, i, id, vocab);
      continue;
    }
    out[idx] = table[id * rowElems + j];
  }
}

template <typename T>
__global__ void crossEntropyRowsK(const T *logits, int64_t rows, int64_t v,
                                  const void *targets, int tgtType, float *loss,
                                  DeviceError *err) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *row = logits + r * v;
    int64_t t = loadIndex(targets, tgtType, r);
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < v; i += blockDim.x)
      mx = fmaxf(mx, toF32(row[i]));
    mx = blockReduce<true>(mx, sh);
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < v; i += blockDim.x)
      s += math::fastExp(toF32(row[i]) - mx);
    s = blockReduce<false>(s, sh);
    if (threadIdx.x == 0) {
      if (t < 0 || t >= v) {
        recordError(err, kErrCrossEntropyTarget, r, t, v);
        loss[r] = 0.0f;
      } else {
        loss[r] = logf(s) + mx - toF32(row[t]);
      }
    }
  }
}

/// Mean of `rows` losses in double, by one block.
__global__ void meanK(const float *loss, int64_t rows, float *out) {
  __shared__ double sh[kRowThreads];
  double s = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x)
    s += loss[i];
  sh[threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x); ++i)
      total += sh[i];
    *out = static_cast<float>(total / static_cast<double>(rows));
  }
}

struct ReducePlan {
  int32_t rank;
  int64_t shape[LOOM_PLUGIN_MAX_RANK];
  int64_t stride[LOOM_PLUGIN_MAX_RANK];
  bool reduced[LOOM_PLUGIN_MAX_RANK];
  int64_t outCount;
  int64_t redCount;
};

/// One thread per result element; the reduced elements are visited in
/// row-major order (the CPU kernel's order).
template <typename T>
__global__ void reduceK(const T *x, T *y, ReducePlan p, int kind) {
  GRID_STRIDE(o, p.outCount) {
    // Offset of the result element's coordinates (reduced dims at 0).
    int64_t rest = o, base = 0;
    for (int d = p.rank - 1; d >= 0; --d) {
      if (p.reduced[d])
        continue;
      base += (rest % p.shape[d]) * p.stride[d];
      rest /= p.shape[d];
    }
    float acc = kind == LOOM_REDUCE_MAX ? -INFINITY : 0.0f;
    for (int64_t j = 0; j < p.redCount; ++j) {
      int64_t r = j, off = base;
      for (int d = p.rank - 1; d >= 0; --d) {
        if (!p.reduced[d])
          continue;
        off += (r % p.shape[d]) * p.stride[d];
        r /= p.shape[d];
      }
      float v = toF32(x[off]);
      acc = kind == LOOM_REDUCE_MAX ? fmaxf(acc, v) : acc + v;
    }
    if (kind == LOOM_REDUCE_AVG)
      acc /= static_cast<float>(p.redCount);
    y[o] = fromF32<T>(acc);
  }
}

//===- Mixture of experts -------------------------------------------------===//

template <typename T>
__global__ void routerK(const T *logits, int64_t tokens, int64_t e, int64_t k,
                        bool sbt, bool norm, T *w, int32_t *idx,
                        float *scratch) {
  GRID_STRIDE(t, tokens) {
    math::routerRow(logits + t * e, e, k, sbt, norm, scratch + t * e, w + t * k,
                    idx + t * k);
  }
}

/// Slot of every (token, choice) in token order, as the CPU kernels assign
/// them: scratch = [counts: e][slots: tokens * k]; -1 marks a bad index.
__global__ void assignSlotsK(const void *ids, int idType, int64_t tokens,
                             int64_t k, int64_t e, int64_t *scratch,
                             DeviceError *err) {
  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  int64_t *count = scratch, *slot = scratch + e;
  for (int64_t x = 0; x < e; ++x)
    count[x] = 0;
  for (int64_t i = 0; i < tokens * k; ++i) {
    int64_t ex = loadIndex(ids, idType, i);
    if (ex < 0 || ex >= e) {
      recordError(err, kErrExpertIndex, i, ex, e);
      slot[i] = -1;
      continue;
    }
    slot[i] = count[ex]++;
  }
}

template <typename E>
__global__ void dispatchCopyK(const E *x, int64_t rowElems, const void *ids,
                              int idType, int64_t tokens, int64_t k,
                              int64_t capacity, const int64_t *slot, E *out) {
  GRID_STRIDE(idx, tokens * k * rowElems) {
    int64_t c = idx / rowElems, j = idx % rowElems;
    int64_t s = slot[c];
    if (s < 0 || s >= capacity)
      continue;
    int64_t ex = loadIndex(ids, idType, c);
    out[(ex * capacity + s) * rowElems + j] = x[(c / k) * rowElems + j];
  }
}

template <typename T>
__global__ void combineK(const T *y, const T *w, const void *ids, int idType,
                         int64_t tokens, int64_t k, int64_t capacity, int64_t h,
                         const int64_t *slot, T *out) {
  GRID_STRIDE(idx, tokens * h) {
    int64_t t = idx / h, i = idx % h;
    float acc = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      int64_t s = slot[t * k + j];
      if (s < 0 || s >= capacity)
        continue;
      int64_t ex = loadIndex(ids, idType, t * k + j);
      acc += toF32(w[t * k + j]) * toF32(y[(ex * capacity + s) * h + i]);
    }
    out[idx] = fromF32<T>(acc);
  }
}

/// Widest element (8, 4, 2 or 1 bytes) that divides a row and aligns the
/// base pointers, for byte-moving kernels.
int moveWidth(int64_t rowBytes, const void *a, const void *b) {
  auto ok = [&](int w) {
    return rowBytes % w == 0 && reinterpret_cast<uintptr_t>(a) % w == 0 &&
           reinterpret_cast<uintptr_t>(b) % w == 0;
  };
  for (int w : {8, 4, 2})
    if (ok(w))
      return w;
  return 1;
}

} // namespace

//===- Launchers ----------------------------------------------------------===//

#define LOOM_FLOAT_DISPATCH(DT, T, ...)                                        \
  switch (DT) {                                                                \
  case LOOM_F32: {                                                             \
    using T = float;                                                           \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case LOOM_BF16: {                                                            \
    using T = bf16_t;                                                          \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case LOOM_F16: {                                                             \
    using T = f16_t;                                                           \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  default:                                                                     \
    return cudaErrorInvalidValue;                                              \
  }

#define LOOM_WIDTH_DISPATCH(W, E, ...)                                         \
  switch (W) {                                                                 \
  case 8: {                                                                    \
    using E = uint64_t;                                                        \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case 4: {                                                                    \
    using E = uint32_t;                                                        \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case 2: {                                                                    \
    using E = uint16_t;                                                        \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  default: {                                                                   \
    using E = uint8_t;                                                         \
    __VA_ARGS__;                                                               \
  }                                                                            \
  }

cudaError_t launchGather(const void *in, void *out, const GatherPlan &plan,
                         int elemBytes, cudaStream_t s) {
  if (plan.count == 0)
    return cudaSuccess;
  LOOM_WIDTH_DISPATCH(
      elemBytes, E,
      gatherK<E><<<blocksFor(plan.count), kThreads, 0, s>>>(
          static_cast<const E *>(in), static_cast<E *>(out), plan));
  return cudaGetLastError();
}

cudaError_t launchFill(void *out, int dtype, int64_t n, float value,
                       cudaStream_t s) {
  if (n == 0)
    return cudaSuccess;
  fillK<<<blocksFor(n), kThreads, 0, s>>>(out, dtype, n, value);
  return cudaGetLastError();
}

cudaError_t launchConvert(const void *in, int inType, void *out, int outType,
                          int64_t n, cudaStream_t s) {
  if (n == 0)
    return cudaSuccess;
  convertK<<<blocksFor(n), kThreads, 0, s>>>(in, inType, out, outType, n);
  return cudaGetLastError();
}

template <typename Math, int Arity>
cudaError_t launchElementwiseOf(const void *x, const void *y, void *out,
                                int dtype, int64_t n, const LoomKernelAttrs &a,
                                cudaStream_t s) {
  if constexpr (Arity == 1) {
    LOOM_FLOAT_DISPATCH(
        dtype, T,
        unaryK<T, Math><<<blocksFor(n), kThreads, 0, s>>>(
            static_cast<const T *>(x), static_cast<T *>(out), n, a));
  } else {
    LOOM_FLOAT_DISPATCH(dtype, T,
                        binaryK<T, Math><<<blocksFor(n), kThreads, 0, s>>>(
                            static_cast<const T *>(x),
                            static_cast<const T *>(y), static_cast<T *>(out), n,
                            a));
  }
  return cudaGetLastError();
}

bool isElementwise(int opcode) {
  switch (opcode) {
#define LOOM_ELEMENTWISE_OP(NAME, ARITY, FN)                                   \
  case static_cast<int>(Opcode::NAME):                                         \
    return true;
#include "loom/runtime/OpTable.inc"
  default:
    return false;
  }
}

cudaError_t launchElementwise(int opcode, const void *x, const void *y,
                              void *out, int dtype, int64_t n,
                              const LoomKernelAttrs &a, cudaStream_t s) {
  if (n == 0)
    return cudaSuccess;
  switch (opcode) {
#define LOOM_ELEMENTWISE_OP(NAME, ARITY, FN)                                   \
  case static_cast<int>(Opcode::NAME):                                         \
    return launchElementwiseOf<NAME##Math, ARITY>(x, y, out, dtype, n, a, s);
#include "loom/runtime/OpTable.inc"
  default:
    return cudaErrorInvalidValue;
  }
}

cudaError_t launchRmsNorm(const void *x, const void *w, void *y, int dtype,
                          int64_t rows, int64_t h, float eps, cudaStream_t s) {
  if (rows == 0 || h == 0)
    return cudaSuccess;
  LOOM_FLOAT_DISPATCH(dtype, T,
                      rmsnormK<T><<<rowBlocks(rows), kRowThreads, 0, s>>>(
                          static_cast<const T *>(x), static_cast<const T *>(w),
                          static_cast<T *>(y), rows, h, eps));
  return cudaGetLastError();
}

cudaError_t launchLayerNorm(const void *x, const void *w, const void *b,
                            void *y, int dtype, int64_t rows, int64_t h,
                            float eps, cudaStream_t s) {
  if (rows == 0 || h == 0)
    return cudaSuccess;
  LOOM_FLOAT_DISPATCH(dtype, T,
                      layernormK<T><<<rowBlocks(rows), kRowThreads, 0, s>>>(
                          static_cast<const T *>(x), static_cast<const T *>(w),
                          static_cast<const T *>(b), static_cast<T *>(y), rows,
                          h, eps));
  return cudaGetLastError();
}

cudaError_t launchSoftmax(const void *x, void *y, int dtype, int64_t outer,
                          int64_t n, int64_t inner, cudaStream_t s) {
  if (outer == 0 || n == 0 || inner == 0)
    return cudaSuccess;
  if (inner == 1) {
    LOOM_FLOAT_DISPATCH(
        dtype, T,
        softmaxRowsK<T><<<rowBlocks(outer), kRowThreads, 0, s>>>(
            static_cast<const T *>(x), static_cast<T *>(y), outer, n));
  } else {
    LOOM_FLOAT_DISPATCH(
        dtype, T,
        softmaxStridedK<T><<<blocksFor(outer * inner), kThreads, 0, s>>>(
            static_cast<const T *>(x), static_cast<T *>(y), outer, n, inner));
  }
  return cudaGetLastError();
}

cudaError_t launchRope(const void *x, void *y, int dtype, int64_t b, int64_t sq,
                       int64_t heads, int64_t d, int64_t positionOffset,
                       double theta, bool inverse, cudaStream_t s) {
  int64_t n = b * sq * heads * (d / 2);
  if (n == 0)
    return cudaSuccess;
  LOOM_FLOAT_DISPATCH(dtype, T,
                      ropeK<T><<<blocksFor(n), kThreads, 0, s>>>(
                          static_cast<const T *>(x), static_cast<T *>(y), b, sq,
                          heads, d, positionOffset, theta, inverse));
  return cudaGetLastError();
}

cudaError_t launchMaskedSoftmax(float *scores, int64_t rows, int64_t sq,
                                int64_t sk, bool causal, cudaStream_t s) {
  if (rows == 0 || sk == 0)
    return cudaSuccess;
  maskedSoftmaxK<<<rowBlocks(rows), kRowThreads, 0, s>>>(scores, rows, sq, sk,
                                                         causal);
  return cudaGetLastError();
}

cudaError_t launchAdamW(const AdamWArgs &a, DeviceError *err, cudaStream_t s) {
  adamwK<<<blocksFor(std::max<int64_t>(a.n, 1)), kThreads, 0, s>>>(a, err);
  return cudaGetLastError();
}

cudaError_t launchEmbedding(const void *table, int64_t vocab, int64_t rowBytes,
                            const void *ids, int idType, int64_t n, void *out,
                            DeviceError *err, cudaStream_t s) {
  if (n == 0 || rowBytes == 0)
    return cudaSuccess;
  int w = moveWidth(rowBytes, table, out);
  int64_t rowElems = rowBytes / w;
  LOOM_WIDTH_DISPATCH(w, E,
                      embeddingK<E>
                      <<<blocksFor(n * rowElems), kThreads, 0, s>>>(
                          static_cast<const E *>(table), vocab, rowElems, ids,
                          idType, n, static_cast<E *>(out), err));
  return cudaGetLastError();
}

cudaError_t launchCrossEntropy(const void *logits, int dtype, int64_t rows,
                               int64_t v, const void *targets, int tgtType,
                               float *out, float *scratch, DeviceError *err,
                               cudaStream_t s) {
  if (rows > 0) {
    LOOM_FLOAT_DISPATCH(dtype, T,
                        crossEntropyRowsK<T>
                        <<<rowBlocks(rows), kRowThreads, 0, s>>>(
                            static_cast<const T *>(logits), rows, v, targets,
                            tgtType, scratch, err));
  }
  meanK<<<1, kRowThreads, 0, s>>>(scratch, rows, out);
  return cudaGetLastError();
}

cudaError_t launchReduce(const void *x, void *y, int dtype, int rank,
                         const int64_t *shape, const bool *reduced, int kind,
                         cudaStream_t s) {
  ReducePlan p{};
  p.rank = rank;
  p.outCount = 1;
  p.redCount = 1;
  int64_t stride = 1;
  for (int d = rank - 1; d >= 0; --d) {
    p.shape[d] = shape[d];
    p.stride[d] = stride;
    p.reduced[d] = reduced[d];
    stride *= shape[d];
    (reduced[d] ? p.redCount : p.outCount) *= shape[d];
  }
  if (p.outCount == 0)
    return cudaSuccess;
  LOOM_FLOAT_DISPATCH(
      dtype, T,
      reduceK<T><<<blocksFor(p.outCount), kThreads, 0, s>>>(
          static_cast<const T *>(x), static_cast<T *>(y), p, kind));
  return cudaGetLastError();
}

cudaError_t launchRouter(const void *logits, int dtype, int64_t tokens,
                         int64_t e, int64_t k, bool softmaxBeforeTopk,
                         bool normalize, void *weights, int32_t *indices,
                         float *scratch, cudaStream_t s) {
  if (tokens == 0)
    return cudaSuccess;
  LOOM_FLOAT_DISPATCH(dtype, T,
                      routerK<T><<<blocksFor(tokens), kThreads, 0, s>>>(
                          static_cast<const T *>(logits), tokens, e, k,
                          softmaxBeforeTopk, normalize,
                          static_cast<T *>(weights), indices, scratch));
  return cudaGetLastError();
}

cudaError_t launchDispatch(const void *x, int64_t tokens, int64_t rowBytes,
                           const void *ids, int idType, int64_t k, int64_t e,
                           int64_t capacity, void *out, int64_t *scratch,
                           DeviceError *err, cudaStream_t s) {
  cudaError_t st = cudaMemsetAsync(out, 0, e * capacity * rowBytes, s);
  if (st != cudaSuccess || tokens * k == 0 || rowBytes == 0)
    return st;
  assignSlotsK<<<1, 1, 0, s>>>(ids, idType, tokens, k, e, scratch, err);
  int w = moveWidth(rowBytes, x, out);
  int64_t rowElems = rowBytes / w;
  LOOM_WIDTH_DISPATCH(
      w, E,
      dispatchCopyK<E><<<blocksFor(tokens * k * rowElems), kThreads, 0, s>>>(
          static_cast<const E *>(x), rowElems, ids, idType, tokens, k, capacity,
          scratch + e, static_cast<E *>(out)));
  return cudaGetLastError();
}

cudaError_t launchCombine(const void *y, const void *w, int dtype,
                          const void *ids, int idType, int64_t tokens,
                          int64_t k, int64_t e, int64_t capacity, int64_t h,
                          void *out, int64_t *scratch, DeviceError *err,
                          cudaStream_t s) {
  if (tokens * h == 0)
    return cudaSuccess;
  assignSlotsK<<<1, 1, 0, s>>>(ids, idType, tokens, k, e, scratch, err);
  LOOM_FLOAT_DISPATCH(dtype, T,
                      combineK<T><<<blocksFor(tokens * h), kThreads, 0, s>>>(
                          static_cast<const T *>(y), static_cast<const T *>(w),
                          ids, idType, tokens, k, capacity, h, scratch + e,
                          static_cast<T *>(out)));
  return cudaGetLastError();
}

} // namespace loom::runtime::cuda
