//===- Spawn.cpp - Ranks as processes started here, as torchrun does ------===//

#include "loom/runtime/launch/JobFiles.h"
#include "loom/runtime/launch/Launcher.h"

#include "loom/runtime/launch/Trace.h"

#ifdef LOOM_HAVE_GLOO
#include "loom/runtime/comm/Rendezvous.h"
#endif

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <thread>

#include <netinet/in.h>
#include <sys/prctl.h>
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

/// This process's environment with `settings` in place of any variables of
/// the same names.
CStrings
withSettings(const std::vector<std::pair<std::string, std::string>> &settings) {
  CStrings env;
  for (char **var = environ; *var; ++var) {
    std::string entry = *var;
    std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto &setting : settings)
      replaced |= setting.first == name;
    if (!replaced)
      env.strings.push_back(std::move(entry));
  }
  for (const auto &setting : settings)
    env.strings.push_back(setting.first + "=" + setting.second);
  return env;
}

/// What became of a rank that did not exit with status 0.
std::string describeFailure(int rank, int wstatus, bool wasStopped) {
  std::string who = "rank " + std::to_string(rank);
  if (WIFSIGNALED(wstatus))
    return who + " was ended by signal " + std::to_string(WTERMSIG(wstatus)) +
           " (" + strsignal(WTERMSIG(wstatus)) + ")" +
           (wasStopped ? " while it was stopped" : "");
  return who + " exited with status " + std::to_string(WEXITSTATUS(wstatus));
}

/// The signal that interrupted the launcher, if any (set by a handler).
volatile std::sig_atomic_t interruptedBy = 0;
extern "C" void onInterrupt(int signal) { interruptedBy = signal; }

/// Catches SIGINT, SIGTERM and SIGHUP while the ranks run, so that the
/// launcher ends their process group before it goes; restores the previous
/// handlers when destroyed.
class InterruptGuard {
public:
  InterruptGuard() {
    interruptedBy = 0;
    struct sigaction action{};
    action.sa_handler = onInterrupt;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < std::size(kSignals); ++i)
      ::sigaction(kSignals[i], &action, &previous_[i]);
  }
  ~InterruptGuard() {
    for (size_t i = 0; i < std::size(kSignals); ++i)
      ::sigaction(kSignals[i], &previous_[i], nullptr);
  }

private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction previous_[std::size(kSignals)];
};

} // namespace

void loom::runtime::spawnProcesses(const LaunchOptions &options,
                                   const Program &program,
                                   const std::vector<std::string> &argv,
                                   const std::string &executable) {
  // Nothing starts before the job is known to fit: a typo in --nproc or a
  // program for another mesh costs no processes.
  checkLaunch(options, program);
  int nproc = options.nproc;
  const char *givenId = std::getenv(kJobIdVar);
  std::string jobId = givenId && *givenId ? givenId : newJobId();
  checkJobId(jobId, kJobIdVar);
  std::string token = newJobToken();
#ifdef LOOM_HAVE_GLOO
  // The launcher serves the store (as torchrun's agent does): a rank that
  // stalls or dies is then a rank like any other, and the port is held
  // from the start instead of picked and hoped free.
  TcpStoreServer store(0, {jobId, token});
  int port = store.port();
#else
  int port = pickFreePort();
#endif
  CStrings args;
  args.strings = argv;
  char **argp = args.finish();
  std::vector<CStrings> envs;
  for (int rank = 0; rank < nproc; ++rank)
    envs.push_back(withSettings({{"RANK", std::to_string(rank)},
                                 {"LOCAL_RANK", std::to_string(rank)},
                                 {"WORLD_SIZE", std::to_string(nproc)},
                                 {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
                                 {"MASTER_ADDR", "127.0.0.1"},
                                 {"MASTER_PORT", std::to_string(port)},
                                 {kJobIdVar, jobId},
                                 {kJobTokenVar, token},
                                 {kLauncherStoreVar, "1"},
                                 {spawnedMark, "1"}}));

  InterruptGuard interrupts;
  pid_t launcher = ::getpid(), group = 0;
  std::vector<pid_t> children;
  // Safe while a child is unreaped: the group's id cannot be reused then.
  auto endAll = [&] {
    if (group > 0)
      ::kill(-group, SIGKILL);
  };
  for (int rank = 0; rank < nproc; ++rank) {
    char **envp = envs[rank].finish();
    std::string execFailed = "error: rank " + std::to_string(rank) +
                             ": cannot execute '" + executable + "'\n";
    pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls until execve. The first rank leads
      // the group; a launcher that died before prctl() is noticed by the
      // parent check (the death signal would never come).
      ::setpgid(0, group);
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != launcher)
        ::_exit(126);
      ::execve(executable.c_str(), argp, envp);
      (void)!::write(STDERR_FILENO, execFailed.data(), execFailed.size());
      ::_exit(127);
    }
    if (pid < 0) {
      int error = errno;
      endAll();
      for (pid_t child : children)
        ::waitpid(child, nullptr, 0);
      throw std::runtime_error("cannot start rank " + std::to_string(rank) +
                               ": " + std::strerror(error));
    }
    // Also here: whichever of parent and child runs first, the group exists
    // before the next child joins it.
    ::setpgid(pid, group);
    if (group == 0)
      group = pid;
    children.push_back(pid);
  }

  // Wait for our children only (a host process may have others). The first
  // failure ends the others after a grace period in which they may report
  // their own view of it; a stopped rank cannot, so it is ended at once.
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now(), failedAt;
  std::vector<int> status(nproc, 0);
  std::vector<bool> done(nproc, false), lost(nproc, false),
      stopped(nproc, false), killedStopped(nproc, false);
  int remaining = nproc;
  bool failed = false, timedOut = false, killed = false;
  int interrupt = 0;
  while (remaining > 0) {
    bool reaped = false;
    for (int rank = 0; rank < nproc; ++rank) {
      if (done[rank])
        continue;
      int st = 0;
      pid_t pid =
          ::waitpid(children[rank], &st, WNOHANG | WUNTRACED | WCONTINUED);
      if (pid == 0 || (pid < 0 && errno == EINTR))
        continue;
      if (pid > 0 && (WIFSTOPPED(st) || WIFCONTINUED(st))) {
        stopped[rank] = WIFSTOPPED(st);
        continue;
      }
      // ECHILD: someone else reaped it (e.g. a host that ignores SIGCHLD).
      status[rank] = st;
      lost[rank] = pid < 0;
      done[rank] = reaped = true;
      --remaining;
      bool ok = !lost[rank] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
      if (!ok && !failed) {
        failed = true;
        failedAt = Clock::now();
      }
    }
    if (failed)
      for (int rank = 0; rank < nproc; ++rank)
        if (!done[rank] && stopped[rank] && !killedStopped[rank]) {
          ::kill(children[rank], SIGKILL);
          killedStopped[rank] = true;
        }
    if (reaped)
      continue;
    if (interruptedBy && !interrupt) {
      interrupt = interruptedBy;
      endAll();
    }
    Clock::time_point now = Clock::now();
    bool timeUp = now - start > options.timeout;
    bool graceOver = failed && now - failedAt > options.failureGrace;
    if ((timeUp || graceOver) && !killed) {
      timedOut = timeUp;
      endAll();
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  std::vector<std::string> failures;
  if (interrupt)
    failures.push_back("the launcher was interrupted by signal " +
                       std::to_string(interrupt) + " (" + strsignal(interrupt) +
                       ") and ended every rank");
  for (int rank = 0; rank < nproc; ++rank) {
    if (lost[rank])
      failures.push_back("rank " + std::to_string(rank) +
                         " ended, but its exit status was lost");
    else if (!WIFEXITED(status[rank]) || WEXITSTATUS(status[rank]) != 0)
      failures.push_back(
          describeFailure(rank, status[rank], killedStopped[rank]));
  }
  if (!failures.empty()) {
    if (!options.tracePath.empty())
      removeRankTraces(options.tracePath, jobId);
    removeStagedOutputs(options.outputsDir, jobId);
    throw LaunchError(std::move(failures), timedOut, interrupt);
  }
  if (!options.tracePath.empty())
    mergeRankTraces(options.tracePath, jobId, nproc);
}
