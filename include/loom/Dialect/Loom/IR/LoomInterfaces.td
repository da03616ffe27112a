//===- LoomInterfaces.td - Op interfaces of the loom dialect -*- tablegen -*-===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMINTERFACES_TD
#define LOOM_DIALECT_LOOM_IR_LOOMINTERFACES_TD

include "mlir/IR/OpBase.td"

def Loom_CollectiveOpInterface : OpInterface<"CollectiveOpInterface"> {
  let cppNamespace = "::loom";
  let description = [{
    An op that communicates within the group of ranks spanned by some axes
    of a mesh (a `loom.mesh` symbol).
  }];
  let methods = [
    InterfaceMethod<"The name of the mesh the op runs on.",
      "::mlir::FlatSymbolRefAttr", "getMeshAttr", (ins), [{}],
      [{ return $_op.getMeshAttr(); }]>,
    InterfaceMethod<"The mesh axes its group spans.", "::mlir::ArrayAttr",
      "getAxes", (ins), [{}], [{ return $_op.getAxes(); }]>,
  ];
  let extraClassDeclaration = [{
    /// The mesh the op names, or null if no `loom.mesh` of that name
    /// encloses it. `tables` caches symbol tables across lookups.
    ::loom::MeshOp getMeshOp(::mlir::SymbolTableCollection *tables = nullptr);
    /// Number of ranks in the group: the product of the axes' sizes in
    /// `mesh`.
    int64_t getGroupSize(::loom::MeshAttr mesh);
  }];
}

def Loom_ProgramOpInterface : OpInterface<"ProgramOpInterface"> {
  let cppNamespace = "::loom";
  let description = [{
    An op that lowers to one instruction of the program format
    (runtime/schema/program.fbs). Ops get it from their `Loom_Lowers<opcode>`
    trait (LoomProgram.td), which loom-tblgen reads to write the op table
    shared with the runtime (runtime/include/loom/runtime/OpTable.inc). Each
    inherent attribute of the op becomes the instruction attribute of the
    same name; the table says how the runtime decodes it.
  }];
  let methods = [
    StaticInterfaceMethod<
      "The opcode of the op's program instruction (an `Opcode` value).",
      "uint16_t", "getProgramOpcode">,
  ];
}

#endif // LOOM_DIALECT_LOOM_IR_LOOMINTERFACES_TD
