//===- CompileModule.h - A loom module to per-rank program ------*- C++ -*-===//

#ifndef LOOM_DRIVER_COMPILEMODULE_H
#define LOOM_DRIVER_COMPILEMODULE_H

#include "loom/Driver/CompileProgram.h"

#include "mlir/IR/BuiltinOps.h"

namespace loom {

/// Runs the options' pipeline on `module` (in place) and emits the program
/// of its function; failures are diagnostics on the module's context.
mlir::FailureOr<std::vector<uint8_t>>
compileModule(mlir::ModuleOp module, const CompileOptions &options);

} // namespace loom

#endif // LOOM_DRIVER_COMPILEMODULE_H
