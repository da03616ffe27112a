//===- PlanLayoutTest.cpp - What a valid plan implies
//----------------------===//

#include "loom/Plan/PlanLayout.h"

#include "gtest/gtest.h"

#include <string>
#include <vector>

using namespace loom;

namespace {

ModelFacts tinyModel() {
  ModelFacts m;
  m.layers = 8;
  m.hidden = 64;
  m.heads = 8;
  m.kvHeads = 8;
  m.ffn = 256;
  m.vocab = 97;
  m.seq = 32;
  return m;
}

ModelFacts tinyMoE() {
  ModelFacts m = tinyModel();
  m.experts = 8;
  m.topK = 2;
  m.ffn = 64;
  return m;
}

PlanLayout derive(llvm::StringRef text, const ModelFacts &model,
                  int64_t world) {
  llvm::Expected<PlanSpec> spec = parsePlanSpec(text);
  if (!spec) {
    ADD_FAILURE() << llvm::toString(spec.takeError());
    return PlanLayout();
  }
  llvm::Expected<PlanLayout> layout = derivePlanLayout(*spec, model, world);
  if (!layout) {
    ADD_FAILURE() << text.str() << ": " << llvm::toString(layout.takeError());
    return PlanLayout();
  }
  return *layout;
}

using Axes = std::vector<MeshAxis>;

TEST(PlanLayout, DataAndTensorParallel) {
  PlanLayout layout = derive("tp=2,sp,dp=2,zero=1,mbs=1,gbs=8", tinyModel(), 4);
  EXPECT_EQ(layout.worldSize, 4);
  EXPECT_EQ(layout.tp, 2);
  EXPECT_TRUE(layout.sp);
  EXPECT_EQ(layout.dp, 2);
  EXPECT_EQ(layout.cp, 1);
  EXPECT_EQ(layout.pp, 1);
  EXPECT_EQ(layout.vpp, 1);
  EXPECT_EQ(layout.zero, 1);
  EXPECT_EQ(layout.mbs, 1);
  EXPECT_EQ(layout.gbs, 8);
  EXPECT_EQ(layout.microbatches, 4);
  EXPECT_EQ(layout.forwardBatch, 2);
  EXPECT_FALSE(layout.schedule);
  // 97 tokens pad to a multiple of 128 * 2.
  EXPECT_EQ(layout.paddedVocab, 256);
  EXPECT_EQ(layout.layersPerChunk, 8);
  EXPECT_FALSE(layout.isMoE);
  EXPECT_EQ(layout.denseMesh(),
            (Axes{{"pp", 1}, {"dp", 2}, {"cp", 1}, {"tp", 2}}));
  EXPECT_EQ(withoutUnitAxes(layout.denseMesh()), (Axes{{"dp", 2}, {"tp", 2}}));
  EXPECT_EQ(formatMeshAxes(withoutUnitAxes(layout.denseMesh())),
            "dp = 2, tp = 2");
  EXPECT_TRUE(layout.expertMesh().empty());
}

TEST(PlanLayout, DerivedDefaults) {
  // dp from the world size, gbs = mbs * dp, the vocabulary padded to 128.
  PlanLayout layout = derive("tp=2,mbs=2", tinyModel(), 8);
  EXPECT_EQ(layout.dp, 4);
  EXPECT_EQ(layout.gbs, 8);
  EXPECT_EQ(layout.microbatches, 1);
  EXPECT_EQ(layout.forwardBatch, 8);
  EXPECT_EQ(layout.etp, 2);
  EXPECT_EQ(derive("", tinyModel(), 1).paddedVocab, 128);
  EXPECT_EQ(derive("", ModelFacts(), 1).paddedVocab, 0);
  // A one-rank plan declares no mesh.
  EXPECT_TRUE(withoutUnitAxes(derive("", tinyModel(), 1).denseMesh()).empty());
}

TEST(PlanLayout, Schedules) {
  EXPECT_EQ(derive("pp=2,gbs=4", tinyModel(), 2).schedule,
            PipelineSchedule::OneFOneB);
  EXPECT_EQ(derive("pp=2,gbs=4,schedule=gpipe", tinyModel(), 2).schedule,
            PipelineSchedule::GPipe);
  PlanLayout interleaved = derive("pp=2,vpp_layers=2,gbs=4", tinyModel(), 2);
  EXPECT_EQ(interleaved.vpp, 2);
  EXPECT_EQ(interleaved.layersPerChunk, 2);
  EXPECT_EQ(interleaved.schedule, PipelineSchedule::Interleaved);
  EXPECT_EQ(derive("pp=2,vpp=4,gbs=4", tinyModel(), 2).layersPerChunk, 1);
}

TEST(PlanLayout, DesignExample) {
  // DESIGN.md's plan spec for Llama 3 70B on 64 ranks.
  ModelFacts llama;
  llama.layers = 80;
  llama.hidden = 8192;
  llama.heads = 64;
  llama.kvHeads = 8;
  llama.ffn = 28672;
  llama.vocab = 128256;
  llama.seq = 8192;
  llvm::StringRef text = "tp=4,sp,pp=4,vpp=2,cp=2,dp=2,zero=1,mbs=1,gbs=512,"
                         "schedule=1f1b,recompute=selective";
  PlanLayout layout = derive(text, llama, 64);
  EXPECT_EQ(layout.denseMesh(),
            (Axes{{"pp", 4}, {"dp", 2}, {"cp", 2}, {"tp", 4}}));
  EXPECT_EQ(layout.vpp, 2);
  EXPECT_EQ(layout.layersPerChunk, 10);
  EXPECT_EQ(layout.schedule, PipelineSchedule::Interleaved);
  EXPECT_EQ(layout.microbatches, 256);
  EXPECT_EQ(layout.forwardBatch, 2);
  EXPECT_EQ(layout.paddedVocab, 128512);
  EXPECT_EQ(layout.recompute, RecomputeGranularity::Selective);
  llvm::Expected<PlanSpec> spec = parsePlanSpec(text);
  ASSERT_TRUE(static_cast<bool>(spec));
  // Canonical text leaves out the defaults (mbs=1).
  EXPECT_EQ(toString(*spec), "tp=4,sp,pp=4,vpp=2,cp=2,dp=2,zero=1,gbs=512,"
                             "schedule=1f1b,recompute=selective");
  EXPECT_EQ(impliedWorldSize(*spec), 64);
  std::vector<std::string> unsupported;
  for (const PlanProblem &p : checkSupported(*spec, &llama))
    unsupported.push_back(p.rule);
  EXPECT_TRUE(unsupported.empty());
}

TEST(PlanLayout, InvalidPlansFail) {
  llvm::Expected<PlanSpec> spec = parsePlanSpec("sp,tp=3");
  ASSERT_TRUE(static_cast<bool>(spec));
  llvm::Expected<PlanLayout> layout = derivePlanLayout(*spec, tinyModel(), 4);
  ASSERT_FALSE(static_cast<bool>(layout));
  EXPECT_EQ(llvm::toString(layout.takeError()),
            "error: the world (4 ranks) is not divisible by tp * cp * pp = "
            "3, so dp = world / (tp * cp * pp) is not whole "
            "[world-divisible]\n"
            "error: attention heads (8) must be divisible by tp (3) "
            "[heads-tp]\n"
            "error: key/value heads (8) must be a multiple or a divisor of tp "
            "(3) [kv-heads-tp]\n"
            "error: the feed-forward size (256) must be divisible by tp (3) "
            "[ffn-tp]\n"
            "error: with sp, each rank's sequence (seq / cp = 32 / 1 = 32) "
            "must be divisible by tp (3) [seq-sp]");
  // Warnings and notes do not stop it.
  spec = parsePlanSpec("zero=1");
  ASSERT_TRUE(static_cast<bool>(spec));
  EXPECT_TRUE(static_cast<bool>(derivePlanLayout(*spec, tinyModel(), 1)));
}

TEST(PlanLayout, MegatronRankOrder) {
  // Megatron's example: 16 GPUs, tp = 2, pp = 4, dp = 2. Tensor groups
  // [0, 1], [2, 3]...; data groups [0, 2], [1, 3]...; pipeline groups
  // [0, 4, 8, 12]...
  PlanLayout layout = derive("tp=2,pp=4,gbs=8", tinyModel(), 16);
  EXPECT_EQ(layout.dp, 2);
  EXPECT_EQ(withoutUnitAxes(layout.denseMesh()),
            (Axes{{"pp", 4}, {"dp", 2}, {"tp", 2}}));
  for (int64_t rank = 0; rank < 16; ++rank) {
    std::optional<RankCoords> c = getRankCoords(layout, rank);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->tp, rank % 2) << rank;
    EXPECT_EQ(c->dp, rank / 2 % 2) << rank;
    EXPECT_EQ(c->pp, rank / 4) << rank;
    EXPECT_EQ(c->cp, 0);
    EXPECT_EQ(getDenseRank(layout, *c), rank);
  }
  EXPECT_FALSE(getRankCoords(layout, 16));
  EXPECT_FALSE(getRankCoords(layout, -1));
  RankCoords outside;
  outside.tp = 2;
  EXPECT_EQ(getDenseRank(layout, outside), -1);
}

TEST(PlanLayout, ContextParallelSitsBetweenTpAndDp) {
  PlanLayout layout = derive("tp=2,cp=2,pp=2,gbs=4", tinyModel(), 16);
  EXPECT_EQ(layout.dp, 2);
  EXPECT_EQ(layout.denseMesh(),
            (Axes{{"pp", 2}, {"dp", 2}, {"cp", 2}, {"tp", 2}}));
  std::optional<RankCoords> c = getRankCoords(layout, 13);
  ASSERT_TRUE(c);
  // 13 = ((1 * 2 + 1) * 2 + 0) * 2 + 1.
  EXPECT_EQ(c->pp, 1);
  EXPECT_EQ(c->dp, 1);
  EXPECT_EQ(c->cp, 0);
  EXPECT_EQ(c->tp, 1);
}

TEST(PlanLayout, ExpertMeshFoldsOverTheSameRanks) {
  // tp = 2 for attention, ep = 4 with etp = 1 for the experts, 8 ranks:
  // dense [dp = 4, tp = 2], experts [edp = 2, ep = 4].
  PlanLayout layout = derive("tp=2,sp,ep=4,etp=1", tinyMoE(), 8);
  EXPECT_TRUE(layout.isMoE);
  EXPECT_EQ(layout.dp, 4);
  EXPECT_EQ(layout.edp, 2);
  EXPECT_EQ(layout.expertMesh(),
            (Axes{{"pp", 1}, {"edp", 2}, {"ep", 4}, {"etp", 1}}));
  EXPECT_EQ(formatMeshAxes(withoutUnitAxes(layout.expertMesh())),
            "edp = 2, ep = 4");
  for (int64_t rank = 0; rank < 8; ++rank) {
    std::optional<RankCoords> c = getRankCoords(layout, rank);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->tp, rank % 2);
    EXPECT_EQ(c->dp, rank / 2);
    EXPECT_EQ(c->etp, 0);
    EXPECT_EQ(c->ep, rank % 4);
    EXPECT_EQ(c->edp, rank / 4);
  }
  // The minimum rank count: pp * max(tp * cp, ep * etp) = 8.
  PlanLayout minimal = derive("tp=2,sp,ep=8,etp=1", tinyMoE(), 8);
  EXPECT_EQ(minimal.dp, 4);
  EXPECT_EQ(minimal.edp, 1);
}

TEST(PlanLayout, ExpertMeshFoldsOntoWholeDenseAxes) {
  using Names = std::vector<std::string>;
  // etp = tp, ep = dp: the experts' ffn over tp, the experts over dp.
  std::optional<ExpertFolding> f =
      foldExpertMesh(derive("tp=2,sp,ep=2", tinyMoE(), 4));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->etp, Names{"tp"});
  EXPECT_EQ(f->ep, Names{"dp"});
  EXPECT_TRUE(f->edp.empty());
  // etp = 1: ep takes tp first, then dp (outermost first in the list).
  f = foldExpertMesh(derive("tp=2,sp,ep=4,etp=1", tinyMoE(), 4));
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->etp.empty());
  EXPECT_EQ(f->ep, (Names{"dp", "tp"}));
  EXPECT_TRUE(f->edp.empty());
  // ep = tp with dp = 2: dp is left to edp.
  f = foldExpertMesh(derive("tp=2,sp,ep=2,etp=1", tinyMoE(), 4));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ep, Names{"tp"});
  EXPECT_EQ(f->edp, Names{"dp"});
  // ep within dp: dp splits into an outer "dp" and an inner "ep".
  f = foldExpertMesh(derive("ep=2", tinyMoE(), 4));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ep, Names{"ep"});
  EXPECT_EQ(f->edp, Names{"dp"});
  EXPECT_EQ(f->data, (Names{"dp", "ep"}));
  EXPECT_EQ(f->mesh,
            (Axes{{"pp", 1}, {"dp", 2}, {"ep", 2}, {"cp", 1}, {"tp", 1}}));
  EXPECT_EQ(f->axisSize("ep"), 2);
  // etp = 1 with ep = tp and half of dp.
  f = foldExpertMesh(derive("tp=2,sp,ep=4,etp=1", tinyMoE(), 8));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ep, (Names{"ep", "tp"}));
  EXPECT_EQ(f->edp, Names{"dp"});
  // An expert axis covering part of tp does not fold.
  EXPECT_FALSE(foldExpertMesh(derive("tp=4,sp,ep=2,etp=1", tinyMoE(), 4)));
}

TEST(PlanLayout, LayerPlacement) {
  // 8 layers on 2 stages.
  PlanLayout layout = derive("pp=2,gbs=2", tinyModel(), 2);
  for (int64_t layer = 0; layer < 8; ++layer) {
    std::optional<LayerPlacement> place = placeLayer(layout, layer);
    ASSERT_TRUE(place);
    EXPECT_EQ(place->stage, layer / 4);
    EXPECT_EQ(place->chunk, 0);
  }
  EXPECT_FALSE(placeLayer(layout, 8));
  EXPECT_FALSE(placeLayer(layout, -1));

  // Interleaved, 2 chunks per stage: Megatron gives stage 0 layers 0-1 and
  // 4-5, stage 1 layers 2-3 and 6-7.
  layout = derive("pp=2,vpp=2,gbs=2", tinyModel(), 2);
  int64_t expected[8][2] = {{0, 0}, {0, 0}, {1, 0}, {1, 0},
                            {0, 1}, {0, 1}, {1, 1}, {1, 1}};
  for (int64_t layer = 0; layer < 8; ++layer) {
    std::optional<LayerPlacement> place = placeLayer(layout, layer);
    ASSERT_TRUE(place);
    EXPECT_EQ(place->stage, expected[layer][0]) << layer;
    EXPECT_EQ(place->chunk, expected[layer][1]) << layer;
  }

  // Unknown layer count: no placement.
  EXPECT_FALSE(placeLayer(derive("pp=2,gbs=2", ModelFacts(), 2), 0));
}

} // namespace

namespace {
using Layers = std::optional<std::vector<int64_t>>;

TEST(PlanLayout, UnevenStageLayers) {
  // The first stage's count given, the others share the rest.
  EXPECT_EQ(unevenStageLayers(3, 2, 1, std::nullopt),
            (Layers{std::vector<int64_t>{1, 2}}));
  EXPECT_EQ(unevenStageLayers(5, 3, 1, 1),
            (Layers{std::vector<int64_t>{1, 3, 1}}));
  // Llama 3 405B's 126 layers over pp = 16 with 6 on the last stage.
  std::vector<int64_t> llama(15, 8);
  llama.push_back(6);
  EXPECT_EQ(unevenStageLayers(126, 16, std::nullopt, 6), Layers{llama});
  // Not whole, nothing left for a middle stage, more than there is.
  EXPECT_EQ(unevenStageLayers(6, 3, 1, std::nullopt), std::nullopt);
  EXPECT_EQ(unevenStageLayers(2, 3, 1, 1), std::nullopt);
  EXPECT_EQ(unevenStageLayers(3, 2, 2, 2), std::nullopt);
  EXPECT_EQ(unevenStageLayers(4, 1, 2, std::nullopt), std::nullopt);
}
} // namespace
