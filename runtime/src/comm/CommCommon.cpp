//===- CommCommon.cpp - Shared pieces of the multi-process communicators --===//

#include "CommCommon.h"

#include <gloo/rendezvous/store.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <thread>

using namespace loom::runtime;
using Clock = std::chrono::steady_clock;

std::string comm::joinRanks(const std::vector<int> &members) {
  std::string s = "[";
  for (size_t i = 0; i < members.size(); ++i)
    s += (i ? "," : "") + std::to_string(members[i]);
  return s + "]";
}

int comm::groupRankOf(const std::vector<int> &members, int worldSize, int rank,
                      const char *who) {
  std::string list = joinRanks(members);
  std::vector<int> sorted = members;
  std::sort(sorted.begin(), sorted.end());
  if (members.empty() ||
      std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end() ||
      sorted.front() < 0 || sorted.back() >= worldSize)
    throw std::invalid_argument(std::string(who) + ": invalid group " + list +
                                " in a world of " + std::to_string(worldSize));
  auto it = std::find(members.begin(), members.end(), rank);
  if (it == members.end())
    throw std::invalid_argument(std::string(who) + ": rank " +
                                std::to_string(rank) +
                                " is not a member of group " + list);
  return static_cast<int>(it - members.begin());
}

std::string comm::groupStoreKey(const std::vector<int> &members, int instance) {
  uint64_t h = 1469598103934665603ull;
  for (int m : members)
    h = (h ^ static_cast<uint64_t>(m)) * 1099511628211ull;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(h));
  return "g" + std::to_string(members.size()) + "-" + buf + "." +
         std::to_string(instance);
}

std::string comm::cleanMessage(std::string msg) {
  for (;;) {
    size_t close = msg.find("] ");
    if (msg.empty() || msg[0] != '[' || close == std::string::npos)
      break;
    msg = msg.substr(close + 2);
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
    msg.pop_back();
  return msg;
}

std::string comm::exchangeFailureReports(RendezvousStore &store,
                                         const std::string &keyPrefix,
                                         const std::vector<int> &members,
                                         int rank, const std::string &mine,
                                         std::chrono::milliseconds grace) {
  int n = static_cast<int>(members.size());
  if (n <= 1)
    return "";
  auto key = [&](int q) { return keyPrefix + "/fail/" + std::to_string(q); };
  auto name = [&](int q) {
    return "rank " + std::to_string(q) + " (world " +
           std::to_string(members[q]) + ")";
  };
  // Every store call shares the grace: a store that stalled with the rank
  // serving it must not hold this rank for a deadline of its own.
  auto until = Clock::now() + grace;
  // A store that answers does so in well under this; one that stalled
  // fails the first call, which gets the whole grace.
  auto left = [&] {
    return std::max(std::chrono::milliseconds(200),
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        until - Clock::now()));
  };
  try {
    storeSet(store, key(rank), mine, left());
    std::vector<bool> reported(n, false);
    reported[rank] = true;
    for (;;) {
      bool all = true;
      for (int q = 0; q < n; ++q) {
        if (!reported[q])
          reported[q] = storeHasKeys(store, {key(q)}, left());
        all = all && reported[q];
      }
      if (all || Clock::now() >= until)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::string failed, silent;
    for (int q = 0; q < n; ++q) {
      if (q == rank)
        continue;
      if (reported[q])
        failed +=
            " " + name(q) + " [in " + storeGet(store, key(q), left()) + "]";
      else
        silent += " " + name(q);
    }
    std::string out;
    if (!failed.empty())
      out += "; peers that failed too:" + failed;
    if (!silent.empty())
      out += "; peers that never arrived, exited or hung (no failure "
             "report):" +
             silent;
    return out;
  } catch (const std::exception &e) {
    return "; no failure reports: " + cleanMessage(e.what());
  }
}
