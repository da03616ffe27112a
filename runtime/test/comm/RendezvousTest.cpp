//===- RendezvousTest.cpp - Stores and launcher environment ---------------===//

#include "loom/runtime/comm/Rendezvous.h"

#include "Processes.h"

#include "loom/runtime/Communicator.h"

#include <gloo/common/error.h>
#include <gloo/rendezvous/store.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <thread>

using namespace loom::runtime;
using namespace loom::runtime::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<char> bytes(const std::string &s) {
  return std::vector<char>(s.begin(), s.end());
}
std::string str(const std::vector<char> &v) {
  return std::string(v.begin(), v.end());
}

void exerciseStore(RendezvousStore &a, RendezvousStore &b) {
  a.set("k1", bytes("hello"));
  EXPECT_EQ(str(b.get("k1")), "hello");
  EXPECT_TRUE(storeHasKeys(b, {"k1"}));
  EXPECT_FALSE(storeHasKeys(b, {"k1", "k2"}));

  // A wait that is satisfied by another client while it waits.
  std::thread setter([&] {
    std::this_thread::sleep_for(100ms);
    b.set("k2", bytes(std::string(100000, 'x')));
  });
  auto start = Clock::now();
  a.wait({"k1", "k2"}, 5000ms);
  setter.join();
  EXPECT_LT(Clock::now() - start, 3000ms);
  EXPECT_EQ(a.get("k2").size(), 100000u);

  // A wait that times out, with millisecond precision.
  start = Clock::now();
  EXPECT_THROW(a.wait({"never"}, 150ms), gloo::IoException);
  auto waited = Clock::now() - start;
  EXPECT_GE(waited, 140ms);
  EXPECT_LT(waited, 900ms);
  a.set("empty", {});
  EXPECT_TRUE(storeHasKeys(b, {"empty"}));
}

} // namespace

TEST(Rendezvous, FileStore) {
  TempDir dir;
  auto a = makeFileStore(dir.path());
  auto b = makeFileStore(dir.path());
  exerciseStore(*a, *b);
}

TEST(Rendezvous, TcpStore) {
  auto server = std::make_unique<TcpStoreServer>(0);
  int port = server->port();
  ASSERT_GT(port, 0);
  auto a = makeTcpStore("127.0.0.1", port, 5000ms, {}, std::move(server));
  auto b = makeTcpStore("localhost", port, 5000ms);
  exerciseStore(*a, *b);
  // Overwrites are allowed (unlike the file store).
  a->set("k1", bytes("again"));
  EXPECT_EQ(str(b->get("k1")), "again");
}

TEST(Rendezvous, TcpStoreClientWaitsForServer) {
  int port = pickFreePort();
  std::unique_ptr<TcpStoreServer> server;
  std::thread late([&] {
    std::this_thread::sleep_for(300ms);
    server = std::make_unique<TcpStoreServer>(port);
  });
  auto client = makeTcpStore("127.0.0.1", port, 5000ms);
  late.join();
  client->set("x", bytes("1"));
  EXPECT_EQ(str(client->get("x")), "1");
  client.reset();
}

TEST(Rendezvous, TcpStoreUnreachable) {
  int port = pickFreePort();
  auto start = Clock::now();
  try {
    makeTcpStore("127.0.0.1", port, 300ms);
    FAIL() << "connected to nothing";
  } catch (const CommError &e) {
    EXPECT_NE(std::string(e.what()).find("MASTER_ADDR"), std::string::npos)
        << e.what();
  }
  EXPECT_LT(Clock::now() - start, 2000ms);
}

TEST(Rendezvous, TcpStoreAdmitsOnlyItsJob) {
  auto server = std::make_unique<TcpStoreServer>(0, StoreAccess{"a", "s3"});
  int port = server->port();
  auto owner =
      makeTcpStore("127.0.0.1", port, 5000ms, {"a", "s3"}, std::move(server));
  owner->set("k", bytes("v"));
  auto refused = [&](const StoreAccess &access) {
    try {
      makeTcpStore("127.0.0.1", port, 5000ms, access);
      return std::string("admitted");
    } catch (const CommError &e) {
      return std::string(e.what());
    }
  };
  EXPECT_EQ(refused({"b", "s3"}),
            "the rendezvous store at 127.0.0.1:" + std::to_string(port) +
                " serves job 'a' and refused this rank of job 'b': two jobs "
                "share this rendezvous address");
  EXPECT_NE(refused({"a", "guess"}).find("refused this rank's job token"),
            std::string::npos);
  EXPECT_NE(refused({}).find("refused this rank of a job without an id"),
            std::string::npos);
  // A refused client changed nothing; the owner still works.
  EXPECT_EQ(str(owner->get("k")), "v");
}

TEST(Rendezvous, SetIfAbsentKeepsTheFirstValue) {
  TempDir dir;
  auto server = std::make_unique<TcpStoreServer>(0);
  int port = server->port();
  std::shared_ptr<RendezvousStore> stores[] = {
      makeTcpStore("127.0.0.1", port, 5000ms, {}, std::move(server)),
      makeFileStore(dir.path())};
  for (auto &store : stores) {
    EXPECT_EQ(storeSetIfAbsent(*store, "claim", "first", 1000ms), std::nullopt);
    EXPECT_EQ(storeSetIfAbsent(*store, "claim", "second", 1000ms), "first");
    EXPECT_EQ(storeGet(*store, "claim", 1000ms), "first");
  }
}

TEST(Rendezvous, TcpStoreListensOnLoopbackOnly) {
  // Another address of this machine, if it has one, must not reach it.
  std::string other;
  ifaddrs *addrs = nullptr;
  if (::getifaddrs(&addrs) == 0) {
    for (ifaddrs *a = addrs; a && other.empty(); a = a->ifa_next) {
      if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET)
        continue;
      char text[INET_ADDRSTRLEN];
      auto *in = reinterpret_cast<sockaddr_in *>(a->ifa_addr);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      if (std::string(text).rfind("127.", 0) != 0)
        other = text;
    }
    ::freeifaddrs(addrs);
  }
  if (other.empty())
    GTEST_SKIP() << "this machine has no address but loopback";
  TcpStoreServer server(0);
  EXPECT_THROW(makeTcpStore(other, server.port(), 300ms), CommError);
  EXPECT_NO_THROW(makeTcpStore("127.0.0.1", server.port(), 300ms));
}

TEST(Rendezvous, AStalledServerIsNamedWithinTheTimeout) {
  // A listener that never answers: the kernel accepts the connection, as
  // it does for a process that was stopped.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr *>(&addr), len), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  int port = ntohs(addr.sin_port);
  auto start = Clock::now();
  try {
    makeTcpStore("127.0.0.1", port, 300ms, {}, nullptr, /*serverRank=*/0);
    FAIL() << "a silent server admitted a client";
  } catch (const CommError &e) {
    EXPECT_NE(std::string(e.what()).find(
                  "no answer in time; world rank 0, which serves it, has "
                  "stalled or exited"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(Clock::now() - start, 1500ms);
  ::close(fd);
}
