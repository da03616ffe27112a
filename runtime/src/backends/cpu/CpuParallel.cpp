//===- CpuParallel.cpp - Threads for the CPU kernels ----------------------===//

#include "CpuParallel.h"

#include <cblas.h>

namespace loom::runtime::cpu {

int maxThreads() {
#ifdef _OPENMP
  // openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP. Kernel
  // threads next to OpenBLAS's own pthreads would compete for the cores.
  static const bool sharedPool = openblas_get_parallel() == 2;
  return sharedPool ? omp_get_max_threads() : 1;
#else
  return 1;
#endif
}

} // namespace loom::runtime::cpu
