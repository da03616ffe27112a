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
};

/// Reads the launcher variables through `getenv` (std::getenv by default).
/// Throws std::runtime_error naming the variables when none of the
/// launchers' variables is set, when a value is not an integer, or when the
/// rank is outside [0, world size).
LaunchInfo
detectLaunch(const std::function<const char *(const char *)> &getenv = nullptr);

/// Whether any launcher's rank or world-size variable is set, i.e. whether
/// detectLaunch() has a launch to describe (or an inconsistent one to
/// report) rather than a lone process.
bool launchEnvironmentPresent(
    const std::function<const char *(const char *)> &getenv = nullptr);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_LAUNCHENV_H
