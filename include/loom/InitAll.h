//===- InitAll.h - Register Loom's dialects and passes ----------*- C++ -*-===//

#ifndef LOOM_INITALL_H
#define LOOM_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace loom {
/// The loom dialect and the upstream dialects Loom's graphs use (func,
/// arith, tensor).
void registerAllDialects(mlir::DialectRegistry &registry);
/// Loom's passes and the upstream ones useful on its graphs.
void registerAllPasses();
} // namespace loom

#endif // LOOM_INITALL_H
