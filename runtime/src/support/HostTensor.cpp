//===- HostTensor.cpp - Host tensor conversions ---------------------------===//

#include "loom/runtime/HostTensor.h"

#include <type_traits>

namespace loom::runtime {
namespace {

template <typename T> float loadF32(const T *p, int64_t i) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<float>(p[i]);
  else
    return runtime::toF32(p[i]);
}

float elementAsF32(const HostTensor &t, int64_t i) {
  switch (t.dtype) {
  case DType::F32:
    return loadF32(t.as<float>(), i);
  case DType::BF16:
    return loadF32(t.as<bf16_t>(), i);
  case DType::F16:
    return loadF32(t.as<f16_t>(), i);
  case DType::I32:
    return loadF32(t.as<int32_t>(), i);
  case DType::I64:
    return loadF32(t.as<int64_t>(), i);
  }
  return 0;
}

} // namespace

std::vector<float> HostTensor::toF32() const {
  std::vector<float> v(numel());
  for (int64_t i = 0; i < numel(); ++i)
    v[i] = elementAsF32(*this, i);
  return v;
}

HostTensor HostTensor::convert(DType to) const {
  HostTensor r(to, shape);
  int64_t n = numel();
  bool fromInt = isInteger(dtype);
  for (int64_t i = 0; i < n; ++i) {
    int64_t iv = 0;
    if (fromInt)
      iv = dtype == DType::I32 ? as<int32_t>()[i] : as<int64_t>()[i];
    float fv = fromInt ? static_cast<float>(iv) : elementAsF32(*this, i);
    switch (to) {
    case DType::F32:
      r.as<float>()[i] = fv;
      break;
    case DType::BF16:
      r.as<uint16_t>()[i] = f32ToBf16(fv);
      break;
    case DType::F16:
      r.as<uint16_t>()[i] = f32ToF16(fv);
      break;
    case DType::I32:
      r.as<int32_t>()[i] =
          fromInt ? static_cast<int32_t>(iv) : static_cast<int32_t>(fv);
      break;
    case DType::I64:
      r.as<int64_t>()[i] = fromInt ? iv : static_cast<int64_t>(fv);
      break;
    }
  }
  return r;
}

std::string HostTensor::typeStr() const {
  std::string s = dtypeName(dtype);
  s += "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

} // namespace loom::runtime
