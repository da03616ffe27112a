//===- CommCommon.h - Shared pieces of the multi-process communicators ----===//
//
// Group validation, store keys and the failure-report exchange used by the
// Gloo and NCCL communicators.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_COMM_COMMCOMMON_H
#define LOOM_RUNTIME_SRC_COMM_COMMCOMMON_H

#include "loom/runtime/comm/Rendezvous.h"

#include <chrono>
#include <string>
#include <vector>

namespace loom::runtime::comm {

/// "[0,1,2]".
std::string joinRanks(const std::vector<int> &members);

/// Checks a member list (distinct, in [0, worldSize), holding `rank`) and
/// returns the index of `rank` in it; throws std::invalid_argument naming
/// `who` otherwise.
int groupRankOf(const std::vector<int> &members, int worldSize, int rank,
                const char *who);

/// A short key naming the `instance`-th communicator over `members`.
std::string groupStoreKey(const std::vector<int> &members, int instance);

/// Drops leading "[file:line] " locations from library messages.
std::string cleanMessage(std::string msg);

/// After a failure: publishes `mine` (e.g. "allReduce #3") under
/// keyPrefix/fail/<rank>, waits up to `grace` for the other members'
/// reports, and returns a suffix for the error message:
/// "; peers that failed too: ...; peers that never arrived, exited or hung
/// (no failure report): ...". Never throws.
std::string exchangeFailureReports(RendezvousStore &store,
                                   const std::string &keyPrefix,
                                   const std::vector<int> &members, int rank,
                                   const std::string &mine,
                                   std::chrono::milliseconds grace);

} // namespace loom::runtime::comm

#endif // LOOM_RUNTIME_SRC_COMM_COMMCOMMON_H
