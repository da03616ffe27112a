//===- JoinJob.cpp - Ranks of a job find each other -----------------------===//
//
// A claim is one line, "program=<hash> world=<n> host=<name> pid=<pid>
// nonce=<random>", stored with an atomic set-if-absent so that two processes
// never both hold one rank. Ranks other than 0 compare with rank 0's claim
// as soon as it is there (a rank of a mismatched job fails fast), then
// every rank waits for all claims.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/comm/JoinJob.h"

#include "loom/runtime/Communicator.h"
#include "loom/runtime/comm/LaunchEnv.h"

#include <gloo/common/error.h>
#include <gloo/rendezvous/store.h>

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <sstream>

using namespace loom::runtime;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

struct Claim {
  uint64_t program = 0;
  int world = 0;
  std::string host;
  long pid = 0;
  std::string nonce;

  std::string where() const {
    return "pid " + std::to_string(pid) + " on " + host;
  }
};

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

std::string encode(const Claim &c) {
  return "program=" + hex(c.program) + " world=" + std::to_string(c.world) +
         " host=" + c.host + " pid=" + std::to_string(c.pid) +
         " nonce=" + c.nonce;
}

Claim decode(const std::string &text, int rank) {
  Claim c;
  std::istringstream in(text);
  std::string field;
  bool ok = true;
  while (in >> field) {
    size_t eq = field.find('=');
    std::string name = field.substr(0, eq), value = field.substr(eq + 1);
    if (name == "program")
      ok &= std::sscanf(value.c_str(), "%" SCNx64, &c.program) == 1;
    else if (name == "world")
      ok &= std::sscanf(value.c_str(), "%d", &c.world) == 1;
    else if (name == "pid")
      ok &= std::sscanf(value.c_str(), "%ld", &c.pid) == 1;
    else if (name == "host")
      c.host = value;
    else if (name == "nonce")
      c.nonce = value;
  }
  if (!ok || c.world <= 0 || c.nonce.empty())
    throw CommError("the rendezvous store holds a malformed claim for world "
                    "rank " +
                    std::to_string(rank) + ": '" + text + "'");
  return c;
}

std::string hostName() {
  char name[256] = "?";
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

/// Throws if rank `q`'s claim says it belongs to another job than `me`.
void compare(const JobMember &me, int q, const Claim &theirs) {
  std::string who =
      "world rank " + std::to_string(q) + " (" + theirs.where() + ")";
  if (theirs.program != me.programHash)
    throw CommError(who + " runs another program (hash " + hex(theirs.program) +
                    ") than this rank (hash " + hex(me.programHash) +
                    "); every rank of " + me.jobName +
                    " must run the same program");
  if (theirs.world != me.worldSize)
    throw CommError(who + " joined a world of " + std::to_string(theirs.world) +
                    " ranks, this rank a world of " +
                    std::to_string(me.worldSize) + "; every rank of " +
                    me.jobName + " must have the same WORLD_SIZE");
}

} // namespace

void loom::runtime::joinJob(RendezvousStore &store, const std::string &prefix,
                            const JobMember &me, milliseconds deadline) {
  auto until = Clock::now() + deadline;
  auto left = [&] {
    return std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(
                                         until - Clock::now()));
  };
  auto key = [&](int q) { return prefix + "/join/" + std::to_string(q); };
  Claim mine{me.programHash, me.worldSize, hostName(), ::getpid(),
             newJobToken()};

  if (std::optional<std::string> taken =
          storeSetIfAbsent(store, key(me.rank), encode(mine), left())) {
    std::string clash = "world rank " + std::to_string(me.rank) + " of " +
                        me.jobName + " is already taken by " +
                        decode(*taken, me.rank).where();
    // The job that holds the rank may hold ranks of this job too: tell it.
    try {
      storeSet(store, prefix + "/intruder",
               clash + ", and " + mine.where() + " claimed it as well", left());
    } catch (const CommError &) {
    }
    throw CommError(clash + ": another job shares " + describeStore(store) +
                    " and this job id; give each job its own LOOM_JOB_ID or "
                    "MASTER_PORT");
  }

  std::vector<Claim> claims(me.worldSize);
  std::vector<bool> known(me.worldSize, false);
  claims[me.rank] = mine;
  known[me.rank] = true;
  auto learn = [&](int q) {
    // A claim that is there comes at once; past the deadline, it still may.
    milliseconds soon = std::max(left(), milliseconds(500));
    claims[q] = decode(storeGet(store, key(q), soon), q);
    known[q] = true;
    compare(me, q, claims[q]);
  };
  std::vector<std::string> keys;
  for (int q = 0; q < me.worldSize; ++q)
    keys.push_back(key(q));
  try {
    if (!known[0]) {
      store.wait({key(0)}, left());
      learn(0);
    }
    store.wait(keys, left());
  } catch (const gloo::Exception &) {
    // Say who differs before who is missing: a rank that joined with
    // another world size keeps the others waiting for ranks that will
    // never come.
    std::string missing;
    for (int q = 0; q < me.worldSize; ++q) {
      if (known[q])
        continue;
      if (storeHasKeys(store, {key(q)}, milliseconds(500)))
        learn(q);
      else
        missing += (missing.empty() ? "" : ", ") + std::to_string(q);
    }
    throw CommError("world ranks " + missing + " of " + me.jobName +
                    " never joined within " + std::to_string(deadline.count()) +
                    " ms (exited, stalled or never started)");
  }
  for (int q = 0; q < me.worldSize; ++q)
    if (!known[q])
      learn(q);
}

void loom::runtime::checkJobAlone(RendezvousStore &store,
                                  const std::string &prefix,
                                  const JobMember &me, milliseconds timeout) {
  if (!storeHasKeys(store, {prefix + "/intruder"}, timeout))
    return;
  throw CommError(storeGet(store, prefix + "/intruder", timeout) +
                  ": two jobs share " + describeStore(store) +
                  " and this job id, so the ranks of " + me.jobName +
                  " may be another job's; its outputs are not written. Give "
                  "each job its own LOOM_JOB_ID or MASTER_PORT");
}
