//===- NcclCommunicator.h - GPU ranks over NCCL -----------------*- C++ -*-===//
//
// Communicators for ranks that are GPUs, one process per GPU. NCCL itself
// runs inside the CUDA plugin (libloom_cuda.so, built with NCCL); this side
// has no CUDA headers and drives it through the plugin's C table, so a
// runtime without CUDA still builds and links it.
//
//   auto backend = std::shared_ptr<Backend>(createBackend("cuda"));
//   auto comms = createNcclCommunicators(backend,
//                                        ncclOptionsFromEnvironment());
//
// Bootstrap, on a communicator's first call (creating one never blocks):
// group rank 0 makes an ncclUniqueId and publishes it in the rendezvous
// store (the same stores as Gloo's); the others wait for it, then all call
// ncclCommInitRankConfig (non-blocking, bounded by the deadline). Buffers are
// device memory of that backend. Every call is synchronous: it enqueues on the
// communicator's own stream and waits, polling ncclCommGetAsyncError, until the
// work is done or the deadline passes, in which case the NCCL communicator is
// aborted and a CommError names the collective, the rank and (through the
// store's failure reports) the peers that failed or never reported. bf16/f16
// all-reduce and reduce-scatter are widened to f32 on the device first, so
// the reduction runs in f32 as Communicator.h promises. All-to-all is
// grouped send/recv; barrier is a one-element all-reduce.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_NCCLCOMMUNICATOR_H
#define LOOM_RUNTIME_COMM_NCCLCOMMUNICATOR_H

#include "loom/runtime/comm/CommunicatorProvider.h"
#include "loom/runtime/comm/Rendezvous.h"

#include <chrono>
#include <memory>
#include <string>

namespace loom::runtime {

class Backend;

struct NcclOptions {
  int rank = -1;
  int size = -1;
  std::shared_ptr<RendezvousStore> store;
  std::string prefix = "loom-nccl";
  std::chrono::milliseconds deadline = std::chrono::seconds(300);
  std::chrono::milliseconds reportGrace = std::chrono::milliseconds(1000);
};

/// This rank's NCCL communicators on `cudaBackend` (made by
/// createBackend("cuda")). Throws CommError if the backend is not a plugin
/// backend or its plugin was built without NCCL.
std::unique_ptr<CommunicatorProvider>
createNcclCommunicators(std::shared_ptr<Backend> cudaBackend,
                        const NcclOptions &options);

/// Rank, size and store from the launcher (LaunchEnv.h, makeLaunchStore).
NcclOptions ncclOptionsFromEnvironment(
    std::chrono::milliseconds deadline = std::chrono::seconds(300));

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_NCCLCOMMUNICATOR_H
