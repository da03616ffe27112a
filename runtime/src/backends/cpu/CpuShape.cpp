//===- CpuShape.cpp - CPU shape kernels -----------------------------------===//
//
// reshape, transpose, slice, concat, broadcast (byte moves for any dtype) and
// reduce. Strided loops walk the result with an odometer over all but the
// innermost dimension.
//
//===----------------------------------------------------------------------===//

#include "CpuKernels.h"

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

/// Walks a result of shape `shape` (rank >= 1) in row-major order; for each
/// innermost row calls f(resultOffset, srcOffset) where srcOffset follows
/// `srcStride` per dimension.
template <typename F>
void walkRows(int rank, const int64_t *shape, const int64_t *srcStride,
              int64_t srcBase, F &&f) {
  for (int i = 0; i < rank; ++i)
    if (shape[i] == 0)
      return;
  int64_t idx[kMaxRank] = {};
  int64_t rowLen = shape[rank - 1];
  int64_t rows = 1;
  for (int i = 0; i < rank - 1; ++i)
    rows *= shape[i];
  int64_t src = srcBase;
  for (int64_t r = 0; r < rows; ++r) {
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
  walkRows(y.rank, y.shape, ps, 0, [&](int64_t o, int64_t s) {
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
  walkRows(y.rank, y.shape, xs, base, [&](int64_t o, int64_t s) {
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
  int64_t acc = 0;
  for (const TensorRef &x : c.in) {
    int64_t chunk = x.shape[d] * inner * es;
    const char *src = static_cast<const char *>(x.data);
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(dst + o * yRow + acc, src + o * chunk, chunk);
    acc += chunk;
  }
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
  walkRows(y.rank, y.shape, bs, 0, [&](int64_t o, int64_t s) {
    for (int64_t j = 0; j < len; ++j)
      dst[o + j] = src[s + j * inner];
  });
}

template <typename T> void reduceK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &x = c.in[0], &y = c.out[0];
  float *acc = static_cast<float *>(ctx.scratch);
  using Kind = attr::ReduceKind;
  auto kind = static_cast<Kind>(attrOf(c, attr::Reduce::kind).i);
  float init =
      kind == Kind::max ? -std::numeric_limits<float>::infinity() : 0.0f;
  std::fill(acc, acc + y.numel, init);
  bool reduced[kMaxRank] = {};
  const LoomAttrValue &dims = attrOf(c, attr::Reduce::dims);
  for (int32_t k = 0; k < dims.numInts; ++k)
    reduced[dims.ints[k]] = true;
  int64_t count = 1;
  for (int i = 0; i < x.rank; ++i)
    if (reduced[i])
      count *= x.shape[i];
  const T *src = x.as<const T>();
  if (x.rank == 0) {
    acc[0] = toF32(src[0]);
  } else {
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
      if (kind == Kind::max)
        for (int64_t j = 0; j < len; ++j)
          acc[yo + j * inner] =
              std::fmax(acc[yo + j * inner], toF32(src[o + j]));
      else
        for (int64_t j = 0; j < len; ++j)
          acc[yo + j * inner] += toF32(src[o + j]);
    });
  }
  T *dst = y.as<T>();
  float div = kind == Kind::mean ? static_cast<float>(count) : 1.0f;
  for (int64_t i = 0; i < y.numel; ++i)
    dst[i] = fromF32<T>(kind == Kind::mean ? acc[i] / div : acc[i]);
}

void memcpyK(const OpCall &c, KernelContext &) {
  std::memmove(c.out[0].data, c.in[0].data, c.out[0].bytes);
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
    c.scratchBytes = (c.out[0].numel + 16) * sizeof(float);
    return true;
  default:
    return false;
  }
}

} // namespace loom::runtime::cpu
