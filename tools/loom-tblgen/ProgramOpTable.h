//===- ProgramOpTable.h - The op table read from TableGen -------*- C++ -*-===//
//
// What loom-tblgen's generators know of each program opcode, collected once
// from the records: the ops carrying a Loom_Lowers trait and the
// runtime-only Loom_RuntimeOpcode records (LoomProgram.td).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TOOLS_LOOM_TBLGEN_PROGRAMOPTABLE_H
#define LOOM_TOOLS_LOOM_TBLGEN_PROGRAMOPTABLE_H

#include "llvm/ADT/StringRef.h"
#include "llvm/TableGen/Record.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom::tblgen {

/// One attribute of an instruction.
struct ProgramAttr {
  std::string name;
  /// Int, Float, Bool, Ints or String.
  std::string kind;
  bool required = false;
  bool rankDependent = false;
  bool isDim = false;
  /// A C++ literal (Int, Float, Bool: 0/1; String: the value's index).
  std::optional<std::string> defaultValue;
  /// String attributes: the allowed values, in index order.
  std::vector<std::string> values;
  /// The C++ name of the values' enum (String attributes), e.g.
  /// "GeluApproximation".
  std::string enumName;
};

/// One opcode of the program format.
struct ProgramOp {
  /// C++ enumerator ("RmsNorm") and snake-case name ("rmsnorm").
  std::string cppName, name;
  int64_t opcode = 0;
  int minOperands = 0;
  /// -1: any number.
  int maxOperands = 0;
  int numResults = 0;
  bool inPlace = false;
  /// Runs over a communicator (the op is a collective).
  bool collective = false;
  /// "Elementwise" or "Custom".
  std::string shapeRule = "Custom";
  /// Element-wise ops: the KernelMath.h function.
  std::string math;
  std::vector<ProgramAttr> attrs;
  std::string summary;
  /// The loom op ("loom.rmsnorm") and its C++ class ("::loom::RmsNormOp"),
  /// or empty for a runtime-only opcode.
  std::string irOpName, irCppClass;
};

/// All opcodes, in opcode order. Fails (PrintFatalError) on a trait or
/// attribute it cannot describe, naming the op.
std::vector<ProgramOp> collectProgramOps(const llvm::RecordKeeper &records);

} // namespace loom::tblgen

#endif // LOOM_TOOLS_LOOM_TBLGEN_PROGRAMOPTABLE_H
