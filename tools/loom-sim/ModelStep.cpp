//===- ModelStep.cpp - loom-sim's --model mode ----------------------------===//
//
// Model (loom::lookupModel) + plan (loom::parsePlanSpec, checked by
// validatePlan against the cluster's GPU count) + cluster (a preset or a
// file) -> loom::cost::estimateTrainingStep -> the printed figures, and
// optionally the simulated timeline as SVG or a Chrome trace.
//
//===----------------------------------------------------------------------===//

#include "ModelStep.h"
#include "Text.h"
#include "Timeline.h"

#include "loom/CostModel/Cluster.h"
#include "loom/CostModel/TrainingStep.h"
#include "loom/Models/ModelZoo.h"
#include "loom/Plan/PlanLayout.h"
#include "loom/Plan/PlanSpec.h"
#include "loom/Plan/PlanValidation.h"

#include "llvm/ADT/StringExtras.h"

#include <cstdio>

using namespace loom;
using namespace loom::cost;
using namespace loom::sim;

/// "12.345 ms" below a second, "1.234 s" above.
static std::string duration(double seconds) {
  if (seconds < 1)
    return fixed(seconds * 1e3, 3) + " ms";
  return fixed(seconds, 3) + " s";
}

static std::string gigabytes(double bytes) { return fixed(bytes / 1e9, 2); }

/// The value of a cluster constant: integers without decimals.
static std::string constantValue(double v) {
  if (v == double(int64_t(v)))
    return std::to_string(int64_t(v));
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%g", v);
  return buffer;
}

/// The plan spec's cp_comm as the cost model's.
static CpComm costCpComm(CpCommType type) {
  switch (type) {
  case CpCommType::P2P:
    return CpComm::P2P;
  case CpCommType::AllGather:
    return CpComm::AllGather;
  case CpCommType::A2A:
    return CpComm::A2A;
  case CpCommType::A2AP2P:
    return CpComm::A2AP2P;
  }
  return CpComm::P2P;
}

static std::string linkName(bool intraNode) {
  return intraNode ? "within a node (intra-node link)"
                   : "across nodes (inter-node link)";
}

/// The timeline in milliseconds (the SVG's labels keep two decimals).
static schedule::SimulationResult inMilliseconds(schedule::SimulationResult r) {
  for (schedule::RankTimeline &rank : r.ranks) {
    for (schedule::TimedAction &t : rank.actions) {
      t.start *= 1e3;
      t.end *= 1e3;
    }
    rank.busy *= 1e3;
    rank.idle *= 1e3;
  }
  r.makespan *= 1e3;
  return r;
}

/// Chrome's trace event format: one thread per pipeline rank, a complete
/// event per compute action and for the gradient reduction and optimizer.
static std::string renderChromeTrace(const StepEstimate &est) {
  std::string out = "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
  bool first = true;
  auto event = [&](const std::string &text) {
    out += (first ? "  " : ",\n  ") + text;
    first = false;
  };
  auto us = [](double seconds) { return fixed(seconds * 1e6, 3); };
  for (size_t r = 0; r < est.ranks.size(); ++r) {
    std::string tid = std::to_string(r);
    event("{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": " +
          tid + ", \"args\": {\"name\": \"pipeline rank " + tid + "\"}}");
    for (const schedule::TimedAction &t : est.simulation.ranks[r].actions) {
      if (!schedule::isCompute(t.action.kind) || t.end <= t.start)
        continue;
      event("{\"name\": \"" + t.action.str() + "\", \"cat\": \"" +
            schedule::kindName(t.action.kind) +
            "\", \"ph\": \"X\", \"pid\": 0, \"tid\": " + tid + ", \"ts\": " +
            us(t.start) + ", \"dur\": " + us(t.end - t.start) + "}");
    }
    const PipelineRankEstimate &rank = est.ranks[r];
    double at = rank.pipelineEnd;
    for (auto [name, time] : {std::pair{"gradient reduction", rank.gradReduce},
                              {"optimizer", rank.optimizer}}) {
      if (time <= 0)
        continue;
      event(std::string("{\"name\": \"") + name +
            "\", \"cat\": \"step\", \"ph\": \"X\", \"pid\": 0, \"tid\": " +
            tid + ", \"ts\": " + us(at) + ", \"dur\": " + us(time) + "}");
      at += time;
    }
  }
  out += "\n]}\n";
  return out;
}

/// Whether the plan's experts are whole and split over the tp ranks (etp
/// = 1 with ep = tp or tp times a divisor of dp), and then the ep axes'
/// names.
static bool expertsOverTp(const TrainingPlan &plan) {
  return plan.ep > 1 && plan.tp > 1 && plan.etp == 1;
}
static std::string expertAxes(const TrainingPlan &plan) {
  if (plan.ep == plan.tp)
    return "ep = tp";
  if (plan.ep == plan.tp * plan.dp)
    return "ep = tp*dp";
  return "ep = tp*" + std::to_string(plan.ep / plan.tp) + " (of dp " +
         std::to_string(plan.dp) + ")";
}

/// A MoE layer's parts of the layer line: who runs which expert rows, and
/// the forward times of the router, the experts, dispatch and combine and
/// the dispatcher's collectives.
static void printMoeLayer(const StepEstimate &est, const TrainingPlan &plan) {
  const LayerCost &l = est.layer;
  bool allToAll = plan.ep > 1 && plan.dispatcher == Dispatcher::AllToAll;
  bool whole = expertsOverTp(plan);
  // The alltoall dispatcher's tp all-gathers are tp collectives: named
  // apart, within tp.
  std::string dispatcher = duration(l.dispatcherComm);
  if (allToAll)
    dispatcher += plan.tp > 1 && !whole
                      ? " (all-to-alls; its tp all-gathers " +
                            duration(l.dispatcherTpComm) + " in tp)"
                      : " (all-to-alls)";
  std::printf(
      "moe layer (one microbatch, one GPU): %s: %s expert rows (capacity "
      "slots); router %s, experts %s (in matmul), dispatch+combine %s (in "
      "element-wise), experts' tp all-reduce %s (in tp), dispatcher %s; "
      "%s B expert params\n",
      allToAll && whole
          ? "ep: E/ep whole experts per rank (etp=1), their slots from every "
            "rank (alltoall)"
      : allToAll    ? "ep: E/ep experts per rank, their slots from every rank "
                      "(alltoall)"
      : whole       ? "ep: E/ep whole experts per rank (etp=1)"
      : plan.ep > 1 ? "ep: E/ep experts per rank"
                    : "no ep: every expert on every token of the dp group",
      fixed(l.expertRows, 0).c_str(), duration(l.router).c_str(),
      duration(l.expertMatmul).c_str(), duration(l.dispatchCombine).c_str(),
      duration(l.expertTpComm).c_str(), dispatcher.c_str(),
      fixed(l.expertParams / 1e9, 3).c_str());
}

/// The MoE dispatcher's collectives per GPU and step.
static void printDispatcherTraffic(const StepEstimate &est,
                                   const TrainingPlan &plan) {
  const AxisTraffic &t = est.dispatcher;
  bool allToAll = plan.ep > 1 && plan.dispatcher == Dispatcher::AllToAll;
  // etp = 1: every dispatcher collective over the ep group. etp = tp with
  // ep < dp: over the ep group's data ranks (tp apart), edp groups apart.
  bool partOfDp = plan.ep > 1 && plan.ep < plan.dp;
  std::string group = partOfDp ? "all-gathers over ep*tp"
                               : "all-gathers over "
                                 "dp*tp",
              scatters = partOfDp ? ", reduce-scatters over ep (of dp " +
                                        std::to_string(plan.dp) + ")"
                                  : ", reduce-scatters over dp";
  if (expertsOverTp(plan)) {
    group = (allToAll ? "all-to-alls over " : "all-gathers over ") +
            expertAxes(plan);
    scatters = ", reduce-scatters over the same ranks";
  } else if (allToAll) {
    group = partOfDp
                ? "all-to-alls over ep (of dp " + std::to_string(plan.dp) + ")"
                : "all-to-alls over ep = dp";
  }
  std::printf("comm moe dispatcher: %s = %lld %s%s; per GPU and step: %lld "
              "%s, %s GB, %s\n",
              group.c_str(), (long long)t.groupSize,
              t.groupSize > 1 ? linkName(t.intraNode).c_str() : "(none)",
              plan.ep > 1 && !allToAll ? scatters.c_str() : "",
              (long long)t.collectives,
              t.collectives == 1 ? "collective" : "collectives",
              gigabytes(t.busBytes).c_str(), duration(t.time).c_str());
  // The expert weights' gradients over their edp ranks, a bucket of their
  // own when edp is neither the dp group nor 1.
  const AxisTraffic &g = est.expertGrad;
  if (g.groupSize > 1 && g.groupSize != plan.dp * plan.cp)
    std::printf("comm edp (expert gradients): group of %lld %s; per GPU "
                "and step: %lld %s, %s GB, %s\n",
                (long long)g.groupSize, linkName(g.intraNode).c_str(),
                (long long)g.collectives,
                g.collectives == 1 ? "collective" : "collectives",
                gigabytes(g.busBytes).c_str(), duration(g.time).c_str());
}

int loom::sim::runModelStep(const ModelStepOptions &options) {
  if (!options.trace.empty() && !endsWith(options.trace, ".json") &&
      !endsWith(options.trace, ".svg"))
    return fail("--trace '" + options.trace +
                "' must end in .json (Chrome trace) or .svg");

  // The model.
  std::optional<ModelConfig> config = lookupModel(options.model);
  if (!config)
    return fail("unknown model '" + options.model +
                "'; models: " + llvm::join(getModelNames(), ", "));

  // The cluster.
  if (options.cluster.empty() == options.clusterFile.empty())
    return fail(options.cluster.empty()
                    ? "--model needs --cluster PRESET or --cluster-file FILE"
                    : "--cluster and --cluster-file exclude each other");
  llvm::Expected<Cluster> cluster = options.cluster.empty()
                                        ? readClusterFile(options.clusterFile)
                                        : getClusterPreset(options.cluster);
  if (!cluster)
    return fail(llvm::toString(cluster.takeError()));

  // The plan, checked against the model and the cluster's GPUs.
  llvm::Expected<PlanSpec> spec = parsePlanSpec(options.plan);
  if (!spec)
    return fail("--plan '" + options.plan +
                "': " + llvm::toString(spec.takeError()));
  ModelFacts facts;
  facts.layers = config->layers;
  facts.hidden = config->hidden;
  facts.heads = config->heads;
  facts.kvHeads = config->kvHeads;
  facts.ffn = config->ffn;
  facts.vocab = config->vocab;
  facts.seq = config->seq;
  facts.experts = config->experts;
  facts.topK = config->topK;
  std::vector<PlanProblem> problems =
      validatePlan(*spec, facts, cluster->gpus());
  // The first broken rule, and how many more there are.
  std::vector<const PlanProblem *> errors;
  for (const PlanProblem &problem : problems)
    if (problem.severity == PlanSeverity::Error)
      errors.push_back(&problem);
  if (!errors.empty()) {
    std::string more;
    if (errors.size() > 1)
      more = " (and " + std::to_string(errors.size() - 1) +
             " more: " + errors[1]->rule + (errors.size() > 2 ? ", ...)" : ")");
    return fail("--plan '" + options.plan + "' on " + cluster->name + " (" +
                std::to_string(cluster->gpus()) + " GPUs): " +
                errors[0]->message + " [" + errors[0]->rule + "]" + more);
  }
  llvm::Expected<PlanLayout> layout =
      derivePlanLayout(*spec, facts, cluster->gpus());
  if (!layout)
    return fail(llvm::toString(layout.takeError()));

  TransformerShape shape;
  shape.name = config->name;
  shape.layers = config->layers;
  shape.hidden = config->hidden;
  shape.heads = config->heads;
  shape.kvHeads = config->kvHeads;
  shape.headDim = config->getHeadDim();
  shape.ffn = config->ffn;
  shape.vocab = layout->paddedVocab ? layout->paddedVocab : config->vocab;
  shape.seq = config->seq;
  shape.gatedMlp = config->mlp == MlpKind::SwiGlu;
  shape.tiedEmbeddings = config->tiedEmbeddings;
  shape.linearBias = config->linearBias;
  shape.learnedPositions = config->learnedPositions;
  shape.experts = config->experts;
  shape.topK = config->topK;
  shape.capacityFactor = config->capacityFactor;

  TrainingPlan plan;
  plan.tp = layout->tp;
  plan.sp = layout->sp;
  plan.cp = layout->cp;
  plan.cpComm = costCpComm(layout->cpComm);
  // a2a+p2p's all-to-all groups (cp_a2a; the layout's 1 otherwise).
  plan.cpA2A = layout->cpA2A;
  plan.pp = layout->pp;
  plan.vpp = layout->vpp;
  plan.dp = layout->dp;
  plan.ep = layout->ep;
  // The plan's etp when it gives one (Loom compiles etp = tp or 1).
  plan.etp = spec->etp.value_or(0);
  // Loom compiles both dispatchers, and builds allgather when the plan
  // leaves the dispatcher out.
  plan.dispatcher = spec->dispatcher == TokenDispatcher::AllToAll
                        ? Dispatcher::AllToAll
                        : Dispatcher::AllGather;
  plan.zero = layout->zero;
  plan.mbs = layout->mbs;
  plan.gbs = layout->gbs;
  plan.schedule = layout->schedule ? stringifySchedule(*layout->schedule).str()
                                   : std::string("1f1b");
  plan.recompute = layout->recompute == RecomputeGranularity::Full
                       ? Recompute::Full
                   : layout->recompute == RecomputeGranularity::Selective
                       ? Recompute::Selective
                       : Recompute::None;

  llvm::Expected<StepEstimate> estimate =
      estimateTrainingStep(shape, plan, *cluster);
  if (!estimate) {
    // A plan that leaves cp_comm out gets Megatron's ring, which the user
    // may not know is the default.
    std::string message = llvm::toString(estimate.takeError());
    std::string defaulted =
        plan.cp > 1 && !spec->cpComm &&
                llvm::StringRef(message).contains("cp_comm")
            ? " (p2p is cp_comm's default, as in Megatron-Core)"
            : "";
    return fail(message + defaulted);
  }
  const StepEstimate &est = *estimate;

  // What went in.
  std::printf("model %s: %lld layers, hidden %lld, %lld heads (%lld kv, head "
              "dim %lld), ffn %lld (%s), vocab %lld (padded %lld), seq %lld; "
              "%s parameters\n",
              shape.name.c_str(), (long long)shape.layers,
              (long long)shape.hidden, (long long)shape.heads,
              (long long)shape.kvHeads, (long long)shape.headDim,
              (long long)shape.ffn, shape.gatedMlp ? "swiglu" : "gelu",
              (long long)config->vocab, (long long)shape.vocab,
              (long long)shape.seq,
              (fixed(est.totalParams / 1e9, 2) + " B").c_str());
  if (shape.isMoE())
    std::printf(
        "experts %lld, top-%lld, ffn %lld each, capacity factor %s\n",
        (long long)shape.experts, (long long)shape.topK, (long long)shape.ffn,
        shape.capacityFactor > 0 ? constantValue(shape.capacityFactor).c_str()
                                 : "0 (dropless)");
  // cp only when the plan has it, so the line of a plan without stays as
  // it was.
  std::string cp =
      plan.cp > 1 ? " cp=" + std::to_string(plan.cp) +
                        " cp_comm=" + stringifyCpComm(layout->cpComm).str() +
                        (plan.cpComm == CpComm::A2AP2P
                             ? " cp_a2a=" + std::to_string(plan.cpA2A)
                             : "")
                  : "";
  // ep (and the dispatcher) only for a MoE model.
  std::string ep = shape.isMoE() ? " ep=" + std::to_string(plan.ep) +
                                       (plan.etp && plan.etp != plan.tp
                                            ? " etp=" + std::to_string(plan.etp)
                                            : "") +
                                       " dispatcher=" +
                                       (plan.dispatcher == Dispatcher::AllToAll
                                            ? "alltoall"
                                            : "allgather")
                                 : "";
  std::printf("plan %s: tp=%lld%s%s pp=%lld vpp=%lld dp=%lld%s zero=%lld "
              "mbs=%lld gbs=%lld schedule=%s recompute=%s; %lld microbatches, "
              "%lld tokens per step\n",
              toString(*spec).c_str(), (long long)plan.tp, plan.sp ? " sp" : "",
              cp.c_str(), (long long)plan.pp, (long long)plan.vpp,
              (long long)plan.dp, ep.c_str(), (long long)plan.zero,
              (long long)plan.mbs, (long long)plan.gbs,
              est.schedule.name.c_str(),
              stringifyRecompute(layout->recompute).str().c_str(),
              (long long)est.microbatches, (long long)est.tokensPerStep);
  for (const PlanProblem &problem : problems)
    std::printf("plan %s\n", formatPlanProblem(problem).c_str());
  std::printf("cluster %s: %lld nodes x %lld GPUs = %lld GPUs\n",
              cluster->name.c_str(), (long long)cluster->nodes,
              (long long)cluster->gpusPerNode, (long long)cluster->gpus());
  for (const ClusterConstant &c : cluster->constants)
    std::printf("constant %s = %s %s [%s]\n", c.key.c_str(),
                constantValue(c.value).c_str(), c.unit.c_str(),
                c.source.c_str());
  for (const CostAssumption &a : getCostAssumptions())
    std::printf("assumption %s: %s [%s]\n", a.name.c_str(), a.value.c_str(),
                a.source.c_str());

  // Per layer, per stage, per rank.
  const LayerCost &l = est.layer;
  // The ring's transfers overlap its blocks: what is left of them
  // (a2a+p2p: with its all-to-alls, which do not overlap).
  std::string cpTerm =
      plan.cp == 1 ? ""
      : plan.cpComm == CpComm::P2P
          ? " + cp " + duration(l.cpComm) + " (exposed of " +
                duration(l.cpTransfer) + " ring transfers)"
      : plan.cpComm == CpComm::A2AP2P
          ? " + cp " + duration(l.cpComm) + " (all-to-alls " +
                duration(l.cpTransfer - l.cpRingTransfer) + " + ring " +
                duration(l.cpComm - (l.cpTransfer - l.cpRingTransfer)) +
                " exposed of " + duration(l.cpRingTransfer) + " transfers)"
          : " + cp " + duration(l.cpComm);
  std::printf("layer (one microbatch, one GPU): F %s = matmul %s + attention "
              "%s + element-wise %s + tp %s%s%s; B %s; W %s; %s GFLOP "
              "forward\n",
              duration(l.forward).c_str(), duration(l.matmul).c_str(),
              duration(l.attention).c_str(), duration(l.elementwise).c_str(),
              duration(l.tpComm).c_str(), cpTerm.c_str(),
              l.paramGather > 0
                  ? (" + zero-3 gather " + duration(l.paramGather)).c_str()
                  : "",
              duration(l.inputGrad).c_str(), duration(l.weightGrad).c_str(),
              fixed(l.forwardFlops / 1e9, 1).c_str());
  if (shape.isMoE())
    printMoeLayer(est, plan);
  for (size_t s = 0; s < est.stages.size(); ++s) {
    const VirtualStageCost &v = est.stages[s];
    std::string extras = std::string(v.embedding ? " + embedding" : "") +
                         (v.output ? " + output layer and loss" : "");
    std::printf("stage %zu (rank %zu, chunk %zu): %lld layers%s: F %s, B %s, "
                "W %s, transfer %s\n",
                s, s % size_t(plan.pp), s / size_t(plan.pp),
                (long long)v.layers, extras.c_str(),
                duration(v.costs.f).c_str(), duration(v.costs.b).c_str(),
                duration(v.costs.w).c_str(),
                duration(v.costs.transfer).c_str());
  }
  std::printf("memory per GPU (GB): rank, parameters (B), weights, gradients, "
              "optimizer, activations (peak in flight: microbatch-chunks, "
              "layers), total of %s\n",
              gigabytes(cluster->hbmCapacity).c_str());
  double peakMemory = 0;
  size_t peakRank = 0;
  for (size_t r = 0; r < est.ranks.size(); ++r) {
    const PipelineRankEstimate &rank = est.ranks[r];
    std::printf(
        "memory rank %zu: %s B params, weights %s, gradients %s, "
        "optimizer %s, activations %s (%lld, %lld), total %s\n",
        r, fixed(rank.params / 1e9, 3).c_str(),
        gigabytes(rank.paramBytes).c_str(), gigabytes(rank.gradBytes).c_str(),
        gigabytes(rank.optimizerBytes).c_str(),
        gigabytes(rank.activationBytes).c_str(), (long long)rank.peakInFlight,
        (long long)rank.peakInFlightLayers, gigabytes(rank.totalBytes).c_str());
    if (rank.totalBytes > peakMemory) {
      peakMemory = rank.totalBytes;
      peakRank = r;
    }
  }
  if (shape.isMoE())
    printDispatcherTraffic(est, plan);
  for (const AxisTraffic &t : est.traffic) {
    // Without cp its line would only say so; with cp the gradient group
    // is dp · cp ranks.
    if (t.axis == MeshAxisKind::Cp && plan.cp == 1)
      continue;
    // a2a+p2p: the cp line is its all-to-alls within a group, and the
    // ring between the groups follows.
    bool hierarchical =
        t.axis == MeshAxisKind::Cp && plan.cpComm == CpComm::A2AP2P;
    std::string axis = t.axis == MeshAxisKind::Dp && plan.cp > 1
                           ? "dp (with cp)"
                       : hierarchical ? "cp (all-to-alls within cp_a2a)"
                                      : axisName(t.axis);
    auto print = [&](const std::string &axis, const AxisTraffic &t) {
      std::printf("comm %s: group of %lld %s; per GPU and step: %lld %s, %s "
                  "GB, %s\n",
                  axis.c_str(), (long long)t.groupSize,
                  t.groupSize > 1 ? linkName(t.intraNode).c_str() : "(none)",
                  (long long)t.collectives,
                  t.collectives == 1 ? "collective" : "collectives",
                  gigabytes(t.busBytes).c_str(), duration(t.time).c_str());
    };
    print(axis, t);
    if (hierarchical)
      print("cp ring (between the cp_a2a groups)", est.cpRing);
  }

  // The step.
  size_t last = 0;
  for (size_t r = 0; r < est.ranks.size(); ++r)
    if (est.ranks[r].finish > est.ranks[last].finish)
      last = r;
  const PipelineRankEstimate &lastRank = est.ranks[last];
  std::printf("pipeline %s, bubble %s\n", duration(est.pipelineTime).c_str(),
              fixed(est.bubbleFraction, 4).c_str());
  std::printf("after the pipeline (rank %zu, the last to finish): gradient "
              "reduction %s, optimizer %s\n",
              last, duration(lastRank.gradReduce).c_str(),
              duration(lastRank.optimizer).c_str());
  std::printf("step time %s\n", duration(est.stepTime).c_str());
  std::printf("tokens/s %s (%s per GPU)\n",
              fixed(est.tokensPerSecond, 0).c_str(),
              fixed(est.tokensPerSecond / double(est.gpus), 1).c_str());
  std::printf("model FLOPs per step %s PFLOP (3 x forward: 6N + 12*L*H*Q*T per "
              "token, PaLM appendix B; recompute not counted)\n",
              fixed(est.modelFlopsPerStep / 1e15, 1).c_str());
  std::printf("MFU %s (%s TFLOP/s per GPU of %s peak)\n",
              fixed(est.mfu, 4).c_str(),
              fixed(est.modelFlopsPerGpu / 1e12, 1).c_str(),
              fixed(cluster->peakFlops / 1e12, 0).c_str());
  std::printf("memory peak %s GB on rank %zu of %s GB: %s\n",
              gigabytes(peakMemory).c_str(), peakRank,
              gigabytes(cluster->hbmCapacity).c_str(),
              peakMemory <= cluster->hbmCapacity ? "fits" : "does not fit");

  if (!options.trace.empty()) {
    std::string text;
    if (endsWith(options.trace, ".json")) {
      text = renderChromeTrace(est);
    } else {
      schedule::ActionCosts ms = est.costs;
      for (schedule::StageCosts &s : ms.perStage) {
        s.f *= 1e3;
        s.b *= 1e3;
        s.w *= 1e3;
        s.transfer *= 1e3;
      }
      ms.f *= 1e3;
      ms.b *= 1e3;
      ms.w *= 1e3;
      ms.transfer *= 1e3;
      text = schedule::renderTimelineSvg(est.schedule,
                                         inMilliseconds(est.simulation), ms);
    }
    if (auto error = schedule::writeFile(options.trace, text))
      return fail(*error);
  }
  return 0;
}
