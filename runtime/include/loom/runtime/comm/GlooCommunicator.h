//===- GlooCommunicator.h - Ranks as processes over TCP ---------*- C++ -*-===//
//
// Communicators for ranks that are processes (one machine or many), built on
// Gloo's TCP transport and algorithms. The ranks meet through a rendezvous
// store (Rendezvous.h); every group gets its own Gloo context, connected
// through a prefix of that store.
//
//   // torchrun / mpirun / srun: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//   auto comms = createGlooCommunicators(glooOptionsFromEnvironment());
//   auto world = comms->world();
//
// Reductions: f32, i32 and i64 with Gloo's all-reduce; bf16 and f16 are
// widened to f32, reduced, and rounded back, so every rank gets the same
// bits. Reduce-scatter is an all-to-all followed by a local reduction over
// ranks 0..n-1 in order. A failure (a peer that died or never came, the
// deadline) raises CommError naming the collective, the rank and, after a
// short exchange through the store, which peers also failed and which never
// reported; the communicator is then closed, which makes its peers fail
// promptly as well.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_GLOOCOMMUNICATOR_H
#define LOOM_RUNTIME_COMM_GLOOCOMMUNICATOR_H

#include "loom/runtime/comm/CommunicatorProvider.h"
#include "loom/runtime/comm/LaunchEnv.h"
#include "loom/runtime/comm/Rendezvous.h"

#include <chrono>
#include <memory>
#include <string>

namespace loom::runtime {

struct GlooOptions {
  int rank = -1;
  int size = -1;
  /// The rendezvous store shared by all ranks.
  std::shared_ptr<RendezvousStore> store;
  /// Namespace of this job's keys in the store.
  std::string prefix = "loom";
  /// Network interface for the transport (e.g. "eth0"), or "" to use
  /// `hostname`.
  std::string iface;
  /// Address to bind the transport to; "" uses this machine's host name.
  /// Loopback-only runs use "127.0.0.1".
  std::string hostname;
  /// How long any call (and the connection of a group) waits for peers.
  std::chrono::milliseconds deadline = std::chrono::seconds(60);
  /// After a failure, how long to wait for the peers' failure reports that
  /// go into the CommError message (capped at the deadline). A rank that
  /// fails waits at most this long after its deadline, even when the store
  /// stalled with the rank that serves it.
  std::chrono::milliseconds reportGrace = std::chrono::milliseconds(500);
};

/// Sets up the transport and returns this rank's provider. group() does
/// not block: a communicator connects to its peers (through the store) on
/// its first call, so ranks may create their groups in any order; a peer
/// that never comes makes that first call fail at the deadline. Throws
/// CommError if the transport cannot be set up.
std::unique_ptr<CommunicatorProvider>
createGlooCommunicators(const GlooOptions &options);

/// Options for a torchrun-style launch: rank and size from detectLaunch();
/// rank 0 (or the launcher) serves a TCP store at MASTER_PORT and every rank
/// connects to MASTER_ADDR:MASTER_PORT; keys are prefixed with the job id.
/// GLOO_SOCKET_IFNAME, if set, picks the interface. Throws std::runtime_error
/// if MASTER_ADDR/MASTER_PORT are missing (with more than one rank) and
/// CommError if the store cannot be reached within `deadline`.
GlooOptions glooOptionsFromEnvironment(
    std::chrono::milliseconds deadline = std::chrono::seconds(60));

/// The same from an explicit LaunchInfo.
GlooOptions glooOptionsFromLaunch(const LaunchInfo &launch,
                                  std::chrono::milliseconds deadline);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_GLOOCOMMUNICATOR_H
