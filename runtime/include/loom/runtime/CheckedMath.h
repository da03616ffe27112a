//===- CheckedMath.h - Overflow-checked integer arithmetic ------*- C++ -*-===//
//
// The one place where Loom multiplies and adds sizes that come from its
// users: tensor shapes, mesh axis sizes, byte counts, arena offsets and
// model statistics. The dialect's verifiers, the memory plan, the emitter,
// the program loader, loom-models and the statistics all go through these,
// so that no size wraps into a small or negative number anywhere. Header-only
// and free of MLIR and exceptions (the runtime and the compiler share it).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CHECKEDMATH_H
#define LOOM_RUNTIME_CHECKEDMATH_H

#include <cstddef>
#include <cstdint>

namespace loom::runtime {

/// `out = a + b`; false (and `out` unspecified) when it overflows.
[[nodiscard]] inline bool checkedAdd(int64_t a, int64_t b, int64_t &out) {
  return !__builtin_add_overflow(a, b, &out);
}

/// `out = a * b`; false (and `out` unspecified) when it overflows.
[[nodiscard]] inline bool checkedMul(int64_t a, int64_t b, int64_t &out) {
  return !__builtin_mul_overflow(a, b, &out);
}

/// `total += value` unless the sum would exceed `limit` (or overflow);
/// returns whether it added.
[[nodiscard]] inline bool checkedAccumulate(int64_t &total, int64_t value,
                                            int64_t limit = INT64_MAX) {
  int64_t sum;
  if (!checkedAdd(total, value, sum) || sum > limit)
    return false;
  total = sum;
  return true;
}

/// The product of `count` factors, or -1 when a factor lies outside
/// [minFactor, maxFactor] or the product (or a partial product) exceeds
/// `limit`. A zero factor gives 0 only when `minFactor` admits it.
inline int64_t checkedProduct(const int64_t *factors, size_t count,
                              int64_t minFactor, int64_t maxFactor,
                              int64_t limit) {
  int64_t product = 1;
  for (size_t i = 0; i < count; ++i) {
    int64_t f = factors[i];
    if (f < minFactor || f > maxFactor || !checkedMul(product, f, product) ||
        product > limit)
      return -1;
  }
  return product;
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_CHECKEDMATH_H
