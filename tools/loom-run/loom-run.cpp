//===- loom-run.cpp - Compile and run a Loom program on CPU ranks ---------===//
//
//   loom-run MODEL.mlir|PROGRAM.loom [--nproc N] [--comm local|gloo]
//            [--inputs DIR] [--outputs DIR] [--seed S] [--steps K]
//            [--trace FILE] [--timeout SECONDS]
//
// With --nproc N, loom-run starts the N ranks itself, as torchrun does: as
// threads of this process (--comm local) or as N processes over Gloo
// (--comm gloo). Without it, the rank and world size come from the
// launcher's environment (torchrun, Open MPI, PMI or Slurm variables), so the
// same command runs under mpirun or srun across machines; with none of those
// set it runs one rank.
//
//===----------------------------------------------------------------------===//

#include "RankRunner.h"
#include "RunOptions.h"

#include "loom/Driver/CompileProgram.h"
#include "loom/runtime/Program.h"
#include "loom/runtime/comm/ExecutorComms.h"
#include "loom/runtime/comm/GlooCommunicator.h"
#include "loom/runtime/comm/LaunchEnv.h"
#include "loom/runtime/comm/LocalCommunicator.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace loom;
using namespace loom::runtime;

namespace {

/// Reads the program: compiles MLIR, or loads a program file.
std::shared_ptr<const Program> loadOrCompile(const std::string &path) {
  bool isMlir =
      path.size() >= 5 && path.compare(path.size() - 5, 5, ".mlir") == 0;
  if (!isMlir)
    return Program::loadFile(path);
  std::vector<uint8_t> bytes;
  std::string error;
  if (!compileMlirFileToProgram(path, bytes, error))
    throw std::runtime_error("cannot compile " + path + ":\n" + error);
  return Program::load(bytes.data(), bytes.size());
}

/// A free TCP port on the loopback interface for the rendezvous store.
int pickFreePort() {
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

/// --nproc N --comm local: every rank is a thread of this process.
int runLocalThreads(const RunOptions &options,
                    std::shared_ptr<const Program> program) {
  LocalWorldOptions worldOptions;
  worldOptions.deadline = options.deadline;
  auto world = LocalWorld::create(options.nproc, worldOptions);
  std::vector<std::string> errors(options.nproc);
  std::vector<RankResult> results(options.nproc);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < options.nproc; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        std::shared_ptr<CommunicatorProvider> provider = world->provider(rank);
        results[rank] = runRank(options, program, rank, options.nproc,
                                executorCommunicators(provider));
      } catch (const std::exception &e) {
        errors[rank] = e.what();
        world->abort(rank,
                     "rank " + std::to_string(rank) + " failed: " + e.what());
      }
    });
  }
  for (std::thread &t : threads)
    t.join();
  int failed = 0;
  for (int rank = 0; rank < options.nproc; ++rank) {
    if (errors[rank].empty())
      continue;
    std::cerr << "loom-run: error: rank " << rank << ": " << errors[rank]
              << "\n";
    ++failed;
  }
  if (failed)
    return 1;
  writeTraceIfAsked(options, results);
  return 0;
}

/// One rank of a multi-process job (spawned by --nproc or by a launcher).
int runGlooRank(const RunOptions &options,
                std::shared_ptr<const Program> program) {
  LaunchInfo launch = detectLaunch();
  GlooOptions gloo = glooOptionsFromLaunch(launch, options.deadline);
  std::shared_ptr<CommunicatorProvider> provider =
      createGlooCommunicators(gloo);
  RankResult result = runRank(options, program, launch.rank, launch.worldSize,
                              executorCommunicators(provider));
  // Rank 0 serves the rendezvous store: nobody leaves before all are done.
  provider->world()->barrier();
  if (!options.tracePath.empty()) {
    // Each process writes its own track; the spawner merges them.
    std::string path =
        options.tracePath + ".rank" + std::to_string(launch.rank);
    writeTraceEvents(path, {result}, /*complete=*/false);
  }
  return 0;
}

/// --nproc N --comm gloo: spawns N copies of this program as torchrun does,
/// waits for all, and ends the others when one fails.
int spawnProcesses(const RunOptions &options, char **argv) {
  int port = pickFreePort();
  std::vector<pid_t> children;
  for (int rank = 0; rank < options.nproc; ++rank) {
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("loom-run: fork");
      for (pid_t child : children)
        ::kill(child, SIGTERM);
      return 1;
    }
    if (pid == 0) {
      std::string rankStr = std::to_string(rank);
      ::setenv("RANK", rankStr.c_str(), 1);
      ::setenv("LOCAL_RANK", rankStr.c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(options.nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(options.nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::setenv("LOOM_RUN_CHILD", "1", 1);
      ::execv("/proc/self/exe", argv);
      std::perror("loom-run: exec");
      ::_exit(127);
    }
    children.push_back(pid);
  }

  // Wait for all; the first failure ends the others after a grace period
  // in which they may report their own view of it.
  auto start = std::chrono::steady_clock::now();
  std::vector<int> status(options.nproc, -1);
  int remaining = options.nproc, firstFailed = -1;
  bool terminated = false;
  std::chrono::steady_clock::time_point failedAt;
  while (remaining > 0) {
    int wstatus = 0;
    pid_t pid = ::waitpid(-1, &wstatus, WNOHANG);
    if (pid > 0) {
      for (int rank = 0; rank < options.nproc; ++rank) {
        if (children[rank] != pid)
          continue;
        status[rank] = wstatus;
        --remaining;
        bool ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
        if (!ok && firstFailed < 0) {
          firstFailed = rank;
          failedAt = std::chrono::steady_clock::now();
        }
      }
      continue;
    }
    auto now = std::chrono::steady_clock::now();
    bool timedOut = now - start > options.timeout;
    bool graceOver =
        firstFailed >= 0 && now - failedAt > std::chrono::seconds(5);
    if ((timedOut || graceOver) && !terminated) {
      if (timedOut)
        std::cerr << "loom-run: error: the job exceeded --timeout ("
                  << options.timeout.count() << " s); ending all ranks\n";
      for (int rank = 0; rank < options.nproc; ++rank)
        if (status[rank] == -1)
          ::kill(children[rank], SIGKILL);
      terminated = true;
      if (firstFailed < 0)
        firstFailed = 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  int failed = 0;
  for (int rank = 0; rank < options.nproc; ++rank) {
    int s = status[rank];
    if (WIFEXITED(s) && WEXITSTATUS(s) == 0)
      continue;
    ++failed;
    if (WIFSIGNALED(s))
      std::cerr << "loom-run: error: rank " << rank << " was ended by signal "
                << WTERMSIG(s) << " (" << strsignal(WTERMSIG(s)) << ")\n";
    else
      std::cerr << "loom-run: error: rank " << rank << " exited with status "
                << WEXITSTATUS(s) << "\n";
  }
  if (failed)
    return 1;
  if (!options.tracePath.empty())
    mergeRankTraces(options.tracePath, options.nproc);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  RunOptions options;
  try {
    options = parseRunOptions(argc, argv);
  } catch (const std::exception &e) {
    std::cerr << "loom-run: error: " << e.what() << "\n";
    return 2;
  }
  if (options.help) {
    std::cout << runUsage();
    return 0;
  }
  bool isChild = std::getenv("LOOM_RUN_CHILD") != nullptr;
  try {
    if (options.nproc > 0 && options.comm == "gloo" && !isChild)
      return spawnProcesses(options, argv);
    std::shared_ptr<const Program> program = loadOrCompile(options.modelPath);
    if (options.nproc > 0 && options.comm == "local")
      return runLocalThreads(options, program);
    if (isChild || launchEnvironmentPresent())
      return runGlooRank(options, program);
    RankResult result = runRank(options, program, 0, 1, nullptr);
    writeTraceIfAsked(options, {result});
    return 0;
  } catch (const std::exception &e) {
    std::string where;
    if (const char *rank = std::getenv("RANK"))
      where = "rank " + std::string(rank) + ": ";
    std::cerr << "loom-run: error: " << where << e.what() << "\n";
    return 1;
  }
}
