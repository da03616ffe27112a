//===- PlanLayout.h - What a valid plan implies -----------------*- C++ -*-===//
//
// The facts the parallelization passes and the runtime take from a plan:
// every degree resolved (dp, etp, edp, vpp), the number of microbatches, the
// padded vocabulary, the meshes in Megatron's rank order, each rank's
// coordinates and each layer's pipeline stage.
//
// Rank order is Megatron-Core's default (initialize_model_parallel's
// order "tp-cp-ep-dp-pp"): tp varies fastest, then cp, dp, pp. As meshes
// list their axes outermost first (loom.mesh, runtime/Mesh.h), the dense
// mesh is [pp, dp, cp, tp]. MoE layers fold their expert mesh [pp, edp, ep,
// etp] over the same ranks: the same pp stages, each stage's ranks split
// etp fastest, then ep, then edp.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PLAN_PLANLAYOUT_H
#define LOOM_PLAN_PLANLAYOUT_H

#include "loom/Plan/PlanSpec.h"
#include "loom/Plan/PlanValidation.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom {

/// One mesh axis: "tp", "cp", "dp", "pp" (dense) or "etp", "ep", "edp", "pp"
/// (experts).
struct MeshAxis {
  std::string name;
  int64_t size = 1;

  bool operator==(const MeshAxis &other) const {
    return name == other.name && size == other.size;
  }
};

/// A rank's coordinate on every axis of both meshes.
struct RankCoords {
  int64_t pp = 0, dp = 0, cp = 0, tp = 0;
  int64_t edp = 0, ep = 0, etp = 0;
};

/// Where a transformer layer runs: its pipeline stage and, with vpp > 1, its
/// model chunk on that stage (0 .. vpp-1).
struct LayerPlacement {
  int64_t stage = 0;
  int64_t chunk = 0;
};

/// A valid plan with every derived value resolved.
struct PlanLayout {
  int64_t worldSize = 1;
  int64_t tp = 1, cp = 1, pp = 1, dp = 1;
  int64_t ep = 1, etp = 1, edp = 1;
  bool sp = false;
  /// How attention communicates over cp (Megatron's default, p2p, when the
  /// plan does not say).
  CpCommType cpComm = CpCommType::P2P;
  /// cp_comm=a2a+p2p: the ranks of each all-to-all group (1 otherwise).
  int64_t cpA2A = 1;
  /// Model chunks per stage (1: not interleaved).
  int64_t vpp = 1;
  int64_t zero = 0;
  int64_t mbs = 1, gbs = 1;
  /// gbs / (mbs · dp): the microbatches of one step on each rank.
  int64_t microbatches = 1;
  /// Rows of one microbatch of the global forward: mbs · dp.
  int64_t forwardBatch = 1;
  /// The schedule in effect; none without pipeline parallelism.
  std::optional<PipelineSchedule> schedule;
  RecomputeGranularity recompute = RecomputeGranularity::None;
  /// The vocabulary padded to a multiple of vocab_multiple · tp; 0 when the
  /// model's vocabulary is unknown.
  int64_t paddedVocab = 0;
  /// The model's layers (0: unknown) and layers per model chunk.
  int64_t layers = 0;
  int64_t layersPerChunk = 0;
  bool isMoE = false;

  /// The dense mesh, outermost first: [pp, dp, cp, tp], every axis kept
  /// (size 1 included) so that coordinates and group arithmetic never
  /// depend on which degrees are 1. withoutUnitAxes() gives what
  /// `loom.mesh` declares.
  std::vector<MeshAxis> denseMesh() const;
  /// The expert mesh of a MoE model, outermost first: [pp, edp, ep, etp];
  /// empty for a dense model.
  std::vector<MeshAxis> expertMesh() const;
};

/// The expert mesh of a stage laid over axes of the dense one: the dense
/// axes (of size > 1) that each of etp, ep and edp covers, each list
/// outermost first. The stage's ranks in Megatron's order (tp fastest, then
/// cp, then dp) split etp fastest, then ep, then edp, so each expert axis
/// takes the next dense axes, fastest first. An expert axis that ends
/// inside dp splits it in two: its inner ranks become an axis "ep" (the
/// data ranks holding different experts), the outer ones stay "dp" (those
/// holding the same experts); data parallelism is then over both.
struct ExpertFolding {
  std::vector<std::string> etp, ep, edp;
  /// The data-parallel axes, outermost first: {"dp"}, or {"dp", "ep"} with
  /// dp split.
  std::vector<std::string> data;
  /// The dense mesh with dp split so, outermost first, every axis kept.
  std::vector<MeshAxis> mesh;

  /// The size of one of `mesh`'s axes (1 for a name it lacks).
  int64_t axisSize(llvm::StringRef name) const;
};

/// The mesh a compiled plan declares, outermost first, every axis kept:
/// the dense one, with cp split into a ring ("cp") of all-to-all groups
/// ("cpa") under cp_comm=a2a+p2p, and for a MoE model dp split as its
/// expert mesh needs (foldExpertMesh's `mesh`, when it folds).
std::vector<MeshAxis> compiledMesh(const PlanLayout &layout);

/// How `layout`'s expert mesh folds onto its dense axes; none when an expert
/// axis would cover part of tp or cp (ep = 2 with tp = 4, say) or a part of
/// dp that does not divide it.
std::optional<ExpertFolding> foldExpertMesh(const PlanLayout &layout);

/// Resolves a plan that validatePlan accepts (no Error problems; others
/// are allowed), or fails with the errors' formatted text, one per line.
/// `worldSize` as for validatePlan (impliedWorldSize() when unknown).
llvm::Expected<PlanLayout> derivePlanLayout(const PlanSpec &spec,
                                            const ModelFacts &model,
                                            int64_t worldSize);

/// The axes of size > 1, in order: `loom.mesh @world <pp = 2, tp = 2>` for
/// [pp=2, dp=1, cp=1, tp=2]. Empty for a one-rank plan (which declares no
/// mesh: loom.mesh needs at least one axis).
std::vector<MeshAxis> withoutUnitAxes(llvm::ArrayRef<MeshAxis> axes);

/// "pp = 2, dp = 2, tp = 2": the axes as `loom.mesh` prints them.
std::string formatMeshAxes(llvm::ArrayRef<MeshAxis> axes);

/// Coordinates of `rank` on both meshes (runtime/Mesh.h's arithmetic); none
/// when the rank lies outside [0, worldSize).
std::optional<RankCoords> getRankCoords(const PlanLayout &layout, int64_t rank);

/// The rank at the given dense coordinates; -1 when one is out of range.
int64_t getDenseRank(const PlanLayout &layout, const RankCoords &coords);

/// Megatron's placement of layer `layer` (0-based): the layers split into
/// pp · vpp chunks of consecutive layers, chunk c on stage c % pp as its
/// chunk c / pp. None when the layer count is unknown or `layer` is out of
/// range.
std::optional<LayerPlacement> placeLayer(const PlanLayout &layout,
                                         int64_t layer);

/// Megatron's uneven pipeline layout (--decoder-first/last-pipeline-num-
/// layers): the layers of each of the pp pipeline ranks when the first
/// and/or the last have their own counts and the others share the rest
/// evenly, at least one each. None when the layers do not split so.
std::optional<std::vector<int64_t>>
unevenStageLayers(int64_t layers, int64_t pp, std::optional<int64_t> first,
                  std::optional<int64_t> last);

} // namespace loom

#endif // LOOM_PLAN_PLANLAYOUT_H
