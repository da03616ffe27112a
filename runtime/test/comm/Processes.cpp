//===- Processes.cpp - Run test ranks as forked processes -----------------===//

#include "Processes.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

using namespace loom::runtime::test;
using Clock = std::chrono::steady_clock;

TempDir::TempDir() {
  const char *base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base && *base ? base : "/tmp") + "/loom-comm-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))
    throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::string cmd = "rm -rf '" + path_ + "'";
  (void)!std::system(cmd.c_str());
}

std::vector<ProcessResult> loom::runtime::test::runProcesses(
    int n, const std::function<void(int, Report &)> &body,
    std::chrono::milliseconds timeout) {
  TempDir reports;
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> pids(n, -1);
  for (int r = 0; r < n; ++r) {
    pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork failed");
    if (pid == 0) {
      Report report;
      try {
        body(r, report);
      } catch (const std::exception &e) {
        report.fail(std::string("rank ") + std::to_string(r) +
                    " threw: " + e.what());
      } catch (...) {
        report.fail("rank " + std::to_string(r) + " threw");
      }
      {
        std::ofstream out(reports.path() + "/" + std::to_string(r));
        out << report.str();
      }
      std::fflush(stdout);
      std::fflush(stderr);
      ::_exit(report.ok() ? 0 : 1);
    }
    pids[r] = pid;
  }

  std::vector<ProcessResult> results(n);
  std::vector<bool> done(n, false);
  int left = n;
  auto deadline = Clock::now() + timeout;
  while (left > 0) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (int r = 0; r < n; ++r)
        if (pids[r] == pid && !done[r]) {
          done[r] = true;
          --left;
          results[r].status =
              WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        }
      continue;
    }
    if (Clock::now() >= deadline) {
      for (int r = 0; r < n; ++r)
        if (!done[r])
          ::kill(pids[r], SIGKILL);
      deadline = Clock::now() + std::chrono::hours(1);
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (int r = 0; r < n; ++r) {
    std::ifstream in(reports.path() + "/" + std::to_string(r));
    std::stringstream ss;
    ss << in.rdbuf();
    results[r].report = ss.str();
  }
  return results;
}

int loom::runtime::test::pickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}
