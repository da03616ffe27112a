//===- CompileProgram.h - Loom IR to per-rank program -----------*- C++ -*-===//
//
// The compiler as one call, for tools that run programs (loom-run, the
// Python API) and are built apart from MLIR's headers and flags: standard
// types only. CompileModule.h has the same for callers that hold a module.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DRIVER_COMPILEPROGRAM_H
#define LOOM_DRIVER_COMPILEPROGRAM_H

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

struct CompileOptions {
  /// A textual pass pipeline to run instead of loom-forward-to-program, e.g.
  /// "builtin.module(canonicalize, loom-lower-to-program{reuse=false})".
  std::string pipeline;
  /// loom-forward-to-program's options (when `pipeline` is empty).
  bool simplify = true;
  bool reuse = true;
  /// The function to emit; empty for the module's only function body.
  std::string function;
};

/// Parses and verifies loom MLIR `text` (called `bufferName` in
/// diagnostics), runs the pipeline and emits the program. On failure
/// returns false with the diagnostics, each with its location, in `error`.
bool compileMlirToProgram(const std::string &text,
                          const std::string &bufferName,
                          const CompileOptions &options,
                          std::vector<uint8_t> &program, std::string &error);

/// The same for the MLIR file at `path`.
bool compileMlirFileToProgram(const std::string &path,
                              const CompileOptions &options,
                              std::vector<uint8_t> &program,
                              std::string &error);

} // namespace loom

#endif // LOOM_DRIVER_COMPILEPROGRAM_H
