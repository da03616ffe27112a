//===- ModelConfigKeys.h - ModelConfig settings by name ---------*- C++ -*-===//
//
// The settings of a ModelConfig that users choose, named as Megatron and
// Hugging Face configurations name them (snake_case): layers, hidden,
// heads, kv_heads, head_dim, ffn, vocab, seq, batch, experts, topk,
// capacity_factor, dtype. Tools and the Python API set them from text
// through this one table; loom-models spells each key as a flag
// (kv_heads as --kv-heads).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_MODELS_MODELCONFIGKEYS_H
#define LOOM_MODELS_MODELCONFIGKEYS_H

#include "loom/Models/ModelZoo.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>
#include <utility>

namespace loom {

/// One configuration key. Its messages are worded to follow a name, the
/// key's own or the flag a tool spells it as: "needs an integer, got 'two'".
struct ModelConfigKey {
  llvm::StringRef name;
  /// What a value looks like, for usage text: "N", "F", "f32|bf16|f16".
  llvm::StringRef valueHint;
  llvm::StringRef description;
  /// Parses `text` into this key of `config`, or returns what is wrong with
  /// it (and leaves `config` as it was).
  std::optional<std::string> (*parse)(ModelConfig &config,
                                      llvm::StringRef text);
  /// What is wrong with this key's value in `config` on its own, if
  /// anything ("must be positive, got 0").
  std::optional<std::string> (*check)(const ModelConfig &config);
};

/// Every key, in a stable order.
llvm::ArrayRef<ModelConfigKey> getModelConfigKeys();

/// The key called `name`, or null.
const ModelConfigKey *lookupModelConfigKey(llvm::StringRef name);

/// Sets key `name` of `config` from `text`. Errors name the key:
/// "unknown model configuration key 'depth'", "layers needs an integer, got
/// 'two'".
std::optional<std::string> setModelConfigKey(ModelConfig &config,
                                             llvm::StringRef name,
                                             llvm::StringRef text);

/// Sets each (key, text) in order, stopping at the first error. A
/// configuration that is MoE after these settings but has no topk (a dense
/// preset given experts) routes each token to min(2, experts) experts.
std::optional<std::string> applyModelConfigSettings(
    ModelConfig &config,
    llvm::ArrayRef<std::pair<std::string, std::string>> settings);

} // namespace loom

#endif // LOOM_MODELS_MODELCONFIGKEYS_H
