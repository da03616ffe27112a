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
#include <cstring>

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

namespace {

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

ReduceKind parseReduce(const std::string &s) {
  if (s == "max")
    return ReduceKind::Max;
  if (s == "min")
    return ReduceKind::Min;
  if (s == "mean")
    return ReduceKind::Mean;
  return ReduceKind::Sum;
}

ReduceOp toReduceOp(ReduceKind k) {
  switch (k) {
  case ReduceKind::Max:
    return ReduceOp::Max;
  case ReduceKind::Min:
    return ReduceOp::Min;
  case ReduceKind::Mean:
    return ReduceOp::Avg;
  default:
    return ReduceOp::Sum;
  }
}

/// Resolves the attributes of one instruction for a rank.
void resolveAttrs(const InstrInfo &I, const Program &P,
                  const std::vector<int64_t> &coords, OpCall &c) {
  OpAttrs &a = c.attrs;
  size_t rank0 = c.in.empty() ? 0 : static_cast<size_t>(c.in[0].rank);
  auto dimOf = [&](const char *name, int64_t dflt) {
    return static_cast<int64_t>(normalizeDim(I.getInt(name, dflt), rank0));
  };
  switch (I.op) {
  case Opcode::Fill:
    a.value = static_cast<float>(I.getFloat("value"));
    break;
  case Opcode::Scale:
    a.factor = static_cast<float>(I.getFloat("factor"));
    break;
  case Opcode::Gelu:
    a.geluTanh = I.getString("approximate", "none") == "tanh";
    break;
  case Opcode::RmsNorm:
  case Opcode::LayerNorm:
    a.epsilon = static_cast<float>(I.getFloat("epsilon"));
    break;
  case Opcode::Softmax:
    a.axis = dimOf("axis", -1);
    break;
  case Opcode::Rope:
    a.theta = I.getFloat("theta");
    if (const AttrValue *v = I.attr("position_offset"))
      a.positionOffset = v->resolve(P.mesh(), coords)[0];
    break;
  case Opcode::Attention:
    a.causal = I.getBool("causal");
    a.scale = static_cast<float>(I.getFloat(
        "scale", 1.0 / std::sqrt(static_cast<double>(c.in[0].shape[3]))));
    break;
  case Opcode::Matmul:
    a.transposeA = I.getBool("transpose_a");
    a.transposeB = I.getBool("transpose_b");
    break;
  case Opcode::GroupedMatmul:
    a.transposeB = I.getBool("transpose_w");
    break;
  case Opcode::Transpose:
    a.permutation = I.getInts("permutation");
    break;
  case Opcode::Slice:
    a.offsets = I.attr("offsets")->resolve(P.mesh(), coords);
    a.sizes = I.getInts("sizes");
    break;
  case Opcode::Concat:
    a.dim = dimOf("dim", 0);
    break;
  case Opcode::Broadcast:
    a.dims = I.getInts("dims");
    break;
  case Opcode::Reduce:
    a.reduce = parseReduce(I.getString("kind"));
    a.keepDims = I.getBool("keep_dims");
    for (int64_t d : I.getInts("dims"))
      a.dims.push_back(normalizeDim(d, rank0));
    std::sort(a.dims.begin(), a.dims.end());
    break;
  case Opcode::Router:
    a.topK = I.getInt("top_k");
    a.softmaxBeforeTopk = I.getBool("softmax_before_topk");
    a.normalize = I.getBool("normalize");
    break;
  case Opcode::Dispatch:
    a.numExperts = I.getInt("num_experts");
    a.capacity = I.getInt("capacity");
    break;
  case Opcode::Combine:
    a.capacity = I.getInt("capacity");
    break;
  case Opcode::AdamW:
    a.lr = static_cast<float>(I.getFloat("lr"));
    a.beta1 = static_cast<float>(I.getFloat("beta1"));
    a.beta2 = static_cast<float>(I.getFloat("beta2"));
    a.epsilon = static_cast<float>(I.getFloat("epsilon"));
    a.weightDecay = static_cast<float>(I.getFloat("weight_decay"));
    break;
  case Opcode::AllReduce:
    a.reduce = parseReduce(I.getString("reduction", "sum"));
    break;
  case Opcode::AllGather:
    a.dim = dimOf("gather_dim", 0);
    break;
  case Opcode::ReduceScatter:
    a.dim = dimOf("scatter_dim", 0);
    a.reduce = parseReduce(I.getString("reduction", "sum"));
    break;
  case Opcode::AllToAll:
    a.dim = dimOf("split_dim", 0);
    a.dim2 = dimOf("concat_dim", 0);
    break;
  case Opcode::CollectivePermute:
    a.shift = I.getInt("shift");
    break;
  case Opcode::Send:
  case Opcode::Recv:
    a.shift = I.getInt("peer_shift");
    break;
  case Opcode::EventRecord:
  case Opcode::EventWait:
    a.event = I.getInt("event");
    break;
  default:
    break;
  }
}

/// A transpose of [d0, d1, d2] -> [d1, d0, d2] between two pointers.
OpCall swap01(void *src, void *dst, DType dtype, int64_t d0, int64_t d1,
              int64_t d2) {
  OpCall c;
  c.op = Opcode::Transpose;
  c.in.push_back(makeRef(src, dtype, {d0, d1, d2}));
  c.out.push_back(makeRef(dst, dtype, {d1, d0, d2}));
  c.attrs.permutation = {1, 0, 2};
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
  rank_ = options_.rank;
  if (rank_ < 0 || rank_ >= P.mesh().size())
    throw ExecutionError("rank " + std::to_string(rank_) +
                         " is outside the program's mesh " + P.mesh().str() +
                         " of " + std::to_string(P.mesh().size()) + " ranks");
  coords_ = P.mesh().coords(rank_);
  if (options_.backendInstance)
    backend_ = options_.backendInstance;
  else
    backend_ = createBackend(options_.backend);

  inputSet_.assign(P.inputs().size(), false);
  arena_ = backend_->allocate(P.arenaSize());
  try {
    if (backend_->hostMemory()) {
      constants_ = const_cast<uint8_t *>(P.constants());
    } else if (P.constantsSize()) {
      constants_ = backend_->allocate(P.constantsSize());
      ownConstants_ = true;
      backend_->copyToDevice(constants_, P.constants(), P.constantsSize());
    }
    createCommunicators();
    prepare();
  } catch (...) {
    releaseResources();
    throw;
  }
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
    g.ranks = P.mesh().groupRanks(rank_, ci.axes);
    g.groupRank = P.mesh().groupRank(rank_, ci.axes);
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
  for (Step &s : steps_) {
    backend_->release(s.call);
    backend_->release(s.pack);
    backend_->release(s.unpack);
  }
  steps_.clear();
  if (scratch_)
    backend_->deallocate(scratch_);
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
    resolveAttrs(I, P, coords_, c);

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
    int64_t r = P.mesh().groupRank(rank_, ci.axes);
    s.comm = comms_[ci.id].get();
    s.reduceOp = toReduceOp(c.attrs.reduce);
    if (I.op == Opcode::Send || I.op == Opcode::Recv) {
      int64_t peer = r + c.attrs.shift;
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
      int64_t sh = ((c.attrs.shift % n) + n) % n;
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
      int64_t outer = prod(xs, 0, c.attrs.dim);
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
      int64_t outer = prod(xs, 0, c.attrs.dim);
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
      int64_t a = prod(xs, 0, c.attrs.dim);
      std::vector<int64_t> piece = xs;
      piece[c.attrs.dim] /= n;
      int64_t a2 = prod(piece, 0, c.attrs.dim2);
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

  // Scratch, then the pointers into it.
  scratchBytes_ = scratchNeed;
  scratch_ = backend_->allocate(std::max<size_t>(scratchNeed, 64));
  char *base = static_cast<char *>(scratch_);
  for (Step &s : steps_) {
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

void Executor::runCollective(Step &s) {
  const OpCall &c = s.call;
  Communicator *comm = s.comm;
  KernelContext ctx{scratch_, scratchBytes_, backend_.get()};
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
  bool inGroup = false;
  KernelContext ctx{scratch_, scratchBytes_, backend_.get()};
  uint64_t peak = executedPeak_;
  size_t i = 0;
  try {
    for (size_t n = steps_.size(); i < n; ++i) {
      Step &s = steps_[i];
      if (s.touchEnd > peak)
        peak = s.touchEnd;
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
        if (peer < 0)
          break;
        if (inGroup && std::find(grouped.begin(), grouped.end(), s.comm) ==
                           grouped.end()) {
          backend_->synchronize();
          s.comm->groupStart();
          grouped.push_back(s.comm);
        }
        if (s.kind == Step::Send)
          s.comm->send(s.call.in[0].data, s.call.in[0].bytes,
                       static_cast<int>(peer));
        else
          s.comm->recv(s.call.out[0].data, s.call.out[0].bytes,
                       static_cast<int>(peer));
        break;
      }
      case Step::EventRecord:
        backend_->recordEvent(s.call.attrs.event, s.call.stream);
        break;
      case Step::EventWait:
        backend_->waitEvent(s.call.attrs.event, s.call.stream);
        break;
      default:
        runCollective(s);
        break;
      }
      if (options_.trace)
        recordTrace(i, traceStart);
    }
    backend_->synchronize();
  } catch (const KernelError &e) {
    executedPeak_ = peak;
    failAt(i, e.what());
  } catch (const CommError &e) {
    executedPeak_ = peak;
    throw CommError(P.describe(i) + ": " + e.what());
  } catch (const ExecutionError &) {
    executedPeak_ = peak;
    throw;
  } catch (const std::exception &e) {
    executedPeak_ = peak;
    failAt(std::min(i, steps_.size() ? steps_.size() - 1 : 0), e.what());
  }
  executedPeak_ = peak;
}

} // namespace loom::runtime
