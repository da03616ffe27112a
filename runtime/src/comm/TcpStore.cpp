//===- TcpStore.cpp - A client of the TCP store ---------------------------===//
//
// One connection, one request at a time. A call whose own timeout passes
// before the server answers abandons the connection (a late answer would be
// read as the next call's), so every later call fails at once: the store is
// then as good as gone, which is what a stalled server means.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/comm/Rendezvous.h"

#include "LoomStore.h"
#include "StoreProtocol.h"
#include "loom/runtime/Communicator.h"

#include <gloo/common/error.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <thread>

using namespace loom::runtime;
using namespace loom::runtime::store;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

/// How long after its own deadline the client still waits for the server
/// to answer a WAIT (the server answers at the deadline).
constexpr milliseconds kWaitSlack{500};

class TcpStore final : public LoomStore {
public:
  TcpStore(std::string host, int port, milliseconds timeout, StoreAccess access,
           std::unique_ptr<TcpStoreServer> server, int serverRank)
      : server_(std::move(server)), host_(std::move(host)), port_(port),
        timeout_(timeout), access_(std::move(access)), serverRank_(serverRank) {
    connect();
    hello();
  }
  ~TcpStore() override {
    if (fd_ >= 0)
      ::close(fd_);
  }

  std::string describe() const override {
    std::string text =
        "the rendezvous store at " + host_ + ":" + std::to_string(port_);
    if (serverRank_ >= 0)
      text += " (served by world rank " + std::to_string(serverRank_) + ")";
    return text;
  }

  void set(const std::string &key, const std::vector<char> &data) override {
    set(key, data, timeout_);
  }
  void set(const std::string &key, const std::vector<char> &data,
           milliseconds timeout) override {
    call(request(kSet, {key}, &data), 1, timeout, "set " + key);
  }

  std::vector<char> get(const std::string &key) override {
    return get(key, timeout_);
  }
  std::vector<char> get(const std::string &key, milliseconds timeout) override {
    auto until = Clock::now() + timeout;
    wait({key}, timeout);
    std::vector<char> r =
        call(request(kGet, {key}), 1, left(until), "get " + key, true);
    if (!r[0])
      throw CommError(describe() + ": get " + key + ": the key vanished");
    return std::vector<char>(r.begin() + 1, r.end());
  }

  void wait(const std::vector<std::string> &keys) override {
    wait(keys, timeout_);
  }
  void wait(const std::vector<std::string> &keys,
            const milliseconds &timeout) override {
    std::vector<char> r = call(request(kWait, keys, nullptr, timeout.count()),
                               1, timeout + kWaitSlack, "wait");
    if (!r[0])
      GLOO_THROW_IO_EXCEPTION("Wait timeout for key(s): ",
                              ::gloo::MakeString(keys));
  }

  bool check(const std::vector<std::string> &keys,
             milliseconds timeout) override {
    return call(request(kCheck, keys), 1, timeout, "check")[0] != 0;
  }

  std::optional<std::vector<char>> setIfAbsent(const std::string &key,
                                               const std::vector<char> &data,
                                               milliseconds timeout) override {
    std::vector<char> r =
        call(request(kAdd, {key}, &data), 1, timeout, "add " + key, true);
    if (r[0])
      return std::nullopt;
    return std::vector<char>(r.begin() + 1, r.end());
  }

private:
  static milliseconds left(Clock::time_point until) {
    return std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(
                                         until - Clock::now()));
  }

  /// What a caller is told about a server that stopped answering.
  std::string whoServes() const {
    if (serverRank_ < 0)
      return "";
    std::string rank = "world rank " + std::to_string(serverRank_);
    return "; " + rank + ", which serves it, has stalled or exited";
  }

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
        for (addrinfo *a = res; a && fd_ < 0; a = a->ai_next) {
          int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
                            a->ai_protocol);
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
        throw CommError("cannot reach " + describe() + " within " +
                        std::to_string(timeout_.count()) + " ms (" + lastError +
                        "); is rank 0 running and MASTER_ADDR/MASTER_PORT "
                        "right?");
      std::this_thread::sleep_for(milliseconds(50));
    }
  }

  /// Presents this rank's job and token; the server closes the connection
  /// of a client it refuses.
  void hello() {
    std::vector<char> r = call(request(kHello, {access_.jobId, access_.token}),
                               1, timeout_, "hello", true);
    if (r[0])
      return;
    std::string served(r.begin() + 1, r.end());
    auto job = [](const std::string &id) {
      return id.empty() ? std::string("a job without an id")
                        : "job '" + id + "'";
    };
    if (served != access_.jobId)
      throw CommError(describe() + " serves " + job(served) +
                      " and refused this rank of " + job(access_.jobId) +
                      ": two jobs share this rendezvous address");
    throw CommError(describe() + " refused this rank's job token (" +
                    job(served) +
                    "): the store belongs to another launch with the same "
                    "job id, or LOOM_JOB_TOKEN differs between ranks");
  }

  /// Sends `req` and reads a reply of `replyBytes` bytes, followed by a
  /// u32-prefixed value if `withValue` (returned after the fixed bytes).
  std::vector<char> call(const std::vector<char> &req, size_t replyBytes,
                         milliseconds timeout, const std::string &what,
                         bool withValue = false) {
    auto until = Clock::now() + timeout;
    std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
    if (!lock.try_lock_for(timeout))
      throw CommError(describe() + ": " + what + ": busy for " +
                      std::to_string(timeout.count()) + " ms");
    if (fd_ < 0)
      throw CommError(describe() + ": " + what + ": " + broken_);
    if (!sendAll(fd_, req.data(), req.size()))
      abandon(what, "the connection was lost" + whoServes());
    std::vector<char> reply = readExactly(replyBytes, until, what);
    if (withValue) {
      std::vector<char> n = readExactly(4, until, what);
      uint32_t len;
      std::memcpy(&len, n.data(), 4);
      std::vector<char> value = readExactly(len, until, what);
      reply.insert(reply.end(), value.begin(), value.end());
    }
    return reply;
  }

  std::vector<char> readExactly(size_t n, Clock::time_point until,
                                const std::string &what) {
    std::vector<char> out(n);
    size_t got = 0;
    while (got < n) {
      auto ms = std::chrono::duration_cast<milliseconds>(until - Clock::now());
      if (ms.count() <= 0)
        abandon(what, "no answer in time" + whoServes());
      pollfd p{fd_, POLLIN, 0};
      int rv =
          ::poll(&p, 1, static_cast<int>(std::min<long>(ms.count(), 1 << 30)));
      if (rv <= 0)
        continue;
      ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        abandon(what, "the connection was lost" + whoServes());
      got += static_cast<size_t>(r);
    }
    return out;
  }

  [[noreturn]] void abandon(const std::string &what, const std::string &why) {
    ::close(fd_);
    fd_ = -1;
    broken_ = "abandoned after an earlier call: " + why;
    throw CommError(describe() + ": " + what + ": " + why);
  }

  std::unique_ptr<TcpStoreServer> server_;
  std::string host_;
  int port_;
  milliseconds timeout_;
  StoreAccess access_;
  int serverRank_;
  int fd_ = -1;
  std::string broken_;
  std::timed_mutex mu_;
};

} // namespace

std::shared_ptr<RendezvousStore>
loom::runtime::makeTcpStore(const std::string &host, int port,
                            milliseconds timeout, const StoreAccess &access,
                            std::unique_ptr<TcpStoreServer> server,
                            int serverRank) {
  return std::make_shared<TcpStore>(host, port, timeout, access,
                                    std::move(server), serverRank);
}
