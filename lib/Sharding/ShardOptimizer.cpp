//===- ShardOptimizer.cpp - ZeRO: the optimizer split over data ranks -----===//
//
// Megatron-LM's distributed optimizer and its ZeRO-2/3 relatives, as
// shardings: after a first propagation has said how each parameter is
// split (by tensor parallelism), every AdamW update is moved onto a
// further split over the data-parallel axis. The optimizer then reads its
// gradient piece (a reduce-scatter where plain data parallelism would
// all-reduce) and its moments live in pieces; what differs between the
// stages is where the split starts:
//
//   zero=1  the whole gradient is reduce-scattered once, after
//           accumulation; the new parameter is all-gathered after AdamW.
//   zero=2  each microbatch's gradient is reduce-scattered as soon as it
//           is made, and accumulation adds pieces.
//   zero=3  parameters live in pieces too: each microbatch's forward and
//           backward all-gathers the ones it uses, so no whole parameter
//           outlives the part of the step that needs it.
//
// The passes write this with loom.reshard (a value wanted under a second
// sharding) and sharding seeds on the moments and, for zero=3, on the
// parameters; a second propagation and -loom-partition do the rest. A
// parameter none of whose dimensions divides over the axis (after tensor
// parallelism) keeps a whole optimizer on every data rank.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Sharding/FactorSharding.h"
#include "loom/Sharding/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"

namespace loom {
#define GEN_PASS_DEF_LOOMSHARDOPTIMIZERPASS
#include "loom/Sharding/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;

namespace {

/// `sharding` with the data `axes` it does not use yet added together on
/// the first dimension of `shape` whose piece divides by their size; none
/// when no dimension does or it uses them all already.
std::optional<TensorSharding> withAxes(TensorSharding sharding,
                                       ArrayRef<int64_t> shape,
                                       ArrayRef<StringRef> axes,
                                       MeshAttr mesh) {
  AxisList added;
  for (StringRef axis : axes)
    if (llvm::none_of(sharding.dims, [&](const AxisList &dim) {
          return llvm::is_contained(dim, axis);
        }))
      added.push_back(axis);
  if (added.empty())
    return std::nullopt;
  int64_t size = axesSize(added, mesh);
  for (auto [dim, extent] : llvm::enumerate(shape)) {
    int64_t piece = extent / axesSize(sharding.dims[dim], mesh);
    if (piece % size == 0) {
      sharding.dims[dim].append(added.begin(), added.end());
      return sharding;
    }
  }
  return std::nullopt;
}

/// Tags `created` as part of the same layer, microbatch and phase as `like`,
/// so that pipeline cuts and getStepPart see it where its user is.
void tagLike(Operation *created, Operation *like) {
  for (StringRef name :
       {LoomDialect::kLayerAttrName, LoomDialect::kMicrobatchAttrName,
        LoomDialect::kPhaseAttrName, LoomDialect::kRecomputedAttrName})
    if (Attribute attr = like->getAttr(name))
      created->setAttr(name, attr);
}

/// Whether `op` adds up gradients of a parameter (autodiff's accumulation
/// across uses and microbatches).
bool isGradientSum(Operation *op) {
  auto phase = op->getAttrOfType<PhaseAttr>(LoomDialect::kPhaseAttrName);
  return isa_and_nonnull<AddOp>(op) && phase &&
         phase.getValue() == Phase::bwd_weight;
}

class OptimizerSharder {
public:
  OptimizerSharder(func::FuncOp func, MeshOp mesh, ArrayRef<StringRef> axes,
                   int zero)
      : func(func), mesh(mesh.getShape()),
        meshRef(FlatSymbolRefAttr::get(mesh.getSymNameAttr())), axes(axes),
        zero(zero), b(func.getContext()) {}

  LogicalResult shard(AdamWOp adamw);

private:
  Value reshardAfter(Value value, ShardingAttr sharding);
  bool reshardContributions(Value gradient, ShardingAttr sharding);
  int64_t soleMicrobatch(Value v);
  void gatherParameterPerPart(BlockArgument param, AdamWOp adamw,
                              ShardingAttr whole);

  func::FuncOp func;
  MeshAttr mesh;
  FlatSymbolRefAttr meshRef;
  /// The data-parallel axes the mesh has.
  ArrayRef<StringRef> axes;
  int zero;
  OpBuilder b;
  DenseMap<Value, int64_t> microbatchOf;
};

constexpr int64_t kNoMicrobatch = -1;
constexpr int64_t kSeveralMicrobatches = -2;

/// `value` under `sharding`, from a loom.reshard placed right after its
/// definition and tagged like it.
Value OptimizerSharder::reshardAfter(Value value, ShardingAttr sharding) {
  Operation *def = value.getDefiningOp();
  if (def)
    b.setInsertionPointAfter(def);
  else
    b.setInsertionPointToStart(&func.getBody().front());
  auto reshard = ReshardOp::create(b, value.getLoc(), value, sharding);
  if (def)
    tagLike(reshard, def);
  return reshard.getResult();
}

/// The one microbatch whose backward made `v` (through gradient sums),
/// kNoMicrobatch when nothing says, kSeveralMicrobatches when it sums
/// several.
int64_t OptimizerSharder::soleMicrobatch(Value v) {
  auto found = microbatchOf.find(v);
  if (found != microbatchOf.end())
    return found->second;
  Operation *def = v.getDefiningOp();
  int64_t result = kNoMicrobatch;
  if (def && isGradientSum(def)) {
    for (Value operand : def->getOperands()) {
      int64_t m = soleMicrobatch(operand);
      if (m == kNoMicrobatch || m == result)
        continue;
      result = result == kNoMicrobatch ? m : kSeveralMicrobatches;
    }
  } else if (def) {
    if (auto m =
            def->getAttrOfType<IntegerAttr>(LoomDialect::kMicrobatchAttrName))
      result = m.getInt();
  }
  return microbatchOf[v] = result;
}

/// ZeRO-2: reshards each microbatch's contribution to `gradient` where the
/// sum over microbatches takes it, so that accumulation adds pieces.
/// False when `gradient` is one microbatch's (the caller reshards it).
bool OptimizerSharder::reshardContributions(Value gradient,
                                            ShardingAttr sharding) {
  Operation *sum = gradient.getDefiningOp();
  if (!sum || !isGradientSum(sum) ||
      soleMicrobatch(gradient) != kSeveralMicrobatches)
    return false;
  for (OpOperand &operand : sum->getOpOperands()) {
    Value part = operand.get();
    if (part.hasOneUse() && reshardContributions(part, sharding))
      continue;
    operand.set(reshardAfter(part, sharding));
  }
  return true;
}

/// ZeRO-3: every use of `param` but the optimizer's reads it whole again
/// from one all-gather per part of the step (a microbatch's forward, its
/// backward), placed before the part's first use.
void OptimizerSharder::gatherParameterPerPart(BlockArgument param,
                                              AdamWOp adamw,
                                              ShardingAttr whole) {
  llvm::MapVector<int64_t, SmallVector<OpOperand *>> usesByPart;
  for (OpOperand &use : param.getUses())
    if (use.getOwner() != adamw.getOperation())
      usesByPart[getStepPart(use.getOwner())].push_back(&use);
  for (auto &[part, uses] : usesByPart) {
    Operation *first = uses.front()->getOwner();
    for (OpOperand *use : uses)
      if (use->getOwner()->isBeforeInBlock(first))
        first = use->getOwner();
    b.setInsertionPoint(first);
    auto gather = ReshardOp::create(b, param.getLoc(), param, whole);
    tagLike(gather, first);
    for (OpOperand *use : uses)
      use->set(gather.getResult());
  }
}

LogicalResult OptimizerSharder::shard(AdamWOp adamw) {
  auto param = dyn_cast<BlockArgument>(adamw.getParam());
  auto expAvg = dyn_cast<BlockArgument>(adamw.getExpAvg());
  auto expAvgSq = dyn_cast<BlockArgument>(adamw.getExpAvgSq());
  if (!param || !expAvg || !expAvgSq)
    return adamw.emitError("ZeRO shards an optimizer whose parameter and "
                           "moments are arguments of the step");
  auto type = cast<RankedTensorType>(param.getType());
  ShardingAttr paramAttr = getValueSharding(param);
  TensorSharding whole = paramAttr ? TensorSharding::fromAttr(paramAttr)
                                   : TensorSharding::replicated(type.getRank());
  std::optional<TensorSharding> piece =
      withAxes(whole, type.getShape(), axes, mesh);
  if (!piece)
    return success(); // a whole optimizer on every data rank
  MLIRContext *context = func.getContext();
  ShardingAttr pieceAttr = piece->toAttr(context, meshRef);
  ShardingAttr wholeAttr = whole.toAttr(context, meshRef);

  // Moments: seeds in pieces; their new values follow (persistent updates).
  for (BlockArgument moment : {expAvg, expAvgSq})
    func.setArgAttr(moment.getArgNumber(), LoomDialect::kShardingAttrName,
                    pieceAttr);

  // Gradient: every reader but the step's outputs takes the piece (the
  // global norm then sums pieces).
  Value gradient = adamw.getGrad();
  if (zero < 2 || !reshardContributions(gradient, pieceAttr)) {
    Value gradientPiece = reshardAfter(gradient, pieceAttr);
    gradient.replaceUsesWithIf(gradientPiece, [&](OpOperand &use) {
      return use.getOwner() != gradientPiece.getDefiningOp() &&
             !isa<func::ReturnOp>(use.getOwner());
    });
  }

  if (zero >= 3) {
    // The parameter lives in pieces; its users gather it.
    func.setArgAttr(param.getArgNumber(), LoomDialect::kShardingAttrName,
                    pieceAttr);
    gatherParameterPerPart(param, adamw, wholeAttr);
    return success();
  }
  // The optimizer updates its piece of the parameter; the new parameter is
  // gathered whole for the next step.
  b.setInsertionPoint(adamw);
  adamw.getParamMutable().assign(
      ReshardOp::create(b, param.getLoc(), param, pieceAttr).getResult());
  Value newParam = adamw.getNewParam();
  Operation *ret = func.getBody().front().getTerminator();
  b.setInsertionPoint(ret);
  Value gathered;
  for (OpOperand &operand : ret->getOpOperands())
    if (operand.get() == newParam) {
      if (!gathered)
        gathered = ReshardOp::create(b, newParam.getLoc(), newParam, wholeAttr);
      operand.set(gathered);
    }
  return success();
}

struct LoomShardOptimizerPass
    : public loom::impl::LoomShardOptimizerPassBase<LoomShardOptimizerPass> {
  using LoomShardOptimizerPassBase::LoomShardOptimizerPassBase;

  void runOnOperation() override {
    if (zero < 0 || zero > 3) {
      getOperation().emitError("-loom-shard-optimizer: zero must be 0, 1, 2 "
                               "or 3, not ")
          << zero;
      return signalPassFailure();
    }
    if (zero == 0)
      return;
    ModuleOp module = getOperation();
    SmallVector<StringRef> names;
    llvm::SplitString(axis, names, ",");
    MeshOp mesh;
    SmallVector<StringRef> axes;
    for (MeshOp candidate : module.getOps<MeshOp>()) {
      SmallVector<StringRef> found;
      for (StringRef name : names)
        if (candidate.getShape().getAxisIndex(name))
          found.push_back(name);
      if (found.empty())
        continue;
      if (mesh) {
        candidate.emitError("-loom-shard-optimizer: meshes @")
            << mesh.getSymName() << " and @" << candidate.getSymName()
            << " both have data-parallel axes (" << axis << ")";
        return signalPassFailure();
      }
      mesh = candidate;
      axes = found;
    }
    if (!mesh)
      return; // one data rank: nothing to split
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      OptimizerSharder sharder(func, mesh, axes, zero);
      SmallVector<AdamWOp> updates(func.getOps<AdamWOp>());
      for (AdamWOp adamw : updates)
        if (failed(sharder.shard(adamw)))
          return signalPassFailure();
    }
  }
};

} // namespace
