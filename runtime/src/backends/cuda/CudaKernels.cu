//===- CudaKernels.cu - CUDA kernels of the Loom backend plugin -----------===//
//
// Element-wise, row (norms, softmax, RoPE, loss), shape, mixture-of-experts
// and gradient kernels. The math is KernelMath.h's (shared with the CPU
// backend: its activations, fastExp, RoPE angles, AdamW, router, the
// gradients' row functions); row reductions that are split across a block
// (norms, contiguous softmax, cross-entropy) sum in another order than the
// CPU's. Sums over rows (weight gradients, embedding_grad) never use
// atomics: one thread per column adds the rows in the CPU's order. Storage
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

/// A row's maximum (into `mx`) and Σ exp(row[i] − max), reduced over the
/// block and returned to every thread: the statistics of softmax and of
/// cross-entropy and its gradient.
template <typename T>
__device__ float blockSumExp(const T *row, int64_t n, float *sh, float &mx) {
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    m = fmaxf(m, toF32(row[i]));
  mx = blockReduce<true>(m, sh);
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    s += math::fastExp(toF32(row[i]) - mx);
  return blockReduce<false>(s, sh);
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
    float mx;
    float inv = 1.0f / blockSumExp(xr, n, sh, mx);
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
                               int64_t sk, bool causal, int64_t qOffset) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float *row = scores + r * sk;
    int64_t q = qOffset + r % sq;
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
                           const void *ids, int idType, int64_t n,
                           VocabPiece piece, E *out, DeviceError *err) {
  GRID_STRIDE(idx, n * rowElems) {
    int64_t i = idx / rowElems, j = idx % rowElems;
    int64_t id = loadIndex(ids, idType, i);
    if (id < 0 || (!piece.present && id >= vocab)) {
      if (j == 0)
        recordError(err, kErrEmbeddingId, i, id, vocab);
      continue;
    }
    int64_t r = id - piece.start; // another rank's row: zeros
    out[idx] = r < vocab && r >= 0 ? table[r * rowElems + j] : E{};
  }
}

template <typename T>
__global__ void crossEntropyRowsK(const T *logits, int64_t rows, int64_t v,
                                  const void *targets, int tgtType,
                                  VocabPiece piece, float *loss,
                                  DeviceError *err) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *row = logits + r * v;
    int64_t t = loadIndex(targets, tgtType, r);
    if (piece.logsumexp) { // vocab-parallel: KernelMath's piece row
      if (threadIdx.x == 0) {
        if (t < 0)
          recordError(err, kErrCrossEntropyTarget, r, t, v);
        loss[r] = math::crossEntropyPieceRow(row, v, t - piece.start,
                                             piece.logsumexp[r]);
      }
      continue;
    }
    float mx;
    float s = blockSumExp(row, v, sh, mx);
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
__global__ void meanK(const float *loss, int64_t rows, int64_t count,
                      float *out) {
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
    *out = static_cast<float>(total / static_cast<double>(count));
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
__global__ void reduceK(const T *x, T *y, ReducePlan p, int kind, bool square) {
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
      if (square)
        v = v * v;
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

/// Row of every (token, choice) among the block's experts' capacity rows,
/// as the CPU kernels assign them (KernelMath's expertSlot, counted in
/// token order over all block.total experts): scratch = [counts:
/// block.total][slots: n]; -1 past the capacity, outside the block or for a
/// bad index.
__global__ void assignSlotsK(const void *ids, int idType, int64_t n,
                             ExpertBlock block, int64_t capacity,
                             int64_t *scratch, DeviceError *err) {
  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  int64_t *count = scratch, *slot = scratch + block.total;
  int64_t perGroup = n / block.groups; // the groups divide the tokens
  for (int64_t i = 0; i < n; ++i) {
    if (i % perGroup == 0)
      for (int64_t x = 0; x < block.total; ++x)
        count[x] = 0;
    int64_t ex = loadIndex(ids, idType, i);
    if (ex < 0 || ex >= block.total) {
      recordError(err, kErrExpertIndex, i, ex, block.total);
      slot[i] = -1;
      continue;
    }
    slot[i] = math::expertSlot(ex, count[ex]++, capacity, block.groups,
                               i / perGroup, block.start, block.size);
  }
}

/// out[slot of (t, j)] = x[t] for every (token, choice) with a slot.
template <typename E>
__global__ void dispatchCopyK(const E *x, int64_t rowElems, int64_t tokens,
                              int64_t k, const int64_t *slot, E *out) {
  GRID_STRIDE(idx, tokens * k * rowElems) {
    int64_t c = idx / rowElems, j = idx % rowElems;
    int64_t s = slot[c];
    if (s < 0)
      continue;
    out[s * rowElems + j] = x[(c / k) * rowElems + j];
  }
}

/// out[t] = sum over the choices j with a slot of w[t, j] y[slot of (t, j)].
template <typename T>
__global__ void combineK(const T *y, const T *w, int64_t tokens, int64_t k,
                         int64_t h, const int64_t *slot, T *out) {
  GRID_STRIDE(idx, tokens * h) {
    int64_t t = idx / h, i = idx % h;
    float acc = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      int64_t s = slot[t * k + j];
      if (s < 0)
        continue;
      acc += toF32(w[t * k + j]) * toF32(y[s * h + i]);
    }
    out[idx] = fromF32<T>(acc);
  }
}

//===- Gradients ----------------------------------------------------------===//

// Sums over rows (weight gradients, embedding rows) run one thread per
// column through the rows in order, as the CPU kernels add them: no
// atomics, so results are deterministic and equal the CPU's order.

/// dx of rows [r0, r0 + rows) by KernelMath's row function, one thread per
/// row; each row's dw contribution goes to its own row of `partial`
/// (zeroed by the caller).
template <typename T>
__global__ void rmsnormGradRowsK(const T *x, const T *w, const T *dy, T *dx,
                                 float *partial, int64_t r0, int64_t rows,
                                 int64_t h, float eps) {
  GRID_STRIDE(i, rows) {
    int64_t r = (r0 + i) * h;
    math::rmsnormGradRow(x + r, w, dy + r, dx + r, partial + i * h, h, eps);
  }
}

/// As rmsnormGradRowsK; `partial` holds the dw rows, then (rows * h
/// later) the db rows.
template <typename T>
__global__ void layernormGradRowsK(const T *x, const T *w, const T *dy, T *dx,
                                   float *partial, int64_t r0, int64_t rows,
                                   int64_t h, float eps) {
  GRID_STRIDE(i, rows) {
    int64_t r = (r0 + i) * h;
    math::layernormGradRow(x + r, w, dy + r, dx + r, partial + i * h,
                           partial + (rows + i) * h, h, eps);
  }
}

/// acc[c] += partial[r, c] for r = 0, 1, ..., rows - 1 in order.
__global__ void columnSumK(float *acc, const float *partial, int64_t rows,
                           int64_t h) {
  GRID_STRIDE(c, h) {
    float a = acc[c];
    for (int64_t r = 0; r < rows; ++r)
      a += partial[r * h + c];
    acc[c] = a;
  }
}

/// Contiguous rows (inner == 1): one block per row, as softmaxRowsK.
template <typename T>
__global__ void softmaxGradRowsK(const T *y, const T *dy, T *dx, int64_t rows,
                                 int64_t n) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *yr = y + r * n, *dyr = dy + r * n;
    T *dxr = dx + r * n;
    float dot = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      dot += toF32(yr[i]) * toF32(dyr[i]);
    // Every read of the row is done before the reduction's barrier, so dx
    // may be y or dy.
    dot = blockReduce<false>(dot, sh);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      dxr[i] = fromF32<T>(toF32(yr[i]) * (toF32(dyr[i]) - dot));
  }
}

/// Strided rows: one thread per row, KernelMath's row function.
template <typename T>
__global__ void softmaxGradStridedK(const T *y, const T *dy, T *dx,
                                    int64_t outer, int64_t n, int64_t inner) {
  GRID_STRIDE(r, outer * inner) {
    int64_t o = r / inner, j = r % inner;
    int64_t base = o * n * inner + j;
    math::softmaxGradRow(y + base, dy + base, dx + base, n, inner);
  }
}

/// One block per row, as crossEntropyRowsK: (p - onehot(t)) * dL / rows.
template <typename T>
__global__ void crossEntropyGradRowsK(const T *logits, int64_t rows, int64_t v,
                                      const void *targets, int tgtType,
                                      const float *dloss, int64_t count,
                                      VocabPiece piece, T *grad,
                                      DeviceError *err) {
  __shared__ float sh[32];
  float scale = *dloss / static_cast<float>(count);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *row = logits + r * v;
    T *g = grad + r * v;
    int64_t t = loadIndex(targets, tgtType, r);
    if (piece.logsumexp) { // vocab-parallel: exp(l - lse) - onehot
      if (t < 0 && threadIdx.x == 0)
        recordError(err, kErrCrossEntropyTarget, r, t, v);
      float lse = piece.logsumexp[r];
      for (int64_t i = threadIdx.x; i < v; i += blockDim.x) {
        float p = expf(toF32(row[i]) - lse);
        g[i] = fromF32<T>((p - (i == t - piece.start ? 1.0f : 0.0f)) * scale);
      }
      continue;
    }
    if (t < 0 || t >= v) { // the same for the whole block
      if (threadIdx.x == 0)
        recordError(err, kErrCrossEntropyTarget, r, t, v);
      continue;
    }
    float mx;
    float inv = 1.0f / blockSumExp(row, v, sh, mx);
    for (int64_t i = threadIdx.x; i < v; i += blockDim.x) {
      float p = math::fastExp(toF32(row[i]) - mx) * inv;
      g[i] = fromF32<T>((p - (i == t ? 1.0f : 0.0f)) * scale);
    }
  }
}

/// One thread per column j of the table, through the positions in order:
/// acc[id, j] += dy[i, j] (f32, zeroed by the caller). Thread 0 checks the
/// ids (also when h == 0), so the first bad position is the one reported.
template <typename T>
__global__ void embeddingGradK(const T *dy, const void *ids, int idType,
                               int64_t n, int64_t vocab, int64_t h,
                               VocabPiece piece, float *acc, DeviceError *err) {
  GRID_STRIDE(j, h > 0 ? h : 1) {
    for (int64_t i = 0; i < n; ++i) {
      int64_t id = loadIndex(ids, idType, i);
      if (id < 0 || (!piece.present && id >= vocab)) {
        if (j == 0)
          recordError(err, kErrEmbeddingId, i, id, vocab);
        continue;
      }
      int64_t r = id - piece.start;
      if (j < h && r >= 0 && r < vocab) // else another rank's row
        acc[r * h + j] += toF32(dy[i * h + j]);
    }
  }
}

/// One thread per token: KernelMath's routerGradRow. scratch = [e floats
/// per token][k int32 per token] (the chosen experts as int32).
template <typename T>
__global__ void routerGradK(const T *logits, const void *ids, int idType,
                            const T *dw, T *dl, int64_t tokens, int64_t e,
                            int64_t k, bool sbt, bool norm, float *rowScratch,
                            int32_t *chosen, DeviceError *err) {
  GRID_STRIDE(t, tokens) {
    bool ok = true;
    for (int64_t j = 0; j < k; ++j) {
      int64_t ex = loadIndex(ids, idType, t * k + j);
      if (ex < 0 || ex >= e) {
        recordError(err, kErrExpertIndex, t * k + j, ex, e);
        ok = false;
      }
      chosen[t * k + j] = static_cast<int32_t>(ex);
    }
    if (ok)
      math::routerGradRow(logits + t * e, chosen + t * k, dw + t * k,
                          dl + t * e, e, k, sbt, norm, rowScratch + t * e);
  }
}

/// dy[slot of (t, j)] = w[t, j] * dout[t] for every (t, j, i); each slot
/// has at most one (token, choice), so no two threads write one element.
template <typename T>
__global__ void combineGradRowsK(const T *w, const T *dout, int64_t tokens,
                                 int64_t k, int64_t h, const int64_t *slot,
                                 T *dy) {
  GRID_STRIDE(idx, tokens * k * h) {
    int64_t c = idx / h, i = idx % h;
    int64_t s = slot[c];
    if (s < 0)
      continue;
    dy[s * h + i] = fromF32<T>(toF32(w[c]) * toF32(dout[(c / k) * h + i]));
  }
}

/// dw[t, j] = dout[t] . y[slot of (t, j)] (0 without a slot: past the
/// capacity or another block's expert), one thread per (token, choice),
/// summed in element order as the CPU does.
template <typename T>
__global__ void combineGradWeightsK(const T *y, const T *dout, int64_t tokens,
                                    int64_t k, int64_t h, const int64_t *slot,
                                    T *dw) {
  GRID_STRIDE(c, tokens * k) {
    int64_t s = slot[c];
    float dot = 0.0f;
    if (s >= 0) {
      const T *row = y + s * h;
      const T *grad = dout + (c / k) * h;
      for (int64_t i = 0; i < h; ++i)
        dot += toF32(grad[i]) * toF32(row[i]);
    }
    dw[c] = fromF32<T>(dot);
  }
}

/// One block per row: delta = dout[i] . o[i] in element order (thread 0,
/// as the CPU), then ds = p (dp - delta) across the block.
__global__ void attentionDsK(const float *p, float *ds, const float *dout,
                             const float *o, int64_t rows, int64_t keys,
                             int64_t d, int64_t ld) {
  __shared__ float delta;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    if (threadIdx.x == 0) {
      float acc = 0.0f;
      for (int64_t j = 0; j < d; ++j)
        acc += dout[r * ld + j] * o[r * ld + j];
      delta = acc;
    }
    __syncthreads();
    float dl = delta;
    for (int64_t c = threadIdx.x; c < keys; c += blockDim.x)
      ds[r * keys + c] = p[r * keys + c] * (ds[r * keys + c] - dl);
    __syncthreads();
  }
}

/// attention_block's softmax, one thread per row with KernelMath's
/// softmaxRowLse (the CPU's order of sums): row r of [rows, sk] is query
/// qOffset + r % sq of the r / sq-th head; its log-sum-exp goes to
/// lse[(r / sq) * lseHead + (r % sq) * lseRow].
__global__ void softmaxLseK(float *scores, int64_t rows, int64_t sq, int64_t sk,
                            bool causal, int64_t qOffset, int64_t kOffset,
                            float *lse, int64_t lseRow, int64_t lseHead) {
  GRID_STRIDE(r, rows) {
    int64_t i = r % sq;
    lse[(r / sq) * lseHead + i * lseRow] = math::softmaxRowLse(
        scores + r * sk, sk,
        math::visibleKeys(qOffset + i, kOffset, sk, causal));
  }
}

/// attention_block_grad's P, one thread per row with KernelMath's
/// probRowFromLse: row r of [rows, keys] is query qOffset + r, its
/// log-sum-exp lse[r * lseRow].
__global__ void probFromLseK(float *p, int64_t rows, int64_t keys, bool causal,
                             int64_t qOffset, int64_t kOffset, const float *lse,
                             int64_t lseRow) {
  GRID_STRIDE(r, rows) {
    math::probRowFromLse(p + r * keys, keys,
                         math::visibleKeys(qOffset + r, kOffset, keys, causal),
                         lse[r * lseRow]);
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
                                int64_t sk, bool causal, cudaStream_t s,
                                int64_t qOffset) {
  if (rows == 0 || sk == 0)
    return cudaSuccess;
  maskedSoftmaxK<<<rowBlocks(rows), kRowThreads, 0, s>>>(scores, rows, sq, sk,
                                                         causal, qOffset);
  return cudaGetLastError();
}

cudaError_t launchAdamW(const AdamWArgs &a, DeviceError *err, cudaStream_t s) {
  adamwK<<<blocksFor(std::max<int64_t>(a.n, 1)), kThreads, 0, s>>>(a, err);
  return cudaGetLastError();
}

cudaError_t launchEmbedding(const void *table, int64_t vocab, int64_t rowBytes,
                            const void *ids, int idType, int64_t n,
                            VocabPiece piece, void *out, DeviceError *err,
                            cudaStream_t s) {
  if (n == 0 || rowBytes == 0)
    return cudaSuccess;
  int w = moveWidth(rowBytes, table, out);
  int64_t rowElems = rowBytes / w;
  LOOM_WIDTH_DISPATCH(w, E,
                      embeddingK<E>
                      <<<blocksFor(n * rowElems), kThreads, 0, s>>>(
                          static_cast<const E *>(table), vocab, rowElems, ids,
                          idType, n, piece, static_cast<E *>(out), err));
  return cudaGetLastError();
}

cudaError_t launchCrossEntropy(const void *logits, int dtype, int64_t rows,
                               int64_t v, const void *targets, int tgtType,
                               int64_t count, VocabPiece piece, float *out,
                               float *scratch, DeviceError *err,
                               cudaStream_t s) {
  if (rows > 0) {
    LOOM_FLOAT_DISPATCH(dtype, T,
                        crossEntropyRowsK<T>
                        <<<rowBlocks(rows), kRowThreads, 0, s>>>(
                            static_cast<const T *>(logits), rows, v, targets,
                            tgtType, piece, scratch, err));
  }
  meanK<<<1, kRowThreads, 0, s>>>(scratch, rows, count > 0 ? count : rows, out);
  return cudaGetLastError();
}

cudaError_t launchReduce(const void *x, void *y, int dtype, int rank,
                         const int64_t *shape, const bool *reduced, int kind,
                         bool square, cudaStream_t s) {
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
          static_cast<const T *>(x), static_cast<T *>(y), p, kind, square));
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
                           const void *ids, int idType, int64_t k,
                           ExpertBlock block, int64_t capacity, void *out,
                           int64_t *scratch, DeviceError *err, cudaStream_t s) {
  cudaError_t st = cudaMemsetAsync(out, 0, block.size * capacity * rowBytes, s);
  if (st != cudaSuccess || tokens * k == 0 || rowBytes == 0)
    return st;
  assignSlotsK<<<1, 1, 0, s>>>(ids, idType, tokens * k, block, capacity,
                               scratch, err);
  int w = moveWidth(rowBytes, x, out);
  int64_t rowElems = rowBytes / w;
  LOOM_WIDTH_DISPATCH(w, E,
                      dispatchCopyK<E>
                      <<<blocksFor(tokens * k * rowElems), kThreads, 0, s>>>(
                          static_cast<const E *>(x), rowElems, tokens, k,
                          scratch + block.total, static_cast<E *>(out)));
  return cudaGetLastError();
}

cudaError_t launchCombine(const void *y, const void *w, int dtype,
                          const void *ids, int idType, int64_t tokens,
                          int64_t k, ExpertBlock block, int64_t capacity,
                          int64_t h, void *out, int64_t *scratch,
                          DeviceError *err, cudaStream_t s) {
  if (tokens * h == 0)
    return cudaSuccess;
  assignSlotsK<<<1, 1, 0, s>>>(ids, idType, tokens * k, block, capacity,
                               scratch, err);
  LOOM_FLOAT_DISPATCH(dtype, T,
                      combineK<T><<<blocksFor(tokens * h), kThreads, 0, s>>>(
                          static_cast<const T *>(y), static_cast<const T *>(w),
                          tokens, k, h, scratch + block.total,
                          static_cast<T *>(out)));
  return cudaGetLastError();
}

//===- Gradient launchers -------------------------------------------------===//

namespace {

/// Threads per block of kernels whose threads each loop over a whole row or
/// column: small blocks, so that a few hundred threads still spread over
/// the multiprocessors.
constexpr int kSerialThreads = 64;

unsigned serialBlocks(int64_t n) {
  int64_t b = (n + kSerialThreads - 1) / kSerialThreads;
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>(b, 65535)));
}

/// Rows of one pass of the norm gradients: their per-row weight-gradient
/// contributions (accumulators x rows x h floats) are bounded by 2^24
/// floats per accumulator.
constexpr int64_t kNormGradChunkFloats = int64_t(1) << 24;

int64_t normGradChunk(int64_t rows, int64_t h) {
  int64_t chunk = kNormGradChunkFloats / std::max<int64_t>(h, 1);
  return std::max<int64_t>(1, std::min(rows, chunk));
}

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

/// rmsnorm_grad (accumulators = 1) and layernorm_grad (2). Scratch:
/// [acc: accumulators x h f32][partial: accumulators x chunk x h f32].
cudaError_t normGrad(int accumulators, const void *x, const void *w,
                     const void *dy, void *dx, void *dw, void *db, int dtype,
                     int64_t rows, int64_t h, float eps, void *scratch,
                     cudaStream_t s) {
  if (h == 0)
    return cudaSuccess; // no rows, empty weight gradients
  float *acc = static_cast<float *>(scratch);
  float *partial =
      reinterpret_cast<float *>(static_cast<char *>(scratch) +
                                align256(accumulators * h * sizeof(float)));
  cudaError_t e = cudaMemsetAsync(acc, 0, accumulators * h * sizeof(float), s);
  int64_t chunk = normGradChunk(rows, h);
  for (int64_t r0 = 0; e == cudaSuccess && r0 < rows; r0 += chunk) {
    int64_t n = std::min(chunk, rows - r0);
    e = cudaMemsetAsync(partial, 0, accumulators * n * h * sizeof(float), s);
    if (e != cudaSuccess)
      break;
    if (accumulators == 1) {
      LOOM_FLOAT_DISPATCH(
          dtype, T,
          rmsnormGradRowsK<T><<<serialBlocks(n), kSerialThreads, 0, s>>>(
              static_cast<const T *>(x), static_cast<const T *>(w),
              static_cast<const T *>(dy), static_cast<T *>(dx), partial, r0, n,
              h, eps));
    } else {
      LOOM_FLOAT_DISPATCH(
          dtype, T,
          layernormGradRowsK<T><<<serialBlocks(n), kSerialThreads, 0, s>>>(
              static_cast<const T *>(x), static_cast<const T *>(w),
              static_cast<const T *>(dy), static_cast<T *>(dx), partial, r0, n,
              h, eps));
    }
    for (int a = 0; a < accumulators; ++a)
      columnSumK<<<serialBlocks(h), kSerialThreads, 0, s>>>(
          acc + a * h, partial + a * n * h, n, h);
    e = cudaGetLastError();
  }
  if (e != cudaSuccess)
    return e;
  e = launchConvert(acc, LOOM_F32, dw, dtype, h, s);
  if (e == cudaSuccess && accumulators == 2)
    e = launchConvert(acc + h, LOOM_F32, db, dtype, h, s);
  return e;
}

template <typename T>
void combineGradOf(const T *y, const T *w, const T *dout, int64_t tokens,
                   int64_t k, int64_t h, const int64_t *slot, T *dy, T *dw,
                   cudaStream_t s) {
  if (h > 0)
    combineGradRowsK<T><<<blocksFor(tokens * k * h), kThreads, 0, s>>>(
        w, dout, tokens, k, h, slot, dy);
  combineGradWeightsK<T><<<serialBlocks(tokens * k), kSerialThreads, 0, s>>>(
      y, dout, tokens, k, h, slot, dw);
}

} // namespace

size_t normGradScratchBytes(int64_t rows, int64_t h, int accumulators) {
  int64_t chunk = normGradChunk(rows, h);
  return align256(accumulators * std::max<int64_t>(h, 1) * sizeof(float)) +
         align256(accumulators * chunk * std::max<int64_t>(h, 1) *
                  sizeof(float));
}

cudaError_t launchRmsNormGrad(const void *x, const void *w, const void *dy,
                              void *dx, void *dw, int dtype, int64_t rows,
                              int64_t h, float eps, void *scratch,
                              cudaStream_t s) {
  return normGrad(1, x, w, dy, dx, dw, nullptr, dtype, rows, h, eps, scratch,
                  s);
}

cudaError_t launchLayerNormGrad(const void *x, const void *w, const void *dy,
                                void *dx, void *dw, void *db, int dtype,
                                int64_t rows, int64_t h, float eps,
                                void *scratch, cudaStream_t s) {
  return normGrad(2, x, w, dy, dx, dw, db, dtype, rows, h, eps, scratch, s);
}

cudaError_t launchSoftmaxGrad(const void *y, const void *dy, void *dx,
                              int dtype, int64_t outer, int64_t n,
                              int64_t inner, cudaStream_t s) {
  if (outer == 0 || n == 0 || inner == 0)
    return cudaSuccess;
  if (inner == 1) {
    LOOM_FLOAT_DISPATCH(
        dtype, T,
        softmaxGradRowsK<T><<<rowBlocks(outer), kRowThreads, 0, s>>>(
            static_cast<const T *>(y), static_cast<const T *>(dy),
            static_cast<T *>(dx), outer, n));
  } else {
    LOOM_FLOAT_DISPATCH(
        dtype, T,
        softmaxGradStridedK<T><<<blocksFor(outer * inner), kThreads, 0, s>>>(
            static_cast<const T *>(y), static_cast<const T *>(dy),
            static_cast<T *>(dx), outer, n, inner));
  }
  return cudaGetLastError();
}

cudaError_t launchCrossEntropyGrad(const void *logits, int dtype, int64_t rows,
                                   int64_t v, const void *targets, int tgtType,
                                   const float *dloss, int64_t count,
                                   VocabPiece piece, void *grad,
                                   DeviceError *err, cudaStream_t s) {
  if (rows == 0)
    return cudaSuccess;
  LOOM_FLOAT_DISPATCH(
      dtype, T,
      crossEntropyGradRowsK<T><<<rowBlocks(rows), kRowThreads, 0, s>>>(
          static_cast<const T *>(logits), rows, v, targets, tgtType, dloss,
          count > 0 ? count : rows, piece, static_cast<T *>(grad), err));
  return cudaGetLastError();
}

size_t embeddingGradScratchBytes(int64_t vocab, int64_t h, int tableType) {
  return tableType == LOOM_F32 ? 0 : align256(vocab * h * sizeof(float));
}

cudaError_t launchEmbeddingGrad(const void *dy, const void *ids, int idType,
                                int64_t n, void *table, int tableType,
                                int64_t vocab, int64_t h, VocabPiece piece,
                                void *scratch, DeviceError *err,
                                cudaStream_t s) {
  // An f32 table is its own accumulator.
  float *acc = static_cast<float *>(tableType == LOOM_F32 ? table : scratch);
  cudaError_t e = vocab * h == 0
                      ? cudaSuccess
                      : cudaMemsetAsync(acc, 0, vocab * h * sizeof(float), s);
  if (e != cudaSuccess)
    return e;
  if (n > 0) {
    LOOM_FLOAT_DISPATCH(
        tableType, T,
        embeddingGradK<T>
        <<<serialBlocks(std::max<int64_t>(h, 1)), kSerialThreads, 0, s>>>(
            static_cast<const T *>(dy), ids, idType, n, vocab, h, piece, acc,
            err));
    e = cudaGetLastError();
  }
  if (e == cudaSuccess && tableType != LOOM_F32 && vocab * h > 0)
    e = launchConvert(acc, LOOM_F32, table, tableType, vocab * h, s);
  return e;
}

size_t routerGradScratchBytes(int64_t tokens, int64_t e, int64_t k) {
  return align256(std::max<int64_t>(tokens * e, 1) * sizeof(float)) +
         align256(std::max<int64_t>(tokens * k, 1) * sizeof(int32_t));
}

cudaError_t launchRouterGrad(const void *logits, int dtype, const void *ids,
                             int idType, const void *dw, void *dlogits,
                             int64_t tokens, int64_t e, int64_t k,
                             bool softmaxBeforeTopk, bool normalize,
                             void *scratch, DeviceError *err, cudaStream_t s) {
  if (tokens == 0)
    return cudaSuccess;
  float *rows = static_cast<float *>(scratch);
  int32_t *chosen = reinterpret_cast<int32_t *>(
      static_cast<char *>(scratch) +
      align256(std::max<int64_t>(tokens * e, 1) * sizeof(float)));
  LOOM_FLOAT_DISPATCH(
      dtype, T,
      routerGradK<T><<<serialBlocks(tokens), kSerialThreads, 0, s>>>(
          static_cast<const T *>(logits), ids, idType,
          static_cast<const T *>(dw), static_cast<T *>(dlogits), tokens, e, k,
          softmaxBeforeTopk, normalize, rows, chosen, err));
  return cudaGetLastError();
}

cudaError_t launchCombineGrad(const void *y, const void *w, int dtype,
                              const void *ids, int idType, const void *dout,
                              int64_t tokens, int64_t k, ExpertBlock block,
                              int64_t capacity, int64_t h, void *dy, void *dw,
                              int64_t *scratch, DeviceError *err,
                              cudaStream_t s) {
  size_t elem = dtype == LOOM_F32 ? 4 : 2;
  cudaError_t st = cudaMemsetAsync(dy, 0, block.size * capacity * h * elem, s);
  if (st != cudaSuccess || tokens * k == 0)
    return st;
  // The slots of combine: token order, then choice order.
  assignSlotsK<<<1, 1, 0, s>>>(ids, idType, tokens * k, block, capacity,
                               scratch, err);
  const int64_t *slot = scratch + block.total;
  LOOM_FLOAT_DISPATCH(
      dtype, T,
      combineGradOf<T>(static_cast<const T *>(y), static_cast<const T *>(w),
                       static_cast<const T *>(dout), tokens, k, h, slot,
                       static_cast<T *>(dy), static_cast<T *>(dw), s));
  return cudaGetLastError();
}

cudaError_t launchAttentionDs(const float *p, float *ds, const float *dout,
                              const float *o, int64_t rows, int64_t keys,
                              int64_t d, int64_t ld, cudaStream_t s) {
  if (rows == 0 || keys == 0)
    return cudaSuccess;
  attentionDsK<<<rowBlocks(rows), kRowThreads, 0, s>>>(p, ds, dout, o, rows,
                                                       keys, d, ld);
  return cudaGetLastError();
}

cudaError_t launchSoftmaxLse(float *scores, int64_t rows, int64_t sq,
                             int64_t sk, bool causal, int64_t qOffset,
                             int64_t kOffset, float *lse, int64_t lseRow,
                             int64_t lseHead, cudaStream_t s) {
  if (rows == 0 || sq == 0)
    return cudaSuccess;
  softmaxLseK<<<blocksFor(rows), kThreads, 0, s>>>(
      scores, rows, sq, sk, causal, qOffset, kOffset, lse, lseRow, lseHead);
  return cudaGetLastError();
}

cudaError_t launchProbFromLse(float *p, int64_t rows, int64_t keys, bool causal,
                              int64_t qOffset, int64_t kOffset,
                              const float *lse, int64_t lseRow,
                              cudaStream_t s) {
  if (rows == 0 || keys == 0)
    return cudaSuccess;
  probFromLseK<<<blocksFor(rows), kThreads, 0, s>>>(
      p, rows, keys, causal, qOffset, kOffset, lse, lseRow);
  return cudaGetLastError();
}

} // namespace loom::runtime::cuda
