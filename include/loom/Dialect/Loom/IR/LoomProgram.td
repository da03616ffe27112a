//===- LoomProgram.td - How ops lower to program instructions -*- tablegen -*-===//
//
// The one source of the program format's op table. An op that can reach a
// program carries `Loom_Lowers<opcode>` (or one of its subclasses);
// loom-tblgen reads these traits, with the op's operands, results and
// attributes, and writes:
//
//   runtime/include/loom/runtime/OpTable.inc   the op table of the runtime:
//       opcodes, names, operand/result counts, in-place capability,
//       attributes (kind, required, default, rank-dependent, dimension),
//       element-wise kernel math (checked in: the runtime builds without
//       MLIR; the build rewrites it when this file changes)
//   runtime/schema/opcodes.fbs                  the schema's Opcode enum
//   docs/ProgramOps.md                          the reference of every opcode
//   LoomProgramOps.cpp.inc                      each op's getProgramOpcode()
//
// Opcode values are fixed forever: a new op takes a new value.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECT_LOOM_IR_LOOMPROGRAM_TD
#define LOOM_DIALECT_LOOM_IR_LOOMPROGRAM_TD

include "loom/Dialect/Loom/IR/LoomInterfaces.td"

/// The op lowers to the program instruction `opcodeValue`.
class Loom_Lowers<int opcodeValue>
    : DeclareOpInterfaceMethods<Loom_ProgramOpInterface> {
  int programOpcode = opcodeValue;
  /// Int or Ints attributes that may carry rank-dependent terms (resolved
  /// from the rank's mesh coordinates at run time).
  list<string> programRankDependent = [];
  /// Int attributes holding a dimension index of operand 0 (negative counts
  /// from the end); the runtime checks and normalizes them.
  list<string> programDims = [];
  /// The runtime verifier's shape rule: "elementwise" (operands and result
  /// share shape and float element type) or "" (the opcode's own rule in
  /// runtime/src/program/Verifier.cpp).
  string programShapeRule = "";
  /// Element-wise ops: the function of loom/runtime/KernelMath.h computing
  /// one element, `float f(float x, const OpAttrs &)` (unary) or
  /// `float f(float x, float y, const OpAttrs &)` (binary). The CPU and
  /// CUDA backends instantiate their kernels from it.
  string programMath = "";
  /// Attributes that do not become instruction attributes (a collective's
  /// mesh and axes become its communicator).
  list<string> programOmit = [];
}

/// An element-wise op whose kernels come from one KernelMath.h function.
class Loom_LowersElementwise<int opcodeValue, string math>
    : Loom_Lowers<opcodeValue> {
  let programShapeRule = "elementwise";
  let programMath = math;
}

/// A result may be written over an operand of the same size (its kernel
/// reads each element before writing the element at the same place). The
/// memory plan asks this trait; the runtime verifier allows exact aliases.
def Loom_InPlace : NativeOpTrait<"InPlace"> {
  let cppNamespace = "::loom::OpTrait";
}

//===----------------------------------------------------------------------===//
// Runtime-only opcodes: instructions no loom op lowers to.
//===----------------------------------------------------------------------===//

/// An attribute of a runtime-only opcode.
class Loom_ProgramAttr<string attrName, string attrKind, bit isRequired = 1> {
  string name = attrName;
  /// Int, Float, Bool or Ints.
  string kind = attrKind;
  bit required = isRequired;
}

class Loom_RuntimeOpcode<string opName, int opcodeValue, int operands,
                         int results> {
  string programName = opName;
  int programOpcode = opcodeValue;
  int numOperands = operands;
  int numResults = results;
  bit inPlace = 0;
  list<Loom_ProgramAttr> attrs = [];
  string summary = "";
}

def Loom_CopyOpcode : Loom_RuntimeOpcode<"copy", 2, 1, 1> {
  let inPlace = 1;
  let summary = "copy, converting the element type if it differs";
}
def Loom_GroupStartOpcode : Loom_RuntimeOpcode<"group_start", 107, 0, 0> {
  let summary = "opens a group of send/recv issued together";
}
def Loom_GroupEndOpcode : Loom_RuntimeOpcode<"group_end", 108, 0, 0> {
  let summary = "closes the group: its transfers run together";
}
def Loom_EventRecordOpcode : Loom_RuntimeOpcode<"event_record", 120, 0, 0> {
  let attrs = [Loom_ProgramAttr<"event", "Int">];
  let summary = "records event `event` on the instruction's stream";
}
def Loom_EventWaitOpcode : Loom_RuntimeOpcode<"event_wait", 121, 0, 0> {
  let attrs = [Loom_ProgramAttr<"event", "Int">];
  let summary = "makes the instruction's stream wait for event `event`";
}

#endif // LOOM_DIALECT_LOOM_IR_LOOMPROGRAM_TD
