//===- CompileProgram.h - MLIR file to per-rank program ---------*- C++ -*-===//
//
// The compiler as one call, for tools that run programs (loom-run) and are
// built apart from MLIR's headers and flags: standard types only.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DRIVER_COMPILEPROGRAM_H
#define LOOM_DRIVER_COMPILEPROGRAM_H

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

/// Parses and verifies the loom MLIR file at `path`, plans its memory
/// (loom-lower-to-program) and emits the program. On failure returns false
/// with the diagnostics, each with its location, in `error`.
bool compileMlirFileToProgram(const std::string &path,
                              std::vector<uint8_t> &program,
                              std::string &error);

} // namespace loom

#endif // LOOM_DRIVER_COMPILEPROGRAM_H
