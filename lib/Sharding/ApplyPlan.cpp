//===- ApplyPlan.cpp - A parallel plan as a mesh and sharding seeds -------===//
//
// Reads a plan spec (loom/Plan), checks it against the model the function
// computes (its heads, hidden units, vocabulary, layers, read off the
// graph) and the rules of the reference guides, declares the mesh in
// Megatron's rank order and seeds the shardings that define each
// parallelism. The seeds name what the parallelism splits, never a
// particular model's weights; propagation finds the weights:
//
//   dp  every data input (`loom.input` of rank >= 1) by its rows (dim 0);
//   tp  every attention's heads and the hidden units of every activation
//       (gelu, silu, swiglu): Megatron's column- and row-parallel pairs
//       follow, and the row-parallel outputs become partial sums; and the
//       vocabulary of every embedding table and of every loss's logits
//       (vocab-parallel embedding, output layer and cross-entropy).
//   sp  every norm's sequence dimension over tp, as a weaker seed
//       (loom.priority 2): it spreads over the residual stream between the
//       tensor-parallel regions, which keep their own split, so the
//       partitioner all-gathers the sequence into each region and
//       reduce-scatters its partial sums out of it.
//   cp  every data input's sequence (dim 1) over cp: every op but
//       attention runs on the rank's positions. cp_comm=all_gather lets
//       attention's rule gather the keys and values (and reduce-scatter
//       their gradients); cp_comm=a2a pins attention's operands and
//       results to heads split over cp and the whole sequence (Ulysses),
//       so an all-to-all trades the sequence for heads on the way in and
//       back on the way out. With sp, the sequence splits over cp, then tp.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Plan/PlanLayout.h"
#include "loom/Plan/PlanSpec.h"
#include "loom/Plan/PlanValidation.h"
#include "loom/Sharding/FactorSharding.h"
#include "loom/Sharding/Passes.h"

#include "ExpertDispatch.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"

namespace loom {
#define GEN_PASS_DEF_LOOMAPPLYPLANPASS
#include "loom/Sharding/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;

namespace {

/// The priority of sequence-parallel seeds: below the plan's other seeds
/// (kDefaultPriority).
constexpr int64_t kSequenceParallelPriority = kDefaultPriority + 1;

/// The model facts a plan is checked against, read off the graph.
ModelFacts readModelFacts(func::FuncOp func) {
  ModelFacts facts;
  func.walk([&](Operation *op) {
    if (auto layer =
            op->getAttrOfType<IntegerAttr>(LoomDialect::kLayerAttrName))
      facts.layers = std::max<int64_t>(facts.layers, layer.getInt() + 1);
    if (auto attention = dyn_cast<AttentionOp>(op)) {
      facts.heads = attention.getQuery().getType().getDimSize(2);
      facts.kvHeads = attention.getKey().getType().getDimSize(2);
      facts.seq = attention.getQuery().getType().getDimSize(1);
    }
    if (isa<GeluOp, SiluOp, SwigluOp>(op))
      facts.ffn =
          cast<ShapedType>(op->getResult(0).getType()).getShape().back();
    if (auto embedding = dyn_cast<EmbeddingOp>(op))
      facts.hidden = embedding.getTable().getType().getDimSize(1);
    if (auto ce = dyn_cast<CrossEntropyOp>(op))
      facts.vocab = ce.getLogits().getType().getShape().back();
    if (auto router = dyn_cast<RouterOp>(op)) {
      facts.experts = router.getLogits().getType().getDimSize(1);
      facts.topK = static_cast<int64_t>(router.getTopK());
    }
  });
  return facts;
}

/// Data-parallel microbatches as Megatron-LM makes them: each data rank
/// takes a contiguous block of the global batch and cuts its own
/// microbatches from it. The training step slices microbatch k as rows
/// [k·c, (k+1)·c) of `input` (c = B/m), which lie on few ranks; when every
/// use of `input` is such a slice, microbatch k becomes instead the k-th c/dp
/// rows of each rank's block (a reshape to [dp, m, c/dp, ...], a slice of
/// the m dimension, a reshape back), which a split over the rows passes
/// through. Microbatches then hold other rows, but the step sums over all of
/// them, so the loss and gradients are the same up to rounding, as long as
/// rows are computed apart: not when an MoE dispatch may drop tokens (which
/// ones depends on the others in its microbatch), nor when a dispatch
/// only counts the microbatch's choices (no grouped matmul reads it: the
/// router's load-balancing loss, a product of two means over its tokens),
/// and then the microbatches stay as they are (and are gathered).
bool rowsAreIndependent(func::FuncOp func) {
  WalkResult walk = func.walk([](DispatchOp dispatch) {
    int64_t tokens = dispatch.getInput().getType().getDimSize(0);
    bool counts = llvm::none_of(dispatch->getUsers(), [](Operation *user) {
      return isa<GroupedMatmulOp>(user);
    });
    return static_cast<int64_t>(dispatch.getCapacity()) < tokens || counts
               ? WalkResult::interrupt()
               : WalkResult::advance();
  });
  return !walk.wasInterrupted();
}

void regroupMicrobatches(BlockArgument input, int64_t dp) {
  auto type = cast<RankedTensorType>(input.getType());
  SmallVector<SliceOp> slices;
  for (Operation *user : input.getUsers()) {
    auto slice = dyn_cast<SliceOp>(user);
    if (!slice || !slice->hasAttr(LoomDialect::kMicrobatchAttrName))
      return;
    for (int64_t d = 1; d < type.getRank(); ++d)
      if (slice.getSizes()[d] != type.getDimSize(d))
        return;
    slices.push_back(slice);
  }
  int64_t m = static_cast<int64_t>(slices.size());
  int64_t rows = type.getDimSize(0);
  if (m < 2 || rows % (m * dp) != 0)
    return;
  int64_t chunk = rows / m;
  llvm::SmallDenseSet<int64_t> seen;
  for (SliceOp slice : slices)
    if (slice.getSizes()[0] != chunk || slice.getOffsets()[0] % chunk != 0 ||
        !seen.insert(slice.getOffsets()[0] / chunk).second)
      return;

  SmallVector<int64_t> blocks = {dp, m, chunk / dp};
  llvm::append_range(blocks, type.getShape().drop_front());
  OpBuilder b(input.getContext());
  b.setInsertionPointToStart(input.getOwner());
  auto byRank = ReshapeOp::create(b, input.getLoc(), type.clone(blocks), input);
  for (SliceOp slice : slices) {
    b.setInsertionPoint(slice);
    SmallVector<int64_t> offsets(blocks.size(), 0), sizes = blocks;
    offsets[1] = slice.getOffsets()[0] / chunk;
    sizes[1] = 1;
    auto piece = SliceOp::create(b, slice.getLoc(), type.clone(sizes), byRank,
                                 offsets, sizes);
    auto microbatch = ReshapeOp::create(b, slice.getLoc(), slice.getType(),
                                        piece.getResult());
    for (Operation *created : {piece.getOperation(), microbatch.getOperation()})
      created->setDiscardableAttrs(slice->getDiscardableAttrDictionary());
    slice.getResult().replaceAllUsesWith(microbatch.getResult());
    slice.erase();
  }
}

/// Whether a parameter is read as a table of learned positions ([seq, ...]
/// broadcast along the sequence).
bool readsPositions(OpOperand &use) {
  auto broadcast = dyn_cast<BroadcastOp>(use.getOwner());
  return broadcast && broadcast.getDims()[0] == 1;
}

/// Whether the step takes Megatron's load-balanced sequence order: causal
/// attention split by the ring or the all-gather (cp_comm=p2p,
/// all_gather), where contiguous pieces would leave the last cp rank most
/// of the work; rope gives the positions, a learned table is read permuted
/// (permutePositionTable). Not when an MoE dispatch may drop tokens (which
/// ones depends on their order).
bool balancesSequence(func::FuncOp func, const PlanLayout &layout,
                      bool independentRows) {
  if (layout.cp < 2 || layout.cpComm == CpCommType::A2A ||
      layout.cpComm == CpCommType::A2AP2P || !independentRows)
    return false;
  WalkResult causal = func.walk([](AttentionOp attention) {
    return attention.getCausal() ? WalkResult::interrupt()
                                 : WalkResult::advance();
  });
  return causal.wasInterrupted();
}

/// Megatron's load-balanced order of 2·cp chunks: 0, 2·cp − 1, 1,
/// 2·cp − 2, ..., so that cp rank r's contiguous piece is chunks r and
/// 2·cp − 1 − r.
SmallVector<int64_t> balancedChunkOrder(int64_t cp) {
  SmallVector<int64_t> order;
  for (int64_t r = 0; r < cp; ++r)
    order.append({r, 2 * cp - 1 - r});
  return order;
}

/// `v` with dimension `dim` cut into order.size() chunks, chunk order[i]
/// placed i-th, built at `b`'s insertion point; `first` is the op that
/// reads `v`.
Value reorderChunks(OpBuilder &b, Value v, int64_t dim, ArrayRef<int64_t> order,
                    Operation *&first) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t count = static_cast<int64_t>(order.size());
  SmallVector<int64_t> split(type.getShape());
  split[dim] = count;
  split.insert(split.begin() + dim + 1, type.getDimSize(dim) / count);
  Location loc = v.getLoc();
  auto chunks = ReshapeOp::create(b, loc, type.clone(split), v);
  first = chunks;
  SmallVector<Value> pieces;
  for (int64_t index : order) {
    SmallVector<int64_t> offsets(split.size(), 0), sizes = split;
    offsets[dim] = index;
    sizes[dim] = 1;
    pieces.push_back(
        SliceOp::create(b, loc, type.clone(sizes), chunks, offsets, sizes));
  }
  auto ordered = ConcatOp::create(b, loc, type.clone(split), pieces,
                                  b.getI64IntegerAttr(dim));
  return ReshapeOp::create(b, loc, type, ordered);
}

/// `v` (an argument) with dimension `dim` in the load-balanced order of
/// 2·cp chunks; its uses take the permuted value.
Value permuteIntoChunks(Value v, int64_t dim, int64_t cp) {
  OpBuilder b(v.getContext());
  b.setInsertionPointToStart(v.getParentBlock());
  Operation *first = nullptr;
  Value permuted = reorderChunks(b, v, dim, balancedChunkOrder(cp), first);
  v.replaceAllUsesExcept(permuted, first);
  return permuted;
}

/// A learned position table (a parameter broadcast along the sequence) under
/// the load-balanced order: the forward reads it permuted, as the sequence
/// is, and its gradient, derived in that order, is put back in the table's
/// own before anything reads it (the optimizer, the gradient norm).
void permutePositionTable(func::FuncOp func, BlockArgument table, int64_t cp) {
  OpBuilder b(func.getContext());
  b.setInsertionPointToStart(&func.getBody().front());
  Operation *first = nullptr;
  Value permuted = reorderChunks(b, table, 0, balancedChunkOrder(cp), first);
  table.replaceUsesWithIf(permuted,
                          [](OpOperand &use) { return readsPositions(use); });
  SmallVector<int64_t> back(2 * cp);
  for (auto [position, chunk] : llvm::enumerate(balancedChunkOrder(cp)))
    back[chunk] = static_cast<int64_t>(position);
  func.walk([&](AdamWOp adamw) {
    Value gradient = adamw.getGrad();
    if (adamw.getParam() != table || !gradient.getDefiningOp())
      return;
    b.setInsertionPointAfter(gradient.getDefiningOp());
    Operation *read = nullptr;
    Value natural = reorderChunks(b, gradient, 0, back, read);
    // The reordering belongs to the gradient's part of the step.
    for (Operation *op = read;; op = op->getNextNode()) {
      op->setDiscardableAttrs(
          gradient.getDefiningOp()->getDiscardableAttrDictionary());
      if (op == natural.getDefiningOp())
        break;
    }
    gradient.replaceAllUsesExcept(natural, read);
  });
}

/// A tensor of `rank` dimensions split over `axis` along `dim` alone.
/// The mesh axes the sequence splits over under cp: "cp", or with
/// cp_comm=a2a+p2p the ring of all-to-all groups ("cp") and the ranks within
/// a group ("cpa").
SmallVector<StringRef, 2> sequenceAxes(const PlanLayout &layout) {
  if (layout.cpComm == CpCommType::A2AP2P)
    return {"cp", "cpa"};
  return {"cp"};
}

ShardingAttr splitOver(MLIRContext *context, FlatSymbolRefAttr mesh,
                       int64_t rank, int64_t dim, StringRef axis) {
  TensorSharding s = TensorSharding::replicated(rank);
  s.dims[dim].push_back(axis);
  return s.toAttr(context, mesh);
}

/// Megatron's vocab-parallel embedding and output layer: every embedding
/// table (a parameter) and every loss's logits split their vocabulary over
/// tp, so the logits are never gathered. A vocabulary that does not divide
/// stays whole, with a remark (Megatron pads it to a multiple of 128·tp).
LogicalResult seedVocabulary(func::FuncOp func, int64_t tp,
                             FlatSymbolRefAttr mesh) {
  MLIRContext *context = func.getContext();
  auto splitDim = [&](Value v, int64_t dim) {
    return splitOver(context, mesh, cast<ShapedType>(v.getType()).getRank(),
                     dim, "tp");
  };
  auto divides = [&](Operation *op, int64_t vocab) {
    if (vocab % tp == 0)
      return true;
    op->emitRemark("the vocabulary (")
        << vocab << ") does not divide over tp (" << tp
        << "): this op keeps it whole on every rank (pad it to a multiple "
           "of 128 * tp, as Megatron does, to split it)";
    return false;
  };
  func.walk([&](Operation *op) {
    if (auto embedding = dyn_cast<EmbeddingOp>(op)) {
      auto table = dyn_cast<BlockArgument>(embedding.getTable());
      if (table && divides(op, embedding.getTable().getType().getDimSize(0)))
        func.setArgAttr(table.getArgNumber(), LoomDialect::kShardingAttrName,
                        splitDim(table, 0));
    }
    if (auto loss = dyn_cast<CrossEntropyOp>(op)) {
      Value logits = loss.getLogits();
      auto type = cast<RankedTensorType>(logits.getType());
      int64_t last = type.getRank() - 1;
      Operation *def = logits.getDefiningOp();
      if (!def || def->getNumResults() != 1 ||
          !divides(op, type.getDimSize(last)))
        return;
      def->setAttr(LoomDialect::kShardingAttrName, splitDim(logits, last));
    }
  });
  return success();
}

/// DeepSpeed-Ulysses (cp_comm=a2a): every attention and attention_grad
/// reads and makes its tensors with the whole sequence and the heads split
/// over tp then cp, through loom.reshard pins on its operands and after its
/// results; outside, they keep the sequence split over cp. The partitioner
/// makes each pin one all-to-all (cp moves between the sequence and the
/// heads): q, k and v in and the output out in the forward; the gradient
/// reads the forward's q, k, v and output as they were split for it (as
/// Transformer Engine keeps them), so it takes one all-to-all in (the
/// output's gradient) and three out.
/// With cp_comm=a2a+p2p the all-to-all runs within groups ("cpa"): the
/// heads split over tp, then cpa, and the sequence stays split over the
/// groups' ring ("cp"), which -loom-ring-attention then turns into a ring.
void pinUlyssesAttention(func::FuncOp func, const PlanLayout &layout,
                         ArrayRef<std::string> dataAxes,
                         FlatSymbolRefAttr mesh) {
  MLIRContext *context = func.getContext();
  bool hierarchical = layout.cpComm == CpCommType::A2AP2P;
  auto make = [&](bool heads) {
    TensorSharding s = TensorSharding::replicated(4);
    if (layout.dp > 1)
      for (const std::string &axis : dataAxes)
        s.dims[0].push_back(axis);
    for (StringRef axis : sequenceAxes(layout))
      if (!heads || (hierarchical && axis == "cp"))
        s.dims[1].push_back(axis);
    if (layout.tp > 1)
      s.dims[2].push_back("tp");
    if (heads)
      s.dims[2].push_back(hierarchical ? "cpa" : "cp");
    return s.toAttr(context, mesh);
  };
  ShardingAttr byHeads = make(true), bySequence = make(false);
  OpBuilder b(context);
  // Each value split by heads once: what the forward split, the gradient
  // reads (the forward comes first in the step).
  DenseMap<Value, Value> splitByHeads;
  func.walk([&](Operation *op) {
    if (!isa<AttentionOp, AttentionGradOp>(op))
      return;
    b.setInsertionPoint(op);
    for (OpOperand &operand : op->getOpOperands()) {
      Value &byHeadsValue = splitByHeads[operand.get()];
      if (!byHeadsValue) {
        auto pin = ReshardOp::create(b, op->getLoc(), operand.get(), byHeads);
        pin->setDiscardableAttrs(op->getDiscardableAttrDictionary());
        byHeadsValue = pin;
      }
      operand.set(byHeadsValue);
    }
    b.setInsertionPointAfter(op);
    SmallVector<Attribute> resultShardings;
    for (Value result : op->getResults()) {
      auto pin = ReshardOp::create(b, op->getLoc(), result, bySequence);
      pin->setDiscardableAttrs(op->getDiscardableAttrDictionary());
      result.replaceAllUsesExcept(pin, pin);
      splitByHeads[pin] = result;
      resultShardings.push_back(byHeads);
    }
    op->setAttr(LoomDialect::kShardingAttrName,
                op->getNumResults() == 1
                    ? resultShardings.front()
                    : Attribute(ArrayAttr::get(context, resultShardings)));
  });
}

/// Whether `op` computes on the experts' slots (a grouped matmul's
/// result): its hidden units are the experts', split over etp.
bool readsExperts(Operation *op) {
  return llvm::any_of(op->getOperands(), [](Value v) {
    return isa_and_nonnull<GroupedMatmulOp>(v.getDefiningOp());
  });
}

struct LoomApplyPlanPass
    : public loom::impl::LoomApplyPlanPassBase<LoomApplyPlanPass> {
  using LoomApplyPlanPassBase::LoomApplyPlanPassBase;

  void runOnOperation() override;
  LogicalResult seed(func::FuncOp func, const PlanLayout &layout,
                     const ModelFacts &facts,
                     const std::optional<ExpertFolding> &folding,
                     FlatSymbolRefAttr mesh);
};

void LoomApplyPlanPass::runOnOperation() {
  ModuleOp module = getOperation();
  llvm::Expected<PlanSpec> spec = parsePlanSpec(plan);
  if (!spec) {
    module.emitError("plan '")
        << plan << "': " << llvm::toString(spec.takeError());
    return signalPassFailure();
  }
  SmallVector<func::FuncOp> bodies;
  for (auto func : module.getOps<func::FuncOp>())
    if (!func.isExternal())
      bodies.push_back(func);
  if (bodies.size() != 1) {
    module.emitError("-loom-apply-plan needs one function body, found ")
        << bodies.size();
    return signalPassFailure();
  }
  func::FuncOp func = bodies.front();
  ModelFacts facts = readModelFacts(func);
  int64_t world = worldSize > 0 ? worldSize : impliedWorldSize(*spec);
  // Without gbs, the training step's own microbatches (-loom-autodiff's)
  // are the plan's: gbs = microbatches * mbs * dp, as Megatron counts it.
  if (!spec->gbs) {
    int64_t microbatches = LoomDialect::getMicrobatchCount(func);
    int64_t modelRanks = spec->tp * spec->cp * spec->pp;
    int64_t dp = spec->dp.value_or(
        modelRanks > 0 && world % modelRanks == 0 ? world / modelRanks : 0);
    if (dp > 0 && microbatches > 1)
      spec->gbs = microbatches * spec->mbs * dp;
  }
  // Every problem, with its rule; errors and what is not built yet stop.
  std::vector<PlanProblem> problems = validatePlan(*spec, facts, world);
  for (PlanProblem &p : checkSupported(*spec, &facts))
    problems.push_back(std::move(p));
  bool stop = false;
  for (const PlanProblem &p : problems) {
    bool fatal = p.severity == PlanSeverity::Error ||
                 p.severity == PlanSeverity::Unsupported;
    InFlightDiagnostic d =
        fatal ? emitError(func.getLoc()) : emitRemark(func.getLoc());
    d << "plan '" << plan << "': " << formatPlanProblem(p);
    stop |= fatal;
  }
  if (stop)
    return signalPassFailure();
  llvm::Expected<PlanLayout> layout = derivePlanLayout(*spec, facts, world);
  if (!layout) {
    func.emitError("plan '")
        << plan << "': " << llvm::toString(layout.takeError());
    return signalPassFailure();
  }
  // The expert mesh [edp, ep, etp] over whole dense axes: etp is tp (the
  // experts' ffn splits as the dense MLP's) or 1, and ep the next axes.
  std::optional<ExpertFolding> folding;
  if (layout->isMoE) {
    folding = foldExpertMesh(*layout);
    bool compiled = folding && (layout->etp == 1 || layout->etp == layout->tp);
    if (!compiled) {
      func.emitError("plan '")
          << plan
          << "': not supported yet: the expert mesh edp = " << layout->edp
          << ", ep = " << layout->ep << ", etp = " << layout->etp
          << " over tp = " << layout->tp << ", cp = " << layout->cp
          << ", dp = " << layout->dp
          << ": the expert mesh folds over the stage's ranks in Megatron's "
             "order (etp fastest, then ep, then edp), so etp must be tp or 1 "
             "and ep must take whole axes after etp's, in the order tp, cp, "
             "dp, or end inside dp at a divisor of it [unsupported-ep]";
      return signalPassFailure();
    }
  }
  // The dense mesh, with cp and dp split as a2a+p2p and the experts need.
  std::vector<MeshAxis> axes = withoutUnitAxes(compiledMesh(*layout));
  if (axes.empty())
    return; // one rank: nothing to split

  // The mesh, in Megatron's rank order (tp fastest).
  OpBuilder b(module.getBodyRegion());
  b.setInsertionPointToStart(module.getBody());
  if (module.lookupSymbol("world")) {
    module.emitError("the module already declares @world");
    return signalPassFailure();
  }
  SmallVector<StringAttr> names;
  SmallVector<int64_t> sizes;
  for (const MeshAxis &axis : axes) {
    names.push_back(b.getStringAttr(axis.name));
    sizes.push_back(axis.size);
  }
  MeshOp::create(b, module.getLoc(), "world",
                 MeshAttr::get(b.getContext(), names, sizes));
  auto meshRef = FlatSymbolRefAttr::get(b.getContext(), "world");
  if (failed(seed(func, *layout, facts, folding, meshRef)))
    return signalPassFailure();
  TokenDispatcher dispatcher =
      spec->dispatcher.value_or(TokenDispatcher::AllGather);
  if (folding && needsExpertDispatchPins(*folding) &&
      failed(pinExpertDispatch(func, *folding, dispatcher, meshRef, plan)))
    return signalPassFailure();
}

LogicalResult LoomApplyPlanPass::seed(
    func::FuncOp func, const PlanLayout &layout, const ModelFacts &facts,
    const std::optional<ExpertFolding> &folding, FlatSymbolRefAttr mesh) {
  MLIRContext *context = func.getContext();
  // The data-parallel axes: dp, or dp and ep where the experts take part of
  // it (foldExpertMesh).
  std::vector<std::string> dataAxes =
      folding ? folding->data : std::vector<std::string>{"dp"};
  // A seed that does not divide its dimension is an error that names both.
  auto check = [&](Value v, int64_t dim, StringRef axis, int64_t size,
                   Operation *where) -> LogicalResult {
    int64_t extent = cast<ShapedType>(v.getType()).getDimSize(dim);
    if (extent % size == 0)
      return success();
    return where->emitError("plan '")
           << plan << "': dimension " << dim << " (" << extent << ") of "
           << v.getType() << " does not divide over \"" << axis << "\" ("
           << size << ")";
  };
  auto sharding = [&](int64_t rank, int64_t dim, StringRef axis) {
    return splitOver(context, mesh, rank, dim, axis);
  };
  bool independentRows = rowsAreIndependent(func);
  int64_t seq = facts.seq;
  bool balanced = balancesSequence(func, layout, independentRows);
  if (balanced) {
    func->setAttr(LoomDialect::kCpChunksAttrName,
                  IntegerAttr::get(IntegerType::get(context, 64), layout.cp));
    for (BlockArgument arg : func.getArguments())
      if (func.getArgAttr(arg.getArgNumber(), LoomDialect::kParamAttrName) &&
          llvm::any_of(arg.getUses(), readsPositions))
        permutePositionTable(func, arg, layout.cp);
  }
  // The value each sequence split seeds: the input itself, or its
  // load-balanced permutation (the input then stays whole over cp).
  auto seedSequence = [&](Value v, const TensorSharding &split) {
    Attribute priority;
    // With sp, a sequence split over cp is as weak as the norms' [cp, tp]
    // seeds, so that where they meet the longer split extends it, as the
    // residual stream is split in Megatron (cp, then tp).
    if (layout.sp && layout.tp > 1 && !split.dims[1].empty())
      priority = IntegerAttr::get(IntegerType::get(context, 64),
                                  kSequenceParallelPriority);
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      func.setArgAttr(arg.getArgNumber(), LoomDialect::kShardingAttrName,
                      split.toAttr(context, mesh));
      if (priority)
        func.setArgAttr(arg.getArgNumber(), LoomDialect::kPriorityAttrName,
                        priority);
      return;
    }
    v.getDefiningOp()->setAttr(LoomDialect::kShardingAttrName,
                               split.toAttr(context, mesh));
    if (priority)
      v.getDefiningOp()->setAttr(LoomDialect::kPriorityAttrName, priority);
  };
  for (BlockArgument arg : func.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto type = cast<ShapedType>(arg.getType());
    if (!func.getArgAttr(i, LoomDialect::kInputAttrName) || type.getRank() == 0)
      continue;
    TensorSharding split = TensorSharding::replicated(type.getRank());
    if (layout.dp > 1) {
      if (failed(check(arg, 0, llvm::join(dataAxes, ", "), layout.dp, func)))
        return failure();
      if (independentRows)
        regroupMicrobatches(arg, layout.dp);
      for (const std::string &axis : dataAxes)
        split.dims[0].push_back(axis);
    }
    // The positions of a sequence input ([batch, seq, ...]).
    if (layout.cp > 1 && type.getRank() >= 2 && type.getDimSize(1) == seq) {
      if (failed(check(arg, 1, "cp", layout.cp, func)))
        return failure();
      if (balanced) {
        if (!split.isReplicated())
          seedSequence(arg, split);
        split.dims[1].push_back("cp");
        seedSequence(permuteIntoChunks(arg, 1, layout.cp), split);
        continue;
      }
      for (StringRef axis : sequenceAxes(layout))
        split.dims[1].push_back(axis);
    }
    if (!split.isReplicated())
      seedSequence(arg, split);
  }
  if (layout.tp > 1) {
    WalkResult walk = func.walk([&](Operation *op) {
      int64_t dim = -1;
      if (isa<AttentionOp>(op))
        dim = 2; // heads
      else if (isa<GeluOp, SiluOp, SwigluOp>(op) &&
               (layout.etp == layout.tp || !readsExperts(op)))
        dim = cast<ShapedType>(op->getResult(0).getType()).getRank() - 1;
      if (dim < 0)
        return WalkResult::advance();
      Value result = op->getResult(0);
      if (auto attention = dyn_cast<AttentionOp>(op))
        if (failed(check(attention.getKey(), 2, "tp", layout.tp, op)))
          return WalkResult::interrupt();
      if (failed(check(result, dim, "tp", layout.tp, op)))
        return WalkResult::interrupt();
      op->setAttr(
          LoomDialect::kShardingAttrName,
          sharding(cast<ShapedType>(result.getType()).getRank(), dim, "tp"));
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
  }
  if (layout.tp > 1 && failed(seedVocabulary(func, layout.tp, mesh)))
    return failure();
  if (layout.sp && layout.tp > 1) {
    // Weaker than the tensor-parallel seeds: the regions they split keep
    // their split, and the sequence split fills the stream between them.
    IntegerAttr weaker = IntegerAttr::get(IntegerType::get(context, 64),
                                          kSequenceParallelPriority);
    WalkResult walk = func.walk([&](Operation *op) {
      if (!isa<LayerNormOp, RmsNormOp>(op))
        return WalkResult::advance();
      Value result = op->getResult(0);
      auto type = cast<ShapedType>(result.getType());
      if (type.getRank() != 3) // [batch, sequence, hidden] only
        return WalkResult::advance();
      // Under cp, each rank's positions split further over tp.
      TensorSharding split = TensorSharding::replicated(type.getRank());
      if (layout.cp > 1)
        for (StringRef axis : sequenceAxes(layout))
          split.dims[1].push_back(axis);
      split.dims[1].push_back("tp");
      if (failed(check(result, 1, layout.cp > 1 ? "cp, tp" : "tp",
                       layout.cp * layout.tp, op)))
        return WalkResult::interrupt();
      op->setAttr(LoomDialect::kShardingAttrName, split.toAttr(context, mesh));
      op->setAttr(LoomDialect::kPriorityAttrName, weaker);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
  }
  // Expert parallelism: every expert weight (a grouped matmul's [E, ...]
  // parameter) split by experts over the ep axes. With the allgather
  // dispatcher (and ep = dp), dispatch then fills each rank's experts'
  // slots from all tokens (all-gathered), and combine's partial sums are
  // reduce-scattered back to the rank's tokens; other layouts are pinned
  // (pinExpertDispatch).
  if (layout.ep > 1) {
    TensorSharding byExperts = TensorSharding::replicated(3);
    for (const std::string &axis : folding->ep)
      byExperts.dims[0].push_back(axis);
    std::string names = llvm::join(folding->ep, ", ");
    WalkResult walk = func.walk([&](GroupedMatmulOp matmul) {
      auto weight = dyn_cast<BlockArgument>(matmul.getWeight());
      if (!weight)
        return WalkResult::advance();
      if (failed(check(weight, 0, names, layout.ep, matmul)))
        return WalkResult::interrupt();
      func.setArgAttr(weight.getArgNumber(), LoomDialect::kShardingAttrName,
                      byExperts.toAttr(context, mesh));
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
  }
  // Last: the pins take the place of the tensor-parallel attention seeds.
  if (layout.cp > 1 &&
      (layout.cpComm == CpCommType::A2A || layout.cpComm == CpCommType::A2AP2P))
    pinUlyssesAttention(func, layout, dataAxes, mesh);
  return success();
}

} // namespace
