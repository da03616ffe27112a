//===- CpuShape.cpp - CPU shape kernels -----------------------------------===//
//
// reshape, transpose, slice, concat, broadcast (byte moves for any dtype) and
// reduce. Strided loops walk the result with an odometer over all but the
// innermost dimension, each thread its own range of rows. A reduction over
// one run of adjacent dimensions splits its outputs across threads (and,
// over the innermost dimensions, its sums into chunks of kSumChunk elements
// added in order); any other reduction runs on one thread.
//
//===----------------------------------------------------------------------===//

#include "CpuKernels.h"
#include "CpuParallel.h"
#include "loom/runtime/KernelMath.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace loom::runtime::cpu {
namespace {

/// Row-major strides (in elements) of a shape.
void stridesOf(const TensorRef &t, int64_t *s) {
  int64_t acc = 1;
  for (int i = t.rank - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= t.shape[i];
  }
}

/// Walks rows [begin, end) of a result of shape `shape` (rank >= 1, no
/// empty dimension) in row-major order; for each innermost row calls
/// f(resultOffset, srcOffset) where srcOffset follows `srcStride` per
/// dimension.
template <typename F>
void walkRowRange(int rank, const int64_t *shape, const int64_t *srcStride,
                  int64_t srcBase, int64_t begin, int64_t end, F &&f) {
  int64_t idx[kMaxRank] = {};
  int64_t rowLen = shape[rank - 1];
  int64_t src = srcBase;
  for (int64_t d = rank - 2, r = begin; d >= 0; --d) {
    idx[d] = r % shape[d];
    r /= shape[d];
    src += idx[d] * srcStride[d];
  }
  for (int64_t r = begin; r < end; ++r) {
    f(r * rowLen, src);
    for (int d = rank - 2; d >= 0; --d) {
      src += srcStride[d];
      if (++idx[d] < shape[d])
        break;
      src -= srcStride[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/// Rows of the innermost dimension in a shape of rank >= 1; 0 if any
/// dimension is empty.
int64_t rowsOf(int rank, const int64_t *shape) {
  int64_t rows = 1;
  for (int i = 0; i < rank; ++i)
    if (shape[i] == 0)
      return 0;
  for (int i = 0; i < rank - 1; ++i)
    rows *= shape[i];
  return rows;
}

/// walkRowRange over every row, on one thread.
template <typename F>
void walkRows(int rank, const int64_t *shape, const int64_t *srcStride,
              int64_t srcBase, F &&f) {
  walkRowRange(rank, shape, srcStride, srcBase, 0, rowsOf(rank, shape), f);
}

/// walkRowRange over every row, rows split across threads.
template <typename F>
void walkRowsParallel(int rank, const int64_t *shape, const int64_t *srcStride,
                      int64_t srcBase, F &&f) {
  parallelRanges(rowsOf(rank, shape), shape[rank - 1],
                 [&](int64_t begin, int64_t end) {
                   walkRowRange(rank, shape, srcStride, srcBase, begin, end, f);
                 });
}

template <typename E> void transposeK(const OpCall &c, KernelContext &) {
  const TensorRef &x = c.in[0], &y = c.out[0];
  const E *src = x.as<const E>();
  E *dst = y.as<E>();
  if (y.rank == 0) {
    dst[0] = src[0];
    return;
  }
  int64_t xs[kMaxRank] = {}, ps[kMaxRank] = {};
  stridesOf(x, xs);
  for (int i = 0; i < y.rank; ++i)
    ps[i] = xs[attrOf(c, attr::Transpose::permutation).ints[i]];
  int64_t inner = ps[y.rank - 1], len = y.shape[y.rank - 1];
  walkRowsParallel(y.rank, y.shape, ps, 0, [&](int64_t o, int64_t s) {
    for (int64_t j = 0; j < len; ++j)
      dst[o + j] = src[s + j * inner];
  });
}

void sliceK(const OpCall &c, KernelContext &) {
  const TensorRef &x = c.in[0], &y = c.out[0];
  size_t es = dtypeSize(x.dtype);
  const char *src = static_cast<const char *>(x.data);
  char *dst = static_cast<char *>(y.data);
  if (y.rank == 0) {
    std::memcpy(dst, src, es);
    return;
  }
  int64_t xs[kMaxRank];
  stridesOf(x, xs);
  int64_t base = 0;
  for (int i = 0; i < x.rank; ++i)
    base += attrOf(c, attr::Slice::offsets).ints[i] * xs[i];
  size_t rowBytes = y.shape[y.rank - 1] * es;
  walkRowsParallel(y.rank, y.shape, xs, base, [&](int64_t o, int64_t s) {
    std::memcpy(dst + o * es, src + s * es, rowBytes);
  });
}

void concatK(const OpCall &c, KernelContext &) {
  const TensorRef &y = c.out[0];
  int d = static_cast<int>(attrOf(c, attr::Concat::dim).i);
  size_t es = dtypeSize(y.dtype);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i)
    outer *= y.shape[i];
  for (int i = d + 1; i < y.rank; ++i)
    inner *= y.shape[i];
  int64_t yRow = y.shape[d] * inner * es;
  char *dst = static_cast<char *>(y.data);
  if (outer == 1) {
    int64_t acc = 0;
    for (const TensorRef &x : c.in) {
      copyBytes(dst + acc, x.data, x.shape[d] * inner * es);
      acc += x.shape[d] * inner * es;
    }
    return;
  }
  parallelFor(outer, yRow / 4, [&](int64_t o) {
    int64_t acc = 0;
    for (const TensorRef &x : c.in) {
      int64_t chunk = x.shape[d] * inner * es;
      std::memcpy(dst + o * yRow + acc,
                  static_cast<const char *>(x.data) + o * chunk, chunk);
      acc += chunk;
    }
  });
}

template <typename E> void broadcastK(const OpCall &c, KernelContext &) {
  const TensorRef &x = c.in[0], &y = c.out[0];
  const E *src = x.as<const E>();
  E *dst = y.as<E>();
  if (y.rank == 0) {
    dst[0] = src[0];
    return;
  }
  int64_t xs[kMaxRank], bs[kMaxRank] = {};
  stridesOf(x, xs);
  for (int i = 0; i < x.rank; ++i)
    if (x.shape[i] != 1)
      bs[attrOf(c, attr::Broadcast::dims).ints[i]] = xs[i];
  int64_t inner = bs[y.rank - 1], len = y.shape[y.rank - 1];
  walkRowsParallel(y.rank, y.shape, bs, 0, [&](int64_t o, int64_t s) {
    for (int64_t j = 0; j < len; ++j)
      dst[o + j] = src[s + j * inner];
  });
}

/// How reduceK combines elements: Σ x, max x or Σ x² (each square rounded
/// to f32, then added in Σ x's order).
enum class Red { Sum, Max, Squares };

template <Red K> constexpr float reduceInit() {
  return K == Red::Max ? -std::numeric_limits<float>::infinity() : 0.0f;
}

/// acc combined with the element v.
template <Red K> inline float reduceStep(float acc, float v) {
  if constexpr (K == Red::Max)
    return std::fmax(acc, v);
  else if constexpr (K == Red::Squares)
    return acc + v * v;
  else
    return acc + v;
}

/// Two partial results combined (partial sums of squares add).
template <Red K> inline float reduceJoin(float a, float b) {
  return K == Red::Max ? std::fmax(a, b) : a + b;
}

/// Σ (max, Σ x²) of n contiguous elements in kReduceLanes partial results,
/// as math::rowSum adds them.
template <typename T, Red K> float laneReduce(const T *x, int64_t n) {
  constexpr int kLanes = math::kReduceLanes;
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, reduceInit<K>());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j)
      lanes[j] = reduceStep<K>(lanes[j], toF32(x[i + j]));
  float r = reduceInit<K>();
  for (; i < n; ++i)
    r = reduceStep<K>(r, toF32(x[i]));
  for (int j = 0; j < kLanes; ++j)
    r = reduceJoin<K>(r, lanes[j]);
  return r;
}

/// out[p] = reduction of the R contiguous elements x[p·R, (p+1)·R): chunks
/// of kSumChunk elements (laneReduce), their results combined in order.
template <typename T, Red K>
void reduceRows(const T *x, int64_t p, int64_t r, float *partial, T *out,
                float div) {
  int64_t chunks = (r + kSumChunk - 1) / kSumChunk;
  parallelFor(p * chunks, std::min(r, kSumChunk), [&](int64_t i) {
    int64_t row = i / chunks, c0 = i % chunks * kSumChunk;
    partial[i] =
        laneReduce<T, K>(x + row * r + c0, std::min(kSumChunk, r - c0));
  });
  parallelFor(p, chunks, [&](int64_t row) {
    float acc = reduceInit<K>();
    for (int64_t c = 0; c < chunks; ++c)
      acc = reduceJoin<K>(acc, partial[row * chunks + c]);
    out[row] = fromF32<T>(K == Red::Max ? acc : acc / div);
  });
}

/// out[p, q] = reduction over r of x[p, r, q], adding in order of r (each
/// thread its own columns q).
template <typename T, Red K>
void reduceMiddle(const T *x, int64_t p, int64_t r, int64_t q, float *acc,
                  T *out, float div) {
  constexpr int64_t kCols = 256;
  int64_t blocks = (q + kCols - 1) / kCols;
  parallelFor(p * blocks, r * std::min(q, kCols), [&](int64_t i) {
    int64_t row = i / blocks, q0 = i % blocks * kCols;
    int64_t q1 = std::min(q, q0 + kCols);
    float *a = acc + row * q;
    std::fill(a + q0, a + q1, reduceInit<K>());
    for (int64_t k = 0; k < r; ++k) {
      const T *src = x + (row * r + k) * q;
      for (int64_t j = q0; j < q1; ++j)
        a[j] = reduceStep<K>(a[j], toF32(src[j]));
    }
    for (int64_t j = q0; j < q1; ++j)
      out[row * q + j] = fromF32<T>(K == Red::Max ? a[j] : a[j] / div);
  });
}

/// Any other set of reduced dimensions, on one thread: acc (y.numel f32)
/// gathers every element at its result, in x's row-major order.
template <typename T, Red K>
void reduceStrided(const TensorRef &x, const bool *reduced, float *acc,
                   int64_t outCount) {
  const T *src = x.as<const T>();
  std::fill(acc, acc + outCount, reduceInit<K>());
  if (x.rank == 0) {
    float v = toF32(src[0]);
    acc[0] = K == Red::Squares ? v * v : v;
    return;
  }
  // Result strides per operand dimension (0 along reduced dims).
  int64_t ys[kMaxRank] = {};
  int64_t s = 1;
  for (int i = x.rank - 1; i >= 0; --i) {
    ys[i] = reduced[i] ? 0 : s;
    if (!reduced[i])
      s *= x.shape[i];
  }
  int64_t inner = ys[x.rank - 1], len = x.shape[x.rank - 1];
  walkRows(x.rank, x.shape, ys, 0, [&](int64_t o, int64_t yo) {
    for (int64_t j = 0; j < len; ++j)
      acc[yo + j * inner] =
          reduceStep<K>(acc[yo + j * inner], toF32(src[o + j]));
  });
}

template <typename T, Red K>
void reduceAs(const TensorRef &x, const TensorRef &y, const bool *reduced,
              bool adjacent, int64_t p, int64_t r, int64_t q, float div,
              float *acc) {
  const T *src = x.as<const T>();
  T *dst = y.as<T>();
  if (adjacent && x.rank > 0 && x.numel > 0) {
    if (q == 1)
      reduceRows<T, K>(src, p, r, acc, dst, div);
    else
      reduceMiddle<T, K>(src, p, r, q, acc, dst, div);
    return;
  }
  reduceStrided<T, K>(x, reduced, acc, y.numel);
  for (int64_t i = 0; i < y.numel; ++i)
    dst[i] = fromF32<T>(K == Red::Max ? acc[i] : acc[i] / div);
}

template <typename T> void reduceK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &x = c.in[0], &y = c.out[0];
  float *acc = static_cast<float *>(ctx.scratch);
  using Kind = attr::ReduceKind;
  auto kind = static_cast<Kind>(attrOf(c, attr::Reduce::kind).i);
  bool reduced[kMaxRank] = {};
  const LoomAttrValue &dims = attrOf(c, attr::Reduce::dims);
  for (int32_t k = 0; k < dims.numInts; ++k)
    reduced[dims.ints[k]] = true;
  // x as [p, r, q] when the reduced dimensions (of size > 1) are adjacent.
  int first = x.rank, last = -1;
  int64_t count = 1;
  for (int i = 0; i < x.rank; ++i)
    if (reduced[i]) {
      count *= x.shape[i];
      if (x.shape[i] != 1) {
        first = std::min(first, i);
        last = i;
      }
    }
  bool adjacent = true;
  int64_t p = 1, q = 1;
  for (int i = 0; i < x.rank; ++i) {
    if (i < first)
      p *= x.shape[i];
    else if (i > last)
      q *= x.shape[i];
    else if (!reduced[i] && x.shape[i] != 1)
      adjacent = false;
  }
  float div = kind == Kind::mean ? static_cast<float>(count) : 1.0f;
  if (y.numel == 0)
    return;
  switch (kind) {
  case Kind::max:
    return reduceAs<T, Red::Max>(x, y, reduced, adjacent, p, count, q, div,
                                 acc);
  case Kind::sum_squares:
    return reduceAs<T, Red::Squares>(x, y, reduced, adjacent, p, count, q, div,
                                     acc);
  default:
    return reduceAs<T, Red::Sum>(x, y, reduced, adjacent, p, count, q, div,
                                 acc);
  }
}

void memcpyK(const OpCall &c, KernelContext &) {
  copyBytes(c.out[0].data, c.in[0].data, c.out[0].bytes);
}

KernelFn pickWidth(DType t, KernelFn k2, KernelFn k4, KernelFn k8) {
  switch (dtypeSize(t)) {
  case 2:
    return k2;
  case 4:
    return k4;
  default:
    return k8;
  }
}

} // namespace

bool selectShape(OpCall &c) {
  switch (c.op) {
  case Opcode::Reshape:
    c.kernel = c.in[0].data == c.out[0].data || c.out[0].bytes == 0 ? nullptr
                                                                    : &memcpyK;
    return true;
  case Opcode::Transpose:
    c.kernel = pickWidth(c.in[0].dtype, &transposeK<uint16_t>,
                         &transposeK<uint32_t>, &transposeK<uint64_t>);
    return true;
  case Opcode::Slice:
    c.kernel = &sliceK;
    return true;
  case Opcode::Concat:
    c.kernel = &concatK;
    return true;
  case Opcode::Broadcast:
    c.kernel = pickWidth(c.in[0].dtype, &broadcastK<uint16_t>,
                         &broadcastK<uint32_t>, &broadcastK<uint64_t>);
    return true;
  case Opcode::Reduce:
    c.kernel = LOOM_PICK_FLOAT(reduceK, c.in[0].dtype);
    // f32 results, or the partial results of chunks (reduceRows).
    c.scratchBytes =
        (c.out[0].numel + c.in[0].numel / kSumChunk + 16) * sizeof(float);
    return true;
  default:
    return false;
  }
}

} // namespace loom::runtime::cpu
