//===- ModelZoo.h - Transformer configurations and graph builder -*- C++
//-*-===//
//
// The model zoo: published decoder-only transformers (dense and
// mixture-of-experts) and small configurations for tests, each emitted as a
// loom forward function (parameters, tokens and targets in, scalar loss out).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_MODELS_MODELZOO_H
#define LOOM_MODELS_MODELZOO_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace loom {

enum class NormKind { RmsNorm, LayerNorm };
enum class MlpKind { SwiGlu, Gelu };

/// Everything that determines the graph of a decoder-only transformer.
struct ModelConfig {
  std::string name;
  int64_t layers = 2;
  int64_t hidden = 64;
  int64_t heads = 4;
  int64_t kvHeads = 4;
  /// Per-head size; 0 means hidden / heads.
  int64_t headDim = 0;
  /// Feed-forward size (of each expert for MoE models).
  int64_t ffn = 256;
  int64_t vocab = 256;
  int64_t seq = 16;
  int64_t batch = 2;
  /// 0 for a dense model.
  int64_t experts = 0;
  int64_t topK = 0;
  /// Expert capacity (of all the token groups) =
  /// groups · ceil(tokens/groups · topK / experts · capacityFactor);
  /// 0 means dropless (capacity = tokens).
  double capacityFactor = 1.0;
  /// Groups of tokens whose capacity is counted apart (loom.dispatch's
  /// token_groups): each has ceil(tokens/groups · topK / experts ·
  /// capacityFactor) slots of each expert, as Megatron-Core's all-to-all
  /// dispatcher counts capacity per rank.
  int64_t tokenGroups = 1;
  /// The router's load-balancing loss weight (Megatron's
  /// --moe-aux-loss-coeff, Switch Transformer's form); 0: none.
  double auxLossCoeff = 0.0;
  bool softmaxBeforeTopK = false;
  bool normalizeTopK = false;
  /// Element type name: f32, bf16 or f16.
  std::string dtype = "f32";
  NormKind norm = NormKind::RmsNorm;
  MlpKind mlp = MlpKind::SwiGlu;
  /// GPT style: learned positions, biases on linear layers and norms.
  bool learnedPositions = false;
  bool linearBias = false;
  bool tiedEmbeddings = false;
  /// Qwen3 style RMSNorm of queries and keys per head.
  bool qkNorm = false;
  double ropeTheta = 10000.0;
  double normEpsilon = 1e-5;

  int64_t getHeadDim() const { return headDim ? headDim : hidden / heads; }
  bool isMoE() const { return experts > 0; }
  int64_t getTokens() const { return batch * seq; }
  int64_t getExpertCapacity() const;
  /// The slots of each expert for one group of `tokens` tokens.
  int64_t getGroupCapacity(int64_t tokens) const;
};

/// Names of the zoo's models, in a stable order.
llvm::ArrayRef<llvm::StringRef> getModelNames();

/// The preset called `name`, if there is one.
std::optional<ModelConfig> lookupModel(llvm::StringRef name);

/// Checks that a configuration describes a valid graph; on failure returns a
/// message naming the offending configuration keys (ModelConfigKeys.h), e.g.
/// "hidden (64) must be divisible by heads (3)".
std::optional<std::string> validateModelConfig(const ModelConfig &config);

/// Builds `func.func @forward` for a valid configuration.
mlir::OwningOpRef<mlir::ModuleOp> buildForwardModule(mlir::MLIRContext &context,
                                                     const ModelConfig &config);

} // namespace loom

#endif // LOOM_MODELS_MODELZOO_H
