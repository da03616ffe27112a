//===- TransformerBuilder.cpp - Emit a zoo model as a loom graph ----------===//
//
// Builds `func.func @forward(%tokens, %targets, params...) -> tensor<f32>`.
// Linear weights are stored [out, in] as in PyTorch and Megatron, so every
// projection is a matmul with `transpose_rhs`. Parameters become function
// arguments in the order the graph first uses them, each named by a
// `loom.param` attribute.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Models/ModelZoo.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/Twine.h"

using namespace mlir;
using namespace loom;

namespace {
/// Tags every op the builder creates with `loom.layer = layer` while set.
struct LayerTagger : public OpBuilder::Listener {
  std::optional<int64_t> layer;
  void notifyOperationInserted(Operation *op, OpBuilder::InsertPoint) override {
    if (layer)
      op->setAttr(
          LoomDialect::kLayerAttrName,
          IntegerAttr::get(IntegerType::get(op->getContext(), 64), *layer));
  }
};

class TransformerBuilder {
public:
  TransformerBuilder(MLIRContext &context, const ModelConfig &config)
      : config(config), b(&context), loc(b.getUnknownLoc()) {
    if (config.dtype == "bf16")
      elementType = b.getBF16Type();
    else if (config.dtype == "f16")
      elementType = b.getF16Type();
    else
      elementType = b.getF32Type();
  }

  OwningOpRef<ModuleOp> build();

private:
  RankedTensorType tensor(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, elementType);
  }
  /// A new parameter argument called `name`.
  Value param(const Twine &name, ArrayRef<int64_t> shape);
  /// x · Wᵀ (+ bias) for a weight [out, in] named `name`.
  Value linear(Value x, const Twine &name, int64_t in, int64_t out);
  Value norm(Value x, const Twine &name, int64_t size);
  Value attention(Value x, const Twine &prefix);
  Value denseMlp(Value x, const Twine &prefix);
  Value moeMlp(Value x, const Twine &prefix);
  Value loadBalancingLoss(Value logits, Value indices);

  const ModelConfig &config;
  OpBuilder b;
  Location loc;
  Type elementType;
  Block *body = nullptr;
  SmallVector<std::string> paramNames;
  /// Each MoE layer's load-balancing loss, added to the step's loss.
  SmallVector<Value> auxLosses;
};
} // namespace

Value TransformerBuilder::param(const Twine &name, ArrayRef<int64_t> shape) {
  paramNames.push_back(name.str());
  return body->addArgument(tensor(shape), loc);
}

Value TransformerBuilder::linear(Value x, const Twine &name, int64_t in,
                                 int64_t out) {
  Value w = param(name + ".weight", {out, in});
  Value y = MatmulOp::create(b, loc, x, w, /*transpose_lhs=*/false,
                             /*transpose_rhs=*/true);
  if (!config.linearBias)
    return y;
  Value bias = param(name + ".bias", {out});
  auto yType = cast<RankedTensorType>(y.getType());
  Value wide = BroadcastOp::create(
      b, loc, yType, bias, b.getDenseI64ArrayAttr({yType.getRank() - 1}));
  return AddOp::create(b, loc, y, wide);
}

Value TransformerBuilder::norm(Value x, const Twine &name, int64_t size) {
  Value w = param(name + ".weight", {size});
  auto eps = b.getF64FloatAttr(config.normEpsilon);
  if (config.norm == NormKind::RmsNorm)
    return RmsNormOp::create(b, loc, x.getType(), x, w, eps);
  Value bias = param(name + ".bias", {size});
  return LayerNormOp::create(b, loc, x.getType(), x, w, bias, eps);
}

Value TransformerBuilder::attention(Value x, const Twine &prefix) {
  int64_t B = config.batch, S = config.seq, D = config.getHeadDim();
  int64_t hq = config.heads, hkv = config.kvHeads, H = config.hidden;
  auto heads = [&](Value v, int64_t n) {
    return ReshapeOp::create(b, loc, tensor({B, S, n, D}), v).getResult();
  };
  Value q = heads(linear(x, prefix + ".q_proj", H, hq * D), hq);
  Value k = heads(linear(x, prefix + ".k_proj", H, hkv * D), hkv);
  Value v = heads(linear(x, prefix + ".v_proj", H, hkv * D), hkv);
  if (config.qkNorm) {
    auto eps = b.getF64FloatAttr(config.normEpsilon);
    q = RmsNormOp::create(b, loc, q.getType(), q,
                          param(prefix + ".q_norm.weight", {D}), eps);
    k = RmsNormOp::create(b, loc, k.getType(), k,
                          param(prefix + ".k_norm.weight", {D}), eps);
  }
  if (!config.learnedPositions) {
    auto theta = b.getF64FloatAttr(config.ropeTheta);
    auto offset = b.getI64IntegerAttr(0);
    q = RopeOp::create(b, loc, q.getType(), q, theta, offset);
    k = RopeOp::create(b, loc, k.getType(), k, theta, offset);
  }
  Value o = AttentionOp::create(b, loc, q, k, v, /*causal=*/true,
                                /*scale=*/FloatAttr());
  o = ReshapeOp::create(b, loc, tensor({B, S, hq * D}), o);
  return linear(o, prefix + ".o_proj", hq * D, H);
}

Value TransformerBuilder::denseMlp(Value x, const Twine &prefix) {
  int64_t H = config.hidden, F = config.ffn;
  if (config.mlp == MlpKind::Gelu) {
    Value h = linear(x, prefix + ".fc1", H, F);
    h = GeluOp::create(b, loc, h, GeluApproximation::tanh);
    return linear(h, prefix + ".fc2", F, H);
  }
  Value gate = linear(x, prefix + ".gate_proj", H, F);
  Value up = linear(x, prefix + ".up_proj", H, F);
  Value h = SwigluOp::create(b, loc, gate, up);
  return linear(h, prefix + ".down_proj", F, H);
}

/// The Switch Transformer's load-balancing loss as Megatron-Core computes
/// it (switch_load_balancing_loss_func): coeff · E · Σ_e P_e · f_e, with
/// P_e the mean router probability of expert e over the tokens (softmax over
/// all experts) and f_e the fraction of the tokens' k choices that went to
/// e, before any capacity drop. f_e is counted by a dispatch of ones with
/// room for every token (no gradient flows through it); the loss's gradient
/// reaches the router through P.
Value TransformerBuilder::loadBalancingLoss(Value logits, Value indices) {
  auto logitsType = cast<RankedTensorType>(logits.getType());
  int64_t T = logitsType.getDimSize(0), E = logitsType.getDimSize(1);
  auto f32 = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getF32Type());
  };
  Value probs = logits;
  if (!logitsType.getElementType().isF32())
    probs = ConvertOp::create(b, loc, f32({T, E}), probs);
  probs = SoftmaxOp::create(b, loc, probs, b.getI64IntegerAttr(-1));
  Value meanProb = ReduceOp::create(b, loc, probs, ReduceKind::mean,
                                    b.getDenseI64ArrayAttr({0}), false);
  Value ones = FillOp::create(b, loc, f32({T, 1}), b.getF64FloatAttr(1.0));
  Value chosen = DispatchOp::create(
      b, loc, ones, indices, b.getI64IntegerAttr(E), b.getI64IntegerAttr(T),
      /*expert_start=*/b.getI64IntegerAttr(0), /*total_experts=*/nullptr,
      /*token_groups=*/b.getI64IntegerAttr(1));
  // count_e / T: the mean over the slots (T of them, one per token).
  Value share = ReduceOp::create(b, loc, chosen, ReduceKind::mean,
                                 b.getDenseI64ArrayAttr({1, 2}), false);
  Value dot =
      ReduceOp::create(b, loc, MulOp::create(b, loc, meanProb, share),
                       ReduceKind::sum, b.getDenseI64ArrayAttr({0}), false);
  // Σ_e P_e · count_e / T sums to 1 · k when balanced; f_e = count_e / (T·k).
  return ScaleOp::create(
      b, loc, dot,
      b.getF64FloatAttr(
          config.auxLossCoeff * static_cast<double>(E) /
          static_cast<double>(
              cast<RankedTensorType>(indices.getType()).getDimSize(1))));
}

Value TransformerBuilder::moeMlp(Value x, const Twine &prefix) {
  int64_t T = config.getTokens(), H = config.hidden, F = config.ffn;
  int64_t E = config.experts;
  Value flat = ReshapeOp::create(b, loc, tensor({T, H}), x);
  Value logits = linear(flat, prefix + ".router", H, E);
  auto router =
      RouterOp::create(b, loc, logits, config.topK, config.softmaxBeforeTopK,
                       config.normalizeTopK);
  if (config.auxLossCoeff > 0)
    auxLosses.push_back(loadBalancingLoss(logits, router.getIndices()));
  Value slots = DispatchOp::create(
      b, loc, flat, router.getIndices(), b.getI64IntegerAttr(E),
      b.getI64IntegerAttr(config.getExpertCapacity()),
      /*expert_start=*/b.getI64IntegerAttr(0), /*total_experts=*/nullptr,
      b.getI64IntegerAttr(config.tokenGroups));
  auto expertLinear = [&](Value in, const Twine &name, int64_t inSize,
                          int64_t outSize) -> Value {
    Value w =
        param(prefix + ".experts." + name + ".weight", {E, outSize, inSize});
    return GroupedMatmulOp::create(b, loc, in, w, /*transpose_weight=*/true);
  };
  Value gate = expertLinear(slots, "gate_proj", H, F);
  Value up = expertLinear(slots, "up_proj", H, F);
  Value h = SwigluOp::create(b, loc, gate, up);
  Value y = expertLinear(h, "down_proj", F, H);
  Value out = CombineOp::create(
      b, loc, y, router.getWeights(), router.getIndices(),
      /*expert_start=*/b.getI64IntegerAttr(0),
      /*total_experts=*/nullptr, b.getI64IntegerAttr(config.tokenGroups));
  return ReshapeOp::create(b, loc, x.getType(), out);
}

OwningOpRef<ModuleOp> TransformerBuilder::build() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  auto func =
      func::FuncOp::create(b, loc, "forward", b.getFunctionType({}, {}));
  body = func.addEntryBlock();
  b.setInsertionPointToStart(body);

  int64_t B = config.batch, S = config.seq, H = config.hidden;
  auto idsType = RankedTensorType::get({B, S}, b.getI32Type());
  Value tokens = body->addArgument(idsType, loc);
  Value targets = body->addArgument(idsType, loc);

  Value embedTable = param("embed_tokens.weight", {config.vocab, H});
  Value h = EmbeddingOp::create(b, loc, embedTable, tokens, IntegerAttr());
  if (config.learnedPositions) {
    Value table = param("embed_positions.weight", {S, H});
    Value positions = BroadcastOp::create(b, loc, tensor({B, S, H}), table,
                                          b.getDenseI64ArrayAttr({1, 2}));
    h = AddOp::create(b, loc, h, positions);
  }
  // The ops of transformer layer i carry `loom.layer = i` (the embedding
  // before and the head after carry none); the backward and pipeline
  // stages follow these tags.
  LayerTagger tagger;
  b.setListener(&tagger);
  for (int64_t i = 0; i < config.layers; ++i) {
    tagger.layer = i;
    std::string prefix = "layers." + std::to_string(i);
    Value x = norm(h, prefix + ".input_norm", H);
    h = AddOp::create(b, loc, h, attention(x, prefix + ".attn"));
    x = norm(h, prefix + ".post_attention_norm", H);
    Value mlp = config.isMoE() ? moeMlp(x, prefix + ".moe")
                               : denseMlp(x, prefix + ".mlp");
    h = AddOp::create(b, loc, h, mlp);
  }
  b.setListener(nullptr);
  h = norm(h, "final_norm", H);
  Value logits;
  if (config.tiedEmbeddings) {
    logits = MatmulOp::create(b, loc, h, embedTable, false, true);
  } else {
    logits = linear(h, "lm_head", H, config.vocab);
  }
  Value loss = CrossEntropyOp::create(b, loc, logits, targets, Value(),
                                      IntegerAttr(), IntegerAttr());
  for (Value aux : auxLosses)
    loss = AddOp::create(b, loc, loss, aux);
  func::ReturnOp::create(b, loc, loss);

  func.setType(b.getFunctionType(body->getArgumentTypes(), {loss.getType()}));
  func.setResultAttr(0, LoomDialect::kOutputAttrName, b.getStringAttr("loss"));
  // All at once: setArgAttr per argument would unique a new array of every
  // argument's attributes each time, quadratic in time and context memory.
  auto named = [&](StringRef key, StringRef value) {
    return b.getDictionaryAttr(b.getNamedAttr(key, b.getStringAttr(value)));
  };
  SmallVector<Attribute> argAttrs{
      named(LoomDialect::kInputAttrName, "tokens"),
      named(LoomDialect::kInputAttrName, "targets")};
  for (const std::string &name : paramNames)
    argAttrs.push_back(named(LoomDialect::kParamAttrName, name));
  func.setAllArgAttrs(argAttrs);
  module->getOperation()->setAttr(LoomDialect::kModelAttrName,
                                  b.getStringAttr(config.name));
  return module;
}

OwningOpRef<ModuleOp> loom::buildForwardModule(MLIRContext &context,
                                               const ModelConfig &config) {
  context.loadDialect<LoomDialect, func::FuncDialect>();
  return TransformerBuilder(context, config).build();
}
