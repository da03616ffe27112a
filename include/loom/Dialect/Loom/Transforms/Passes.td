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
    operand that dies there, and reshapes are views. Parameters keep their
    bytes for the whole program. `loom-translate --loom-to-program` then
    writes the binary program.

    With `report`, a remark on each function gives the planned arena, the
    lower bound (the most bytes live at one instruction) and the counts.
  }];
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark with the planned peak bytes of each function">,
  ];
  let dependentDialects = ["::loom::LoomDialect"];
}

#endif // LOOM_DIALECT_LOOM_TRANSFORMS_PASSES_TD
