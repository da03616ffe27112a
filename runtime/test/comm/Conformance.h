//===- Conformance.h - Collective conformance suite ------------*- C++ -*-===//
//
// Runs every collective of the Communicator interface on one rank and checks
// the results against references computed here from the math (every rank can
// compute every other rank's inputs, which are a formula of rank, case and
// index). Independent of GoogleTest so that it can run inside forked ranks;
// failures are collected as strings.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TEST_COMM_CONFORMANCE_H
#define LOOM_RUNTIME_TEST_COMM_CONFORMANCE_H

#include "loom/runtime/Communicator.h"

#include <string>
#include <vector>

namespace loom::runtime::test {

struct Report {
  std::vector<std::string> failures;
  void fail(const std::string &msg) { failures.push_back(msg); }
  bool ok() const { return failures.empty(); }
  std::string str() const {
    std::string s;
    for (const auto &f : failures)
      s += f + "\n";
    return s;
  }
};

struct ConformanceOptions {
  /// Also check that f32 sums equal the left-to-right sum over ranks
  /// 0..n-1 bit for bit (the local communicator's promise).
  bool exactOrder = false;
  /// Element counts to try (0 and odd sizes included by default).
  std::vector<size_t> counts = {0, 1, 7, 1000};
  /// A large all-reduce / all-gather to exercise segmentation; 0 skips.
  size_t largeCount = 70001;
};

/// Runs the whole suite on `comm` (one call per rank, all ranks together).
void runConformance(Communicator &comm, Report &report,
                    const ConformanceOptions &options = {});

/// Point-to-point: rings in both directions inside groupStart/groupEnd, an
/// ordered ring outside groups, several messages to one peer in a group.
void runSendRecv(Communicator &comm, Report &report);

/// A cheap check that `comm` works: an all-reduce whose expected result is
/// known (used by the mesh-group tests). `tag` distinguishes the groups.
void checkGroupSum(Communicator &comm, const std::vector<int> &members,
                   int worldRank, Report &report);

} // namespace loom::runtime::test

#endif // LOOM_RUNTIME_TEST_COMM_CONFORMANCE_H
