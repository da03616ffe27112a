//===- BackendShim.cpp - libloom_backend_cuda.so for createBackend() ------===//
//
// createBackend("cuda") (BackendRegistry.cpp) loads libloom_backend_cuda.so
// and calls loomCreateBackend(). This small library is built with or
// without CUDA: it loads the real plugin, libloom_cuda.so, through
// loadCudaBackend(), whose exceptions say what is missing.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Backend.h"
#include "loom/runtime/BackendPlugin.h"

extern "C" __attribute__((visibility("default"))) loom::runtime::Backend *
loomCreateBackend(const char *options) {
  // Exceptions propagate to the caller of createBackend() (same C++
  // runtime on both sides).
  return loom::runtime::loadCudaBackend(options ? options : "").release();
}
