//===- PropagateSharding.cpp - Shardings for every value ------------------===//
//
// Factor-based propagation (see the pass description in Passes.td). Each
// value has a sharding and a priority (lower is stronger; pins are 0 and
// never change). An op is propagated by projecting its tensors' shardings
// onto the factors of its rule, choosing each factor's axes, and
// projecting those back onto the tensors, which only ever gain axes.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Dialect/Loom/IR/PersistentUpdates.h"
#include "loom/Sharding/FactorSharding.h"
#include "loom/Sharding/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/SmallSet.h"

#include <numeric>
#include <set>

namespace loom {
#define GEN_PASS_DEF_LOOMPROPAGATESHARDINGPASS
#include "loom/Sharding/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;

namespace {

constexpr int kUnset = kUnsetPriority, kSeed = kDefaultPriority;

struct ValueState {
  TensorSharding sharding;
  /// The priority of each dimension's axes (kUnset where it has none): a
  /// dimension a weak seed split is as weak as that seed, whatever the
  /// tensor's other dimensions got from stronger ones.
  SmallVector<int> priorities;
  /// The strongest of them (the tensor's priority as a seed).
  int priority = kUnset;
  /// A pin's result: never changed. (Values a pin reaches take its
  /// priority, 0, but may still gain axes that do not clash.)
  bool pinned = false;
};

/// The axes chosen for one factor, and the priority they came with.
struct FactorChoice {
  AxisList axes;
  int priority = kUnset;
};

class Propagation {
public:
  Propagation(func::FuncOp func, MeshOp mesh)
      : func(func), mesh(mesh.getShape()),
        meshRef(FlatSymbolRefAttr::get(mesh.getSymNameAttr())) {}

  LogicalResult run();

private:
  ValueState &state(Value v);
  /// Seeds from `loom.sharding` (arguments, op results) and pins.
  LogicalResult seed();
  /// Propagates through `op` from the tensors whose priority is at most
  /// `level`; true when a value changed.
  bool propagate(Operation *op, int level);
  /// Lets `value` take the axes of `proposed` it lacks, each dimension with
  /// its priority; true on change.
  bool extend(Value value, const TensorSharding &proposed,
              ArrayRef<int> priorities);
  /// Writes the shardings back as attributes.
  void annotate();

  func::FuncOp func;
  MeshAttr mesh;
  FlatSymbolRefAttr meshRef;
  DenseMap<Value, ValueState> states;
  /// The priorities the seeds carry, strongest first.
  std::set<int> levels;
  /// Returned new parameter or state value -> the argument it updates.
  llvm::MapVector<Value, BlockArgument> updates;
};

ValueState &Propagation::state(Value v) {
  auto [it, inserted] = states.try_emplace(v);
  if (inserted) {
    int64_t rank = cast<ShapedType>(v.getType()).getRank();
    it->second.sharding = TensorSharding::replicated(rank);
    it->second.priorities.assign(rank, kUnset);
  }
  return it->second;
}

LogicalResult Propagation::seed() {
  auto take = [&](Value v, Operation *where) -> LogicalResult {
    ShardingAttr attr = getValueSharding(v);
    if (!attr)
      return success();
    if (attr.getMesh() != meshRef)
      return where->emitError("sharding names mesh ")
             << attr.getMesh() << ", but propagation works over " << meshRef
             << " (one mesh per function)";
    ValueState &s = state(v);
    s.sharding = TensorSharding::fromAttr(attr);
    s.priority = getShardingPriority(v);
    for (auto [axes, priority] : llvm::zip(s.sharding.dims, s.priorities))
      priority = axes.empty() ? kUnset : s.priority;
    s.pinned = v.getDefiningOp() && getPinnedSharding(v.getDefiningOp());
    levels.insert(s.priority);
    return success();
  };
  for (BlockArgument arg : func.getArguments())
    if (failed(take(arg, func)))
      return failure();
  WalkResult walk = func.walk([&](Operation *op) {
    for (Value result : op->getResults())
      if (failed(take(result, op)))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return failure(walk.wasInterrupted());
}

bool Propagation::extend(Value value, const TensorSharding &proposed,
                         ArrayRef<int> priorities) {
  ValueState &s = state(value);
  if (s.pinned)
    return false;
  auto type = cast<ShapedType>(value.getType());
  bool changed = false;
  llvm::SmallSet<StringRef, 4> used;
  for (const AxisList &axes : s.sharding.dims)
    used.insert(axes.begin(), axes.end());
  for (auto [dim, axes] : llvm::enumerate(proposed.dims)) {
    AxisList &current = s.sharding.dims[dim];
    if (!isPrefixOf(current, axes) || current.size() == axes.size())
      continue;
    // Add the new axes that are free and still divide the dimension.
    AxisList grown = current;
    for (StringRef axis :
         ArrayRef<StringRef>(axes).drop_front(current.size())) {
      AxisList next = grown;
      next.push_back(axis);
      if (used.contains(axis) ||
          type.getDimSize(dim) % axesSize(next, mesh) != 0)
        break;
      grown = next;
      used.insert(axis);
    }
    if (grown.size() == current.size())
      continue;
    current = grown;
    // The dimension's axes are as strong as the weakest of them: axes added
    // by a weaker proposal do not take the strength of those before them.
    s.priorities[dim] = s.priorities[dim] == kUnset
                            ? priorities[dim]
                            : std::max(s.priorities[dim], priorities[dim]);
    s.priority = std::min(s.priority, priorities[dim]);
    changed = true;
  }
  return changed;
}

bool Propagation::propagate(Operation *op, int level) {
  auto ruled = dyn_cast<ShardingRuleOpInterface>(op);
  if (!ruled)
    return false;
  ShardingRule rule = ruled.getShardingRule();
  SmallVector<std::pair<OpTensor, Value>> tensors;
  for (auto [i, v] : llvm::enumerate(op->getOperands()))
    tensors.push_back({{false, static_cast<unsigned>(i)}, v});
  for (auto [i, v] : llvm::enumerate(op->getResults()))
    tensors.push_back({{true, static_cast<unsigned>(i)}, v});

  // Each factor takes the axes of the strongest tensor that shards it; an
  // equal one may extend them when they are a prefix of its own.
  SmallVector<FactorChoice> choices(rule.getNumFactors());
  for (auto &[which, value] : tensors) {
    ValueState &s = state(value);
    ArrayRef<ShardingRule::DimFactors> dims = getTensorFactors(rule, which);
    for (auto [dim, factors] : llvm::enumerate(dims)) {
      int priority = s.priorities[dim];
      if (priority > level)
        continue;
      SmallVector<AxisList> split =
          splitAmongFactors(s.sharding.dims[dim], factors, rule, mesh);
      for (auto [factor, axes] : llvm::zip(factors, split)) {
        if (rule.getFactorKind(factor) == FactorKind::NeedReplication ||
            axes.empty())
          continue;
        FactorChoice &choice = choices[factor];
        bool stronger = priority < choice.priority;
        bool extends = priority == choice.priority &&
                       isPrefixOf(choice.axes, axes) &&
                       axes.size() > choice.axes.size();
        if (stronger || extends)
          choice = {axes, priority};
      }
    }
  }
  // An axis shards one factor: the strongest claim keeps it (ties: the
  // earlier factor).
  SmallVector<int64_t> order(rule.getNumFactors());
  std::iota(order.begin(), order.end(), 0);
  llvm::stable_sort(order, [&](int64_t a, int64_t b) {
    return choices[a].priority < choices[b].priority;
  });
  llvm::SmallSet<StringRef, 4> claimed;
  for (int64_t factor : order) {
    AxisList &axes = choices[factor].axes;
    auto clash =
        llvm::find_if(axes, [&](StringRef a) { return claimed.contains(a); });
    axes.erase(clash, axes.end());
    claimed.insert(axes.begin(), axes.end());
  }
  SmallVector<AxisList> factorAxes;
  for (const FactorChoice &choice : choices)
    factorAxes.push_back(choice.axes);
  dropUnprojectableFactors(rule, mesh, factorAxes);
  for (auto [choice, axes] : llvm::zip(choices, factorAxes))
    choice.axes = axes;

  // Back onto every tensor of the op.
  bool changed = false;
  for (auto &[which, value] : tensors) {
    ArrayRef<ShardingRule::DimFactors> dims = getTensorFactors(rule, which);
    TensorSharding proposed = TensorSharding::replicated(dims.size());
    // A dimension's axes are as strong as the weakest factor giving them.
    SmallVector<int> priorities(dims.size(), kUnset);
    bool any = false;
    for (auto [dim, factors] : llvm::enumerate(dims)) {
      int weakest = kUnset;
      for (int64_t factor : factors) {
        const FactorChoice &choice = choices[factor];
        if (choice.axes.empty())
          break; // a minor factor cannot be split under an unsplit major one
        proposed.dims[dim].append(choice.axes);
        weakest = weakest == kUnset ? choice.priority
                                    : std::max(weakest, choice.priority);
        if (axesSize(choice.axes, mesh) != rule.getFactorSize(factor))
          break;
      }
      priorities[dim] = weakest;
      any |= weakest != kUnset;
    }
    if (any)
      changed |= extend(value, proposed, priorities);
  }
  return changed;
}

void Propagation::annotate() {
  MLIRContext *context = func.getContext();
  Builder b(context);
  auto attrOf = [&](Value v) -> ShardingAttr {
    auto it = states.find(v);
    if (it == states.end() || it->second.sharding.isReplicated())
      return {};
    return it->second.sharding.toAttr(context, meshRef);
  };
  // The priority a sharded value carries, written when it is not the
  // default, so that a later run (after a pass adds seeds or pins) starts
  // from the same strengths.
  auto priorityOf = [&](Value v) {
    auto it = states.find(v);
    if (it == states.end() || it->second.sharding.isReplicated())
      return kSeed;
    // One priority per value: its weakest split dimension's (a stronger
    // one would let a later run give a weak split a strength it never had).
    int weakest = kUnset;
    for (int p : it->second.priorities)
      if (p != kUnset)
        weakest = weakest == kUnset ? p : std::max(weakest, p);
    return weakest;
  };
  for (BlockArgument arg : func.getArguments()) {
    unsigned i = arg.getArgNumber();
    if (ShardingAttr attr = attrOf(arg))
      func.setArgAttr(i, LoomDialect::kShardingAttrName, attr);
    if (priorityOf(arg) != kSeed)
      func.setArgAttr(i, LoomDialect::kPriorityAttrName,
                      b.getI64IntegerAttr(priorityOf(arg)));
  }
  // A returned new parameter or state lives in its argument's bytes: it is
  // returned as its argument is sharded.
  Operation *terminator = func.getBody().front().getTerminator();
  for (auto [i, v] : llvm::enumerate(terminator->getOperands())) {
    auto update = updates.find(v);
    if (ShardingAttr attr =
            attrOf(update != updates.end() ? Value(update->second) : v))
      func.setResultAttr(i, LoomDialect::kShardingAttrName, attr);
  }
  func.walk([&](Operation *op) {
    if (getPinnedSharding(op) || op->getNumResults() == 0 || op == terminator)
      return;
    SmallVector<Attribute> attrs, priorities;
    bool any = false, strengths = false;
    for (Value result : op->getResults()) {
      ShardingAttr attr = attrOf(result);
      any |= static_cast<bool>(attr);
      attrs.push_back(attr ? attr
                           : TensorSharding::replicated(
                                 cast<ShapedType>(result.getType()).getRank())
                                 .toAttr(context, meshRef));
      priorities.push_back(b.getI64IntegerAttr(priorityOf(result)));
      strengths |= priorityOf(result) != kSeed;
    }
    if (!any)
      return;
    op->setAttr(LoomDialect::kShardingAttrName,
                attrs.size() == 1 ? attrs.front()
                                  : ArrayAttr::get(context, attrs));
    if (strengths)
      op->setAttr(LoomDialect::kPriorityAttrName,
                  priorities.size() == 1 ? priorities.front()
                                         : ArrayAttr::get(context, priorities));
  });
}

LogicalResult Propagation::run() {
  if (failed(seed()))
    return failure();
  auto found = getPersistentUpdates(func);
  if (failed(found))
    return failure();
  updates = std::move(*found);
  SmallVector<Operation *> ops;
  func.walk([&](Operation *op) {
    if (op != func && !isa<func::ReturnOp>(op))
      ops.push_back(op);
  });
  // Strongest shardings first, as OpenXLA Shardy's user priorities: every
  // level spreads as far as it can before a weaker one may claim an axis
  // (a weaker sharding reaching a value first would otherwise keep it).
  // Within a level, forward and backward sweeps until nothing changes;
  // each change adds an axis, so this ends.
  for (int level : levels) {
    for (int sweep = 0; sweep < 64; ++sweep) {
      bool changed = false;
      for (Operation *op : ops)
        changed |= propagate(op, level);
      for (Operation *op : llvm::reverse(ops))
        changed |= propagate(op, level);
      // A new parameter or state value starts as its argument is sharded
      // (the optimizer may split it further, as ZeRO does); the argument
      // never takes the new value's sharding.
      for (auto [value, argument] : updates)
        if (state(argument).priority <= level)
          changed |= extend(value, state(argument).sharding,
                            state(argument).priorities);
      if (!changed)
        break;
    }
  }
  annotate();
  return success();
}

struct LoomPropagateShardingPass
    : public loom::impl::LoomPropagateShardingPassBase<
          LoomPropagateShardingPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<MeshOp> meshes(module.getOps<MeshOp>());
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      if (meshes.empty())
        continue; // nothing to shard over
      if (meshes.size() > 1) {
        module.emitError("sharding propagation works over one mesh; the "
                         "module declares ")
            << meshes.size();
        return signalPassFailure();
      }
      if (failed(Propagation(func, meshes.front()).run()))
        return signalPassFailure();
    }
  }
};

} // namespace
