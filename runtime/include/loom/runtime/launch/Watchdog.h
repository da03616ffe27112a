//===- Watchdog.h - A limit on a process's run ------------------*- C++ -*-===//
//
// A job whose ranks are threads of this process, or this process alone, is
// ended by a watchdog: a rank stuck in a kernel or a collective cannot be
// stopped any other way. (Spawned ranks are ended by their launcher.)
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_LAUNCH_WATCHDOG_H
#define LOOM_RUNTIME_LAUNCH_WATCHDOG_H

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace loom::runtime {

/// If still armed after `timeout`, writes `message` to standard error and
/// ends this process with exit status `status`. No destructors run; the
/// outputs staged by JobFiles, never half in place, are removed. Destroying
/// it disarms it.
class ProcessWatchdog {
public:
  ProcessWatchdog(std::chrono::milliseconds timeout, std::string message,
                  int status = 1);
  ~ProcessWatchdog();
  ProcessWatchdog(const ProcessWatchdog &) = delete;
  ProcessWatchdog &operator=(const ProcessWatchdog &) = delete;

private:
  std::mutex mutex_;
  std::condition_variable disarmed_;
  bool done_ = false;
  std::thread thread_;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_LAUNCH_WATCHDOG_H
