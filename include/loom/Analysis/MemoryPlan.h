//===- MemoryPlan.h - Static arena plan of a loom function ------*- C++ -*-===//
//
// Every tensor of a loom function gets a byte range in one arena per rank.
// Values whose lifetimes do not overlap share bytes; an element-wise result
// reuses the bytes of an operand that dies at that op (in place), and a
// reshape is a view of its operand. Arguments (parameters and inputs) are
// persistent and never share bytes with anything else.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_ANALYSIS_MEMORYPLAN_H
#define LOOM_ANALYSIS_MEMORYPLAN_H

#include "loom/Dialect/Loom/IR/OpCost.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"

namespace loom {

/// Offsets are multiples of this many bytes.
constexpr int64_t kArenaAlignment = 64;

struct MemoryPlan {
  /// Arena offset of every block argument and op result.
  llvm::DenseMap<mlir::Value, int64_t> offsets;
  /// Bytes the arena needs: the end of the highest placed range (the
  /// planned peak; the runtime may round its allocation up).
  int64_t arenaSize = 0;
  /// The most bytes live at one instruction: no plan can use fewer.
  int64_t liveLowerBound = 0;
  /// Storage ranges after aliasing (in-place and views).
  int64_t numStorages = 0;
  int64_t numValues = 0;
};

/// Plans `func`'s single block; fails with a diagnostic on values that are
/// not statically shaped tensors or on control flow. With `reuse` false,
/// every storage gets bytes of its own (a reference plan for testing).
mlir::FailureOr<MemoryPlan> planMemory(mlir::func::FuncOp func,
                                       bool reuse = true);

/// Replays `func` against `plan` and checks that every value an op reads
/// (and every returned value) still holds its bytes: no op in between wrote
/// over them, reshapes being views of their operand. Fails with a
/// diagnostic on the first clobbered read.
mlir::LogicalResult checkMemoryPlan(mlir::func::FuncOp func,
                                    const MemoryPlan &plan);

} // namespace loom

#endif // LOOM_ANALYSIS_MEMORYPLAN_H
