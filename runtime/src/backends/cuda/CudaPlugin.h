//===- CudaPlugin.h - Internals of the CUDA backend plugin ------*- C++ -*-===//
//
// State shared by the pieces of libloom_cuda.so: the plugin entry and
// generic kernels (CudaPlugin.cpp), cuBLAS/cuBLASLt linear algebra
// (CudaLinalg.cpp) and NCCL communicators (CudaNccl.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_BACKENDS_CUDA_CUDAPLUGIN_H
#define LOOM_RUNTIME_SRC_BACKENDS_CUDA_CUDAPLUGIN_H

#include "CudaKernels.h"

#include "loom/runtime/BackendPlugin.h"
#include "loom/runtime/Opcode.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <map>
#include <mutex>
#include <string>

namespace loom::runtime::cuda {

/// cuBLAS state of one stream: kernels of different streams may run at the
/// same time, so each stream has its own handle and cuBLASLt workspace.
struct StreamBlas {
  cublasHandle_t blas = nullptr;
  void *workspace = nullptr;
};

struct PluginState {
  int device = 0;
  std::string deviceName;
  cublasLtHandle_t lt = nullptr;
  size_t workspaceBytes = 32u << 20;
  std::mutex blasMutex; ///< guards `blas`
  std::map<cudaStream_t, StreamBlas> blas;
  DeviceError *err = nullptr;     ///< device memory
  DeviceError *errHost = nullptr; ///< pinned host memory
};

/// The cuBLAS handle (bound to `s`) and workspace of a stream, created on
/// first use. Returns LOOM_OK or an error.
int streamBlas(PluginState &st, cudaStream_t s, StreamBlas **out);

/// Records `msg` as this thread's last error and returns `code`.
int fail(int code, const std::string &msg);
const char *lastErrorMessage();

int checkCuda(cudaError_t e, const char *what);
int checkCublas(cublasStatus_t s, const char *what);

/// Opcode values (loom::runtime::Opcode) as integers, for `case` labels on
/// LoomKernelCall::opcode: kFill, kAdd, ...
enum Op : uint16_t {
#define LOOM_OPCODE(NAME, VALUE, ...) k##NAME = VALUE,
#include "loom/runtime/OpTable.inc"
};

int64_t numel(const LoomTensor &t);
size_t dtypeBytes(int dtype);
inline size_t align256(size_t n) { return (n + 255) / 256 * 256; }

/// matmul, grouped_matmul, attention, attention_grad, attention_block,
/// attention_block_grad.
bool isLinalg(uint16_t opcode);
int prepareLinalg(PluginState &st, const LoomKernelCall &c, size_t *scratch);
int runLinalg(PluginState &st, const LoomKernelCall &c, cudaStream_t s);

/// Fills the comm* entries of the table (null when built without NCCL).
void fillCommTable(LoomBackendPlugin &table);

} // namespace loom::runtime::cuda

#endif // LOOM_RUNTIME_SRC_BACKENDS_CUDA_CUDAPLUGIN_H
