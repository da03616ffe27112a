//===- JoinJob.h - Ranks of a job find each other ---------------*- C++ -*-===//
//
// Before its ranks connect, each one claims its place in the job through the
// rendezvous store and checks that its peers belong to the same job: the
// same program (a hash of its bytes) in a world of the same size. A rank of
// another job that reaches the store — two jobs launched on one address —
// or a rank that runs another program is refused with a message naming it,
// instead of pairing with ranks that are not its peers.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_JOINJOB_H
#define LOOM_RUNTIME_COMM_JOINJOB_H

#include "loom/runtime/comm/Rendezvous.h"

#include <chrono>
#include <cstdint>
#include <string>

namespace loom::runtime {

/// What a rank says about itself when it joins.
struct JobMember {
  int rank = 0;
  int worldSize = 1;
  /// Program::contentHash() of the program this rank runs.
  uint64_t programHash = 0;
  /// For messages: "job 'a1b2'" or "a job without an id".
  std::string jobName;
};

/// Claims `prefix`/join/<rank> for this process, then waits up to `deadline`
/// for every rank's claim and compares them with `me`. Throws CommError:
/// the rank is claimed by another process (naming its host and pid); a
/// rank runs another program or world size (naming it); ranks never joined
/// (naming them).
void joinJob(RendezvousStore &store, const std::string &prefix,
             const JobMember &me, std::chrono::milliseconds deadline);

/// Throws CommError if, since the job joined, another process was refused a
/// rank of it: two jobs without job ids share the store's address, so this
/// job's ranks may be the other's. Called by every rank before the job's
/// last barrier (while the store is surely up), so that no rank of such a
/// job writes outputs.
void checkJobAlone(RendezvousStore &store, const std::string &prefix,
                   const JobMember &me, std::chrono::milliseconds timeout);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_JOINJOB_H
