//===- GlooCommunicator.cpp - Ranks as processes over TCP -----------------===//

#include "loom/runtime/comm/GlooCommunicator.h"

#include "CommCommon.h"
#include "Reduce.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/common/logging.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <gloo/types.h>

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <sstream>
#include <thread>

using namespace loom::runtime;
using namespace loom::runtime::comm;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

/// Slot prefix of Loom's point-to-point messages (Gloo's own collectives
/// use 0x01..0x08).
constexpr uint8_t kP2PSlotPrefix = 0x50;

bool overlaps(const void *a, size_t na, const void *b, size_t nb) {
  auto pa = reinterpret_cast<uintptr_t>(a);
  auto pb = reinterpret_cast<uintptr_t>(b);
  return na && nb && pa < pb + nb && pb < pa + na;
}

class GlooCommunicator final : public Communicator {
public:
  GlooCommunicator(std::shared_ptr<gloo::transport::Device> device,
                   std::vector<int> members, int rank,
                   std::shared_ptr<RendezvousStore> store,
                   std::string keyPrefix, const GlooOptions &options)
      : device_(std::move(device)), members_(std::move(members)), r_(rank),
        n_(static_cast<int>(members_.size())), store_(std::move(store)),
        keyPrefix_(std::move(keyPrefix)), deadline_(options.deadline),
        grace_(std::min(options.reportGrace, options.deadline)),
        sendSeq_(n_, 0), recvSeq_(n_, 0) {}

  int rank() const override { return r_; }
  int size() const override { return n_; }

  void allReduce(void *data, size_t count, DType dtype, ReduceOp op) override {
    run("allReduce", -1, [&] {
      if (count == 0 || n_ == 1)
        return;
      if (dtype == DType::BF16 || dtype == DType::F16) {
        std::vector<float> wide(count);
        comm::widenToF32(dtype, data, wide.data(), count);
        glooAllReduce(wide.data(), count, DType::F32, op);
        comm::narrowFromF32(dtype, wide.data(), data, count);
        return;
      }
      glooAllReduce(data, count, dtype, op);
    });
  }

  void allGather(const void *send, void *recv, size_t count,
                 DType dtype) override {
    run("allGather", -1, [&] {
      size_t bytes = count * dtypeSize(dtype);
      char *out = static_cast<char *>(recv);
      if (bytes == 0)
        return;
      if (n_ == 1) {
        std::memmove(out, send, bytes);
        return;
      }
      gloo::AllgatherOptions o(ctx_);
      o.setTag(nextTag());
      o.setTimeout(deadline_);
      o.setOutput<char>(out, bytes * n_);
      std::vector<char> copy;
      if (send != out + r_ * bytes) {
        if (overlaps(send, bytes, out, bytes * n_)) {
          copy.assign(static_cast<const char *>(send),
                      static_cast<const char *>(send) + bytes);
          send = copy.data();
        }
        o.setInput<char>(const_cast<char *>(static_cast<const char *>(send)),
                         bytes);
      }
      gloo::allgather(o);
    });
  }

  void reduceScatter(const void *send, void *recv, size_t count, DType dtype,
                     ReduceOp op) override {
    run("reduceScatter", -1, [&] {
      size_t bytes = count * dtypeSize(dtype);
      if (bytes == 0)
        return;
      if (n_ == 1) {
        std::memmove(recv, send, bytes);
        return;
      }
      // Chunk q of every rank lands at q * bytes, then a reduction over
      // ranks in order: the same arithmetic as the local communicator.
      std::vector<char> gathered(bytes * n_);
      alltoall(send, gathered.data(), bytes);
      std::vector<const void *> in(n_);
      for (int q = 0; q < n_; ++q)
        in[q] = gathered.data() + q * bytes;
      comm::reduceInOrder(dtype, op, in.data(), n_, recv, count);
    });
  }

  void allToAll(const void *send, void *recv, size_t count,
                DType dtype) override {
    run("allToAll", -1, [&] {
      size_t bytes = count * dtypeSize(dtype);
      if (bytes == 0)
        return;
      if (n_ == 1) {
        std::memmove(recv, send, bytes);
        return;
      }
      std::vector<char> copy;
      if (overlaps(send, bytes * n_, recv, bytes * n_)) {
        copy.assign(static_cast<const char *>(send),
                    static_cast<const char *>(send) + bytes * n_);
        send = copy.data();
      }
      alltoall(send, recv, bytes);
    });
  }

  void broadcast(void *data, size_t count, DType dtype, int root) override {
    if (root < 0 || root >= n_)
      throw CommError(prefix("broadcast") + ": root " + std::to_string(root) +
                      " outside a group of " + std::to_string(n_));
    run("broadcast", root, [&] {
      size_t bytes = count * dtypeSize(dtype);
      if (bytes == 0 || n_ == 1)
        return;
      gloo::BroadcastOptions o(ctx_);
      o.setTag(nextTag());
      o.setTimeout(deadline_);
      o.setOutput<char>(static_cast<char *>(data), bytes);
      o.setRoot(root);
      gloo::broadcast(o);
    });
  }

  void barrier() override {
    run("barrier", -1, [&] {
      if (n_ == 1)
        return;
      gloo::BarrierOptions o(ctx_);
      o.setTag(nextTag());
      o.setTimeout(deadline_);
      gloo::barrier(o);
    });
  }

  void send(const void *data, size_t bytes, int peer) override {
    checkPeer(peer, "send");
    if (peer == r_)
      return selfPost(true, const_cast<void *>(data), bytes);
    run("send", peer, [&] {
      auto buf = ctx_->createUnboundBuffer(const_cast<void *>(data), bytes);
      buf->send(peer, gloo::Slot::build(kP2PSlotPrefix, sendSeq_[peer]++));
      Pending p{std::move(buf), peer, true};
      if (groupDepth_ > 0)
        pending_.push_back(std::move(p));
      else
        complete(p, Clock::now() + deadline_);
    });
  }

  void recv(void *data, size_t bytes, int peer) override {
    checkPeer(peer, "recv");
    if (peer == r_)
      return selfPost(false, data, bytes);
    run("recv", peer, [&] {
      auto buf = ctx_->createUnboundBuffer(data, bytes);
      buf->recv(peer, gloo::Slot::build(kP2PSlotPrefix, recvSeq_[peer]++));
      Pending p{std::move(buf), peer, false};
      if (groupDepth_ > 0)
        pending_.push_back(std::move(p));
      else
        complete(p, Clock::now() + deadline_);
    });
  }

  void sendBuffered(const void *data, size_t bytes, int peer) override {
    checkPeer(peer, "send");
    if (peer == r_)
      return send(data, bytes, peer);
    run("send", peer, [&] {
      auto copy = std::make_shared<std::vector<char>>(
          static_cast<const char *>(data),
          static_cast<const char *>(data) + bytes);
      auto buf = ctx_->createUnboundBuffer(copy->data(), bytes);
      buf->send(peer, gloo::Slot::build(kP2PSlotPrefix, sendSeq_[peer]++));
      buffered_.push_back({Pending{std::move(buf), peer, true}, copy});
    });
  }

  void flushSends() override {
    std::deque<std::pair<Pending, std::shared_ptr<std::vector<char>>>> ops;
    ops.swap(buffered_);
    auto deadline = Clock::now() + deadline_;
    for (auto &op : ops)
      run("buffered send", op.first.peer,
          [&] { complete(op.first, deadline); });
  }

  void groupStart() override { ++groupDepth_; }

  void groupEnd() override {
    if (groupDepth_ == 0)
      throw CommError(prefix("groupEnd") + ": no matching groupStart");
    if (--groupDepth_ > 0)
      return;
    std::deque<Pending> ops;
    ops.swap(pending_);
    std::string selfError = matchSelf();
    if (!selfError.empty())
      throw CommError(prefix("groupEnd") + ": " + selfError);
    auto deadline = Clock::now() + deadline_;
    for (auto &op : ops)
      run(op.isSend ? "send (in group)" : "recv (in group)", op.peer,
          [&] { complete(op, deadline); });
  }

private:
  struct Pending {
    std::unique_ptr<gloo::transport::UnboundBuffer> buf;
    int peer;
    bool isSend;
  };
  struct SelfOp {
    void *ptr;
    size_t bytes;
  };

  std::string rankName(int q) const {
    return "rank " + std::to_string(q) + " (world " +
           std::to_string(members_[q]) + ")";
  }
  std::string prefix(const std::string &what) const {
    return "GlooCommunicator: " + what + " on " + rankName(r_) + " of group " +
           joinRanks(members_);
  }

  void checkPeer(int peer, const char *what) const {
    if (peer < 0 || peer >= n_)
      throw CommError(prefix(what) + ": peer " + std::to_string(peer) +
                      " outside a group of " + std::to_string(n_));
  }

  uint32_t nextTag() { return tag_++; }

  void glooAllReduce(void *data, size_t count, DType dtype, ReduceOp op) {
    ReduceOp wire = op == ReduceOp::Avg ? ReduceOp::Sum : op;
    gloo::AllreduceOptions o(ctx_);
    o.setTag(nextTag());
    o.setTimeout(deadline_);
    switch (dtype) {
    case DType::F32:
      o.setOutput(static_cast<float *>(data), count);
      break;
    case DType::I32:
      o.setOutput(static_cast<int32_t *>(data), count);
      break;
    case DType::I64:
      o.setOutput(static_cast<int64_t *>(data), count);
      break;
    default:
      throw CommError(prefix("allReduce") + ": unsupported element type");
    }
    size_t es = dtypeSize(dtype);
    o.setReduceFunction(
        [dtype, wire, es](void *c, const void *a, const void *b, size_t n) {
          // c = a op b; c may alias a or b (all ops are commutative).
          if (c == b) {
            comm::combineInto(dtype, wire, c, a, n);
            return;
          }
          if (c != a)
            std::memcpy(c, a, n * es);
          comm::combineInto(dtype, wire, c, b, n);
        });
    gloo::allreduce(o);
    if (op == ReduceOp::Avg)
      comm::divideBy(dtype, data, count, n_);
  }

  void alltoall(const void *send, void *recv, size_t chunkBytes) {
    gloo::AlltoallOptions o(ctx_);
    o.setTag(nextTag());
    o.setTimeout(deadline_);
    o.setInput<char>(const_cast<char *>(static_cast<const char *>(send)),
                     chunkBytes * n_);
    o.setOutput<char>(static_cast<char *>(recv), chunkBytes * n_);
    gloo::alltoall(o);
  }

  void complete(Pending &p, Clock::time_point deadline) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    left = std::max(left, milliseconds(1));
    bool ok = p.isSend ? p.buf->waitSend(left) : p.buf->waitRecv(left);
    if (!ok)
      throw CommError("the operation was aborted");
  }

  /// Send/recv to this rank itself: matched in order inside the process.
  void selfPost(bool isSend, void *ptr, size_t bytes) {
    (isSend ? selfSends_ : selfRecvs_).push_back({ptr, bytes});
    if (groupDepth_ > 0)
      return;
    std::string err = matchSelf();
    if (err.empty() && (!selfSends_.empty() || !selfRecvs_.empty())) {
      selfSends_.clear();
      selfRecvs_.clear();
      err = std::string("a ") + (isSend ? "send to" : "recv from") +
            " this rank outside groupStart/groupEnd can never complete";
    }
    if (!err.empty())
      throw CommError(prefix(isSend ? "send" : "recv") + ": " + err);
  }

  std::string matchSelf() {
    while (!selfSends_.empty() && !selfRecvs_.empty()) {
      SelfOp s = selfSends_.front(), r = selfRecvs_.front();
      selfSends_.pop_front();
      selfRecvs_.pop_front();
      if (s.bytes != r.bytes)
        return "size mismatch: send to self of " + std::to_string(s.bytes) +
               " bytes, recv of " + std::to_string(r.bytes) + " bytes";
      if (s.bytes)
        std::memmove(r.ptr, s.ptr, s.bytes);
    }
    if (groupDepth_ == 0 && (!selfSends_.empty() || !selfRecvs_.empty())) {
      selfSends_.clear();
      selfRecvs_.clear();
      return "unmatched send/recv to this rank itself";
    }
    return "";
  }

  /// Connects the group (the first call of any collective or send/recv):
  /// connecting on first use keeps communicator creation from blocking, so
  /// ranks may create their groups in any order.
  void connect() {
    if (ctx_ || n_ == 1)
      return;
    auto rctx = std::make_shared<gloo::rendezvous::Context>(r_, n_);
    rctx->setTimeout(deadline_);
    try {
      gloo::rendezvous::PrefixStore store(keyPrefix_, *store_);
      rctx->connectFullMesh(store, device_);
    } catch (const std::exception &e) {
      std::string missing;
      try {
        for (int q = 0; q < n_; ++q)
          if (q != r_ &&
              !storeHasKeys(*store_, {keyPrefix_ + "/" + std::to_string(q)},
                            grace_))
            missing += " " + rankName(q);
      } catch (const std::exception &storeError) {
        missing = " (unknown: " + cleanMessage(storeError.what()) + ")";
      }
      failure_ = "connecting: " + cleanMessage(e.what());
      throw CommError(
          "GlooCommunicator: connecting " + rankName(r_) + " of group " +
          joinRanks(members_) + " failed: " + cleanMessage(e.what()) +
          (missing.empty()
               ? ""
               : "; peers that never arrived within the deadline:" + missing));
    }
    ctx_ = rctx;
  }

  template <typename Fn> void run(const std::string &what, int peer, Fn fn) {
    if (!failure_.empty())
      throw CommError(prefix(what) +
                      ": the communicator failed earlier: " + failure_);
    connect();
    uint64_t k = ++opSeq_;
    try {
      fn();
      return;
    } catch (const CommError &e) {
      fail(what, k, peer, e.what());
    } catch (const gloo::Exception &e) {
      fail(what, k, peer, e.what());
    } catch (const gloo::EnforceNotMet &e) {
      fail(what, k, peer, e.what());
    }
  }

  /// Closes the connections (so that peers waiting on this rank fail
  /// promptly), trades failure reports with the peers through the store and
  /// throws a CommError that says who failed and who never reported.
  [[noreturn]] void fail(const std::string &what, uint64_t k, int peer,
                         const std::string &glooMessage) {
    std::string head = prefix(what + " #" + std::to_string(k));
    std::string cause = cleanMessage(glooMessage);
    if (peer >= 0 && what != "broadcast")
      cause = "peer " + rankName(peer) + ": " + cause;
    failure_ = what + " #" + std::to_string(k) + ": " + cause;
    if (ctx_) {
      try {
        ctx_->closeConnections();
      } catch (...) {
      }
    }

    std::string msg = head + ": " + cause;
    if (store_)
      msg += exchangeFailureReports(*store_, keyPrefix_, members_, r_,
                                    what + " #" + std::to_string(k), grace_);
    throw CommError(msg);
  }

  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> ctx_; ///< null until connect()
  const std::vector<int> members_;
  const int r_, n_;
  std::shared_ptr<RendezvousStore> store_;
  const std::string keyPrefix_;
  const milliseconds deadline_, grace_;
  uint32_t tag_ = 0;
  uint64_t opSeq_ = 0;
  std::vector<uint32_t> sendSeq_, recvSeq_;
  int groupDepth_ = 0;
  std::deque<Pending> pending_;
  /// Buffered sends in flight, each with the copy of its bytes.
  std::deque<std::pair<Pending, std::shared_ptr<std::vector<char>>>> buffered_;
  std::deque<SelfOp> selfSends_, selfRecvs_;
  std::string failure_;
};

/// Gloo writes to sockets without MSG_NOSIGNAL: a peer that died would
/// kill this process with SIGPIPE instead of failing the collective. Ignore
/// SIGPIPE unless the program installed its own handler.
void ignoreSigpipe() {
  struct sigaction current{};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 &&
      current.sa_handler == SIG_DFL)
    ::signal(SIGPIPE, SIG_IGN);
}

class GlooProvider final : public CommunicatorProvider {
public:
  explicit GlooProvider(const GlooOptions &options) : options_(options) {
    if (options_.size <= 0 || options_.rank < 0 ||
        options_.rank >= options_.size)
      throw CommError("GlooCommunicator: rank " +
                      std::to_string(options_.rank) + " outside a world of " +
                      std::to_string(options_.size));
    if (!options_.store)
      throw CommError("GlooCommunicator: no rendezvous store");
    if (options_.deadline.count() <= 0)
      throw CommError("GlooCommunicator: deadline must be positive");
    if (options_.size == 1)
      return; // no transport needed
    ignoreSigpipe();
    gloo::transport::tcp::attr attr;
    if (!options_.iface.empty())
      attr.iface = options_.iface;
    else if (!options_.hostname.empty())
      attr.hostname = options_.hostname;
    try {
      device_ = gloo::transport::tcp::CreateDevice(attr);
    } catch (const std::exception &e) {
      throw CommError("GlooCommunicator: cannot create the TCP transport on " +
                      (options_.iface.empty()
                           ? "host '" + options_.hostname + "'"
                           : "interface " + options_.iface) +
                      ": " + cleanMessage(e.what()));
    }
  }

  int worldRank() const override { return options_.rank; }
  int worldSize() const override { return options_.size; }

  std::unique_ptr<Communicator>
  group(const std::vector<int> &members) override {
    int groupRank =
        groupRankOf(members, options_.size, options_.rank, "GlooCommunicator");
    std::string key =
        options_.prefix + "/" + groupStoreKey(members, instances_[members]++);

    return std::make_unique<GlooCommunicator>(device_, members, groupRank,
                                              options_.store, key, options_);
  }

private:
  GlooOptions options_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::map<std::vector<int>, int> instances_;
};

bool isLoopback(const std::string &host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

} // namespace

std::unique_ptr<CommunicatorProvider>
loom::runtime::createGlooCommunicators(const GlooOptions &options) {
  return std::make_unique<GlooProvider>(options);
}

GlooOptions loom::runtime::glooOptionsFromLaunch(const LaunchInfo &launch,
                                                 milliseconds deadline) {
  GlooOptions o;
  o.rank = launch.rank;
  o.size = launch.worldSize;
  o.deadline = deadline;
  if (const char *iface = std::getenv("GLOO_SOCKET_IFNAME"))
    o.iface = iface;
  if (o.iface.empty() && isLoopback(launch.masterAddr))
    o.hostname = "127.0.0.1";
  // Jobs that reach the same store keep to their own keys.
  if (!launch.jobId.empty())
    o.prefix += "/" + launch.jobId;
  o.store = makeLaunchStore(launch, deadline);
  return o;
}

GlooOptions loom::runtime::glooOptionsFromEnvironment(milliseconds deadline) {
  return glooOptionsFromLaunch(detectLaunch(), deadline);
}
