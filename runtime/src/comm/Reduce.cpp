//===- Reduce.cpp - Element-wise reductions of the host communicators -----===//

#include "Reduce.h"

#include <algorithm>
#include <stdexcept>

using namespace loom::runtime;

const char *loom::runtime::reduceOpName(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum:
    return "sum";
  case ReduceOp::Max:
    return "max";
  case ReduceOp::Min:
    return "min";
  case ReduceOp::Avg:
    return "avg";
  }
  return "?";
}

namespace {

constexpr size_t kBlock = 1024;

/// Accumulator type and load/store for each storage type.
template <typename T> struct Elem;
template <> struct Elem<float> {
  using Acc = float;
  static Acc load(const float *p, size_t i) { return p[i]; }
  static void store(float *p, size_t i, Acc v) { p[i] = v; }
};
template <> struct Elem<bf16_t> {
  using Acc = float;
  static Acc load(const bf16_t *p, size_t i) { return bf16ToF32(p[i].bits); }
  static void store(bf16_t *p, size_t i, Acc v) { p[i].bits = f32ToBf16(v); }
};
template <> struct Elem<f16_t> {
  using Acc = float;
  static Acc load(const f16_t *p, size_t i) { return f16ToF32(p[i].bits); }
  static void store(f16_t *p, size_t i, Acc v) { p[i].bits = f32ToF16(v); }
};
template <> struct Elem<int32_t> {
  using Acc = int64_t;
  static Acc load(const int32_t *p, size_t i) { return p[i]; }
  static void store(int32_t *p, size_t i, Acc v) {
    p[i] = static_cast<int32_t>(static_cast<uint32_t>(v));
  }
};
template <> struct Elem<int64_t> {
  using Acc = int64_t;
  static Acc load(const int64_t *p, size_t i) { return p[i]; }
  static void store(int64_t *p, size_t i, Acc v) { p[i] = v; }
};

template <typename T>
void reduceTyped(ReduceOp op, const void *const *inputs, int n, void *outV,
                 size_t count) {
  using E = Elem<T>;
  using Acc = typename E::Acc;
  T *out = static_cast<T *>(outV);
  Acc acc[kBlock];
  for (size_t base = 0; base < count; base += kBlock) {
    size_t len = std::min(kBlock, count - base);
    const T *in0 = static_cast<const T *>(inputs[0]) + base;
    for (size_t i = 0; i < len; ++i)
      acc[i] = E::load(in0, i);
    for (int r = 1; r < n; ++r) {
      const T *in = static_cast<const T *>(inputs[r]) + base;
      for (size_t i = 0; i < len; ++i)
        acc[i] = comm::combine<Acc>(op, acc[i], E::load(in, i));
    }
    if (op == ReduceOp::Avg)
      for (size_t i = 0; i < len; ++i)
        acc[i] = acc[i] / static_cast<Acc>(n);
    for (size_t i = 0; i < len; ++i)
      E::store(out + base, i, acc[i]);
  }
}

template <typename T>
void combineTyped(ReduceOp op, void *inoutV, const void *inV, size_t count) {
  T *inout = static_cast<T *>(inoutV);
  const T *in = static_cast<const T *>(inV);
  for (size_t i = 0; i < count; ++i)
    inout[i] = comm::combine<T>(op, inout[i], in[i]);
}

template <typename T> void divideTyped(void *dataV, size_t count, int n) {
  T *data = static_cast<T *>(dataV);
  for (size_t i = 0; i < count; ++i)
    data[i] = data[i] / static_cast<T>(n);
}

[[noreturn]] void badDType(const char *what, DType dtype) {
  throw CommError(std::string(what) + ": unsupported element type " +
                  std::to_string(static_cast<int>(dtype)));
}

} // namespace

void comm::reduceInOrder(DType dtype, ReduceOp op, const void *const *inputs,
                         int n, void *out, size_t count) {
  switch (dtype) {
  case DType::F32:
    return reduceTyped<float>(op, inputs, n, out, count);
  case DType::BF16:
    return reduceTyped<bf16_t>(op, inputs, n, out, count);
  case DType::F16:
    return reduceTyped<f16_t>(op, inputs, n, out, count);
  case DType::I32:
    return reduceTyped<int32_t>(op, inputs, n, out, count);
  case DType::I64:
    return reduceTyped<int64_t>(op, inputs, n, out, count);
  }
  badDType("reduce", dtype);
}

void comm::combineInto(DType dtype, ReduceOp op, void *inout, const void *in,
                       size_t count) {
  switch (dtype) {
  case DType::F32:
    return combineTyped<float>(op, inout, in, count);
  case DType::I32:
    return combineTyped<int32_t>(op, inout, in, count);
  case DType::I64:
    return combineTyped<int64_t>(op, inout, in, count);
  default:
    badDType("combine", dtype);
  }
}

void comm::divideBy(DType dtype, void *data, size_t count, int n) {
  switch (dtype) {
  case DType::F32:
    return divideTyped<float>(data, count, n);
  case DType::I32:
    return divideTyped<int32_t>(data, count, n);
  case DType::I64:
    return divideTyped<int64_t>(data, count, n);
  default:
    badDType("divide", dtype);
  }
}

void comm::widenToF32(DType dtype, const void *in, float *out, size_t count) {
  switch (dtype) {
  case DType::BF16:
    for (size_t i = 0; i < count; ++i)
      out[i] = bf16ToF32(static_cast<const uint16_t *>(in)[i]);
    return;
  case DType::F16:
    for (size_t i = 0; i < count; ++i)
      out[i] = f16ToF32(static_cast<const uint16_t *>(in)[i]);
    return;
  default:
    badDType("widen", dtype);
  }
}

void comm::narrowFromF32(DType dtype, const float *in, void *out,
                         size_t count) {
  switch (dtype) {
  case DType::BF16:
    for (size_t i = 0; i < count; ++i)
      static_cast<uint16_t *>(out)[i] = f32ToBf16(in[i]);
    return;
  case DType::F16:
    for (size_t i = 0; i < count; ++i)
      static_cast<uint16_t *>(out)[i] = f32ToF16(in[i]);
    return;
  default:
    badDType("narrow", dtype);
  }
}
