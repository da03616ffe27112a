//===- LoomGradientOps.td - Ops of the backward pass -------*- tablegen -*-===//
//
// The vector-Jacobian products that cannot be built from other loom ops at
// the cost of the forward op: they get kernels of their own. Each takes the
// forward op's operands (or result) and the cotangent of its result
// (`result_grad`), and returns the cotangents of the forward op's float
// operands (`<operand>_grad`). `-loom-autodiff` creates them through the
// ops' vector-Jacobian rules (LoomVjps.cpp); docs/OpSemantics.md states
// their math.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMGRADIENTOPS_TD
#define LOOM_DIALECT_LOOM_IR_LOOMGRADIENTOPS_TD

/// d/dx of an activation f times the result's cotangent, element-wise.
class Loom_ActivationGradOp<string mnemonic, int opcode, string forward>
    : Loom_PureOp<mnemonic, !listconcat(
          [AllTypesMatch<["input", "result_grad", "input_grad"]>],
          Loom_ElementwiseTraits<mnemonic, opcode,
                                 [Loom_Cost<["getVectorFlops"]>]>.traits)> {
  let summary = "gradient of loom." # forward # ": f'(x) · dy";
  let description = [{
    The cotangent of the input of `loom.}] # forward # [{` from the input x
    and the cotangent dy of its result: f'(x) · dy, element-wise.

    ```mlir
    %dx = loom.}] # mnemonic # [{ %x, %dy : tensor<4x8xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$result_grad);
  let results = (outs Loom_FloatTensor:$input_grad);
  let assemblyFormat = "$input `,` $result_grad attr-dict `:` type($input)";
}

def Loom_GeluGradOp : Loom_ActivationGradOp<"gelu_grad", 80, "gelu"> {
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$result_grad,
      DefaultValuedAttr<Loom_GeluApproximation, "::loom::GeluApproximation::none">:$approximate);
  let assemblyFormat = [{
    $input `,` $result_grad (`approximate` $approximate^)? attr-dict `:`
    type($input)
  }];
}

def Loom_SiluGradOp : Loom_ActivationGradOp<"silu_grad", 81, "silu">;

def Loom_RmsNormGradOp : Loom_PureOp<"rmsnorm_grad", [Loom_OwnShardingRule, 
    AllTypesMatch<["input", "result_grad", "input_grad"]>,
    AllTypesMatch<["weight", "weight_grad"]>, Loom_Lowers<82>,
    Loom_Cost<["getVectorFlops"]>]> {
  let summary = "gradient of loom.rmsnorm";
  let description = [{
    For y = x·r·w with r = 1/sqrt(mean(x²) + ε) per row of H elements:
    dx = r·(w·dy) − x·r³·mean(x·w·dy), dw = Σ_rows x·r·dy.

    ```mlir
    %dx, %dw = loom.rmsnorm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
        : tensor<2x16x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weight,
                   Loom_FloatTensor:$result_grad,
                   DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Loom_FloatTensor:$input_grad,
                      Loom_FloatTensor:$weight_grad);
  let assemblyFormat = [{
    $input `,` $weight `,` $result_grad attr-dict `:` type($input) `,`
    type($weight)
  }];
  let hasVerifier = 1;
}

def Loom_LayerNormGradOp : Loom_PureOp<"layernorm_grad", [Loom_OwnShardingRule, 
    AllTypesMatch<["input", "result_grad", "input_grad"]>,
    AllTypesMatch<["weight", "weight_grad", "bias_grad"]>, Loom_Lowers<83>,
    Loom_Cost<["getVectorFlops"]>]> {
  let summary = "gradient of loom.layernorm";
  let description = [{
    For y = x̂·w + b with x̂ = (x − μ)·r, r = 1/sqrt(σ² + ε) per row of H
    elements (biased variance): with g = w·dy,
    dx = r·(g − mean(g) − x̂·mean(g·x̂)), dw = Σ_rows x̂·dy, db = Σ_rows dy.
    `bias_grad` is computed whether or not the forward op had a bias.

    ```mlir
    %dx, %dw, %db = loom.layernorm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
        : tensor<2x16x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weight,
                   Loom_FloatTensor:$result_grad,
                   DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Loom_FloatTensor:$input_grad,
                      Loom_FloatTensor:$weight_grad,
                      Loom_FloatTensor:$bias_grad);
  let assemblyFormat = [{
    $input `,` $weight `,` $result_grad attr-dict `:` type($input) `,`
    type($weight)
  }];
  let hasVerifier = 1;
}

def Loom_LowersSoftmaxGrad : Loom_Lowers<84> { let programDims = ["axis"]; }
def Loom_SoftmaxGradOp : Loom_PureOp<"softmax_grad", [Loom_OwnShardingRule, 
    AllTypesMatch<["result", "result_grad", "input_grad"]>,
    Loom_LowersSoftmaxGrad, Loom_InPlace,
    Loom_Cost<["getVectorFlops"]>]> {
  let summary = "gradient of loom.softmax, from its result";
  let description = [{
    For y = softmax(x) along `axis`: dx = y·(dy − Σ_axis y·dy).

    ```mlir
    %dx = loom.softmax_grad %y, %dy {axis = -1 : i64} : tensor<4x8xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$result, Loom_FloatTensor:$result_grad,
                   DefaultValuedAttr<I64Attr, "-1">:$axis);
  let results = (outs Loom_FloatTensor:$input_grad);
  let assemblyFormat = "$result `,` $result_grad attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Loom_LowersAttentionGrad : Loom_Lowers<85> {
  let programRankDependent = ["query_offset"];
}

def Loom_AttentionGradOp : Loom_PureOp<"attention_grad", [Loom_OwnShardingRule, 
    AllTypesMatch<["query", "result", "result_grad", "query_grad"]>,
    AllTypesMatch<["key", "key_grad"]>, AllTypesMatch<["value", "value_grad"]>,
    Loom_LowersAttentionGrad, Loom_Cost<["getMatmulFlops", "getVectorFlops"]>]> {
  let summary = "gradient of loom.attention, recomputing the scores";
  let description = [{
    The cotangents of q, k and v of `loom.attention` (same `causal`, `scale`
    and `query_offset`), from q, k, v, the forward result o and its
    cotangent do. The probabilities P are recomputed block by block from q and k, never kept
    whole: with D = Σ_d do·o per query row, dS = P·(do·vᵀ − D),
    dq = scale·dS·k, dk = scale·dSᵀ·q, dv = Pᵀ·do; the query heads that
    share a key/value head sum into its dk and dv.

    ```mlir
    %dq, %dk, %dv = loom.attention_grad %q, %k, %v, %o, %do {causal}
        : tensor<2x16x8x64xf32>, tensor<2x16x2x64xf32>, tensor<2x16x2x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$query, Loom_FloatTensor:$key,
                   Loom_FloatTensor:$value, Loom_FloatTensor:$result,
                   Loom_FloatTensor:$result_grad, UnitAttr:$causal,
                   OptionalAttr<F64Attr>:$scale,
                   DefaultValuedAttr<I64Attr, "0">:$query_offset);
  let results = (outs Loom_FloatTensor:$query_grad, Loom_FloatTensor:$key_grad,
                      Loom_FloatTensor:$value_grad);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $result `,` $result_grad attr-dict `:`
    type($query) `,` type($key) `,` type($value)
  }];
  let hasVerifier = 1;
}

def Loom_LowersAttentionBlockGrad : Loom_Lowers<34> {
  let programRankDependent = ["query_offset", "key_offset"];
}

def Loom_AttentionBlockGradOp : Loom_PureOp<"attention_block_grad", [
    AllTypesMatch<["query", "result", "result_grad", "query_grad"]>,
    AllTypesMatch<["key", "key_grad"]>, AllTypesMatch<["value", "value_grad"]>,
    Loom_LowersAttentionBlockGrad, Loom_Cost<["getMatmulFlops", "getVectorFlops"]>]> {
  let summary = "one key block's part of the attention gradient";
  let description = [{
    The part of `loom.attention_grad` that one block of keys k, v (at
    `key_offset`, as in `loom.attention_block`) contributes, given the whole
    attention's output o, its cotangent do and each query's log-sum-exp
    over all keys: P = exp(scale·q·kᵀ − lse) (masked), D = Σ_d do·o,
    dS = P·(do·vᵀ − D); dq = scale·dS·k (this block's term of the queries'
    gradient), dk = scale·dSᵀ·q, dv = Pᵀ·do. Ring attention's backward sums
    the blocks' dq on the query's rank and passes dk, dv along with their
    block.

    ```mlir
    %dq, %dk, %dv = loom.attention_block_grad %q, %k, %v, %o, %do, %lse
        {causal, key_offset = 8 : i64}
        : tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>,
          tensor<2x8x4xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$query, Loom_FloatTensor:$key,
                   Loom_FloatTensor:$value, Loom_FloatTensor:$result,
                   Loom_FloatTensor:$result_grad, Loom_FloatTensor:$logsumexp,
                   UnitAttr:$causal, OptionalAttr<F64Attr>:$scale,
                   DefaultValuedAttr<I64Attr, "0">:$query_offset,
                   DefaultValuedAttr<I64Attr, "0">:$key_offset);
  let results = (outs Loom_FloatTensor:$query_grad, Loom_FloatTensor:$key_grad,
                      Loom_FloatTensor:$value_grad);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $result `,` $result_grad `,` $logsumexp
    attr-dict `:` type($query) `,` type($key) `,` type($value) `,`
    type($logsumexp)
  }];
  let hasVerifier = 1;
}

def Loom_LowersCrossEntropyGrad : Loom_Lowers<86> {
  let programRankDependent = ["vocab_start"];
}
def Loom_LowersEmbeddingGrad : Loom_Lowers<87> {
  let programRankDependent = ["vocab_start"];
}

def Loom_CrossEntropyGradOp : Loom_PureOp<"cross_entropy_grad", [Loom_OwnShardingRule, 
    AllTypesMatch<["logits", "logits_grad"]>, Loom_LowersCrossEntropyGrad,
    Loom_Cost<["getVectorFlops"]>]> {
  let summary = "gradient of loom.cross_entropy";
  let description = [{
    With N positions (or `count`, as in the loss) and dL the cotangent of
    the mean loss (a scalar f32): dlogits = (softmax(logits) −
    onehot(target))·dL/N. Vocab-parallel form, as the loss's: with
    `logsumexp` the softmax is exp(logits − logsumexp) and the one-hot
    marks target − vocab_start where it falls among these columns.

    ```mlir
    %dl = loom.cross_entropy_grad %logits, %targets, %dloss
        : tensor<2x16x256xf32>, tensor<2x16xi32>, tensor<f32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$logits, Loom_IndexTensor:$targets,
                   Loom_ScalarF32:$result_grad,
                   Optional<Loom_FloatTensor>:$logsumexp,
                   OptionalAttr<I64Attr>:$count,
                   OptionalAttr<I64Attr>:$vocab_start);
  let results = (outs Loom_FloatTensor:$logits_grad);
  let assemblyFormat = [{
    $logits `,` $targets `,` $result_grad (`,` $logsumexp^)? attr-dict `:`
    type($logits) `,` type($targets) `,` type($result_grad)
    (`,` type($logsumexp)^)?
  }];
  let hasVerifier = 1;
}

def Loom_EmbeddingGradOp : Loom_PureOp<"embedding_grad", [Loom_OwnShardingRule, Loom_LowersEmbeddingGrad,
    Loom_Cost<["getVectorFlops"]>]> {
  let summary = "gradient of loom.embedding: rows summed into the table";
  let description = [{
    dtable[V, H] is zero except that row ids[i] receives Σ dy[i] over the
    positions i that looked it up (in position order, so the sums are
    deterministic). V comes from the result type. With `vocab_start` (as
    the embedding's), the table is the rows vocab_start .. vocab_start + V
    − 1 and ids outside them add nothing.

    ```mlir
    %dt = loom.embedding_grad %dy, %tokens
        : tensor<2x16x64xf32>, tensor<2x16xi32> -> tensor<256x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$result_grad, Loom_IndexTensor:$ids,
                   OptionalAttr<I64Attr>:$vocab_start);
  let results = (outs Loom_FloatTensor:$table_grad);
  let assemblyFormat = [{
    $result_grad `,` $ids attr-dict `:` type($result_grad) `,` type($ids) `->`
    type($table_grad)
  }];
  let hasVerifier = 1;
}

def Loom_RouterGradOp : Loom_PureOp<"router_grad", [Loom_OwnShardingRule, 
    AllTypesMatch<["logits", "logits_grad"]>, Loom_Lowers<88>,
    Loom_Cost<["getVectorFlops"]>]> {
  let summary = "gradient of loom.router's weights with respect to its logits";
  let description = [{
    The gate values of `loom.router` (same `softmax_before_topk` and
    `normalize`) differentiated at the experts it chose (`indices`); the
    choice itself is not differentiated. The weights are recomputed from
    the logits: with `softmax_before_topk`, p = softmax(logits), w_j =
    p[i_j] (divided by s = Σ_j p[i_j] with `normalize`, so that
    dp[i_j] = (dw_j − Σ_l w_l·dw_l)/s), and dlogits = p·(dp − Σ p·dp);
    otherwise w = softmax of the chosen logits and dlogits[i_j] =
    w_j·(dw_j − Σ_l w_l·dw_l), zero elsewhere.

    ```mlir
    %dl = loom.router_grad %logits, %idx, %dw
        : tensor<32x8xf32>, tensor<32x2xi32>, tensor<32x2xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$logits, Loom_IndexTensor:$indices,
                   Loom_FloatTensor:$weights_grad,
                   UnitAttr:$softmax_before_topk, UnitAttr:$normalize);
  let results = (outs Loom_FloatTensor:$logits_grad);
  let assemblyFormat = [{
    $logits `,` $indices `,` $weights_grad attr-dict `:` type($logits) `,`
    type($indices) `,` type($weights_grad)
  }];
  let hasVerifier = 1;
}

def Loom_LowersCombineGrad : Loom_Lowers<89> {
  let programRankDependent = ["expert_start"];
}

def Loom_CombineGradOp : Loom_PureOp<"combine_grad", [Loom_OwnShardingRule,
    AllTypesMatch<["input", "input_grad"]>,
    AllTypesMatch<["weights", "weights_grad"]>, Loom_LowersCombineGrad,
    Loom_Cost<["getVectorFlops"]>]> {
  let summary = "gradient of loom.combine";
  let description = [{
    Replays the slot assignment of `loom.combine` (tokens past capacity have
    none): dinput[e, slot] = weights[t, j]·dout[t] and dweights[t, j] =
    dout[t]·input[e, slot] for each token t and choice j with a slot;
    slots no token filled and dropped choices get zero. With a block of
    the experts (`expert_start`, `total_experts`, as in `loom.combine`),
    dweights holds the block's choices' terms only (zero for the others).
    `token_groups` is dispatch's.

    ```mlir
    %dy, %dw = loom.combine_grad %y, %w, %idx, %dout
        : tensor<8x16x64xf32>, tensor<32x2xf32>, tensor<32x2xi32>,
          tensor<32x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weights,
                   Loom_IndexTensor:$indices, Loom_FloatTensor:$result_grad,
                   DefaultValuedAttr<I64Attr, "0">:$expert_start,
                   OptionalAttr<I64Attr>:$total_experts,
                   DefaultValuedAttr<I64Attr, "1">:$token_groups);
  let results = (outs Loom_FloatTensor:$input_grad,
                      Loom_FloatTensor:$weights_grad);
  let assemblyFormat = [{
    $input `,` $weights `,` $indices `,` $result_grad attr-dict `:`
    type($input) `,` type($weights) `,` type($indices) `,` type($result_grad)
  }];
  let hasVerifier = 1;
}

#endif // LOOM_DIALECT_LOOM_IR_LOOMGRADIENTOPS_TD
