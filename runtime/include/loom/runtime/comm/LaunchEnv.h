//===- LaunchEnv.h - Rank and world size from the launcher ------*- C++ -*-===//
//
// Reads this process's rank, the world size and the rendezvous address from
// the variables the usual launchers set, first match wins:
//
//   torchrun  RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE
//   Open MPI  OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE,
//             OMPI_COMM_WORLD_LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_SIZE
//   PMI       PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS
//             (MPICH / Intel MPI hydra)
//   Slurm     SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
//             SLURM_NTASKS_PER_NODE (when a single number)
//
// The rendezvous address is MASTER_ADDR / MASTER_PORT under every launcher
// (torchrun sets them; with mpirun or srun export them yourself).
//
// A job's identity keeps jobs that share a rendezvous address apart: the
// job id namespaces the store's keys and the store refuses clients of
// another job; the token is a secret the store asks of every client.
//
//   LOOM_JOB_ID          the job id; else torchrun's TORCHELASTIC_RUN_ID,
//                        Slurm's SLURM_JOB_ID.SLURM_STEP_ID or PMIx's
//                        PMIX_NAMESPACE (Open MPI); else none
//   LOOM_JOB_TOKEN       the store's secret (loom-run --nproc makes one)
//   LOOM_LAUNCHER_STORE  "1": the launcher, not rank 0, serves the store
//                        at MASTER_ADDR:MASTER_PORT (loom-run --nproc)
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_LAUNCHENV_H
#define LOOM_RUNTIME_COMM_LAUNCHENV_H

#include <functional>
#include <string>

namespace loom::runtime {

struct LaunchInfo {
  /// "torchrun", "Open MPI", "PMI" or "Slurm".
  std::string launcher;
  int rank = -1;
  int worldSize = -1;
  /// Rank among the processes of this machine, or -1 if not given.
  int localRank = -1;
  int localWorldSize = -1;
  /// MASTER_ADDR / MASTER_PORT, or "" / -1 if not set.
  std::string masterAddr;
  int masterPort = -1;
  /// The job's id, "" when the launcher names none, and the variable it
  /// came from.
  std::string jobId;
  std::string jobIdSource;
  /// LOOM_JOB_TOKEN, or "".
  std::string jobToken;
  /// LOOM_LAUNCHER_STORE=1: rank 0 is a client of the store like the others.
  bool launcherServesStore = false;
};

/// The variables spawned ranks read (spawnProcesses sets them).
constexpr const char *kJobIdVar = "LOOM_JOB_ID";
constexpr const char *kJobTokenVar = "LOOM_JOB_TOKEN";
constexpr const char *kLauncherStoreVar = "LOOM_LAUNCHER_STORE";

/// Throws std::runtime_error naming `source` (the variable) unless `id` is
/// a job id: letters, digits and ._@:+-, at most 128.
void checkJobId(const std::string &id, const std::string &source);

/// A fresh random job id (16 hex digits) and token (32 hex digits), from
/// the kernel's random source. Throws std::runtime_error if it fails.
std::string newJobId();
std::string newJobToken();

/// Reads the launcher variables through `getenv` (std::getenv by default).
/// Throws std::runtime_error naming the variables when none of the
/// launchers' variables is set, when a value is not an integer, when the
/// rank is outside [0, world size), or when a job id holds characters other
/// than letters, digits and ._@:+- or is longer than 128.
LaunchInfo
detectLaunch(const std::function<const char *(const char *)> &getenv = nullptr);

/// Whether any launcher's rank or world-size variable is set, i.e. whether
/// detectLaunch() has a launch to describe (or an inconsistent one to
/// report) rather than a lone process.
bool launchEnvironmentPresent(
    const std::function<const char *(const char *)> &getenv = nullptr);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_LAUNCHENV_H
