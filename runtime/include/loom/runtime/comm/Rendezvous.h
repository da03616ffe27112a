//===- Rendezvous.h - Key-value stores for process rendezvous ---*- C++ -*-===//
//
// The stores through which the ranks of a multi-process job find each other
// (Gloo's connectFullMesh, NCCL's unique id). Both implement Gloo's
// gloo::rendezvous::Store (set / get / wait with a timeout):
//
//  - a file store: a directory every rank can see (one machine, or a shared
//    file system); Gloo's FileStore, with millisecond-precise waits;
//  - a TCP store, as torchrun does it: rank 0 (or the launcher) serves the
//    keys at MASTER_ADDR:MASTER_PORT, every rank is a client. The server
//    admits only clients of its own job (job id and token, LaunchEnv.h) and
//    listens on loopback unless asked to listen on every interface.
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
#include <optional>
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

/// The job a TCP store serves and the secret its clients must know. A
/// client presents both; the server refuses one that differs in either.
struct StoreAccess {
  std::string jobId;
  std::string token;
};

/// Serves a TCP key-value store from a background thread until destroyed.
/// Owned by rank 0 of a job (see makeTcpStore), its launcher, or a test.
class TcpStoreServer {
public:
  /// Listens on `port` (0 picks a free port) of the loopback interface, or
  /// of every interface if not `loopbackOnly`. Throws CommError if the port
  /// cannot be had (in use: another job's store?).
  explicit TcpStoreServer(int port, StoreAccess access = {},
                          bool loopbackOnly = true);
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
/// owns it (rank 0's case); `serverRank` is the world rank that serves the
/// store, if one does, for messages when it stops answering. Throws
/// CommError when the server cannot be reached or refuses this client
/// (another job's store, or another token).
std::shared_ptr<RendezvousStore>
makeTcpStore(const std::string &host, int port,
             std::chrono::milliseconds timeout, const StoreAccess &access = {},
             std::unique_ptr<TcpStoreServer> server = nullptr,
             int serverRank = -1);

struct LaunchInfo;

/// The store of a launched job (LaunchEnv.h): a TCP store at
/// MASTER_ADDR:MASTER_PORT for the job's id and token, served by rank 0
/// (on loopback when MASTER_ADDR is a loopback address, else on every
/// interface) unless the launcher serves it; or an in-process store for a
/// single rank. Throws std::runtime_error if MASTER_ADDR/MASTER_PORT are
/// missing with more than one rank, CommError if the server cannot be
/// reached within `timeout`.
std::shared_ptr<RendezvousStore>
makeLaunchStore(const LaunchInfo &launch, std::chrono::milliseconds timeout);

/// True if every key is present right now (a store from this header checks
/// without waiting, and throws CommError if it cannot answer within
/// `timeout`; other stores get a 1 ms wait).
bool storeHasKeys(
    RendezvousStore &store, const std::vector<std::string> &keys,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// Calls that give up after `timeout`, for failure paths and the job's
// rendezvous: a store that stalled with the process serving it must not
// hold a rank for a whole deadline. Each throws CommError naming the store
// and, if a rank serves it, that rank. Stores not made here ignore the
// timeout where Gloo's interface has none.

void storeSet(RendezvousStore &store, const std::string &key,
              const std::string &value, std::chrono::milliseconds timeout);
/// The value of `key`, waiting up to `timeout` for it to be set.
std::string storeGet(RendezvousStore &store, const std::string &key,
                     std::chrono::milliseconds timeout);
/// Sets `key` to `value` unless it is set, and returns the value it already
/// had if it was. Atomic on the stores made here.
std::optional<std::string> storeSetIfAbsent(RendezvousStore &store,
                                            const std::string &key,
                                            const std::string &value,
                                            std::chrono::milliseconds timeout);

/// "the rendezvous store at 127.0.0.1:29500, served by world rank 0", or
/// "the rendezvous store" for stores not made here.
std::string describeStore(RendezvousStore &store);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_RENDEZVOUS_H
