//===- Executor.cpp - Running a Loom program on one rank ------------------===//
//
// The constructor decodes every instruction once for this rank: buffer ids
// become pointers into the arena, attributes are resolved (rank-dependent
// terms included), the backend picks each kernel, and collectives get their
// communicator, peers and packing transposes. run() is then a tight loop over
// these steps.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Runtime.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace loom::runtime {

struct Executor::Step {
  enum Kind : uint8_t {
    Kernel,
    Nop,
    LocalCopy, ///< a collective over one rank: y = x
    AllReduce,
    AllGather,
    ReduceScatter,
    AllToAll,
    Permute,
    Send,
    Recv,
    GroupStart,
    GroupEnd,
    EventRecord,
    EventWait,
  };
  Kind kind = Nop;
  OpCall call;
  uint64_t touchEnd = 0;
  /// Runs on the communication thread (an asynchronous section of the
  /// comm stream, on a host-memory backend).
  bool onCommThread = false;

  // Collectives.
  Communicator *comm = nullptr;
  ReduceOp reduceOp = ReduceOp::Sum;
  int64_t peer = -1;     ///< send / permute destination; -1 = skip
  int64_t peerFrom = -1; ///< recv / permute source; -1 = skip
  size_t count = 0;      ///< elements per rank chunk
  bool hasPack = false, hasUnpack = false;
  OpCall pack, unpack; ///< transposes into / out of scratch
  size_t packOffset = 0, recvOffset = 0;
  bool sendFromScratch = false, recvToScratch = false;
  const void *sendPtr = nullptr;
  void *recvPtr = nullptr;
};

/// The communication thread: runs the comm stream's asynchronous
/// sections in order while the compute thread goes on. Events are signalled
/// per run (a generation), so an event recorded in an earlier run never
/// satisfies a wait of this one.
struct Executor::CommThread {
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<size_t> queue; ///< step indices, in program order
  bool busy = false;        ///< running a dequeued step
  bool stop = false;        ///< the executor is going away
  bool abort = false;       ///< the compute thread failed: drop the queue
  std::exception_ptr error; ///< the first failure of this run
  uint64_t generation = 0;  ///< the run
  std::unordered_map<int64_t, uint64_t> signaled; ///< event -> generation
  std::vector<TraceEvent> trace;
};

namespace {

/// A failure of the communication thread, already described (instruction
/// and location): run() rethrows it as it is.
struct CommThreadFailure {
  std::exception_ptr error;
};

TensorRef makeRef(void *data, DType dtype, const std::vector<int64_t> &shape) {
  TensorRef t;
  t.data = data;
  t.dtype = dtype;
  t.rank = static_cast<int>(shape.size());
  t.numel = 1;
  for (int i = 0; i < t.rank; ++i) {
    t.shape[i] = shape[i];
    t.numel *= shape[i];
  }
  t.bytes = static_cast<uint64_t>(t.numel) * dtypeSize(dtype);
  return t;
}

ReduceOp toReduceOp(int64_t reduction) {
  switch (static_cast<attr::CollectiveReduction>(reduction)) {
  case attr::CollectiveReduction::max:
    return ReduceOp::Max;
  case attr::CollectiveReduction::min:
    return ReduceOp::Min;
  case attr::CollectiveReduction::mean:
    return ReduceOp::Avg;
  default:
    return ReduceOp::Sum;
  }
}

/// Decodes one instruction's attributes for a rank by the op table: each at
/// its slot, rank-dependent terms resolved, defaults filled in, dimensions
/// normalized, string values as their index. The verifier has checked
/// every value.
void decodeAttrs(const InstrInfo &I, const Program &P,
                 const std::vector<std::vector<int64_t>> &coords, OpCall &c) {
  const OpSpec &spec = *findOpSpec(I.op);
  size_t rank0 = c.in.empty() ? 0 : static_cast<size_t>(c.in[0].rank);
  for (const AttrSpec &s : spec.attrs) {
    LoomAttrValue &v = c.attrs.values[s.slot];
    const AttrValue *a = I.attr(s.name);
    if (!a) {
      if (!s.hasDefault)
        continue;
      v.present = 1;
      v.i = s.defaultInt;
      v.f = s.defaultFloat;
    } else {
      v.present = 1;
      switch (s.kind) {
      case AttrKind::Int:
        v.i = a->resolve(P.meshes(), coords)[0];
        break;
      case AttrKind::Float:
        v.f = a->f;
        break;
      case AttrKind::Bool:
        v.i = a->i;
        break;
      case AttrKind::Ints: {
        std::vector<int64_t> ints = a->resolve(P.meshes(), coords);
        v.numInts = static_cast<int32_t>(ints.size());
        std::copy(ints.begin(), ints.end(), v.ints);
        break;
      }
      case AttrKind::String:
        v.i = std::find_if(s.values.begin(), s.values.end(),
                           [&](const char *x) { return a->s == x; }) -
              s.values.begin();
        break;
      }
    }
    if (s.isDim) {
      if (s.kind == AttrKind::Ints)
        for (int32_t k = 0; k < v.numInts; ++k)
          v.ints[k] = normalizeDim(v.ints[k], rank0);
      else
        v.i = normalizeDim(v.i, rank0);
    }
  }
}

/// A transpose of [d0, d1, d2] -> [d1, d0, d2] between two pointers.
OpCall swap01(void *src, void *dst, DType dtype, int64_t d0, int64_t d1,
              int64_t d2) {
  OpCall c;
  c.op = Opcode::Transpose;
  c.in.push_back(makeRef(src, dtype, {d0, d1, d2}));
  c.out.push_back(makeRef(dst, dtype, {d1, d0, d2}));
  LoomAttrValue &perm = c.attrs.values[attr::Transpose::permutation];
  perm.present = 1;
  perm.numInts = 3;
  perm.ints[0] = 1;
  perm.ints[1] = 0;
  perm.ints[2] = 2;
  return c;
}

int64_t prod(const std::vector<int64_t> &v, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i)
    p *= v[i];
  return p;
}

} // namespace

Executor::Executor(std::shared_ptr<const Program> program,
                   ExecutorOptions options)
    : program_(std::move(program)), options_(std::move(options)) {
  const Program &P = *program_;
  if (P.isPipeline())
    throw ExecutionError("program '" + P.name() +
                         "' is a pipeline program of " +
                         std::to_string(P.stages().size()) +
                         " stages: a rank runs its stage's program "
                         "(programForRank)");
  rank_ = options_.rank;
  if (rank_ < 0 || rank_ >= P.mesh().size())
    throw ExecutionError("rank " + std::to_string(rank_) +
                         " is outside the program's mesh " + P.mesh().str() +
                         " of " + std::to_string(P.mesh().size()) + " ranks");
  coords_ = P.mesh().coords(rank_);
  meshCoords_ = P.coords(rank_);
  if (options_.backendInstance)
    backend_ = options_.backendInstance;
  else
    backend_ = createBackend(options_.backend);

  // State bindings start as set: zero (zeroState) unless the host sets them.
  inputSet_.assign(P.inputs().size(), false);
  for (size_t i = 0; i < P.inputs().size(); ++i)
    inputSet_[i] = P.buffers()[P.inputs()[i].buffer].kind == BufferKind::State;
  arena_ = backend_->allocate(P.arenaSize());
  try {
    if (backend_->hostMemory()) {
      constants_ = const_cast<uint8_t *>(P.constants());
    } else if (P.constantsSize()) {
      constants_ = backend_->allocate(P.constantsSize());
      ownConstants_ = true;
      backend_->copyToDevice(constants_, P.constants(), P.constantsSize());
    }
    zeroState();
    createCommunicators();
    prepare();
    startCommThread();
  } catch (...) {
    releaseResources();
    throw;
  }
}

void Executor::zeroBytes(void *data, uint64_t bytes) {
  static const std::vector<uint8_t> zeros(size_t(1) << 20, 0);
  char *at = static_cast<char *>(data);
  for (uint64_t done = 0; done < bytes; done += zeros.size())
    backend_->copyToDevice(at + done, zeros.data(),
                           std::min<uint64_t>(zeros.size(), bytes - done));
}

void Executor::zeroState() {
  // State (optimizer moments) starts at zero unless the host sets it.
  char *base = static_cast<char *>(arena_);
  for (const BufferInfo &b : program_->buffers())
    if (b.kind == BufferKind::State)
      zeroBytes(base + b.offset, b.size);
}

void Executor::createCommunicators() {
  const Program &P = *program_;
  // Communicators for groups of more than one rank.
  comms_.resize(P.communicators().size());
  for (const CommInfo &ci : P.communicators()) {
    if (ci.size <= 1)
      continue;
    CommGroup g;
    g.id = ci.id;
    g.axes = ci.axisNames;
    const Mesh &mesh = P.meshes()[ci.mesh];
    g.mesh = mesh.name;
    g.ranks = mesh.groupRanks(rank_, ci.axes);
    g.groupRank = mesh.groupRank(rank_, ci.axes);
    g.worldRank = rank_;
    g.worldSize = P.mesh().size();
    for (size_t i = 0; i < g.axes.size(); ++i)
      g.key += (i ? "," : "") + g.axes[i];
    g.key += ":";
    for (size_t i = 0; i < g.ranks.size(); ++i)
      g.key += (i ? "," : "") + std::to_string(g.ranks[i]);
    if (!options_.communicators)
      throw ExecutionError("communicator " + std::to_string(ci.id) + " [" +
                           g.key + "] spans " + std::to_string(ci.size) +
                           " ranks, but no communicator factory was given");
    std::shared_ptr<Communicator> c = options_.communicators(g);
    if (!c)
      throw ExecutionError("the communicator factory returned no "
                           "communicator for group " +
                           g.key);
    if (c->size() != ci.size || c->rank() != g.groupRank)
      throw ExecutionError("the communicator for group " + g.key +
                           " has rank " + std::to_string(c->rank()) + " of " +
                           std::to_string(c->size()) + ", expected rank " +
                           std::to_string(g.groupRank) + " of " +
                           std::to_string(ci.size));
    comms_[ci.id] = std::move(c);
  }
}

Executor::~Executor() { releaseResources(); }

void Executor::releaseResources() {
  stopCommThread();
  for (Step &s : steps_) {
    backend_->release(s.call);
    backend_->release(s.pack);
    backend_->release(s.unpack);
  }
  steps_.clear();
  if (scratch_)
    backend_->deallocate(scratch_);
  if (commScratch_)
    backend_->deallocate(commScratch_);
  commScratch_ = nullptr;
  if (ownConstants_)
    backend_->deallocate(constants_);
  if (arena_)
    backend_->deallocate(arena_);
  scratch_ = constants_ = arena_ = nullptr;
  ownConstants_ = false;
}

void *Executor::bufferData(uint32_t id) const {
  const BufferInfo &b = program_->buffers()[id];
  char *base = static_cast<char *>(b.inArena() ? arena_ : constants_);
  return base ? base + b.offset : nullptr;
}

void Executor::failAt(size_t index, const std::string &msg) const {
  throw ExecutionError(program_->describe(index) + ": " + msg);
}

void Executor::prepare() {
  const Program &P = *program_;
  const auto &instrs = P.instructions();
  steps_.resize(instrs.size());
  size_t scratchNeed = 0;
  for (size_t i = 0; i < instrs.size(); ++i) {
    const InstrInfo &I = instrs[i];
    Step &s = steps_[i];
    OpCall &c = s.call;
    c.op = I.op;
    c.index = static_cast<uint32_t>(i);
    c.stream = I.stream;
    auto addRef = [&](uint32_t id, std::vector<TensorRef> &v) {
      const BufferInfo &b = P.buffers()[id];
      v.push_back(makeRef(bufferData(id), b.dtype, b.shape));
      if (b.inArena())
        s.touchEnd = std::max(s.touchEnd, b.offset + b.size);
    };
    for (uint32_t id : I.operands)
      addRef(id, c.in);
    for (uint32_t id : I.results)
      addRef(id, c.out);
    decodeAttrs(I, P, meshCoords_, c);

    if (!isCollective(I.op)) {
      switch (I.op) {
      case Opcode::GroupStart:
        s.kind = Step::GroupStart;
        break;
      case Opcode::GroupEnd:
        s.kind = Step::GroupEnd;
        break;
      case Opcode::EventRecord:
        s.kind = Step::EventRecord;
        break;
      case Opcode::EventWait:
        s.kind = Step::EventWait;
        break;
      default:
        try {
          backend_->prepare(c);
        } catch (const std::exception &e) {
          failAt(i, e.what());
        }
        s.kind = c.kernel ? Step::Kernel : Step::Nop;
        scratchNeed = std::max(scratchNeed, c.scratchBytes);
      }
      continue;
    }

    // Collectives.
    const CommInfo &ci = P.communicators()[I.communicator];
    int64_t n = ci.size;
    int64_t r = P.meshes()[ci.mesh].groupRank(rank_, ci.axes);
    s.comm = comms_[ci.id].get();
    if (I.op == Opcode::AllReduce)
      s.reduceOp = toReduceOp(attrOf(c, attr::AllReduce::reduction).i);
    if (I.op == Opcode::ReduceScatter)
      s.reduceOp = toReduceOp(attrOf(c, attr::ReduceScatter::reduction).i);
    if (I.op == Opcode::Send || I.op == Opcode::Recv) {
      static_assert(attr::Send::peer_shift == attr::Recv::peer_shift);
      int64_t peer = r + attrOf(c, attr::Send::peer_shift).i;
      bool valid = peer >= 0 && peer < n && peer != r;
      s.kind = I.op == Opcode::Send ? Step::Send : Step::Recv;
      (I.op == Opcode::Send ? s.peer : s.peerFrom) = valid ? peer : -1;
      continue;
    }
    const TensorRef &x = c.in[0], &y = c.out[0];
    if (n == 1 || x.numel == 0) {
      s.kind = n == 1 ? Step::LocalCopy : Step::Nop;
      continue;
    }
    std::vector<int64_t> xs(x.shape, x.shape + x.rank);
    size_t packBytes = 0;
    auto prepareCall = [&](OpCall &call) {
      try {
        backend_->prepare(call);
      } catch (const std::exception &e) {
        failAt(i, std::string("packing a collective: ") + e.what());
      }
    };
    switch (I.op) {
    case Opcode::AllReduce:
      s.kind = Step::AllReduce;
      s.count = y.numel;
      break;
    case Opcode::CollectivePermute: {
      int64_t shift = attrOf(c, attr::CollectivePermute::shift).i;
      int64_t sh = ((shift % n) + n) % n;
      if (sh == 0) {
        s.kind = Step::LocalCopy;
        break;
      }
      s.kind = Step::Permute;
      s.peer = (r + sh) % n;
      s.peerFrom = (r - sh + n) % n;
      break;
    }
    case Opcode::AllGather: {
      s.kind = Step::AllGather;
      s.count = x.numel;
      int64_t outer = prod(xs, 0, attrOf(c, attr::AllGather::gather_dim).i);
      s.sendPtr = x.data;
      s.recvPtr = y.data;
      if (outer > 1) {
        s.hasUnpack = true;
        s.recvToScratch = true;
        s.recvOffset = 0;
        packBytes = y.bytes;
        s.unpack = swap01(nullptr, y.data, y.dtype, n, outer, x.numel / outer);
      }
      break;
    }
    case Opcode::ReduceScatter: {
      s.kind = Step::ReduceScatter;
      s.count = y.numel;
      int64_t outer =
          prod(xs, 0, attrOf(c, attr::ReduceScatter::scatter_dim).i);
      s.sendPtr = x.data;
      s.recvPtr = y.data;
      if (outer > 1) {
        s.hasPack = true;
        s.sendFromScratch = true;
        s.packOffset = 0;
        packBytes = x.bytes;
        s.pack =
            swap01(x.data, nullptr, x.dtype, outer, n, x.numel / (outer * n));
      }
      break;
    }
    case Opcode::AllToAll: {
      s.kind = Step::AllToAll;
      s.count = x.numel / n;
      int64_t split = attrOf(c, attr::AllToAll::split_dim).i;
      int64_t concat = attrOf(c, attr::AllToAll::concat_dim).i;
      int64_t a = prod(xs, 0, split);
      std::vector<int64_t> piece = xs;
      piece[split] /= n;
      int64_t a2 = prod(piece, 0, concat);
      s.sendPtr = x.data;
      s.recvPtr = y.data;
      size_t off = 0;
      if (a > 1) {
        s.hasPack = true;
        s.sendFromScratch = true;
        s.packOffset = 0;
        off = (x.bytes + 63) / 64 * 64;
        s.pack = swap01(x.data, nullptr, x.dtype, a, n, x.numel / (a * n));
      }
      if (a2 > 1) {
        s.hasUnpack = true;
        s.recvToScratch = true;
        s.recvOffset = off;
        off += y.bytes;
        s.unpack = swap01(nullptr, y.data, y.dtype, n, a2, s.count / a2);
      }
      packBytes = off;
      break;
    }
    default:
      failAt(i, "unhandled collective");
    }
    if (s.hasPack)
      prepareCall(s.pack);
    if (s.hasUnpack)
      prepareCall(s.unpack);
    scratchNeed = std::max({scratchNeed, packBytes,
                            s.hasPack ? s.pack.scratchBytes : size_t(0),
                            s.hasUnpack ? s.unpack.scratchBytes : size_t(0)});
  }

  // Asynchronous sections of the comm stream: from an event_wait on it to
  // its next event_record. On a host-memory backend they run on the
  // communication thread; a device backend orders its streams by the
  // events themselves.
  bool open = false, anyAsync = false;
  for (size_t i = 0; i < instrs.size(); ++i) {
    const InstrInfo &I = instrs[i];
    if (I.stream != StreamKind::Comm)
      continue;
    if (I.op == Opcode::EventWait)
      open = true;
    steps_[i].onCommThread = open && backend_->hostMemory();
    anyAsync |= steps_[i].onCommThread;
    if (I.op == Opcode::EventRecord)
      open = false;
  }

  // Scratch, then the pointers into it (the communication thread packs in
  // scratch of its own).
  scratchBytes_ = scratchNeed;
  scratch_ = backend_->allocate(std::max<size_t>(scratchNeed, 64));
  if (anyAsync)
    commScratch_ = backend_->allocate(std::max<size_t>(scratchNeed, 64));
  for (Step &s : steps_) {
    char *base = static_cast<char *>(s.onCommThread ? commScratch_ : scratch_);
    if (s.sendFromScratch) {
      s.sendPtr = base + s.packOffset;
      s.pack.out[0].data = base + s.packOffset;
    }
    if (s.recvToScratch) {
      s.recvPtr = base + s.recvOffset;
      s.unpack.in[0].data = base + s.recvOffset;
    }
  }
}

void Executor::setInput(const std::string &name, const void *data,
                        size_t bytes) {
  const Program &P = *program_;
  for (size_t i = 0; i < P.inputs().size(); ++i) {
    if (P.inputs()[i].name != name)
      continue;
    const BufferInfo &b = P.buffers()[P.inputs()[i].buffer];
    if (bytes != b.size)
      throw ExecutionError("input '" + name + "' (" + b.typeStr() + ") needs " +
                           std::to_string(b.size) + " bytes, got " +
                           std::to_string(bytes));
    if (bytes)
      backend_->copyToDevice(bufferData(b.id), data, bytes);
    inputSet_[i] = true;
    executedPeak_ = std::max(executedPeak_, b.offset + b.size);
    return;
  }
  throw ExecutionError("program '" + P.name() + "' has no input named '" +
                       name + "'");
}

void Executor::setInput(const std::string &name, const HostTensor &t) {
  int64_t id = program_->findInput(name);
  if (id >= 0) {
    const BufferInfo &b = program_->buffers()[id];
    if (b.dtype != t.dtype || b.shape != t.shape)
      throw ExecutionError("input '" + name + "' is " + b.typeStr() + ", got " +
                           t.typeStr());
  }
  setInput(name, t.data(), t.byteSize());
}

void Executor::getOutput(const std::string &name, void *data,
                         size_t bytes) const {
  int64_t id = program_->findOutput(name);
  if (id < 0)
    throw ExecutionError("program '" + program_->name() +
                         "' has no output named '" + name + "'");
  const BufferInfo &b = program_->buffers()[id];
  if (bytes != b.size)
    throw ExecutionError("output '" + name + "' (" + b.typeStr() + ") has " +
                         std::to_string(b.size) + " bytes, asked for " +
                         std::to_string(bytes));
  backend_->synchronize();
  if (bytes)
    backend_->copyToHost(data, bufferData(b.id), bytes);
}

HostTensor Executor::getOutput(const std::string &name) const {
  int64_t id = program_->findOutput(name);
  if (id < 0)
    throw ExecutionError("program '" + program_->name() +
                         "' has no output named '" + name + "'");
  const BufferInfo &b = program_->buffers()[id];
  HostTensor t(b.dtype, b.shape);
  getOutput(name, t.data(), t.byteSize());
  return t;
}

HostTensor Executor::readBuffer(uint32_t id) const {
  if (id >= program_->buffers().size())
    throw ExecutionError("no buffer " + std::to_string(id));
  const BufferInfo &b = program_->buffers()[id];
  HostTensor t(b.dtype, b.shape);
  backend_->synchronize();
  if (b.size)
    backend_->copyToHost(t.data(), bufferData(id), b.size);
  return t;
}

void Executor::runCollective(Step &s, void *scratch) {
  const OpCall &c = s.call;
  Communicator *comm = s.comm;
  KernelContext ctx{scratch, scratchBytes_, backend_.get()};
  switch (s.kind) {
  case Step::LocalCopy:
    if (c.out[0].data != c.in[0].data && c.out[0].bytes)
      backend_->copyOnDevice(c.out[0].data, c.in[0].data, c.out[0].bytes);
    return;
  case Step::AllReduce:
    if (c.out[0].data != c.in[0].data)
      backend_->copyOnDevice(c.out[0].data, c.in[0].data, c.out[0].bytes);
    backend_->synchronize();
    comm->allReduce(c.out[0].data, s.count, c.out[0].dtype, s.reduceOp);
    return;
  case Step::AllGather:
    backend_->synchronize();
    comm->allGather(s.sendPtr, s.recvPtr, s.count, c.in[0].dtype);
    if (s.hasUnpack)
      s.unpack.kernel(s.unpack, ctx);
    return;
  case Step::ReduceScatter:
    if (s.hasPack)
      s.pack.kernel(s.pack, ctx);
    backend_->synchronize();
    comm->reduceScatter(s.sendPtr, s.recvPtr, s.count, c.in[0].dtype,
                        s.reduceOp);
    return;
  case Step::AllToAll:
    if (s.hasPack)
      s.pack.kernel(s.pack, ctx);
    backend_->synchronize();
    comm->allToAll(s.sendPtr, s.recvPtr, s.count, c.in[0].dtype);
    if (s.hasUnpack)
      s.unpack.kernel(s.unpack, ctx);
    return;
  case Step::Permute:
    backend_->synchronize();
    comm->groupStart();
    comm->send(c.in[0].data, c.in[0].bytes, static_cast<int>(s.peer));
    comm->recv(c.out[0].data, c.out[0].bytes, static_cast<int>(s.peerFrom));
    comm->groupEnd();
    return;
  default:
    return;
  }
}

void Executor::recordTrace(size_t index,
                           std::chrono::steady_clock::time_point start) {
  // The CPU backend runs in order, so the kernel is done when it returns;
  // steady_clock is system-wide, so ranks in other processes line up.
  auto end = std::chrono::steady_clock::now();
  auto us = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::micro>(t.time_since_epoch())
        .count();
  };
  TraceEvent event;
  event.instruction = static_cast<uint32_t>(index);
  event.stream = program_->instructions()[index].stream;
  event.startUs = us(start);
  event.durationUs = us(end) - event.startUs;
  traceEvents_.push_back(event);
}

void Executor::run() {
  const Program &P = *program_;
  for (size_t i = 0; i < inputSet_.size(); ++i)
    if (!inputSet_[i])
      throw ExecutionError("input '" + P.inputs()[i].name + "' of program '" +
                           P.name() + "' was never set before run()");
  std::vector<Communicator *> grouped; // communicators in the open group
  std::vector<Communicator *> flushed; // communicators with buffered sends
  bool inGroup = false;
  KernelContext ctx{scratch_, scratchBytes_, backend_.get()};
  uint64_t peak = executedPeak_;
  size_t i = 0;
  CommThread *ct = commThread_.get();
  if (ct) {
    std::lock_guard<std::mutex> lock(ct->mu);
    ++ct->generation;
    ct->error = nullptr;
    ct->abort = false;
    ct->trace.clear();
  }
  try {
    for (size_t n = steps_.size(); i < n; ++i) {
      Step &s = steps_[i];
      if (s.touchEnd > peak)
        peak = s.touchEnd;
      if (s.onCommThread) {
        {
          std::lock_guard<std::mutex> lock(ct->mu);
          ct->queue.push_back(i);
        }
        ct->cv.notify_all();
        continue;
      }
      // The comm stream outside its asynchronous sections runs here, in
      // order after what the communication thread has queued.
      if (ct && s.call.stream == StreamKind::Comm)
        drainCommThread();
      std::chrono::steady_clock::time_point traceStart;
      if (options_.trace)
        traceStart = std::chrono::steady_clock::now();
      switch (s.kind) {
      case Step::Kernel:
        s.call.kernel(s.call, ctx);
        break;
      case Step::Nop:
        break;
      case Step::GroupStart:
        inGroup = true;
        break;
      case Step::GroupEnd:
        for (Communicator *c : grouped)
          c->groupEnd();
        grouped.clear();
        inGroup = false;
        break;
      case Step::Send:
      case Step::Recv: {
        int64_t peer = s.kind == Step::Send ? s.peer : s.peerFrom;
        if (peer < 0) {
          // A rank without a peer (the ends of a pipeline) receives zeros.
          if (s.kind == Step::Recv)
            zeroBytes(s.call.out[0].data, s.call.out[0].bytes);
          break;
        }
        if (inGroup && std::find(grouped.begin(), grouped.end(), s.comm) ==
                           grouped.end()) {
          backend_->synchronize();
          s.comm->groupStart();
          grouped.push_back(s.comm);
        }
        if (s.kind == Step::Send && !inGroup) {
          // Buffered: the rank goes on (a pipeline stage with its next
          // microbatch); the end of the run waits for delivery.
          backend_->synchronize();
          s.comm->sendBuffered(s.call.in[0].data, s.call.in[0].bytes,
                               static_cast<int>(peer));
          if (std::find(flushed.begin(), flushed.end(), s.comm) ==
              flushed.end())
            flushed.push_back(s.comm);
        } else if (s.kind == Step::Send)
          s.comm->send(s.call.in[0].data, s.call.in[0].bytes,
                       static_cast<int>(peer));
        else
          s.comm->recv(s.call.out[0].data, s.call.out[0].bytes,
                       static_cast<int>(peer));
        break;
      }
      case Step::EventRecord: {
        int64_t event = attrOf(s.call, attr::EventRecord::event).i;
        if (!ct) {
          backend_->recordEvent(event, s.call.stream);
          break;
        }
        // The compute thread has done everything before this point.
        {
          std::lock_guard<std::mutex> lock(ct->mu);
          ct->signaled[event] = ct->generation;
        }
        ct->cv.notify_all();
        break;
      }
      case Step::EventWait: {
        int64_t event = attrOf(s.call, attr::EventWait::event).i;
        if (!ct) {
          backend_->waitEvent(event, s.call.stream);
          break;
        }
        std::unique_lock<std::mutex> lock(ct->mu);
        ct->cv.wait(lock, [&] {
          return ct->error || ct->signaled[event] == ct->generation;
        });
        if (ct->error) {
          lock.unlock();
          rethrowCommFailure();
        }
        break;
      }
      default:
        runCollective(s, scratch_);
        break;
      }
      if (options_.trace)
        recordTrace(i, traceStart);
    }
    if (ct) {
      drainCommThread();
      traceEvents_.insert(traceEvents_.end(), ct->trace.begin(),
                          ct->trace.end());
    }
    for (Communicator *c : flushed)
      c->flushSends();
    backend_->synchronize();
  } catch (const CommThreadFailure &f) {
    executedPeak_ = peak;
    abortCommThread();
    std::rethrow_exception(f.error);
  } catch (const KernelError &e) {
    abortCommThread();
    executedPeak_ = peak;
    failAt(i, e.what());
  } catch (const CommError &e) {
    executedPeak_ = peak;
    abortCommThread();
    throw CommError(P.describe(i) + ": " + e.what());
  } catch (const ExecutionError &) {
    executedPeak_ = peak;
    abortCommThread();
    throw;
  } catch (const std::exception &e) {
    executedPeak_ = peak;
    abortCommThread();
    failAt(std::min(i, steps_.size() ? steps_.size() - 1 : 0), e.what());
  }
  executedPeak_ = peak;
}

void Executor::startCommThread() {
  if (!commScratch_)
    return;
  commThread_ = std::make_unique<CommThread>();
  // Every event the program names has its slot before the thread starts
  // (the map is only read and written under the lock, never rehashed
  // while waited on).
  for (const Step &s : steps_)
    if (s.kind == Step::EventRecord || s.kind == Step::EventWait)
      commThread_->signaled[attrOf(s.call, attr::EventRecord::event).i] = 0;
  commThread_->thread = std::thread([this] { commThreadMain(); });
}

void Executor::stopCommThread() {
  if (!commThread_)
    return;
  {
    std::lock_guard<std::mutex> lock(commThread_->mu);
    commThread_->stop = true;
  }
  commThread_->cv.notify_all();
  if (commThread_->thread.joinable())
    commThread_->thread.join();
  commThread_.reset();
}

void Executor::commThreadMain() {
  CommThread &ct = *commThread_;
  std::unique_lock<std::mutex> lock(ct.mu);
  for (;;) {
    ct.cv.wait(lock, [&] { return ct.stop || !ct.queue.empty(); });
    if (ct.stop)
      return;
    size_t index = ct.queue.front();
    ct.queue.pop_front();
    // After a failure (its own or the compute thread's) the rest of the
    // run's queue is dropped.
    if (ct.abort || ct.error)
      continue;
    Step &s = steps_[index];
    if (s.kind == Step::EventWait) {
      int64_t event = attrOf(s.call, attr::EventWait::event).i;
      ct.busy = true;
      ct.cv.wait(lock, [&] {
        return ct.stop || ct.abort || ct.signaled[event] == ct.generation;
      });
      ct.busy = false;
      ct.cv.notify_all();
      continue;
    }
    if (s.kind == Step::EventRecord) {
      ct.signaled[attrOf(s.call, attr::EventRecord::event).i] = ct.generation;
      ct.cv.notify_all();
      continue;
    }
    ct.busy = true;
    lock.unlock();
    std::exception_ptr error;
    auto start = std::chrono::steady_clock::now();
    try {
      if (s.kind == Step::Kernel) {
        KernelContext ctx{commScratch_, scratchBytes_, backend_.get()};
        s.call.kernel(s.call, ctx);
      } else
        runCollective(s, commScratch_);
    } catch (const CommError &e) {
      error = std::make_exception_ptr(
          CommError(program_->describe(index) + ": " + e.what()));
    } catch (const std::exception &e) {
      error = std::make_exception_ptr(
          ExecutionError(program_->describe(index) + ": " + e.what()));
    } catch (...) {
      error = std::make_exception_ptr(ExecutionError(
          program_->describe(index) + ": an unknown failure on the "
                                      "communication thread"));
    }
    auto end = std::chrono::steady_clock::now();
    lock.lock();
    if (options_.trace) {
      auto us = [](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double, std::micro>(t.time_since_epoch())
            .count();
      };
      TraceEvent event;
      event.instruction = static_cast<uint32_t>(index);
      event.stream = StreamKind::Comm;
      event.startUs = us(start);
      event.durationUs = us(end) - event.startUs;
      ct.trace.push_back(event);
    }
    if (error && !ct.error)
      ct.error = error;
    ct.busy = false;
    ct.cv.notify_all();
  }
}

void Executor::drainCommThread() {
  CommThread &ct = *commThread_;
  std::unique_lock<std::mutex> lock(ct.mu);
  ct.cv.wait(lock, [&] { return ct.error || (ct.queue.empty() && !ct.busy); });
  if (ct.error) {
    lock.unlock();
    rethrowCommFailure();
  }
}

void Executor::abortCommThread() noexcept {
  if (!commThread_)
    return;
  CommThread &ct = *commThread_;
  std::unique_lock<std::mutex> lock(ct.mu);
  ct.abort = true;
  ct.queue.clear();
  ct.cv.notify_all();
  // What it is running ends by itself (a collective fails by its deadline
  // at the latest); nothing may touch the arena once run() has returned.
  ct.cv.wait(lock, [&] { return !ct.busy; });
}

void Executor::rethrowCommFailure() {
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(commThread_->mu);
    error = commThread_->error;
  }
  throw CommThreadFailure{error};
}

} // namespace loom::runtime
