//===- CudaNccl.cpp - NCCL entries of the CUDA backend plugin -------------===//
//
// Thin wrappers over NCCL for the host-side NcclCommunicator: communicators
// are created non-blocking so that initialization and every wait can honour
// a deadline; commWait polls the stream and ncclCommGetAsyncError and
// aborts the communicator when the deadline passes or NCCL reports an error.
// Built only when NCCL is found (LOOM_HAVE_NCCL); otherwise the comm entries
// of the table stay null.
//
//===----------------------------------------------------------------------===//

#include "CudaPlugin.h"

#ifdef LOOM_HAVE_NCCL

#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

using namespace loom::runtime::cuda;
using Clock = std::chrono::steady_clock;

namespace {

PluginState &state(void *self) { return *static_cast<PluginState *>(self); }
ncclComm_t comm(LoomComm c) { return static_cast<ncclComm_t>(c); }

int checkNccl(ncclResult_t r, const char *what, ncclComm_t c = nullptr) {
  if (r == ncclSuccess || r == ncclInProgress)
    return LOOM_OK;
  std::string msg = std::string("nccl: ") + what + ": " + ncclGetErrorString(r);
  if (c) {
    const char *last = ncclGetLastError(c);
    if (last && *last)
      msg += std::string(" (") + last + ")";
  }
  return fail(LOOM_ERROR, msg);
}

bool dtypeOf(int dtype, ncclDataType_t &out) {
  switch (dtype) {
  case LOOM_F32:
    out = ncclFloat32;
    return true;
  case LOOM_BF16:
    out = ncclBfloat16;
    return true;
  case LOOM_F16:
    out = ncclFloat16;
    return true;
  case LOOM_I32:
    out = ncclInt32;
    return true;
  case LOOM_I64:
    out = ncclInt64;
    return true;
  }
  return false;
}

ncclRedOp_t opOf(int op) {
  switch (op) {
  case LOOM_REDUCE_MAX:
    return ncclMax;
  case LOOM_REDUCE_MIN:
    return ncclMin;
  case LOOM_REDUCE_AVG:
    return ncclAvg;
  default:
    return ncclSum;
  }
}

#define TRY(expr)                                                              \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ != LOOM_OK)                                                        \
      return rc_;                                                              \
  } while (0)

/// Waits until a non-blocking communicator leaves ncclInProgress; aborts it
/// on an error or at the deadline.
int waitReady(ncclComm_t c, Clock::time_point deadline, const char *what) {
  for (;;) {
    ncclResult_t st = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(c, &st);
    if (r != ncclSuccess)
      st = r;
    if (st == ncclSuccess)
      return LOOM_OK;
    if (st != ncclInProgress) {
      int rc = checkNccl(st, what, c);
      ncclCommAbort(c);
      return rc;
    }
    if (Clock::now() >= deadline) {
      ncclCommAbort(c);
      return fail(LOOM_TIMEOUT, std::string("nccl: ") + what +
                                    ": deadline expired; communicator "
                                    "aborted");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

int commUniqueId(void *self, char id[LOOM_NCCL_UNIQUE_ID_BYTES]) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  static_assert(sizeof(ncclUniqueId) == LOOM_NCCL_UNIQUE_ID_BYTES,
                "ncclUniqueId size");
  ncclUniqueId u;
  TRY(checkNccl(ncclGetUniqueId(&u), "ncclGetUniqueId"));
  std::memcpy(id, &u, sizeof(u));
  return LOOM_OK;
}

int commInit(void *self, const char id[LOOM_NCCL_UNIQUE_ID_BYTES], int nranks,
             int rank, int64_t timeoutMs, LoomComm *out) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  ncclUniqueId u;
  std::memcpy(&u, id, sizeof(u));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t c = nullptr;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  ncclResult_t r = ncclCommInitRankConfig(&c, nranks, u, rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    int rc = checkNccl(r, "ncclCommInitRankConfig", c);
    if (c)
      ncclCommAbort(c);
    return rc;
  }
  TRY(waitReady(c, deadline, "ncclCommInitRankConfig"));
  *out = c;
  return LOOM_OK;
}

int commDestroy(void *self, LoomComm c, int abort) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  if (!c)
    return LOOM_OK;
  if (abort)
    return checkNccl(ncclCommAbort(comm(c)), "ncclCommAbort");
  ncclResult_t r = ncclCommFinalize(comm(c));
  if (r == ncclSuccess || r == ncclInProgress) {
    // Bounded wait for the finalization; abort if it hangs.
    if (waitReady(comm(c), Clock::now() + std::chrono::seconds(30),
                  "ncclCommFinalize") != LOOM_OK)
      return LOOM_ERROR; // already aborted
  }
  return checkNccl(ncclCommDestroy(comm(c)), "ncclCommDestroy");
}

int commAllReduce(void *self, LoomComm c, const void *send, void *recv,
                  size_t count, int dtype, int op, LoomStream s) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  ncclDataType_t t;
  if (!dtypeOf(dtype, t))
    return fail(LOOM_INVALID_ARGUMENT, "nccl: unsupported element type");
  return checkNccl(ncclAllReduce(send, recv, count, t, opOf(op), comm(c),
                                 static_cast<cudaStream_t>(s)),
                   "ncclAllReduce", comm(c));
}

int commAllGather(void *self, LoomComm c, const void *send, void *recv,
                  size_t count, int dtype, LoomStream s) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  ncclDataType_t t;
  if (!dtypeOf(dtype, t))
    return fail(LOOM_INVALID_ARGUMENT, "nccl: unsupported element type");
  return checkNccl(ncclAllGather(send, recv, count, t, comm(c),
                                 static_cast<cudaStream_t>(s)),
                   "ncclAllGather", comm(c));
}

int commReduceScatter(void *self, LoomComm c, const void *send, void *recv,
                      size_t count, int dtype, int op, LoomStream s) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  ncclDataType_t t;
  if (!dtypeOf(dtype, t))
    return fail(LOOM_INVALID_ARGUMENT, "nccl: unsupported element type");
  return checkNccl(ncclReduceScatter(send, recv, count, t, opOf(op), comm(c),
                                     static_cast<cudaStream_t>(s)),
                   "ncclReduceScatter", comm(c));
}

int commBroadcast(void *self, LoomComm c, void *data, size_t count, int dtype,
                  int root, LoomStream s) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  ncclDataType_t t;
  if (!dtypeOf(dtype, t))
    return fail(LOOM_INVALID_ARGUMENT, "nccl: unsupported element type");
  return checkNccl(ncclBroadcast(data, data, count, t, root, comm(c),
                                 static_cast<cudaStream_t>(s)),
                   "ncclBroadcast", comm(c));
}

int commSend(void *self, LoomComm c, const void *data, size_t bytes, int peer,
             LoomStream s) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  return checkNccl(ncclSend(data, bytes, ncclUint8, peer, comm(c),
                            static_cast<cudaStream_t>(s)),
                   "ncclSend", comm(c));
}

int commRecv(void *self, LoomComm c, void *data, size_t bytes, int peer,
             LoomStream s) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  return checkNccl(ncclRecv(data, bytes, ncclUint8, peer, comm(c),
                            static_cast<cudaStream_t>(s)),
                   "ncclRecv", comm(c));
}

int commGroupStart(void *) {
  return checkNccl(ncclGroupStart(), "ncclGroupStart");
}

int commGroupEnd(void *) { return checkNccl(ncclGroupEnd(), "ncclGroupEnd"); }

int commWait(void *self, LoomComm c, LoomStream s, int64_t timeoutMs) {
  TRY(checkCuda(cudaSetDevice(state(self).device), "cudaSetDevice"));
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  // Enqueueing on a non-blocking communicator may still be in progress.
  TRY(waitReady(comm(c), deadline, "enqueue"));
  for (;;) {
    cudaError_t q = cudaStreamQuery(static_cast<cudaStream_t>(s));
    if (q == cudaSuccess)
      return LOOM_OK;
    if (q != cudaErrorNotReady) {
      ncclCommAbort(comm(c));
      return checkCuda(q, "communication stream");
    }
    ncclResult_t st = ncclSuccess;
    ncclCommGetAsyncError(comm(c), &st);
    if (st != ncclSuccess && st != ncclInProgress) {
      int rc = checkNccl(st, "asynchronous error", comm(c));
      ncclCommAbort(comm(c));
      return rc;
    }
    if (Clock::now() >= deadline) {
      ncclCommAbort(comm(c));
      return fail(LOOM_TIMEOUT,
                  "nccl: deadline of " + std::to_string(timeoutMs) +
                      " ms expired waiting for the communication stream; "
                      "communicator aborted");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

} // namespace

void loom::runtime::cuda::fillCommTable(LoomBackendPlugin &t) {
  t.commUniqueId = &commUniqueId;
  t.commInit = &commInit;
  t.commDestroy = &commDestroy;
  t.commAllReduce = &commAllReduce;
  t.commAllGather = &commAllGather;
  t.commReduceScatter = &commReduceScatter;
  t.commBroadcast = &commBroadcast;
  t.commSend = &commSend;
  t.commRecv = &commRecv;
  t.commGroupStart = &commGroupStart;
  t.commGroupEnd = &commGroupEnd;
  t.commWait = &commWait;
}

#else

void loom::runtime::cuda::fillCommTable(LoomBackendPlugin &) {}

#endif // LOOM_HAVE_NCCL
