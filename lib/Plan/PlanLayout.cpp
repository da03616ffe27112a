//===- PlanLayout.cpp - Meshes, rank coordinates, layer placement ---------===//
//
// derivePlanLayout lives with the rules (PlanValidation.cpp), which resolve
// the derived values as they check them; this file reads a resolved layout.
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/PlanLayout.h"

#include "loom/runtime/Mesh.h"

#include "llvm/ADT/STLExtras.h"

#include <climits>

using namespace loom;

std::vector<MeshAxis> PlanLayout::denseMesh() const {
  return {{"pp", pp}, {"dp", dp}, {"cp", cp}, {"tp", tp}};
}

std::vector<MeshAxis> PlanLayout::expertMesh() const {
  if (!isMoE)
    return {};
  return {{"pp", pp}, {"edp", edp}, {"ep", ep}, {"etp", etp}};
}

int64_t ExpertFolding::axisSize(llvm::StringRef name) const {
  for (const MeshAxis &axis : mesh)
    if (axis.name == name)
      return axis.size;
  return 1;
}

/// A stage's dense axes, fastest first: tp, cp (under cp_comm=a2a+p2p its
/// groups' ranks "cpa", then their ring "cp"), dp.
static std::vector<MeshAxis> stageAxes(const PlanLayout &layout) {
  std::vector<MeshAxis> dense = {
      {"tp", layout.tp}, {"cp", layout.cp}, {"dp", layout.dp}};
  if (layout.cpComm == CpCommType::A2AP2P && layout.cpA2A > 1) {
    dense[1].size = layout.cp / layout.cpA2A;
    dense.insert(dense.begin() + 1, MeshAxis{"cpa", layout.cpA2A});
  }
  return dense;
}

/// `stage` (fastest first) under pp, outermost first.
static std::vector<MeshAxis> withPipeline(const PlanLayout &layout,
                                          const std::vector<MeshAxis> &stage) {
  std::vector<MeshAxis> mesh = {{"pp", layout.pp}};
  mesh.insert(mesh.end(), stage.rbegin(), stage.rend());
  return mesh;
}

std::vector<MeshAxis> loom::compiledMesh(const PlanLayout &layout) {
  if (layout.isMoE)
    if (std::optional<ExpertFolding> folding = foldExpertMesh(layout))
      return folding->mesh;
  return withPipeline(layout, stageAxes(layout));
}

std::optional<ExpertFolding> loom::foldExpertMesh(const PlanLayout &layout) {
  std::vector<MeshAxis> dense = stageAxes(layout);
  size_t next = 0;
  auto cover = [&](int64_t size, std::vector<std::string> &axes) -> bool {
    int64_t covered = 1;
    while (covered < size && next < dense.size()) {
      MeshAxis &axis = dense[next];
      int64_t rest = size / covered;
      if (axis.name == "dp" && axis.size > rest && size % covered == 0 &&
          axis.size % rest == 0) {
        // Part of dp: its inner ranks become "ep".
        int64_t outer = axis.size / rest;
        axis.size = outer;
        dense.insert(dense.begin() + next, MeshAxis{"ep", rest});
        continue;
      }
      if (axis.size > 1) {
        axes.insert(axes.begin(), axis.name);
        covered *= axis.size;
      }
      ++next;
    }
    return covered == size;
  };
  ExpertFolding folding;
  if (!cover(layout.etp, folding.etp) || !cover(layout.ep, folding.ep) ||
      !cover(layout.edp, folding.edp))
    return std::nullopt;
  folding.mesh = withPipeline(layout, dense);
  folding.data = {"dp"};
  if (llvm::any_of(dense, [](const MeshAxis &a) { return a.name == "ep"; }))
    folding.data.push_back("ep");
  return folding;
}

std::vector<MeshAxis> loom::withoutUnitAxes(llvm::ArrayRef<MeshAxis> axes) {
  std::vector<MeshAxis> kept;
  for (const MeshAxis &axis : axes)
    if (axis.size != 1)
      kept.push_back(axis);
  return kept;
}

std::string loom::formatMeshAxes(llvm::ArrayRef<MeshAxis> axes) {
  std::string text;
  for (const MeshAxis &axis : axes) {
    if (!text.empty())
      text += ", ";
    text += axis.name + " = " + std::to_string(axis.size);
  }
  return text;
}

/// The axis sizes of `axes` for runtime/Mesh.h, or none unless every size
/// is at least 1 and they multiply to `worldSize`.
static std::optional<std::vector<int>>
getMeshSizes(llvm::ArrayRef<MeshAxis> axes, int64_t worldSize) {
  std::vector<int64_t> sizes;
  for (const MeshAxis &axis : axes)
    sizes.push_back(axis.size);
  if (runtime::checkedMeshSize(sizes.data(), sizes.size()) != worldSize)
    return std::nullopt;
  return std::vector<int>(sizes.begin(), sizes.end());
}

std::optional<RankCoords> loom::getRankCoords(const PlanLayout &layout,
                                              int64_t rank) {
  std::optional<std::vector<int>> dense =
      getMeshSizes(layout.denseMesh(), layout.worldSize);
  if (!dense || rank < 0 || rank >= layout.worldSize)
    return std::nullopt;
  RankCoords coords;
  std::vector<int> c = runtime::meshCoords(*dense, static_cast<int>(rank));
  coords.pp = c[0];
  coords.dp = c[1];
  coords.cp = c[2];
  coords.tp = c[3];
  if (!layout.isMoE)
    return coords;
  std::optional<std::vector<int>> experts =
      getMeshSizes(layout.expertMesh(), layout.worldSize);
  if (!experts)
    return std::nullopt;
  c = runtime::meshCoords(*experts, static_cast<int>(rank));
  coords.edp = c[1];
  coords.ep = c[2];
  coords.etp = c[3];
  return coords;
}

int64_t loom::getDenseRank(const PlanLayout &layout, const RankCoords &coords) {
  std::optional<std::vector<int>> dense =
      getMeshSizes(layout.denseMesh(), layout.worldSize);
  if (!dense)
    return -1;
  int64_t c[] = {coords.pp, coords.dp, coords.cp, coords.tp};
  for (size_t i = 0; i < 4; ++i)
    if (c[i] < 0 || c[i] >= (*dense)[i])
      return -1;
  return runtime::meshRank(*dense,
                           {static_cast<int>(c[0]), static_cast<int>(c[1]),
                            static_cast<int>(c[2]), static_cast<int>(c[3])});
}

std::optional<LayerPlacement> loom::placeLayer(const PlanLayout &layout,
                                               int64_t layer) {
  if (layout.layersPerChunk < 1 || layer < 0 || layer >= layout.layers)
    return std::nullopt;
  int64_t chunk = layer / layout.layersPerChunk;
  return LayerPlacement{chunk % layout.pp, chunk / layout.pp};
}

std::optional<std::vector<int64_t>>
loom::unevenStageLayers(int64_t layers, int64_t pp,
                        std::optional<int64_t> first,
                        std::optional<int64_t> last) {
  if (pp < 2)
    return std::nullopt;
  int64_t given = (first ? 1 : 0) + (last ? 1 : 0);
  int64_t rest = layers - first.value_or(0) - last.value_or(0);
  int64_t others = pp - given;
  if (rest < 0 || (others == 0 && rest != 0) ||
      (others > 0 && (rest < others || rest % others != 0)))
    return std::nullopt;
  std::vector<int64_t> perRank(pp, others ? rest / others : 0);
  if (first)
    perRank.front() = *first;
  if (last)
    perRank.back() = *last;
  return perRank;
}
