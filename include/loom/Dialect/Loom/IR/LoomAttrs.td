//===- LoomAttrs.td - Mesh, sharding and enum attributes ---*- tablegen -*-===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMATTRS_TD
#define LOOM_DIALECT_LOOM_IR_LOOMATTRS_TD

include "loom/Dialect/Loom/IR/LoomDialect.td"
include "mlir/IR/EnumAttr.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"

def Loom_MeshAttr : Loom_Attr<"Mesh", "mesh"> {
  let summary = "A device mesh: named axes with sizes";
  let description = [{
    The logical arrangement of ranks that a parallel plan uses. Axes are
    listed outermost first; a rank's linear index is row-major over the axes
    (the last axis varies fastest).

    ```mlir
    #mesh = #loom.mesh<pp = 2, dp = 2, tp = 4>
    ```
  }];
  let parameters = (ins
    ArrayRefParameter<"mlir::StringAttr", "axis names">:$axisNames,
    ArrayRefParameter<"int64_t", "axis sizes">:$axisSizes);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Index of the axis called `name`, if any.
    std::optional<unsigned> getAxisIndex(llvm::StringRef name) const;
    /// Size of the axis called `name`; the axis must exist.
    int64_t getAxisSize(llvm::StringRef name) const;
    /// Number of ranks in the mesh.
    int64_t getNumRanks() const;
  }];
}

def Loom_ShardingAttr : Loom_Attr<"Sharding", "sharding"> {
  let summary = "How a tensor is laid out over a mesh";
  let description = [{
    For each tensor dimension, the mesh axes it is split over (outermost
    first); `unreduced` lists the axes over which every rank holds a partial
    value whose sum is the true tensor. The tensor is replicated over every
    other axis.

    ```mlir
    // Rows split over "dp", columns over "tp", partial sums pending over "cp".
    #loom.sharding<[{"dp"}, {"tp"} ], unreduced = {"cp"}>
    ```
  }];
  let parameters = (ins
    "mlir::ArrayAttr":$dimAxes,
    "mlir::ArrayAttr":$unreducedAxes);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Mesh axes that split dimension `dim`.
    llvm::SmallVector<llvm::StringRef> getAxesOfDim(unsigned dim) const;
    /// Checks this sharding against `mesh` and a tensor of `type`: known,
    /// unrepeated axes, matching rank, and dimensions that divide.
    mlir::LogicalResult verifyFor(MeshAttr mesh, mlir::ShapedType type,
        llvm::function_ref<mlir::InFlightDiagnostic()> emitError) const;
    /// The per-rank shape of a tensor of `type` under this sharding.
    llvm::SmallVector<int64_t> getLocalShape(MeshAttr mesh,
                                             llvm::ArrayRef<int64_t> shape) const;
  }];
}

def Loom_GeluApproximation : I32EnumAttr<"GeluApproximation",
    "how gelu is computed", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"tanh", 1>]> {
  let cppNamespace = "::loom";
}

def Loom_ReduceKind : I32EnumAttr<"ReduceKind", "a reduction", [
      I32EnumAttrCase<"sum", 0>,
      I32EnumAttrCase<"max", 1>,
      I32EnumAttrCase<"mean", 2>]> {
  let cppNamespace = "::loom";
}

def Loom_CollectiveReduction : I32EnumAttr<"CollectiveReduction",
    "the reduction of a collective", [
      I32EnumAttrCase<"sum", 0>,
      I32EnumAttrCase<"max", 1>,
      I32EnumAttrCase<"min", 2>,
      I32EnumAttrCase<"mean", 3>]> {
  let cppNamespace = "::loom";
}

#endif // LOOM_DIALECT_LOOM_IR_LOOMATTRS_TD
