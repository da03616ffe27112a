//===- Passes.td - Loom's sharding passes ------------------*- tablegen -*-===//

#ifndef LOOM_SHARDING_PASSES_TD
#define LOOM_SHARDING_PASSES_TD

include "mlir/Pass/PassBase.td"

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

    Priorities: a `loom.shard` annotation pins its result (never changed);
    `loom.sharding` attributes already on arguments and op results are seeds
    (a plan's, or a previous run's), each with the `loom.priority` it
    carries (default 1, lower is stronger); everything else is propagated
    and inherits the priority of the factor that sharded it. A sharding
    only ever grows (an axis added to a dimension), so propagation ends; it
    is repeated forward and backward over the function until nothing
    changes. The new value of a parameter or state (a result marked like an
    argument) shares its argument's sharding.

    The result is a `loom.sharding` on every argument, result and op result
    that is split over some axis. Running the pass again changes nothing.
  }];
  let dependentDialects = ["::loom::LoomDialect"];
}

#endif // LOOM_SHARDING_PASSES_TD
