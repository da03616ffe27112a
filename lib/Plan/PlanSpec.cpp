//===- PlanSpec.cpp - Plan spec syntax, Megatron flags, printer -----------===//
//
// The keys of the plan spec syntax, their aliases, the parser of
// `key=value` lists and of Megatron-LM's flags, and the canonical printer.
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/PlanSpec.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"

#include <algorithm>
#include <climits>

using namespace loom;
using llvm::StringRef;

//===----------------------------------------------------------------------===//
// Enumerations
//===----------------------------------------------------------------------===//

StringRef loom::stringifySchedule(PipelineSchedule schedule) {
  switch (schedule) {
  case PipelineSchedule::GPipe:
    return "gpipe";
  case PipelineSchedule::OneFOneB:
    return "1f1b";
  case PipelineSchedule::Interleaved:
    return "interleaved";
  case PipelineSchedule::ZeroBubbleH1:
    return "zb-h1";
  }
  return "";
}

std::optional<PipelineSchedule> loom::parseSchedule(StringRef text) {
  return llvm::StringSwitch<std::optional<PipelineSchedule>>(text)
      .Case("gpipe", PipelineSchedule::GPipe)
      .Case("1f1b", PipelineSchedule::OneFOneB)
      .Cases({"interleaved", "interleaved-1f1b"}, PipelineSchedule::Interleaved)
      .Case("zb-h1", PipelineSchedule::ZeroBubbleH1)
      .Default(std::nullopt);
}

StringRef loom::stringifyRecompute(RecomputeGranularity recompute) {
  switch (recompute) {
  case RecomputeGranularity::None:
    return "none";
  case RecomputeGranularity::Selective:
    return "selective";
  case RecomputeGranularity::Full:
    return "full";
  }
  return "";
}

std::optional<RecomputeGranularity> loom::parseRecompute(StringRef text) {
  return llvm::StringSwitch<std::optional<RecomputeGranularity>>(text)
      .Case("none", RecomputeGranularity::None)
      .Case("selective", RecomputeGranularity::Selective)
      .Case("full", RecomputeGranularity::Full)
      .Default(std::nullopt);
}

bool PlanSpec::operator==(const PlanSpec &other) const {
  return tp == other.tp && sp == other.sp && cp == other.cp && pp == other.pp &&
         vpp == other.vpp && vppLayers == other.vppLayers &&
         firstLayers == other.firstLayers && lastLayers == other.lastLayers &&
         dp == other.dp && ep == other.ep && etp == other.etp &&
         zero == other.zero && mbs == other.mbs && gbs == other.gbs &&
         schedule == other.schedule && cpComm == other.cpComm &&
         cpA2A == other.cpA2A && dispatcher == other.dispatcher &&
         recompute == other.recompute && vocabMultiple == other.vocabMultiple;
}

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

namespace {
/// The value of an entry: none for a bare flag (`sp`, `--sequence-parallel`).
using Value = std::optional<StringRef>;
/// Sets a field from a value, or says what is wrong with the value, worded
/// to follow the key's name: "needs a positive integer, got 'x'".
using Setter = std::optional<std::string> (*)(PlanSpec &, Value);
} // namespace

/// Largest integer a plan accepts: mesh sizes are bounded by 2^31 ranks.
static constexpr int64_t kMaxInt = INT32_MAX;

static std::optional<std::string> parseInt(Value value, int64_t lo,
                                           int64_t &out) {
  if (!value)
    return std::string("needs a value");
  uint64_t v;
  if (value->getAsInteger(10, v) || v < static_cast<uint64_t>(lo) ||
      v > static_cast<uint64_t>(kMaxInt)) {
    std::string what =
        lo == 0 ? "a non-negative integer" : "a positive integer";
    return "needs " + what + ", got '" + value->str() + "'";
  }
  out = static_cast<int64_t>(v);
  return std::nullopt;
}

static std::optional<std::string> parseFlag(Value value, bool &out) {
  if (!value) {
    out = true;
    return std::nullopt;
  }
  if (value->equals_insensitive("true") || *value == "1") {
    out = true;
    return std::nullopt;
  }
  if (value->equals_insensitive("false") || *value == "0") {
    out = false;
    return std::nullopt;
  }
  return "is a flag: give no value, or true or false; got '" + value->str() +
         "'";
}

/// Megatron FSDP's --data-parallel-sharding-strategy values as ZeRO levels.
static std::optional<int64_t> parseShardingStrategy(StringRef text) {
  return llvm::StringSwitch<std::optional<int64_t>>(text)
      .Case("no_shard", 0)
      .Case("optim", 1)
      .Case("optim_grads", 2)
      .Case("optim_grads_params", 3)
      .Default(std::nullopt);
}

static std::optional<std::string> setZero(PlanSpec &spec, Value value) {
  if (!value)
    return std::string("needs a value");
  if (std::optional<int64_t> level = parseShardingStrategy(*value)) {
    spec.zero = *level;
    return std::nullopt;
  }
  uint64_t v;
  if (value->getAsInteger(10, v) || v > 3)
    return "needs 0, 1, 2, 3 or a sharding strategy (no_shard, optim, "
           "optim_grads, optim_grads_params), got '" +
           value->str() + "'";
  spec.zero = static_cast<int64_t>(v);
  return std::nullopt;
}

static std::optional<std::string> setShardingStrategy(PlanSpec &spec,
                                                      Value value) {
  if (!value)
    return std::string("needs a value");
  std::optional<int64_t> level = parseShardingStrategy(*value);
  if (!level)
    return "needs no_shard, optim, optim_grads or optim_grads_params, got '" +
           value->str() + "'";
  spec.zero = *level;
  return std::nullopt;
}

template <int64_t PlanSpec::*Field>
static std::optional<std::string> setInt(PlanSpec &spec, Value value) {
  int64_t v;
  if (std::optional<std::string> error = parseInt(value, 1, v))
    return error;
  spec.*Field = v;
  return std::nullopt;
}

template <std::optional<int64_t> PlanSpec::*Field>
static std::optional<std::string> setOptionalInt(PlanSpec &spec, Value value) {
  int64_t v;
  if (std::optional<std::string> error = parseInt(value, 1, v))
    return error;
  spec.*Field = v;
  return std::nullopt;
}

static std::optional<std::string> setSp(PlanSpec &spec, Value value) {
  return parseFlag(value, spec.sp);
}

static std::optional<std::string> setDistributedOptimizer(PlanSpec &spec,
                                                          Value value) {
  bool on = false;
  if (std::optional<std::string> error = parseFlag(value, on))
    return error;
  spec.zero = on ? 1 : 0;
  return std::nullopt;
}

static std::optional<std::string> setSchedule(PlanSpec &spec, Value value) {
  if (!value)
    return std::string("needs a value");
  std::optional<PipelineSchedule> schedule = parseSchedule(*value);
  if (!schedule)
    return "needs gpipe, 1f1b, interleaved or zb-h1, got '" + value->str() +
           "'";
  spec.schedule = *schedule;
  return std::nullopt;
}

StringRef loom::stringifyCpComm(CpCommType type) {
  switch (type) {
  case CpCommType::P2P:
    return "p2p";
  case CpCommType::AllGather:
    return "all_gather";
  case CpCommType::A2A:
    return "a2a";
  case CpCommType::A2AP2P:
    return "a2a+p2p";
  }
  return "";
}

std::optional<CpCommType> loom::parseCpComm(StringRef text) {
  return llvm::StringSwitch<std::optional<CpCommType>>(text)
      .Case("p2p", CpCommType::P2P)
      .Case("all_gather", CpCommType::AllGather)
      .Case("a2a", CpCommType::A2A)
      .Case("a2a+p2p", CpCommType::A2AP2P)
      .Default(std::nullopt);
}

StringRef loom::stringifyDispatcher(TokenDispatcher dispatcher) {
  return dispatcher == TokenDispatcher::AllToAll ? "alltoall" : "allgather";
}

std::optional<TokenDispatcher> loom::parseDispatcher(StringRef text) {
  return llvm::StringSwitch<std::optional<TokenDispatcher>>(text)
      .Case("alltoall", TokenDispatcher::AllToAll)
      .Case("allgather", TokenDispatcher::AllGather)
      .Default(std::nullopt);
}

static std::optional<std::string> setCpComm(PlanSpec &spec, Value value) {
  if (!value)
    return std::string("needs a value");
  std::optional<CpCommType> type = parseCpComm(*value);
  if (!type)
    return "needs p2p, all_gather, a2a or a2a+p2p, got '" + value->str() + "'";
  spec.cpComm = *type;
  return std::nullopt;
}

static std::optional<std::string> setDispatcher(PlanSpec &spec, Value value) {
  if (!value)
    return std::string("needs a value");
  std::optional<TokenDispatcher> dispatcher = parseDispatcher(*value);
  if (!dispatcher)
    return "needs alltoall or allgather, got '" + value->str() + "'";
  spec.dispatcher = *dispatcher;
  return std::nullopt;
}

static std::optional<std::string> setRecompute(PlanSpec &spec, Value value) {
  if (!value)
    return std::string("needs a value");
  std::optional<RecomputeGranularity> recompute = parseRecompute(*value);
  if (!recompute)
    return "needs none, selective or full, got '" + value->str() + "'";
  spec.recompute = *recompute;
  return std::nullopt;
}

static std::optional<std::string> setRecomputeActivations(PlanSpec &spec,
                                                          Value value) {
  bool on = false;
  if (std::optional<std::string> error = parseFlag(value, on))
    return error;
  spec.recompute =
      on ? RecomputeGranularity::Selective : RecomputeGranularity::None;
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Keys
//===----------------------------------------------------------------------===//

static const StringRef kTpAliases[] = {"tensor_model_parallel_size"};
static const StringRef kSpAliases[] = {"sequence_parallel"};
static const StringRef kPpAliases[] = {"pipeline_model_parallel_size"};
static const StringRef kVppAliases[] = {"virtual_pipeline_model_parallel_size",
                                        "num_virtual_stages_per_pipeline_rank"};
static const StringRef kVppLayersAliases[] = {
    "num_layers_per_virtual_pipeline_stage"};
static const StringRef kFirstLayersAliases[] = {
    "decoder_first_pipeline_num_layers"};
static const StringRef kLastLayersAliases[] = {
    "decoder_last_pipeline_num_layers"};
static const StringRef kCpAliases[] = {"context_parallel_size"};
static const StringRef kCpCommAliases[] = {"cp_comm_type"};
static const StringRef kDispatcherAliases[] = {"moe_token_dispatcher_type"};
static const StringRef kDpAliases[] = {"data_parallel_size"};
static const StringRef kEpAliases[] = {"expert_model_parallel_size"};
static const StringRef kEtpAliases[] = {"expert_tensor_parallel_size"};
static const StringRef kZeroAliases[] = {"data_parallel_sharding_strategy",
                                         "use_distributed_optimizer"};
static const StringRef kMbsAliases[] = {"micro_batch_size"};
static const StringRef kGbsAliases[] = {"global_batch_size"};
static const StringRef kRecomputeAliases[] = {"recompute_granularity",
                                              "recompute_activations"};
static const StringRef kVocabAliases[] = {"make_vocab_size_divisible_by"};

/// The canonical keys, in toString's order.
static const PlanKeyInfo kPlanKeys[] = {
    {"tp", "N", kTpAliases, "--tensor-model-parallel-size N",
     "tensor parallelism: attention heads and feed-forward columns split "
     "over N ranks"},
    {"sp", "", kSpAliases, "--sequence-parallel",
     "sequence parallelism: norms, dropout and residuals split along the "
     "sequence over the tp ranks"},
    {"pp", "N", kPpAliases, "--pipeline-model-parallel-size N",
     "pipeline parallelism: the layers split into N stages"},
    {"vpp", "N", kVppAliases, "--num-virtual-stages-per-pipeline-rank N",
     "model chunks per pipeline stage (interleaved schedule)"},
    {"vpp_layers", "N", kVppLayersAliases,
     "--num-layers-per-virtual-pipeline-stage N",
     "layers per model chunk: vpp = layers / (pp * N)"},
    {"first_layers", "N", kFirstLayersAliases,
     "--decoder-first-pipeline-num-layers N",
     "layers of the first pipeline stage (uneven layout; the stages "
     "without a count share the rest evenly)"},
    {"last_layers", "N", kLastLayersAliases,
     "--decoder-last-pipeline-num-layers N",
     "layers of the last pipeline stage (uneven layout)"},
    {"cp", "N", kCpAliases, "--context-parallel-size N",
     "context parallelism: the sequence split over N ranks"},
    {"cp_comm", "p2p|all_gather|a2a|a2a+p2p", kCpCommAliases,
     "--cp-comm-type p2p|all_gather|a2a|a2a+p2p",
     "how context parallelism exchanges keys and values (default p2p: ring "
     "attention)"},
    {"cp_a2a",
     "N",
     {},
     "--hierarchical-context-parallel-sizes N cp/N",
     "cp_comm=a2a+p2p: all-to-all within groups of N consecutive cp ranks, "
     "a ring of cp / N groups"},
    {"dp", "N", kDpAliases, "(derived: world / (tp * cp * pp))",
     "data parallelism; derived from the world size when omitted"},
    {"ep", "N", kEpAliases, "--expert-model-parallel-size N",
     "expert parallelism: a MoE layer's experts split over N ranks"},
    {"etp", "N", kEtpAliases, "--expert-tensor-parallel-size N",
     "tensor parallelism inside each expert; tp when omitted"},
    {"dispatcher", "alltoall|allgather", kDispatcherAliases,
     "--moe-token-dispatcher-type alltoall|allgather",
     "how a MoE layer moves tokens to their experts (default allgather, "
     "as in Megatron-Core)"},
    {"zero", "0..3", kZeroAliases,
     "--use-distributed-optimizer (1), --data-parallel-sharding-strategy "
     "no_shard|optim|optim_grads|optim_grads_params (0..3), "
     "--use-megatron-fsdp (3), --use-torch-fsdp2 (3)",
     "ZeRO level over the data-parallel ranks: 1 shards the optimizer "
     "state, 2 also the gradients, 3 also the parameters"},
    {"mbs", "N", kMbsAliases, "--micro-batch-size N",
     "rows per rank in one microbatch"},
    {"gbs", "N", kGbsAliases, "--global-batch-size N",
     "rows per optimizer step over all ranks; mbs * dp when omitted"},
    {"schedule",
     "1f1b|interleaved|gpipe|zb-h1",
     {},
     "(derived: interleaved with virtual stages, else 1f1b)",
     "pipeline schedule"},
    {"recompute", "none|selective|full", kRecomputeAliases,
     "--recompute-granularity selective|full, --recompute-activations "
     "(selective)",
     "activation recompute in the backward"},
    {"vocab_multiple", "N", kVocabAliases, "--make-vocab-size-divisible-by N",
     "the vocabulary is padded to a multiple of N * tp (default 128)"},
};

enum KeyIndex : unsigned {
  kTp,
  kSp,
  kPp,
  kVpp,
  kVppLayers,
  kFirstLayers,
  kLastLayers,
  kCp,
  kCpComm,
  kCpA2A,
  kDp,
  kEp,
  kEtp,
  kDispatcher,
  kZero,
  kMbs,
  kGbs,
  kSchedule,
  kRecompute,
  kVocabMultiple,
  kNumKeys
};
static_assert(std::size(kPlanKeys) == kNumKeys, "one KeyIndex per key");

llvm::ArrayRef<PlanKeyInfo> loom::getPlanKeys() { return kPlanKeys; }

/// How each key (in KeyIndex order) sets its field from a value.
static const Setter kSetters[] = {
    setInt<&PlanSpec::tp>,
    setSp,
    setInt<&PlanSpec::pp>,
    setInt<&PlanSpec::vpp>,
    setOptionalInt<&PlanSpec::vppLayers>,
    setOptionalInt<&PlanSpec::firstLayers>,
    setOptionalInt<&PlanSpec::lastLayers>,
    setInt<&PlanSpec::cp>,
    setCpComm,
    setOptionalInt<&PlanSpec::cpA2A>,
    setOptionalInt<&PlanSpec::dp>,
    setInt<&PlanSpec::ep>,
    setOptionalInt<&PlanSpec::etp>,
    setDispatcher,
    setZero,
    setInt<&PlanSpec::mbs>,
    setOptionalInt<&PlanSpec::gbs>,
    setSchedule,
    setRecompute,
    setInt<&PlanSpec::vocabMultiple>,
};
static_assert(std::size(kSetters) == kNumKeys, "one setter per key");

namespace {
/// A name the `key=value` syntax accepts: a canonical key or an alias.
struct KeyName {
  /// Index of the canonical key (KeyIndex): two names of one key may not
  /// both appear.
  unsigned key;
  Setter set;
};
} // namespace

/// The key called `name` (its canonical name or an alias, '-' or '_'), or
/// none.
static std::optional<KeyName> lookupKeyName(StringRef name) {
  std::string normalized = name.str();
  std::replace(normalized.begin(), normalized.end(), '-', '_');
  for (unsigned key = 0; key < kNumKeys; ++key) {
    if (kPlanKeys[key].name == normalized)
      return KeyName{key, kSetters[key]};
    if (!llvm::is_contained(kPlanKeys[key].aliases, normalized))
      continue;
    // The aliases that set a field their own way.
    if (normalized == "data_parallel_sharding_strategy")
      return KeyName{key, setShardingStrategy};
    if (normalized == "use_distributed_optimizer")
      return KeyName{key, setDistributedOptimizer};
    if (normalized == "recompute_activations")
      return KeyName{key, setRecomputeActivations};
    return KeyName{key, kSetters[key]};
  }
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// key=value lists
//===----------------------------------------------------------------------===//

static llvm::Error parseError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

llvm::Expected<PlanSpec> loom::parsePlanSpec(StringRef text) {
  StringRef trimmed = text.trim();
  if (trimmed.starts_with("-")) {
    // Spaces, tabs and newlines separate arguments, as in a shell.
    std::vector<std::string> args;
    for (StringRef rest = trimmed; !rest.empty();) {
      auto [arg, tail] = rest.split(' ');
      if (size_t cut = arg.find_first_of("\t\n\r"); cut != StringRef::npos) {
        tail = rest.drop_front(cut + 1);
        arg = arg.take_front(cut);
      }
      if (!arg.empty())
        args.push_back(arg.str());
      rest = tail;
    }
    return parseMegatronFlags(args);
  }

  PlanSpec spec;
  if (trimmed.empty())
    return spec;
  // Where each key was set, to report a key given twice.
  size_t setAt[kNumKeys] = {};
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == StringRef::npos)
      end = text.size();
    StringRef raw = text.slice(begin, end);
    size_t column = begin + 1 + (raw.size() - raw.ltrim().size());
    StringRef entry = raw.trim();
    std::string where = "column " + std::to_string(column);
    if (entry.empty())
      return parseError(where + ": empty entry (two commas, or a comma at "
                                "an end)");
    where += " ('" + entry.str() + "')";

    auto [keyText, valueText] = entry.split('=');
    keyText = keyText.trim();
    Value value;
    if (entry.contains('='))
      value = valueText.trim();
    std::optional<KeyName> key = lookupKeyName(keyText);
    if (!key)
      return parseError(where + ": unknown key '" + keyText +
                        "'; the keys are tp, sp, pp, vpp, vpp_layers, "
                        "first_layers, last_layers, cp, cp_comm, dp, ep, etp, "
                        "dispatcher, zero, mbs, gbs, schedule, recompute, "
                        "vocab_multiple");
    if (setAt[key->key])
      return parseError(where + ": " + kPlanKeys[key->key].name +
                        " is already set at column " +
                        std::to_string(setAt[key->key]));
    setAt[key->key] = column;
    if (std::optional<std::string> error = key->set(spec, value))
      return parseError(where + ": " + keyText + " " + *error);
    begin = end + 1;
  }
  return spec;
}

//===----------------------------------------------------------------------===//
// Megatron-LM flags
//===----------------------------------------------------------------------===//

namespace {
/// A Megatron-LM flag and the plan key it sets; ZeRO and recompute flags
/// are resolved together after all flags are read.
enum class FlagKind {
  Key,
  DistributedOptimizer,
  MegatronFsdp,
  TorchFsdp2,
  ShardingStrategy,
  RecomputeGranularity,
  RecomputeActivations,
  RecomputeMethod,
  RecomputeNumLayers,
};
struct MegatronFlag {
  StringRef flag;
  FlagKind kind;
  /// Whether the flag takes a value (the next argument or `=value`).
  bool takesValue;
  /// For FlagKind::Key: the plan key it sets.
  unsigned key = kNumKeys;
};
} // namespace

static const MegatronFlag kMegatronFlags[] = {
    {"--tensor-model-parallel-size", FlagKind::Key, true, kTp},
    {"--sequence-parallel", FlagKind::Key, false, kSp},
    {"--pipeline-model-parallel-size", FlagKind::Key, true, kPp},
    {"--num-virtual-stages-per-pipeline-rank", FlagKind::Key, true, kVpp},
    {"--num-layers-per-virtual-pipeline-stage", FlagKind::Key, true,
     kVppLayers},
    {"--decoder-first-pipeline-num-layers", FlagKind::Key, true, kFirstLayers},
    {"--decoder-last-pipeline-num-layers", FlagKind::Key, true, kLastLayers},
    {"--context-parallel-size", FlagKind::Key, true, kCp},
    {"--cp-comm-type", FlagKind::Key, true, kCpComm},
    {"--moe-token-dispatcher-type", FlagKind::Key, true, kDispatcher},
    {"--expert-model-parallel-size", FlagKind::Key, true, kEp},
    {"--expert-tensor-parallel-size", FlagKind::Key, true, kEtp},
    {"--micro-batch-size", FlagKind::Key, true, kMbs},
    {"--global-batch-size", FlagKind::Key, true, kGbs},
    {"--make-vocab-size-divisible-by", FlagKind::Key, true, kVocabMultiple},
    {"--use-distributed-optimizer", FlagKind::DistributedOptimizer, false},
    {"--use-megatron-fsdp", FlagKind::MegatronFsdp, false},
    {"--use-torch-fsdp2", FlagKind::TorchFsdp2, false},
    {"--data-parallel-sharding-strategy", FlagKind::ShardingStrategy, true},
    {"--recompute-granularity", FlagKind::RecomputeGranularity, true},
    {"--recompute-activations", FlagKind::RecomputeActivations, false},
    {"--recompute-method", FlagKind::RecomputeMethod, true},
    {"--recompute-num-layers", FlagKind::RecomputeNumLayers, true},
};

llvm::Expected<PlanSpec>
loom::parseMegatronFlags(llvm::ArrayRef<std::string> args) {
  PlanSpec spec;
  // Where each flag was given (1-based argument index), to report repeats
  // and to name the flags of conflicts.
  llvm::SmallVector<size_t> givenAt(std::size(kMegatronFlags), 0);
  std::optional<int64_t> strategy;
  // None until a flag asks for recompute.
  RecomputeGranularity granularity = RecomputeGranularity::None;
  std::string method;
  int64_t recomputeLayers = 0;

  for (size_t i = 0; i < args.size(); ++i) {
    StringRef arg = args[i];
    std::string where =
        "argument " + std::to_string(i + 1) + " ('" + arg.str() + "')";
    if (!arg.starts_with("--"))
      return parseError(where + ": expected a flag starting with '--'");
    auto [flagText, inlineValue] = arg.split('=');
    const MegatronFlag *flag =
        llvm::find_if(kMegatronFlags, [&](const MegatronFlag &f) {
          return f.flag == flagText;
        });
    if (flag == std::end(kMegatronFlags))
      return parseError(where + ": unknown flag '" + flagText +
                        "'; docs/PlanSpec.md lists the Megatron-LM flags "
                        "a plan accepts");
    size_t index = flag - std::begin(kMegatronFlags);
    if (givenAt[index])
      return parseError(where + ": " + flagText +
                        " is already given at argument " +
                        std::to_string(givenAt[index]));
    givenAt[index] = i + 1;

    Value value;
    if (arg.contains('=')) {
      if (!flag->takesValue)
        return parseError(where + ": " + flagText + " takes no value");
      value = inlineValue;
    } else if (flag->takesValue) {
      if (i + 1 == args.size() || StringRef(args[i + 1]).starts_with("--"))
        return parseError(where + ": " + flagText + " needs a value");
      value = StringRef(args[++i]);
      where = "argument " + std::to_string(i + 1) + " ('" + value->str() +
              "', the value of " + flagText.str() + ")";
    }

    std::optional<std::string> error;
    switch (flag->kind) {
    case FlagKind::Key:
      error = kSetters[flag->key](spec, value);
      break;
    case FlagKind::DistributedOptimizer:
    case FlagKind::MegatronFsdp:
    case FlagKind::TorchFsdp2:
    case FlagKind::RecomputeActivations:
      break;
    case FlagKind::ShardingStrategy:
      strategy = parseShardingStrategy(*value);
      if (!strategy)
        error = "needs no_shard, optim, optim_grads or optim_grads_params, "
                "got '" +
                value->str() + "'";
      break;
    case FlagKind::RecomputeGranularity:
      granularity = parseRecompute(*value).value_or(RecomputeGranularity::None);
      if (granularity == RecomputeGranularity::None)
        error = "needs full or selective, got '" + value->str() + "'";
      break;
    case FlagKind::RecomputeMethod:
      method = value->str();
      if (method != "uniform" && method != "block")
        error = "needs uniform or block, got '" + method + "'";
      break;
    case FlagKind::RecomputeNumLayers:
      error = parseInt(value, 1, recomputeLayers);
      break;
    }
    if (error)
      return parseError(where + ": " + flagText + " " + *error);
  }

  auto given = [&](FlagKind kind) -> size_t {
    for (size_t f = 0; f < std::size(kMegatronFlags); ++f)
      if (kMegatronFlags[f].kind == kind && givenAt[f])
        return givenAt[f];
    return 0;
  };
  auto at = [](size_t argument) {
    return " (argument " + std::to_string(argument) + ")";
  };

  // ZeRO: Megatron FSDP shards by its strategy (optim_grads_params unless
  // given), torch FSDP2 shards everything, the distributed optimizer shards
  // the optimizer state.
  size_t distOpt = given(FlagKind::DistributedOptimizer);
  size_t megatronFsdp = given(FlagKind::MegatronFsdp);
  size_t torchFsdp = given(FlagKind::TorchFsdp2);
  size_t strategyAt = given(FlagKind::ShardingStrategy);
  if (torchFsdp) {
    if (distOpt)
      return parseError("--use-torch-fsdp2" + at(torchFsdp) +
                        " cannot be combined with --use-distributed-optimizer" +
                        at(distOpt) + ", as in Megatron-LM");
    if (megatronFsdp)
      return parseError("--use-torch-fsdp2" + at(torchFsdp) +
                        " cannot be combined with --use-megatron-fsdp" +
                        at(megatronFsdp));
    if (strategy && *strategy != 3)
      return parseError("--use-torch-fsdp2" + at(torchFsdp) +
                        " shards parameters, gradients and optimizer state "
                        "(zero=3); --data-parallel-sharding-strategy" +
                        at(strategyAt) +
                        " asks for zero=" + std::to_string(*strategy));
    spec.zero = 3;
  } else if (megatronFsdp) {
    spec.zero = strategy.value_or(3);
  } else if (strategy) {
    // Megatron-LM reads the strategy only with --use-megatron-fsdp; alone
    // (as the guides' `--data-parallel-sharding-strategy no_shard` for DDP)
    // it names the level. With the distributed optimizer it must agree.
    if (distOpt && *strategy != 1)
      return parseError(
          "--data-parallel-sharding-strategy" + at(strategyAt) +
          " asks for zero=" + std::to_string(*strategy) +
          " but --use-distributed-optimizer" + at(distOpt) +
          " is zero=1 (Megatron-LM applies the strategy only with "
          "--use-megatron-fsdp)");
    spec.zero = *strategy;
  } else if (distOpt) {
    spec.zero = 1;
  }

  // Recompute: Loom recomputes selected attention results (selective) or
  // every layer from its own input (full, Megatron's uniform method over
  // one layer).
  size_t activations = given(FlagKind::RecomputeActivations);
  size_t granularityAt = given(FlagKind::RecomputeGranularity);
  size_t methodAt = given(FlagKind::RecomputeMethod);
  size_t layersAt = given(FlagKind::RecomputeNumLayers);
  if (activations) {
    if (granularity == RecomputeGranularity::Full)
      return parseError("--recompute-activations" + at(activations) +
                        " means selective recompute but "
                        "--recompute-granularity" +
                        at(granularityAt) + " is full");
    granularity = RecomputeGranularity::Selective;
  }
  if ((methodAt || layersAt) && granularity != RecomputeGranularity::Full)
    return parseError(
        std::string(methodAt ? "--recompute-method" + at(methodAt)
                             : "--recompute-num-layers" + at(layersAt)) +
        " needs --recompute-granularity full, as in Megatron-LM");
  if ((methodAt && method != "uniform") || (layersAt && recomputeLayers != 1)) {
    std::string got;
    if (methodAt)
      got += " --recompute-method " + method;
    if (layersAt)
      got += " --recompute-num-layers " + std::to_string(recomputeLayers);
    return parseError("Loom's full recompute recomputes each layer from its "
                      "own input (--recompute-method uniform "
                      "--recompute-num-layers 1); got" +
                      got);
  }
  spec.recompute = granularity;
  return spec;
}

//===----------------------------------------------------------------------===//
// Printer
//===----------------------------------------------------------------------===//

std::string loom::toString(const PlanSpec &spec) {
  llvm::SmallVector<std::string> entries;
  auto add = [&](unsigned key, int64_t value) {
    entries.push_back(kPlanKeys[key].name.str() + "=" + std::to_string(value));
  };
  if (spec.tp != 1)
    add(kTp, spec.tp);
  if (spec.sp)
    entries.push_back("sp");
  if (spec.pp != 1)
    add(kPp, spec.pp);
  if (spec.vpp != 1)
    add(kVpp, spec.vpp);
  if (spec.vppLayers)
    add(kVppLayers, *spec.vppLayers);
  if (spec.firstLayers)
    add(kFirstLayers, *spec.firstLayers);
  if (spec.lastLayers)
    add(kLastLayers, *spec.lastLayers);
  if (spec.cp != 1)
    add(kCp, spec.cp);
  if (spec.cpComm)
    entries.push_back(kPlanKeys[kCpComm].name.str() + "=" +
                      stringifyCpComm(*spec.cpComm).str());
  if (spec.cpA2A)
    add(kCpA2A, *spec.cpA2A);
  if (spec.dp)
    add(kDp, *spec.dp);
  if (spec.ep != 1)
    add(kEp, spec.ep);
  if (spec.etp)
    add(kEtp, *spec.etp);
  if (spec.dispatcher)
    entries.push_back(kPlanKeys[kDispatcher].name.str() + "=" +
                      stringifyDispatcher(*spec.dispatcher).str());
  if (spec.zero != 0)
    add(kZero, spec.zero);
  if (spec.mbs != 1)
    add(kMbs, spec.mbs);
  if (spec.gbs)
    add(kGbs, *spec.gbs);
  if (spec.schedule)
    entries.push_back("schedule=" + stringifySchedule(*spec.schedule).str());
  if (spec.recompute != RecomputeGranularity::None)
    entries.push_back("recompute=" + stringifyRecompute(spec.recompute).str());
  if (spec.vocabMultiple != 128)
    add(kVocabMultiple, spec.vocabMultiple);
  if (entries.empty())
    return "tp=1";
  return llvm::join(entries, ",");
}
