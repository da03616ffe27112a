//===- Processes.h - Run test ranks as forked processes --------*- C++ -*-===//

#ifndef LOOM_RUNTIME_TEST_COMM_PROCESSES_H
#define LOOM_RUNTIME_TEST_COMM_PROCESSES_H

#include "Conformance.h"

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace loom::runtime::test {

/// A fresh temporary directory, removed (with its files) on destruction.
class TempDir {
public:
  TempDir();
  ~TempDir();
  const std::string &path() const { return path_; }

private:
  std::string path_;
};

struct ProcessResult {
  /// Exit code, or -signal if killed by a signal (-9 after a timeout).
  int status = 0;
  /// What the rank's body reported (failures and exceptions).
  std::string report;
};

/// Forks `n` processes; process r runs `body(r, report)` and exits with 0 if
/// the report is empty and the body returned, 1 otherwise (exceptions are
/// caught and reported). Ranks still running after `timeout` are killed.
/// Must be called while the test process has no other threads that the
/// children would need.
std::vector<ProcessResult>
runProcesses(int n, const std::function<void(int, Report &)> &body,
             std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// A TCP port that was free a moment ago (for MASTER_PORT in tests).
int pickFreePort();

} // namespace loom::runtime::test

#endif // LOOM_RUNTIME_TEST_COMM_PROCESSES_H
