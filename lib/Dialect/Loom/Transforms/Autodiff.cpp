//===- Autodiff.cpp - The training step of a forward function -------------===//
//
// Reverse-mode automatic differentiation over the loom dialect. The
// forward function is cloned once per microbatch; after each clone its
// backward is built op by op in reverse, from the ops' vector-Jacobian
// rules, summing the cotangents a value receives from its uses. The
// parameters' cotangents accumulate over the microbatches into their
// gradients, and an AdamW update per parameter ends the step.
//
// Values are classified as the step is built: a value depends on the
// parameters when gradients can reach them through it, and on the data
// when it is an activation. Backward ops that only feed the cotangents of
// parameter-only values are `bwd-weight` (zero-bubble schedules may run
// them later); the others are `bwd-input`.
//
// Recompute: the forward values a backward op reads are kept from the
// forward (stashed) unless they belong to a recompute group: `full` makes
// each transformer layer a group (only its input and its parameters are
// kept), `selective` each attention op with the views of its result (its
// inputs q, k, v are kept, its result recomputed). When the reverse walk
// first needs a group, its ops are cloned there (`loom.recomputed`), and
// the vector-Jacobian rules of the group's ops, and of ops that read the
// group's results, run on clones that read the recomputed values. The
// cotangents stay keyed by the original forward values throughout.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Dialect/Loom/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/SetVector.h"

#include <map>

namespace loom {
#define GEN_PASS_DEF_LOOMAUTODIFFPASS
#include "loom/Dialect/Loom/Transforms/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;

namespace {

/// The type a parameter of `type` is kept in: f32 of its shape.
Type masterType(Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return RankedTensorType::get(tensor.getShape(),
                               Float32Type::get(type.getContext()));
}

/// Collects the ops a builder creates, in order.
struct CreatedOps : public OpBuilder::Listener {
  SmallVector<Operation *> ops;
  void notifyOperationInserted(Operation *op, OpBuilder::InsertPoint) override {
    ops.push_back(op);
  }
};

enum class Recompute { None, Selective, Full };

struct AutodiffOptions {
  int64_t microBatches;
  bool emitGradients;
  double maxGradNorm, beta1, beta2, epsilon, weightDecay;
  Recompute recompute;
  bool report;
};

class TrainingStepBuilder {
public:
  TrainingStepBuilder(func::FuncOp forward, const AutodiffOptions &options)
      : forward(forward), options(options), b(forward.getContext()) {}

  FailureOr<func::FuncOp> build();

private:
  LogicalResult checkForward();
  void createStep();
  LogicalResult buildMicrobatch(int64_t index);
  /// The recompute group of each forward op of the current microbatch.
  void groupForRecompute(ArrayRef<Operation *> ops);
  /// Clones group `group` at the insertion point, mapping its values.
  void recompute(unsigned group, int64_t microbatch);
  LogicalResult differentiate(Operation *op, int64_t microbatch);
  void accumulate(Value value, Value ct, Operation *from, int64_t microbatch);
  void tag(Operation *op, Phase phase, Operation *from, int64_t microbatch);
  Value buildUpdate();
  void reportStash();

  func::FuncOp forward;
  AutodiffOptions options;
  OpBuilder b;
  Location loc = forward.getLoc();

  // The forward's arguments by role, and its loss.
  SmallVector<unsigned> paramArgs, inputArgs;
  Value forwardLoss;

  func::FuncOp step;
  Block *body = nullptr;
  SmallVector<BlockArgument> params, expAvg, expAvgSq, inputs;
  BlockArgument lr, stepNumber;

  /// Values through which gradients reach the parameters, and activations
  /// (values that depend on the data).
  llvm::DenseSet<Value> reachesParams, activations;
  /// The summed cotangent of each value that has received one.
  DenseMap<Value, Value> cotangents;
  SmallVector<Value> losses;

  /// Recompute groups of the current microbatch: each op's group, each
  /// group's ops in forward order, whether it is recomputed yet, and the
  /// recomputed value of each original value.
  DenseMap<Operation *, unsigned> groupOf;
  SmallVector<SmallVector<Operation *>> groups;
  SmallVector<bool> recomputed;
  IRMapping recomputedValues;
};

} // namespace

LogicalResult TrainingStepBuilder::checkForward() {
  if (!forward.getBody().hasOneBlock())
    return forward.emitError("the forward function must have one block");
  for (BlockArgument arg : forward.getArguments()) {
    unsigned i = arg.getArgNumber();
    if (forward.getArgAttr(i, LoomDialect::kParamAttrName)) {
      if (!isa<FloatType>(cast<ShapedType>(arg.getType()).getElementType()))
        return forward.emitError("parameter argument #")
               << i << " must have a float element type";
      paramArgs.push_back(i);
    } else if (forward.getArgAttr(i, LoomDialect::kInputAttrName)) {
      auto type = cast<ShapedType>(arg.getType());
      if (options.microBatches > 1 && type.getRank() == 0)
        return forward.emitError("input argument #")
               << i << " is a scalar: microbatches split dim 0 of every input";
      inputArgs.push_back(i);
    } else {
      return forward.emitError("argument #")
             << i << " is neither a {loom.param} nor a {loom.input}";
    }
  }
  if (paramArgs.empty())
    return forward.emitError("the forward function has no {loom.param} "
                             "argument to train");
  auto returnOp =
      cast<func::ReturnOp>(forward.getBody().front().getTerminator());
  auto f32Scalar = RankedTensorType::get({}, b.getF32Type());
  if (returnOp.getNumOperands() != 1 ||
      returnOp.getOperand(0).getType() != f32Scalar)
    return forward.emitError("the forward function must return only its "
                             "loss, a tensor<f32>");
  forwardLoss = returnOp.getOperand(0);
  return success();
}

void TrainingStepBuilder::createStep() {
  auto f32Scalar = RankedTensorType::get({}, b.getF32Type());
  SmallVector<Type> types;
  // Parameters are kept in f32 (master weights, as Megatron-LM's --bf16
  // keeps them): a bf16 or f16 forward gets its own copy each microbatch.
  for (unsigned i : paramArgs)
    types.push_back(masterType(forward.getArgument(i).getType()));
  // AdamW moments in f32 whatever the parameter's type.
  for (int copy = 0; copy < 2; ++copy)
    for (unsigned i : paramArgs)
      types.push_back(RankedTensorType::get(
          cast<ShapedType>(forward.getArgument(i).getType()).getShape(),
          b.getF32Type()));
  for (unsigned i : inputArgs) {
    auto type = cast<RankedTensorType>(forward.getArgument(i).getType());
    SmallVector<int64_t> shape(type.getShape());
    if (!shape.empty())
      shape[0] *= options.microBatches;
    types.push_back(RankedTensorType::get(shape, type.getElementType()));
  }
  types.push_back(f32Scalar);
  types.push_back(RankedTensorType::get({}, b.getI32Type()));

  b.setInsertionPoint(forward);
  step =
      func::FuncOp::create(b, loc, "train_step", b.getFunctionType(types, {}));
  body = step.addEntryBlock();
  unsigned n = paramArgs.size(), arg = 0;
  auto name = [&](unsigned forwardArg, StringRef attr) {
    return forward.getArgAttrOfType<StringAttr>(forwardArg, attr).getValue();
  };
  for (unsigned i : paramArgs) {
    params.push_back(body->getArgument(arg));
    step.setArgAttr(arg++, LoomDialect::kParamAttrName,
                    b.getStringAttr(name(i, LoomDialect::kParamAttrName)));
  }
  for (auto [suffix, list] :
       {std::pair{".exp_avg", &expAvg}, {".exp_avg_sq", &expAvgSq}})
    for (unsigned i : paramArgs) {
      list->push_back(body->getArgument(arg));
      step.setArgAttr(
          arg++, LoomDialect::kStateAttrName,
          b.getStringAttr(name(i, LoomDialect::kParamAttrName) + suffix));
    }
  for (unsigned i : inputArgs) {
    inputs.push_back(body->getArgument(arg));
    step.setArgAttr(arg++, LoomDialect::kInputAttrName,
                    b.getStringAttr(name(i, LoomDialect::kInputAttrName)));
  }
  lr = body->getArgument(arg);
  step.setArgAttr(arg++, LoomDialect::kInputAttrName, b.getStringAttr("lr"));
  stepNumber = body->getArgument(arg);
  step.setArgAttr(arg++, LoomDialect::kInputAttrName, b.getStringAttr("step"));
  (void)n;
  for (BlockArgument p : params)
    reachesParams.insert(p);
  b.setInsertionPointToStart(body);
}

void TrainingStepBuilder::tag(Operation *op, Phase phase, Operation *from,
                              int64_t microbatch) {
  op->setAttr(LoomDialect::kPhaseAttrName,
              PhaseAttr::get(op->getContext(), phase));
  if (from)
    if (Attribute layer = from->getAttr(LoomDialect::kLayerAttrName))
      op->setAttr(LoomDialect::kLayerAttrName, layer);
  if (options.microBatches > 1)
    op->setAttr(LoomDialect::kMicrobatchAttrName,
                b.getI64IntegerAttr(microbatch));
}

LogicalResult TrainingStepBuilder::buildMicrobatch(int64_t index) {
  // The forward, on this microbatch's rows of the inputs. Every op the
  // backward walks, in forward order (the parameter copies first).
  IRMapping mapping;
  SmallVector<Operation *> cloned;
  for (auto [i, param] : llvm::zip(paramArgs, params)) {
    Value value = param;
    Type type = forward.getArgument(i).getType();
    if (type != param.getType()) {
      // The microbatch's low-precision copy: its gradient is converted back
      // to f32 and summed over microbatches in f32.
      auto copy = ConvertOp::create(b, loc, type, param);
      tag(copy, Phase::fwd, nullptr, index);
      reachesParams.insert(copy);
      cloned.push_back(copy);
      value = copy;
    }
    mapping.map(forward.getArgument(i), value);
  }
  for (auto [i, input] : llvm::zip(inputArgs, inputs)) {
    Value rows = input;
    if (options.microBatches > 1) {
      auto type = cast<RankedTensorType>(forward.getArgument(i).getType());
      SmallVector<int64_t> offsets(type.getRank(), 0);
      offsets[0] = index * type.getDimSize(0);
      auto slice =
          SliceOp::create(b, loc, input, b.getDenseI64ArrayAttr(offsets),
                          b.getDenseI64ArrayAttr(type.getShape()));
      tag(slice, Phase::fwd, nullptr, index);
      rows = slice;
    }
    mapping.map(forward.getArgument(i), rows);
    activations.insert(rows);
  }
  for (Operation &op : forward.getBody().front().without_terminator()) {
    Operation *copy = b.clone(op, mapping);
    tag(copy, Phase::fwd, nullptr, index);
    // What a recv gets comes from the peer's parameters and data.
    bool received = isa<RecvOp>(copy);
    bool fromParams =
        received || llvm::any_of(copy->getOperands(), [&](Value v) {
          return reachesParams.contains(v);
        });
    bool fromData = received || llvm::any_of(copy->getOperands(), [&](Value v) {
                      return activations.contains(v);
                    });
    for (Value result : copy->getResults()) {
      if (fromParams && isa<FloatType>(getElementTypeOrSelf(result)))
        reachesParams.insert(result);
      if (fromData)
        activations.insert(result);
    }
    cloned.push_back(copy);
  }
  Value loss = mapping.lookup(forwardLoss);
  losses.push_back(loss);

  // Its backward: the loss's cotangent is 1/microbatches, since the step's
  // loss is the mean of the microbatches'.
  auto seed = FillOp::create(b, loc, loss.getType(),
                             b.getF64FloatAttr(1.0 / options.microBatches));
  tag(seed, Phase::bwd_input, nullptr, index);
  cotangents[loss] = seed;
  groupForRecompute(cloned);
  for (Operation *op : llvm::reverse(cloned))
    if (failed(differentiate(op, index)))
      return failure();
  return success();
}

void TrainingStepBuilder::groupForRecompute(ArrayRef<Operation *> ops) {
  groupOf.clear();
  groups.clear();
  recomputed.clear();
  recomputedValues.clear();
  if (options.recompute == Recompute::None)
    return;
  if (options.recompute == Recompute::Full) {
    // One group per transformer layer (ops tagged loom.layer).
    DenseMap<int64_t, unsigned> byLayer;
    for (Operation *op : ops) {
      auto layer = op->getAttrOfType<IntegerAttr>(LoomDialect::kLayerAttrName);
      if (!layer || !isMemoryEffectFree(op))
        continue;
      auto [it, inserted] = byLayer.try_emplace(layer.getInt(), groups.size());
      if (inserted)
        groups.emplace_back();
      groups[it->second].push_back(op);
      groupOf[op] = it->second;
    }
  } else {
    // Each attention op and the views (reshapes, transposes) of its result.
    for (Operation *op : ops) {
      if (!isa<AttentionOp>(op))
        continue;
      groupOf[op] = groups.size();
      groups.push_back({op});
    }
    for (Operation *op : ops) {
      if (!isa<ReshapeOp, TransposeOp>(op))
        continue;
      auto def = groupOf.find(op->getOperand(0).getDefiningOp());
      if (def == groupOf.end())
        continue;
      groupOf[op] = def->second;
      groups[def->second].push_back(op);
    }
  }
  recomputed.assign(groups.size(), false);
}

void TrainingStepBuilder::recompute(unsigned group, int64_t microbatch) {
  // External operands are the original values (kept from the forward).
  for (Operation *op : groups[group]) {
    Operation *copy = b.clone(*op, recomputedValues);
    tag(copy, Phase::bwd_input, op, microbatch);
    copy->setAttr(LoomDialect::kRecomputedAttrName, b.getUnitAttr());
  }
  recomputed[group] = true;
}

LogicalResult TrainingStepBuilder::differentiate(Operation *op,
                                                 int64_t microbatch) {
  // A send and a recv are always transposed (the peer's backward waits
  // for them); other ops only when gradients reach a parameter through them.
  bool pointToPoint = isa<SendOp, RecvOp>(op);
  bool anyOperandReachesParams = llvm::any_of(
      op->getOperands(), [&](Value v) { return reachesParams.contains(v); });
  if (!anyOperandReachesParams && !pointToPoint)
    return success();
  SmallVector<Value> resultCts;
  bool anyCt = false;
  for (Value result : op->getResults()) {
    resultCts.push_back(cotangents.lookup(result));
    anyCt |= static_cast<bool>(resultCts.back());
  }
  // A send has no result, and a recv's result may get no cotangent, but
  // the peer's backward exchanges with them all the same.
  if (!anyCt && !pointToPoint)
    return success();

  // The rule reads recomputed values where there are some: it runs on the
  // recomputed op of a group, or on a clone of an op that reads a group's
  // results (an unused clone goes with the dead-code sweep at the end).
  auto recomputeGroupOf = [&](Operation *def) {
    auto it = def ? groupOf.find(def) : groupOf.end();
    if (it != groupOf.end() && !recomputed[it->second])
      recompute(it->second, microbatch);
  };
  recomputeGroupOf(op);
  // A group's own ops read the other groups' values as kept.
  if (!groupOf.count(op))
    for (Value operand : op->getOperands())
      recomputeGroupOf(operand.getDefiningOp());
  Operation *differentiated = op;
  if (auto it = groupOf.find(op); it != groupOf.end()) {
    differentiated = recomputedValues.lookup(op->getResult(0)).getDefiningOp();
  } else if (llvm::any_of(op->getOperands(), [&](Value v) {
               return recomputedValues.contains(v);
             })) {
    differentiated = b.clone(*op, recomputedValues);
    tag(differentiated, Phase::bwd_input, op, microbatch);
    differentiated->setAttr(LoomDialect::kRecomputedAttrName, b.getUnitAttr());
  }

  CreatedOps created;
  OpBuilder::Listener *previous = b.getListener();
  b.setListener(&created);
  SmallVector<Value> operandCts;
  LogicalResult built =
      buildOperandCotangents(b, differentiated, resultCts, operandCts);
  b.setListener(previous);
  if (failed(built))
    return failure();

  // Ops that feed an activation's cotangent are bwd-input; the rest only
  // feed parameters' (through parameter-only values): bwd-weight.
  llvm::SmallPtrSet<Operation *, 16> createdSet(created.ops.begin(),
                                                created.ops.end());
  llvm::SmallPtrSet<Operation *, 16> forInputs;
  for (auto [operand, ct] : llvm::zip(op->getOperands(), operandCts)) {
    if (!ct || !activations.contains(operand))
      continue;
    SmallVector<Operation *> worklist;
    if (Operation *def = ct.getDefiningOp())
      worklist.push_back(def);
    while (!worklist.empty()) {
      Operation *def = worklist.pop_back_val();
      if (!createdSet.contains(def) || !forInputs.insert(def).second)
        continue;
      for (Value v : def->getOperands())
        if (Operation *d = v.getDefiningOp())
          worklist.push_back(d);
    }
  }
  for (Operation *newOp : created.ops)
    tag(newOp,
        forInputs.contains(newOp) || isa<SendOp, RecvOp>(newOp)
            ? Phase::bwd_input
            : Phase::bwd_weight,
        op, microbatch);

  for (auto [operand, ct] : llvm::zip(op->getOperands(), operandCts))
    if (ct && reachesParams.contains(operand))
      accumulate(operand, ct, op, microbatch);
  return success();
}

void TrainingStepBuilder::accumulate(Value value, Value ct, Operation *from,
                                     int64_t microbatch) {
  Value &sum = cotangents[value];
  if (!sum) {
    sum = ct;
    return;
  }
  auto add = AddOp::create(b, from->getLoc(), sum, ct);
  tag(add, activations.contains(value) ? Phase::bwd_input : Phase::bwd_weight,
      isa<BlockArgument>(value) ? nullptr : from, microbatch);
  sum = add;
}

FailureOr<func::FuncOp> TrainingStepBuilder::build() {
  if (failed(checkForward()))
    return failure();
  createStep();
  for (int64_t i = 0; i < options.microBatches; ++i)
    if (failed(buildMicrobatch(i))) {
      step.erase();
      return failure();
    }

  // The step's loss: the mean over the microbatches.
  Value loss = losses.front();
  for (Value l : ArrayRef<Value>(losses).drop_front())
    loss = AddOp::create(b, loc, loss, l);
  if (losses.size() > 1)
    loss =
        ScaleOp::create(b, loc, loss, b.getF64FloatAttr(1.0 / losses.size()));

  // Gradients (zero for a parameter the loss does not reach) and their
  // global norm: sqrt(Σ_p Σ g²), each Σ g² one `reduce sum_squares` (a
  // kernel that reads g once; g² is never materialized).
  SmallVector<Value> grads;
  for (BlockArgument p : params) {
    Value g = cotangents.lookup(p);
    if (!g)
      g = FillOp::create(b, loc, p.getType(), b.getF64FloatAttr(0.0));
    grads.push_back(g);
  }
  Value sumOfSquares;
  for (Value g : grads) {
    Value g32 = g;
    auto type = cast<RankedTensorType>(g.getType());
    if (!type.getElementType().isF32())
      g32 = ConvertOp::create(
          b, loc, RankedTensorType::get(type.getShape(), b.getF32Type()), g);
    SmallVector<int64_t> dims(type.getRank());
    std::iota(dims.begin(), dims.end(), 0);
    Value sum = dims.empty()
                    ? MulOp::create(b, loc, g32, g32).getResult()
                    : ReduceOp::create(b, loc, g32, ReduceKind::sum_squares,
                                       dims, false)
                          .getResult();
    sumOfSquares =
        sumOfSquares ? AddOp::create(b, loc, sumOfSquares, sum) : sum;
  }
  Value gradNorm = SqrtOp::create(b, loc, sumOfSquares);

  // One AdamW update per parameter.
  SmallVector<Value> newParams, newExpAvg, newExpAvgSq;
  for (auto [i, p] : llvm::enumerate(params)) {
    double decay = cast<ShapedType>(p.getType()).getRank() >= 2
                       ? options.weightDecay
                       : 0.0;
    auto update = AdamWOp::create(
        b, loc, p, grads[i], expAvg[i], expAvgSq[i], stepNumber, lr, gradNorm,
        b.getF64FloatAttr(options.beta1), b.getF64FloatAttr(options.beta2),
        b.getF64FloatAttr(options.epsilon), b.getF64FloatAttr(decay),
        b.getF64FloatAttr(options.maxGradNorm));
    newParams.push_back(update.getNewParam());
    newExpAvg.push_back(update.getNewExpAvg());
    newExpAvgSq.push_back(update.getNewExpAvgSq());
  }

  // Results: loss, grad_norm, [gradients], new parameters and moments.
  SmallVector<Value> results{loss, gradNorm};
  SmallVector<std::pair<StringRef, std::string>> names{
      {LoomDialect::kOutputAttrName, "loss"},
      {LoomDialect::kOutputAttrName, "grad_norm"}};
  auto paramName = [&](unsigned i) {
    return step.getArgAttrOfType<StringAttr>(i, LoomDialect::kParamAttrName)
        .getValue()
        .str();
  };
  if (options.emitGradients)
    for (auto [i, g] : llvm::enumerate(grads)) {
      results.push_back(g);
      names.push_back({LoomDialect::kOutputAttrName, paramName(i) + ".grad"});
    }
  for (auto [i, v] : llvm::enumerate(newParams)) {
    results.push_back(v);
    names.push_back({LoomDialect::kParamAttrName, paramName(i)});
  }
  for (auto [suffix, list] :
       {std::pair{".exp_avg", &newExpAvg}, {".exp_avg_sq", &newExpAvgSq}})
    for (auto [i, v] : llvm::enumerate(*list)) {
      results.push_back(v);
      names.push_back({LoomDialect::kStateAttrName, paramName(i) + suffix});
    }
  func::ReturnOp::create(b, loc, results);
  step.setType(b.getFunctionType(body->getArgumentTypes(),
                                 ValueRange(results).getTypes()));
  for (auto [i, name] : llvm::enumerate(names))
    step.setResultAttr(i, name.first, b.getStringAttr(name.second));

  // Backward ops whose results nobody uses (cotangents of operands that do
  // not reach a parameter) go.
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(*body)))
    if (op.use_empty() && isMemoryEffectFree(&op) && !isa<func::ReturnOp>(op))
      op.erase();
  if (options.report)
    reportStash();
  return step;
}

void TrainingStepBuilder::reportStash() {
  // The stash: results of forward ops that the backward (any later phase,
  // recomputed ops included) reads.
  auto isForward = [](Operation *op) {
    auto phase = op->getAttrOfType<PhaseAttr>(LoomDialect::kPhaseAttrName);
    return phase && phase.getValue() == Phase::fwd &&
           !op->hasAttr(LoomDialect::kRecomputedAttrName);
  };
  int64_t count = 0, bytes = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> byOp;
  for (Operation &op : *body) {
    if (!isForward(&op))
      continue;
    for (Value result : op.getResults()) {
      bool kept = llvm::any_of(result.getUsers(), [&](Operation *user) {
        return !isForward(user) && !isa<func::ReturnOp>(user);
      });
      // A view shares its operand's bytes: count the tensor once.
      if (!kept || isa<ReshapeOp>(op))
        continue;
      int64_t size = getTensorBytes(result.getType());
      ++count;
      bytes += size;
      auto &entry = byOp[op.getName().getStringRef().str()];
      ++entry.first;
      entry.second += size;
    }
  }
  InFlightDiagnostic remark = emitRemark(step.getLoc())
                              << "stash: " << count << " tensors, " << bytes
                              << " bytes kept from forward to backward (";
  llvm::interleaveComma(byOp, remark, [&](const auto &entry) {
    remark << entry.first << " " << entry.second.first << " ("
           << entry.second.second << " bytes)";
  });
  remark << ")";
}

namespace {
struct LoomAutodiffPass
    : public loom::impl::LoomAutodiffPassBase<LoomAutodiffPass> {
  using LoomAutodiffPassBase::LoomAutodiffPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> bodies;
    for (auto func : module.getOps<func::FuncOp>())
      if (!func.isExternal())
        bodies.push_back(func);
    if (bodies.size() != 1) {
      module.emitError("-loom-autodiff needs exactly one function body (the "
                       "forward), found ")
          << bodies.size();
      return signalPassFailure();
    }
    if (microBatches < 1) {
      module.emitError("micro-batches must be >= 1, got ") << microBatches;
      return signalPassFailure();
    }
    if (!(maxGradNorm >= 0.0)) {
      module.emitError("max-grad-norm must be >= 0, got ") << maxGradNorm;
      return signalPassFailure();
    }
    Recompute policy;
    if (recompute == "none")
      policy = Recompute::None;
    else if (recompute == "selective")
      policy = Recompute::Selective;
    else if (recompute == "full")
      policy = Recompute::Full;
    else {
      module.emitError("recompute must be none, selective or full, got '")
          << recompute << "'";
      return signalPassFailure();
    }
    AutodiffOptions options{microBatches, emitGradients, maxGradNorm,
                            beta1,        beta2,         epsilon,
                            weightDecay,  policy,        report};
    func::FuncOp forward = bodies.front();
    FailureOr<func::FuncOp> step =
        TrainingStepBuilder(forward, options).build();
    if (failed(step))
      return signalPassFailure();
    forward.erase();
  }
};
} // namespace
