//===- LaunchOptions.h - How to run a program on ranks ----------*- C++ -*-===//
//
// The settings of a job: how many ranks, how they talk, where inputs and
// outputs live, and its limits. Tools fill this from their own flags
// (loom-run's --nproc, --comm, ...); the launcher, the rank runner and the
// trace writer read it.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_LAUNCH_LAUNCHOPTIONS_H
#define LOOM_RUNTIME_LAUNCH_LAUNCHOPTIONS_H

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace loom::runtime {

struct RankResult;

/// How the ranks that this process starts communicate.
enum class LaunchComm {
  /// Threads of this process over the local communicator.
  Local,
  /// Processes over Gloo/TCP, rendezvous through MASTER_ADDR/MASTER_PORT.
  Gloo,
};

/// The most ranks one launcher starts on this machine, as threads or as
/// processes (--nproc): a bound on what a typo can start, far above the
/// cores of one machine.
constexpr int kMaxLocalRanks = 1024;

struct LaunchOptions {
  /// Ranks to start here, at most kMaxLocalRanks; 0 means none: the
  /// launcher's environment (torchrun, Open MPI, PMI, Slurm) describes the
  /// job, or else one rank runs.
  int nproc = 0;
  LaunchComm comm = LaunchComm::Local;
  /// DIR/<name>.npy for each input and parameter, DIR/rank<R>/<name>.npy for
  /// rank R's own; "" or a missing file means a seeded input.
  std::string inputsDir;
  /// Rank 0's outputs go to DIR/<name>.npy, rank R's to DIR/rank<R>/; "" for
  /// none.
  std::string outputsDir;
  /// Seed of the inputs that inputsDir does not provide.
  uint64_t seed = 0;
  /// Times each rank runs the program.
  int steps = 1;
  /// Chrome trace to write (one process per rank, one thread per stream);
  /// "" for none.
  std::string tracePath;
  /// "cpu", "cuda", or the path of a backend plugin.
  std::string backend = "cpu";
  /// Limit on the whole job: spawnProcesses() ends its ranks after it;
  /// a run of threads or of one rank is ended by the tool (ProcessWatchdog).
  std::chrono::milliseconds timeout{600000};
  /// How long a collective waits for its peers.
  std::chrono::milliseconds deadline{60000};
  /// Once a spawned rank fails, how long the others may run on (to report
  /// their own view of the failure) before they are killed.
  std::chrono::milliseconds failureGrace{5000};
  /// Called on a rank's own thread as soon as that rank has finished, before
  /// other ranks may have (and before a job with a failed rank is reported),
  /// e.g. to print rank 0's loss. Not called for ranks in spawned processes:
  /// those run their own launch.
  std::function<void(const RankResult &)> onRankDone;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_LAUNCH_LAUNCHOPTIONS_H
