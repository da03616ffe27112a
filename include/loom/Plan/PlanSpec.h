//===- PlanSpec.h - Parallel plan specs: syntax and printer -----*- C++ -*-===//
//
// A plan spec says how a training step runs on many ranks: the degrees of
// tensor (tp, with sequence parallelism sp), context (cp), pipeline (pp,
// with vpp virtual stages), data (dp, with a ZeRO level) and expert (ep,
// etp) parallelism, the micro- and global batch, the pipeline schedule and
// activation recompute. Every tool and the Python API take one syntax:
//
//   tp=2,sp,dp=2,zero=1,mbs=1,gbs=8
//
// and Megatron-LM's flags as aliases:
//
//   --tensor-model-parallel-size 2 --sequence-parallel
//   --use-distributed-optimizer --micro-batch-size 1 --global-batch-size 8
//
// This library is free of MLIR (LLVM's ADT and Support only) so the passes,
// the tools, the planner and the Python API share it. docs/PlanSpec.md lists
// the keys, their aliases and the validation rules (PlanValidation.h).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PLAN_PLANSPEC_H
#define LOOM_PLAN_PLANSPEC_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>

namespace loom {

/// How pipeline stages order their forward and backward work.
enum class PipelineSchedule {
  /// All forwards, then all backwards.
  GPipe,
  /// One forward, one backward (Megatron's schedule for pp > 1); with vpp >
  /// 1 it runs interleaved.
  OneFOneB,
  /// 1F1B over vpp > 1 model chunks per stage (Megatron's with virtual
  /// stages).
  Interleaved,
  /// Zero bubble H1: backward split into input and weight gradients.
  ZeroBubbleH1,
};

/// What the backward recomputes instead of keeping (Megatron's
/// --recompute-granularity; the values of -loom-autodiff's `recompute`).
enum class RecomputeGranularity { None, Selective, Full };

/// How context parallelism exchanges keys and values
/// (Megatron-Core's --cp-comm-type).
enum class CpCommType {
  /// Ring attention: K/V blocks passed around the cp ranks.
  P2P,
  /// K/V all-gathered over cp.
  AllGather,
  /// All-to-all between sequence and heads (DeepSpeed-Ulysses).
  A2A,
  /// All-to-all inside cp subgroups, rings between them.
  A2AP2P,
};

/// How a MoE layer moves tokens to their experts
/// (--moe-token-dispatcher-type).
enum class TokenDispatcher { AllToAll, AllGather };

/// The spelling of a schedule in plan specs: gpipe, 1f1b, interleaved, zb-h1.
llvm::StringRef stringifySchedule(PipelineSchedule schedule);
llvm::StringRef stringifyCpComm(CpCommType type);
std::optional<CpCommType> parseCpComm(llvm::StringRef text);
llvm::StringRef stringifyDispatcher(TokenDispatcher dispatcher);
std::optional<TokenDispatcher> parseDispatcher(llvm::StringRef text);
std::optional<PipelineSchedule> parseSchedule(llvm::StringRef text);
/// none, selective, full.
llvm::StringRef stringifyRecompute(RecomputeGranularity recompute);
std::optional<RecomputeGranularity> parseRecompute(llvm::StringRef text);

/// One parallel plan, as written: optional fields are derived from the world
/// size or the other fields when omitted (PlanLayout.h derives them).
struct PlanSpec {
  /// Tensor parallelism (Megatron's --tensor-model-parallel-size).
  int64_t tp = 1;
  /// Sequence parallelism over the tp ranks (--sequence-parallel).
  bool sp = false;
  /// Context parallelism (--context-parallel-size).
  int64_t cp = 1;
  /// Pipeline stages (--pipeline-model-parallel-size).
  int64_t pp = 1;
  /// Virtual pipeline stages (model chunks) per stage; 1: not interleaved
  /// (Megatron's virtual_pipeline_model_parallel_size,
  /// --num-virtual-stages-per-pipeline-rank).
  int64_t vpp = 1;
  /// Layers per virtual stage (--num-layers-per-virtual-pipeline-stage), the
  /// other way to ask for interleaving: vpp = layers / (pp · vppLayers).
  std::optional<int64_t> vppLayers;
  /// Layers of the first and of the last pipeline stage, the others
  /// sharing the rest evenly (--decoder-first-pipeline-num-layers,
  /// --decoder-last-pipeline-num-layers): an uneven layout.
  std::optional<int64_t> firstLayers, lastLayers;
  /// Data parallelism; when omitted, world size / (tp · cp · pp).
  std::optional<int64_t> dp;
  /// Expert parallelism (--expert-model-parallel-size).
  int64_t ep = 1;
  /// Expert tensor parallelism (--expert-tensor-parallel-size); when
  /// omitted, tp (as Megatron does).
  std::optional<int64_t> etp;
  /// ZeRO level over the data-parallel ranks: 0 replicates, 1 shards the
  /// optimizer state (Megatron's distributed optimizer), 2 also the
  /// gradients, 3 also the parameters (Megatron FSDP's optim_grads_params).
  int64_t zero = 0;
  /// Rows per rank in one microbatch (--micro-batch-size).
  int64_t mbs = 1;
  /// Rows per optimizer step over all ranks (--global-batch-size); when
  /// omitted, mbs · dp (one microbatch).
  std::optional<int64_t> gbs;
  /// Needs pp > 1. When omitted, 1f1b, which with vpp > 1 is interleaved
  /// 1F1B (PlanLayout::schedule gives the one in effect).
  std::optional<PipelineSchedule> schedule;
  /// Context parallelism's exchange; p2p (Megatron's default) when omitted.
  std::optional<CpCommType> cpComm;
  /// cp_comm=a2a+p2p: the ranks of each all-to-all group (consecutive cp
  /// ranks; Megatron's first --hierarchical-context-parallel-sizes), the
  /// ring running over cp / cpA2A of them.
  std::optional<int64_t> cpA2A;
  /// A MoE model's token dispatcher; allgather (Megatron-Core's default)
  /// when omitted.
  std::optional<TokenDispatcher> dispatcher;
  RecomputeGranularity recompute = RecomputeGranularity::None;
  /// The vocabulary is padded to a multiple of vocabMultiple · tp
  /// (--make-vocab-size-divisible-by).
  int64_t vocabMultiple = 128;

  bool operator==(const PlanSpec &other) const;
  bool operator!=(const PlanSpec &other) const { return !(*this == other); }
};

/// Parses a plan spec: comma-separated `key=value` entries and flags in any
/// order (`tp=2,sp,dp=2`), each key at most once, keys by their canonical
/// names or their aliases (getPlanKeys()); or, when the text starts with
/// `-`, Megatron-LM's flags separated by white space (parseMegatronFlags).
/// The empty text is the one-rank plan. Errors name the entry, its column
/// (1-based) and what is wrong: "column 6 ('pp=x'): pp needs a positive
/// integer, got 'x'".
llvm::Expected<PlanSpec> parsePlanSpec(llvm::StringRef text);

/// Parses Megatron-LM's parallelism flags (`--tensor-model-parallel-size 2`
/// or `--tensor-model-parallel-size=2`), one argument per element as a shell
/// splits them. Errors name the argument and its position (1-based):
/// "argument 3 ('--zero-bubble'): unknown flag". The ZeRO level comes from
/// --use-distributed-optimizer (1), --data-parallel-sharding-strategy
/// (no_shard 0, optim 1, optim_grads 2, optim_grads_params 3),
/// --use-megatron-fsdp (its sharding strategy, by default
/// optim_grads_params) and --use-torch-fsdp2 (3).
llvm::Expected<PlanSpec> parseMegatronFlags(llvm::ArrayRef<std::string> args);

/// The canonical text of a spec: the entries that differ from their
/// defaults, in the order tp, sp, pp, vpp, vpp_layers, cp, dp, ep, etp, zero,
/// mbs, gbs, schedule, recompute, vocab_multiple ("tp=1" for the default
/// spec). parsePlanSpec(toString(s)) == s for every spec whose values are
/// in the ranges parsePlanSpec accepts.
std::string toString(const PlanSpec &spec);

/// One key of the plan spec syntax, for documentation and usage text.
struct PlanKeyInfo {
  /// The canonical name, as toString prints it.
  llvm::StringRef name;
  /// What a value looks like: "N", "0..3", "1f1b|interleaved|gpipe|zb-h1";
  /// empty for a flag (a key without a value).
  llvm::StringRef valueHint;
  /// Other names accepted in `key=value` entries ('-' and '_' are
  /// interchangeable in every key).
  llvm::ArrayRef<llvm::StringRef> aliases;
  /// The Megatron-LM flags that set it.
  llvm::StringRef megatronFlags;
  llvm::StringRef description;
};

/// Every key, in canonical order.
llvm::ArrayRef<PlanKeyInfo> getPlanKeys();

} // namespace loom

#endif // LOOM_PLAN_PLANSPEC_H
