//===- PlanValidation.cpp - The rules a plan follows
//-----------------------===//
//
// One check per rule, in the order docs/PlanSpec.md lists them. The checks
// resolve the plan's derived values as they go (dp, etp, edp, vpp, the
// microbatches, the padded vocabulary), so derivePlanLayout is the same walk
// keeping what it resolved.
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/PlanValidation.h"
#include "loom/Plan/PlanLayout.h"

#include "loom/runtime/CheckedMath.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <climits>

using namespace loom;
using llvm::StringRef;
using loom::runtime::checkedMul;
using loom::runtime::checkedProduct;

/// Largest degree, batch and world size: meshes hold at most 2^31 - 1 ranks.
static constexpr int64_t kMaxInt = INT32_MAX;

static std::string str(int64_t v) { return std::to_string(v); }

/// The product of `factors` (each at least 1), or -1 past INT64_MAX.
static int64_t product(std::initializer_list<int64_t> factors) {
  return checkedProduct(factors.begin(), factors.size(), 1, INT64_MAX,
                        INT64_MAX);
}

std::optional<int64_t> loom::padVocabulary(const PlanSpec &spec,
                                           int64_t vocab) {
  int64_t multiple = product({spec.vocabMultiple, spec.tp});
  if (multiple <= 0)
    return std::nullopt;
  int64_t chunks = vocab / multiple + (vocab % multiple != 0);
  int64_t padded;
  if (!checkedMul(chunks, multiple, padded))
    return std::nullopt;
  return padded;
}

namespace {
/// One walk over the rules, collecting problems and the resolved layout.
class PlanChecker {
public:
  PlanChecker(const PlanSpec &spec, const ModelFacts &model, int64_t world)
      : spec(spec), model(model), world(world) {}

  std::vector<PlanProblem> run(PlanLayout &layout);

private:
  void report(PlanSeverity severity, StringRef rule, std::string message) {
    problems.push_back({rule.str(), std::move(message), severity});
  }
  void error(StringRef rule, std::string message) {
    report(PlanSeverity::Error, rule, std::move(message));
  }

  bool checkRanges();
  void checkWorld(PlanLayout &layout);
  void checkTensorParallel(PlanLayout &layout);
  void checkContextParallel();
  void checkBatch(PlanLayout &layout);
  void checkPipeline(PlanLayout &layout);
  void checkExperts();
  void checkZero();

  const PlanSpec &spec;
  const ModelFacts &model;
  int64_t world;
  std::vector<PlanProblem> problems;
  /// 0 until resolved (an earlier rule failed, or a fact is unknown).
  int64_t dp = 0, edp = 0, microbatches = 0, vpp = 0;
};
} // namespace

bool PlanChecker::checkRanges() {
  llvm::SmallVector<std::string> bad;
  auto check = [&](StringRef name, std::optional<int64_t> value) {
    if (value && (*value < 1 || *value > kMaxInt))
      bad.push_back(name.str() + "=" + str(*value));
  };
  check("tp", spec.tp);
  check("pp", spec.pp);
  check("vpp", spec.vpp);
  check("vpp_layers", spec.vppLayers);
  check("first_layers", spec.firstLayers);
  check("last_layers", spec.lastLayers);
  check("cp", spec.cp);
  check("cp_a2a", spec.cpA2A);
  check("dp", spec.dp);
  check("ep", spec.ep);
  check("etp", spec.etp);
  check("mbs", spec.mbs);
  check("gbs", spec.gbs);
  check("vocab_multiple", spec.vocabMultiple);
  if (!bad.empty())
    error("degree-range", "degrees, batch sizes and vocab_multiple must be in "
                          "[1, 2^31 - 1], got " +
                              llvm::join(bad, ", "));
  if (spec.zero < 0 || spec.zero > 3)
    error("zero-range", "zero must be 0, 1, 2 or 3, got " + str(spec.zero));
  if (world < 1 || world > kMaxInt)
    error("world-size",
          "the world size must be in [1, 2^31 - 1], got " + str(world));
  return problems.empty();
}

void PlanChecker::checkWorld(PlanLayout &layout) {
  int64_t etp = spec.etp.value_or(spec.tp);
  int64_t denseRanks = product({spec.tp, spec.cp});
  int64_t expertRanks = product({spec.ep, etp});
  int64_t minRanks =
      denseRanks < 0 || expertRanks < 0
          ? -1
          : product({spec.pp, std::max(denseRanks, expertRanks)});
  if (minRanks < 0 || world < minRanks) {
    error("min-ranks",
          "the plan needs at least pp * max(tp * cp, ep * etp) = " +
              str(spec.pp) + " * max(" + str(spec.tp) + " * " + str(spec.cp) +
              ", " + str(spec.ep) + " * " + str(etp) + ") = " +
              (minRanks < 0 ? std::string("more than 2^63") : str(minRanks)) +
              " ranks, the world has " + str(world));
    return;
  }

  int64_t modelRanks = product({spec.tp, spec.cp, spec.pp});
  if (spec.dp) {
    int64_t ranks = product({modelRanks, *spec.dp});
    if (ranks != world)
      error("world-product",
            "tp * cp * pp * dp = " + str(spec.tp) + " * " + str(spec.cp) +
                " * " + str(spec.pp) + " * " + str(*spec.dp) + " = " +
                (ranks < 0 ? std::string("more than 2^63") : str(ranks)) +
                " ranks, but the world has " + str(world) +
                " (omit dp to derive it)");
    else
      dp = *spec.dp;
  } else if (world % modelRanks != 0) {
    error("world-divisible", "the world (" + str(world) +
                                 " ranks) is not divisible by tp * cp * "
                                 "pp = " +
                                 str(modelRanks) +
                                 ", so dp = world / (tp * cp * pp) is "
                                 "not whole");
  } else {
    dp = world / modelRanks;
  }

  if (model.isMoE()) {
    int64_t expertModelRanks = product({spec.pp, spec.ep, etp});
    if (world % expertModelRanks != 0)
      error(
          "expert-world-divisible",
          "the world (" + str(world) +
              " ranks) is not divisible by pp * "
              "ep * etp = " +
              str(expertModelRanks) +
              ", so the expert "
              "data-parallel size edp = world / (pp * ep * etp) is not whole");
    else
      edp = world / expertModelRanks;
  }
  layout.dp = dp;
  if (model.isMoE())
    layout.edp = edp;
}

void PlanChecker::checkTensorParallel(PlanLayout &layout) {
  int64_t tp = spec.tp;
  if (spec.sp && tp == 1)
    error("sp-needs-tp", "sp splits the sequence over the tensor-parallel "
                         "ranks and needs tp > 1, got tp=1");
  if (model.heads && model.heads % tp != 0)
    error("heads-tp", "attention heads (" + str(model.heads) +
                          ") must be divisible by tp (" + str(tp) + ")");
  if (model.kvHeads && model.kvHeads % tp != 0) {
    if (tp % model.kvHeads != 0)
      error("kv-heads-tp", "key/value heads (" + str(model.kvHeads) +
                               ") must be a multiple or a divisor of tp (" +
                               str(tp) + ")");
    else
      report(PlanSeverity::Note, "kv-heads-replicated",
             "key/value heads (" + str(model.kvHeads) + ") < tp (" + str(tp) +
                 "): each key/value head is computed on " +
                 str(tp / model.kvHeads) +
                 " tensor-parallel ranks, as Megatron-Core does");
  }
  if (!model.isMoE() && model.ffn && model.ffn % tp != 0)
    error("ffn-tp", "the feed-forward size (" + str(model.ffn) +
                        ") must be divisible by tp (" + str(tp) + ")");

  if (model.vocab > 0) {
    if (std::optional<int64_t> pad = padVocabulary(spec, model.vocab)) {
      int64_t padded = *pad;
      layout.paddedVocab = padded;
      if (padded != model.vocab)
        report(PlanSeverity::Note, "vocab-padding",
               "the vocabulary (" + str(model.vocab) +
                   ") is not a multiple of vocab_multiple * tp = " +
                   str(spec.vocabMultiple) + " * " + str(tp) +
                   "; Megatron pads it to " + str(padded) + " (+" +
                   str(padded - model.vocab) +
                   "), as `loom-models --plan` builds the model; this "
                   "graph keeps its own");
    }
  }

  if (spec.sp && tp > 1 && model.seq && model.seq % spec.cp == 0 &&
      (model.seq / spec.cp) % tp != 0)
    error("seq-sp",
          "with sp, each rank's sequence (seq / cp = " + str(model.seq) +
              " / " + str(spec.cp) + " = " + str(model.seq / spec.cp) +
              ") must be divisible by tp (" + str(tp) + ")");
}

void PlanChecker::checkContextParallel() {
  if (spec.cp > 1 && model.seq && model.seq % (2 * spec.cp) != 0)
    error("seq-cp", "with cp > 1 the sequence (" + str(model.seq) +
                        ") must be divisible by 2 * cp = " + str(2 * spec.cp) +
                        " (each rank takes two chunks for load balance)");
  if (spec.cpComm && spec.cp == 1)
    error("cp-comm-needs-cp",
          "cp_comm=" + stringifyCpComm(*spec.cpComm).str() +
              " sets how context parallelism communicates and needs cp > 1");
  // a2a+p2p: all-to-all within groups of cp_a2a consecutive cp ranks, a
  // ring over the groups (Megatron's hierarchical context parallelism).
  bool hierarchical = spec.cpComm == CpCommType::A2AP2P && spec.cp > 1;
  if (spec.cpA2A && !hierarchical)
    error("cp-a2a-needs-hierarchical",
          "cp_a2a sets the all-to-all groups of cp_comm=a2a+p2p (with cp > 1)");
  bool groupsDivide = hierarchical && spec.cpA2A && *spec.cpA2A >= 2 &&
                      *spec.cpA2A < spec.cp && spec.cp % *spec.cpA2A == 0;
  if (hierarchical && !spec.cpA2A)
    error("cp-a2a-size", "cp_comm=a2a+p2p needs cp_a2a, the ranks of each "
                         "all-to-all group (Megatron's first "
                         "--hierarchical-context-parallel-sizes)");
  else if (hierarchical && *spec.cpA2A > 0 && !groupsDivide)
    error("cp-a2a-size", "cp_a2a (" + str(*spec.cpA2A) +
                             ") must be a divisor of cp (" + str(spec.cp) +
                             ") strictly between 1 and cp: all-to-all groups "
                             "of cp_a2a ranks, a ring of cp / cp_a2a of them");
  // All-to-all (Ulysses) trades the sequence for heads: each rank of an
  // all-to-all group (all of cp for a2a) takes heads / (tp * group) of the
  // heads a tp rank has (Megatron's "num_heads % cp_size == 0" for a2a).
  int64_t a2aRanks = spec.cpComm == CpCommType::A2A && spec.cp > 1 ? spec.cp
                     : groupsDivide                                ? *spec.cpA2A
                                                                   : 0;
  std::string a2aName =
      spec.cpComm == CpCommType::A2A ? "cp_comm=a2a" : "cp_comm=a2a+p2p";
  std::string over = spec.cpComm == CpCommType::A2A ? "cp" : "cp_a2a";
  if (a2aRanks > 0 && model.heads && model.heads % (spec.tp * a2aRanks) != 0)
    error("heads-cp-a2a", a2aName + " splits the attention heads (" +
                              str(model.heads) + ") over tp * " + over + " = " +
                              str(spec.tp) + " * " + str(a2aRanks) +
                              "; they must be divisible by it");
  // The keys and values travel the same all-to-all, so their heads split
  // the same way (one error when both do not divide).
  else if (a2aRanks > 0 && model.kvHeads &&
           model.kvHeads % (spec.tp * a2aRanks) != 0)
    error("heads-cp-a2a", a2aName + " splits the key/value heads (" +
                              str(model.kvHeads) + ") over tp * " + over +
                              " = " + str(spec.tp) + " * " + str(a2aRanks) +
                              "; they must be divisible by it");
}

void PlanChecker::checkBatch(PlanLayout &layout) {
  if (!dp)
    return;
  int64_t rows = product({spec.mbs, dp});
  if (rows < 0)
    return;
  layout.forwardBatch = rows;
  int64_t gbs = spec.gbs.value_or(rows);
  if (gbs % rows != 0) {
    error("gbs-divisible", "gbs (" + str(gbs) +
                               ") must be divisible by mbs * "
                               "dp = " +
                               str(spec.mbs) + " * " + str(dp) + " = " +
                               str(rows));
  } else {
    microbatches = gbs / rows;
    layout.gbs = gbs;
    layout.microbatches = microbatches;
  }
  if (model.batch && model.batch != rows)
    error("model-batch", "the model's batch (" + str(model.batch) +
                             " rows per global "
                             "microbatch) must be mbs * dp = " +
                             str(spec.mbs) + " * " + str(dp) + " = " +
                             str(rows));
}

void PlanChecker::checkPipeline(PlanLayout &layout) {
  int64_t pp = spec.pp;
  if (spec.vpp > 1 && spec.vppLayers)
    error("vpp-exclusive",
          "give vpp (virtual stages per pipeline rank) or vpp_layers (layers "
          "per virtual stage), not both");
  bool layersDivide = true;
  bool uneven = spec.firstLayers || spec.lastLayers;
  if (uneven) {
    // Megatron's uneven layout: the first and/or last stage get their own
    // counts, the other stages share the rest evenly.
    layersDivide = false;
    if (pp == 1)
      error("uneven-needs-pp",
            "first_layers and last_layers set the layers of the first and "
            "last pipeline stages and need pp > 1");
    else if (spec.vppLayers)
      error("uneven-vpp-layers",
            "an uneven layout (first_layers, last_layers) takes vpp, not "
            "vpp_layers");
    else if (model.layers) {
      std::optional<std::vector<int64_t>> perRank = unevenStageLayers(
          model.layers, pp, spec.firstLayers, spec.lastLayers);
      int64_t rest = model.layers - spec.firstLayers.value_or(0) -
                     spec.lastLayers.value_or(0);
      int64_t others =
          pp - (spec.firstLayers ? 1 : 0) - (spec.lastLayers ? 1 : 0);
      if (!perRank)
        error("layers-uneven", "the layers (" + str(model.layers) +
                                   ") less first_layers and "
                                   "last_layers (" +
                                   str(rest) +
                                   ") must split evenly, at least "
                                   "one each, over the other " +
                                   str(others) + " stage(s)");
      else if (spec.vpp > 1) {
        int64_t middle = others ? rest / others : 0;
        for (int64_t n : {perRank->front(), perRank->back(), middle})
          if (n && n % spec.vpp != 0)
            error("layers-vpp", "each stage's layers (" + str(n) +
                                    ") must be divisible by vpp (" +
                                    str(spec.vpp) + ")");
      }
    }
  } else if (model.layers && model.layers % pp != 0) {
    layersDivide = false;
    error("layers-pp", "the layers (" + str(model.layers) +
                           ") must be divisible by pp (" + str(pp) + ")");
  }

  // The virtual stages per rank: given, or layers / (pp * vpp_layers).
  vpp = spec.vpp;
  if (spec.vppLayers && spec.vpp == 1) {
    vpp = 0;
    if (!model.layers) {
      error("layers-vpp", "vpp_layers needs the model's number of layers to "
                          "derive vpp");
    } else if (layersDivide) {
      int64_t perStage = model.layers / pp;
      if (perStage % *spec.vppLayers != 0)
        error("layers-vpp",
              "the layers per stage (layers / pp = " + str(perStage) +
                  ") must be divisible by vpp_layers (" + str(*spec.vppLayers) +
                  ")");
      else
        vpp = perStage / *spec.vppLayers;
    }
  } else if (spec.vpp > 1 && model.layers && layersDivide &&
             (model.layers / pp) % spec.vpp != 0) {
    error("layers-vpp",
          "the layers per stage (layers / pp = " + str(model.layers / pp) +
              ") must be divisible by vpp (" + str(spec.vpp) + ")");
  }
  layout.vpp = std::max<int64_t>(vpp, 1);
  if (model.layers && layersDivide && vpp > 0 && (model.layers / pp) % vpp == 0)
    layout.layersPerChunk = model.layers / pp / vpp;

  if (vpp > 1 && pp == 1)
    error("vpp-needs-pp", "virtual pipeline stages (vpp = " + str(vpp) +
                              ") need pipeline parallelism (pp > 1)");
  if (spec.schedule && pp == 1)
    error("schedule-needs-pp",
          "schedule=" + stringifySchedule(*spec.schedule).str() +
              " needs pipeline parallelism (pp > 1)");
  if (pp > 1 && vpp > 0) {
    // 1F1B over several model chunks per stage is Megatron's interleaved
    // 1F1B (DESIGN.md's tp=4,sp,pp=4,vpp=2,...,schedule=1f1b).
    bool interleaved = vpp > 1;
    PipelineSchedule schedule =
        spec.schedule.value_or(PipelineSchedule::OneFOneB);
    if (interleaved && schedule == PipelineSchedule::OneFOneB)
      schedule = PipelineSchedule::Interleaved;
    if ((schedule == PipelineSchedule::Interleaved) != interleaved)
      error("schedule-vpp",
            interleaved ? "virtual pipeline stages (vpp = " + str(vpp) +
                              ") need schedule=1f1b or interleaved, got " +
                              stringifySchedule(schedule).str()
                        : std::string("schedule=interleaved needs virtual "
                                      "pipeline stages (vpp > 1)"));
    else
      layout.schedule = schedule;
    if (interleaved && microbatches && microbatches % pp != 0)
      error("interleaved-microbatches",
            "the interleaved schedule needs the microbatches (gbs / (mbs * "
            "dp) = " +
                str(microbatches) + ") to be a multiple of pp (" + str(pp) +
                ")");
    if (!interleaved && microbatches && microbatches < pp)
      report(PlanSeverity::Warning, "pp-microbatches",
             "only " + str(microbatches) + " microbatches for " + str(pp) +
                 " pipeline stages: the pipeline never fills (raise gbs)");
  }
}

void PlanChecker::checkExperts() {
  int64_t etp = spec.etp.value_or(spec.tp);
  if (!model.isMoE()) {
    if (spec.dispatcher)
      error("dispatcher-needs-moe",
            "dispatcher=" + stringifyDispatcher(*spec.dispatcher).str() +
                " moves tokens to experts, but the model is dense (experts "
                "= 0)");
    if (spec.ep > 1 || etp != spec.tp)
      error(
          "ep-needs-moe",
          std::string(spec.ep > 1 ? "ep=" + str(spec.ep) : "etp=" + str(etp)) +
              " splits experts, but the model is dense (experts = 0)");
    return;
  }
  if (model.experts % spec.ep != 0)
    error("experts-ep", "the experts (" + str(model.experts) +
                            ") must be divisible by ep (" + str(spec.ep) + ")");
  if (spec.tp > 1 && !spec.sp)
    error("moe-tp-sp", "a MoE model with tp > 1 needs sp (Megatron-Core "
                       "refuses to train MoE layers with tensor parallelism "
                       "and without sequence parallelism)");
  if (model.ffn && model.ffn % etp != 0)
    error("expert-ffn-etp",
          "each expert's feed-forward size (" + str(model.ffn) +
              ") must be divisible by etp (" + str(etp) + ")");
}

void PlanChecker::checkZero() {
  if (spec.zero == 0 || !dp)
    return;
  bool denseShards = dp * spec.cp > 1;
  bool expertShards = model.isMoE() && edp > 1;
  if (!denseShards && !expertShards)
    report(PlanSeverity::Warning, "zero-needs-dp",
           "zero=" + str(spec.zero) +
               " shards over the data-parallel ranks (dp * cp), but there is "
               "one: nothing is sharded");
}

std::vector<PlanProblem> PlanChecker::run(PlanLayout &layout) {
  if (!checkRanges())
    return std::move(problems);
  layout.worldSize = world;
  layout.tp = spec.tp;
  layout.cp = spec.cp;
  layout.pp = spec.pp;
  layout.ep = spec.ep;
  layout.etp = spec.etp.value_or(spec.tp);
  layout.sp = spec.sp;
  layout.cpComm = spec.cpComm.value_or(CpCommType::P2P);
  layout.cpA2A = spec.cpA2A.value_or(1);
  layout.zero = spec.zero;
  layout.mbs = spec.mbs;
  layout.recompute = spec.recompute;
  layout.layers = model.layers;
  layout.isMoE = model.isMoE();

  checkWorld(layout);
  checkTensorParallel(layout);
  checkContextParallel();
  checkBatch(layout);
  checkPipeline(layout);
  checkExperts();
  checkZero();
  return std::move(problems);
}

std::vector<PlanProblem> loom::validatePlan(const PlanSpec &spec,
                                            const ModelFacts &model,
                                            int64_t worldSize) {
  PlanLayout layout;
  return PlanChecker(spec, model, worldSize).run(layout);
}

llvm::Expected<PlanLayout> loom::derivePlanLayout(const PlanSpec &spec,
                                                  const ModelFacts &model,
                                                  int64_t worldSize) {
  PlanLayout layout;
  std::vector<PlanProblem> problems =
      PlanChecker(spec, model, worldSize).run(layout);
  llvm::SmallVector<std::string> errors;
  for (const PlanProblem &problem : problems)
    if (problem.severity == PlanSeverity::Error)
      errors.push_back(formatPlanProblem(problem));
  if (!errors.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::join(errors, "\n"));
  return layout;
}

//===----------------------------------------------------------------------===//
// Support
//===----------------------------------------------------------------------===//

std::vector<PlanProblem> loom::checkSupported(const PlanSpec &spec,
                                              const ModelFacts *model) {
  std::vector<PlanProblem> problems;
  auto refuse = [&](StringRef rule, std::string message) {
    problems.push_back(
        {rule.str(), std::move(message), PlanSeverity::Unsupported});
  };
  // Expert parallelism: which foldings of the expert mesh are compiled is
  // checked with the layout (-loom-apply-plan).
  if (spec.etp && *spec.etp != spec.tp && *spec.etp != 1)
    refuse("unsupported-etp",
           "expert tensor parallelism other than tp or 1 (etp=" +
               str(*spec.etp) + ", tp=" + str(spec.tp) +
               "): experts split over part of the tensor-parallel ranks are "
               "not compiled yet");
  if (model && model->kvHeads > 0 && spec.tp > model->kvHeads)
    refuse("unsupported-kv-replication",
           "tp (" + str(spec.tp) + ") > key/value heads (" +
               str(model->kvHeads) +
               "): replicating key/value heads over tensor-parallel ranks is "
               "not compiled yet");
  return problems;
}

bool loom::hasErrors(llvm::ArrayRef<PlanProblem> problems) {
  return llvm::any_of(problems, [](const PlanProblem &problem) {
    return problem.severity == PlanSeverity::Error ||
           problem.severity == PlanSeverity::Unsupported;
  });
}

std::string loom::formatPlanProblem(const PlanProblem &problem) {
  StringRef severity;
  switch (problem.severity) {
  case PlanSeverity::Error:
    severity = "error";
    break;
  case PlanSeverity::Unsupported:
    severity = "not supported yet";
    break;
  case PlanSeverity::Warning:
    severity = "warning";
    break;
  case PlanSeverity::Note:
    severity = "note";
    break;
  }
  return severity.str() + ": " + problem.message + " [" + problem.rule + "]";
}

int64_t loom::impliedWorldSize(const PlanSpec &spec) {
  int64_t etp = spec.etp.value_or(spec.tp);
  for (int64_t degree :
       {spec.tp, spec.cp, spec.pp, spec.ep, etp, spec.dp.value_or(1)})
    if (degree < 1 || degree > kMaxInt)
      return -1;
  int64_t world;
  if (spec.dp) {
    world = product({spec.tp, spec.cp, spec.pp, *spec.dp});
  } else {
    int64_t dense = product({spec.tp, spec.cp});
    int64_t experts = product({spec.ep, etp});
    world = dense < 0 || experts < 0
                ? -1
                : product({spec.pp, std::max(dense, experts)});
  }
  return world < 0 || world > kMaxInt ? -1 : world;
}
