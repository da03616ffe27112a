//===- LaunchEnv.cpp - Rank and world size from the launcher --------------===//

#include "loom/runtime/comm/LaunchEnv.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <tuple>
#include <vector>

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

/// The job id and the variable it came from, first source that is set.
std::pair<std::string, std::string>
findJobId(const std::function<const char *(const char *)> &getenvFn) {
  for (const char *var : {kJobIdVar, "TORCHELASTIC_RUN_ID"})
    if (const char *v = lookup(getenvFn, var))
      return {v, var};
  if (const char *job = lookup(getenvFn, "SLURM_JOB_ID")) {
    const char *step = lookup(getenvFn, "SLURM_STEP_ID");
    return {std::string(job) + "." + (step ? step : "0"),
            "SLURM_JOB_ID.SLURM_STEP_ID"};
  }
  if (const char *v = lookup(getenvFn, "PMIX_NAMESPACE"))
    return {v, "PMIX_NAMESPACE"};
  return {"", ""};
}

} // namespace

void loom::runtime::checkJobId(const std::string &id,
                               const std::string &source) {
  bool ok = id.size() <= 128;
  for (char c : id)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') ||
                std::string("._@:+-").find(c) != std::string::npos);
  if (!ok)
    throw std::runtime_error("launch environment: " + source + "='" + id +
                             "' is not a job id (letters, digits and ._@:+- "
                             "only, at most 128)");
}

namespace {

std::string randomHex(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  FILE *f = std::fopen("/dev/urandom", "rb");
  bool ok = f && std::fread(raw.data(), 1, bytes, f) == bytes;
  if (f)
    std::fclose(f);
  if (!ok)
    throw std::runtime_error("cannot read /dev/urandom for a job id");
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : raw) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

} // namespace

std::string loom::runtime::newJobId() { return randomHex(8); }
std::string loom::runtime::newJobToken() { return randomHex(16); }

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
    std::tie(info.jobId, info.jobIdSource) = findJobId(getenvFn);
    checkJobId(info.jobId, info.jobIdSource);
    if (const char *v = get(kJobTokenVar))
      info.jobToken = v;
    if (const char *v = get(kLauncherStoreVar))
      info.launcherServesStore = std::string(v) == "1";
    return info;
  }
  throw std::runtime_error(
      "launch environment: no rank found; set RANK and WORLD_SIZE (torchrun), "
      "or run under mpirun (OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE) or "
      "srun (SLURM_PROCID/SLURM_NTASKS)");
}
