//===- CpuParallel.h - Threads for the CPU kernels --------------*- C++ -*-===//
//
// The CPU kernels split their loops over independent rows, elements or
// heads across OpenMP threads. OpenBLAS built on OpenMP (Debian's
// libopenblas0-openmp) runs its gemms on the same pool, so kernels and
// gemms take turns on the cores instead of competing; with another OpenBLAS
// (or without OpenMP) every kernel runs on the calling thread.
//
// Results never depend on the number of threads: a loop is split only where
// each item is computed alone, and a sum across items runs over fixed-size
// chunks (kRowChunk, kSumChunk) whose partial sums are added in chunk
// order, on one thread or many.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_BACKENDS_CPU_CPUPARALLEL_H
#define LOOM_RUNTIME_SRC_BACKENDS_CPU_CPUPARALLEL_H

#include <cstdint>
#include <exception>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace loom::runtime::cpu {

/// Work (about one element read or written, or one flop) below which a
/// thread is not worth waking: a parallel loop gives each thread at least
/// this much.
constexpr int64_t kMinWorkPerThread = 1 << 18;

/// Rows per partial sum of the weight gradients of the norms.
constexpr int64_t kRowChunk = 64;
/// Elements per partial sum of a reduction over many elements.
constexpr int64_t kSumChunk = 4096;

/// The threads a kernel may use: OpenMP's, when OpenBLAS runs on OpenMP's
/// pool too; else 1.
int maxThreads();

/// Threads for a loop of `items` items of `cost` work each: at most one per
/// item, per kMinWorkPerThread of work and `limit` in all.
inline int threadsFor(int64_t items, int64_t cost, int64_t limit = 1 << 30) {
  if (items < 2 || items * cost < 2 * kMinWorkPerThread || limit < 2)
    return 1;
  int64_t t = items * cost / kMinWorkPerThread;
  t = t < items ? t : items;
  t = t < limit ? t : limit;
  int64_t most = maxThreads();
  return static_cast<int>(t < most ? t : most);
}

/// Calls f(begin, end) on contiguous ranges that cover [0, items), one range
/// per thread (threadsFor(items, cost, limit) of them; threadIndex() tells
/// which), and waits for all. If ranges throw, rethrows the exception of the
/// first range that threw: the one a serial loop (f processes its range in
/// order) would have hit first.
template <typename F>
void parallelRanges(int64_t items, int64_t cost, F &&f,
                    int64_t limit = 1 << 30) {
  int threads = threadsFor(items, cost, limit);
  if (threads <= 1) {
    if (items > 0)
      f(int64_t(0), items);
    return;
  }
#ifdef _OPENMP
  constexpr int kMaxErrors = 256;
  if (threads > kMaxErrors)
    threads = kMaxErrors;
  std::exception_ptr errors[kMaxErrors];
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), n = omp_get_num_threads();
    int64_t begin = items * t / n, end = items * (t + 1) / n;
    try {
      if (begin < end)
        f(begin, end);
    } catch (...) {
      errors[t] = std::current_exception();
    }
  }
  for (int t = 0; t < threads; ++t)
    if (errors[t])
      std::rethrow_exception(errors[t]);
#else
  f(int64_t(0), items);
#endif
}

/// f(i) for every i in [0, items), as parallelRanges.
template <typename F>
void parallelFor(int64_t items, int64_t cost, F &&f, int64_t limit = 1 << 30) {
  parallelRanges(
      items, cost,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
          f(i);
      },
      limit);
}

/// Scratch for per-thread work areas of `slotBytes` each: room for one per
/// thread a kernel may use, `extra` bytes before them.
inline size_t threadSlotsBytes(size_t slotBytes, size_t extra = 0) {
  return extra + slotBytes * static_cast<size_t>(maxThreads());
}

/// How many work areas of `slotBytes` fit in a kernel's scratch after
/// `extra` bytes (at least 1: prepare sized the scratch for one or more).
inline int64_t threadSlots(size_t scratchBytes, size_t slotBytes,
                           size_t extra = 0) {
  if (slotBytes == 0 || scratchBytes < extra + 2 * slotBytes)
    return 1;
  return static_cast<int64_t>((scratchBytes - extra) / slotBytes);
}

/// The thread's index in the current parallelRanges (0 outside one).
inline int threadIndex() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

} // namespace loom::runtime::cpu

#endif // LOOM_RUNTIME_SRC_BACKENDS_CPU_CPUPARALLEL_H
