//===- TcpStoreServer.cpp - The TCP store's server ------------------------===//
//
// One thread polls the listening socket and every connection; a WAIT is
// parked until its keys are set or its timeout passes, so a waiting client
// costs nothing. Clients are admitted by a HELLO naming the server's job and
// token (StoreProtocol.h); anything else from an unadmitted client drops it.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/comm/Rendezvous.h"

#include "StoreProtocol.h"
#include "loom/runtime/Communicator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <list>
#include <map>
#include <thread>

using namespace loom::runtime;
using namespace loom::runtime::store;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct TcpStoreServer::Impl {
  StoreAccess access;
  int listenFd = -1;
  int wakeRead = -1, wakeWrite = -1;
  int port = 0;
  std::thread thread;

  struct Client {
    int fd;
    std::vector<char> in;
    bool admitted = false;
  };
  struct Parked {
    int fd;
    std::vector<std::string> keys;
    Clock::time_point deadline;
  };
  std::map<std::string, std::string> data;

  bool has(const std::vector<std::string> &keys) const {
    for (const auto &k : keys)
      if (!data.count(k))
        return false;
    return true;
  }

  void run() {
    std::list<Client> clients;
    std::list<Parked> parked;
    for (;;) {
      std::vector<pollfd> fds;
      fds.push_back({wakeRead, POLLIN, 0});
      fds.push_back({listenFd, POLLIN, 0});
      for (auto &c : clients)
        fds.push_back({c.fd, POLLIN, 0});
      int timeout = -1;
      auto now = Clock::now();
      for (auto &p : parked) {
        auto ms =
            std::chrono::duration_cast<milliseconds>(p.deadline - now).count() +
            1;
        ms = std::max<long>(ms, 0);
        if (timeout < 0 || ms < timeout)
          timeout = static_cast<int>(std::min<long>(ms, 1 << 30));
      }
      int rv = ::poll(fds.data(), fds.size(), timeout);
      if (rv < 0 && errno != EINTR)
        return;
      if (fds[0].revents) { // shutdown
        for (Client &c : clients)
          ::close(c.fd);
        return;
      }
      if (fds[1].revents & POLLIN) {
        int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          int one = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          clients.push_back({fd, {}});
        }
      }
      size_t i = 2;
      for (auto it = clients.begin(); it != clients.end(); ++i) {
        bool drop = false;
        if (i < fds.size() && fds[i].fd == it->fd && fds[i].revents) {
          char buf[65536];
          ssize_t n = ::recv(it->fd, buf, sizeof(buf), 0);
          if (n <= 0) {
            drop = true;
          } else {
            it->in.insert(it->in.end(), buf, buf + n);
            drop = !serve(*it, parked);
          }
        }
        if (drop) {
          int fd = it->fd;
          parked.remove_if([&](const Parked &p) { return p.fd == fd; });
          ::close(fd);
          it = clients.erase(it);
        } else {
          ++it;
        }
      }
      // Answer parked waits that are satisfied or expired.
      now = Clock::now();
      for (auto it = parked.begin(); it != parked.end();) {
        bool ready = has(it->keys);
        if (ready || now >= it->deadline) {
          char reply = ready ? 1 : 0;
          sendAll(it->fd, &reply, 1);
          it = parked.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  /// Serves every complete request of a client; false drops the client.
  bool serve(Client &c, std::list<Parked> &parked) {
    for (;;) {
      Request req;
      long used = parseRequest(c.in, req);
      if (used < 0)
        return false;
      if (used == 0)
        return true;
      c.in.erase(c.in.begin(), c.in.begin() + used);
      if (!c.admitted && req.op != kHello)
        return false;
      std::vector<char> reply;
      switch (req.op) {
      case kHello: {
        c.admitted = req.keys[0] == access.jobId &&
                     sameSecret(req.keys[1], access.token);
        reply.push_back(c.admitted);
        putBytes(reply, access.jobId.data(), access.jobId.size());
        // A refused client learns which job this is, and nothing more.
        if (!c.admitted) {
          sendAll(c.fd, reply.data(), reply.size());
          return false;
        }
        break;
      }
      case kSet:
        data[req.keys[0]] = req.value;
        reply.push_back(1);
        break;
      case kAdd: {
        auto [it, added] = data.emplace(req.keys[0], req.value);
        reply.push_back(added);
        const std::string &v = added ? std::string() : it->second;
        putBytes(reply, v.data(), v.size());
        break;
      }
      case kGet: {
        auto it = data.find(req.keys[0]);
        reply.push_back(it != data.end());
        const std::string &v = it != data.end() ? it->second : std::string();
        putBytes(reply, v.data(), v.size());
        break;
      }
      case kCheck:
        reply.push_back(has(req.keys) ? 1 : 0);
        break;
      case kWait:
        if (has(req.keys)) {
          reply.push_back(1);
        } else {
          parked.push_back(
              {c.fd, req.keys, Clock::now() + milliseconds(req.timeoutMs)});
          continue;
        }
        break;
      }
      if (!sendAll(c.fd, reply.data(), reply.size()))
        return false;
    }
  }
};

/// Binds `fd` (an IPv6 socket if `v6`) to `port` of loopback or every
/// interface; returns bind()'s result.
static int bindTo(int fd, bool v6, int port, bool loopbackOnly) {
  int one = 1, zero = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (v6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    addr.sin6_port = htons(static_cast<uint16_t>(port));
    return ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(loopbackOnly ? INADDR_LOOPBACK : INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
}

TcpStoreServer::TcpStoreServer(int port, StoreAccess access, bool loopbackOnly)
    : impl_(std::make_unique<Impl>()) {
  impl_->access = std::move(access);
  // Every interface: IPv6 with IPv4 mapped, or IPv4 alone; loopback:
  // 127.0.0.1, which MASTER_ADDR=localhost also reaches.
  // Close-on-exec: a launcher that serves the store forks its ranks, which
  // must not hold its sockets.
  int fd =
      loopbackOnly ? -1 : ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool v6 = fd >= 0;
  if (!v6)
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw CommError(std::string("TcpStore: socket: ") + std::strerror(errno));
  if (bindTo(fd, v6, port, loopbackOnly) < 0 || ::listen(fd, 1024) < 0) {
    int e = errno;
    ::close(fd);
    throw CommError(
        "cannot serve the rendezvous store on port " + std::to_string(port) +
        ": " + std::strerror(e) +
        (e == EADDRINUSE ? " (does another job use this MASTER_PORT?)" : ""));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &len);
  impl_->port = ntohs(bound.ss_family == AF_INET6
                          ? reinterpret_cast<sockaddr_in6 *>(&bound)->sin6_port
                          : reinterpret_cast<sockaddr_in *>(&bound)->sin_port);
  impl_->listenFd = fd;
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    ::close(fd);
    throw CommError(std::string("TcpStore: pipe: ") + std::strerror(errno));
  }
  impl_->wakeRead = pipeFds[0];
  impl_->wakeWrite = pipeFds[1];
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

TcpStoreServer::~TcpStoreServer() {
  char c = 0;
  (void)!::write(impl_->wakeWrite, &c, 1);
  impl_->thread.join();
  ::close(impl_->listenFd);
  ::close(impl_->wakeRead);
  ::close(impl_->wakeWrite);
}

int TcpStoreServer::port() const { return impl_->port; }
