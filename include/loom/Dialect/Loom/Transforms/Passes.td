//===- Passes.td - Loom passes -----------------------------*- tablegen -*-===//

#ifndef LOOM_DIALECT_LOOM_TRANSFORMS_PASSES_TD
#define LOOM_DIALECT_LOOM_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

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
