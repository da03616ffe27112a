//===- LoomDialect.td - The loom dialect -------------------*- tablegen -*-===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMDIALECT_TD
#define LOOM_DIALECT_LOOM_IR_LOOMDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Loom_Dialect : Dialect {
  let name = "loom";
  let cppNamespace = "::loom";
  let summary = "Model graphs for transformer training and their parallelization";
  let description = [{
    The `loom` dialect describes the dataflow graph of a decoder-only
    transformer (dense or mixture-of-experts): the forward computation, the
    loss, and the optimizer update. Tensors have static shapes and element
    types f32, bf16 or f16. Parameters are function arguments carrying a
    `loom.param` name; ops hold no hidden state.

    The dialect also carries the vocabulary of parallel plans: device meshes
    declared once per module (`loom.mesh @world <dp = 2, tp = 2>`),
    shardings that name their mesh (`#loom.sharding<@world, ...>`) on
    arguments, results and op results, and the collectives that move data
    between the ranks of a mesh.

    Discardable attributes (`loom.param`, `loom.sharding`, `loom.layer`, ...)
    are declared in one table, lib/Dialect/Loom/IR/LoomDiscardableAttrs.cpp,
    which says where each may appear and checks its value.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Function argument attribute naming a model parameter; on a result,
    /// the parameter's new value (written over the argument's bytes).
    static constexpr llvm::StringLiteral kParamAttrName = "loom.param";
    /// Like `loom.param` for state that is not trained but persists across
    /// steps (optimizer moments); zero before the first step.
    static constexpr llvm::StringLiteral kStateAttrName = "loom.state";
    /// Op attribute: the microbatch of a training step an op works on.
    static constexpr llvm::StringLiteral kMicrobatchAttrName =
        "loom.microbatch";
    /// The microbatches a training step unrolls: one more than the largest
    /// `loom.microbatch` under `root` (1 when no op carries one).
    static int64_t getMicrobatchCount(::mlir::Operation *root);
    /// The transformer layers of a graph: one more than the largest
    /// `loom.layer` under `root` (0 when no op carries one).
    static int64_t getLayerCount(::mlir::Operation *root);
    /// Op attribute: rank-dependent terms of the op's integer attributes, a
    /// dictionary from attribute name to an array of #loom.rank_term.
    static constexpr llvm::StringLiteral kRankTermsAttrName =
        "loom.rank_terms";
    /// On a partitioned function's argument or result: the sharding its
    /// local (per-rank) value is a piece of, for the runtime to slice the
    /// global tensor and gather it back.
    static constexpr llvm::StringLiteral kShardOfAttrName = "loom.shard_of";
    /// The priority of a `loom.sharding` on an argument or op (lower is
    /// stronger; pins are 0, seeds 1 by default); on an op with several
    /// results, an array with one per result.
    static constexpr llvm::StringLiteral kPriorityAttrName = "loom.priority";
    /// Op attribute (unit): a forward op computed again in the backward
    /// instead of keeping its result (activation recompute).
    static constexpr llvm::StringLiteral kRecomputedAttrName =
        "loom.recomputed";
    /// A #loom.sharding on a function argument or result, or on an op's
    /// results (one sharding, or an array with one per result).
    static constexpr llvm::StringLiteral kShardingAttrName = "loom.sharding";
    /// Op attributes: the model layer an op belongs to, and its phase
    /// (#loom.phase<"fwd" | "bwd-input" | "bwd-weight">).
    static constexpr llvm::StringLiteral kLayerAttrName = "loom.layer";
    static constexpr llvm::StringLiteral kPhaseAttrName = "loom.phase";
    /// Function argument attribute naming a data input (tokens, targets).
    static constexpr llvm::StringLiteral kInputAttrName = "loom.input";
    /// Function result attribute naming a program output (e.g. "loss").
    static constexpr llvm::StringLiteral kOutputAttrName = "loom.output";
    /// Memory plan: arena offset of an argument, of each result of an op,
    /// and the arena size of a function (set by loom-lower-to-program).
    static constexpr llvm::StringLiteral kOffsetAttrName = "loom.offset";
    static constexpr llvm::StringLiteral kOffsetsAttrName = "loom.offsets";
    static constexpr llvm::StringLiteral kArenaSizeAttrName = "loom.arena_size";
    /// Op attribute (unit) on a collective: it runs asynchronously on the
    /// communication stream; its result is read through `loom.wait`.
    static constexpr llvm::StringLiteral kAsyncAttrName = "loom.async";
    /// Module attribute naming the zoo model a module was built from.
    static constexpr llvm::StringLiteral kModelAttrName = "loom.model";
    /// Module attribute of a step split into pipeline ranks
    /// (-loom-split-pipeline): a dictionary with `pp`, `vpp`,
    /// `microbatches`, `schedule` (its name) and `actions` (its CSV).
    static constexpr llvm::StringLiteral kPipelineAttrName = "loom.pipeline";
    /// Op attribute of a pipeline rank's op: the schedule action it runs in
    /// ("F(s0,m1)", "B(...)", "W(...)"), "recv", "send" or "optimizer"
    /// (the step's tail); the program's trace shows these.
    static constexpr llvm::StringLiteral kActionAttrName = "loom.action";
    /// Op attribute (on a function) of a step whose sequence is in
    /// Megatron's load-balanced order for context parallelism: the number
    /// of cp ranks; rank r holds chunks r and 2·cp − 1 − r of 2·cp
    /// (-loom-apply-plan permutes the inputs, -loom-ring-attention gives
    /// rope and attention each chunk's positions).
    static constexpr llvm::StringLiteral kCpChunksAttrName = "loom.cp_chunks";

  private:
    /// Registers the attributes; defined beside their storage classes.
    void registerAttributes();
  public:
  }];
}

/// Every tensor an op takes or makes stays within the sizes a program can
/// hold (loom/runtime/TensorLimits.h: dimensions up to 2^40, 2^50
/// elements), so that shape and byte arithmetic cannot overflow.
def Loom_BoundedTensors : NativeOpTrait<"BoundedTensors"> {
  let cppNamespace = "::loom::OpTrait";
}

class Loom_Op<string mnemonic, list<Trait> traits = []>
    : Op<Loom_Dialect, mnemonic, !listconcat(traits, [Loom_BoundedTensors])>;

class Loom_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Loom_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // LOOM_DIALECT_LOOM_IR_LOOMDIALECT_TD
