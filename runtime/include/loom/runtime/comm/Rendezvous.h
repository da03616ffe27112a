//===- Rendezvous.h - Key-value stores for process rendezvous ---*- C++ -*-===//
//
// The stores through which the ranks of a multi-process job find each other
// (Gloo's connectFullMesh, NCCL's unique id). Both implement Gloo's
// gloo::rendezvous::Store (set / get / wait with a timeout):
//
//  - a file store: a directory every rank can see (one machine, or a shared
//    file system); Gloo's FileStore, with millisecond-precise waits;
//  - a TCP store, as torchrun does it: rank 0 serves the keys at
//    MASTER_ADDR:MASTER_PORT, every rank (rank 0 included) is a client.
//
// Gloo types are only forward-declared here; callers that want to call the
// store directly include <gloo/rendezvous/store.h>.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_RENDEZVOUS_H
#define LOOM_RUNTIME_COMM_RENDEZVOUS_H

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gloo::rendezvous {
class Store;
} // namespace gloo::rendezvous

namespace loom::runtime {

using RendezvousStore = gloo::rendezvous::Store;

/// A store in directory `path` (created if missing). Keys are files; a run
/// needs a fresh directory (Gloo refuses to overwrite a key).
std::shared_ptr<RendezvousStore> makeFileStore(const std::string &path);

/// Serves a TCP key-value store from a background thread until destroyed.
/// Owned by rank 0 of a job (see makeTcpStore), or by a test.
class TcpStoreServer {
public:
  /// Listens on `port` (0 picks a free port) on all interfaces.
  explicit TcpStoreServer(int port);
  ~TcpStoreServer();
  TcpStoreServer(const TcpStoreServer &) = delete;
  TcpStoreServer &operator=(const TcpStoreServer &) = delete;

  /// The port actually bound.
  int port() const;

  struct Impl;

private:
  std::unique_ptr<Impl> impl_;
};

/// A client of the TCP store at host:port. Connecting retries until
/// `timeout` (the server may start later); get() and wait() without a
/// timeout use `timeout` too. If `server` is set, the returned store also
/// owns it (rank 0's case). Throws CommError when the server cannot be
/// reached.
std::shared_ptr<RendezvousStore>
makeTcpStore(const std::string &host, int port,
             std::chrono::milliseconds timeout,
             std::unique_ptr<TcpStoreServer> server = nullptr);

struct LaunchInfo;

/// The store of a launched job (LaunchEnv.h): a TCP store at
/// MASTER_ADDR:MASTER_PORT served by rank 0, or an in-process store for a
/// single rank. Throws std::runtime_error if MASTER_ADDR/MASTER_PORT are
/// missing with more than one rank, CommError if the server cannot be
/// reached within `timeout`.
std::shared_ptr<RendezvousStore>
makeLaunchStore(const LaunchInfo &launch, std::chrono::milliseconds timeout);

/// True if every key is present right now (a store from this header checks
/// without waiting; other stores get a 1 ms wait).
bool storeHasKeys(RendezvousStore &store, const std::vector<std::string> &keys);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_RENDEZVOUS_H
