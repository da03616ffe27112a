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
//    with an intersecting lifetime.
//
//===----------------------------------------------------------------------===//

#include "loom/Analysis/MemoryPlan.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Dialect/Loom/IR/LoomTypes.h"

#include "llvm/ADT/EquivalenceClasses.h"
#include "llvm/Support/MathExtras.h"

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
} // namespace

FailureOr<MemoryPlan> loom::planMemory(func::FuncOp func, bool reuse) {
  if (!func.getBody().hasOneBlock())
    return func.emitError("memory planning needs a function with one block");
  Block &block = func.getBody().front();
  MemoryPlan plan;

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
  llvm::EquivalenceClasses<Value> classes;
  DenseMap<Value, int64_t> classEnd; // by leader: last use over members
  auto isArgument = [](Value v) { return isa<BlockArgument>(v); };
  auto endOf = [&](Value v) {
    auto it = lastUse.find(v);
    return it == lastUse.end() ? position[v]
                               : std::min(it->second, endOfProgram);
  };
  auto classHasArgument = [&](Value leader) {
    for (auto it = classes.findLeader(leader); it != classes.member_end(); ++it)
      if (isArgument(*it))
        return true;
    return false;
  };
  for (Value v : values) {
    classes.insert(v);
    classEnd[v] = endOf(v);
  }
  auto join = [&](Value member, Value into) {
    Value a = classes.getLeaderValue(into), b = classes.getLeaderValue(member);
    int64_t end = std::max(classEnd[a], classEnd[b]);
    classes.unionSets(a, b);
    Value leader = classes.getLeaderValue(a);
    classEnd[leader] = end;
  };
  for (auto [index, op] : llvm::enumerate(ops)) {
    if (!reuse)
      break;
    if (auto reshape = dyn_cast<ReshapeOp>(op)) {
      // A view, unless of a constant: that reshape copies into the arena.
      if (!inConstants(reshape.getInput()))
        join(reshape.getResult(), reshape.getInput());
      continue;
    }
    if (!runsInPlace(op) || op->getNumResults() != 1)
      continue;
    Value result = op->getResult(0);
    for (Value operand : op->getOperands()) {
      if (inConstants(operand))
        continue;
      Value leader = classes.getLeaderValue(operand);
      if (getTensorBytes(operand.getType()) !=
              getTensorBytes(result.getType()) ||
          classEnd[leader] != static_cast<int64_t>(index) ||
          classHasArgument(leader))
        continue;
      join(result, operand);
      break;
    }
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

  // Placement.
  SmallVector<unsigned> order(storages.size());
  for (unsigned i = 0; i < order.size(); ++i)
    order[i] = i;
  auto lifetime = [&](const Storage &s) {
    return s.pinned || !reuse
               ? std::pair<int64_t, int64_t>{-1, endOfProgram + 1}
               : std::pair<int64_t, int64_t>{s.start, s.end};
  };
  llvm::stable_sort(order, [&](unsigned a, unsigned b) {
    if (storages[a].pinned != storages[b].pinned)
      return storages[a].pinned;
    return storages[a].bytes > storages[b].bytes;
  });
  SmallVector<unsigned> placed;
  for (unsigned i : order) {
    Storage &s = storages[i];
    auto [start, end] = lifetime(s);
    SmallVector<std::pair<int64_t, int64_t>> busy;
    for (unsigned j : placed) {
      auto [otherStart, otherEnd] = lifetime(storages[j]);
      if (otherStart <= end && start <= otherEnd)
        busy.push_back(
            {storages[j].offset, storages[j].offset + storages[j].bytes});
    }
    llvm::sort(busy);
    int64_t offset = 0;
    for (auto [busyStart, busyEnd] : busy) {
      if (offset + s.bytes <= busyStart)
        break;
      offset =
          std::max<int64_t>(offset, llvm::alignTo(busyEnd, kArenaAlignment));
    }
    s.offset = offset;
    placed.push_back(i);
    plan.arenaSize = std::max(plan.arenaSize, offset + s.bytes);
  }

  // The lower bound: the most bytes live at once.
  for (int64_t t = -1; t <= endOfProgram; ++t) {
    int64_t live = 0;
    for (const Storage &s : storages) {
      auto [start, end] = lifetime(s);
      if (start <= t && t <= end)
        live += s.bytes;
    }
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
  // The value whose data a value's bytes hold: reshapes are views.
  auto origin = [](Value v) {
    while (auto reshape = v.getDefiningOp<ReshapeOp>()) {
      if (inConstants(reshape.getInput()))
        break;
      v = reshape.getInput();
    }
    return v;
  };
  struct Write {
    int64_t begin, end;
  };
  SmallVector<SmallVector<Write, 2>> writes; // per instruction
  DenseMap<Operation *, int64_t> indexOf;
  auto range = [&](Value v) {
    int64_t begin = plan.offsets.lookup(v);
    return Write{begin, begin + getTensorBytes(v.getType())};
  };
  auto check = [&](Operation *reader, Value v, int64_t now) -> LogicalResult {
    if (inConstants(v))
      return success();
    Value source = origin(v);
    int64_t from = 0;
    if (Operation *def = source.getDefiningOp())
      from = indexOf[def] + 1;
    Write bytes = range(v);
    for (int64_t t = from; t < now; ++t)
      for (const Write &w : writes[t])
        if (w.begin < bytes.end && bytes.begin < w.end)
          return reader->emitError("memory plan error: an operand's bytes [")
                 << bytes.begin << ", " << bytes.end
                 << ") were overwritten by instruction " << t
                 << " before this read";
    return success();
  };
  int64_t index = 0;
  for (Operation &op : block) {
    for (Value operand : op.getOperands())
      if (failed(check(&op, operand, index)))
        return failure();
    if (isa<func::ReturnOp>(op))
      break;
    indexOf[&op] = index++;
    writes.emplace_back();
    if ((isa<ReshapeOp>(op) && origin(op.getResult(0)) != op.getResult(0)) ||
        isa<ConstantOp>(op))
      continue;
    for (Value result : op.getResults())
      writes.back().push_back(range(result));
  }
  return success();
}
