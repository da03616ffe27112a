//===- LocalCommunicator.h - Ranks as threads of one process ----*- C++ -*-===//
//
// A world of N ranks that are threads of one process. Collectives meet in a
// shared rendezvous object and read each other's buffers directly; results
// are deterministic (reductions run in f32 over ranks 0..n-1 in order, and
// every rank gets the same bits). Every wait has a deadline; a rank whose
// communicator is destroyed early (it returned or threw) or that calls
// abort() makes every other rank fail promptly with a CommError, and any
// CommError aborts the whole world.
//
//   auto world = LocalWorld::create(4, {std::chrono::seconds(5)});
//   // in thread r:
//   auto comms = world->provider(r);
//   auto tp = comms->meshGroup({2, 2}, {1});   // group over the last axis
//   tp->allReduce(buf, n, DType::F32, ReduceOp::Sum);
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_LOCALCOMMUNICATOR_H
#define LOOM_RUNTIME_COMM_LOCALCOMMUNICATOR_H

#include "loom/runtime/Communicator.h"
#include "loom/runtime/comm/CommunicatorProvider.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace loom::runtime {

struct LocalWorldOptions {
  /// How long any call waits for its peers before failing.
  std::chrono::milliseconds deadline = std::chrono::seconds(60);
};

class LocalWorld : public std::enable_shared_from_this<LocalWorld> {
public:
  /// A world of `size` ranks (threads).
  static std::shared_ptr<LocalWorld> create(int size,
                                            LocalWorldOptions options = {});
  ~LocalWorld();

  int size() const;
  const LocalWorldOptions &options() const;

  /// The communicator provider of world rank `rank`, for use by that rank's
  /// thread (see CommunicatorProvider for the group creation contract).
  std::unique_ptr<CommunicatorProvider> provider(int rank);

  /// Shorthand for provider(rank)->group(members).
  std::unique_ptr<Communicator> group(const std::vector<int> &members,
                                      int rank);
  /// Shorthand for provider(rank)->world().
  std::unique_ptr<Communicator> communicator(int rank);

  /// Fails every pending and future call of every rank with a CommError
  /// that quotes `reason` (e.g. the exception that ended rank `rank`).
  /// Idempotent; the first reason wins.
  void abort(int rank, const std::string &reason);
  bool aborted() const;
  /// The reason given by the first abort, or "".
  std::string abortReason() const;

  struct Impl;

private:
  LocalWorld(int size, LocalWorldOptions options);
  std::unique_ptr<Impl> impl_;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_LOCALCOMMUNICATOR_H
