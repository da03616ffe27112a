//===- SplitPipeline.cpp - One program per pipeline rank ------------------===//
//
// The partitioned training step holds every microbatch's forward and
// backward unrolled, each op tagged with its layer, phase and microbatch
// (-loom-autodiff). Pipeline parallelism is a reordering of those ops over
// the pipeline ranks:
//
//   1. every op gets a home: the ranks it runs on and its slot there, a
//      compute action of the schedule (F, B or W of a stage and a
//      microbatch) or the step's tail (gradient norm, optimizer);
//   2. each rank's ops are sorted by (slot's place in the rank's action
//      list, original order);
//   3. every value read on a rank it was not made on becomes a message:
//      a send right after it is made, a receive before its first use;
//   4. each rank's ops are cloned, with its sends and receives, into a
//      function of its own.
//
// Sends are buffered (the runtime copies the bytes and goes on), so a
// rank never waits on a send; it waits on a receive only for a value its
// peer makes without waiting on this rank's later work, since every rank
// runs its ops in an order consistent with the schedule, which the
// schedule validator has checked for deadlocks, and with the step's
// dataflow. Point-to-point messages between two ranks pair in order, so a
// receive is moved up where needed to keep the order of its peer's sends.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Dialect/Loom/IR/OpCost.h"
#include "loom/Pipelining/Passes.h"
#include "loom/Plan/PlanLayout.h"
#include "loom/Schedule/Schedule.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"

#include <limits>
#include <map>
#include <set>
#include <tuple>

namespace loom {
#define GEN_PASS_DEF_LOOMSPLITPIPELINEPASS
#include "loom/Pipelining/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;
namespace sched = loom::schedule;

namespace {

/// Where an op runs.
struct Home {
  enum Kind { Free, Action, Tail, Unresolved } kind = Unresolved;
  /// Pipeline ranks it runs on, ascending (one, or more for the update of a
  /// parameter used on several ranks). Empty for Free ops: they run where
  /// they are used.
  SmallVector<int, 2> ranks;
  /// For actions: the global stage, the action's kind and microbatch.
  int stage = -1;
  sched::ActionKind action = sched::ActionKind::F;
  int microbatch = 0;
};

/// A value made on rank `from` and read on rank `to`.
struct Message {
  Value value;
  int from = 0, to = 0;
  /// Positions in the ranks' op lists: sent after op `sendAfter` of `from`;
  /// received before op `recvBefore` of `to` (the list's size: before the
  /// return).
  size_t sendAfter = 0, recvBefore = 0;
  unsigned id = 0;
};

class PipelineSplitter {
public:
  PipelineSplitter(ModuleOp module, func::FuncOp step, MeshOp mesh,
                   sched::Schedule schedule, SmallVector<int64_t> stageOfLayer,
                   bool report)
      : module(module), step(step), mesh(mesh), schedule(std::move(schedule)),
        stageOfLayer(std::move(stageOfLayer)), P(this->schedule.pp),
        report(report) {}

  LogicalResult run();

private:
  bool isFree(Value v) const {
    if (isa<BlockArgument>(v))
      return true;
    auto it = homes.find(v.getDefiningOp());
    return it != homes.end() && it->second.kind == Home::Free;
  }
  int rankOfStage(int stage) const { return stage % P; }
  LogicalResult assignHomes();
  /// A gradient of a parameter read on several ranks: each rank's terms
  /// summed there first, so one partial sum per rank crosses.
  void sumSharedGradientsPerRank();
  void resolveFromUsers();
  SmallVector<int, 2> ranksUsing(Value param);
  LogicalResult orderRanks();
  void planMessages();
  LogicalResult buildFunctions();
  /// Remarks per pipeline rank: microbatches in flight and stash bytes, as
  /// the compiled order keeps them, next to the schedule's bound.
  void reportStash();
  /// The position of (kind, stage, microbatch) in rank r's compute actions.
  std::optional<size_t> actionIndex(int rank, const Home &home) const;
  /// Whether action home `a` runs after action home `b` on `rank`; an
  /// action not on the rank's list never does.
  bool runsAfter(int rank, const Home &a, const Home &b) const {
    std::optional<size_t> x = actionIndex(rank, a), y = actionIndex(rank, b);
    return a.kind == Home::Action && x && (!y || *x > *y);
  }

  ModuleOp module;
  func::FuncOp step;
  MeshOp mesh;
  sched::Schedule schedule;
  SmallVector<int64_t> stageOfLayer;
  const int P;
  const bool report;

  DenseMap<Operation *, Home> homes;
  /// Per rank: (kind, stage, microbatch) -> place among its compute
  /// actions (filled on first use).
  mutable std::vector<std::map<std::tuple<int, int, int>, size_t>>
      actionIndices;
  DenseMap<Operation *, unsigned> order;
  /// Per rank: its ops in execution order, and each op's position.
  std::vector<std::vector<Operation *>> rankOps;
  std::vector<DenseMap<Operation *, size_t>> rankPos;
  std::vector<Message> messages;
  /// Results every rank returns (the loss and the gradient norm).
  llvm::DenseSet<unsigned> everywhereResults;
};

std::optional<size_t> PipelineSplitter::actionIndex(int rank,
                                                    const Home &home) const {
  if (actionIndices.empty()) {
    actionIndices.resize(P);
    for (int r = 0; r < P; ++r) {
      size_t index = 0;
      for (const sched::Action &a : schedule.ranks[r])
        if (sched::isCompute(a.kind))
          actionIndices[r][{static_cast<int>(a.kind), a.stage, a.microbatch}] =
              index++;
    }
  }
  auto it = actionIndices[rank].find(
      {static_cast<int>(home.action), home.stage, home.microbatch});
  if (it == actionIndices[rank].end())
    return std::nullopt;
  return it->second;
}

SmallVector<int, 2> PipelineSplitter::ranksUsing(Value param) {
  std::set<int> ranks;
  SmallVector<Value> worklist{param};
  llvm::DenseSet<Value> seen;
  while (!worklist.empty()) {
    Value v = worklist.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    for (Operation *user : v.getUsers()) {
      if (isa<AdamWOp>(user))
        continue;
      auto it = homes.find(user);
      if (it == homes.end())
        continue;
      // A view is used where its users are; an op not placed yet (the
      // embedding, which reads only arguments) goes with its users.
      if (it->second.kind == Home::Free ||
          it->second.kind == Home::Unresolved) {
        for (Value r : user->getResults())
          worklist.push_back(r);
        continue;
      }
      ranks.insert(it->second.ranks.begin(), it->second.ranks.end());
    }
  }
  return SmallVector<int, 2>(ranks.begin(), ranks.end());
}

LogicalResult PipelineSplitter::assignHomes() {
  bool splits = schedule.splitsBackward();
  unsigned index = 0;
  for (Operation &op : step.getBody().front().without_terminator()) {
    order[&op] = index++;
    Home home;
    // Constants, and views and casts of arguments (a microbatch's rows of
    // the tokens, a parameter's low-precision copy), are repeated where
    // used; any other op computes on some stage.
    bool operandsFree =
        llvm::all_of(op.getOperands(), [&](Value v) { return isFree(v); });
    bool viewOrConstant =
        op.getNumOperands() == 0 ||
        isa<ReshapeOp, SliceOp, ConvertOp, BroadcastOp, TransposeOp>(op);
    if (operandsFree && viewOrConstant && isMemoryEffectFree(&op) &&
        op.getNumRegions() == 0 && !op.hasAttr("mesh")) {
      home.kind = Home::Free;
      homes[&op] = home;
      continue;
    }
    // The homes of the operands made by ops of some rank.
    // (Copies: `homes` grows below, which moves its entries.)
    SmallVector<Home> stagedHomes;
    for (Value v : op.getOperands())
      if (!isFree(v)) {
        const Home &h = homes[v.getDefiningOp()];
        if (h.kind != Home::Unresolved)
          stagedHomes.push_back(h);
      }
    SmallVector<const Home *> staged;
    for (const Home &h : stagedHomes)
      staged.push_back(&h);
    auto phase = op.getAttrOfType<PhaseAttr>(LoomDialect::kPhaseAttrName);
    if (phase && !isa<AdamWOp>(op)) {
      home.kind = Home::Action;
      bool forward = phase.getValue() == Phase::fwd;
      home.action = forward ? sched::ActionKind::F
                    : phase.getValue() == Phase::bwd_weight && splits
                        ? sched::ActionKind::W
                        : sched::ActionKind::B;
      if (auto mb =
              op.getAttrOfType<IntegerAttr>(LoomDialect::kMicrobatchAttrName))
        home.microbatch = mb.getInt();
      if (auto layer =
              op.getAttrOfType<IntegerAttr>(LoomDialect::kLayerAttrName)) {
        int64_t l = layer.getInt();
        if (l < 0 || l >= static_cast<int64_t>(stageOfLayer.size()))
          return op.emitError("layer ") << l << " outside the model's "
                                        << stageOfLayer.size() << " layers";
        home.stage = stageOfLayer[l];
      } else {
        // The embedding joins the first stage and the head the last
        // through the dataflow: a forward op follows its latest operand, a
        // backward op its earliest (its cotangent flows towards stage 0).
        for (const Home *h : staged) {
          int s = h->kind == Home::Action ? h->stage : P * schedule.vpp - 1;
          if (home.stage < 0)
            home.stage = s;
          else
            home.stage =
                forward ? std::max(home.stage, s) : std::min(home.stage, s);
        }
        if (home.stage < 0) {
          home.kind = Home::Unresolved;
          homes[&op] = home;
          continue;
        }
      }
      home.ranks = {rankOfStage(home.stage)};
      // An op that reads a value of a later action on its rank moves to
      // that action: a gradient's sum over microbatches adds microbatch k
      // to the sum of those before it, and a schedule may run k's backward
      // first.
      if (actionIndex(home.ranks.front(), home))
        for (const Home *h : staged)
          if (h->ranks == home.ranks && runsAfter(home.ranks.front(), *h, home))
            home = *h;
      homes[&op] = home;
      continue;
    }
    if (isa<AdamWOp>(op)) {
      // The update runs on every rank that uses the parameter, so that a
      // parameter shared by two stages (tied embeddings) stays one value.
      home.kind = Home::Tail;
      // The parameter, through the views of it the update reads (ZeRO's
      // shard of it).
      Value param = op.getOperand(0);
      while (Operation *def = param.getDefiningOp()) {
        if (!isFree(param) || def->getNumOperands() == 0)
          break;
        param = def->getOperand(0);
      }
      home.ranks = ranksUsing(param);
      if (home.ranks.empty())
        home.ranks = {0};
      homes[&op] = home;
      continue;
    }
    if (staged.empty()) {
      homes[&op] = home; // Unresolved: placed with its first user.
      continue;
    }
    // Untagged ops the partitioner added inside an action (a gradient's
    // reduction after its last microbatch, a resharding) stay in it when
    // all their operands come from actions of one stage; the rest is tail.
    bool oneStage = llvm::all_of(staged, [&](const Home *h) {
      return h->kind == Home::Action && h->stage == staged.front()->stage;
    });
    if (oneStage) {
      const Home *latest = staged.front();
      for (const Home *h : staged)
        if (runsAfter(latest->ranks.front(), *h, *latest))
          latest = h;
      homes[&op] = *latest;
      continue;
    }
    home.kind = Home::Tail;
    bool sameReplicas = llvm::all_of(staged, [&](const Home *h) {
      return h->kind == Home::Tail && h->ranks == staged.front()->ranks;
    });
    if (sameReplicas) {
      home.ranks = staged.front()->ranks;
    } else {
      int stage = -1;
      for (const Home *h : staged)
        stage = std::max(stage, h->kind == Home::Action
                                    ? h->stage
                                    : static_cast<int>(h->ranks.back()));
      home.ranks = {rankOfStage(stage)};
    }
    homes[&op] = home;
  }
  resolveFromUsers();
  return success();
}

void PipelineSplitter::resolveFromUsers() {
  Block &body = step.getBody().front();
  for (Operation &op : llvm::reverse(body.without_terminator())) {
    Home &home = homes[&op];
    if (home.kind != Home::Unresolved)
      continue;
    const Home *first = nullptr;
    unsigned firstOrder = ~0u;
    for (Operation *user : op.getUsers()) {
      auto it = homes.find(user);
      if (it == homes.end() || it->second.kind == Home::Unresolved ||
          it->second.kind == Home::Free)
        continue;
      if (order[user] < firstOrder) {
        firstOrder = order[user];
        first = &it->second;
      }
    }
    if (first) {
      home = *first;
    } else {
      home.kind = Home::Tail;
      home.ranks = {P - 1};
    }
  }
}

LogicalResult PipelineSplitter::orderRanks() {
  rankOps.assign(P, {});
  rankPos.clear();
  rankPos.resize(P);
  std::vector<std::vector<std::pair<uint64_t, Operation *>>> keyed(P);
  for (Operation &op : step.getBody().front().without_terminator()) {
    const Home &home = homes[&op];
    if (home.kind == Home::Free)
      continue;
    for (int rank : home.ranks) {
      uint64_t slot = ~0u;
      if (home.kind == Home::Action) {
        std::optional<size_t> index = actionIndex(rank, home);
        if (!index)
          return op.emitError("the pipeline schedule '")
                 << schedule.name << "' has no "
                 << sched::Action{home.action, home.stage, home.microbatch}
                        .str()
                 << " on rank " << rank << " for this op";
        slot = *index;
      }
      keyed[rank].push_back({(slot << 32) | order[&op], &op});
    }
  }
  for (int r = 0; r < P; ++r) {
    llvm::stable_sort(keyed[r], llvm::less_first());
    for (auto &[key, op] : keyed[r]) {
      rankPos[r][op] = rankOps[r].size();
      rankOps[r].push_back(op);
    }
  }
  return success();
}

void PipelineSplitter::planMessages() {
  auto returnOp = cast<func::ReturnOp>(step.getBody().front().getTerminator());
  for (auto [i, v] : llvm::enumerate(returnOp.getOperands())) {
    auto name =
        step.getResultAttrOfType<StringAttr>(i, LoomDialect::kOutputAttrName);
    if (name && (name.getValue() == "loss" || name.getValue() == "grad_norm"))
      everywhereResults.insert(i);
  }
  // (value, receiving rank) -> message.
  std::map<std::pair<void *, int>, size_t> byUse;
  auto need = [&](Value v, int to, size_t position) {
    if (isFree(v))
      return;
    Operation *def = v.getDefiningOp();
    const Home &home = homes[def];
    if (llvm::is_contained(home.ranks, to))
      return;
    auto [it, inserted] =
        byUse.try_emplace({v.getAsOpaquePointer(), to}, messages.size());
    if (!inserted)
      return;
    Message m;
    m.value = v;
    m.from = home.ranks.front();
    m.to = to;
    m.sendAfter = rankPos[m.from][def];
    m.recvBefore = position;
    m.id = messages.size();
    messages.push_back(m);
  };
  for (int r = 0; r < P; ++r) {
    for (auto [pos, op] : llvm::enumerate(rankOps[r]))
      for (Value v : op->getOperands())
        need(v, r, pos);
    for (auto [i, v] : llvm::enumerate(returnOp.getOperands()))
      if (everywhereResults.contains(i))
        need(v, r, rankOps[r].size());
  }
  // Receives from one peer in the order of its sends: walking a channel's
  // messages from the last sent, each is received no later than the next.
  std::map<std::pair<int, int>, std::vector<Message *>> channels;
  for (Message &m : messages)
    channels[{m.from, m.to}].push_back(&m);
  for (auto &[key, list] : channels) {
    llvm::stable_sort(list, [](const Message *a, const Message *b) {
      return std::tie(a->sendAfter, a->id) < std::tie(b->sendAfter, b->id);
    });
    for (size_t i = list.size(); i-- > 1;)
      list[i - 1]->recvBefore =
          std::min(list[i - 1]->recvBefore, list[i]->recvBefore);
  }
}

LogicalResult PipelineSplitter::buildFunctions() {
  OpBuilder b(module.getContext());
  b.setInsertionPoint(step);
  Location loc = step.getLoc();
  auto meshRef = FlatSymbolRefAttr::get(mesh.getSymNameAttr());
  ArrayAttr ppAxes = b.getStrArrayAttr({"pp"});
  auto returnOp = cast<func::ReturnOp>(step.getBody().front().getTerminator());

  // Per rank: messages to receive before each position and to send after
  // each position, in channel order.
  for (int r = 0; r < P; ++r) {
    std::map<size_t, std::vector<const Message *>> recvAt, sendAfter;
    for (const Message &m : messages) {
      if (m.to == r)
        recvAt[m.recvBefore].push_back(&m);
      if (m.from == r)
        sendAfter[m.sendAfter].push_back(&m);
    }
    for (auto *lists : {&recvAt, &sendAfter})
      for (auto &[pos, list] : *lists)
        llvm::stable_sort(list, [](const Message *a, const Message *b) {
          return std::tie(a->sendAfter, a->id) < std::tie(b->sendAfter, b->id);
        });

    auto func = func::FuncOp::create(
        b, loc, (step.getSymName() + "_pp" + Twine(r)).str(),
        step.getFunctionType());
    // Argument attributes are copied; result attributes once the results
    // are known.
    for (unsigned i = 0; i < step.getNumArguments(); ++i)
      func.setArgAttrs(i, step.getArgAttrDict(i));
    Block *body = func.addEntryBlock();
    OpBuilder fb = OpBuilder::atBlockEnd(body);
    IRMapping map;
    for (auto [from, to] : llvm::zip(step.getArguments(), body->getArguments()))
      map.map(from, to);

    // Ops that read only arguments are cloned where first needed.
    std::function<Value(Value)> local = [&](Value v) -> Value {
      if (Value mapped = map.lookupOrNull(v))
        return mapped;
      Operation *def = v.getDefiningOp();
      for (Value operand : def->getOperands())
        local(operand);
      fb.clone(*def, map);
      return map.lookup(v);
    };
    auto receive = [&](size_t pos) {
      for (const Message *m : recvAt[pos]) {
        auto recv =
            RecvOp::create(fb, m->value.getLoc(), m->value.getType(), meshRef,
                           ppAxes, fb.getI64IntegerAttr(m->from - m->to));
        recv->setAttr(LoomDialect::kActionAttrName, fb.getStringAttr("recv"));
        map.map(m->value, recv.getResult());
      }
    };
    for (auto [pos, op] : llvm::enumerate(rankOps[r])) {
      receive(pos);
      for (Value operand : op->getOperands())
        if (!map.contains(operand)) {
          if (!isFree(operand))
            return op->emitError("loom-split-pipeline: internal error: an "
                                 "operand is not ready on pipeline rank ")
                   << r;
          local(operand);
        }
      Operation *copy = fb.clone(*op, map);
      const Home &home = homes[op];
      copy->setAttr(
          LoomDialect::kActionAttrName,
          fb.getStringAttr(
              home.kind == Home::Action
                  ? sched::Action{home.action, home.stage, home.microbatch}
                        .str()
                  : std::string("optimizer")));
      for (const Message *m : sendAfter[pos]) {
        if (!map.contains(m->value))
          return m->value.getDefiningOp()->emitError(
                     "loom-split-pipeline: internal error: a value sent from "
                     "pipeline rank ")
                 << r << " is not made there before position " << pos;
        auto send =
            SendOp::create(fb, m->value.getLoc(), map.lookup(m->value), meshRef,
                           ppAxes, fb.getI64IntegerAttr(m->to - m->from));
        send->setAttr(LoomDialect::kActionAttrName, fb.getStringAttr("send"));
      }
    }
    receive(rankOps[r].size());

    // Results: what lives on this rank, and the loss and gradient norm.
    SmallVector<Value> results;
    SmallVector<DictionaryAttr> resultAttrs;
    for (auto [i, v] : llvm::enumerate(returnOp.getOperands())) {
      Value mapped = map.lookupOrNull(v);
      if (!mapped && isFree(v))
        mapped = local(v);
      if (!mapped)
        continue;
      results.push_back(mapped);
      resultAttrs.push_back(step.getResultAttrDict(i));
    }
    func::ReturnOp::create(fb, loc, results);
    func.setType(FunctionType::get(module.getContext(),
                                   body->getArgumentTypes(),
                                   ValueRange(results).getTypes()));
    for (auto [i, attrs] : llvm::enumerate(resultAttrs))
      if (attrs)
        func.setResultAttrs(i, attrs);
    // Arguments this rank never reads go.
    llvm::BitVector unused(body->getNumArguments());
    for (BlockArgument arg : body->getArguments())
      if (arg.use_empty())
        unused.set(arg.getArgNumber());
    if (failed(func.eraseArguments(unused)))
      return func.emitError("cannot drop unused arguments");
  }
  return success();
}

void PipelineSplitter::reportStash() {
  bool splits = schedule.splitsBackward();
  auto isBackward = [](const Home &h) {
    return h.kind == Home::Action && h.action != sched::ActionKind::F;
  };
  for (int r = 0; r < P; ++r) {
    // A stash interval: from where a value of F(s, m) is made (or
    // received) to its last use by a backward action of this rank.
    struct Interval {
      size_t start, end;
      std::pair<int, int> key;
      int64_t bytes;
    };
    std::vector<Interval> intervals;
    auto lastBackwardUse =
        [&](Value v) -> std::optional<std::pair<size_t, int>> {
      std::optional<std::pair<size_t, int>> last;
      for (Operation *user : v.getUsers()) {
        auto pos = rankPos[r].find(user);
        if (pos == rankPos[r].end() || !isBackward(homes[user]))
          continue;
        if (!last || pos->second > last->first)
          last = std::make_pair(pos->second, homes[user].stage);
      }
      return last;
    };
    for (auto [pos, op] : llvm::enumerate(rankOps[r])) {
      const Home &home = homes[op];
      if (home.kind != Home::Action || home.action != sched::ActionKind::F)
        continue;
      for (Value v : op->getResults())
        if (auto last = lastBackwardUse(v))
          intervals.push_back({pos,
                               last->first,
                               {home.stage, home.microbatch},
                               getTensorBytes(v.getType())});
    }
    for (const Message &m : messages) {
      if (m.to != r)
        continue;
      const Home &from = homes[m.value.getDefiningOp()];
      if (from.kind != Home::Action || from.action != sched::ActionKind::F)
        continue;
      if (auto last = lastBackwardUse(m.value))
        intervals.push_back({m.recvBefore,
                             last->first,
                             {last->second, from.microbatch},
                             getTensorBytes(m.value.getType())});
    }
    // The most microbatch-chunks (s, m) and bytes alive at once.
    size_t inFlight = 0;
    int64_t peakBytes = 0;
    for (size_t i = 0; i <= rankOps[r].size(); ++i) {
      std::set<std::pair<int, int>> live;
      int64_t bytes = 0;
      for (const Interval &in : intervals)
        if (in.start <= i && i <= in.end) {
          live.insert(in.key);
          bytes += in.bytes;
        }
      inFlight = std::max(inFlight, live.size());
      peakBytes = std::max(peakBytes, bytes);
    }
    // The schedule's own count: from F(s, m) to its B (its W when the
    // schedule splits the backward).
    std::set<std::pair<int, int>> open;
    size_t bound = 0;
    for (const sched::Action &a : schedule.ranks[r]) {
      if (a.kind == sched::ActionKind::F)
        open.insert({a.stage, a.microbatch});
      if (a.kind == (splits ? sched::ActionKind::W : sched::ActionKind::B))
        open.erase({a.stage, a.microbatch});
      bound = std::max(bound, open.size());
    }
    SmallVector<std::string> stages;
    for (int s = r; s < schedule.stages(); s += P)
      stages.push_back(std::to_string(s));
    module.emitRemark() << "pipeline rank " << r << " (stages "
                        << llvm::join(stages, ", ") << "): at most " << inFlight
                        << " microbatch-chunks in flight in the compiled "
                           "order, the schedule keeps "
                        << bound << "; stash at its peak " << peakBytes
                        << " bytes";
  }
}

void PipelineSplitter::sumSharedGradientsPerRank() {
  // A parameter read on several ranks (tied embeddings) has a gradient
  // summed over microbatches from terms made on each of them; summed in
  // the step's order, every term of the other ranks would cross to the
  // rank of the sum. Each rank sums its own terms first, and one sum per
  // rank crosses, once per step.
  SmallVector<AdamWOp> updates;
  for (auto update : step.getBody().front().getOps<AdamWOp>())
    if (homes[update].ranks.size() > 1)
      updates.push_back(update);
  for (AdamWOp update : updates) {
    // The sum: the update's gradient, or what its one-operand reduction
    // (a data-parallel all-reduce, a conversion) reads.
    Value sum = update->getOperand(1);
    if (!sum.getDefiningOp<AddOp>() && sum.getDefiningOp() &&
        sum.getDefiningOp()->getNumOperands() == 1)
      sum = sum.getDefiningOp()->getOperand(0);
    auto end = sum.getDefiningOp<AddOp>();
    if (!end || homes[end].kind != Home::Action)
      continue;
    // Its terms, in the step's order, through single-use adds.
    SmallVector<Value> terms;
    SmallVector<Operation *> adds;
    std::function<void(Value)> collect = [&](Value v) {
      auto add = v.getDefiningOp<AddOp>();
      if (add && (v == sum || v.hasOneUse()) &&
          homes[add].kind == Home::Action) {
        adds.push_back(add);
        collect(add.getLhs());
        collect(add.getRhs());
        return;
      }
      terms.push_back(v);
    };
    collect(sum);
    // Terms by the rank that makes them, ranks in order of first term.
    SmallVector<int> rankOrder;
    std::map<int, SmallVector<Value>> byRank;
    for (Value t : terms) {
      if (isFree(t))
        return; // A constant term: left as it is.
      int r = homes[t.getDefiningOp()].ranks.front();
      if (!byRank.count(r))
        rankOrder.push_back(r);
      byRank[r].push_back(t);
    }
    if (rankOrder.size() < 2)
      continue;
    // Each rank's partial sum, made in the last of its terms' actions on
    // that rank; the total where the sum was.
    OpBuilder b(end);
    const Home endHome = homes[end];
    int endRank = endHome.ranks.front();
    SmallVector<Value> partials;
    // The end's rank first, so that its sum adds the others' once each.
    llvm::stable_sort(rankOrder, [&](int x, int y) {
      return (x == endRank) > (y == endRank);
    });
    for (int r : rankOrder) {
      SmallVector<Value> &list = byRank[r];
      Home latest = homes[list.front().getDefiningOp()];
      for (Value t : list)
        if (runsAfter(r, homes[t.getDefiningOp()], latest))
          latest = homes[t.getDefiningOp()];
      Value partial = list.front();
      for (Value t : ArrayRef<Value>(list).drop_front()) {
        auto add = AddOp::create(b, end.getLoc(), partial, t);
        add->setDiscardableAttrs(end->getDiscardableAttrDictionary());
        homes[add] = latest;
        order[add] = order[end];
        partial = add;
      }
      partials.push_back(partial);
    }
    Value total = partials.front();
    for (Value p : ArrayRef<Value>(partials).drop_front()) {
      auto add = AddOp::create(b, end.getLoc(), total, p);
      add->setDiscardableAttrs(end->getDiscardableAttrDictionary());
      homes[add] = endHome;
      order[add] = order[end];
      total = add;
    }
    end.getResult().replaceAllUsesWith(total);
    for (Operation *add : adds) {
      homes.erase(add);
      order.erase(add);
      add->erase();
    }
  }
}

LogicalResult PipelineSplitter::run() {
  if (failed(assignHomes()))
    return failure();
  sumSharedGradientsPerRank();
  if (failed(orderRanks()))
    return failure();
  planMessages();
  if (report)
    reportStash();
  if (failed(buildFunctions()))
    return failure();

  Builder b(module.getContext());
  module->setAttr(
      LoomDialect::kPipelineAttrName,
      b.getDictionaryAttr({
          b.getNamedAttr("pp", b.getI64IntegerAttr(schedule.pp)),
          b.getNamedAttr("vpp", b.getI64IntegerAttr(schedule.vpp)),
          b.getNamedAttr("microbatches",
                         b.getI64IntegerAttr(schedule.microbatches)),
          b.getNamedAttr("schedule", b.getStringAttr(schedule.name)),
          b.getNamedAttr("actions", b.getStringAttr(sched::writeCsv(schedule))),
      }));
  step.erase();
  return success();
}

/// Layers per virtual stage balanced by cost: each layer's FLOPs (every op
/// tagged with it, forward and backward, as the ops' CostOpInterface counts
/// them), the first stage also carrying what comes before the first layer
/// (the embedding) and the last what comes after the last (output layer
/// and loss), three times their forward FLOPs (forward and backward).
/// Contiguous groups of at least one layer minimizing the most expensive
/// stage (dynamic programming over the split points).
SmallVector<int64_t> balancedLayout(func::FuncOp step, int64_t layers,
                                    int64_t microbatches, int64_t stages) {
  std::vector<double> cost(layers, 0.0);
  double before = 0, after = 0;
  bool seenLayer = false;
  double pending = 0; // forward cost without a layer since the last layer op
  auto flopsOf = [](Operation *op) {
    auto costed = dyn_cast<CostOpInterface>(op);
    return costed ? costed.getMatmulFlops() + costed.getVectorFlops() : 0.0;
  };
  for (Operation &op : step.getBody().front().without_terminator()) {
    auto layer = op.getAttrOfType<IntegerAttr>(LoomDialect::kLayerAttrName);
    auto phase = op.getAttrOfType<PhaseAttr>(LoomDialect::kPhaseAttrName);
    auto mb = op.getAttrOfType<IntegerAttr>(LoomDialect::kMicrobatchAttrName);
    bool firstForward =
        phase && phase.getValue() == Phase::fwd && (!mb || mb.getInt() == 0);
    if (layer && layer.getInt() < layers) {
      cost[layer.getInt()] += flopsOf(&op);
      if (firstForward) {
        seenLayer = true;
        pending = 0;
      }
      continue;
    }
    // Microbatch 0's forward without a layer: before its first layer op
    // (the embedding) or after its last (head and loss).
    if (!firstForward)
      continue;
    if (!seenLayer)
      before += flopsOf(&op);
    else
      pending += flopsOf(&op);
  }
  // The layers' costs hold every microbatch, forward and backward; the
  // embedding's and head's were taken from microbatch 0's forward.
  after = pending * 3 * microbatches;
  before *= 3 * microbatches;
  // best[s][l]: the least max stage cost of layers [0, l) in s stages.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> prefix(layers + 1, 0.0);
  for (int64_t l = 0; l < layers; ++l)
    prefix[l + 1] = prefix[l] + cost[l];
  std::vector<std::vector<double>> best(stages + 1,
                                        std::vector<double>(layers + 1, inf));
  std::vector<std::vector<int64_t>> split(stages + 1,
                                          std::vector<int64_t>(layers + 1, 0));
  best[0][0] = 0;
  for (int64_t s = 1; s <= stages; ++s)
    for (int64_t l = s; l <= layers - (stages - s); ++l)
      for (int64_t k = s - 1; k < l; ++k) {
        double stage = prefix[l] - prefix[k] + (s == 1 ? before : 0) +
                       (s == stages ? after : 0);
        double worst = std::max(best[s - 1][k], stage);
        if (worst < best[s][l]) {
          best[s][l] = worst;
          split[s][l] = k;
        }
      }
  SmallVector<int64_t> perStage(stages, 0);
  for (int64_t s = stages, l = layers; s > 0; --s) {
    int64_t k = split[s][l];
    perStage[s - 1] = l - k;
    l = k;
  }
  return perStage;
}

struct LoomSplitPipelinePass
    : public loom::impl::LoomSplitPipelinePassBase<LoomSplitPipelinePass> {
  using LoomSplitPipelinePassBase::LoomSplitPipelinePassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MeshOp mesh;
    for (MeshOp m : module.getOps<MeshOp>())
      if (m.getShape().getAxisIndex("pp"))
        mesh = m;
    if (!mesh)
      return; // No pipeline axis: nothing to split.
    int64_t pp = mesh.getShape().getAxisSize("pp");
    SmallVector<func::FuncOp> bodies;
    for (auto func : module.getOps<func::FuncOp>())
      if (!func.isExternal())
        bodies.push_back(func);
    if (bodies.size() != 1) {
      module.emitError("-loom-split-pipeline needs exactly one function "
                       "body (the training step), found ")
          << bodies.size();
      return signalPassFailure();
    }
    func::FuncOp step = bodies.front();

    // Layers and microbatches, from the tags.
    int64_t layers = LoomDialect::getLayerCount(step);
    int64_t microbatches = LoomDialect::getMicrobatchCount(step);
    if (layers == 0) {
      step.emitError("-loom-split-pipeline: no op carries `loom.layer`; "
                     "the training step of a zoo or builder model has them");
      return signalPassFailure();
    }
    int64_t stages = pp * vpp;
    SmallVector<int64_t> perStage(layout.begin(), layout.end());
    if (perStage.empty() && (firstLayers > 0 || lastLayers > 0)) {
      // Megatron's uneven layout: per pipeline rank, then over its chunks.
      auto given = [](int64_t n) {
        return n > 0 ? std::optional<int64_t>(n) : std::nullopt;
      };
      std::optional<std::vector<int64_t>> perRank =
          unevenStageLayers(layers, pp, given(firstLayers), given(lastLayers));
      if (!perRank) {
        step.emitError("[layers-uneven] the layers (")
            << layers << ") less first-layers (" << firstLayers
            << ") and last-layers (" << lastLayers
            << ") do not split evenly, at least one each, over the other "
               "pipeline stages";
        return signalPassFailure();
      }
      for (int64_t s = 0; s < stages; ++s) {
        int64_t n = (*perRank)[s % pp];
        if (n % vpp != 0) {
          step.emitError("[layers-vpp] pipeline rank ")
              << s % pp << " has " << n << " layers, not divisible by vpp = "
              << static_cast<int64_t>(vpp);
          return signalPassFailure();
        }
        perStage.push_back(n / vpp);
      }
    }
    if (balance != "even" && balance != "cost") {
      step.emitError("[balance] balance is 'even' or 'cost', got '")
          << balance << "'";
      return signalPassFailure();
    }
    if (perStage.empty() && balance == "cost") {
      if (layers < stages) {
        step.emitError("[layers-stages] the layers (")
            << layers << ") are fewer than the pp * vpp = " << stages
            << " virtual stages";
        return signalPassFailure();
      }
      perStage = balancedLayout(step, layers, microbatches, stages);
      if (report) {
        InFlightDiagnostic remark =
            step.emitRemark("layers per virtual stage, balanced by cost: ");
        llvm::interleaveComma(perStage, remark);
      }
    }
    if (perStage.empty()) {
      if (layers % stages != 0) {
        step.emitError("[layers-stages] the layers (")
            << layers << ") do not divide evenly over pp * vpp = " << stages
            << " virtual stages; give layout=<layers per stage,...>";
        return signalPassFailure();
      }
      perStage.assign(stages, layers / stages);
    }
    int64_t sum = 0;
    for (int64_t n : perStage) {
      if (n < 1) {
        step.emitError("[layout] every virtual stage needs at least one "
                       "layer, layout has ")
            << n;
        return signalPassFailure();
      }
      sum += n;
    }
    if (static_cast<int64_t>(perStage.size()) != stages || sum != layers) {
      step.emitError("[layout] layout gives ")
          << perStage.size() << " stages with " << sum
          << " layers; the step has " << layers
          << " layers over pp * vpp = " << stages << " virtual stages";
      return signalPassFailure();
    }
    SmallVector<int64_t> stageOfLayer;
    for (auto [s, n] : llvm::enumerate(perStage))
      stageOfLayer.append(n, s);

    // The schedule: generated by name, or read from a CSV file.
    std::optional<sched::Schedule> made;
    sched::ScheduleProblem problem;
    StringRef name = schedule;
    if (name.ends_with(".csv")) {
      auto file = llvm::MemoryBuffer::getFile(name);
      if (!file) {
        step.emitError("cannot read the schedule file '")
            << name << "': " << file.getError().message();
        return signalPassFailure();
      }
      made = sched::readCsv((*file)->getBuffer().str(), &problem);
      if (made && (made->pp != pp || made->vpp != vpp ||
                   made->microbatches != microbatches)) {
        step.emitError("[schedule-size] the schedule in '")
            << name << "' is for pp=" << made->pp << ", vpp=" << made->vpp
            << ", " << made->microbatches
            << " microbatches; the step has pp=" << pp
            << ", vpp=" << static_cast<int64_t>(vpp) << ", " << microbatches
            << " microbatches";
        return signalPassFailure();
      }
    } else {
      made = sched::makeSchedule(name.str(), pp, vpp, microbatches, &problem);
    }
    if (!made) {
      step.emitError("[") << problem.id << "] " << problem.message;
      return signalPassFailure();
    }
    std::vector<sched::ScheduleProblem> problems =
        sched::validateSchedule(*made);
    if (!problems.empty()) {
      InFlightDiagnostic diag = step.emitError("the pipeline schedule '")
                                << made->name << "' is not sound:";
      for (const sched::ScheduleProblem &p : problems)
        diag << " [" << p.id << "] " << p.message << ";";
      return signalPassFailure();
    }
    PipelineSplitter splitter(module, step, mesh, std::move(*made),
                              std::move(stageOfLayer), report);
    if (failed(splitter.run()))
      return signalPassFailure();
  }
};

} // namespace
