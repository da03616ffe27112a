//===- Launcher.h - Start the ranks of a job --------------------*- C++ -*-===//
//
// Starts the ranks of a job the way torchrun does, without MLIR or the
// compiler (callers compile or load the program first):
//
//   // N ranks as threads of this process, or this process's rank of a job
//   // that spawnProcesses() or torchrun/mpirun/srun started, or one rank:
//   std::vector<RankResult> results = runHere(options, program);
//
//   // N processes over Gloo: each re-executes this binary with `argv`, sees
//   // isSpawnedRank(), and calls runHere() itself.
//   if (needsSpawn(options))
//     spawnProcesses(options, *program, argv);
//
// Everything that can be checked is checked before a rank starts: the
// rank count against the program's mesh, the inputs, the places of the
// outputs and trace. Failed ranks are reported as a LaunchError naming each
// of them. Outputs and traces are written as a set (JobFiles.h).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_LAUNCH_LAUNCHER_H
#define LOOM_RUNTIME_LAUNCH_LAUNCHER_H

#include "loom/runtime/comm/LaunchEnv.h"
#include "loom/runtime/launch/LaunchOptions.h"
#include "loom/runtime/launch/RankRunner.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::runtime {

/// A job in which ranks failed. what() joins the failures, one per line.
class LaunchError : public std::runtime_error {
public:
  explicit LaunchError(std::vector<std::string> failures, bool timedOut = false,
                       int signal = 0);

  /// One message per failed rank, in rank order, each naming the rank:
  /// "rank 1: instruction 0 (embedding) at ...", "rank 1 exited with
  /// status 1".
  const std::vector<std::string> &failures() const { return failures_; }
  /// Whether the job outlived LaunchOptions::timeout and was ended.
  bool timedOut() const { return timedOut_; }
  /// The signal (SIGINT, SIGTERM, SIGHUP) that interrupted spawnProcesses(),
  /// which then ended every rank, or 0.
  int signal() const { return signal_; }

private:
  std::vector<std::string> failures_;
  bool timedOut_;
  int signal_;
};

/// Checks a job of `options.nproc` ranks started here before any starts:
/// nproc in [1, kMaxLocalRanks], the program's mesh against nproc
/// (meshRankFor), the inputs (checkInputs) and the places of the outputs
/// and trace (checkOutputs). Throws std::runtime_error or
/// std::invalid_argument.
void checkLaunch(const LaunchOptions &options, const Program &program);

/// Runs `options.nproc` ranks of `program` as threads of this process over
/// the local communicator. A rank that fails aborts the collectives of the
/// others, so none hangs. Writes the trace if asked. Returns the results in
/// rank order; throws LaunchError if any rank failed.
std::vector<RankResult> runLocalThreads(const LaunchOptions &options,
                                        std::shared_ptr<const Program> program);

/// Runs rank `launch.rank` of a multi-process job over Gloo, meeting the
/// others at launch.masterAddr:masterPort: joins the job (JoinJob.h: same
/// job, program and world size), runs, writes this rank's part of the
/// trace (rankTracePartPath) if asked, waits for every rank and only then
/// moves its staged outputs into place. Throws LaunchError naming the rank.
RankResult runGlooRank(const LaunchOptions &options,
                       std::shared_ptr<const Program> program,
                       const LaunchInfo &launch);

/// Runs this process's share of a job: `options.nproc` ranks as threads
/// (nproc > 0 with LaunchComm::Local); else this process's rank when it was
/// spawned by spawnProcesses() or a launcher's variables are set (Gloo,
/// detectLaunch()); else one rank. Writes the trace if asked.
std::vector<RankResult> runHere(const LaunchOptions &options,
                                std::shared_ptr<const Program> program);

/// Whether `options` ask this process to spawn the ranks (nproc > 0 with
/// LaunchComm::Gloo) rather than being one of them.
bool needsSpawn(const LaunchOptions &options);

/// Whether this process is a rank that spawnProcesses() started.
bool isSpawnedRank();

/// A free TCP port on the loopback interface.
int pickFreePort();

/// Starts `options.nproc` processes of `program` and waits for them all,
/// after checkLaunch(). Each executes `executable` (by default the running
/// binary itself) with `argv` and the variables of a torchrun launch on
/// this machine (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
/// MASTER_ADDR=127.0.0.1, MASTER_PORT) plus the job's identity (LOOM_JOB_ID
/// from this process's environment or a new one, a new LOOM_JOB_TOKEN,
/// LOOM_LAUNCHER_STORE=1: this process serves the rendezvous store on
/// loopback) and the mark isSpawnedRank() reads; so a tool passes its own
/// argv and each copy runs its rank with runHere().
///
/// The ranks die with the launcher: each is killed when the thread that
/// called this exits (PR_SET_PDEATHSIG), and they share a process group
/// that SIGINT, SIGTERM or SIGHUP of the launcher kills before this throws.
/// The first rank to fail ends the others after `options.failureGrace`,
/// and at once those that are stopped (SIGSTOP: they cannot report);
/// `options.timeout` ends them all. On success merges the ranks' trace
/// parts, if asked; on failure removes them. Throws LaunchError naming
/// every rank that failed.
void spawnProcesses(const LaunchOptions &options, const Program &program,
                    const std::vector<std::string> &argv,
                    const std::string &executable = "/proc/self/exe");

} // namespace loom::runtime

#endif // LOOM_RUNTIME_LAUNCH_LAUNCHER_H
