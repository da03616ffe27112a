//===- NcclCommunicator.cpp - GPU ranks over NCCL (host side) -------------===//

#include "loom/runtime/comm/NcclCommunicator.h"

#include "CommCommon.h"

#include "loom/runtime/Backend.h"
#include "loom/runtime/BackendPlugin.h"
#include "loom/runtime/comm/LaunchEnv.h"

#include <gloo/rendezvous/store.h>

#include <cstring>
#include <map>

using namespace loom::runtime;
using namespace loom::runtime::comm;
using std::chrono::milliseconds;

namespace {

constexpr uint16_t kCopyOpcode = 2; // Opcode::Copy converts element types

int loomReduce(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum:
    return LOOM_REDUCE_SUM;
  case ReduceOp::Max:
    return LOOM_REDUCE_MAX;
  case ReduceOp::Min:
    return LOOM_REDUCE_MIN;
  case ReduceOp::Avg:
    return LOOM_REDUCE_AVG;
  }
  return LOOM_REDUCE_SUM;
}

class NcclCommunicator final : public Communicator {
public:
  NcclCommunicator(std::shared_ptr<Backend> backend,
                   const LoomBackendPlugin *table, std::vector<int> members,
                   int rank, std::shared_ptr<RendezvousStore> store,
                   std::string keyPrefix, const NcclOptions &options)
      : backend_(std::move(backend)), t_(table), members_(std::move(members)),
        r_(rank), n_(static_cast<int>(members_.size())),
        store_(std::move(store)), keyPrefix_(std::move(keyPrefix)),
        deadline_(options.deadline),
        grace_(std::min(options.reportGrace, options.deadline)) {}

  ~NcclCommunicator() override {
    for (const BufferedSend &b : buffered_)
      t_->deallocate(t_->self, b.data);
    if (comm_)
      t_->commDestroy(t_->self, comm_, /*abort=*/0);
    if (temp_)
      t_->deallocate(t_->self, temp_);
    if (stream_)
      t_->destroyStream(t_->self, stream_);
  }

  int rank() const override { return r_; }
  int size() const override { return n_; }

  void allReduce(void *data, size_t count, DType dtype, ReduceOp op) override {
    const char *what = "allReduce";
    begin(what);
    if (count == 0)
      return;
    int dt = static_cast<int>(dtype);
    if (dtype == DType::BF16 || dtype == DType::F16) {
      float *wide = static_cast<float *>(temp(count * sizeof(float), what));
      call(convert(data, dt, wide, LOOM_F32, count), what);
      call(t_->commAllReduce(t_->self, comm_, wide, wide, count, LOOM_F32,
                             loomReduce(op), stream_),
           what);
      call(convert(wide, LOOM_F32, data, dt, count), what);
    } else {
      call(t_->commAllReduce(t_->self, comm_, data, data, count, dt,
                             loomReduce(op), stream_),
           what);
    }
    wait(what);
  }

  void allGather(const void *send, void *recv, size_t count,
                 DType dtype) override {
    const char *what = "allGather";
    begin(what);
    if (count == 0)
      return;
    call(t_->commAllGather(t_->self, comm_, send, recv, count,
                           static_cast<int>(dtype), stream_),
         what);
    wait(what);
  }

  void reduceScatter(const void *send, void *recv, size_t count, DType dtype,
                     ReduceOp op) override {
    const char *what = "reduceScatter";
    begin(what);
    if (count == 0)
      return;
    int dt = static_cast<int>(dtype);
    if (dtype == DType::BF16 || dtype == DType::F16) {
      size_t total = count * n_;
      float *wide =
          static_cast<float *>(temp((total + count) * sizeof(float), what));
      call(convert(send, dt, wide, LOOM_F32, total), what);
      call(t_->commReduceScatter(t_->self, comm_, wide, wide + total, count,
                                 LOOM_F32, loomReduce(op), stream_),
           what);
      call(convert(wide + total, LOOM_F32, recv, dt, count), what);
    } else {
      call(t_->commReduceScatter(t_->self, comm_, send, recv, count, dt,
                                 loomReduce(op), stream_),
           what);
    }
    wait(what);
  }

  void allToAll(const void *send, void *recv, size_t count,
                DType dtype) override {
    const char *what = "allToAll";
    begin(what);
    size_t bytes = count * dtypeSize(dtype);
    if (bytes == 0)
      return;
    call(t_->commGroupStart(t_->self), what);
    for (int j = 0; j < n_; ++j) {
      call(t_->commSend(t_->self, comm_,
                        static_cast<const char *>(send) + j * bytes, bytes, j,
                        stream_),
           what);
      call(t_->commRecv(t_->self, comm_, static_cast<char *>(recv) + j * bytes,
                        bytes, j, stream_),
           what);
    }
    call(t_->commGroupEnd(t_->self), what);
    wait(what);
  }

  void broadcast(void *data, size_t count, DType dtype, int root) override {
    const char *what = "broadcast";
    if (root < 0 || root >= n_)
      throw CommError(prefix(what) + ": root " + std::to_string(root) +
                      " outside a group of " + std::to_string(n_));
    begin(what);
    if (count == 0)
      return;
    call(t_->commBroadcast(t_->self, comm_, data, count,
                           static_cast<int>(dtype), root, stream_),
         what);
    wait(what);
  }

  void barrier() override {
    const char *what = "barrier";
    begin(what);
    float *one = static_cast<float *>(temp(sizeof(float), what));
    call(t_->commAllReduce(t_->self, comm_, one, one, 1, LOOM_F32,
                           LOOM_REDUCE_SUM, stream_),
         what);
    wait(what);
  }

  void send(const void *data, size_t bytes, int peer) override {
    p2p(true, const_cast<void *>(data), bytes, peer);
  }
  void recv(void *data, size_t bytes, int peer) override {
    if (!buffered_.empty() && depth_ == 0) {
      // The sends this rank buffered go out with the receive in one NCCL
      // group (Megatron's batched isend/irecv): two stages that each send
      // before they receive never wait on each other.
      groupStart();
      postBuffered();
      p2p(false, data, bytes, peer);
      groupEnd();
      releaseBuffered();
      return;
    }
    p2p(false, data, bytes, peer);
  }

  /// A buffered send: the bytes are copied to a device buffer of its own
  /// and sent with this rank's next receive (in one group) or at
  /// flushSends(), so the rank goes on meanwhile.
  void sendBuffered(const void *data, size_t bytes, int peer) override {
    if (peer < 0 || peer >= n_)
      throw CommError(prefix("send") + ": peer " + std::to_string(peer) +
                      " outside a group of " + std::to_string(n_));
    begin("send", false);
    void *copy = nullptr;
    call(t_->allocate(t_->self, bytes ? bytes : 1, &copy), "send", peer);
    buffered_.push_back({copy, bytes, peer});
    call(t_->copyDeviceToDevice(t_->self, copy, data, bytes, stream_), "send",
         peer);
  }

  void flushSends() override {
    if (buffered_.empty())
      return;
    groupStart();
    postBuffered();
    groupEnd();
    releaseBuffered();
  }

  void groupStart() override {
    begin("groupStart", false);
    if (depth_++ == 0)
      call(t_->commGroupStart(t_->self), "groupStart");
  }

  void groupEnd() override {
    if (depth_ == 0)
      throw CommError(prefix("groupEnd") + ": no matching groupStart");
    begin("groupEnd", false);
    if (--depth_ > 0)
      return;
    call(t_->commGroupEnd(t_->self), "groupEnd");
    wait("groupEnd");
  }

private:
  struct BufferedSend {
    void *data;
    size_t bytes;
    int peer;
  };

  void postBuffered() {
    for (const BufferedSend &b : buffered_)
      p2p(true, b.data, b.bytes, b.peer);
  }

  /// After the group that sent them completed.
  void releaseBuffered() {
    for (const BufferedSend &b : buffered_)
      t_->deallocate(t_->self, b.data);
    buffered_.clear();
  }

  std::string prefix(const std::string &what) const {
    return "NcclCommunicator: " + what + " on rank " + std::to_string(r_) +
           " (world " + std::to_string(members_[r_]) + ") of group " +
           joinRanks(members_);
  }

  void begin(const char *what, bool collective = true) {
    if (collective && depth_ > 0)
      throw CommError(prefix(what) +
                      ": collectives inside groupStart/groupEnd are not "
                      "supported (only send/recv)");
    ++seq_;
    if (!failure_.empty())
      throw CommError(prefix(what) +
                      ": the communicator failed earlier: " + failure_);
    init();
  }

  /// Creates the NCCL communicator on first use (so that creating groups
  /// never blocks): group rank 0 publishes an ncclUniqueId in the store,
  /// the others wait for it, then everyone joins within the deadline.
  void init() {
    if (comm_)
      return;
    std::string where = prefix("connecting");
    auto failInit = [&](const std::string &cause) {
      failure_ = "connecting: " + cause;
      if (stream_) {
        t_->destroyStream(t_->self, stream_);
        stream_ = nullptr;
      }
      throw CommError(where + ": " + cause);
    };
    char id[LOOM_NCCL_UNIQUE_ID_BYTES] = {};
    if (r_ == 0) {
      if (t_->commUniqueId(t_->self, id) != LOOM_OK)
        failInit(t_->lastError(t_->self));
      if (n_ > 1)
        store_->set(keyPrefix_ + "/id", std::vector<char>(id, id + sizeof(id)));
    } else {
      try {
        store_->wait({keyPrefix_ + "/id"}, deadline_);
      } catch (const std::exception &e) {
        failInit("group rank 0 (world " + std::to_string(members_[0]) +
                 ") never published the NCCL id within the deadline (" +
                 cleanMessage(e.what()) + ")");
      }
      std::vector<char> v = store_->get(keyPrefix_ + "/id");
      if (v.size() != sizeof(id))
        failInit("malformed NCCL id in the store");
      std::memcpy(id, v.data(), sizeof(id));
    }
    if (t_->createStream(t_->self, LOOM_STREAM_COMM, &stream_) != LOOM_OK)
      failInit(t_->lastError(t_->self));
    LoomComm comm = nullptr;
    if (t_->commInit(t_->self, id, n_, r_, deadline_.count(), &comm) !=
        LOOM_OK) {
      std::string cause = t_->lastError(t_->self);
      if (store_)
        cause += exchangeFailureReports(*store_, keyPrefix_, members_, r_,
                                        "connecting", grace_);
      failInit(cause);
    }
    comm_ = comm;
  }

  void p2p(bool isSend, void *data, size_t bytes, int peer) {
    const char *what = isSend ? "send" : "recv";
    if (peer < 0 || peer >= n_)
      throw CommError(prefix(what) + ": peer " + std::to_string(peer) +
                      " outside a group of " + std::to_string(n_));
    begin(what, false);
    int rc = isSend ? t_->commSend(t_->self, comm_, data, bytes, peer, stream_)
                    : t_->commRecv(t_->self, comm_, data, bytes, peer, stream_);
    call(rc, what, peer);
    if (depth_ == 0)
      wait(what, peer);
  }

  int convert(const void *in, int inType, void *out, int outType,
              size_t count) {
    LoomTensor a{}, b{};
    a.data = const_cast<void *>(in);
    a.dtype = static_cast<uint8_t>(inType);
    a.rank = 1;
    a.shape[0] = static_cast<int64_t>(count);
    b = a;
    b.data = out;
    b.dtype = static_cast<uint8_t>(outType);
    LoomKernelCall c{};
    c.opcode = kCopyOpcode;
    c.numIn = 1;
    c.numOut = 1;
    c.in = &a;
    c.out = &b;
    return t_->run(t_->self, &c, stream_);
  }

  void *temp(size_t bytes, const char *what) {
    if (bytes > tempBytes_) {
      if (temp_)
        t_->deallocate(t_->self, temp_);
      temp_ = nullptr;
      tempBytes_ = 0;
      call(t_->allocate(t_->self, bytes, &temp_), what);
      tempBytes_ = bytes;
    }
    return temp_;
  }

  /// A failed enqueue: abort the communicator and report.
  void call(int rc, const char *what, int peer = -1) {
    if (rc == LOOM_OK)
      return;
    std::string cause = t_->lastError(t_->self);
    if (comm_) {
      t_->commDestroy(t_->self, comm_, /*abort=*/1);
      comm_ = nullptr;
    }
    fail(what, peer, cause);
  }

  /// Waits for the stream; on failure the plugin has aborted the
  /// communicator already.
  void wait(const char *what, int peer = -1) {
    int rc = t_->commWait(t_->self, comm_, stream_, deadline_.count());
    if (rc == LOOM_OK)
      return;
    comm_ = nullptr;
    fail(what, peer, t_->lastError(t_->self));
  }

  [[noreturn]] void fail(const char *what, int peer, const std::string &cause) {
    std::string op = std::string(what) + " #" + std::to_string(seq_);
    std::string msg = prefix(op) + ": ";
    if (peer >= 0)
      msg += "peer rank " + std::to_string(peer) + " (world " +
             std::to_string(members_[peer]) + "): ";
    msg += cause;
    failure_ = op + ": " + cause;
    if (store_)
      msg +=
          exchangeFailureReports(*store_, keyPrefix_, members_, r_, op, grace_);
    throw CommError(msg);
  }

  std::shared_ptr<Backend> backend_;
  const LoomBackendPlugin *t_;
  LoomComm comm_ = nullptr; ///< null until init(), or after a failure
  LoomStream stream_ = nullptr;
  const std::vector<int> members_;
  const int r_, n_;
  std::shared_ptr<RendezvousStore> store_;
  const std::string keyPrefix_;
  const milliseconds deadline_, grace_;
  void *temp_ = nullptr;
  size_t tempBytes_ = 0;
  int depth_ = 0;
  /// Buffered sends not yet posted (sendBuffered), each with its own copy.
  std::vector<BufferedSend> buffered_;
  uint64_t seq_ = 0;
  std::string failure_;
};

class NcclProvider final : public CommunicatorProvider {
public:
  NcclProvider(std::shared_ptr<Backend> backend, const NcclOptions &options)
      : backend_(std::move(backend)), options_(options) {
    if (!backend_ || !(t_ = backendPlugin(*backend_)))
      throw CommError("NcclCommunicator: the backend is not a device plugin "
                      "backend (use createBackend(\"cuda\"))");
    if (!t_->commInit)
      throw CommError(std::string("NcclCommunicator: the ") + t_->name +
                      " plugin was built without NCCL");
    if (options_.size <= 0 || options_.rank < 0 ||
        options_.rank >= options_.size)
      throw CommError("NcclCommunicator: rank " +
                      std::to_string(options_.rank) + " outside a world of " +
                      std::to_string(options_.size));
    if (!options_.store && options_.size > 1)
      throw CommError("NcclCommunicator: no rendezvous store");
  }

  int worldRank() const override { return options_.rank; }
  int worldSize() const override { return options_.size; }

  std::unique_ptr<Communicator>
  group(const std::vector<int> &members) override {
    int groupRank =
        groupRankOf(members, options_.size, options_.rank, "NcclCommunicator");
    std::string key =
        options_.prefix + "/" + groupStoreKey(members, instances_[members]++);
    return std::make_unique<NcclCommunicator>(backend_, t_, members, groupRank,
                                              options_.store, key, options_);
  }

private:
  std::shared_ptr<Backend> backend_;
  const LoomBackendPlugin *t_ = nullptr;
  NcclOptions options_;
  std::map<std::vector<int>, int> instances_;
};

} // namespace

std::unique_ptr<CommunicatorProvider>
loom::runtime::createNcclCommunicators(std::shared_ptr<Backend> cudaBackend,
                                       const NcclOptions &options) {
  return std::make_unique<NcclProvider>(std::move(cudaBackend), options);
}

NcclOptions loom::runtime::ncclOptionsFromEnvironment(milliseconds deadline) {
  LaunchInfo launch = detectLaunch();
  NcclOptions o;
  o.rank = launch.rank;
  o.size = launch.worldSize;
  o.deadline = deadline;
  if (!launch.jobId.empty())
    o.prefix += "/" + launch.jobId;
  o.store = makeLaunchStore(launch, deadline);
  return o;
}
