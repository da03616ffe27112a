//===- ProgramEmitter.h - Write a planned loom function as a program -*- C++
//-*-===//
//
// Serializes a function that `loom-lower-to-program` has planned into the
// versioned binary program the runtime executes (runtime/schema/program.fbs),
// or into that program's stable text dump.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TARGET_PROGRAMEMITTER_H
#define LOOM_TARGET_PROGRAMEMITTER_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <vector>

namespace loom {

/// Emits a function planned by loom-lower-to-program as program bytes; the
/// program is checked with the runtime's verifier before it is returned.
/// Fails with a diagnostic naming the op that cannot be emitted.
mlir::FailureOr<std::vector<uint8_t>> emitProgram(mlir::func::FuncOp func);

/// Emits the module's function `function`, or its only function body when
/// `function` is empty.
mlir::FailureOr<std::vector<uint8_t>>
emitProgram(mlir::ModuleOp module, llvm::StringRef function = "");

/// One program per function body of the module (one per pipeline stage),
/// in module order, with the function's name.
mlir::FailureOr<llvm::SmallVector<std::pair<std::string, std::vector<uint8_t>>>>
emitPrograms(mlir::ModuleOp module);

/// The runtime's text dump of a program (as `loom-dump` prints it).
std::string dumpProgramText(const std::vector<uint8_t> &bytes);

/// Registers `--loom-to-program` and `--loom-to-program-text` with
/// mlir-translate-style drivers.
void registerToProgramTranslations();

} // namespace loom

#endif // LOOM_TARGET_PROGRAMEMITTER_H
