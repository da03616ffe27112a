//===- CommThreadTest.cpp - The executor's communication thread -----------===//
//
// Comm-stream instructions between an event_wait and an event_record of the
// comm stream run on a thread of their own; the events order them with the
// compute stream. A failure there is reported by run(), never a hang.
//
//===----------------------------------------------------------------------===//

#include "TestComm.h"
#include "TestUtil.h"

#include <atomic>
#include <gtest/gtest.h>

using namespace loom::runtime;
using namespace loom::test;

namespace {

std::shared_ptr<const Program> load(const ProgramBuilder &b) {
  auto bytes = b.finish();
  return Program::load(bytes.data(), bytes.size());
}

constexpr uint8_t kComm = 1;

/// y = allreduce(2 x) + 3 x over dp=2, the all-reduce started after 2 x is
/// made and waited for only before the add: 3 x is computed meanwhile.
ProgramBuilder overlapped() {
  ProgramBuilder b("overlap");
  b.mesh = {{"dp", 2}};
  int32_t dp = b.comm({"dp"});
  uint32_t x = b.input("x", DType::F32, {4});
  uint32_t t = b.buffer("t", DType::F32, {4});
  uint32_t u = b.buffer("u", DType::F32, {4});
  uint32_t y = b.output("y", DType::F32, {4});
  b.op(Opcode::Scale, {x}, {t}, {TAttr::F("factor", 2)});
  b.op(Opcode::EventRecord, {}, {}, {TAttr::I("event", 0)});
  b.op(Opcode::EventWait, {}, {}, {TAttr::I("event", 0)}).stream = kComm;
  b.op(Opcode::AllReduce, {t}, {t}, {TAttr::S("reduction", "sum")}, dp).stream =
      kComm;
  b.op(Opcode::EventRecord, {}, {}, {TAttr::I("event", 1)}).stream = kComm;
  b.op(Opcode::Scale, {x}, {u}, {TAttr::F("factor", 3)});
  b.op(Opcode::EventWait, {}, {}, {TAttr::I("event", 1)});
  b.op(Opcode::Add, {t, u}, {y});
  return b;
}

/// Delays each all-reduce and records the thread it ran on; or fails.
class SlowComm final : public Communicator {
public:
  SlowComm(std::shared_ptr<Communicator> inner, bool fail)
      : inner(std::move(inner)), fail(fail) {}
  int rank() const override { return inner->rank(); }
  int size() const override { return inner->size(); }
  void allReduce(void *data, size_t count, DType dtype, ReduceOp op) override {
    thread = std::this_thread::get_id();
    if (fail)
      throw CommError("the peer went away");
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    inner->allReduce(data, count, dtype, op);
  }
  void allGather(const void *s, void *r, size_t c, DType d) override {
    inner->allGather(s, r, c, d);
  }
  void reduceScatter(const void *s, void *r, size_t c, DType d,
                     ReduceOp op) override {
    inner->reduceScatter(s, r, c, d, op);
  }
  void allToAll(const void *s, void *r, size_t c, DType d) override {
    inner->allToAll(s, r, c, d);
  }
  void broadcast(void *data, size_t c, DType d, int root) override {
    inner->broadcast(data, c, d, root);
  }
  void send(const void *d, size_t b, int p) override { inner->send(d, b, p); }
  void recv(void *d, size_t b, int p) override { inner->recv(d, b, p); }
  void groupStart() override { inner->groupStart(); }
  void groupEnd() override { inner->groupEnd(); }
  void barrier() override { inner->barrier(); }

  std::shared_ptr<Communicator> inner;
  bool fail;
  std::thread::id thread;
};

TEST(CommThread, EventsOrderComputeAndComm) {
  auto prog = load(overlapped());
  TestCommFactory f;
  std::vector<std::thread::id> commThreads(2), runThreads(2);
  std::vector<HostTensor> out(2);
  runRanks(2, [&](int r) {
    ExecutorOptions o;
    o.rank = r;
    std::shared_ptr<SlowComm> slow;
    auto inner = f.factory();
    o.communicators = [&](const CommGroup &g) {
      slow = std::make_shared<SlowComm>(inner(g), false);
      return slow;
    };
    o.trace = true;
    Executor exec(prog, o);
    EXPECT_TRUE(exec.usesCommThread());
    HostTensor x(DType::F32, {4});
    for (int i = 0; i < 4; ++i)
      x.as<float>()[i] = static_cast<float>(10 * r + i);
    exec.setInput("x", x);
    // Every run waits for its own events (not those of the run before).
    for (int run = 0; run < 3; ++run) {
      exec.run();
      out[r] = exec.getOutput("y");
    }
    commThreads[r] = slow->thread;
    runThreads[r] = std::this_thread::get_id();
    // The all-reduce is traced on the comm stream.
    bool tracedComm = false;
    for (const TraceEvent &e : exec.traceEvents())
      tracedComm |=
          e.stream == StreamKind::Comm &&
          exec.program().instructions()[e.instruction].op == Opcode::AllReduce;
    EXPECT_TRUE(tracedComm);
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_NE(commThreads[r], runThreads[r]) << "rank " << r;
    std::vector<double> want;
    for (int i = 0; i < 4; ++i)
      want.push_back(2.0 * (i + (10 + i)) + 3.0 * (10 * r + i));
    expectNear(out[r], want, 0, "rank");
  }
}

TEST(CommThread, AFailureOnTheCommThreadIsReported) {
  auto prog = load(overlapped());
  TestCommFactory f;
  std::vector<std::string> errors(2);
  auto start = std::chrono::steady_clock::now();
  runRanks(2, [&](int r) {
    ExecutorOptions o;
    o.rank = r;
    auto inner = f.factory();
    o.communicators = [&](const CommGroup &g) {
      return std::make_shared<SlowComm>(inner(g), true);
    };
    Executor exec(prog, o);
    exec.setInput("x", HostTensor(DType::F32, {4}));
    try {
      exec.run();
    } catch (const CommError &e) {
      errors[r] = e.what();
    }
    // The executor can run again (and fail again) and goes away cleanly.
    EXPECT_THROW(exec.run(), CommError);
  });
  for (const std::string &e : errors) {
    EXPECT_NE(e.find("instruction 3 (all_reduce) at test.mlir:4:1"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("the peer went away"), std::string::npos) << e;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(CommThread, AFailureOnTheComputeThreadStopsTheCommThread) {
  // The compute stream fails (an embedding id out of range) while the
  // all-reduce is in flight: run() reports it once the communication thread
  // is idle, and the executor is destroyed without hanging.
  ProgramBuilder b = overlapped();
  uint32_t ids = b.input("ids", DType::I32, {1});
  uint32_t table = b.input("table", DType::F32, {2, 4});
  uint32_t e = b.buffer("e", DType::F32, {1, 4});
  // Before the wait on the comm stream's event.
  TInstr embed{Opcode::Embedding, {table, ids}, {e}, {}, -1, 0,
               "test.mlir:99:1"};
  b.instrs.insert(b.instrs.begin() + 5, embed);
  auto prog = load(b);
  TestCommFactory f;
  runRanks(2, [&](int r) {
    ExecutorOptions o;
    o.rank = r;
    o.communicators = f.factory();
    Executor exec(prog, o);
    exec.setInput("x", HostTensor(DType::F32, {4}));
    exec.setInput("table", HostTensor(DType::F32, {2, 4}));
    HostTensor bad(DType::I32, {1});
    bad.as<int32_t>()[0] = 7;
    exec.setInput("ids", bad);
    EXPECT_THROW(
        {
          try {
            exec.run();
          } catch (const ExecutionError &err) {
            EXPECT_NE(std::string(err.what()).find("test.mlir:99:1"),
                      std::string::npos)
                << err.what();
            throw;
          }
        },
        ExecutionError);
  });
}

TEST(CommThread, ProgramsWithoutEventsRunInOrderOnOneThread) {
  ProgramBuilder b("sync");
  b.mesh = {{"dp", 2}};
  int32_t dp = b.comm({"dp"});
  uint32_t x = b.input("x", DType::F32, {2});
  uint32_t y = b.output("y", DType::F32, {2});
  b.op(Opcode::AllReduce, {x}, {y}, {TAttr::S("reduction", "sum")}, dp).stream =
      kComm;
  auto prog = load(b);
  TestCommFactory f;
  runRanks(2, [&](int r) {
    ExecutorOptions o;
    o.rank = r;
    std::shared_ptr<SlowComm> slow;
    auto inner = f.factory();
    o.communicators = [&](const CommGroup &g) {
      slow = std::make_shared<SlowComm>(inner(g), false);
      return slow;
    };
    Executor exec(prog, o);
    EXPECT_FALSE(exec.usesCommThread());
    exec.setInput("x", HostTensor(DType::F32, {2}));
    exec.run();
    EXPECT_EQ(slow->thread, std::this_thread::get_id());
  });
}

} // namespace
