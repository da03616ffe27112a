//===- ModelSize.cpp - What a model configuration would build -------------===//
//
// Mirrors lib/Models/TransformerBuilder.cpp: the tensors it makes and the
// ops it emits per layer. Every product of sizes is checked against 64-bit
// overflow and the limits of ModelSize.h before any graph exists.
//
//===----------------------------------------------------------------------===//

#include "ModelSize.h"

#include "loom/runtime/CheckedMath.h"

#include <initializer_list>

using namespace loom;

namespace {

class Counter {
public:
  /// Checks a tensor `what` of `dims` (their names, for messages) and
  /// `sizes`; counts it as a parameter `count` times if `param`.
  void tensor(const char *what, const char *dims,
              std::initializer_list<int64_t> sizes, bool param = false,
              int64_t count = 1) {
    if (!problem.empty())
      return;
    int64_t elements = 1;
    bool overflow = false;
    std::string shown;
    for (int64_t size : sizes) {
      overflow |= !runtime::checkedMul(elements, size, elements);
      shown += (shown.empty() ? "" : " x ") + std::to_string(size);
    }
    std::string which = std::string(what) + " (" + dims + " = " + shown + ")";
    if (overflow || elements > kMaxTensorElements) {
      problem = which + " would have " +
                (overflow ? std::string("more than 2^63")
                          : std::to_string(elements)) +
                " elements; loom-models builds tensors of at most 2^48";
      return;
    }
    if (!param)
      return;
    int64_t total;
    if (!runtime::checkedMul(elements, count, total) ||
        !runtime::checkedAccumulate(parameters, total, kMaxParameters))
      problem = "the parameters would number more than 2^53 (at " + which +
                "); loom-models counts at most 2^53";
    paramArgs += count;
  }

  std::string problem;
  int64_t parameters = 0;
  int64_t paramArgs = 0;
};

/// "about 3 MB".
std::string humanBytes(int64_t bytes) {
  const char *units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
  int unit = 0;
  for (; bytes >= 10000 && unit < 6; ++unit)
    bytes /= 1000;
  return "about " + std::to_string(bytes) + " " + units[unit];
}

} // namespace

std::optional<ModelSize> loom::estimateModelSize(const ModelConfig &c,
                                                 std::string &problem) {
  int64_t B = c.batch, S = c.seq, H = c.hidden, V = c.vocab, F = c.ffn;
  int64_t D = c.getHeadDim(), hq = c.heads, hkv = c.kvHeads, E = c.experts;
  int64_t L = c.layers;
  Counter n;
  bool bias = c.linearBias, layerNorm = c.norm == NormKind::LayerNorm;
  // The tokens bound every later product that involves them (the expert
  // capacity is a fraction of tokens times the capacity factor).
  n.tensor("the tokens", "batch x seq", {B, S});
  n.tensor("the hidden states", "batch x seq x hidden", {B, S, H});
  n.tensor("the embedding table", "vocab x hidden", {V, H}, true);
  if (c.learnedPositions)
    n.tensor("the position table", "seq x hidden", {S, H}, true);
  n.tensor("the logits", "batch x seq x vocab", {B, S, V});
  if (!c.tiedEmbeddings)
    n.tensor("the output layer", "vocab x hidden", {V, H}, true);
  n.tensor("the norm weights", "hidden", {H}, true,
           (2 * L + 1) * (layerNorm ? 2 : 1));
  n.tensor("the queries", "batch x seq x heads x head_dim", {B, S, hq, D});
  n.tensor("the keys", "batch x seq x kv_heads x head_dim", {B, S, hkv, D});
  n.tensor("the query projection", "heads x head_dim x hidden", {hq, D, H},
           true, 2 * L); // q_proj and o_proj
  n.tensor("the key projection", "kv_heads x head_dim x hidden", {hkv, D, H},
           true, 2 * L); // k_proj and v_proj
  if (bias) {
    n.tensor("the query bias", "heads x head_dim", {hq, D}, true, L);
    n.tensor("the key bias", "kv_heads x head_dim", {hkv, D}, true, 2 * L);
    n.tensor("the output bias", "hidden", {H}, true, L);
  }
  if (c.qkNorm)
    n.tensor("the q/k norm weights", "head_dim", {D}, true, 2 * L);
  int64_t linear = bias ? 3 : 1; // matmul (+ broadcast, add)
  int64_t attention =
      4 * linear + 5 + (c.qkNorm ? 2 : 0) + (c.learnedPositions ? 0 : 2);
  int64_t mlp;
  if (c.isMoE()) {
    n.tensor("the router", "experts x hidden", {E, H}, true, L);
    if (bias)
      n.tensor("the router bias", "experts", {E}, true, L);
    n.tensor("the router logits", "batch x seq x experts", {B, S, E});
    n.tensor("the expert weights", "experts x ffn x hidden", {E, F, H}, true,
             3 * L);
    if (n.problem.empty()) {
      int64_t C = c.getExpertCapacity();
      n.tensor("the expert slots", "experts x capacity x hidden", {E, C, H});
      n.tensor("the expert activations", "experts x capacity x ffn", {E, C, F});
    }
    mlp = linear + 9; // reshape, router, dispatch, 3 grouped matmuls,
                      // swiglu, combine, reshape
  } else {
    n.tensor("the feed-forward activations", "batch x seq x ffn", {B, S, F});
    int64_t weights = c.mlp == MlpKind::Gelu ? 2 : 3;
    n.tensor("the feed-forward weights", "ffn x hidden", {F, H}, true,
             weights * L);
    if (bias) {
      n.tensor("the feed-forward bias", "ffn", {F}, true, (weights - 1) * L);
      n.tensor("the feed-forward output bias", "hidden", {H}, true, L);
    }
    mlp = weights * linear + 1; // + gelu or swiglu
  }
  if (!n.problem.empty()) {
    problem = n.problem;
    return std::nullopt;
  }
  // Per layer: two norms, attention, the MLP, two residual adds. Around
  // them: module, function, embedding (+ positions), final norm, logits,
  // cross-entropy, return.
  int64_t perLayer = 2 + attention + mlp + 2;
  int64_t around = 2 + 1 + (c.learnedPositions ? 2 : 0) + 1 +
                   (c.tiedEmbeddings ? 1 : linear) + 2;
  ModelSize size;
  bool overflow = !runtime::checkedMul(perLayer, L, size.ops) ||
                  !runtime::checkedAdd(size.ops, around, size.ops);
  int64_t items, bytes;
  overflow = overflow || !runtime::checkedAdd(size.ops, n.paramArgs, items) ||
             !runtime::checkedMul(items, int64_t(100), bytes);
  if (overflow || size.ops > kMaxModelOps) {
    problem = "the graph would have " +
              (overflow ? std::string("more than 2^63")
                        : std::to_string(size.ops) + " operations and " +
                              humanBytes(bytes) + " of text") +
              " (" + std::to_string(perLayer) + " operations per layer x " +
              std::to_string(L) + " layers); loom-models builds at most " +
              std::to_string(kMaxModelOps) + " (about " +
              std::to_string((kMaxModelOps - around) / perLayer) +
              " layers of this model)";
    return std::nullopt;
  }
  size.parameters = n.parameters;
  size.textBytes = bytes;
  return size;
}
