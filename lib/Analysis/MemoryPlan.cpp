//===- MemoryPlan.cpp - Static arena plan of a loom function --------------===//
//
// 1. Storage classes: each value starts in its own class; a reshape joins its
//    operand's class (a view), and an in-place capable op joins the class of
//    an operand of equal size whose class dies at that op.
// 2. Lifetimes: a class lives from its first definition to its last use (to
//    the end for returned values); arguments (parameters and inputs) live
//    for the whole program.
// 3. Placement: classes in order of decreasing size (ties by first
//    definition) take the lowest aligned offset that overlaps no placed class
//    with an intersecting lifetime. Arguments come first, one after the
//    other; the others above them.
//
// Every step is near-linear in the number of values (graphs of a million
// ops): lifetimes and classes in one pass, the classes a placement must avoid
// found through an index of placed lifetimes (TimeIndex), the lower bound by
// a sweep, and the replay check through a map of who last wrote each byte.
//
//===----------------------------------------------------------------------===//

#include "loom/Analysis/MemoryPlan.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Dialect/Loom/IR/LoomTypes.h"
#include "loom/Dialect/Loom/IR/PersistentUpdates.h"
#include "loom/runtime/CheckedMath.h"
#include "loom/runtime/TensorLimits.h"

#include "llvm/ADT/EquivalenceClasses.h"
#include "llvm/Support/MathExtras.h"

#include <map>

using namespace mlir;
using namespace loom;

/// Ops whose kernels may write their result over an operand of equal size
/// (the `Loom_InPlace` trait, which the runtime's op table mirrors).
static bool runsInPlace(Operation *op) {
  return op->hasTrait<loom::OpTrait::InPlace>();
}

/// Values that live outside the arena: constants sit in the program's
/// read-only constants blob.
static bool inConstants(Value v) {
  return static_cast<bool>(v.getDefiningOp<ConstantOp>());
}

namespace {
struct Storage {
  int64_t bytes = 0;
  int64_t start = 0;   // index of the defining instruction (-1: before all)
  int64_t end = 0;     // index of the last use
  bool pinned = false; // an argument: alone for the whole program
  int64_t offset = -1;
};

/// The placed storages, found by lifetime: those whose lifetime [start, end]
/// intersects a query's are the ones alive at its start (a segment tree over
/// time, each lifetime stored at O(log T) nodes) plus the ones starting
/// within it (ordered by start). Both queries cost O(log T) plus what they
/// report.
class TimeIndex {
public:
  /// Times run from `first` to `last` inclusive.
  TimeIndex(int64_t first, int64_t last) : first(first) {
    size_t n = static_cast<size_t>(last - first + 1);
    leaves = llvm::PowerOf2Ceil(std::max<size_t>(n, 1));
    nodes.resize(2 * leaves);
  }

  void insert(unsigned id, int64_t start, int64_t end) {
    size_t lo = static_cast<size_t>(start - first) + leaves;
    size_t hi = static_cast<size_t>(end - first) + leaves + 1;
    for (; lo < hi; lo >>= 1, hi >>= 1) {
      if (lo & 1)
        nodes[lo++].push_back(id);
      if (hi & 1)
        nodes[--hi].push_back(id);
    }
    byStart.emplace(start, id);
  }

  /// Calls `fn(id)` once for every inserted lifetime intersecting
  /// [start, end].
  template <typename Fn>
  void forEachOverlapping(int64_t start, int64_t end, Fn fn) const {
    for (size_t i = static_cast<size_t>(start - first) + leaves; i >= 1;
         i >>= 1)
      for (unsigned id : nodes[i])
        fn(id);
    for (auto it = byStart.upper_bound(start), e = byStart.upper_bound(end);
         it != e; ++it)
      fn(it->second);
  }

private:
  int64_t first;
  size_t leaves;
  std::vector<std::vector<unsigned>> nodes;
  std::multimap<int64_t, unsigned> byStart;
};
} // namespace

FailureOr<MemoryPlan> loom::planMemory(func::FuncOp func, bool reuse) {
  if (!func.getBody().hasOneBlock())
    return func.emitError("memory planning needs a function with one block");
  Block &block = func.getBody().front();
  MemoryPlan plan;
  auto updates = getPersistentUpdates(func);
  if (failed(updates))
    return failure();

  SmallVector<Value> values;
  DenseMap<Value, int64_t> position; // defining instruction; -1 for arguments
  auto addValue = [&](Value v, int64_t pos) -> LogicalResult {
    if (failed(verifyProgramTensorType(v.getType(), [&] {
          return emitError(v.getLoc(), "memory planning ");
        })))
      return failure();
    values.push_back(v);
    position[v] = pos;
    return success();
  };
  for (BlockArgument arg : block.getArguments())
    if (failed(addValue(arg, -1)))
      return failure();

  // Last use of each value; returned values live to the end.
  DenseMap<Value, int64_t> lastUse;
  SmallVector<Operation *> ops;
  for (Operation &op : block) {
    int64_t index = ops.size();
    if (op.getNumRegions() != 0)
      return op.emitError("memory planning does not support ops with regions");
    for (Value operand : op.getOperands())
      lastUse[operand] = index;
    if (isa<func::ReturnOp>(op)) {
      for (Value operand : op.getOperands())
        lastUse[operand] = std::numeric_limits<int64_t>::max();
      continue;
    }
    ops.push_back(&op);
    for (Value result : op.getResults())
      if (!inConstants(result) && failed(addValue(result, index)))
        return failure();
  }
  int64_t endOfProgram = ops.size();

  // Storage classes, built in program order so that "dies here" is known.
  // Per leader: the last use over the members, and whether an argument is
  // among them (an argument's bytes are never written over).
  llvm::EquivalenceClasses<Value> classes;
  DenseMap<Value, int64_t> classStart, classEnd;
  DenseMap<Value, bool> classHasArgument;
  auto endOf = [&](Value v) {
    auto it = lastUse.find(v);
    return it == lastUse.end() ? position[v]
                               : std::min(it->second, endOfProgram);
  };
  for (Value v : values) {
    classes.insert(v);
    classStart[v] = position[v];
    classEnd[v] = endOf(v);
    classHasArgument[v] = isa<BlockArgument>(v);
  }
  auto join = [&](Value member, Value into) {
    Value a = classes.getLeaderValue(into), b = classes.getLeaderValue(member);
    int64_t start = std::min(classStart[a], classStart[b]);
    int64_t end = std::max(classEnd[a], classEnd[b]);
    bool hasArgument = classHasArgument[a] || classHasArgument[b];
    classes.unionSets(a, b);
    Value leader = classes.getLeaderValue(a);
    classStart[leader] = start;
    classEnd[leader] = end;
    classHasArgument[leader] = hasArgument;
  };
  // An asynchronous collective reads its operands and writes its result
  // until its wait: their classes live at least that long.
  DenseMap<Operation *, int64_t> asyncEnd;
  for (auto [index, op] : llvm::enumerate(ops)) {
    auto wait = dyn_cast<WaitOp>(op);
    if (!wait)
      continue;
    Operation *async = wait.getInput().getDefiningOp();
    int64_t &end = asyncEnd[async];
    end = std::max<int64_t>(end, index);
  }
  for (Operation *op : ops)
    if (op->hasAttr(LoomDialect::kAsyncAttrName) && !asyncEnd.count(op))
      asyncEnd[op] = endOfProgram; // never waited for: done at the end
  auto extendAsync = [&](Operation *op) {
    auto it = asyncEnd.find(op);
    if (it == asyncEnd.end())
      return;
    for (Value v : llvm::concat<Value>(op->getOperands(), op->getResults())) {
      if (inConstants(v))
        continue;
      Value leader = classes.getLeaderValue(v);
      classEnd[leader] = std::max(classEnd[leader], it->second);
    }
  };
  for (auto [index, op] : llvm::enumerate(ops)) {
    // A wait's result is its collective's bytes (a view), with or without
    // reuse: the runtime only waits.
    if (auto wait = dyn_cast<WaitOp>(op)) {
      join(wait.getResult(), wait.getInput());
      continue;
    }
    if (!reuse) {
      extendAsync(op);
      continue;
    }
    if (auto reshape = dyn_cast<ReshapeOp>(op)) {
      // A view, unless of a constant: that reshape copies into the arena.
      if (!inConstants(reshape.getInput()))
        join(reshape.getResult(), reshape.getInput());
      continue;
    }
    if (!runsInPlace(op)) {
      extendAsync(op);
      continue;
    }
    for (OpResult result : op->getResults()) {
      // The new value of a parameter or state goes only over its argument
      // (and nothing else goes over an argument).
      BlockArgument updated = updates->lookup(result);
      for (unsigned i : getInPlaceOperands(op, result.getResultNumber())) {
        Value operand = op->getOperand(i);
        if (inConstants(operand))
          continue;
        Value leader = classes.getLeaderValue(operand);
        bool overArgument =
            updated && leader == classes.getLeaderValue(updated);
        if (getTensorBytes(operand.getType()) !=
                getTensorBytes(result.getType()) ||
            classEnd[leader] != static_cast<int64_t>(index) ||
            (classHasArgument[leader] != overArgument) ||
            (updated && !overArgument))
          continue;
        join(result, operand);
        break;
      }
    }
    extendAsync(op);
  }

  // Every new value of a parameter or state takes its argument's bytes:
  // computed in place over it above, or computed after its last read.
  for (auto [value, argument] : *updates) {
    Value leader = classes.getLeaderValue(value);
    Value argLeader = classes.getLeaderValue(argument);
    if (leader == argLeader)
      continue;
    if (classHasArgument[leader] || classStart[leader] <= classEnd[argLeader])
      return emitError(value.getLoc(),
                       "memory planning: the new value of argument #")
             << argument.getArgNumber()
             << " is computed while the argument is still read, so it "
                "cannot take the argument's bytes (loom-lower-to-program "
                "copies such a value after the last read)";
    join(value, argument);
  }

  // One storage per class.
  DenseMap<Value, unsigned> storageOf; // by leader
  SmallVector<Storage> storages;
  for (Value v : values) {
    Value leader = classes.getLeaderValue(v);
    auto [it, inserted] = storageOf.try_emplace(leader, storages.size());
    if (inserted) {
      Storage s;
      s.start = position[v];
      s.end = classEnd[leader];
      storages.push_back(s);
    }
    Storage &s = storages[it->second];
    s.bytes = std::max(s.bytes, getTensorBytes(v.getType()));
    s.start = std::min(s.start, position[v]);
    // Arguments (parameters and inputs) keep their bytes for the whole
    // program, so a program runs again without its inputs being set again.
    if (isa<BlockArgument>(v)) {
      s.pinned = true;
      s.end = endOfProgram;
    }
  }

  // Placement. Pinned storages (and, without reuse, all of them) overlap
  // every other in time: they stack one after the other. The others take
  // the lowest aligned offset above them that no placed storage alive at
  // the same time covers.
  auto alwaysLive = [&](const Storage &s) { return s.pinned || !reuse; };
  SmallVector<unsigned> order(storages.size());
  for (unsigned i = 0; i < order.size(); ++i)
    order[i] = i;
  llvm::stable_sort(order, [&](unsigned a, unsigned b) {
    if (storages[a].pinned != storages[b].pinned)
      return storages[a].pinned;
    return storages[a].bytes > storages[b].bytes;
  });
  int64_t stackTop = 0;
  TimeIndex placed(-1, endOfProgram);
  SmallVector<std::pair<int64_t, int64_t>> busy;
  for (unsigned i : order) {
    Storage &s = storages[i];
    // Offsets stay below kMaxArenaBytes (2^50) and each storage below 2^53
    // bytes, so the sums below cannot overflow; a larger arena is refused.
    if (alwaysLive(s)) {
      s.offset = llvm::alignTo(stackTop, kArenaAlignment);
      if (!runtime::checkedAdd(s.offset, s.bytes, stackTop))
        stackTop = INT64_MAX;
    } else {
      busy.clear();
      placed.forEachOverlapping(s.start, s.end, [&](unsigned j) {
        busy.push_back(
            {storages[j].offset, storages[j].offset + storages[j].bytes});
      });
      llvm::sort(busy);
      int64_t offset = llvm::alignTo(stackTop, kArenaAlignment);
      for (auto [busyStart, busyEnd] : busy) {
        if (offset + s.bytes <= busyStart)
          break;
        offset =
            std::max<int64_t>(offset, llvm::alignTo(busyEnd, kArenaAlignment));
      }
      s.offset = offset;
      placed.insert(i, s.start, s.end);
    }
    int64_t end;
    if (!runtime::checkedAdd(s.offset, s.bytes, end) ||
        end > runtime::kMaxArenaBytes)
      return func.emitError("the memory plan needs an arena of more than "
                            "2^50 bytes, the most a program holds");
    plan.arenaSize = std::max(plan.arenaSize, end);
  }

  // The lower bound: the most bytes live at once, by a sweep over time.
  std::vector<int64_t> delta(static_cast<size_t>(endOfProgram) + 3, 0);
  for (const Storage &s : storages) {
    int64_t start = alwaysLive(s) ? -1 : s.start;
    int64_t end = alwaysLive(s) ? endOfProgram : s.end;
    delta[static_cast<size_t>(start + 1)] += s.bytes;
    delta[static_cast<size_t>(end + 2)] -= s.bytes;
  }
  int64_t live = 0;
  for (size_t t = 0; t + 1 < delta.size(); ++t) {
    live += delta[t];
    plan.liveLowerBound = std::max(plan.liveLowerBound, live);
  }

  for (Value v : values)
    plan.offsets[v] = storages[storageOf[classes.getLeaderValue(v)]].offset;
  plan.numStorages = storages.size();
  plan.numValues = values.size();
  return plan;
}

LogicalResult loom::checkMemoryPlan(func::FuncOp func, const MemoryPlan &plan) {
  Block &block = func.getBody().front();
  // The value whose data a value's bytes hold: a reshape planned at its
  // input's offset is a view of it (a plan without reuse copies instead).
  auto origin = [&](Value v) {
    while (isa_and_nonnull<ReshapeOp, WaitOp>(v.getDefiningOp())) {
      Value input = v.getDefiningOp()->getOperand(0);
      if (inConstants(input) ||
          plan.offsets.lookup(input) != plan.offsets.lookup(v))
        break;
      v = input;
    }
    return v;
  };
  auto range = [&](Value v) {
    int64_t begin = plan.offsets.lookup(v);
    return std::pair<int64_t, int64_t>{begin,
                                       begin + getTensorBytes(v.getType())};
  };

  // Who holds each arena byte now: disjoint segments [begin, end) by begin,
  // each with the value whose data it holds and the instruction that wrote
  // it (-1: an argument, set before the program runs).
  struct Segment {
    int64_t end;
    Value owner;
    int64_t writer;
  };
  std::map<int64_t, Segment> holders;
  auto write = [&](int64_t begin, int64_t end, Value owner, int64_t writer) {
    if (begin >= end)
      return;
    // Cut the segments that stick out of [begin, end), drop those inside.
    auto it = holders.upper_bound(begin);
    if (it != holders.begin()) {
      auto prev = std::prev(it);
      if (prev->second.end > begin) {
        Segment tail = prev->second;
        prev->second.end = begin;
        if (tail.end > end)
          holders[end] = tail;
      }
    }
    for (it = holders.lower_bound(begin);
         it != holders.end() && it->first < end;) {
      if (it->second.end > end)
        holders[end] = it->second;
      it = holders.erase(it);
    }
    holders[begin] = Segment{end, owner, writer};
  };
  // `also`: a value whose bytes may hold v's (an asynchronous collective's
  // result over its operand, in place).
  auto check = [&](Operation *reader, Value v,
                   Value also = nullptr) -> LogicalResult {
    if (inConstants(v))
      return success();
    Value source = origin(v);
    auto [begin, end] = range(v);
    int64_t covered = begin;
    auto it = holders.upper_bound(begin);
    if (it != holders.begin())
      --it;
    for (; it != holders.end() && it->first < end; ++it) {
      if (it->second.end <= begin)
        continue;
      if (it->first > covered)
        break; // bytes nobody wrote
      if (it->second.owner != source && (!also || it->second.owner != also))
        return reader->emitError("memory plan error: an operand's bytes [")
               << begin << ", " << end << ") were overwritten by instruction "
               << it->second.writer << " before this read";
      covered = it->second.end;
    }
    if (covered < end)
      return reader->emitError("memory plan error: an operand's bytes [")
             << begin << ", " << end << ") were never written before this read";
    return success();
  };

  for (BlockArgument arg : block.getArguments()) {
    auto [begin, end] = range(arg);
    write(begin, end, arg, -1);
  }
  int64_t index = 0;
  for (Operation &op : block) {
    for (Value operand : op.getOperands())
      if (failed(check(&op, operand)))
        return failure();
    // At a wait, the asynchronous collective has read its operands until
    // now: they still hold (or hold its result, in place).
    if (auto wait = dyn_cast<WaitOp>(op))
      if (Operation *async = wait.getInput().getDefiningOp())
        for (Value operand : async->getOperands())
          if (failed(check(&op, operand, async->getResult(0))))
            return failure();
    if (isa<func::ReturnOp>(op))
      break;
    int64_t writer = index++;
    if ((isa<ReshapeOp, WaitOp>(op) &&
         origin(op.getResult(0)) != op.getResult(0)) ||
        isa<ConstantOp>(op))
      continue;
    for (Value result : op.getResults()) {
      auto [begin, end] = range(result);
      write(begin, end, result, writer);
    }
  }
  return success();
}
