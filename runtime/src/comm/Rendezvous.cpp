//===- Rendezvous.cpp - Key-value stores for process rendezvous -----------===//
//
// The TCP store speaks a small framed protocol over one connection per
// client. Requests (all integers little-endian as on the hosts we run on):
//
//   u8 op, u32 nkeys, { u32 len, bytes } * nkeys, [u32 len, bytes value],
//   [i64 timeout ms]
//
//   SET   one key and a value          -> u8 1
//   GET   one key, returns at once     -> u8 found, u32 len, bytes
//   WAIT  keys and a timeout           -> u8 1 when all are set, 0 on timeout
//   CHECK keys                         -> u8 1 if all are set, else 0
//
// The server is one thread polling all connections; a WAIT is parked until
// its keys are set or its timeout passes, so a waiting client costs nothing.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/comm/Rendezvous.h"

#include "loom/runtime/Communicator.h"
#include "loom/runtime/comm/LaunchEnv.h"

#include <gloo/common/error.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/hash_store.h>
#include <gloo/rendezvous/store.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <thread>

using namespace loom::runtime;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

/// Loom's stores also answer "are these keys set?" without waiting.
class CheckableStore : public gloo::rendezvous::Store {
public:
  virtual bool check(const std::vector<std::string> &keys) = 0;
};

/// Gloo's FileStore, with waits that honour milliseconds (Gloo's compares
/// whole seconds) and a public check().
class FileStore final : public CheckableStore {
public:
  explicit FileStore(const std::string &path) : impl_(path) {}
  void set(const std::string &key, const std::vector<char> &data) override {
    impl_.set(key, data);
  }
  std::vector<char> get(const std::string &key) override {
    wait({key}, kDefaultTimeout);
    return impl_.get(key);
  }
  void wait(const std::vector<std::string> &keys) override {
    wait(keys, kDefaultTimeout);
  }
  void wait(const std::vector<std::string> &keys,
            const milliseconds &timeout) override {
    auto deadline = Clock::now() + timeout;
    while (!impl_.check(keys)) {
      if (Clock::now() >= deadline)
        GLOO_THROW_IO_EXCEPTION("Wait timeout for key(s): ",
                                ::gloo::MakeString(keys));
      std::this_thread::sleep_for(milliseconds(2));
    }
  }
  bool check(const std::vector<std::string> &keys) override {
    return impl_.check(keys);
  }

private:
  struct Impl : gloo::rendezvous::FileStore {
    using gloo::rendezvous::FileStore::check;
    using gloo::rendezvous::FileStore::FileStore;
  } impl_;
};

enum Op : uint8_t { kSet = 1, kGet = 2, kWait = 3, kCheck = 4 };

void putU32(std::vector<char> &b, uint32_t v) {
  b.insert(b.end(), reinterpret_cast<char *>(&v),
           reinterpret_cast<char *>(&v) + 4);
}
void putI64(std::vector<char> &b, int64_t v) {
  b.insert(b.end(), reinterpret_cast<char *>(&v),
           reinterpret_cast<char *>(&v) + 8);
}
void putBytes(std::vector<char> &b, const char *p, size_t n) {
  putU32(b, static_cast<uint32_t>(n));
  b.insert(b.end(), p, p + n);
}

/// Incremental parser of one request from a byte buffer.
struct Reader {
  const std::vector<char> &b;
  size_t pos = 0;
  bool ok = true;
  bool u32(uint32_t &v) {
    if (pos + 4 > b.size())
      return ok = false;
    std::memcpy(&v, b.data() + pos, 4);
    pos += 4;
    return true;
  }
  bool i64(int64_t &v) {
    if (pos + 8 > b.size())
      return ok = false;
    std::memcpy(&v, b.data() + pos, 8);
    pos += 8;
    return true;
  }
  bool bytes(std::string &s) {
    uint32_t n;
    if (!u32(n) || pos + n > b.size())
      return ok = false;
    s.assign(b.data() + pos, n);
    pos += n;
    return true;
  }
};

struct Request {
  uint8_t op = 0;
  std::vector<std::string> keys;
  std::string value;
  int64_t timeoutMs = 0;
};

/// Parses one request at the front of `buf`; returns bytes consumed, 0 if
/// incomplete, or -1 if malformed.
long parseRequest(const std::vector<char> &buf, Request &req) {
  if (buf.empty())
    return 0;
  Reader r{buf};
  req = Request();
  req.op = static_cast<uint8_t>(buf[0]);
  r.pos = 1;
  if (req.op < kSet || req.op > kCheck)
    return -1;
  uint32_t n;
  if (!r.u32(n))
    return 0;
  if (n > (1u << 20))
    return -1;
  for (uint32_t i = 0; i < n; ++i) {
    std::string k;
    if (!r.bytes(k))
      return 0;
    req.keys.push_back(std::move(k));
  }
  if (req.op == kSet && !r.bytes(req.value))
    return 0;
  if (req.op == kWait && !r.i64(req.timeoutMs))
    return 0;
  if ((req.op == kSet || req.op == kGet) && req.keys.size() != 1)
    return -1;
  return static_cast<long>(r.pos);
}

bool sendAll(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

} // namespace

//===----------------------------------------------------------------------===//
// Server
//===----------------------------------------------------------------------===//

struct TcpStoreServer::Impl {
  int listenFd = -1;
  int wakeRead = -1, wakeWrite = -1;
  int port = 0;
  std::thread thread;

  struct Client {
    int fd;
    std::vector<char> in;
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
      if (fds[0].revents)
        return; // shutdown
      if (fds[1].revents & POLLIN) {
        int fd = ::accept(listenFd, nullptr, nullptr);
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
      std::vector<char> reply;
      switch (req.op) {
      case kSet:
        data[req.keys[0]] = req.value;
        reply.push_back(1);
        break;
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

TcpStoreServer::TcpStoreServer(int port) : impl_(std::make_unique<Impl>()) {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  bool v6 = fd >= 0;
  if (!v6)
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    throw CommError(std::string("TcpStore: socket: ") + std::strerror(errno));
  int one = 1, zero = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rv;
  if (v6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    addr.sin6_port = htons(static_cast<uint16_t>(port));
    rv = ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    rv = ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
  }
  if (rv < 0 || ::listen(fd, 1024) < 0) {
    int e = errno;
    ::close(fd);
    throw CommError("TcpStore: cannot listen on port " + std::to_string(port) +
                    ": " + std::strerror(e));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &len);
  impl_->port = ntohs(bound.ss_family == AF_INET6
                          ? reinterpret_cast<sockaddr_in6 *>(&bound)->sin6_port
                          : reinterpret_cast<sockaddr_in *>(&bound)->sin_port);
  impl_->listenFd = fd;
  int pipeFds[2];
  if (::pipe(pipeFds) != 0) {
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

//===----------------------------------------------------------------------===//
// Client
//===----------------------------------------------------------------------===//

namespace {

class TcpStore final : public CheckableStore {
public:
  TcpStore(std::string host, int port, milliseconds timeout,
           std::unique_ptr<TcpStoreServer> server)
      : server_(std::move(server)), host_(std::move(host)), port_(port),
        timeout_(timeout) {
    connect();
  }
  ~TcpStore() override {
    if (fd_ >= 0)
      ::close(fd_);
  }

  void set(const std::string &key, const std::vector<char> &data) override {
    std::vector<char> req{static_cast<char>(kSet)};
    putU32(req, 1);
    putBytes(req, key.data(), key.size());
    putBytes(req, data.data(), data.size());
    std::lock_guard<std::mutex> lk(mu_);
    roundTrip(req, 1, timeout_, "set " + key);
  }

  std::vector<char> get(const std::string &key) override {
    wait({key}, timeout_);
    std::vector<char> req{static_cast<char>(kGet)};
    putU32(req, 1);
    putBytes(req, key.data(), key.size());
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<char> head = roundTrip(req, 5, timeout_, "get " + key);
    uint32_t n;
    std::memcpy(&n, head.data() + 1, 4);
    std::vector<char> value = readExactly(n, timeout_, "get " + key);
    return value;
  }

  void wait(const std::vector<std::string> &keys) override {
    wait(keys, timeout_);
  }

  void wait(const std::vector<std::string> &keys,
            const milliseconds &timeout) override {
    std::vector<char> req{static_cast<char>(kWait)};
    putU32(req, static_cast<uint32_t>(keys.size()));
    for (const auto &k : keys)
      putBytes(req, k.data(), k.size());
    putI64(req, timeout.count());
    std::lock_guard<std::mutex> lk(mu_);
    // The server answers at its own deadline; allow it some slack.
    std::vector<char> r =
        roundTrip(req, 1, timeout + milliseconds(5000), "wait");
    if (!r[0])
      GLOO_THROW_IO_EXCEPTION("Wait timeout for key(s): ",
                              ::gloo::MakeString(keys));
  }

  bool check(const std::vector<std::string> &keys) override {
    std::vector<char> req{static_cast<char>(kCheck)};
    putU32(req, static_cast<uint32_t>(keys.size()));
    for (const auto &k : keys)
      putBytes(req, k.data(), k.size());
    std::lock_guard<std::mutex> lk(mu_);
    return roundTrip(req, 1, timeout_, "check")[0] != 0;
  }

private:
  std::string where() const { return host_ + ":" + std::to_string(port_); }

  void connect() {
    auto deadline = Clock::now() + timeout_;
    std::string lastError = "no address";
    for (;;) {
      addrinfo hints{}, *res = nullptr;
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      int gai = ::getaddrinfo(host_.c_str(), std::to_string(port_).c_str(),
                              &hints, &res);
      if (gai != 0) {
        lastError = ::gai_strerror(gai);
      } else {
        for (addrinfo *a = res; a; a = a->ai_next) {
          int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
          if (fd < 0)
            continue;
          if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            fd_ = fd;
            break;
          }
          lastError = std::strerror(errno);
          ::close(fd);
        }
        ::freeaddrinfo(res);
      }
      if (fd_ >= 0)
        return;
      if (Clock::now() >= deadline)
        throw CommError("TcpStore: cannot reach the rendezvous server at " +
                        where() + " within " +
                        std::to_string(timeout_.count()) + " ms (" + lastError +
                        "); is rank 0 running and MASTER_ADDR/MASTER_PORT "
                        "right?");
      std::this_thread::sleep_for(milliseconds(50));
    }
  }

  std::vector<char> readExactly(size_t n, milliseconds timeout,
                                const std::string &what) {
    std::vector<char> out(n);
    size_t got = 0;
    auto deadline = Clock::now() + timeout;
    while (got < n) {
      auto left =
          std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0)
        GLOO_THROW_IO_EXCEPTION("TcpStore ", where(), ": ", what,
                                ": no answer from the server");
      pollfd p{fd_, POLLIN, 0};
      int rv = ::poll(&p, 1,
                      static_cast<int>(std::min<long>(left.count(), 1 << 30)));
      if (rv < 0 && errno == EINTR)
        continue;
      if (rv <= 0)
        continue;
      ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        GLOO_THROW_IO_EXCEPTION("TcpStore ", where(), ": ", what,
                                ": connection to the server lost");
      got += static_cast<size_t>(r);
    }
    return out;
  }

  std::vector<char> roundTrip(const std::vector<char> &req, size_t replyBytes,
                              milliseconds timeout, const std::string &what) {
    if (!sendAll(fd_, req.data(), req.size()))
      GLOO_THROW_IO_EXCEPTION("TcpStore ", where(), ": ", what,
                              ": connection to the server lost");
    return readExactly(replyBytes, timeout, what);
  }

  std::unique_ptr<TcpStoreServer> server_;
  std::string host_;
  int port_;
  milliseconds timeout_;
  int fd_ = -1;
  std::mutex mu_;
};

} // namespace

std::shared_ptr<RendezvousStore>
loom::runtime::makeFileStore(const std::string &path) {
  ::mkdir(path.c_str(), 0777);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw CommError("FileStore: " + path + " is not a directory");
  return std::make_shared<FileStore>(path);
}

std::shared_ptr<RendezvousStore>
loom::runtime::makeTcpStore(const std::string &host, int port,
                            milliseconds timeout,
                            std::unique_ptr<TcpStoreServer> server) {
  return std::make_shared<TcpStore>(host, port, timeout, std::move(server));
}

std::shared_ptr<RendezvousStore>
loom::runtime::makeLaunchStore(const LaunchInfo &launch, milliseconds timeout) {
  if (launch.worldSize == 1)
    return std::make_shared<gloo::rendezvous::HashStore>();
  if (launch.masterAddr.empty() || launch.masterPort <= 0)
    throw std::runtime_error(
        "launch environment: MASTER_ADDR and MASTER_PORT must name the "
        "rendezvous server (rank 0's host and a free port) for a world of " +
        std::to_string(launch.worldSize) + " ranks under " + launch.launcher);
  std::unique_ptr<TcpStoreServer> server;
  if (launch.rank == 0)
    server = std::make_unique<TcpStoreServer>(launch.masterPort);
  return makeTcpStore(launch.masterAddr, launch.masterPort, timeout,
                      std::move(server));
}

bool loom::runtime::storeHasKeys(RendezvousStore &store,
                                 const std::vector<std::string> &keys) {
  if (auto *s = dynamic_cast<CheckableStore *>(&store))
    return s->check(keys);
  try {
    store.wait(keys, milliseconds(1));
    return true;
  } catch (const gloo::Exception &) {
    return false;
  }
}
