//===- Passes.td - Loom's sharding passes ------------------*- tablegen -*-===//

#ifndef LOOM_SHARDING_PASSES_TD
#define LOOM_SHARDING_PASSES_TD

include "mlir/Pass/PassBase.td"

def LoomApplyPlanPass : Pass<"loom-apply-plan", "mlir::ModuleOp"> {
  let summary = "A parallel plan as a mesh and sharding seeds";
  let description = [{
    Parses `plan` (docs/PlanSpec.md: `dp=2,tp=2`, or Megatron-LM's flags),
    checks it against the model the function computes (heads, key/value
    heads, hidden units, vocabulary and layers, read off the graph) and
    against the rules of each parallelism, each problem an error naming
    its rule; degrees whose passes are not built yet are refused, never
    ignored. Then declares `loom.mesh @world` in Megatron's rank order (tp
    fastest, then cp, dp, pp; axes of size 1 left out) and seeds shardings
    on what each parallelism splits: data parallelism every data input's
    rows (each rank cutting its microbatches from its own rows, as
    Megatron's loader does); tensor parallelism every attention's heads,
    every activation's hidden units and the vocabulary of every embedding
    table and loss; sequence parallelism every norm's sequence, as a weaker
    seed (`loom.priority` 2) that fills the stream between the
    tensor-parallel regions. -loom-propagate-sharding spreads them and
    -loom-partition makes the per-rank program; the pipeline
    `loom-parallelize` runs the three.

    A seed whose dimension does not divide over its axis is an error naming
    the value, the dimension and the axis.
  }];
  let options = [
    Option<"plan", "plan", "std::string", /*default=*/"\"\"",
           "The plan spec, e.g. dp=2,tp=2">,
    Option<"worldSize", "world-size", "int64_t", /*default=*/"0",
           "The ranks of the job (0: the product of the plan's degrees)">,
  ];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomPropagateShardingPass
    : Pass<"loom-propagate-sharding", "mlir::ModuleOp"> {
  let summary = "Give every value a sharding, from the ops' sharding rules";
  let description = [{
    Spreads shardings from where they are given to every value of each
    function, through the factors of each op's sharding rule
    (ShardingRuleOpInterface), as OpenXLA Shardy does: the mesh axes of a
    tensor dimension are split among the dimension's factors, a factor takes
    the axes of the tensor that shards it with the highest priority (among
    equals, the one that shards it most, when the others are prefixes of
    it), and every tensor of the op that has the factor takes them in turn.
    Pass-through, reduction and own-partition factors carry axes;
    need-replication factors do not (the partitioner gathers them). An axis
    shards one dimension of a tensor at most.

    Priorities: a `loom.shard` or `loom.reshard` annotation pins its result
    (never changed; a reshard's input is not affected by it); `loom.sharding`
    attributes already on arguments and op results are seeds (a plan's, or
    a previous run's), each with the `loom.priority` it carries (default 1,
    lower is stronger); everything else is propagated and inherits the
    priority of the factor that sharded it, written as its `loom.priority`
    when not 1. Propagation runs in levels, strongest first: at level p only
    shardings of priority p or stronger move, repeated forward and backward
    over the function until nothing changes, so a weak seed never claims an
    axis a stronger one would have reached. A sharding only ever grows (an
    axis added to a dimension), so each level ends. The new value of a
    parameter or state (a result marked like an argument) takes its
    argument's sharding, never the other way round.

    The result is a `loom.sharding` on every argument, result and op result
    that is split over some axis. Running the pass again changes nothing.
  }];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomShardOptimizerPass
    : Pass<"loom-shard-optimizer", "mlir::ModuleOp"> {
  let summary = "ZeRO: split the optimizer over the data-parallel ranks";
  let description = [{
    Megatron-LM's distributed optimizer (`--use-distributed-optimizer`,
    ZeRO-1) and ZeRO-2/3, between two runs of -loom-propagate-sharding:
    every `loom.adamw` moves onto its parameter's sharding with `axis` added
    on the first dimension whose piece divides by it. Its moments are
    seeded with that sharding, and its gradient is read through a
    `loom.reshard` to it, so the partitioner reduce-scatters the gradient
    where plain data parallelism would all-reduce it, and the global norm
    sums pieces.

    - `zero=1`: the accumulated gradient is reduce-scattered once; AdamW
      updates its piece of the parameter, which is all-gathered whole for
      the step's output.
    - `zero=2`: each microbatch's gradient is reduce-scattered as soon as it
      is made and accumulation adds pieces.
    - `zero=3`: as 2, and the parameter itself lives in pieces: each
      microbatch's forward and its backward all-gather it again before
      their first use, so no whole parameter outlives its part of the step.

    A parameter none of whose dimensions divides over the axis keeps a
    whole optimizer on every rank. `zero=0`, or no mesh with the axis,
    changes nothing. Data parallelism may span several axes (`axis` a
    comma-separated list; those the mesh has are used): MoE folding splits
    dp in two ("dp", "ep") when the experts take part of it, and each
    optimizer is split over the data axes its parameter is not split over
    already (an expert's over "dp" alone).
  }];
  let options = [
    Option<"zero", "zero", "int", /*default=*/"1",
           "ZeRO stage: 0 (off), 1 (optimizer state), 2 (+ gradients), "
           "3 (+ parameters)">,
    Option<"axis", "axis", "std::string", /*default=*/"\"dp,ep\"",
           "The data-parallel mesh axes (comma-separated)">,
  ];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomPartitionPass : Pass<"loom-partition", "mlir::ModuleOp"> {
  let summary = "Turn global shapes and shardings into one per-rank program";
  let description = [{
    Rewrites each function whose values carry shardings (after
    -loom-propagate-sharding) into the function every rank of the mesh runs:
    local shapes, and a collective wherever a value's sharding is not the
    one its user needs. For each op the axes of each factor of its sharding
    rule come from its results' shardings, then its operands'; operands are
    resharded to those (need-replication factors whole), results come out
    sharded accordingly, and a result that lacks a factor the op sums over
    is a partial sum (unreduced) over that factor's axes.

    Resharding: a partial sum becomes a reduce_scatter when the target
    splits a dimension by that axis next, an all_reduce otherwise; a
    dimension split over more axes than wanted is all-gathered; one split
    over fewer is sliced, each rank its piece through rank-dependent
    offsets (#loom.rank_term), so one program serves every rank. Losses and
    means over split dimensions divide by the global count; RoPE on a split
    sequence starts at the rank's first position.

    Own partitions: an embedding whose table is split by vocabulary looks
    up its rows only (`vocab_start` from the rank; other ids give zeros) and
    its result is a partial sum; its gradient fills its rows; a loss whose
    logits are split by vocabulary takes the global log-sum-exp of each
    position (an all-reduce of the maxima and one of the sums of
    exponentials) and counts the positions whose target it holds, so the
    logits are never gathered (Megatron's vocab-parallel embedding and
    cross-entropy). Partial sums split alike are added before they are
    reduced; sums of one-element terms (a global norm) stay partial over
    all their axes and are reduced once. A gather is made again in each
    microbatch's forward and backward that needs it; a reduction is made
    once and kept.

    Arguments and results keep, as `loom.shard_of`, the sharding their local
    values are pieces of.
  }];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomRingAttentionPass : Pass<"loom-ring-attention", "mlir::ModuleOp"> {
  let summary = "Context parallelism's all-gather attention as ring attention";
  let description = [{
    Megatron-Core's `--cp-comm-type p2p`, after -loom-partition. Partitioning
    gives context parallelism its all-gather form: an attention whose keys
    and values are all-gathered over one mesh axis (cp), its queries at a
    rank-dependent `query_offset`; in the backward the same gathers and the
    key and value gradients reduce-scattered. This pass makes each such
    attention a ring over the axis's P ranks instead, so no rank ever holds
    all keys:

    - forward: P steps; step i runs `loom.attention_block` of the rank's
      queries against the key/value block that started on rank r − i (its
      `key_offset` a rank term, n·((r − i) mod P)), and passes the block on
      with `loom.collective_permute` (P − 1 transfers of K and V each).
      The blocks' outputs merge by their log-sum-exp; a causal block that
      lies wholly after the rank's queries contributes nothing.
    - backward: the same ring; each step's `loom.attention_block_grad`
      (from the merged output and log-sum-exp) adds to the queries'
      gradient on the rank and to the block's dk, dv, which travel with
      the block and reach their owner with one more transfer.

    An attention_grad whose forward is not a rewritten attention (so that
    its log-sum-exp is unknown) keeps the all-gather form.

    With `keep-gather` (cp_comm=all_gather) the keys stay all-gathered and
    only a step in the load-balanced order (loom.cp_chunks) is rewritten:
    the gathered keys are the ranks' chunk pairs, so each query chunk runs
    against each key chunk at its positions (attention_block, merged by
    log-sum-exp), and the key chunks' gradients go back to the
    reduce-scatters in the gathered order. In both modes, with
    loom.cp_chunks each rope runs per chunk at the chunk's positions.
  }];
  let options = [
    Option<"keepGather", "keep-gather", "bool", /*default=*/"false",
           "keep the keys all-gathered (cp_comm=all_gather)">
  ];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomOverlapGradReducePass
    : Pass<"loom-overlap-grad-reduce", "mlir::ModuleOp"> {
  let summary = "Bucket the data-parallel gradient reductions and overlap "
                "them with backward";
  let description = [{
    Megatron-LM's `--overlap-grad-reduce`, after -loom-partition. The
    gradient reductions over the data-parallel axis (`axis`) are the
    all_reduce (plain data parallelism) or reduce_scatter (ZeRO) ops over
    that axis alone, summing a value that reaches an AdamW update's
    gradient (directly or through accumulation, reshapes, conversions).
    They are grouped, in the order backward makes their gradients, into
    buckets of at least `bucket-size` bytes (the last bucket may be
    smaller; one bucket per collective kind and element type at a time,
    and a bucket closes early when its next gradient is made only after
    one of its gradients is used). Each bucket becomes one collective over
    a flat buffer, started right after its last gradient is made and
    marked `loom.async`:

    ```mlir
    %flat = loom.concat %g7, %g8 {dim = 0} : ... -> tensor<96xf32>
    %r = loom.all_reduce sum %flat {axes = ["dp"], mesh = @world, loom.async}
    ...                       // backward of earlier layers goes on
    %w = loom.wait %r         // right before the first use of any of them
    %g7r = loom.reshape (loom.slice %w [0, 64]) ...
    ```

    A reduce_scatter bucket lays each gradient out as [n, piece] (its
    split dimension first, transposed there when it is not already) and
    concatenates the pieces, so every rank keeps the pieces the separate
    reduce_scatters gave it. Results are the same numbers: every element
    is summed over the same ranks as before. The memory plan keeps an
    asynchronous collective's operand and result live until its wait; the
    program runs it on the communication stream between events (the CPU
    executor's communication thread; runtime/README.md).
  }];
  let options = [
    Option<"bucketSize", "bucket-size", "int64_t",
           /*default=*/"160000000",
           "Bytes per bucket (default: Megatron's 40M f32 parameters)">,
    Option<"axis", "axis", "std::string", /*default=*/"\"dp,ep\"",
           "The data-parallel mesh axes (comma-separated): reductions over "
           "some of them (those the mesh has) are bucketed">,
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark with the number of buckets per function">,
  ];
  let dependentDialects = ["::loom::LoomDialect"];
}

#endif // LOOM_SHARDING_PASSES_TD
