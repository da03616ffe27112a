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

def Loom_CostOpInterface : OpInterface<"CostOpInterface"> {
  let cppNamespace = "::loom";
  let description = [{
    The work of an op on its shapes: FLOPs and the bytes it reads and writes,
    for the cost model (the roofline time of the op's kernel) and for model
    statistics. Every op that lowers to a kernel has it; constants (no
    instruction) and collectives (priced by the communication model) do not.

    FLOPs come in two kinds because accelerators run them on different units
    at different peaks.

    Matmul FLOPs, two per multiply-add of a contraction; what model-FLOPs
    utilization (MFU) counts:
    - `matmul`: 2·M·N·K per batch element.
    - `grouped_matmul`: 2·E·C·N·K, over every slot of the expert capacity C,
      filled or not (the kernel computes them all).
    - `attention`: 4·B·S_q·S_k·H·D for q·kᵀ and p·v over all H query heads,
      unmasked even when causal, as Megatron and PaLM count model FLOPs.

    Vector FLOPs, everything else, per element of the result unless said;
    exp, erf, tanh and square roots count as one FLOP each, and terms per row
    (one division or square root per normalized row) are left out:
    - `add`, `sub`, `mul`, `div`, `scale` and the default: 1.
    - `silu`: 4 (negate, exp, add 1, divide); `swiglu`: 5 (silu, multiply).
    - `gelu`: 5 in the erf form (divide, erf, add, two multiplies); 9 in the
      tanh form (x³ as 2, multiply, add, multiply, tanh, add, 2 multiplies).
    - `rmsnorm`: 4 (square, sum, scale by the inverse root, weight).
    - `layernorm`: 6 (sum, subtract the mean, square, sum, scale, weight),
      7 with a bias.
    - `softmax`: 5 (max, subtract, exp, sum, divide).
    - `rope`: 3 (two multiplies and an add).
    - `attention`: 6 per score of the B·H·S_q·S_k scores (scale, softmax).
    - `cross_entropy`: 4 per logit (max, subtract, exp, sum).
    - `reduce`: 1 per input element, plus 1 per result element for `mean`.
    - `router`, per token of E experts choosing k: k·E comparisons to select,
      5 per softmaxed element (E before the selection with
      `softmax_before_topk`, else k after it), 2·k more with `normalize`.
    - `combine`: 2 per token, choice and hidden element (multiply, add).
    - `adamw`: 15 per parameter element (decay 1, first moment 3, second
      moment 4, two bias corrections, square root, epsilon, divide, learning
      rate, update).
    - `fill`, `convert`, `embedding`, `dispatch` and the shape ops: none;
      they move data.

    Bytes read are every operand's bytes and bytes written every result's,
    except: `embedding` and `slice` read only the rows or box they copy, and
    `reshape` is a view (the memory plan gives it its operand's bytes) that
    moves nothing.
  }];
  let methods = [
    InterfaceMethod<"FLOPs of contractions (two per multiply-add).",
      "double", "getMatmulFlops", (ins), [{}], [{ return 0; }]>,
    InterfaceMethod<"Other FLOPs; the default is one per result element.",
      "double", "getVectorFlops", (ins), [{}], [{
        return static_cast<double>(
            ::loom::getNumElements($_op->getResultTypes()));
      }]>,
    InterfaceMethod<"Bytes the op reads; the default is all operands.",
      "int64_t", "getBytesRead", (ins), [{}], [{
        return ::loom::getTensorBytes($_op->getOperandTypes());
      }]>,
    InterfaceMethod<"Bytes the op writes; the default is all results.",
      "int64_t", "getBytesWritten", (ins), [{}], [{
        return ::loom::getTensorBytes($_op->getResultTypes());
      }]>,
  ];
  let extraClassDeclaration = [{
    /// All four figures.
    ::loom::OpCost getCost() {
      return {getMatmulFlops(), getVectorFlops(), getBytesRead(),
              getBytesWritten()};
    }
  }];
}

def Loom_ShardingRuleOpInterface : OpInterface<"ShardingRuleOpInterface"> {
  let cppNamespace = "::loom";
  let description = [{
    How an op may be sharded, as a factor rule in the style of OpenXLA
    Shardy (ShardingRule.h): the factors of the op's iteration space with
    their sizes, the factors each dimension of each operand and result is
    made of, and for each factor whether the op passes its sharding through,
    reduces over it (a sharded contraction leaves its axes unreduced on the
    results), or needs it replicated. Sharding propagation moves shardings
    between an op's tensors through the factors they share; the partitioner
    reads from the kinds which collectives a sharding needs.

    The default is the element-wise rule: one pass-through factor per
    dimension of the first result, shared by every operand and result of the
    same shape. Other ops override it.
  }];
  let methods = [
    InterfaceMethod<"The sharding rule of the op on its current types.",
      "::loom::ShardingRule", "getShardingRule", (ins), [{}], [{
        return ::loom::ShardingRule::getPointwise($_op);
      }]>,
  ];
}

def Loom_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::loom";
  let description = [{
    The vector-Jacobian product (VJP) of an op: given the cotangents of its
    results, the ops that compute the cotangents of its operands. Reverse-mode
    autodiff calls it once per op, in reverse order, after summing the
    cotangents each result receives from its uses. An op without this
    interface is not differentiable.

    Contract of `buildVjp(builder, resultCotangents, operandCotangents)`:

    - `resultCotangents` has one entry per result, in order: a value of the
      result's type, or null when no gradient reaches that result (it does
      not feed the loss, or it is an integer tensor). The caller does not
      call the rule when all entries are null.
    - `operandCotangents` is empty on entry. On success it holds exactly one
      entry per operand, in order: a value of the operand's type, or null
      when the operand gets no gradient. Integer operands (token ids,
      targets, expert indices, the AdamW step) never get one; a float
      operand gets null when its cotangent is zero for the given non-null
      result cotangents. An entry may be an existing value (`add` passes its
      result cotangent through) and two entries may be the same value;
      summing the contributions to an operand used more than once is the
      caller's job.
    - The caller sets the builder's insertion point where the backward ops
      go, after the op and the result cotangents. The rule creates its ops
      there, in order, at the op's location, and leaves the insertion point
      after the last op it created. It may use the op's operands and results
      (`mul` reads the other factor); keeping them alive until then (stash
      or recompute) is the caller's concern. It neither changes nor erases
      the op, and creates nothing elsewhere.
    - The ops it creates carry no `layer` or `phase` tags: the caller tags
      them (bwd-input or bwd-weight), e.g. through an `OpBuilder::Listener`
      on the builder.
    - When the op cannot be differentiated as it stands (an attribute or
      operand the rule does not handle), the rule emits an error on the op,
      creates nothing and returns failure.
  }];
  let methods = [
    InterfaceMethod<[{
        Builds the cotangents of the operands from those of the results
        (see the interface description for the contract).
      }], "::llvm::LogicalResult", "buildVjp",
      (ins "::mlir::OpBuilder &":$builder,
           "::mlir::ValueRange":$resultCotangents,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandCotangents)>,
  ];
}

#endif // LOOM_DIALECT_LOOM_IR_LOOMINTERFACES_TD
