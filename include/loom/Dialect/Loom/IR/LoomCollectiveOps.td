//===- LoomCollectiveOps.td - Collectives over a mesh ------*- tablegen -*-===//
//
// Collectives move data between the ranks of the group spanned by some axes
// of a mesh. Operand and result shapes are local (per rank); the verifiers
// check them against the group size. Semantics follow upstream MLIR's `shard`
// dialect and docs/OpSemantics.md.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMCOLLECTIVEOPS_TD
#define LOOM_DIALECT_LOOM_IR_LOOMCOLLECTIVEOPS_TD

include "mlir/IR/SymbolInterfaces.td"

/// A collective names its mesh (`mesh = @world`, a `loom.mesh` symbol) and
/// the axes its group spans; shapes that depend on the group size are
/// checked against the mesh when symbol uses are verified.
class Loom_CollectiveOp<string mnemonic, list<Trait> traits = []>
    : Loom_Op<mnemonic, !listconcat(traits,
          [Loom_CollectiveOpInterface,
           DeclareOpInterfaceMethods<SymbolUserOpInterface>])> {
  let hasVerifier = 1;
  code extraCollectiveDeclaration = [{
    /// Checks the shapes that depend on the size `groupSize` of the group.
    ::mlir::LogicalResult verifyGroupShapes(int64_t groupSize);
  }];
  let extraClassDeclaration = extraCollectiveDeclaration;
}

/// A collective's mesh and axes become its instruction's communicator, not
/// attributes.
class Loom_LowersCollective<int opcodeValue, list<string> dims = []>
    : Loom_Lowers<opcodeValue> {
  let programDims = dims;
  let programOmit = ["mesh", "axes"];
}

def Loom_AllReduceOp : Loom_CollectiveOp<"all_reduce",
    [Loom_Differentiable, AllTypesMatch<["input", "result"]>, Loom_LowersCollective<100>,
     Loom_InPlace]> {
  let summary = "reduce over the group; every rank gets the result";
  let description = [{
    ```mlir
    %y = loom.all_reduce sum %x {mesh = @world, axes = ["tp"]}
        : tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, Loom_CollectiveReduction:$reduction,
                   FlatSymbolRefAttr:$mesh, StrArrayAttr:$axes);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$reduction $input attr-dict `:` type($result)";
}

def Loom_AllGatherOp : Loom_CollectiveOp<"all_gather",
    [Loom_Differentiable, Loom_LowersCollective<101, ["gather_dim"]>]> {
  let summary = "concatenate the group's pieces along one dimension";
  let description = [{
    The result's `gather_dim` is the group size times the input's; the pieces
    are in group order.

    ```mlir
    %y = loom.all_gather %x {mesh = @world, axes = ["tp"], gather_dim = 1 : i64}
        : tensor<2x4x64xf32> -> tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, FlatSymbolRefAttr:$mesh,
                   StrArrayAttr:$axes, I64Attr:$gather_dim);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def Loom_ReduceScatterOp : Loom_CollectiveOp<"reduce_scatter",
    [Loom_Differentiable, Loom_LowersCollective<102, ["scatter_dim"]>]> {
  let summary = "reduce over the group and keep this rank's piece";
  let description = [{
    The input's `scatter_dim` is divided by the group size; group rank r keeps
    reduced piece r.

    ```mlir
    %y = loom.reduce_scatter sum %x {mesh = @world, axes = ["tp"], scatter_dim = 1 : i64}
        : tensor<2x16x64xf32> -> tensor<2x4x64xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, Loom_CollectiveReduction:$reduction,
                   FlatSymbolRefAttr:$mesh, StrArrayAttr:$axes, I64Attr:$scatter_dim);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$reduction $input attr-dict `:` type($input) `->` type($result)";
}

def Loom_AllToAllOp : Loom_CollectiveOp<"all_to_all",
    [Loom_Differentiable, Loom_LowersCollective<103, ["split_dim", "concat_dim"]>]> {
  let summary = "exchange pieces between all ranks of the group";
  let description = [{
    Splits `split_dim` into group-size pieces, sends piece j to group rank j,
    and concatenates the received pieces along `concat_dim` in group order.

    ```mlir
    %y = loom.all_to_all %x {mesh = @world, axes = ["ep"],
                             split_dim = 0 : i64, concat_dim = 1 : i64}
        : tensor<8x16x64xf32> -> tensor<2x64x64xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, FlatSymbolRefAttr:$mesh,
                   StrArrayAttr:$axes, I64Attr:$split_dim, I64Attr:$concat_dim);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def Loom_CollectivePermuteOp : Loom_CollectiveOp<"collective_permute",
    [Loom_Differentiable, AllTypesMatch<["input", "result"]>, Loom_LowersCollective<104>]> {
  let summary = "cyclic shift of tensors around the group";
  let description = [{
    Every rank sends its input to group rank (r + shift) mod n and returns what
    rank (r − shift) mod n sent: the ring step of ring attention.

    ```mlir
    %kv = loom.collective_permute %x {mesh = @world, axes = ["cp"], shift = 1 : i64}
        : tensor<2x8x2x64xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, FlatSymbolRefAttr:$mesh,
                   StrArrayAttr:$axes, I64Attr:$shift);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Loom_SendOp : Loom_CollectiveOp<"send", [Loom_Differentiable, Loom_LowersCollective<105>]> {
  let summary = "send a tensor to the group rank peer_shift away";
  let description = [{
    Sends to group rank r + peer_shift; a rank without such a peer does
    nothing. Pairs with a `loom.recv` of the opposite shift on the peer.

    ```mlir
    loom.send %act {mesh = @world, axes = ["pp"], peer_shift = 1 : i64}
        : tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input, FlatSymbolRefAttr:$mesh,
                   StrArrayAttr:$axes, I64Attr:$peer_shift);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Loom_RecvOp : Loom_CollectiveOp<"recv", [Loom_Differentiable, Loom_LowersCollective<106>]> {
  let summary = "receive a tensor from the group rank peer_shift away";
  let description = [{
    Receives from group rank r + peer_shift; a rank without such a peer gets
    zeros.

    ```mlir
    %act = loom.recv {mesh = @world, axes = ["pp"], peer_shift = -1 : i64}
        : tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$mesh, StrArrayAttr:$axes,
                   I64Attr:$peer_shift);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
}

def Loom_WaitOp : Loom_Op<"wait", [AllTypesMatch<["input", "result"]>]> {
  let summary = "the result of an asynchronous collective, once it is done";
  let description = [{
    A collective marked `loom.async` starts as soon as its operand is ready
    and runs on the communication stream while the ops after it go on; its
    result may be read only through `loom.wait`, which blocks until the
    collective is done and returns the result (the same bytes: a view). The
    memory plan keeps the collective's operands and result live until the
    wait; the program emitter records and waits on events around the
    collective (docs: runtime/README.md, "Streams and events").

    ```mlir
    %r = loom.all_reduce sum %flat {mesh = @world, axes = ["dp"], loom.async}
        : tensor<1024xf32>
    ...
    %g = loom.wait %r : tensor<1024xf32>
    ```
  }];
  let arguments = (ins Loom_AnyTensor:$input);
  let results = (outs Loom_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

#endif // LOOM_DIALECT_LOOM_IR_LOOMCOLLECTIVEOPS_TD
