//===- Passes.td - Loom passes -----------------------------*- tablegen -*-===//

#ifndef LOOM_DIALECT_LOOM_TRANSFORMS_PASSES_TD
#define LOOM_DIALECT_LOOM_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def LoomAutodiffPass : Pass<"loom-autodiff", "mlir::ModuleOp"> {
  let summary = "Derive the training step from a forward function";
  let description = [{
    Replaces the forward function of the module (parameters `{loom.param}`
    and data `{loom.input}` → a scalar f32 loss) by its training step,
    `train_step`: for each of `micro-batches` microbatches, the forward ops
    and their backward, built in reverse from each op's vector-Jacobian rule
    (DifferentiableOpInterface); the gradients summed over the microbatches;
    their global norm; and one AdamW update per parameter, clipped to
    `max-grad-norm` as PyTorch's clip_grad_norm_ does.

    The step's arguments: the parameters (`loom.param`, as in the forward);
    for each, its AdamW moments `<name>.exp_avg` and `<name>.exp_avg_sq`
    (`loom.state`, f32); the data inputs with `micro-batches` times the rows
    (dim 0: microbatch i takes rows [i·B, (i+1)·B)); `lr` (tensor<f32>) and
    `step` (tensor<i32>, 1 for the first update). Its results: `loss` (the
    mean of the microbatch losses), `grad_norm` (before clipping), with
    `emit-gradients` each `<name>.grad` (summed, before clipping), then the
    new parameters and moments, each marked with the `loom.param` or
    `loom.state` name it replaces: a program writes them over their own
    bytes.

    Weight decay applies to parameters of rank ≥ 2 only (biases and norm
    weights are not decayed, as in Megatron-LM).

    `recompute` trades compute for memory as Megatron-LM's
    --recompute-granularity does: `selective` recomputes each attention's
    result in the backward instead of keeping it; `full` keeps only each
    transformer layer's input (ops tagged `loom.layer`) and recomputes the
    layer before its backward. Recomputed ops carry `loom.recomputed`; the
    updated parameters are the same bit for bit under every policy. With
    `report`, a remark gives the stash: the forward values the backward
    reads, their count and bytes. Every op of the step
    carries `loom.phase` (`fwd`, `bwd-input` for cotangents of activations,
    `bwd-weight` for those of parameters) and, with several microbatches,
    `loom.microbatch`; backward ops keep the `loom.layer` of the op they
    differentiate.
  }];
  let options = [
    Option<"microBatches", "micro-batches", "int64_t", /*default=*/"1",
           "Microbatches per step (gradient accumulation)">,
    Option<"emitGradients", "emit-gradients", "bool", /*default=*/"false",
           "Also return each parameter's gradient as `<name>.grad`">,
    Option<"maxGradNorm", "max-grad-norm", "double", /*default=*/"1.0",
           "Clip gradients to this global L2 norm (0: no clipping)">,
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999", "AdamW beta2">,
    Option<"epsilon", "epsilon", "double", /*default=*/"1e-8",
           "AdamW epsilon">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.01",
           "AdamW decoupled weight decay (parameters of rank >= 2)">,
    Option<"recompute", "recompute", "std::string", /*default=*/"\"none\"",
           "Activation recompute: none, selective (attention results) or "
           "full (each transformer layer from its input)">,
    Option<"report", "report", "bool", /*default=*/"false",
           "Remark the forward values the backward keeps (the stash)">,
  ];
  let dependentDialects = ["::loom::LoomDialect",
                           "::mlir::func::FuncDialect"];
}

def LoomLowerToProgramPass : Pass<"loom-lower-to-program", "mlir::ModuleOp"> {
  let summary = "Plan one arena per rank and assign every tensor its bytes";
  let description = [{
    Prepares each function for emission as a per-rank program: every tensor
    gets a byte offset in one arena (`loom.offset` on arguments, `loom.offsets`
    on ops, `loom.arena_size` on the function). Tensors whose lifetimes do not
    overlap share bytes, element-wise results are written in place over an
    operand that dies there, and reshapes are views. Arguments keep their
    bytes for the whole program. A returned argument or constant is first
    copied (`loom.convert` to its own type), since a program's outputs are
    buffers an instruction writes. `loom-translate --loom-to-program` then
    writes the binary program.

    The plan is checked by replaying the function: no op may overwrite bytes
    that a later op still reads.

    With `report`, a remark on each function gives the planned arena, the
    lower bound (the most bytes live at one instruction) and the counts.
  }];
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark with the planned peak bytes of each function">,
    Option<"reuse", "reuse", "bool", /*default=*/"true",
           "Share bytes between tensors whose lifetimes do not overlap "
           "(false: every tensor has its own bytes, for reference runs)">,
  ];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomPrintShardingRulesPass : Pass<"loom-print-sharding-rules"> {
  let summary = "Report the sharding rule of every op as a remark";
  let description = [{
    A debugging aid and the test of the ops' sharding rules: every op with a
    `ShardingRuleOpInterface` gets a remark with its rule in Shardy's text
    form, e.g. `sharding rule: ([i, k], [k, j])->([i, j]) {i=8, j=16, k=32}
    reduction={k}`. A rule that does not fit its op (a bug in the op's rule)
    is an error. The IR is not changed.
  }];
}

#endif // LOOM_DIALECT_LOOM_TRANSFORMS_PASSES_TD
