//===- LoomInterfaces.td - Op interfaces of the loom dialect -*- tablegen -*-===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMINTERFACES_TD
#define LOOM_DIALECT_LOOM_IR_LOOMINTERFACES_TD

include "mlir/IR/OpBase.td"

def Loom_CollectiveOpInterface : OpInterface<"CollectiveOpInterface"> {
  let cppNamespace = "::loom";
  let description = "An op that communicates within the group of mesh axes.";
  let methods = [
    InterfaceMethod<"The mesh the op runs on.", "::loom::MeshAttr", "getMesh",
      (ins), [{}], [{ return $_op.getMesh(); }]>,
    InterfaceMethod<"The mesh axes its group spans.", "::mlir::ArrayAttr",
      "getAxes", (ins), [{}], [{ return $_op.getAxes(); }]>,
  ];
  let extraClassDeclaration = [{
    /// Number of ranks in the group: the product of the axes' sizes.
    int64_t getGroupSize();
  }];
}

#endif // LOOM_DIALECT_LOOM_IR_LOOMINTERFACES_TD
