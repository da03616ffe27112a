//===- TestComm.h - A test-only in-process communicator ---------*- C++ -*-===//
//
// Ranks are threads of one process sharing a Hub per group. Collectives meet
// at barriers and read each other's buffers; point-to-point messages are
// buffered in mailboxes, so groups never deadlock. Only f32 reductions are
// supported. Every wait times out (CommError) so a broken test fails instead
// of hanging. The real communicators live in runtime/src/comm/.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TEST_TESTCOMM_H
#define LOOM_RUNTIME_TEST_TESTCOMM_H

#include "loom/runtime/Runtime.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace loom::test {

using runtime::CommError;
using runtime::DType;
using runtime::ReduceOp;

class Hub {
public:
  explicit Hub(int n) : n(n), slots(n), mail(n * n) {}

  void barrier() {
    std::unique_lock<std::mutex> lk(m);
    int gen = generation;
    if (++arrived == n) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    if (!cv.wait_for(lk, std::chrono::seconds(20),
                     [&] { return gen != generation; }))
      throw CommError("test communicator: barrier timed out");
  }

  void post(int src, int dst, const void *data, size_t bytes) {
    std::lock_guard<std::mutex> lk(m);
    const char *p = static_cast<const char *>(data);
    mail[src * n + dst].emplace_back(p, p + bytes);
    cv.notify_all();
  }

  void take(int src, int dst, void *data, size_t bytes) {
    std::unique_lock<std::mutex> lk(m);
    auto &q = mail[src * n + dst];
    if (!cv.wait_for(lk, std::chrono::seconds(20), [&] { return !q.empty(); }))
      throw CommError("test communicator: recv from " + std::to_string(src) +
                      " timed out");
    if (q.front().size() != bytes)
      throw CommError("test communicator: message size mismatch");
    std::memcpy(data, q.front().data(), bytes);
    q.pop_front();
  }

  const int n;
  std::vector<const void *> slots;

private:
  std::mutex m;
  std::condition_variable cv;
  int arrived = 0, generation = 0;
  std::vector<std::deque<std::vector<char>>> mail;
};

class TestComm final : public runtime::Communicator {
public:
  TestComm(std::shared_ptr<Hub> hub, int rank) : hub(std::move(hub)), r(rank) {}
  int rank() const override { return r; }
  int size() const override { return hub->n; }

  static float combine(float a, float b, ReduceOp op) {
    switch (op) {
    case ReduceOp::Max:
      return std::max(a, b);
    case ReduceOp::Min:
      return std::min(a, b);
    default:
      return a + b;
    }
  }

  /// Reduction of chunk `chunk` (count f32 elements) over all ranks' slots.
  std::vector<float> reduce(size_t chunk, size_t count, ReduceOp op) {
    std::vector<float> acc(count);
    for (int q = 0; q < hub->n; ++q) {
      const float *p =
          static_cast<const float *>(hub->slots[q]) + chunk * count;
      for (size_t i = 0; i < count; ++i)
        acc[i] = q ? combine(acc[i], p[i], op) : p[i];
    }
    if (op == ReduceOp::Avg)
      for (float &v : acc)
        v /= hub->n;
    return acc;
  }

  void allReduce(void *data, size_t count, DType dtype, ReduceOp op) override {
    if (dtype != DType::F32)
      throw CommError("test communicator reduces f32 only");
    hub->slots[r] = data;
    hub->barrier();
    std::vector<float> acc = reduce(0, count, op);
    hub->barrier();
    std::memcpy(data, acc.data(), count * sizeof(float));
  }
  void allGather(const void *send, void *recv, size_t count,
                 DType dtype) override {
    size_t bytes = count * runtime::dtypeSize(dtype);
    hub->slots[r] = send;
    hub->barrier();
    for (int q = 0; q < hub->n; ++q)
      std::memcpy(static_cast<char *>(recv) + q * bytes, hub->slots[q], bytes);
    hub->barrier();
  }
  void reduceScatter(const void *send, void *recv, size_t count, DType dtype,
                     ReduceOp op) override {
    if (dtype != DType::F32)
      throw CommError("test communicator reduces f32 only");
    hub->slots[r] = send;
    hub->barrier();
    std::vector<float> acc = reduce(r, count, op);
    hub->barrier();
    std::memcpy(recv, acc.data(), count * sizeof(float));
  }
  void allToAll(const void *send, void *recv, size_t count,
                DType dtype) override {
    size_t bytes = count * runtime::dtypeSize(dtype);
    hub->slots[r] = send;
    hub->barrier();
    for (int q = 0; q < hub->n; ++q)
      std::memcpy(static_cast<char *>(recv) + q * bytes,
                  static_cast<const char *>(hub->slots[q]) + r * bytes, bytes);
    hub->barrier();
  }
  void broadcast(void *data, size_t count, DType dtype, int root) override {
    size_t bytes = count * runtime::dtypeSize(dtype);
    hub->slots[r] = data;
    hub->barrier();
    if (r != root)
      std::memcpy(data, hub->slots[root], bytes);
    hub->barrier();
  }
  void send(const void *data, size_t bytes, int peer) override {
    ++sends;
    hub->post(r, peer, data, bytes);
  }
  void recv(void *data, size_t bytes, int peer) override {
    hub->take(peer, r, data, bytes);
  }
  void groupStart() override { ++groups; }
  void groupEnd() override {}
  void barrier() override { hub->barrier(); }

  int sends = 0, groups = 0;

private:
  std::shared_ptr<Hub> hub;
  int r;
};

/// A factory sharing one Hub per group key between the ranks (threads).
class TestCommFactory {
public:
  runtime::CommunicatorFactory factory() {
    return [this](const runtime::CommGroup &g) {
      std::lock_guard<std::mutex> lk(m);
      auto &hub = hubs[g.key];
      if (!hub)
        hub = std::make_shared<Hub>(static_cast<int>(g.ranks.size()));
      groups.push_back(g);
      return std::make_shared<TestComm>(hub, static_cast<int>(g.groupRank));
    };
  }
  std::mutex m;
  std::map<std::string, std::shared_ptr<Hub>> hubs;
  std::vector<runtime::CommGroup> groups;
};

/// Runs `body(rank)` on `n` threads and rethrows the first exception.
inline void runRanks(int n, const std::function<void(int)> &body) {
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(n);
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        body(r);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto &t : threads)
    t.join();
  for (auto &e : errors)
    if (e)
      std::rethrow_exception(e);
}

} // namespace loom::test

#endif // LOOM_RUNTIME_TEST_TESTCOMM_H
