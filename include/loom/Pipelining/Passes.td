//===- Passes.td - Loom's pipeline-parallel passes ---------*- tablegen -*-===//

#ifndef LOOM_PIPELINING_PASSES_TD
#define LOOM_PIPELINING_PASSES_TD

include "mlir/Pass/PassBase.td"

def LoomSplitPipelinePass : Pass<"loom-split-pipeline", "mlir::ModuleOp"> {
  let summary = "Split the per-rank training step into one program per "
                "pipeline rank, ordered by a pipeline schedule";
  let description = [{
    Runs after -loom-partition on a training step whose mesh has a `pp`
    axis (of size p > 1). Transformer layers (`loom.layer`) are assigned to
    the p·vpp virtual stages, evenly, by Megatron's uneven layout
    (`first-layers`, `last-layers`: the first and last pipeline stage's
    layers, the other stages sharing the rest; with vpp each stage's
    layers are split evenly over its chunks), balanced by cost
    (`balance=cost`: contiguous layers minimizing the most expensive
    stage's FLOPs, from the ops' CostOpInterface, the embedding counted on
    the first stage and the output layer and loss on the last, as
    Megatron's --account-for-embedding/loss-in-pipeline-split do by
    hand), or by `layout` (layers per virtual stage); stage s runs on pipeline rank s mod p (Megatron's interleaved
    placement). The ops before the first layer (the embedding) follow the
    first stage, the ops after the last (final norm, head, loss) the last
    one, by the dataflow: a forward op without a layer joins the latest
    stage among its operands, a backward op the earliest.

    Every op of a microbatch belongs to one compute action of the schedule
    (`loom.phase` and `loom.microbatch` from -loom-autodiff): `fwd` to
    F(stage, microbatch), `bwd-input` to B, `bwd-weight` to W when the
    schedule splits the backward (zero-bubble) and to B otherwise. What
    follows the microbatches (gradient norm, optimizer) is the step's tail,
    run after the schedule on the rank of each parameter; a parameter used
    on two ranks (tied embeddings) has its gradient summed on the first and
    its update run on both, so both copies stay equal. Ops that read only
    arguments (constants, input slices, parameter casts) are repeated on
    every rank that uses them.

    Each pipeline rank gets a function `<step>_pp<r>` holding its actions
    in schedule order. A value made on one rank and read on another is
    sent right after it is made (`loom.send` over `pp`, buffered: the
    sender goes on) and received before its first use (`loom.recv`);
    receives from one peer are kept in the order of that peer's sends, as
    point-to-point messages pair in order. The loss and the gradient norm
    are sent to every rank, which returns them. The module gets
    `loom.pipeline` (pp, vpp, microbatches, the schedule's name and its
    actions as CSV, docs/Schedules.md) for the program emitter.

    With `report`, a remark per pipeline rank gives the most
    microbatch-chunks whose stash (forward values a backward reads) is
    alive at once in the compiled order, the schedule's own count of
    forwards not yet backwarded (1F1B: p - r on rank r), and the stash's
    bytes at that peak.

    Errors name their cause: a schedule that does not fit (its own
    problem ids), a layout whose counts do not sum to the layers, a step
    without `loom.layer` tags.
  }];
  let options = [
    Option<"schedule", "schedule", "std::string", /*default=*/"\"1f1b\"",
           "gpipe, 1f1b, interleaved, zb-h1, or a schedule CSV file">,
    Option<"vpp", "vpp", "int64_t", /*default=*/"1",
           "Virtual stages (model chunks) per pipeline rank">,
    ListOption<"layout", "layout", "int64_t",
               "Layers per virtual stage, in stage order (default: even)">,
    Option<"firstLayers", "first-layers", "int64_t", /*default=*/"0",
           "Layers of the first pipeline stage (Megatron's "
           "--decoder-first-pipeline-num-layers; 0: even)">,
    Option<"lastLayers", "last-layers", "int64_t", /*default=*/"0",
           "Layers of the last pipeline stage (0: even)">,
    Option<"balance", "balance", "std::string", /*default=*/"\"even\"",
           "Without a layout: 'even' (layers / (pp * vpp) each) or 'cost' "
           "(contiguous layers balancing each stage's FLOPs, the embedding "
           "on the first, the output layer and loss on the last)">,
    Option<"report", "report", "bool", /*default=*/"false",
           "Remark per pipeline rank: microbatches in flight and stash "
           "bytes in the compiled order, next to the schedule's count">,
  ];
  let dependentDialects = ["::loom::LoomDialect",
                           "::mlir::func::FuncDialect"];
}

#endif // LOOM_PIPELINING_PASSES_TD
