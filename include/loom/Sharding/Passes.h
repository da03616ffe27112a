//===- Passes.h - Loom's sharding passes ------------------------*- C++ -*-===//

#ifndef LOOM_SHARDING_PASSES_H
#define LOOM_SHARDING_PASSES_H

#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace loom {

#define GEN_PASS_DECL
#include "loom/Sharding/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "loom/Sharding/Passes.h.inc"

} // namespace loom

#endif // LOOM_SHARDING_PASSES_H
