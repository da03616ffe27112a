//===- Partition.cpp - Global shapes to one per-rank program --------------===//
//
// Turns a function whose values carry shardings (after propagation) into
// the function every rank of the mesh runs (see the pass description in
// Passes.td). Two phases: first every op's factor axes are read from the
// shardings on its global types (the decisions), then, op by op, operands
// are resharded to what the op needs, types become local and the
// attributes that hold sizes or positions follow.
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

namespace loom {
#define GEN_PASS_DEF_LOOMPARTITIONPASS
#include "loom/Sharding/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;

namespace {

/// What partitioning decided for one op, on global shapes.
struct OpPlan {
  /// The sharding each operand must have (fully reduced).
  SmallVector<TensorSharding> operands;
  /// The sharding each result comes out with (with pending sums).
  SmallVector<TensorSharding> results;
  /// Whether a factor the op sums over is split (over the positions of a
  /// loss or the dimensions of a mean): the count becomes the global one.
  bool splitsSum = false;
};

class Partitioner {
public:
  Partitioner(func::FuncOp func, MeshOp mesh)
      : func(func), mesh(mesh.getShape()),
        meshRef(FlatSymbolRefAttr::get(mesh.getSymNameAttr())),
        b(func.getContext()) {}

  LogicalResult run();

private:
  TensorSharding targetOf(Value v);
  FailureOr<OpPlan> decide(Operation *op);
  RankedTensorType localType(RankedTensorType global,
                             const TensorSharding &sharding) const;
  /// `value` (now sharded as `from`, global type `global`) as `to`; emits
  /// collectives and slices at the builder's insertion point.
  Value reshard(Value value, RankedTensorType global, TensorSharding from,
                const TensorSharding &to, Operation *user);
  LogicalResult rewrite(Operation *op, const OpPlan &plan);
  /// `value` (whole over `axes`) as a partial sum over them: itself on the
  /// first rank of each group, zeros on the others.
  Value keepOnFirstRank(Value value, const AxisList &axes, Operation *user);
  void setRankOffset(Operation *op, StringRef name, unsigned numElements,
                     unsigned element, ArrayRef<StringRef> axes, int64_t unit);
  void joinSmallPartialSums(Operation *op, OpPlan &plan);
  LogicalResult partitionVocabulary(Operation *op, const OpPlan &plan);
  void partitionExperts(Operation *op, const OpPlan &plan);
  Value globalLogSumExp(Value logits, const AxisList &vocabAxes,
                        Operation *user);
  void setVocabStart(Operation *op, const AxisList &axes, int64_t rows);
  void tagLike(Operation *created, Operation *user);
  ArrayAttr axesAttr(ArrayRef<StringRef> axes);
  void planContractedMerges();

  /// Plans fixed ahead of the decisions (planContractedMerges).
  DenseMap<Operation *, OpPlan> fixedPlans;

  func::FuncOp func;
  MeshAttr mesh;
  FlatSymbolRefAttr meshRef;
  OpBuilder b;
  DenseMap<Value, RankedTensorType> globalTypes;
  DenseMap<Value, TensorSharding> actual;
  /// Reshards made so far, by value, target and the user's part of the
  /// step (getStepPart), for reuse by later users: each partial sum is
  /// reduced once.
  DenseMap<std::tuple<Value, Attribute, int64_t>, Value> reshards;
  /// The log-sum-exp over the whole vocabulary of each vocab-parallel
  /// loss's local logits, shared by the loss and its gradient.
  DenseMap<Value, Value> logSumExps;
};

TensorSharding Partitioner::targetOf(Value v) {
  int64_t rank = cast<ShapedType>(v.getType()).getRank();
  ShardingAttr attr = getValueSharding(v);
  if (!attr)
    return TensorSharding::replicated(rank);
  TensorSharding s = TensorSharding::fromAttr(attr);
  s.unreduced.clear(); // a target is what consumers get: reduced
  return s;
}

/// A weight gradient dW = xᵀ·dy contracts the positions of x[..., K1] and
/// dy[..., K2] after reshaping both to [positions, K]. Merged that way, a
/// split of an inner dimension (the sequence under context parallelism)
/// leaves each rank rows that are not one block of the merged dimension,
/// and the reshape's rule would gather them. A sum does not care which
/// rows a rank holds, only that both operands hold the same ones in the
/// same order: so when each position dimension splits alike in x and dy
/// (their common prefix of axes; the rest is gathered first), the merged
/// rows are taken as split over all those axes, each rank contracts its
/// own positions, and dW is a partial sum over them (as over dp), never a
/// gather of the activations. The merged tensors have no other use.
void Partitioner::planContractedMerges() {
  func.walk([&](MatmulOp matmul) {
    if (!matmul.getTransposeLhs() || matmul.getTransposeRhs() ||
        matmul.getLhs().getType().getRank() != 2 ||
        matmul.getRhs().getType().getRank() != 2)
      return;
    auto lhs = matmul.getLhs().getDefiningOp<ReshapeOp>();
    auto rhs = matmul.getRhs().getDefiningOp<ReshapeOp>();
    if (!lhs || !rhs || lhs == rhs || !lhs->hasOneUse() || !rhs->hasOneUse())
      return;
    RankedTensorType x = lhs.getInput().getType(),
                     dy = rhs.getInput().getType();
    if (x.getRank() < 3 ||
        x.getShape().drop_back() != dy.getShape().drop_back())
      return;
    int64_t positions = x.getRank() - 1;
    if (lhs.getType().getDimSize(0) !=
        dy.getNumElements() / dy.getShape().back())
      return;
    TensorSharding xs = targetOf(lhs.getInput()),
                   dys = targetOf(rhs.getInput());
    TensorSharding xIn = xs, dyIn = dys;
    AxisList merged;
    bool inner = false;
    for (int64_t d = 0; d < positions; ++d) {
      AxisList common;
      for (auto [a, b2] : llvm::zip(xs.dims[d], dys.dims[d])) {
        if (a != b2)
          break;
        common.push_back(a);
      }
      xIn.dims[d] = dyIn.dims[d] = common;
      merged.append(common);
      inner |= d > 0 && !common.empty();
    }
    // Without a split inner dimension the reshape's own rule does as well.
    if (!inner)
      return;
    auto plan = [&](ReshapeOp reshape, const TensorSharding &in) {
      TensorSharding out = TensorSharding::replicated(2);
      out.dims[0] = merged;
      out.dims[1] = in.dims[positions];
      OpPlan p;
      p.operands.push_back(in);
      p.results.push_back(out);
      reshape->setAttr(LoomDialect::kShardingAttrName,
                       out.toAttr(b.getContext(), meshRef));
      fixedPlans[reshape] = std::move(p);
    };
    plan(lhs, xIn);
    plan(rhs, dyIn);
  });
}

FailureOr<OpPlan> Partitioner::decide(Operation *op) {
  auto fixed = fixedPlans.find(op);
  if (fixed != fixedPlans.end())
    return fixed->second;
  OpPlan plan;
  if (ShardingAttr pin = getPinnedSharding(op)) {
    TensorSharding pinned = TensorSharding::fromAttr(pin);
    plan.operands.push_back(pinned);
    plan.results.push_back(pinned);
    return plan;
  }
  auto ruled = dyn_cast<ShardingRuleOpInterface>(op);
  if (!ruled) {
    // Ops without a rule (collectives written by hand) run replicated.
    for (Value v : op->getOperands())
      plan.operands.push_back(
          TensorSharding::replicated(cast<ShapedType>(v.getType()).getRank()));
    for (Value v : op->getResults())
      plan.results.push_back(
          TensorSharding::replicated(cast<ShapedType>(v.getType()).getRank()));
    return plan;
  }
  ShardingRule rule = ruled.getShardingRule();
  // Each factor's axes come from the tensor that shards it with the
  // strongest priority, as propagation chose them; among equals, the
  // results first (what the op makes), then the operands (the factors it
  // sums over), unless a later one extends the axes.
  SmallVector<AxisList> factorAxes(rule.getNumFactors());
  SmallVector<int> factorPriority(rule.getNumFactors(), kUnsetPriority);
  auto take = [&](Value v, OpTensor which) {
    TensorSharding target = targetOf(v);
    int priority = getShardingPriority(v);
    ArrayRef<ShardingRule::DimFactors> dims = getTensorFactors(rule, which);
    for (auto [dim, factors] : llvm::enumerate(dims)) {
      SmallVector<AxisList> split =
          splitAmongFactors(target.dims[dim], factors, rule, mesh);
      for (auto [factor, axes] : llvm::zip(factors, split)) {
        FactorKind kind = rule.getFactorKind(factor);
        if (axes.empty() || kind == FactorKind::NeedReplication)
          continue;
        bool stronger = priority < factorPriority[factor];
        bool extends = priority == factorPriority[factor] &&
                       isPrefixOf(factorAxes[factor], axes) &&
                       axes.size() > factorAxes[factor].size();
        if (stronger || extends) {
          factorAxes[factor] = axes;
          factorPriority[factor] = priority;
        }
      }
    }
  };
  for (auto [i, v] : llvm::enumerate(op->getResults()))
    take(v, {true, static_cast<unsigned>(i)});
  for (auto [i, v] : llvm::enumerate(op->getOperands()))
    take(v, {false, static_cast<unsigned>(i)});
  // An axis splits one factor: the strongest claim keeps it (ties: the
  // earlier factor).
  SmallVector<int64_t> order(rule.getNumFactors());
  std::iota(order.begin(), order.end(), 0);
  llvm::stable_sort(order, [&](int64_t a, int64_t b) {
    return factorPriority[a] < factorPriority[b];
  });
  llvm::SmallSet<StringRef, 4> claimed;
  for (int64_t factor : order) {
    AxisList &axes = factorAxes[factor];
    auto clash =
        llvm::find_if(axes, [&](StringRef a) { return claimed.contains(a); });
    axes.erase(clash, axes.end());
    claimed.insert(axes.begin(), axes.end());
  }
  dropUnprojectableFactors(rule, mesh, factorAxes);

  auto project = [&](OpTensor which, Value v) {
    ArrayRef<ShardingRule::DimFactors> dims = getTensorFactors(rule, which);
    TensorSharding s = TensorSharding::replicated(dims.size());
    auto type = cast<RankedTensorType>(v.getType());
    for (auto [dim, factors] : llvm::enumerate(dims)) {
      for (int64_t factor : factors) {
        const AxisList &axes = factorAxes[factor];
        if (axes.empty())
          break;
        s.dims[dim].append(axes);
        if (axesSize(axes, mesh) != rule.getFactorSize(factor))
          break;
      }
      // A dimension the axes do not divide stays whole.
      if (type.getDimSize(dim) % axesSize(s.dims[dim], mesh) != 0)
        s.dims[dim].clear();
    }
    return s;
  };
  for (auto [i, v] : llvm::enumerate(op->getOperands()))
    plan.operands.push_back(project({false, static_cast<unsigned>(i)}, v));
  for (auto [i, v] : llvm::enumerate(op->getResults())) {
    TensorSharding s = project({true, static_cast<unsigned>(i)}, v);
    // The factors the op sums over that this result lacks leave it a
    // partial sum over their axes.
    llvm::SmallSet<int64_t, 4> present;
    for (const auto &factors :
         getTensorFactors(rule, {true, static_cast<unsigned>(i)}))
      present.insert(factors.begin(), factors.end());
    // So does a vocabulary split that it lacks (the own partitions of the
    // vocab-parallel embedding and loss: each rank adds its rows' part).
    for (int64_t f = 0; f < rule.getNumFactors(); ++f)
      if ((rule.getFactorKind(f) == FactorKind::Reduction ||
           rule.getFactorKind(f) == FactorKind::OwnPartition) &&
          !present.contains(f))
        s.unreduced.append(factorAxes[f]);
    plan.results.push_back(s);
  }
  for (int64_t f = 0; f < rule.getNumFactors(); ++f)
    if (rule.getFactorKind(f) == FactorKind::Reduction &&
        !factorAxes[f].empty())
      plan.splitsSum = true;
  return plan;
}

RankedTensorType Partitioner::localType(RankedTensorType global,
                                        const TensorSharding &sharding) const {
  SmallVector<int64_t> shape(global.getShape());
  for (auto [dim, axes] : llvm::enumerate(sharding.dims))
    shape[dim] /= axesSize(axes, mesh);
  return RankedTensorType::get(shape, global.getElementType());
}

ArrayAttr Partitioner::axesAttr(ArrayRef<StringRef> axes) {
  SmallVector<Attribute> names;
  for (StringRef axis : axes)
    names.push_back(b.getStringAttr(axis));
  return b.getArrayAttr(names);
}

void Partitioner::tagLike(Operation *created, Operation *user) {
  for (StringRef name :
       {LoomDialect::kPhaseAttrName, LoomDialect::kLayerAttrName,
        LoomDialect::kMicrobatchAttrName})
    if (Attribute a = user ? user->getAttr(name) : Attribute())
      created->setAttr(name, a);
}

Value Partitioner::reshard(Value value, RankedTensorType global,
                           TensorSharding from, const TensorSharding &to,
                           Operation *user) {
  Location loc = user ? user->getLoc() : func.getLoc();
  auto typeOf = [&](const TensorSharding &s) { return localType(global, s); };
  // Pending sums: a reduce-scatter where the target splits a dimension by
  // the axis next, an all-reduce for the rest.
  AxisList reduceAll;
  for (StringRef axis : from.unreduced) {
    bool scattered = false;
    for (auto [dim, axes] : llvm::enumerate(from.dims)) {
      const AxisList &want = to.dims[dim];
      if (want.size() > axes.size() && isPrefixOf(axes, want) &&
          want[axes.size()] == axis) {
        TensorSharding next = from;
        next.dims[dim].push_back(axis);
        next.unreduced.clear();
        auto op = ReduceScatterOp::create(
            b, loc, typeOf(next), value,
            CollectiveReductionAttr::get(b.getContext(),
                                         CollectiveReduction::sum),
            meshRef, axesAttr({axis}), b.getI64IntegerAttr(dim));
        tagLike(op, user);
        value = op;
        from.dims[dim].push_back(axis);
        scattered = true;
        break;
      }
    }
    if (!scattered)
      reduceAll.push_back(axis);
  }
  from.unreduced.clear();
  if (!reduceAll.empty()) {
    auto op = AllReduceOp::create(
        b, loc, typeOf(from), value,
        CollectiveReductionAttr::get(b.getContext(), CollectiveReduction::sum),
        meshRef, axesAttr(reduceAll));
    tagLike(op, user);
    value = op;
  }
  // Axes moving together from the end of one dimension's axes to the next
  // places of another's: one all_to_all over them (the longest such run
  // first), instead of a gather and a slice.
  for (bool moved = true; moved;) {
    moved = false;
    for (auto [a, axesA] : llvm::enumerate(from.dims)) {
      for (size_t count = axesA.size(); count > 0 && !moved; --count) {
        AxisList kept(axesA.begin(), axesA.end() - count);
        AxisList moving(axesA.end() - count, axesA.end());
        const AxisList &wantA = to.dims[a];
        if (!isPrefixOf(kept, wantA) ||
            (wantA.size() > kept.size() && wantA[kept.size()] == moving[0]))
          continue;
        for (auto [b2, axesB] : llvm::enumerate(from.dims)) {
          AxisList grown = axesB;
          grown.append(moving.begin(), moving.end());
          if (b2 == a || !isPrefixOf(grown, to.dims[b2]))
            continue;
          TensorSharding next = from;
          next.dims[a] = kept;
          next.dims[b2] = grown;
          auto op = AllToAllOp::create(
              b, loc, typeOf(next), value, meshRef, axesAttr(moving),
              b.getI64IntegerAttr(b2), b.getI64IntegerAttr(a));
          tagLike(op, user);
          value = op;
          from = next;
          moved = true;
          break;
        }
      }
      if (moved)
        break;
    }
  }
  // Gathers first (they free axes), then slices.
  for (auto [dim, axes] : llvm::enumerate(from.dims)) {
    const AxisList &want = to.dims[dim];
    size_t common = 0;
    while (common < axes.size() && common < want.size() &&
           axes[common] == want[common])
      ++common;
    if (common == axes.size())
      continue;
    AxisList gathered(axes.begin() + common, axes.end());
    axes.resize(common);
    auto op = AllGatherOp::create(b, loc, typeOf(from), value, meshRef,
                                  axesAttr(gathered), b.getI64IntegerAttr(dim));
    tagLike(op, user);
    value = op;
  }
  for (auto [dim, axes] : llvm::enumerate(from.dims)) {
    const AxisList &want = to.dims[dim];
    if (axes.size() == want.size())
      continue;
    // Rank r's piece along the new axes (major first): offset = local size
    // x its row-major index over them.
    TensorSharding next = from;
    next.dims[dim] = want;
    RankedTensorType sliced = typeOf(next);
    RankedTensorType before = cast<RankedTensorType>(value.getType());
    SmallVector<int64_t> offsets(before.getRank(), 0);
    auto op = SliceOp::create(b, loc, value, b.getDenseI64ArrayAttr(offsets),
                              b.getDenseI64ArrayAttr(sliced.getShape()));
    setRankOffset(op, "offsets", before.getRank(), dim,
                  ArrayRef<StringRef>(want).drop_front(axes.size()),
                  sliced.getDimSize(dim));
    tagLike(op, user);
    value = op;
    from = next;
  }
  return value;
}

/// Ops that are linear in all their operands: partial sums pass through
/// them (a sum of partial sums is the partial sum of the sums), so a
/// reduction waits until something non-linear needs the whole value.
static bool passesPartialSums(Operation *op) {
  return isa<AddOp, SubOp, NegOp, ScaleOp, ReshapeOp, TransposeOp, ConvertOp>(
      op);
}

Value Partitioner::keepOnFirstRank(Value value, const AxisList &axes,
                                   Operation *user) {
  Location loc = user->getLoc();
  auto type = cast<RankedTensorType>(value.getType());
  int64_t ranks = axesSize(axes, mesh);
  // [value, zeros × (ranks - 1)] stacked, and each rank's row of it.
  SmallVector<int64_t> one = {1}, rest = {ranks - 1}, all = {ranks};
  for (int64_t n : type.getShape()) {
    one.push_back(n);
    rest.push_back(n);
    all.push_back(n);
  }
  auto row = ReshapeOp::create(b, loc, type.clone(one), value);
  auto zeros = FillOp::create(b, loc, type.clone(rest), b.getF64FloatAttr(0));
  auto stacked = ConcatOp::create(
      b, loc, type.clone(all), ValueRange{row, zeros}, b.getI64IntegerAttr(0));
  auto mine = SliceOp::create(
      b, loc, stacked,
      b.getDenseI64ArrayAttr(SmallVector<int64_t>(all.size(), 0)),
      b.getDenseI64ArrayAttr(one));
  setRankOffset(mine, "offsets", all.size(), 0, axes, 1);
  auto result = ReshapeOp::create(b, loc, type, mine);
  for (Operation *created :
       {row.getOperation(), zeros.getOperation(), stacked.getOperation(),
        mine.getOperation(), result.getOperation()})
    tagLike(created, user);
  return result;
}

/// A sum of one-element terms (the squares of a global norm, losses),
/// some partial over axes and some whole, stays partial over all of them:
/// the whole terms count on the first rank of each group only. The sum then
/// takes one all-reduce where it is used, instead of one per partial term.
void Partitioner::joinSmallPartialSums(Operation *op, OpPlan &plan) {
  if (!isa<AddOp, SubOp>(op))
    return;
  AxisList pending;
  for (auto [i, v] : llvm::enumerate(op->getOperands())) {
    const TensorSharding &have = actual[v];
    if (have.dims != plan.operands[i].dims ||
        cast<ShapedType>(v.getType()).getNumElements() != 1)
      return;
    for (StringRef axis : have.unreduced)
      if (!llvm::is_contained(pending, axis))
        pending.push_back(axis);
  }
  if (pending.empty())
    return;
  // Mesh order, so that equal sets compare equal.
  llvm::sort(pending, [&](StringRef x, StringRef y) {
    return *mesh.getAxisIndex(x) < *mesh.getAxisIndex(y);
  });
  for (auto [i, v] : llvm::enumerate(op->getOperands())) {
    TensorSharding have = actual[v];
    AxisList missing;
    for (StringRef axis : pending)
      if (!llvm::is_contained(have.unreduced, axis))
        missing.push_back(axis);
    if (missing.empty() && have.unreduced == pending)
      continue;
    if (!missing.empty() && !have.unreduced.empty() &&
        !llvm::all_of(have.unreduced, [&](StringRef a) {
          return llvm::is_contained(pending, a);
        }))
      return;
    Value partial = missing.empty() ? v : keepOnFirstRank(v, missing, op);
    TensorSharding now = have;
    now.unreduced = pending;
    actual[partial] = now;
    globalTypes[partial] = globalTypes[v];
    op->setOperand(i, partial);
  }
  for (TensorSharding &s : plan.operands)
    s.unreduced = pending;
  for (TensorSharding &s : plan.results)
    s.unreduced = pending;
}

/// Makes element `element` of `op`'s integer attribute `name` (of
/// `numElements`) depend on the rank: it gains (the rank's row-major index
/// along `axes`, major first) × `unit`, as the offset of the rank's piece.
void Partitioner::setRankOffset(Operation *op, StringRef name,
                                unsigned numElements, unsigned element,
                                ArrayRef<StringRef> axes, int64_t unit) {
  SmallVector<Attribute> terms;
  int64_t stride = unit;
  for (StringRef axis : llvm::reverse(axes)) {
    SmallVector<int64_t> coeffs(numElements, 0);
    coeffs[element] = stride;
    terms.push_back(RankTermAttr::get(b.getContext(), meshRef,
                                      b.getStringAttr(axis), coeffs, 0));
    stride *= mesh.getAxisSize(axis);
  }
  op->setAttr(
      LoomDialect::kRankTermsAttrName,
      b.getDictionaryAttr(b.getNamedAttr(
          name, b.getArrayAttr(llvm::to_vector(llvm::reverse(terms))))));
}

/// Sets `op`'s `vocab_start` to the first vocabulary row of the rank's
/// piece: (its index along `axes`) x `rows`.
void Partitioner::setVocabStart(Operation *op, const AxisList &axes,
                                int64_t rows) {
  op->setAttr("vocab_start", b.getI64IntegerAttr(0));
  setRankOffset(op, "vocab_start", 1, 0, axes, rows);
}

/// Megatron's vocab-parallel cross-entropy statistics: each position's
/// log-sum-exp over the whole vocabulary from the rank's columns, with an
/// all-reduce of the maxima and one of the sums of exponentials; the
/// logits are never gathered.
Value Partitioner::globalLogSumExp(Value logits, const AxisList &vocabAxes,
                                   Operation *user) {
  Value &memo = logSumExps[logits];
  if (memo)
    return memo;
  Location loc = user->getLoc();
  auto type = cast<RankedTensorType>(logits.getType());
  int64_t last = type.getRank() - 1;
  auto f32 = type.clone(b.getF32Type());
  auto rows =
      RankedTensorType::get(type.getShape().drop_back(), b.getF32Type());
  SmallVector<Operation *> created;
  Value x = logits;
  if (!type.getElementType().isF32()) {
    x = ConvertOp::create(b, loc, f32, x);
    created.push_back(x.getDefiningOp());
  }
  auto dims = b.getDenseI64ArrayAttr({last});
  SmallVector<int64_t> kept(last);
  std::iota(kept.begin(), kept.end(), 0);
  auto localMax = ReduceOp::create(b, loc, x, ReduceKind::max, dims, false);
  auto max = AllReduceOp::create(
      b, loc, rows, localMax,
      CollectiveReductionAttr::get(b.getContext(), CollectiveReduction::max),
      meshRef, axesAttr(vocabAxes));
  auto wide =
      BroadcastOp::create(b, loc, f32, max, b.getDenseI64ArrayAttr(kept));
  auto shifted = SubOp::create(b, loc, x, wide);
  auto exps = ExpOp::create(b, loc, shifted);
  auto localSum = ReduceOp::create(b, loc, exps, ReduceKind::sum, dims, false);
  auto sum = AllReduceOp::create(
      b, loc, rows, localSum,
      CollectiveReductionAttr::get(b.getContext(), CollectiveReduction::sum),
      meshRef, axesAttr(vocabAxes));
  auto log = LogOp::create(b, loc, sum);
  auto lse = AddOp::create(b, loc, log, max);
  created.append({localMax, max, wide, shifted, exps, localSum, sum, log, lse});
  for (Operation *c : created)
    tagLike(c, user);
  return memo = lse;
}

/// The vocab-parallel forms of the ops whose vocabulary is split (their
/// own partitions): an embedding looks up its rows only (the others give
/// zeros, and its result is a partial sum), its gradient fills its rows,
/// the loss counts the positions whose target is among its columns against
/// the global log-sum-exp, and the loss's gradient takes that log-sum-exp.
LogicalResult Partitioner::partitionVocabulary(Operation *op,
                                               const OpPlan &plan) {
  auto axesOf = [](const TensorSharding &s, int64_t dim) -> const AxisList & {
    return s.dims[dim];
  };
  if (auto embedding = dyn_cast<EmbeddingOp>(op)) {
    const AxisList &axes = axesOf(plan.operands[0], 0);
    if (!axes.empty())
      setVocabStart(op, axes, embedding.getTable().getType().getDimSize(0));
    return success();
  }
  if (auto grad = dyn_cast<EmbeddingGradOp>(op)) {
    const AxisList &axes = axesOf(plan.results[0], 0);
    if (!axes.empty())
      setVocabStart(op, axes, grad.getTableGrad().getType().getDimSize(0));
    return success();
  }
  Value logits;
  unsigned lseIndex = 0;
  if (auto ce = dyn_cast<CrossEntropyOp>(op)) {
    logits = ce.getLogits();
    lseIndex = 2;
  } else if (auto grad = dyn_cast<CrossEntropyGradOp>(op)) {
    logits = grad.getLogits();
    lseIndex = 3;
  } else {
    return success();
  }
  auto type = cast<RankedTensorType>(logits.getType());
  const AxisList &axes = axesOf(plan.operands[0], type.getRank() - 1);
  if (axes.empty())
    return success();
  if (op->getNumOperands() > lseIndex)
    return op->emitOpError("is already vocab-parallel");
  b.setInsertionPoint(op);
  Value lse = globalLogSumExp(logits, axes, op);
  op->insertOperands(lseIndex, lse);
  setVocabStart(op, axes, type.getDimSize(type.getRank() - 1));
  return success();
}

/// The expert-parallel forms of dispatch, combine and combine_grad (their
/// own partitions of the experts): the rank's block of experts starts at
/// (its index along the axes) x the block's size, of all the experts. With
/// their token groups split, each rank's op holds its groups alone.
void Partitioner::partitionExperts(Operation *op, const OpPlan &plan) {
  Value experts; // the tensor whose dimension 0 is the experts
  const AxisList *axes = nullptr;
  if (auto dispatch = dyn_cast<DispatchOp>(op)) {
    experts = dispatch.getResult();
    axes = &plan.results[0].dims[0];
  } else if (isa<CombineOp, CombineGradOp>(op)) {
    experts = op->getOperand(0);
    axes = &plan.operands[0].dims[0];
  }
  if (!axes)
    return;
  auto slots = cast<RankedTensorType>(experts.getType()).getDimSize(1);
  int64_t slotSplit = globalTypes[experts].getDimSize(1) / slots;
  if (slotSplit > 1) {
    auto split = [&](auto moeOp) {
      moeOp.setTokenGroups(moeOp.getTokenGroups() / slotSplit);
    };
    if (auto dispatch = dyn_cast<DispatchOp>(op)) {
      split(dispatch);
      dispatch.setCapacity(slots);
    } else if (auto combine = dyn_cast<CombineOp>(op)) {
      split(combine);
    } else {
      split(cast<CombineGradOp>(op));
    }
  }
  if (axes->empty())
    return;
  int64_t total = globalTypes[experts].getDimSize(0);
  int64_t block = cast<RankedTensorType>(experts.getType()).getDimSize(0);
  if (auto dispatch = dyn_cast<DispatchOp>(op))
    dispatch.setNumExperts(block);
  op->setAttr("total_experts", b.getI64IntegerAttr(total));
  op->setAttr("expert_start", b.getI64IntegerAttr(0));
  setRankOffset(op, "expert_start", 1, 0, *axes, block);
}

LogicalResult Partitioner::rewrite(Operation *op, const OpPlan &givenPlan) {
  b.setInsertionPoint(op);
  OpPlan plan = givenPlan;
  joinSmallPartialSums(op, plan);
  if (passesPartialSums(op) && op->getNumOperands() > 0) {
    // Operands that are all partial over the same axes, and split as the
    // op needs, stay partial, and so does the result.
    const AxisList &pending = actual[op->getOperand(0)].unreduced;
    bool same = !pending.empty();
    for (auto [i, v] : llvm::enumerate(op->getOperands()))
      same &= actual[v].unreduced == pending &&
              actual[v].dims == plan.operands[i].dims;
    if (same) {
      for (TensorSharding &s : plan.operands)
        s.unreduced = pending;
      for (TensorSharding &s : plan.results)
        s.unreduced = pending;
    } else if (isa<AddOp, SubOp, NegOp, ScaleOp, ConvertOp>(op)) {
      // Element-wise: partial sums split alike (as each other, not as the
      // op wanted) are summed as they are, and the sum reshards once (the
      // input gradients of Q, K and V reduce-scatter together).
      const TensorSharding &first = actual[op->getOperand(0)];
      bool alike = !first.unreduced.empty();
      for (Value v : op->getOperands())
        alike &= actual[v] == first;
      // Not in the forward when the op wants its operands reduced and split
      // (sequence parallelism's residual stream): summed partial sums would
      // keep the stream whole and unreduced on every rank, tp times the
      // bytes of Megatron's sequence-sharded stream (and of what a pipeline
      // stage sends), for the same number of reduce-scatters.
      auto phase = op->getAttrOfType<PhaseAttr>(LoomDialect::kPhaseAttrName);
      bool forward = phase && phase.getValue() == Phase::fwd;
      if (alike && forward)
        for (const TensorSharding &want : plan.operands)
          if (want.unreduced.empty() && want.dims != first.dims &&
              llvm::any_of(want.dims,
                           [](const AxisList &d) { return !d.empty(); }))
            alike = false;
      if (alike) {
        for (TensorSharding &s : plan.operands)
          s = first;
        for (TensorSharding &s : plan.results)
          s = first;
      }
    }
  }
  for (auto [i, operand] : llvm::enumerate(op->getOperands())) {
    Value v = operand;
    const TensorSharding &have = actual[v];
    const TensorSharding &want = plan.operands[i];
    if (have == want)
      continue;
    // A gather is made again in each part of the step that needs it (not
    // kept from the forward); a reduction is made once and its result kept,
    // as it is smaller than the partial sums it replaces.
    Attribute key = want.toAttr(b.getContext(), meshRef);
    int64_t part = have.unreduced.empty() ? getStepPart(op) : -1;
    Value &local = reshards[{v, key, part}];
    if (!local) {
      local = reshard(v, globalTypes[v], have, want, op);
      actual[local] = want;
      globalTypes[local] = globalTypes[v];
    }
    op->setOperand(i, local);
  }
  if (getPinnedSharding(op)) {
    // The pin is now the reshard before it.
    op->getResult(0).replaceAllUsesWith(op->getOperand(0));
    op->erase();
    return success();
  }
  for (auto [i, result] : llvm::enumerate(op->getResults())) {
    auto global = cast<RankedTensorType>(result.getType());
    globalTypes[result] = global;
    actual[result] = plan.results[i];
    result.setType(localType(global, plan.results[i]));
  }
  // Attributes that hold sizes or depend on where a rank's piece is.
  if (auto slice = dyn_cast<SliceOp>(op))
    slice.setSizesAttr(b.getDenseI64ArrayAttr(
        cast<RankedTensorType>(slice.getType()).getShape()));
  if (auto rope = dyn_cast<RopeOp>(op)) {
    const AxisList &seqAxes = plan.operands[0].dims[1];
    if (!seqAxes.empty()) {
      // Rank r's positions start at (its index along the axes) x local S.
      setRankOffset(rope, "position_offset", 1, 0, seqAxes,
                    cast<RankedTensorType>(rope.getType()).getDimSize(1));
    }
  }
  if (isa<AttentionOp, AttentionGradOp>(op)) {
    const AxisList &queryAxes = plan.operands[0].dims[1];
    if (!queryAxes.empty()) {
      // Context parallelism: rank r's queries start at (its index along
      // the axes) x local S of the keys' positions.
      op->setAttr("query_offset", b.getI64IntegerAttr(0));
      setRankOffset(
          op, "query_offset", 1, 0, queryAxes,
          cast<RankedTensorType>(op->getOperand(0).getType()).getDimSize(1));
    }
  }
  if (failed(partitionVocabulary(op, plan)))
    return failure();
  partitionExperts(op, plan);
  if (plan.splitsSum) {
    // Losses and means divide by the global count.
    if (auto ce = dyn_cast<CrossEntropyOp>(op); ce && !ce.getCountAttr())
      ce.setCountAttr(
          b.getI64IntegerAttr(globalTypes[ce.getTargets()].getNumElements()));
    if (auto mean = dyn_cast<ReduceOp>(op);
        mean && mean.getKind() == ReduceKind::mean) {
      int64_t count = 1;
      RankedTensorType in = globalTypes[mean.getInput()];
      for (int64_t d : mean.getDims())
        count *= in.getDimSize(d < 0 ? d + in.getRank() : d);
      mean.setKind(ReduceKind::sum);
      b.setInsertionPointAfter(mean);
      auto scale = ScaleOp::create(b, mean.getLoc(), mean.getResult(),
                                   b.getF64FloatAttr(1.0 / count));
      tagLike(scale, mean);
      mean.getResult().replaceAllUsesExcept(scale, scale);
      actual[scale] = actual[mean.getResult()];
      globalTypes[scale] = globalTypes[mean.getResult()];
    }
  }
  // The gradient of a loss split over positions divides by the same count.
  if (auto ceGrad = dyn_cast<CrossEntropyGradOp>(op);
      ceGrad && !ceGrad.getCountAttr() &&
      llvm::any_of(plan.operands[1].dims,
                   [](const AxisList &axes) { return !axes.empty(); }))
    ceGrad.setCountAttr(
        b.getI64IntegerAttr(globalTypes[ceGrad.getTargets()].getNumElements()));
  op->removeAttr(LoomDialect::kShardingAttrName);
  op->removeAttr(LoomDialect::kPriorityAttrName);
  return success();
}

LogicalResult Partitioner::run() {
  // Decisions on the global shapes.
  std::vector<std::pair<Operation *, OpPlan>> plans;
  planContractedMerges();
  Operation *terminator = func.getBody().front().getTerminator();
  for (Operation &op : func.getBody().front()) {
    if (&op == terminator)
      continue;
    FailureOr<OpPlan> plan = decide(&op);
    if (failed(plan))
      return failure();
    plans.push_back({&op, std::move(*plan)});
  }
  auto updates = getPersistentUpdates(func);
  if (failed(updates))
    return failure();
  // A new parameter or state is returned as its argument is sharded (it
  // lives in the argument's bytes); other results as their attribute says,
  // else as computed.
  SmallVector<TensorSharding> resultTargets;
  for (auto [i, v] : llvm::enumerate(terminator->getOperands())) {
    auto update = updates->find(v);
    if (update != updates->end()) {
      resultTargets.push_back(targetOf(update->second));
      continue;
    }
    resultTargets.push_back(targetOf(v));
    if (auto attr = func.getResultAttrOfType<ShardingAttr>(
            i, LoomDialect::kShardingAttrName)) {
      resultTargets[i] = TensorSharding::fromAttr(attr);
      resultTargets[i].unreduced.clear();
    }
  }

  // Arguments take their local types; the sharding they are local under
  // stays with them (loom.shard_of), for the runtime to slice and gather.
  SmallVector<Type> argTypes;
  for (BlockArgument arg : func.getArguments()) {
    auto global = cast<RankedTensorType>(arg.getType());
    TensorSharding s = targetOf(arg);
    globalTypes[arg] = global;
    actual[arg] = s;
    arg.setType(localType(global, s));
    argTypes.push_back(arg.getType());
    func.removeArgAttr(arg.getArgNumber(), LoomDialect::kShardingAttrName);
    func.removeArgAttr(arg.getArgNumber(), LoomDialect::kPriorityAttrName);
    if (!s.isReplicated())
      func.setArgAttr(arg.getArgNumber(), LoomDialect::kShardOfAttrName,
                      s.toAttr(b.getContext(), meshRef));
  }
  for (auto &[op, plan] : plans)
    if (failed(rewrite(op, plan)))
      return failure();

  // Results as the function returns them: reduced, sharded as required.
  b.setInsertionPoint(terminator);
  SmallVector<Type> resultTypes;
  for (auto [i, operand] : llvm::enumerate(terminator->getOperands())) {
    Value v = operand;
    const TensorSharding &want = resultTargets[i];
    if (actual[v] != want) {
      Value local = reshard(v, globalTypes[v], actual[v], want, nullptr);
      terminator->setOperand(i, local);
    }
    resultTypes.push_back(terminator->getOperand(i).getType());
    func.removeResultAttr(i, b.getStringAttr(LoomDialect::kShardingAttrName));
    if (!want.isReplicated())
      func.setResultAttr(i, LoomDialect::kShardOfAttrName,
                         want.toAttr(b.getContext(), meshRef));
  }
  func.setType(b.getFunctionType(argTypes, resultTypes));
  return success();
}

struct LoomPartitionPass
    : public loom::impl::LoomPartitionPassBase<LoomPartitionPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<MeshOp> meshes(module.getOps<MeshOp>());
    if (meshes.empty())
      return; // nothing is sharded
    if (meshes.size() > 1) {
      module.emitError("partitioning works over one mesh; the module "
                       "declares ")
          << meshes.size();
      return signalPassFailure();
    }
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      if (failed(Partitioner(func, meshes.front()).run()))
        return signalPassFailure();
    }
  }
};

} // namespace
