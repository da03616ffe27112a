//===- HostTensor.h - A tensor in host memory -------------------*- C++ -*-===//

#ifndef LOOM_RUNTIME_HOSTTENSOR_H
#define LOOM_RUNTIME_HOSTTENSOR_H

#include "loom/runtime/DType.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace loom::runtime {

/// Row-major tensor data owned by the host, used to bind inputs, read
/// outputs and read/write .npy files.
struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  HostTensor() = default;
  HostTensor(DType dtype, std::vector<int64_t> shape)
      : dtype(dtype), shape(std::move(shape)) {
    bytes.resize(static_cast<size_t>(numel()) * dtypeSize(dtype));
  }

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  size_t byteSize() const { return bytes.size(); }
  void *data() { return bytes.data(); }
  const void *data() const { return bytes.data(); }
  template <typename T> T *as() { return reinterpret_cast<T *>(bytes.data()); }
  template <typename T> const T *as() const {
    return reinterpret_cast<const T *>(bytes.data());
  }

  /// An f32 tensor holding `values` (numel must match the shape).
  static HostTensor f32(std::vector<int64_t> shape,
                        const std::vector<float> &values) {
    HostTensor t(DType::F32, std::move(shape));
    std::memcpy(t.data(), values.data(), t.byteSize());
    return t;
  }
  /// Elements converted to f32 (integers by value).
  std::vector<float> toF32() const;
  /// A copy converted to another dtype (floats round to nearest even,
  /// floats to integers truncate toward zero).
  HostTensor convert(DType to) const;
  /// "f32[2,3]".
  std::string typeStr() const;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_HOSTTENSOR_H
