//===- Watchdog.cpp - A limit on a process's run --------------------------===//

#include "loom/runtime/launch/Watchdog.h"
#include "loom/runtime/launch/JobFiles.h"

#include <unistd.h>

using namespace loom::runtime;

ProcessWatchdog::ProcessWatchdog(std::chrono::milliseconds timeout,
                                 std::string message, int status) {
  thread_ = std::thread([this, timeout, message = std::move(message), status] {
    std::unique_lock<std::mutex> lock(mutex_);
    if (disarmed_.wait_for(lock, timeout, [this] { return done_; }))
      return;
    (void)!::write(STDERR_FILENO, message.data(), message.size());
    // Staged outputs are never in place; remove them so that a timed-out
    // job leaves nothing behind.
    removeLiveStagedOutputs();
    ::_exit(status);
  });
}

ProcessWatchdog::~ProcessWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
  }
  disarmed_.notify_one();
  thread_.join();
}
