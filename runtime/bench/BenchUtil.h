//===- BenchUtil.h - Timing helpers of the runtime benchmarks ---*- C++ -*-===//

#ifndef LOOM_RUNTIME_BENCH_BENCHUTIL_H
#define LOOM_RUNTIME_BENCH_BENCHUTIL_H

#include <algorithm>
#include <chrono>

namespace loom::bench {

/// The best wall time of `runs` calls of `f`, in seconds: the least noisy
/// figure on a shared machine.
template <typename F> double bestOf(int runs, F &&f) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    auto t = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - t)
                              .count());
  }
  return best;
}

} // namespace loom::bench

#endif // LOOM_RUNTIME_BENCH_BENCHUTIL_H
