//===- DType.h - Element types of the Loom runtime --------------*- C++ -*-===//
//
// The element types a Loom program stores, their sizes and names, and the
// bf16/f16 <-> f32 conversions shared by host and device code. The numeric
// values of DType match the `DType` enum of runtime/schema/program.fbs.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_DTYPE_H
#define LOOM_RUNTIME_DTYPE_H

#include <cstddef>
#include <cstdint>
#include <cstring>

/// Marks functions usable from both host and CUDA device code.
#ifdef __CUDACC__
#define LOOM_HD __host__ __device__
#else
#define LOOM_HD
#endif

namespace loom::runtime {

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, I64 = 4 };

/// Number of DType values; valid values are [0, kNumDTypes).
constexpr unsigned kNumDTypes = 5;

/// Size of one element in bytes.
LOOM_HD constexpr size_t dtypeSize(DType t) {
  switch (t) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::BF16:
  case DType::F16:
    return 2;
  case DType::I64:
    return 8;
  }
  return 0;
}

/// Lower-case name as in MLIR ("f32", "bf16", "f16", "i32", "i64"), or "?"
/// for a value outside the enum. Inline, so that libraries that use no
/// other symbol of the runtime (the communicators) can name types.
inline const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "f32";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  }
  return "?";
}

/// Parses a name produced by dtypeName(); returns false if unknown.
bool parseDType(const char *name, DType &out);

LOOM_HD constexpr bool isFloat(DType t) {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16;
}
LOOM_HD constexpr bool isInteger(DType t) {
  return t == DType::I32 || t == DType::I64;
}

//===----------------------------------------------------------------------===//
// Bit casts and 16-bit float conversions (round to nearest even).
//===----------------------------------------------------------------------===//

LOOM_HD inline uint32_t floatBits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}

LOOM_HD inline float bitsToFloat(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

/// bf16 (stored as its 16 raw bits) -> f32. Exact.
LOOM_HD inline float bf16ToF32(uint16_t h) {
  return bitsToFloat(static_cast<uint32_t>(h) << 16);
}

/// f32 -> bf16, round to nearest even; NaN stays a (quiet) NaN.
LOOM_HD inline uint16_t f32ToBf16(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((u >> 16) | 0x0040u);
  uint32_t lsb = (u >> 16) & 1u;
  u += 0x7fffu + lsb;
  return static_cast<uint16_t>(u >> 16);
}

/// IEEE binary16 (raw bits) -> f32. Exact, including subnormals, inf, NaN.
LOOM_HD inline float f16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal: value = mant * 2^-24; normalize.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    mant &= 0x3ffu;
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | (mant << 13);
  }
  return bitsToFloat(bits);
}

/// f32 -> IEEE binary16, round to nearest even; overflow gives inf, NaN
/// stays a (quiet) NaN.
LOOM_HD inline uint16_t f32ToF16(float f) {
  uint32_t u = floatBits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u)
    return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a >= 0x477ff000u) // >= 65520 rounds to inf (and inf itself)
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (a >= 0x38800000u) { // normal half (>= 2^-14)
    uint32_t lsb = (a >> 13) & 1u;
    a += 0xfffu + lsb;
    return static_cast<uint16_t>(sign | ((a - 0x38000000u) >> 13));
  }
  if (a < 0x33000000u) // < 2^-25 rounds to zero (2^-25 itself ties to 0)
    return sign;
  // Subnormal half: value = m * 2^-24 with m in [1, 1023].
  uint32_t exp = a >> 23; // biased f32 exponent, 102..112
  uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126u - exp; // 14..24
  uint32_t m = mant >> shift;
  uint32_t rem = mant & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (m & 1u)))
    ++m;
  return static_cast<uint16_t>(sign | m);
}

/// Storage types for the 16-bit floats (raw bits in a distinct type so that
/// templates can dispatch on them).
struct bf16_t {
  uint16_t bits;
};
struct f16_t {
  uint16_t bits;
};

/// Load/store any element type as f32 (integers convert by value).
LOOM_HD inline float toF32(float v) { return v; }
LOOM_HD inline float toF32(bf16_t v) { return bf16ToF32(v.bits); }
LOOM_HD inline float toF32(f16_t v) { return f16ToF32(v.bits); }
LOOM_HD inline float toF32(int32_t v) { return static_cast<float>(v); }
LOOM_HD inline float toF32(int64_t v) { return static_cast<float>(v); }

template <typename T> LOOM_HD inline T fromF32(float v);
template <> LOOM_HD inline float fromF32<float>(float v) { return v; }
template <> LOOM_HD inline bf16_t fromF32<bf16_t>(float v) {
  return bf16_t{f32ToBf16(v)};
}
template <> LOOM_HD inline f16_t fromF32<f16_t>(float v) {
  return f16_t{f32ToF16(v)};
}
template <> LOOM_HD inline int32_t fromF32<int32_t>(float v) {
  return static_cast<int32_t>(v);
}
template <> LOOM_HD inline int64_t fromF32<int64_t>(float v) {
  return static_cast<int64_t>(v);
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_DTYPE_H
