//===- LaunchEnv.cpp - Rank and world size from the launcher --------------===//

#include "loom/runtime/comm/LaunchEnv.h"

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

using namespace loom::runtime;

namespace {

struct Launcher {
  const char *name;
  const char *rank;
  const char *size;
  const char *localRank;
  const char *localSize;
};

const Launcher kLaunchers[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
     "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"PMI", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
    {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
     "SLURM_NTASKS_PER_NODE"},
};

/// Parses a whole decimal integer; `optional` values that do not parse
/// (e.g. Slurm's "2(x3)") give -1 instead of an error.
int parseInt(const char *var, const char *value, bool optional) {
  errno = 0;
  char *end = nullptr;
  long v = std::strtol(value, &end, 10);
  if (errno || end == value || *end != '\0' || v < INT32_MIN || v > INT32_MAX) {
    if (optional)
      return -1;
    throw std::runtime_error(std::string("launch environment: ") + var + "='" +
                             value + "' is not an integer");
  }
  return static_cast<int>(v);
}

/// A variable's non-empty value, or null.
const char *lookup(const std::function<const char *(const char *)> &getenvFn,
                   const char *var) {
  const char *v = getenvFn ? getenvFn(var) : std::getenv(var);
  return v && *v ? v : nullptr;
}

} // namespace

bool loom::runtime::launchEnvironmentPresent(
    const std::function<const char *(const char *)> &getenvFn) {
  for (const Launcher &l : kLaunchers)
    if (lookup(getenvFn, l.rank) || lookup(getenvFn, l.size))
      return true;
  return false;
}

LaunchInfo loom::runtime::detectLaunch(
    const std::function<const char *(const char *)> &getenvFn) {
  auto get = [&](const char *var) { return lookup(getenvFn, var); };

  for (const Launcher &l : kLaunchers) {
    const char *rank = get(l.rank);
    const char *size = get(l.size);
    if (!rank && !size)
      continue;
    if (!rank || !size)
      throw std::runtime_error(std::string("launch environment: ") +
                               (rank ? l.rank : l.size) + " is set but " +
                               (rank ? l.size : l.rank) + " is not (" + l.name +
                               ")");
    LaunchInfo info;
    info.launcher = l.name;
    info.rank = parseInt(l.rank, rank, false);
    info.worldSize = parseInt(l.size, size, false);
    if (info.worldSize <= 0 || info.rank < 0 || info.rank >= info.worldSize)
      throw std::runtime_error(std::string("launch environment: ") + l.rank +
                               "=" + rank + " is outside a world of " + l.size +
                               "=" + size);
    if (const char *v = get(l.localRank))
      info.localRank = parseInt(l.localRank, v, true);
    if (const char *v = get(l.localSize))
      info.localWorldSize = parseInt(l.localSize, v, true);
    if (const char *v = get("MASTER_ADDR"))
      info.masterAddr = v;
    if (const char *v = get("MASTER_PORT")) {
      info.masterPort = parseInt("MASTER_PORT", v, false);
      if (info.masterPort <= 0 || info.masterPort > 65535)
        throw std::runtime_error(
            std::string("launch environment: MASTER_PORT=") + v +
            " is not a TCP port");
    }
    return info;
  }
  throw std::runtime_error(
      "launch environment: no rank found; set RANK and WORLD_SIZE (torchrun), "
      "or run under mpirun (OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE) or "
      "srun (SLURM_PROCID/SLURM_NTASKS)");
}
