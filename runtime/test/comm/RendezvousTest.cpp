//===- RendezvousTest.cpp - Stores and launcher environment ---------------===//

#include "loom/runtime/comm/Rendezvous.h"

#include "Processes.h"

#include "loom/runtime/Communicator.h"

#include <gloo/common/error.h>
#include <gloo/rendezvous/store.h>
#include <gtest/gtest.h>

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
  auto a = makeTcpStore("127.0.0.1", port, 5000ms, std::move(server));
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
