//===- PlanValidation.h - Checking a plan against a model -------*- C++ -*-===//
//
// Whether a plan spec can run a model on a number of ranks, by the rules of
// Megatron-Core and the NVIDIA guides (docs/PlanSpec.md lists each rule, its
// id and its source). Two separate questions:
//
//   validatePlan    is the plan valid at all? (errors, warnings, notes)
//   checkSupported  can Loom's passes compile it yet? A valid plan whose
//                   degrees have no pass yet (pp, vpp, cp, ep...) is refused
//                   with a distinct "not supported yet" problem, never
//                   ignored.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PLAN_PLANVALIDATION_H
#define LOOM_PLAN_PLANVALIDATION_H

#include "loom/Plan/PlanSpec.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom {

/// The facts of a model that plans depend on, as in ModelConfig
/// (loom/Models/ModelZoo.h) with the same names, so that this library stays
/// free of MLIR. A size of 0 is unknown: the rules that need it are skipped.
struct ModelFacts {
  int64_t layers = 0;
  int64_t hidden = 0;
  int64_t heads = 0;
  /// Key/value heads (Megatron's num_query_groups).
  int64_t kvHeads = 0;
  /// Feed-forward size (of each expert for a MoE model).
  int64_t ffn = 0;
  /// Vocabulary before padding.
  int64_t vocab = 0;
  int64_t seq = 0;
  /// Rows of one microbatch of the (global, unpartitioned) forward: mbs · dp.
  int64_t batch = 0;
  /// 0 for a dense model.
  int64_t experts = 0;
  int64_t topK = 0;

  bool isMoE() const { return experts > 0; }
};

enum class PlanSeverity {
  /// The plan is invalid.
  Error,
  /// Valid, but Loom cannot compile it yet (checkSupported).
  Unsupported,
  /// Valid but probably not meant (e.g. ZeRO with one data-parallel rank).
  Warning,
  /// A fact worth knowing (e.g. the padded vocabulary).
  Note,
};

/// One broken rule or one remark.
struct PlanProblem {
  /// Stable id of the rule, e.g. "sp-needs-tp" (docs/PlanSpec.md).
  std::string rule;
  /// What is wrong, with the numbers: "sp needs tp > 1, got tp=1".
  std::string message;
  PlanSeverity severity = PlanSeverity::Error;
};

/// Checks `spec` for `worldSize` ranks and `model`; one problem per broken
/// rule, in a fixed order (docs/PlanSpec.md). A spec built in code is checked
/// as fully as a parsed one (degrees >= 1, zero in 0..3...).
std::vector<PlanProblem>
validatePlan(const PlanSpec &spec, const ModelFacts &model, int64_t worldSize);

/// What Loom's passes cannot compile yet in a plan (severity Unsupported):
/// pipeline (pp > 1), interleaving (vpp), context (cp > 1) and expert (ep >
/// 1, etp != tp) parallelism, and, when `model` is given, key/value heads
/// replicated over tensor-parallel ranks (kv_heads < tp). Callers run it
/// after validatePlan.
std::vector<PlanProblem> checkSupported(const PlanSpec &spec,
                                        const ModelFacts *model = nullptr);

/// Whether any problem stops a compile (Error or Unsupported).
bool hasErrors(llvm::ArrayRef<PlanProblem> problems);

/// "error: sp needs tp > 1, got tp=1 [sp-needs-tp]"; the severities read
/// "error", "not supported yet", "warning" and "note".
std::string formatPlanProblem(const PlanProblem &problem);

/// The number of ranks a spec asks for when no world size is given: tp · cp
/// · pp · dp when dp is given, else the minimum pp · max(tp · cp, ep · etp);
/// -1 when a degree is below 1 or the product exceeds 2^31 - 1.
int64_t impliedWorldSize(const PlanSpec &spec);

/// Megatron's padded vocabulary (`vocab_size_with_padding`): `vocab` rounded
/// up to a multiple of vocab_multiple · tp; none when that overflows.
std::optional<int64_t> padVocabulary(const PlanSpec &spec, int64_t vocab);

} // namespace loom

#endif // LOOM_PLAN_PLANVALIDATION_H
