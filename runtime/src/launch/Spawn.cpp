//===- Spawn.cpp - Ranks as processes started here, as torchrun does ------===//

#include "loom/runtime/launch/Launcher.h"

#include "loom/runtime/launch/Trace.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

using namespace loom::runtime;

/// Set in the processes spawnProcesses() starts (the name predates the
/// library: loom-run was its first user).
static const char spawnedMark[] = "LOOM_RUN_CHILD";

bool loom::runtime::isSpawnedRank() {
  return std::getenv(spawnedMark) != nullptr;
}

int loom::runtime::pickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    throw std::runtime_error("cannot open a socket to pick a port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot pick a free port");
  }
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

namespace {

/// Strings and the null-terminated pointer array execve() takes, built
/// before fork(): the child of a multi-threaded process may only call
/// async-signal-safe functions, which setenv() and malloc() are not.
struct CStrings {
  std::vector<std::string> strings;
  std::vector<char *> pointers;

  char **finish() {
    pointers.clear();
    for (std::string &s : strings)
      pointers.push_back(s.data());
    pointers.push_back(nullptr);
    return pointers.data();
  }
};

/// This process's environment with the variables of a torchrun launch of
/// `nproc` ranks on this machine, as seen by rank `rank`.
CStrings rankEnvironment(int rank, int nproc, int port) {
  std::vector<std::pair<std::string, std::string>> launch = {
      {"RANK", std::to_string(rank)},
      {"LOCAL_RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(nproc)},
      {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
      {"MASTER_ADDR", "127.0.0.1"},
      {"MASTER_PORT", std::to_string(port)},
      {spawnedMark, "1"}};
  CStrings env;
  for (char **var = environ; *var; ++var) {
    std::string entry = *var;
    std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto &setting : launch)
      replaced |= setting.first == name;
    if (!replaced)
      env.strings.push_back(std::move(entry));
  }
  for (const auto &setting : launch)
    env.strings.push_back(setting.first + "=" + setting.second);
  return env;
}

/// What became of a rank that did not exit with status 0.
std::string describeFailure(int rank, int wstatus) {
  std::string who = "rank " + std::to_string(rank);
  if (WIFSIGNALED(wstatus))
    return who + " was ended by signal " + std::to_string(WTERMSIG(wstatus)) +
           " (" + strsignal(WTERMSIG(wstatus)) + ")";
  return who + " exited with status " + std::to_string(WEXITSTATUS(wstatus));
}

} // namespace

void loom::runtime::spawnProcesses(const LaunchOptions &options,
                                   const std::vector<std::string> &argv,
                                   const std::string &executable) {
  int nproc = options.nproc;
  int port = pickFreePort();
  CStrings args;
  args.strings = argv;
  char **argp = args.finish();
  std::vector<CStrings> envs;
  for (int rank = 0; rank < nproc; ++rank)
    envs.push_back(rankEnvironment(rank, nproc, port));

  std::vector<pid_t> children;
  for (int rank = 0; rank < nproc; ++rank) {
    char **envp = envs[rank].finish();
    std::string execFailed = "error: rank " + std::to_string(rank) +
                             ": cannot execute '" + executable + "'\n";
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execve(executable.c_str(), argp, envp);
      (void)!::write(STDERR_FILENO, execFailed.data(), execFailed.size());
      ::_exit(127);
    }
    if (pid < 0) {
      int error = errno;
      for (pid_t child : children) {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
      }
      throw std::runtime_error("cannot start rank " + std::to_string(rank) +
                               ": " + std::strerror(error));
    }
    children.push_back(pid);
  }

  // Wait for our children only (a host process may have others). The first
  // failure ends the others after a grace period in which they may report
  // their own view of it.
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now(), failedAt;
  std::vector<int> status(nproc, 0);
  std::vector<bool> done(nproc, false), lost(nproc, false);
  int remaining = nproc;
  bool failed = false, timedOut = false, killed = false;
  while (remaining > 0) {
    bool reaped = false;
    for (int rank = 0; rank < nproc; ++rank) {
      if (done[rank])
        continue;
      pid_t pid = ::waitpid(children[rank], &status[rank], WNOHANG);
      if (pid == 0 || (pid < 0 && errno == EINTR))
        continue;
      // ECHILD: someone else reaped it (e.g. a host that ignores SIGCHLD).
      lost[rank] = pid < 0;
      done[rank] = reaped = true;
      --remaining;
      bool ok = !lost[rank] && WIFEXITED(status[rank]) &&
                WEXITSTATUS(status[rank]) == 0;
      if (!ok && !failed) {
        failed = true;
        failedAt = Clock::now();
      }
    }
    if (reaped)
      continue;
    Clock::time_point now = Clock::now();
    bool timeUp = now - start > options.timeout;
    bool graceOver = failed && now - failedAt > options.failureGrace;
    if ((timeUp || graceOver) && !killed) {
      timedOut = timeUp;
      for (int rank = 0; rank < nproc; ++rank)
        if (!done[rank])
          ::kill(children[rank], SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  std::vector<std::string> failures;
  for (int rank = 0; rank < nproc; ++rank) {
    if (lost[rank])
      failures.push_back("rank " + std::to_string(rank) +
                         " ended, but its exit status was lost");
    else if (!WIFEXITED(status[rank]) || WEXITSTATUS(status[rank]) != 0)
      failures.push_back(describeFailure(rank, status[rank]));
  }
  if (!failures.empty())
    throw LaunchError(std::move(failures), timedOut);
  if (!options.tracePath.empty())
    mergeRankTraces(options.tracePath, nproc);
}
