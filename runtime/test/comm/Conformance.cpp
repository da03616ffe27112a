//===- Conformance.cpp - Collective conformance suite ---------------------===//

#include "Conformance.h"

#include "loom/runtime/DType.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

using namespace loom::runtime;
using namespace loom::runtime::test;

namespace {

/// A typed buffer that stores/loads doubles in any DType.
struct Buf {
  DType dt;
  std::vector<unsigned char> bytes;
  Buf(DType dt, size_t count) : dt(dt), bytes(count * dtypeSize(dt) + 1) {}
  void *data() { return bytes.data(); }
  size_t size() const { return (bytes.size() - 1) / dtypeSize(dt); }
  void set(size_t i, double v) {
    unsigned char *p = bytes.data() + i * dtypeSize(dt);
    switch (dt) {
    case DType::F32: {
      float f = static_cast<float>(v);
      std::memcpy(p, &f, 4);
      break;
    }
    case DType::BF16: {
      uint16_t h = f32ToBf16(static_cast<float>(v));
      std::memcpy(p, &h, 2);
      break;
    }
    case DType::F16: {
      uint16_t h = f32ToF16(static_cast<float>(v));
      std::memcpy(p, &h, 2);
      break;
    }
    case DType::I32: {
      int32_t x = static_cast<int32_t>(v);
      std::memcpy(p, &x, 4);
      break;
    }
    case DType::I64: {
      int64_t x = static_cast<int64_t>(v);
      std::memcpy(p, &x, 8);
      break;
    }
    }
  }
  double get(size_t i) const {
    const unsigned char *p = bytes.data() + i * dtypeSize(dt);
    switch (dt) {
    case DType::F32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return bf16ToF32(h);
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return f16ToF32(h);
    }
    case DType::I32: {
      int32_t x;
      std::memcpy(&x, p, 4);
      return x;
    }
    case DType::I64: {
      int64_t x;
      std::memcpy(&x, p, 8);
      return static_cast<double>(x);
    }
    }
    return 0;
  }
};

/// Input element i of rank q in case `c`: small integers, exact in every
/// type and with exact sums, so any reduction order gives the same answer.
double input(int q, int c, size_t i) {
  return static_cast<double>(static_cast<int>((q * 7 + i * 3 + c * 5) % 17) -
                             8);
}

/// The reference reduction of n values, rounded as the communicators do:
/// integer types exactly (Avg truncates), float types in f32 and rounded once
/// to the storage type.
double reduceRef(DType dt, ReduceOp op, const std::vector<double> &v) {
  double acc = v[0];
  for (size_t k = 1; k < v.size(); ++k) {
    switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg:
      acc += v[k];
      break;
    case ReduceOp::Max:
      acc = std::max(acc, v[k]);
      break;
    case ReduceOp::Min:
      acc = std::min(acc, v[k]);
      break;
    }
  }
  int n = static_cast<int>(v.size());
  if (op == ReduceOp::Avg) {
    if (dt == DType::I32 || dt == DType::I64)
      acc = static_cast<double>(static_cast<int64_t>(acc) / n);
    else
      acc = static_cast<float>(acc) / static_cast<float>(n);
  }
  Buf b(dt, 1);
  b.set(0, acc);
  return b.get(0);
}

struct Ctx {
  Communicator &comm;
  Report &report;
  int n, r;
  int caseId = 0;

  /// Compares got[i] with want(i) and reports the first mismatch.
  template <typename Want>
  void expect(const std::string &name, const Buf &got, size_t count,
              Want want) {
    for (size_t i = 0; i < count; ++i) {
      double w = want(i), g = got.get(i);
      if (!(w == g)) {
        std::ostringstream os;
        os << "rank " << r << "/" << n << " " << name << ": element " << i
           << " is " << g << ", expected " << w;
        report.fail(os.str());
        return;
      }
    }
  }
};

void testAllReduce(Ctx &x, DType dt, ReduceOp op, size_t count) {
  int c = ++x.caseId;
  std::ostringstream name;
  name << "allReduce(" << dtypeName(dt) << ", " << reduceOpName(op)
       << ", count " << count << ")";
  Buf b(dt, count);
  for (size_t i = 0; i < count; ++i)
    b.set(i, input(x.r, c, i));
  x.comm.allReduce(b.data(), count, dt, op);
  x.expect(name.str(), b, count, [&](size_t i) {
    std::vector<double> v;
    for (int q = 0; q < x.n; ++q)
      v.push_back(input(q, c, i));
    return reduceRef(dt, op, v);
  });
}

void testAllGather(Ctx &x, DType dt, size_t count, bool inPlace) {
  int c = ++x.caseId;
  std::ostringstream name;
  name << "allGather(" << dtypeName(dt) << ", count " << count
       << (inPlace ? ", in place" : "") << ")";
  Buf send(dt, count), recv(dt, count * x.n);
  for (size_t i = 0; i < recv.size(); ++i)
    recv.set(i, -99);
  void *sendPtr = send.data();
  if (inPlace)
    sendPtr = recv.bytes.data() + x.r * count * dtypeSize(dt);
  Buf *src = inPlace ? &recv : &send;
  for (size_t i = 0; i < count; ++i)
    src->set((inPlace ? x.r * count : 0) + i, input(x.r, c, i));
  x.comm.allGather(sendPtr, recv.data(), count, dt);
  x.expect(name.str(), recv, count * x.n, [&](size_t i) {
    Buf b(dt, 1);
    b.set(0, input(static_cast<int>(i / count), c, i % count));
    return b.get(0);
  });
}

void testReduceScatter(Ctx &x, DType dt, ReduceOp op, size_t count) {
  int c = ++x.caseId;
  std::ostringstream name;
  name << "reduceScatter(" << dtypeName(dt) << ", " << reduceOpName(op)
       << ", count " << count << ")";
  Buf send(dt, count * x.n), recv(dt, count);
  for (size_t i = 0; i < send.size(); ++i)
    send.set(i, input(x.r, c, i));
  x.comm.reduceScatter(send.data(), recv.data(), count, dt, op);
  x.expect(name.str(), recv, count, [&](size_t i) {
    std::vector<double> v;
    for (int q = 0; q < x.n; ++q)
      v.push_back(input(q, c, x.r * count + i));
    return reduceRef(dt, op, v);
  });
}

void testAllToAll(Ctx &x, DType dt, size_t count) {
  int c = ++x.caseId;
  std::ostringstream name;
  name << "allToAll(" << dtypeName(dt) << ", count " << count << ")";
  Buf send(dt, count * x.n), recv(dt, count * x.n);
  for (size_t i = 0; i < send.size(); ++i)
    send.set(i, input(x.r, c, i));
  x.comm.allToAll(send.data(), recv.data(), count, dt);
  // Chunk j of recv came from rank j's chunk r.
  x.expect(name.str(), recv, count * x.n, [&](size_t i) {
    int from = static_cast<int>(i / count);
    Buf b(dt, 1);
    b.set(0, input(from, c, x.r * count + i % count));
    return b.get(0);
  });
}

void testBroadcast(Ctx &x, DType dt, size_t count, int root) {
  int c = ++x.caseId;
  std::ostringstream name;
  name << "broadcast(" << dtypeName(dt) << ", count " << count << ", root "
       << root << ")";
  Buf b(dt, count);
  for (size_t i = 0; i < count; ++i)
    b.set(i, x.r == root ? input(root, c, i) : -77);
  x.comm.broadcast(b.data(), count, dt, root);
  x.expect(name.str(), b, count, [&](size_t i) {
    Buf ref(dt, 1);
    ref.set(0, input(root, c, i));
    return ref.get(0);
  });
}

/// f32 sums of values that round: every rank must hold the same bits, and
/// with `exactOrder` they must be the left-to-right sum over ranks.
void testDeterminism(Ctx &x, bool exactOrder) {
  const size_t count = 4099;
  std::vector<float> v(count);
  auto val = [](int q, size_t i) {
    return std::sin(0.37f * static_cast<float>(i) + static_cast<float>(q)) *
           (1.0f + static_cast<float>(q) * 1e-3f) * 1e3f;
  };
  for (size_t i = 0; i < count; ++i)
    v[i] = val(x.r, i);
  x.comm.allReduce(v.data(), count, DType::F32, ReduceOp::Sum);
  uint64_t h = 1469598103934665603ull;
  for (float f : v) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    h = (h ^ u) * 1099511628211ull;
  }
  std::vector<int64_t> all(x.n);
  int64_t mine = static_cast<int64_t>(h);
  x.comm.allGather(&mine, all.data(), 1, DType::I64);
  for (int q = 0; q < x.n; ++q)
    if (all[q] != mine) {
      x.report.fail("rank " + std::to_string(x.r) +
                    ": f32 allReduce result differs from rank " +
                    std::to_string(q));
      break;
    }
  if (!exactOrder)
    return;
  for (size_t i = 0; i < count; ++i) {
    float acc = val(0, i);
    for (int q = 1; q < x.n; ++q)
      acc += val(q, i);
    if (std::memcmp(&acc, &v[i], 4) != 0) {
      x.report.fail("rank " + std::to_string(x.r) + ": element " +
                    std::to_string(i) +
                    " of an f32 allReduce is not the sum over ranks in order");
      break;
    }
  }
}

} // namespace

void loom::runtime::test::runConformance(Communicator &comm, Report &report,
                                         const ConformanceOptions &options) {
  Ctx x{comm, report, comm.size(), comm.rank()};
  const DType allTypes[] = {DType::F32, DType::BF16, DType::F16, DType::I32,
                            DType::I64};
  const ReduceOp allOps[] = {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min,
                             ReduceOp::Avg};
  for (size_t count : options.counts)
    for (DType dt : allTypes)
      for (ReduceOp op : allOps)
        testAllReduce(x, dt, op, count);
  for (size_t count : options.counts) {
    for (DType dt : {DType::F32, DType::BF16, DType::I64})
      testAllGather(x, dt, count, false);
    testAllGather(x, DType::F32, count, true);
    for (DType dt : {DType::F32, DType::BF16, DType::I32})
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Avg})
        testReduceScatter(x, dt, op, count);
    for (DType dt : {DType::F32, DType::BF16, DType::I32})
      testAllToAll(x, dt, count);
    for (int root : {0, x.n - 1, x.n / 2})
      for (DType dt : {DType::F32, DType::BF16})
        testBroadcast(x, dt, count, root);
    comm.barrier();
  }
  if (options.largeCount) {
    testAllReduce(x, DType::F32, ReduceOp::Sum, options.largeCount);
    testAllReduce(x, DType::BF16, ReduceOp::Sum, options.largeCount);
    testAllGather(x, DType::F32, options.largeCount, false);
    testReduceScatter(x, DType::F32, ReduceOp::Sum, options.largeCount);
  }
  testDeterminism(x, options.exactOrder);
}

void loom::runtime::test::runSendRecv(Communicator &comm, Report &report) {
  int n = comm.size(), r = comm.rank();
  auto fill = [](std::vector<int32_t> &v, int from, int tag) {
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = from * 100000 + tag * 1000 + static_cast<int>(i);
  };
  auto check = [&](const std::vector<int32_t> &v, int from, int tag,
                   const std::string &what) {
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] != from * 100000 + tag * 1000 + static_cast<int>(i)) {
        report.fail("rank " + std::to_string(r) + "/" + std::to_string(n) +
                    " " + what + ": element " + std::to_string(i) + " is " +
                    std::to_string(v[i]));
        return;
      }
  };
  int next = (r + 1) % n, prev = (r + n - 1) % n;

  // Rings in a group: everyone sends first, then receives.
  for (size_t len : {size_t(0), size_t(3), size_t(1000)}) {
    for (int dir : {1, -1}) {
      int to = dir > 0 ? next : prev, from = dir > 0 ? prev : next;
      std::vector<int32_t> out(len), in(len, -1);
      fill(out, r, dir + 2);
      comm.groupStart();
      comm.send(out.data(), len * 4, to);
      comm.recv(in.data(), len * 4, from);
      comm.groupEnd();
      check(in, from, dir + 2,
            "group ring (dir " + std::to_string(dir) + ", " +
                std::to_string(len) + " elements)");
    }
  }

  // Several messages to the same peer in one group arrive in order.
  {
    std::vector<std::vector<int32_t>> out(3), in(3);
    comm.groupStart();
    for (int k = 0; k < 3; ++k) {
      out[k].resize(5 + k);
      fill(out[k], r, 10 + k);
      comm.send(out[k].data(), out[k].size() * 4, next);
    }
    for (int k = 0; k < 3; ++k) {
      in[k].assign(5 + k, -1);
      comm.recv(in[k].data(), in[k].size() * 4, prev);
    }
    comm.groupEnd();
    for (int k = 0; k < 3; ++k)
      check(in[k], prev, 10 + k, "ordered messages #" + std::to_string(k));
  }

  // A ring outside groups, ordered so that it cannot deadlock: rank 0 sends
  // first, every other rank receives first.
  if (n > 1) {
    std::vector<int32_t> out(17), in(17, -1);
    fill(out, r, 20);
    if (r == 0) {
      comm.send(out.data(), out.size() * 4, next);
      comm.recv(in.data(), in.size() * 4, prev);
    } else {
      comm.recv(in.data(), in.size() * 4, prev);
      comm.send(out.data(), out.size() * 4, next);
    }
    check(in, prev, 20, "ordered ring outside groups");
  }

  // Pipeline-style: only ranks with a peer communicate (no wrap-around).
  {
    std::vector<int32_t> out(9), in(9, -1);
    fill(out, r, 30);
    comm.groupStart();
    if (r + 1 < n)
      comm.send(out.data(), out.size() * 4, r + 1);
    if (r > 0)
      comm.recv(in.data(), in.size() * 4, r - 1);
    comm.groupEnd();
    if (r > 0)
      check(in, r - 1, 30, "pipeline shift");
  }

  // Buffered sends outside groups: every rank sends to both neighbours
  // first (a ring that plain sends would deadlock), overwrites its buffer
  // (the message holds its own copy), then receives, in send order.
  if (n > 1) {
    std::vector<int32_t> out(11), in(11, -1), back(11, -1);
    fill(out, r, 40);
    comm.sendBuffered(out.data(), out.size() * 4, next);
    fill(out, r, 41);
    comm.sendBuffered(out.data(), out.size() * 4, prev);
    std::fill(out.begin(), out.end(), -7);
    comm.recv(in.data(), in.size() * 4, prev);
    comm.recv(back.data(), back.size() * 4, next);
    comm.flushSends();
    check(in, prev, 40, "buffered ring forward");
    check(back, next, 41, "buffered ring backward");
  }
  comm.barrier();
}

void loom::runtime::test::checkGroupSum(Communicator &comm,
                                        const std::vector<int> &members,
                                        int worldRank, Report &report) {
  int n = comm.size();
  std::string where = "world rank " + std::to_string(worldRank) + " group [";
  for (size_t i = 0; i < members.size(); ++i)
    where += (i ? "," : "") + std::to_string(members[i]);
  where += "]";
  if (n != static_cast<int>(members.size()) || comm.rank() < 0 ||
      members[comm.rank()] != worldRank) {
    report.fail(where + ": communicator has rank " +
                std::to_string(comm.rank()) + " of " + std::to_string(n));
    return;
  }
  std::vector<float> v(5, static_cast<float>(worldRank + 1));
  comm.allReduce(v.data(), v.size(), DType::F32, ReduceOp::Sum);
  float want = 0;
  for (int m : members)
    want += static_cast<float>(m + 1);
  for (float f : v)
    if (f != want) {
      report.fail(where + ": allReduce gave " + std::to_string(f) +
                  ", expected " + std::to_string(want));
      break;
    }
  std::vector<int32_t> ranks(n, -1);
  int32_t me = worldRank;
  comm.allGather(&me, ranks.data(), 1, DType::I32);
  for (int i = 0; i < n; ++i)
    if (ranks[i] != members[i]) {
      report.fail(where + ": allGather position " + std::to_string(i) +
                  " holds world rank " + std::to_string(ranks[i]));
      break;
    }
}
