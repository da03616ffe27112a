//===- ExpertDispatch.h - Where MoE layers split their slots ----*- C++ -*-===//
//
// Part of -loom-apply-plan: the shardings of the MoE layers' slot buffers
// under a plan's expert mesh and token dispatcher.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_LIB_SHARDING_EXPERTDISPATCH_H
#define LOOM_LIB_SHARDING_EXPERTDISPATCH_H

#include "loom/Plan/PlanLayout.h"
#include "loom/Plan/PlanSpec.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"

namespace loom {

/// Whether the MoE layers need pinExpertDispatch: under expert
/// parallelism (their token groups would otherwise let propagation mix the
/// two dispatchers' forms).
bool needsExpertDispatchPins(const ExpertFolding &folding);

/// Pins every [experts, slots, hidden] buffer of dispatch, combine and
/// combine_grad, and what the grouped matmuls read of them:
///
///   alltoall   at the MoE ops, the slots split over the ranks that hold
///              tokens apart (edp, then ep: each rank dispatches its own
///              token groups); at the grouped matmuls, the experts split
///              over ep and the slots over edp: an all-to-all over ep
///              each way (Megatron-Core's all-to-all dispatcher).
///   allgather  everywhere the experts split over ep and the slots over
///              edp: the tokens are all-gathered over ep only.
///
/// Sets the token groups of dropless ops to the ranks holding tokens apart
/// (a dropless op is the same whatever its groups); an op that can drop
/// tokens must have been built with groups each of those ranks holds
/// whole ([ep-token-groups]).
mlir::LogicalResult pinExpertDispatch(mlir::func::FuncOp func,
                                      const ExpertFolding &folding,
                                      TokenDispatcher dispatcher,
                                      mlir::FlatSymbolRefAttr mesh,
                                      llvm::StringRef plan);

} // namespace loom

#endif // LOOM_LIB_SHARDING_EXPERTDISPATCH_H
