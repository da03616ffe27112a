//===- LoomOps.td - Model graph ops ------------------------*- tablegen -*-===//
//
// The math of every op is spelled out in docs/OpSemantics.md; the kernels of
// the runtime implement exactly that.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMOPS_TD
#define LOOM_DIALECT_LOOM_IR_LOOMOPS_TD

include "loom/Dialect/Loom/IR/LoomAttrs.td"
include "loom/Dialect/Loom/IR/LoomInterfaces.td"
include "loom/Dialect/Loom/IR/LoomProgram.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/SymbolInterfaces.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def Loom_FloatElement : AnyTypeOf<[F32, BF16, F16]>;
def Loom_IndexElement : AnyTypeOf<[I32, I64]>;

def Loom_FloatTensor : StaticShapeTensorOf<[F32, BF16, F16]>;
def Loom_IndexTensor : StaticShapeTensorOf<[I32, I64]>;
def Loom_AnyTensor : StaticShapeTensorOf<[F32, BF16, F16, I32, I64]>;
def Loom_ScalarF32 : 0DTensorOf<[F32]>;

// Lowerings whose attributes need more than the defaults.
def Loom_LowersSoftmax : Loom_Lowers<22> { let programDims = ["axis"]; }
def Loom_LowersRope : Loom_Lowers<23> {
  let programRankDependent = ["position_offset"];
}
def Loom_LowersAttention : Loom_Lowers<30> {
  let programRankDependent = ["query_offset"];
}
def Loom_LowersAttentionBlock : Loom_Lowers<33> {
  let programRankDependent = ["query_offset", "key_offset"];
}
// The expert-parallel forms of dispatch and combine: the rank's block of
// experts starts at a rank-dependent expert_start.
def Loom_LowersDispatch : Loom_Lowers<61> {
  let programRankDependent = ["expert_start"];
}
def Loom_LowersCombine : Loom_Lowers<62> {
  let programRankDependent = ["expert_start"];
}
def Loom_LowersSlice : Loom_Lowers<52> {
  let programRankDependent = ["offsets"];
}
def Loom_LowersConcat : Loom_Lowers<53> { let programDims = ["dim"]; }
def Loom_LowersEmbedding : Loom_Lowers<32> {
  let programRankDependent = ["vocab_start"];
}
def Loom_LowersCrossEntropy : Loom_Lowers<31> {
  let programRankDependent = ["vocab_start"];
}
def Loom_LowersReduce : Loom_Lowers<55> { let programDims = ["dims"]; }

/// The cost interface with the methods an op computes itself
/// (LoomOpCosts.cpp) rather than by the defaults.
class Loom_Cost<list<string> methods = []>
    : DeclareOpInterfaceMethods<Loom_CostOpInterface, methods>;
/// An op that moves data and does no arithmetic.
def Loom_MovesData : Loom_Cost<["getVectorFlops"]>;
/// A sharding rule of the op's own (LoomShardingRules.cpp) rather than the
/// element-wise default.
def Loom_OwnShardingRule
    : DeclareOpInterfaceMethods<Loom_ShardingRuleOpInterface,
                                ["getShardingRule"]>;
/// A vector-Jacobian rule (LoomVjps.cpp).
def Loom_Differentiable
    : DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>;

class Loom_PureOp<string mnemonic, list<Trait> traits = []>
    : Loom_Op<mnemonic, !listconcat(traits, [Pure])>;

/// An op whose result type follows from its operands: builders infer it and
/// the verifier checks the written type against the inferred one.
class Loom_InferredOp<string mnemonic, list<Trait> traits = []>
    : Loom_PureOp<mnemonic, !listconcat(traits, [InferTypeOpAdaptor])>;

//===----------------------------------------------------------------------===//
// Meshes
//===----------------------------------------------------------------------===//

def Loom_MeshOp : Loom_Op<"mesh", [Symbol, HasParent<"::mlir::ModuleOp">]> {
  let summary = "a named device mesh";
  let description = [{
    Declares a mesh once per module: its name, and its axes with sizes
    (outermost first, ranks row-major over them). Shardings and collectives
    refer to it by name. A module may declare several meshes over the same
    ranks, e.g. `tp × cp × dp` for attention and `etp × ep × edp` for the
    experts folded over the same ranks (MoE parallel folding); the meshes of
    one program must have the same number of ranks.

    ```mlir
    loom.mesh @world <pp = 2, dp = 2, tp = 2>
    loom.mesh @experts <pp = 2, ep = 4>
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, Loom_MeshAttr:$shape);
  let assemblyFormat = "$sym_name $shape attr-dict";
}

//===----------------------------------------------------------------------===//
// Constants and element types
//===----------------------------------------------------------------------===//

def Loom_ConstantOp : Loom_PureOp<"constant", [Loom_OwnShardingRule, ConstantLike,
    AllTypesMatch<["value", "result"]>]> {
  let summary = "a tensor known at compile time";
  let description = [{
    The tensor `value`. A program keeps it in its read-only constants blob
    (no instruction computes it).

    ```mlir
    %c = loom.constant dense<[1.0, 2.0]> : tensor<2xf32>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
}

def Loom_FillOp : Loom_PureOp<"fill", [Loom_OwnShardingRule, Loom_Lowers<1>, Loom_MovesData]> {
  let summary = "a tensor of one repeated value";
  let description = [{
    Every element is `value`, rounded to the result's element type (for an
    integer tensor: truncated toward zero).

    ```mlir
    %z = loom.fill 0.0 : tensor<4x8xbf16>
    ```
  }];
  let arguments = (ins F64Attr:$value);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
}

def Loom_ConvertOp : Loom_PureOp<"convert", [Loom_ShardingRuleOpInterface, Loom_Differentiable, Loom_Lowers<3>, Loom_InPlace,
    Loom_MovesData, Loom_ShardingRuleOpInterface]> {
  let summary = "element type conversion";
  let description = [{
    The same shape with another element type: floats round to nearest even,
    floats to integers truncate toward zero, integers convert exactly where
    the target holds them.

    ```mlir
    %y = loom.convert %x : tensor<4x8xf32> -> tensor<4x8xbf16>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Sharding annotations
//===----------------------------------------------------------------------===//

def Loom_ShardOp : Loom_PureOp<"shard", [Loom_ShardingRuleOpInterface,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "pin a value's sharding";
  let description = [{
    The input, with `sharding` pinned: sharding propagation takes it as
    given (above a plan's seeds and anything propagated) and never changes
    it, and the partitioner reshards the input to it. It computes nothing
    and reaches no program.

    ```mlir
    %y = loom.shard %x <@world, [{"dp"}, {} ]> : tensor<8x16xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, Loom_ShardingAttr:$sharding);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input $sharding attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Loom_ReshardOp : Loom_PureOp<"reshard", [
    AllTypesMatch<["input", "result"]>]> {
  let summary = "a value under another sharding, without changing its own";
  let description = [{
    The input, resharded to `sharding`. Unlike `loom.shard`, propagation
    does not pass through it: the input keeps the sharding its producers
    give it, the result takes `sharding` (pinned, like a `loom.shard`), and
    the partitioner puts the collective between them. Passes use it where
    one value is wanted in two shardings, as OpenXLA Shardy's `sdy.reshard`:
    ZeRO's optimizer reads a gradient split over the data-parallel ranks
    while the backward pass makes it whole.

    ```mlir
    %g = loom.reshard %grad <@world, [{"dp"}, {} ]> : tensor<8x16xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, Loom_ShardingAttr:$sharding);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input $sharding attr-dict `:` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Element-wise
//===----------------------------------------------------------------------===//

/// What every element-wise op is: the program opcode `opcode` computed by
/// KernelMath.h's function `mnemonic` one element at a time (so in place),
/// a pointwise sharding rule, and a cost (by default one FLOP per element;
/// pass `Loom_Cost<["getVectorFlops"]>` for an op of its own count).
class Loom_ElementwiseTraits<string mnemonic, int opcode,
                             list<Trait> cost = [Loom_CostOpInterface]> {
  list<Trait> traits = !listconcat(cost, [
      Loom_LowersElementwise<opcode, mnemonic>, Loom_InPlace,
      Loom_ShardingRuleOpInterface]);
}

class Loom_BinaryOp<string mnemonic, string math, int opcode,
                    list<Trait> traits = []>
    : Loom_PureOp<mnemonic, !listconcat(traits,
          [AllTypesMatch<["lhs", "rhs", "result"]>],
          Loom_ElementwiseTraits<mnemonic, opcode>.traits)> {
  let summary = "element-wise " # math;
  let description = [{
    Element-wise }] # math # [{ of two tensors of the same shape and type.

    ```mlir
    %z = loom.}] # mnemonic # [{ %x, %y : tensor<2x8xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$lhs, Loom_FloatTensor:$rhs);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Loom_AddOp : Loom_BinaryOp<"add", "sum", 10, [Loom_Differentiable]>;
def Loom_SubOp : Loom_BinaryOp<"sub", "difference", 11, [Loom_Differentiable]>;
def Loom_MulOp : Loom_BinaryOp<"mul", "product", 12, [Loom_Differentiable]>;
def Loom_DivOp : Loom_BinaryOp<"div", "quotient", 13, [Loom_Differentiable]>;

class Loom_UnaryOp<string mnemonic, list<Trait> traits = []>
    : Loom_PureOp<mnemonic, !listconcat(traits, [AllTypesMatch<["input", "result"]>])> {
  let results = (outs Loom_FloatTensor:$result);
}

/// A one-operand element-wise op: `%y = loom.<mnemonic> %x : tensor<...>`.
class Loom_ElementwiseUnaryOp<string mnemonic, int opcode,
                              list<Trait> traits = [],
                              list<Trait> cost = [Loom_CostOpInterface]>
    : Loom_UnaryOp<mnemonic, !listconcat(traits,
          Loom_ElementwiseTraits<mnemonic, opcode, cost>.traits)> {
  let arguments = (ins Loom_FloatTensor:$input);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Loom_ScaleOp : Loom_ElementwiseUnaryOp<"scale", 14, [Loom_Differentiable]> {
  let summary = "multiplication by a constant";
  let description = [{
    Multiplies every element by `factor`.

    ```mlir
    %y = loom.scale %x, 0.125 : tensor<4x8xbf16>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, F64Attr:$factor);
  let assemblyFormat = "$input `,` $factor attr-dict `:` type($result)";
}

def Loom_GeluOp : Loom_ElementwiseUnaryOp<"gelu", 15, [Loom_Differentiable],
                                          [Loom_Cost<["getVectorFlops"]>]> {
  let summary = "Gaussian error linear unit";
  let description = [{
    `approximate = none` computes 0.5·x·(1 + erf(x/√2)); `tanh` uses the tanh
    approximation of GPT-2/3.

    ```mlir
    %y = loom.gelu %x approximate tanh : tensor<4x8xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input,
      DefaultValuedAttr<Loom_GeluApproximation, "::loom::GeluApproximation::none">:$approximate);
  let assemblyFormat = "$input (`approximate` $approximate^)? attr-dict `:` type($result)";
}

def Loom_SiluOp : Loom_ElementwiseUnaryOp<"silu", 16, [Loom_Differentiable],
                                          [Loom_Cost<["getVectorFlops"]>]> {
  let summary = "sigmoid linear unit";
  let description = [{
    x · sigmoid(x).

    ```mlir
    %y = loom.silu %x : tensor<4x8xf32>
    ```
  }];
}

def Loom_NegOp : Loom_ElementwiseUnaryOp<"neg", 18, [Loom_Differentiable]> {
  let summary = "element-wise negation: −x";
  let description = [{
    The negation of every element.

    ```mlir
    %y = loom.neg %x : tensor<4x8xf32>
    ```
  }];
}

def Loom_SqrtOp : Loom_ElementwiseUnaryOp<"sqrt", 19, [Loom_Differentiable]> {
  let summary = "element-wise square root";
  let description = [{
    The square root of every element (NaN below zero).

    ```mlir
    %y = loom.sqrt %x : tensor<f32>
    ```
  }];
}

def Loom_ExpOp : Loom_ElementwiseUnaryOp<"exp", 90, [Loom_Differentiable]> {
  let summary = "element-wise exponential: e^x";
  let description = [{
    e to the power of every element (computed in f32).

    ```mlir
    %y = loom.exp %x : tensor<4x8xf32>
    ```
  }];
}

def Loom_LogOp : Loom_ElementwiseUnaryOp<"log", 91, [Loom_Differentiable]> {
  let summary = "element-wise natural logarithm";
  let description = [{
    The natural logarithm of every element (computed in f32; −inf at 0,
    NaN below).

    ```mlir
    %y = loom.log %x : tensor<4x8xf32>
    ```
  }];
}

def Loom_SwigluOp : Loom_PureOp<"swiglu", !listconcat(
    [Loom_Differentiable, AllTypesMatch<["gate", "up", "result"]>],
    Loom_ElementwiseTraits<"swiglu", 17, [Loom_Cost<["getVectorFlops"]>]>.traits)> {
  let summary = "gated SiLU: silu(gate) · up";
  let description = [{
    The gated feed-forward activation of Llama and Mixtral.

    ```mlir
    %h = loom.swiglu %gate, %up : tensor<2x16x64xbf16>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$gate, Loom_FloatTensor:$up);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Normalization, softmax, position
//===----------------------------------------------------------------------===//

def Loom_RmsNormOp : Loom_PureOp<"rmsnorm", [Loom_Differentiable,
    AllTypesMatch<["input", "result"]>, Loom_Lowers<20>, Loom_InPlace,
    Loom_Cost<["getVectorFlops"]>, Loom_OwnShardingRule]> {
  let summary = "root-mean-square normalization over the last dimension";
  let description = [{
    x / sqrt(mean(x²) + epsilon) · weight, where weight has the size of the
    last dimension of x.

    ```mlir
    %y = loom.rmsnorm %x, %w {epsilon = 1.0e-05 : f64}
        : tensor<2x16x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weight,
                   DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` type($input) `,` type($weight)";
  let hasVerifier = 1;
}

def Loom_LayerNormOp : Loom_PureOp<"layernorm", [Loom_Differentiable,
    AllTypesMatch<["input", "result"]>, Loom_Lowers<21>, Loom_InPlace,
    Loom_Cost<["getVectorFlops"]>, Loom_OwnShardingRule]> {
  let summary = "layer normalization over the last dimension";
  let description = [{
    (x − mean) / sqrt(var + epsilon) · weight (+ bias), with mean and biased
    variance over the last dimension.

    ```mlir
    %y = loom.layernorm %x, %w, %b {epsilon = 1.0e-05 : f64}
        : tensor<2x16x64xf32>, tensor<64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weight,
                   Optional<Loom_FloatTensor>:$bias,
                   DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? attr-dict `:` type($input) `,` type($weight)
    (`,` type($bias)^)?
  }];
  let hasVerifier = 1;
}

def Loom_SoftmaxOp : Loom_UnaryOp<"softmax", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersSoftmax, Loom_InPlace,
                                              Loom_Cost<["getVectorFlops"]>]> {
  let summary = "softmax along one dimension";
  let description = [{
    Normalized exponentials along `axis` (negative counts from the end).

    ```mlir
    %p = loom.softmax %x {axis = -1 : i64} : tensor<4x8xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, DefaultValuedAttr<I64Attr, "-1">:$axis);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Loom_RopeOp : Loom_UnaryOp<"rope", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersRope, Loom_InPlace,
                                        Loom_Cost<["getVectorFlops"]>]> {
  let summary = "rotary position embedding";
  let description = [{
    Rotates pairs (i, i + D/2) of the head dimension of x[batch, seq, heads, D]
    by the angle (s + position_offset) · theta^(−2i/D); with `inverse`, by
    the opposite angle (the transpose of the rotation, so its own gradient).

    ```mlir
    %q2 = loom.rope %q {theta = 500000.0 : f64} : tensor<2x16x8x64xbf16>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input,
                   DefaultValuedAttr<F64Attr, "10000.0">:$theta,
                   DefaultValuedAttr<I64Attr, "0">:$position_offset,
                   UnitAttr:$inverse);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Attention, embedding, loss
//===----------------------------------------------------------------------===//

def Loom_AttentionOp : Loom_InferredOp<"attention", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersAttention,
    Loom_Cost<["getMatmulFlops", "getVectorFlops"]>]> {
  let summary = "fused self-attention with grouped-query heads";
  let description = [{
    softmax(q·kᵀ·scale, masked causally when `causal`)·v for q[B, S, Hq, D] and
    k, v[B, S, Hkv, D], where Hq is a multiple of Hkv: query head h reads
    key/value head h / (Hq / Hkv). `scale` defaults to 1/sqrt(D).

    The queries may be a piece of the sequence the keys span (context
    parallelism): query row i stands at position `query_offset` + i, and
    causally sees the keys at positions up to its own, so
    query_offset + S_q <= S_k. The offset is rank-dependent in a program.

    ```mlir
    %o = loom.attention %q, %k, %v {causal}
        : tensor<2x16x8x64xf32>, tensor<2x16x2x64xf32>, tensor<2x16x2x64xf32>
        -> tensor<2x16x8x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$query, Loom_FloatTensor:$key,
                   Loom_FloatTensor:$value, UnitAttr:$causal,
                   OptionalAttr<F64Attr>:$scale,
                   DefaultValuedAttr<I64Attr, "0">:$query_offset);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value attr-dict `:` type($query) `,` type($key) `,`
    type($value) `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// The softmax scale: the attribute, or 1/sqrt(head dim).
    double getEffectiveScale();
  }];
}

def Loom_AttentionBlockOp : Loom_InferredOp<"attention_block", [Loom_LowersAttentionBlock,
    Loom_Cost<["getMatmulFlops", "getVectorFlops"]>]> {
  let summary = "attention of queries against one block of keys, with its log-sum-exp";
  let description = [{
    `loom.attention` of q[B, Sq, Hq, D] against one block k, v[B, Sk, Hkv, D]
    of the keys (ring attention's step): query row i stands at position
    `query_offset` + i, key j at `key_offset` + j, and when `causal` a query
    sees the keys at positions up to its own. Gives the block's output
    [B, Sq, Hq, D] (zero for a query that sees no key) and each query's
    log-sum-exp of its scaled scores [B, Sq, Hq] in f32 (−∞ for none):
    blocks merge by o = Σ_b exp(lse_b − lse)·o_b with lse = log Σ_b
    exp(lse_b). The offsets are rank-dependent in a program; the op is made
    after partitioning, from the all-gather form of context parallelism.

    ```mlir
    %o, %lse = loom.attention_block %q, %k, %v {causal, query_offset = 8 : i64}
        : tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>
        -> tensor<2x8x4x16xf32>, tensor<2x8x4xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$query, Loom_FloatTensor:$key,
                   Loom_FloatTensor:$value, UnitAttr:$causal,
                   OptionalAttr<F64Attr>:$scale,
                   DefaultValuedAttr<I64Attr, "0">:$query_offset,
                   DefaultValuedAttr<I64Attr, "0">:$key_offset);
  let results = (outs Loom_FloatTensor:$result, Loom_FloatTensor:$logsumexp);
  let assemblyFormat = [{
    $query `,` $key `,` $value attr-dict `:` type($query) `,` type($key) `,`
    type($value) `->` type($result) `,` type($logsumexp)
  }];
}

def Loom_EmbeddingOp : Loom_InferredOp<"embedding", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersEmbedding,
    Loom_Cost<["getVectorFlops", "getBytesRead"]>]> {
  let summary = "embedding lookup";
  let description = [{
    Gathers rows of table[V, H] at the integer ids, giving ids' shape × H.
    With `vocab_start`, the table holds rows vocab_start .. vocab_start + V
    − 1 of a larger vocabulary (a rank's piece, Megatron's vocab-parallel
    embedding): id i gives row i − vocab_start, and an id outside the piece
    gives a row of zeros (the rank owning it adds the row).

    ```mlir
    %h = loom.embedding %table, %tokens
        : tensor<32000x64xf32>, tensor<2x16xi32> -> tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$table, Loom_IndexTensor:$ids,
                   OptionalAttr<I64Attr>:$vocab_start);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $table `,` $ids attr-dict `:` type($table) `,` type($ids) `->` type($result)
  }];
}

def Loom_CrossEntropyOp : Loom_InferredOp<"cross_entropy", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersCrossEntropy,
    Loom_Cost<["getVectorFlops"]>]> {
  let summary = "mean cross-entropy loss over logits and integer targets";
  let description = [{
    The mean over all positions of logsumexp(logits) − logits[target], in f32.
    With `count`, the sum is divided by `count` instead of the number of
    positions: the partitioner sets the global count, so that each rank's
    loss over its positions is its share of the global mean.

    Vocab-parallel form (Megatron's): with `logsumexp` (f32, one per
    position: the log-sum-exp over the whole vocabulary) the logits are
    columns vocab_start .. vocab_start + V − 1 of the vocabulary, and only
    positions whose target falls among them count, each with logsumexp −
    logits[target − vocab_start]: summed over the ranks holding the pieces,
    every position counts once.

    ```mlir
    %loss = loom.cross_entropy %logits, %targets
        : tensor<2x16x32000xf32>, tensor<2x16xi32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$logits, Loom_IndexTensor:$targets,
                   Optional<Loom_FloatTensor>:$logsumexp,
                   OptionalAttr<I64Attr>:$count,
                   OptionalAttr<I64Attr>:$vocab_start);
  let results = (outs Loom_ScalarF32:$result);
  let assemblyFormat = [{
    $logits `,` $targets (`,` $logsumexp^)? attr-dict `:` type($logits) `,`
    type($targets) (`,` type($logsumexp)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Matmul
//===----------------------------------------------------------------------===//

def Loom_MatmulOp : Loom_InferredOp<"matmul", [Loom_Differentiable, Loom_Lowers<40>,
    Loom_Cost<["getMatmulFlops", "getVectorFlops"]>, Loom_OwnShardingRule]> {
  let summary = "matrix multiplication with batch dimensions";
  let description = [{
    lhs is [..., M, K] (or [..., K, M] with `transpose_lhs`), rhs is
    [..., K, N] (or [..., N, K] with `transpose_rhs`). The batch dimensions of
    lhs and rhs are equal, or rhs has none (a weight shared by the batch).

    ```mlir
    %y = loom.matmul %x, %w {transpose_rhs}
        : tensor<2x16x64xf32>, tensor<256x64xf32> -> tensor<2x16x256xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$lhs, Loom_FloatTensor:$rhs,
                   UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
}

def Loom_GroupedMatmulOp : Loom_InferredOp<"grouped_matmul", [Loom_OwnShardingRule, Loom_Differentiable, Loom_Lowers<41>,
    Loom_Cost<["getMatmulFlops", "getVectorFlops"]>]> {
  let summary = "one matmul per expert";
  let description = [{
    Expert e multiplies its rows input[e, C, K] by weight[e, K, N] (or
    weight[e, N, K] with `transpose_weight`), giving [E, C, N].

    ```mlir
    %y = loom.grouped_matmul %x, %w
        : tensor<8x32x64xf32>, tensor<8x64x128xf32> -> tensor<8x32x128xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weight,
                   UnitAttr:$transpose_weight);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->`
    type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

def Loom_ReshapeOp : Loom_PureOp<"reshape", [Loom_Lowers<50>, Loom_InPlace,
    Loom_Cost<["getVectorFlops", "getBytesRead", "getBytesWritten"]>,
    Loom_OwnShardingRule, Loom_Differentiable]> {
  let summary = "reinterpret a tensor with another shape";
  let description = [{
    The same elements in the same order; the element count and type are kept.

    ```mlir
    %y = loom.reshape %x : tensor<2x16x512xf32> -> tensor<2x16x8x64xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Loom_TransposeOp : Loom_InferredOp<"transpose", [Loom_Lowers<51>,
    Loom_MovesData, Loom_OwnShardingRule, Loom_Differentiable]> {
  let summary = "permute dimensions";
  let description = [{
    Result dimension i is input dimension permutation[i].

    ```mlir
    %y = loom.transpose %x, [1, 0] : tensor<4x8xf32> -> tensor<8x4xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, DenseI64ArrayAttr:$permutation);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $permutation attr-dict `:` type($input) `->` type($result)
  }];
  let hasFolder = 1;
}

def Loom_SliceOp : Loom_InferredOp<"slice", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersSlice,
    Loom_Cost<["getVectorFlops", "getBytesRead"]>]> {
  let summary = "extract a box with unit strides";
  let description = [{
    The elements from `offsets` to `offsets + sizes` in every dimension.

    ```mlir
    %y = loom.slice %x {offsets = array<i64: 0, 4>, sizes = array<i64: 4, 4>}
        : tensor<4x8xf32> -> tensor<4x4xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, DenseI64ArrayAttr:$offsets,
                   DenseI64ArrayAttr:$sizes);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def Loom_ConcatOp : Loom_InferredOp<"concat", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersConcat,
                                               Loom_MovesData]> {
  let summary = "join tensors along one dimension";
  let description = [{
    All inputs have the same type but for dimension `dim`.

    ```mlir
    %y = loom.concat %a, %b {dim = 1 : i64}
        : tensor<4x8xf32>, tensor<4x2xf32> -> tensor<4x10xf32>
    ```
  }];
  let arguments = (ins Variadic<Loom_AnyTensor>:$inputs, I64Attr:$dim);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` type($inputs) `->` type($result)";
}

def Loom_BroadcastOp : Loom_PureOp<"broadcast", [Loom_OwnShardingRule, Loom_Differentiable, Loom_Lowers<54>,
                                                  Loom_MovesData]> {
  let summary = "repeat a tensor along new or unit dimensions";
  let description = [{
    Input dimension i maps to result dimension dims[i] (strictly increasing)
    and is 1 or equal to it; the other result dimensions repeat the input.

    ```mlir
    %y = loom.broadcast %bias, [2] : tensor<64xf32> -> tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, DenseI64ArrayAttr:$dims);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input `,` $dims attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Loom_ReduceOp : Loom_InferredOp<"reduce", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersReduce,
                                               Loom_Cost<["getVectorFlops"]>]> {
  let summary = "sum, max, mean or sum of squares over dimensions";
  let description = [{
    Reduces `dims`; with `keep_dims` they stay as size 1. `sum_squares` is
    Σ x² (the square of every element summed in one pass over x, as a
    global gradient norm needs).

    ```mlir
    %s = loom.reduce sum %x {dims = array<i64: 1>}
        : tensor<4x8xf32> -> tensor<4xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_ReduceKind:$kind,
                   DenseI64ArrayAttr:$dims, UnitAttr:$keep_dims);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = "$kind $input attr-dict `:` type($input) `->` type($result)";
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

def Loom_RouterOp : Loom_InferredOp<"router", [Loom_OwnShardingRule, Loom_Differentiable, Loom_Lowers<60>,
                                               Loom_Cost<["getVectorFlops"]>]> {
  let summary = "top-k expert selection";
  let description = [{
    For logits[T, E], chooses k experts per token, giving weights[T, k] (the
    logits' type) and indices[T, k] (i32). With `softmax_before_topk` the k
    largest softmax probabilities are taken (renormalized to sum 1 with
    `normalize`, as Qwen3 does); otherwise the k largest logits are taken and
    softmaxed among themselves (Mixtral).

    ```mlir
    %w, %i = loom.router %logits {top_k = 2 : i64}
        : tensor<32x8xf32> -> tensor<32x2xf32>, tensor<32x2xi32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$logits, I64Attr:$top_k,
                   UnitAttr:$softmax_before_topk, UnitAttr:$normalize);
  let results = (outs Loom_FloatTensor:$weights, Loom_IndexTensor:$indices);
  let assemblyFormat = [{
    $logits attr-dict `:` type($logits) `->` type($weights) `,` type($indices)
  }];
}

def Loom_DispatchOp : Loom_InferredOp<"dispatch", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersDispatch,
                                                   Loom_MovesData]> {
  let summary = "gather tokens into per-expert slots";
  let description = [{
    Places token t's row in a slot of each expert it chose, in token order, up
    to `capacity` slots per expert; unfilled slots are zero and tokens past
    capacity are dropped. x[T, H], indices[T, k] → [E, C, H].

    Expert parallelism: the result may hold a block of the experts only,
    experts `expert_start` .. `expert_start` + `num_experts` − 1 of
    `total_experts` (default: `num_experts`); the slots are those of the
    whole dispatch (an expert's slots depend on its own tokens alone), and
    choices of other experts are left to the ranks holding them.

    Token groups: with `token_groups` = G, the tokens form G contiguous
    groups of T/G, and each group fills its own C/G slots of every expert
    (slots g·C/G .. (g+1)·C/G − 1), so capacity is counted per group, as
    Megatron-Core's all-to-all dispatcher counts it per rank. A rank holding
    some groups dispatches them alone: the token groups split over ranks
    like a batch.

    ```mlir
    %d = loom.dispatch %x, %idx {num_experts = 8 : i64, capacity = 16 : i64}
        : tensor<32x64xf32>, tensor<32x2xi32> -> tensor<8x16x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_IndexTensor:$indices,
                   I64Attr:$num_experts, I64Attr:$capacity,
                   DefaultValuedAttr<I64Attr, "0">:$expert_start,
                   OptionalAttr<I64Attr>:$total_experts,
                   DefaultValuedAttr<I64Attr, "1">:$token_groups);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $indices attr-dict `:` type($input) `,` type($indices) `->`
    type($result)
  }];
}

def Loom_CombineOp : Loom_InferredOp<"combine", [Loom_OwnShardingRule, Loom_Differentiable, Loom_LowersCombine,
                                                 Loom_Cost<["getVectorFlops"]>]> {
  let summary = "weighted sum of expert outputs back per token";
  let description = [{
    Replays the slot assignment of `loom.dispatch` and sums, for each token,
    its experts' rows times its router weights. y[E, C, H], weights[T, k],
    indices[T, k] → [T, H]. With a block of the experts (`expert_start`,
    `total_experts`, as in `loom.dispatch`), the sum is over the block's
    experts only: the rank's part of the whole sum. `token_groups` is
    dispatch's.

    ```mlir
    %o = loom.combine %y, %w, %idx
        : tensor<8x16x64xf32>, tensor<32x2xf32>, tensor<32x2xi32>
        -> tensor<32x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weights,
                   Loom_IndexTensor:$indices,
                   DefaultValuedAttr<I64Attr, "0">:$expert_start,
                   OptionalAttr<I64Attr>:$total_experts,
                   DefaultValuedAttr<I64Attr, "1">:$token_groups);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weights `,` $indices attr-dict `:` type($input) `,`
    type($weights) `,` type($indices) `->` type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

def Loom_AdamWOp : Loom_InferredOp<"adamw", [Loom_ShardingRuleOpInterface, Loom_Lowers<70>, Loom_InPlace,
                                             Loom_Cost<["getVectorFlops"]>]> {
  let summary = "one AdamW step for one parameter";
  let description = [{
    PyTorch's AdamW at step t ≥ 1 (a scalar integer tensor) with learning
    rate `lr` (a scalar f32 tensor, so that schedules live outside the
    graph): decoupled weight decay, then the bias-corrected Adam update.
    Returns the new parameter and moments; the moments may be kept in f32
    for a bf16 param. With `grad_norm` (the global gradient norm, a scalar
    f32) and `max_grad_norm` > 0, the gradient is first clipped as
    PyTorch's clip_grad_norm_ does: multiplied by
    min(1, max_grad_norm / (grad_norm + 1e-6)).

    ```mlir
    %p2, %m2, %v2 = loom.adamw %p, %g, %m, %v, %step, %lr
        {beta1 = 0.9 : f64, beta2 = 0.95 : f64, epsilon = 1.0e-08 : f64,
         weight_decay = 0.1 : f64}
        : tensor<64xbf16>, tensor<64xbf16>, tensor<64xf32>, tensor<64xf32>,
          tensor<i32>, tensor<f32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$param, Loom_FloatTensor:$grad,
                   Loom_FloatTensor:$exp_avg, Loom_FloatTensor:$exp_avg_sq,
                   0DTensorOf<[I32, I64]>:$step, Loom_ScalarF32:$lr,
                   Optional<Loom_ScalarF32>:$grad_norm,
                   DefaultValuedAttr<F64Attr, "0.9">:$beta1,
                   DefaultValuedAttr<F64Attr, "0.999">:$beta2,
                   DefaultValuedAttr<F64Attr, "1e-8">:$epsilon,
                   DefaultValuedAttr<F64Attr, "0.01">:$weight_decay,
                   DefaultValuedAttr<F64Attr, "0.0">:$max_grad_norm);
  let results = (outs Loom_FloatTensor:$new_param,
                      Loom_FloatTensor:$new_exp_avg,
                      Loom_FloatTensor:$new_exp_avg_sq);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` $step `,` $lr
    (`,` $grad_norm^)? attr-dict
    `:` type($param) `,` type($grad) `,` type($exp_avg) `,` type($exp_avg_sq)
    `,` type($step) `,` type($lr) (`,` type($grad_norm)^)?
  }];
  let hasVerifier = 1;
}

include "loom/Dialect/Loom/IR/LoomGradientOps.td"
include "loom/Dialect/Loom/IR/LoomCollectiveOps.td"

#endif // LOOM_DIALECT_LOOM_IR_LOOMOPS_TD
