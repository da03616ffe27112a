//===- LocalCommunicator.cpp - Ranks as threads of one process ------------===//
//
// Every group has one shared GroupState. A collective is two rendezvous:
//   1. enter: each rank posts its buffers and waits until every member has
//      entered the same collective (checked to match);
//   2. finish: each rank computes its own result by reading the others'
//      posted inputs, then waits until every member has finished reading,
//      so that outputs which alias inputs (in-place all-reduce) are only
//      written once nobody reads them any more.
// All-reduce is split in chunks: rank q reduces chunk q (over ranks 0..n-1 in
// order) into its scratch, and after the second rendezvous every rank copies
// all chunks; results are therefore bitwise identical on every rank.
//
// Point-to-point: a send and a recv meet in per-(src, dst) FIFO queues; the
// second one to arrive copies the bytes and completes both. Outside a group
// the call waits for its completion; inside groupStart/groupEnd the calls
// only post and groupEnd waits for all of them.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/comm/LocalCommunicator.h"

#include "Reduce.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <sstream>

using namespace loom::runtime;
using Clock = std::chrono::steady_clock;

namespace {

enum class Coll : uint8_t {
  AllReduce,
  AllGather,
  ReduceScatter,
  AllToAll,
  Broadcast,
  Barrier
};

const char *collName(Coll c) {
  switch (c) {
  case Coll::AllReduce:
    return "allReduce";
  case Coll::AllGather:
    return "allGather";
  case Coll::ReduceScatter:
    return "reduceScatter";
  case Coll::AllToAll:
    return "allToAll";
  case Coll::Broadcast:
    return "broadcast";
  case Coll::Barrier:
    return "barrier";
  }
  return "?";
}

struct Post {
  Coll kind = Coll::Barrier;
  const void *send = nullptr;
  void *recv = nullptr;
  size_t count = 0;
  DType dtype = DType::F32;
  ReduceOp op = ReduceOp::Sum;
  int root = -1;
};

std::string describe(const Post &p) {
  std::ostringstream os;
  os << collName(p.kind);
  if (p.kind == Coll::Barrier)
    return os.str();
  os << "(count " << p.count << ", " << dtypeName(p.dtype);
  if (p.kind == Coll::AllReduce || p.kind == Coll::ReduceScatter)
    os << ", " << reduceOpName(p.op);
  if (p.kind == Coll::Broadcast)
    os << ", root " << p.root;
  os << ")";
  return os.str();
}

bool sameCall(const Post &a, const Post &b) {
  if (a.kind != b.kind)
    return false;
  if (a.kind == Coll::Barrier)
    return true;
  if (a.count != b.count || a.dtype != b.dtype)
    return false;
  if ((a.kind == Coll::AllReduce || a.kind == Coll::ReduceScatter) &&
      a.op != b.op)
    return false;
  if (a.kind == Coll::Broadcast && a.root != b.root)
    return false;
  return true;
}

bool overlaps(const void *a, size_t na, const void *b, size_t nb) {
  auto pa = reinterpret_cast<uintptr_t>(a);
  auto pb = reinterpret_cast<uintptr_t>(b);
  return na && nb && pa < pb + nb && pb < pa + na;
}

/// One posted send or recv.
struct P2POp {
  bool isSend = false;
  int self = -1; // group ranks
  int peer = -1;
  const void *sendBuf = nullptr;
  void *recvBuf = nullptr;
  /// A buffered send's own copy of the bytes (sendBuf points into it).
  std::vector<unsigned char> copy;
  size_t bytes = 0;
  bool done = false;
  std::string error;
};

struct GroupState {
  GroupState(std::vector<int> members, int instance)
      : members(std::move(members)), n(static_cast<int>(this->members.size())),
        instance(instance), posts(n), entered(n, 0), finished(n, 0),
        lastKind(n, Coll::Barrier), departed(n, false), scratch(n) {}

  const std::vector<int> members; // world ranks in group order
  const int n;
  const int instance;

  std::mutex mu;
  std::condition_variable cv;
  bool aborted = false;
  std::string abortReason;

  // Collectives, indexed by group rank. entered[q] == k once rank q has
  // entered its k-th collective; finished[q] == k once it has read every
  // input of it.
  std::vector<Post> posts;
  std::vector<uint64_t> entered, finished;
  std::vector<Coll> lastKind;
  std::vector<bool> departed;
  std::vector<std::vector<unsigned char>> scratch;

  // Point to point, keyed by (src, dst) group ranks.
  std::map<std::pair<int, int>, std::deque<std::shared_ptr<P2POp>>> sends,
      recvs;

  std::string rankName(int q) const {
    return "rank " + std::to_string(q) + " (world " +
           std::to_string(members[q]) + ")";
  }
  std::string name() const {
    std::string s = "[";
    for (int i = 0; i < n; ++i)
      s += (i ? "," : "") + std::to_string(members[i]);
    s += "]";
    if (instance)
      s += "#" + std::to_string(instance);
    return s;
  }
};

void completePair(P2POp &send, P2POp &recv, const GroupState &g) {
  if (send.bytes != recv.bytes) {
    std::string msg = "size mismatch: " + g.rankName(send.self) + " sends " +
                      std::to_string(send.bytes) + " bytes, " +
                      g.rankName(recv.self) + " receives " +
                      std::to_string(recv.bytes) + " bytes";
    send.error = recv.error = msg;
  } else if (send.bytes) {
    std::memcpy(recv.recvBuf, send.sendBuf, send.bytes);
  }
  send.done = recv.done = true;
}

} // namespace

struct LocalWorld::Impl {
  Impl(int size, LocalWorldOptions options) : size(size), options(options) {}

  const int size;
  const LocalWorldOptions options;

  std::mutex mu;
  bool aborted = false;
  std::string abortReason;
  std::map<std::pair<std::vector<int>, int>, std::shared_ptr<GroupState>>
      groups;
  /// How many communicators each world rank has made for a member list.
  std::map<std::vector<int>, std::vector<int>> requests;
};

namespace {

class LocalCommunicator final : public Communicator {
public:
  LocalCommunicator(std::shared_ptr<LocalWorld> world,
                    std::shared_ptr<GroupState> g, int rank,
                    std::chrono::milliseconds deadline)
      : world_(std::move(world)), g_(std::move(g)), r_(rank),
        deadline_(deadline) {}

  ~LocalCommunicator() override {
    // Abort first, so that peers see the reason rather than the departure.
    if (std::uncaught_exceptions() > 0)
      world_->abort(g_->members[r_], g_->rankName(r_) + " of group " +
                                         g_->name() +
                                         " exited with an exception");
    std::lock_guard<std::mutex> lk(g_->mu);
    g_->departed[r_] = true;
    for (auto &op : groupOps_)
      if (!op->done)
        dropPending(*op);
    g_->cv.notify_all();
  }

  int rank() const override { return r_; }
  int size() const override { return g_->n; }

  void allReduce(void *data, size_t count, DType dtype, ReduceOp op) override {
    Post p{Coll::AllReduce, data, data, count, dtype, op, -1};
    size_t es = dtypeSize(dtype);
    auto chunk = [&](int q, size_t &begin, size_t &len) {
      begin = count * q / g_->n;
      len = count * (q + 1) / g_->n - begin;
    };
    collective(
        p,
        [&](const std::vector<Post> &posts) {
          size_t begin, len;
          chunk(r_, begin, len);
          auto &mine = g_->scratch[r_];
          mine.resize(len * es);
          std::vector<const void *> in(g_->n);
          for (int q = 0; q < g_->n; ++q)
            in[q] = static_cast<const char *>(posts[q].send) + begin * es;
          comm::reduceInOrder(dtype, op, in.data(), g_->n, mine.data(), len);
        },
        [&](const std::vector<Post> &) {
          for (int q = 0; q < g_->n; ++q) {
            size_t begin, len;
            chunk(q, begin, len);
            if (len)
              std::memcpy(static_cast<char *>(data) + begin * es,
                          g_->scratch[q].data(), len * es);
          }
        });
  }

  void allGather(const void *send, void *recv, size_t count,
                 DType dtype) override {
    Post p{Coll::AllGather, send, recv, count, dtype, ReduceOp::Sum, -1};
    size_t bytes = count * dtypeSize(dtype);
    bool viaTmp = overlaps(send, bytes, recv, bytes * g_->n);
    collective(
        p,
        [&](const std::vector<Post> &posts) {
          char *out = static_cast<char *>(recv);
          if (viaTmp) {
            tmp_.resize(bytes * g_->n);
            out = reinterpret_cast<char *>(tmp_.data());
          }
          for (int q = 0; q < g_->n; ++q)
            if (bytes)
              std::memcpy(out + q * bytes, posts[q].send, bytes);
        },
        [&](const std::vector<Post> &) {
          if (viaTmp && bytes)
            std::memcpy(recv, tmp_.data(), bytes * g_->n);
        });
  }

  void reduceScatter(const void *send, void *recv, size_t count, DType dtype,
                     ReduceOp op) override {
    Post p{Coll::ReduceScatter, send, recv, count, dtype, op, -1};
    size_t bytes = count * dtypeSize(dtype);
    bool viaTmp = overlaps(send, bytes * g_->n, recv, bytes);
    collective(
        p,
        [&](const std::vector<Post> &posts) {
          void *out = recv;
          if (viaTmp) {
            tmp_.resize(bytes);
            out = tmp_.data();
          }
          std::vector<const void *> in(g_->n);
          for (int q = 0; q < g_->n; ++q)
            in[q] = static_cast<const char *>(posts[q].send) + r_ * bytes;
          comm::reduceInOrder(dtype, op, in.data(), g_->n, out, count);
        },
        [&](const std::vector<Post> &) {
          if (viaTmp && bytes)
            std::memcpy(recv, tmp_.data(), bytes);
        });
  }

  void allToAll(const void *send, void *recv, size_t count,
                DType dtype) override {
    Post p{Coll::AllToAll, send, recv, count, dtype, ReduceOp::Sum, -1};
    size_t bytes = count * dtypeSize(dtype);
    bool viaTmp = overlaps(send, bytes * g_->n, recv, bytes * g_->n);
    collective(
        p,
        [&](const std::vector<Post> &posts) {
          char *out = static_cast<char *>(recv);
          if (viaTmp) {
            tmp_.resize(bytes * g_->n);
            out = reinterpret_cast<char *>(tmp_.data());
          }
          for (int q = 0; q < g_->n; ++q)
            if (bytes)
              std::memcpy(out + q * bytes,
                          static_cast<const char *>(posts[q].send) + r_ * bytes,
                          bytes);
        },
        [&](const std::vector<Post> &) {
          if (viaTmp && bytes)
            std::memcpy(recv, tmp_.data(), bytes * g_->n);
        });
  }

  void broadcast(void *data, size_t count, DType dtype, int root) override {
    if (root < 0 || root >= g_->n)
      throw CommError(prefix("broadcast") + ": root " + std::to_string(root) +
                      " outside a group of " + std::to_string(g_->n));
    Post p{Coll::Broadcast, data, data, count, dtype, ReduceOp::Sum, root};
    size_t bytes = count * dtypeSize(dtype);
    collective(
        p,
        [&](const std::vector<Post> &posts) {
          if (r_ != root && bytes)
            std::memcpy(data, posts[root].send, bytes);
        },
        [&](const std::vector<Post> &) {});
  }

  void barrier() override {
    Post p;
    collective(
        p, [](const std::vector<Post> &) {}, [](const std::vector<Post> &) {});
  }

  void send(const void *data, size_t bytes, int peer) override {
    checkPeer(peer, "send");
    auto op = std::make_shared<P2POp>();
    op->isSend = true;
    op->self = r_;
    op->peer = peer;
    op->sendBuf = data;
    op->bytes = bytes;
    post(op);
  }

  void recv(void *data, size_t bytes, int peer) override {
    checkPeer(peer, "recv");
    auto op = std::make_shared<P2POp>();
    op->isSend = false;
    op->self = r_;
    op->peer = peer;
    op->recvBuf = data;
    op->bytes = bytes;
    post(op);
  }

  void sendBuffered(const void *data, size_t bytes, int peer) override {
    checkPeer(peer, "send");
    auto op = std::make_shared<P2POp>();
    op->isSend = true;
    op->self = r_;
    op->peer = peer;
    op->copy.assign(static_cast<const unsigned char *>(data),
                    static_cast<const unsigned char *>(data) + bytes);
    op->sendBuf = op->copy.data();
    op->bytes = bytes;
    post(op, /*wait=*/false);
    buffered_.push_back(op);
  }

  void flushSends() override {
    std::vector<std::shared_ptr<P2POp>> ops;
    ops.swap(buffered_);
    if (!ops.empty())
      waitOps(ops, "buffered send");
  }

  void groupStart() override { ++groupDepth_; }

  void groupEnd() override {
    if (groupDepth_ == 0)
      throw CommError(prefix("groupEnd") + ": no matching groupStart");
    if (--groupDepth_ > 0)
      return;
    std::vector<std::shared_ptr<P2POp>> ops;
    ops.swap(groupOps_);
    waitOps(ops, "groupEnd");
  }

private:
  std::string prefix(const std::string &what) const {
    return "LocalCommunicator: " + what + " on " + g_->rankName(r_) +
           " of group " + g_->name();
  }

  /// Aborts the world with `msg` (a no-op if it is already aborted) and
  /// throws it. Must be called without holding the group lock.
  [[noreturn]] void fail(const std::string &msg) {
    world_->abort(g_->members[r_], msg);
    throw CommError(msg);
  }

  void checkPeer(int peer, const char *what) const {
    if (peer < 0 || peer >= g_->n)
      throw CommError(prefix(what) + ": peer " + std::to_string(peer) +
                      " outside a group of " + std::to_string(g_->n));
  }

  /// Waits (lock held) until counter[q] >= k for every member. Returns an
  /// error message, or "" on success.
  std::string waitAll(std::unique_lock<std::mutex> &lk,
                      const std::vector<uint64_t> &counter, uint64_t k,
                      const std::string &what, bool entering) {
    auto deadline = Clock::now() + deadline_;
    auto missing = [&] {
      std::vector<int> m;
      for (int q = 0; q < g_->n; ++q)
        if (counter[q] < k)
          m.push_back(q);
      return m;
    };
    auto ready = [&] {
      if (g_->aborted)
        return true;
      for (int q = 0; q < g_->n; ++q)
        if (counter[q] < k && !g_->departed[q])
          return false;
      return true;
    };
    g_->cv.wait_until(lk, deadline, ready);
    // A rendezvous that completed stands even if an abort followed it.
    std::vector<int> m = missing();
    if (m.empty())
      return "";
    if (g_->aborted)
      return prefix(what) + ": aborted: " + g_->abortReason;
    std::ostringstream os;
    os << prefix(what) << ": ";
    bool anyDeparted = false;
    for (int q : m)
      anyDeparted |= g_->departed[q];
    if (anyDeparted) {
      os << "peer(s) left the group (their communicator was destroyed: the "
            "rank returned or threw) before "
         << (entering ? "entering" : "finishing") << " it:";
      for (int q : m)
        if (g_->departed[q])
          os << " " << g_->rankName(q);
      return os.str();
    }
    os << "deadline of " << deadline_.count() << " ms expired; ";
    if (entering) {
      os << "peer(s) never arrived:";
      for (int q : m) {
        os << " " << g_->rankName(q);
        if (g_->entered[q] == 0)
          os << " [no collective yet]";
        else
          os << " [last entered " << collName(g_->lastKind[q]) << " #"
             << g_->entered[q] << "]";
      }
    } else {
      os << "peer(s) never finished reading:";
      for (int q : m)
        os << " " << g_->rankName(q);
    }
    return os.str();
  }

  template <typename Compute, typename Finish>
  void collective(const Post &p, Compute compute, Finish finish) {
    if (groupDepth_ > 0 && !groupOps_.empty())
      throw CommError(prefix(collName(p.kind)) +
                      ": collectives cannot be mixed with pending send/recv "
                      "inside groupStart/groupEnd");
    uint64_t k = ++seq_;
    std::string what = std::string(collName(p.kind)) + " #" + std::to_string(k);
    std::vector<Post> posts;
    std::string err;
    {
      std::unique_lock<std::mutex> lk(g_->mu);
      if (g_->aborted) {
        err = prefix(what) + ": aborted: " + g_->abortReason;
      } else {
        g_->posts[r_] = p;
        g_->lastKind[r_] = p.kind;
        g_->entered[r_] = k;
        g_->cv.notify_all();
        err = waitAll(lk, g_->entered, k, what, /*entering=*/true);
        if (err.empty()) {
          posts = g_->posts;
          for (int q = 0; q < g_->n; ++q) {
            if (sameCall(posts[q], p))
              continue;
            std::ostringstream os;
            os << prefix(what) << ": ranks disagree on the call:";
            for (int i = 0; i < g_->n; ++i)
              os << " " << g_->rankName(i) << " called " << describe(posts[i])
                 << (i + 1 < g_->n ? ";" : "");
            err = os.str();
            break;
          }
        }
      }
    }
    if (!err.empty())
      fail(err);
    compute(posts);
    {
      std::unique_lock<std::mutex> lk(g_->mu);
      g_->finished[r_] = k;
      g_->cv.notify_all();
      err = waitAll(lk, g_->finished, k, what, /*entering=*/false);
    }
    if (!err.empty())
      fail(err);
    finish(posts);
  }

  /// Removes a pending op from the queues (lock held).
  void dropPending(const P2POp &op) {
    auto key = op.isSend ? std::make_pair(op.self, op.peer)
                         : std::make_pair(op.peer, op.self);
    auto &queues = op.isSend ? g_->sends : g_->recvs;
    auto it = queues.find(key);
    if (it == queues.end())
      return;
    auto &q = it->second;
    q.erase(std::remove_if(q.begin(), q.end(),
                           [&](const std::shared_ptr<P2POp> &o) {
                             return o.get() == &op;
                           }),
            q.end());
  }

  void post(const std::shared_ptr<P2POp> &op, bool wait = true) {
    std::string err;
    {
      std::lock_guard<std::mutex> lk(g_->mu);
      if (g_->aborted) {
        err = prefix(op->isSend ? "send" : "recv") +
              ": aborted: " + g_->abortReason;
      } else if (op->isSend) {
        auto &waiting = g_->recvs[{op->self, op->peer}];
        if (!waiting.empty()) {
          auto match = waiting.front();
          waiting.pop_front();
          completePair(*op, *match, *g_);
          g_->cv.notify_all();
        } else {
          g_->sends[{op->self, op->peer}].push_back(op);
        }
      } else {
        auto &waiting = g_->sends[{op->peer, op->self}];
        if (!waiting.empty()) {
          auto match = waiting.front();
          waiting.pop_front();
          completePair(*match, *op, *g_);
          g_->cv.notify_all();
        } else {
          g_->recvs[{op->peer, op->self}].push_back(op);
        }
      }
    }
    if (!err.empty())
      fail(err);
    if (!wait)
      return;
    if (groupDepth_ > 0) {
      groupOps_.push_back(op);
      return;
    }
    waitOps({op}, op->isSend ? "send" : "recv");
  }

  void waitOps(const std::vector<std::shared_ptr<P2POp>> &ops,
               const std::string &what) {
    std::string err;
    {
      std::unique_lock<std::mutex> lk(g_->mu);
      auto deadline = Clock::now() + deadline_;
      g_->cv.wait_until(lk, deadline, [&] {
        if (g_->aborted)
          return true;
        for (auto &op : ops)
          if (!op->done && !g_->departed[op->peer])
            return false;
        return true;
      });
      std::ostringstream os;
      for (auto &op : ops) {
        if (op->done) {
          if (!op->error.empty())
            os << "; " << op->error;
          continue;
        }
        dropPending(*op);
        os << "; " << (op->isSend ? "send of " : "recv of ") << op->bytes
           << " bytes " << (op->isSend ? "to " : "from ")
           << g_->rankName(op->peer) << " did not complete: ";
        if (g_->aborted)
          os << "aborted: " << g_->abortReason;
        else if (g_->departed[op->peer])
          os << "the peer left the group (its communicator was destroyed)";
        else
          os << "deadline of " << deadline_.count() << " ms expired, the peer "
             << (op->isSend ? "never posted a matching recv" : "never sent");
      }
      if (!os.str().empty())
        err = prefix(what) + ": " + os.str().substr(2);
    }
    if (!err.empty())
      fail(err);
  }

  std::shared_ptr<LocalWorld> world_;
  std::shared_ptr<GroupState> g_;
  const int r_;
  const std::chrono::milliseconds deadline_;
  uint64_t seq_ = 0;
  int groupDepth_ = 0;
  std::vector<std::shared_ptr<P2POp>> groupOps_;
  std::vector<std::shared_ptr<P2POp>> buffered_;
  std::vector<unsigned char> tmp_;
};

class LocalProvider final : public CommunicatorProvider {
public:
  LocalProvider(std::shared_ptr<LocalWorld> world, int rank)
      : world_(std::move(world)), rank_(rank) {}
  int worldRank() const override { return rank_; }
  int worldSize() const override { return world_->size(); }
  std::unique_ptr<Communicator>
  group(const std::vector<int> &members) override {
    return world_->group(members, rank_);
  }

private:
  std::shared_ptr<LocalWorld> world_;
  int rank_;
};

} // namespace

LocalWorld::LocalWorld(int size, LocalWorldOptions options)
    : impl_(std::make_unique<Impl>(size, options)) {}

LocalWorld::~LocalWorld() = default;

std::shared_ptr<LocalWorld> LocalWorld::create(int size,
                                               LocalWorldOptions options) {
  if (size <= 0)
    throw std::invalid_argument("LocalWorld: size must be positive, got " +
                                std::to_string(size));
  if (options.deadline.count() <= 0)
    throw std::invalid_argument("LocalWorld: deadline must be positive");
  return std::shared_ptr<LocalWorld>(new LocalWorld(size, options));
}

int LocalWorld::size() const { return impl_->size; }

const LocalWorldOptions &LocalWorld::options() const { return impl_->options; }

std::unique_ptr<CommunicatorProvider> LocalWorld::provider(int rank) {
  if (rank < 0 || rank >= impl_->size)
    throw std::invalid_argument("LocalWorld: rank " + std::to_string(rank) +
                                " outside a world of " +
                                std::to_string(impl_->size));
  return std::make_unique<LocalProvider>(shared_from_this(), rank);
}

std::unique_ptr<Communicator> LocalWorld::communicator(int rank) {
  return provider(rank)->world();
}

std::unique_ptr<Communicator> LocalWorld::group(const std::vector<int> &members,
                                                int rank) {
  std::string list;
  for (int m : members)
    list += (list.empty() ? "" : ",") + std::to_string(m);
  if (members.empty())
    throw std::invalid_argument("LocalWorld: empty group");
  std::vector<int> sorted = members;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end() ||
      sorted.front() < 0 || sorted.back() >= impl_->size)
    throw std::invalid_argument("LocalWorld: invalid group [" + list +
                                "] in a world of " +
                                std::to_string(impl_->size));
  auto it = std::find(members.begin(), members.end(), rank);
  if (it == members.end())
    throw std::invalid_argument("LocalWorld: rank " + std::to_string(rank) +
                                " is not a member of group [" + list + "]");
  int groupRank = static_cast<int>(it - members.begin());

  std::shared_ptr<GroupState> g;
  bool aborted;
  std::string reason;
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    auto &counts = impl_->requests[members];
    counts.resize(impl_->size, 0);
    int instance = counts[rank]++;
    auto &slot = impl_->groups[{members, instance}];
    if (!slot)
      slot = std::make_shared<GroupState>(members, instance);
    g = slot;
    aborted = impl_->aborted;
    reason = impl_->abortReason;
  }
  if (aborted) {
    std::lock_guard<std::mutex> lk(g->mu);
    g->aborted = true;
    g->abortReason = reason;
  }
  return std::make_unique<LocalCommunicator>(shared_from_this(), g, groupRank,
                                             impl_->options.deadline);
}

void LocalWorld::abort(int rank, const std::string &reason) {
  std::vector<std::shared_ptr<GroupState>> groups;
  std::string why;
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->aborted)
      return;
    impl_->aborted = true;
    impl_->abortReason =
        "world rank " + std::to_string(rank) + " failed: " + reason;
    why = impl_->abortReason;
    for (auto &entry : impl_->groups)
      groups.push_back(entry.second);
  }
  for (auto &g : groups) {
    std::lock_guard<std::mutex> lk(g->mu);
    if (!g->aborted) {
      g->aborted = true;
      g->abortReason = why;
    }
    g->cv.notify_all();
  }
}

bool LocalWorld::aborted() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->aborted;
}

std::string LocalWorld::abortReason() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->abortReason;
}
