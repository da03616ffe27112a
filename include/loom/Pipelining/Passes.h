//===- Passes.h - Loom's pipeline-parallel passes ---------------*- C++ -*-===//

#ifndef LOOM_PIPELINING_PASSES_H
#define LOOM_PIPELINING_PASSES_H

#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace loom {

#define GEN_PASS_DECL
#include "loom/Pipelining/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "loom/Pipelining/Passes.h.inc"

} // namespace loom

#endif // LOOM_PIPELINING_PASSES_H
