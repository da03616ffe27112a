//===- LoomAttrs.td - Mesh, sharding and enum attributes ---*- tablegen -*-===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMATTRS_TD
#define LOOM_DIALECT_LOOM_IR_LOOMATTRS_TD

include "loom/Dialect/Loom/IR/LoomDialect.td"
include "mlir/IR/EnumAttr.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"

def Loom_MeshAttr : Loom_Attr<"Mesh", "mesh"> {
  let summary = "The shape of a device mesh: named axes with sizes";
  let description = [{
    The logical arrangement of ranks that a parallel plan uses, as a
    `loom.mesh` op declares it. Axes are listed outermost first; a rank's
    linear index is row-major over the axes (the last axis varies fastest),
    as loom/runtime/Mesh.h computes it for the compiler and the runtime.

    ```mlir
    loom.mesh @world <pp = 2, dp = 2, tp = 4>
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
    /// Number of ranks in the mesh (the verifier bounds it by 2^31).
    int64_t getNumRanks() const;
  }];
}

def Loom_ShardingAttr : Loom_Attr<"Sharding", "sharding"> {
  let summary = "How a tensor is laid out over a named mesh";
  let description = [{
    The mesh it lays the tensor over (a `loom.mesh` symbol), then for each
    tensor dimension the mesh axes it is split over (outermost first);
    `unreduced` lists the axes over which every rank holds a partial value
    whose sum is the true tensor. The tensor is replicated over every other
    axis. Function arguments and results and the results of any op may
    carry one (`loom.sharding`).

    ```mlir
    // Rows split over "dp", columns over "tp", partial sums pending over "cp".
    #loom.sharding<@world, [{"dp"}, {"tp"} ], unreduced = {"cp"}>
    ```
  }];
  let parameters = (ins
    "mlir::FlatSymbolRefAttr":$mesh,
    "mlir::ArrayAttr":$dimAxes,
    "mlir::ArrayAttr":$unreducedAxes);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Mesh axes that split dimension `dim`.
    llvm::SmallVector<llvm::StringRef> getAxesOfDim(unsigned dim) const;
    /// Checks this sharding against the shape of its mesh and a tensor of
    /// `type`: known axes, matching rank, and dimensions that divide.
    mlir::LogicalResult verifyFor(MeshAttr mesh, mlir::ShapedType type,
        llvm::function_ref<mlir::InFlightDiagnostic()> emitError) const;
    /// The per-rank shape of a tensor of `type` under this sharding.
    llvm::SmallVector<int64_t> getLocalShape(MeshAttr mesh,
                                             llvm::ArrayRef<int64_t> shape) const;
  }];
}

def Loom_RankTermAttr : Loom_Attr<"RankTerm", "rank_term"> {
  let summary = "A term of an integer attribute that depends on the rank";
  let description = [{
    coeffs[i] · ((coordinate of `axis` in `mesh` + shift) mod size of the
    axis), added to element i of an op's integer attribute on each rank. A
    per-rank program (SPMD) carries one set of attributes for all its ranks:
    the offset of a rank's slice, the first vocabulary row a rank owns, the
    position a rank's part of a sequence starts at. An op lists them in
    `loom.rank_terms`, by attribute name; the program keeps them as
    rank-dependent terms (runtime/README.md).

    ```mlir
    %s = loom.slice %x {offsets = array<i64: 0, 0>, sizes = array<i64: 4, 8>,
        loom.rank_terms = {offsets = [#loom.rank_term<@world, "tp", [0, 8]>]}}
        : tensor<4x16xf32> -> tensor<4x8xf32>
    ```
  }];
  let parameters = (ins "mlir::FlatSymbolRefAttr":$mesh, "mlir::StringAttr":$axis,
                        ArrayRefParameter<"int64_t", "coefficients">:$coeffs,
                        DefaultValuedParameter<"int64_t", "0">:$shift);
  let assemblyFormat = [{
    `<` $mesh `,` $axis `,` `[` $coeffs `]` (`,` `shift` `=` $shift^)? `>`
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
      I32EnumAttrCase<"mean", 2>,
      I32EnumAttrCase<"sum_squares", 3>]> {
  let cppNamespace = "::loom";
}

def Loom_Phase : I32EnumAttr<"Phase",
    "the part of a training step an op belongs to", [
      I32EnumAttrCase<"fwd", 0>,
      I32EnumAttrCase<"bwd_input", 1, "bwd-input">,
      I32EnumAttrCase<"bwd_weight", 2, "bwd-weight">]> {
  let cppNamespace = "::loom";
  let genSpecializedAttr = 0;
}

def Loom_PhaseAttr : EnumAttr<Loom_Dialect, Loom_Phase, "phase"> {
  let summary = "forward, input-gradient or weight-gradient part of a step";
  let description = [{
    Tags an op (`loom.phase`) with the part of the training step it belongs
    to: `fwd`, `bwd-input` (gradients with respect to activations) or
    `bwd-weight` (gradients with respect to parameters). Pipeline schedules
    cut the step along these tags.

    ```mlir
    %y = loom.matmul %x, %w {loom.layer = 3 : i64,
                             loom.phase = #loom.phase<"bwd-weight">} ...
    ```
  }];
  // Quoted: "bwd-input" is not an MLIR keyword.
  let assemblyFormat = ?;
  let hasCustomAssemblyFormat = 1;
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
