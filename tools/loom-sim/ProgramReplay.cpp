//===- ProgramReplay.cpp - loom-sim --program: a compiled step, priced ----===//
//
// The compiled program is what runs, so pricing it prices what Loom will do
// (its tp collectives, its stash, its extra transfers), not an idealized
// Megatron step. Per instruction:
//   - matmul, grouped matmul, attention (and their gradients): FLOPs at the
//     cluster's matmul rate, or their bytes at its memory bandwidth when
//     that is slower (roofline);
//   - every other kernel: the bytes it reads and writes at memory bandwidth;
//   - collectives: the alpha-beta model with NCCL's bus-bandwidth factor,
//     on the slowest link of the group they run over (the group of the
//     stage's first rank; Megatron's rank order puts tp within a node);
//   - a send: the message's time over the pipeline link, the transfer
//     between the stages; a receive costs nothing of its own (the schedule
//     simulation makes it wait).
// Each pipeline rank's instructions are summed per schedule action
// (`pipeline.action_spans`: F, B, W of a stage and microbatch; the
// optimizer after the schedule), the actions of one stage averaged over the
// microbatches, and the schedule simulated with those per-stage costs.
//
//===----------------------------------------------------------------------===//

#include "ProgramReplay.h"
#include "Text.h"
#include "Timeline.h"

#include "loom/CostModel/Cluster.h"
#include "loom/CostModel/Collectives.h"
#include "loom/Schedule/Schedule.h"
#include "loom/runtime/Mesh.h"
#include "loom/runtime/OpTable.h"
#include "loom/runtime/Pieces.h"
#include "loom/runtime/Program.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

using namespace loom::runtime;
using namespace loom::cost;
using namespace loom::schedule;
using namespace loom::sim;

namespace {

/// Seconds as milliseconds with 4 significant digits ("0.01234 ms").
std::string ms(double seconds) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.4g ms", seconds * 1e3);
  return buffer;
}

/// FLOPs of a matmul-like instruction; 0 for the others.
double flopsOf(const Program &p, const InstrInfo &instr) {
  auto shape = [&](size_t operand) -> const std::vector<int64_t> & {
    return p.buffers()[instr.operands[operand]].shape;
  };
  auto resultNumel = [&](size_t result = 0) {
    return static_cast<double>(p.buffers()[instr.results[result]].numel);
  };
  switch (instr.op) {
  case Opcode::Matmul: {
    const std::vector<int64_t> &lhs = shape(0);
    if (lhs.size() < 2)
      return 0;
    bool transposed = instr.getBool("transpose_lhs");
    double k =
        static_cast<double>(transposed ? lhs[lhs.size() - 2] : lhs.back());
    return 2 * resultNumel() * k;
  }
  case Opcode::GroupedMatmul: {
    const std::vector<int64_t> &x = shape(0);
    return x.empty() ? 0 : 2 * resultNumel() * static_cast<double>(x.back());
  }
  case Opcode::Attention:
  case Opcode::AttentionGrad: {
    // q [B, S, Hq, D], k [B, S, Hkv, D]: q·kᵀ and scores·v, 2 FLOPs per
    // multiply-add each (unmasked, as Megatron counts); the gradient twice.
    const std::vector<int64_t> &q = shape(0), &k = shape(1);
    if (q.size() != 4 || k.size() != 4)
      return 0;
    double forward = 4.0 *
                     static_cast<double>(p.buffers()[instr.operands[0]].numel) *
                     static_cast<double>(k[1]);
    return instr.op == Opcode::Attention ? forward : 2 * forward;
  }
  default:
    return 0;
  }
}

double bytesOf(const Program &p, const InstrInfo &instr) {
  double bytes = 0;
  for (uint32_t b : instr.operands)
    bytes += static_cast<double>(p.buffers()[b].size);
  for (uint32_t b : instr.results)
    bytes += static_cast<double>(p.buffers()[b].size);
  return bytes;
}

std::optional<Collective> collectiveOf(Opcode op) {
  switch (op) {
  case Opcode::AllReduce:
    return Collective::AllReduce;
  case Opcode::AllGather:
    return Collective::AllGather;
  case Opcode::ReduceScatter:
    return Collective::ReduceScatter;
  case Opcode::AllToAll:
    return Collective::AllToAll;
  case Opcode::CollectivePermute:
  case Opcode::Send:
    return Collective::SendRecv;
  default:
    return std::nullopt;
  }
}

/// An action span: "F(s0,m1)" → (F, 0, 1); others (send, recv, optimizer)
/// by name.
struct SpanKind {
  std::string name;
  std::optional<Action> action;
};
SpanKind parseSpanName(const std::string &name) {
  static const std::regex pattern(R"(([FBW])\(s(\d+),m(\d+)\))");
  std::smatch m;
  SpanKind kind{name, std::nullopt};
  if (std::regex_match(name, m, pattern)) {
    Action a;
    a.kind = m[1] == "F"   ? ActionKind::F
             : m[1] == "B" ? ActionKind::B
                           : ActionKind::W;
    a.stage = std::stoi(m[2]);
    a.microbatch = std::stoi(m[3]);
    kind.action = a;
  }
  return kind;
}

/// Instruction index → the name of the action it runs in ("" outside).
std::vector<std::string> spanOfInstructions(const Program &p) {
  std::vector<std::string> of(p.instructions().size());
  for (const InstructionSpan &span : p.actionSpans())
    for (size_t i = span.first; i <= span.last && i < of.size(); ++i)
      of[i] = span.action;
  return of;
}

/// The tokens of one step: the whole `tokens` input (every data rank's
/// rows), on the stage that reads it.
std::optional<double>
tokensPerStep(const std::vector<std::shared_ptr<const Program>> &stages) {
  for (const auto &stage : stages)
    for (const Binding &b : stage->inputs())
      if (b.name == "tokens") {
        double tokens = 1;
        for (int64_t d : wholeShape(*stage, b))
          tokens *= static_cast<double>(d);
        return tokens;
      }
  return std::nullopt;
}

} // namespace

int loom::sim::runProgramReplay(const ProgramReplayOptions &options) {
  std::shared_ptr<const Program> program;
  try {
    program = Program::loadFile(options.program);
  } catch (const std::exception &e) {
    return fail(e.what());
  }
  llvm::Expected<Cluster> cluster =
      !options.clusterFile.empty()
          ? readClusterFile(options.clusterFile)
          : getClusterPreset(options.cluster.empty() ? "h100-node"
                                                     : options.cluster);
  if (!cluster)
    return fail(llvm::toString(cluster.takeError()));
  const Mesh &mesh = program->mesh();
  if (mesh.size() > cluster->gpus())
    return fail("the program runs on " + std::to_string(mesh.size()) +
                " ranks (mesh " + mesh.str() + "), more than the cluster's " +
                std::to_string(cluster->gpus()) + " GPUs");

  // The schedule: the pipeline program's, or one F per rank.
  Schedule schedule;
  std::vector<std::shared_ptr<const Program>> stages;
  if (program->isPipeline()) {
    ScheduleProblem problem;
    std::optional<Schedule> read =
        readCsv(program->metadataValue("pipeline.actions"), &problem);
    if (!read)
      return fail("the program's schedule: [" + problem.id + "] " +
                  problem.message);
    schedule = *read;
    stages = program->stages();
  } else {
    schedule.name = "none";
    schedule.ranks = {{Action{ActionKind::F, 0, 0}}};
    stages = {program};
  }
  if (static_cast<int>(stages.size()) != schedule.pp)
    return fail("the program has " + std::to_string(stages.size()) +
                " stage programs for a schedule of pp = " +
                std::to_string(schedule.pp));

  std::vector<int> axisSizes(mesh.axisSizes.begin(), mesh.axisSizes.end());
  int ppAxis = mesh.axisIndex("pp");
  int64_t stride = 1;
  for (size_t a = ppAxis + 1; ppAxis >= 0 && a < axisSizes.size(); ++a)
    stride *= axisSizes[a];

  std::printf("program %s: %zu pipeline stage program(s), schedule %s "
              "(pp=%d, vpp=%d, %d microbatches), mesh %s\n",
              options.program.c_str(), stages.size(), schedule.name.c_str(),
              schedule.pp, schedule.vpp, schedule.microbatches,
              mesh.str().c_str());
  std::printf("cluster %s: %lld GPUs, matmul %.1f TFLOP/s (peak x "
              "efficiency), HBM %.0f GB/s, links intra %.0f GB/s, inter %.0f "
              "GB/s\n",
              cluster->name.c_str(), static_cast<long long>(cluster->gpus()),
              cluster->matmulFlops() / 1e12, cluster->hbmBandwidth / 1e9,
              cluster->intraNode.bandwidth / 1e9,
              cluster->interNode.bandwidth / 1e9);

  // Per global stage: the summed costs of its F, B, W actions and how many.
  struct Sum {
    double f = 0, b = 0, w = 0;
    int nf = 0, nb = 0, nw = 0;
  };
  std::vector<Sum> sums(schedule.stages());
  std::vector<double> sendTime(schedule.pp, 0), tail(schedule.pp, 0),
      loose(schedule.pp, 0);
  std::vector<int> sends(schedule.pp, 0);
  std::map<std::string, double> volume; // bytes per GPU by mesh axes
  for (int r = 0; r < schedule.pp; ++r) {
    const Program &p = *stages[r];
    int worldRank = static_cast<int>(r * stride);
    std::vector<std::string> spans = spanOfInstructions(p);
    // The action each instruction's time goes to: its span, and a span of
    // several instructions counts once per action occurrence.
    std::map<std::string, double> byAction;
    for (size_t i = 0; i < p.instructions().size(); ++i) {
      const InstrInfo &instr = p.instructions()[i];
      double time = 0;
      if (std::optional<Collective> kind = collectiveOf(instr.op)) {
        const CommInfo &comm = p.communicators()[instr.communicator];
        MeshGroup group = meshGroup(axisSizes, worldRank, comm.axes);
        std::vector<int64_t> members(group.members.begin(),
                                     group.members.end());
        double bytes = static_cast<double>(
            p.buffers()[instr.operands.empty() ? instr.results[0]
                                               : instr.operands[0]]
                .size);
        if (instr.op == Opcode::Send && instr.getInt("peer_shift")) {
          // The peer, not the whole pp group, is what the message crosses.
          int64_t peer = worldRank + instr.getInt("peer_shift") * stride;
          members = {worldRank, peer};
        }
        time =
            collectiveTime(*kind, comm.size, bytes, linkFor(*cluster, members));
        std::string axes;
        for (const std::string &a : comm.axisNames)
          axes += (axes.empty() ? "" : ",") + a;
        volume[axes] += busBandwidthFactor(*kind, comm.size) * bytes;
      } else if (instr.op != Opcode::Recv) {
        double flops = flopsOf(p, instr);
        time = std::max(flops / cluster->matmulFlops(),
                        bytesOf(p, instr) / cluster->hbmBandwidth);
      }
      SpanKind span = parseSpanName(spans[i]);
      if (span.action)
        byAction[spans[i]] += time;
      else if (span.name == "send") {
        sendTime[r] += time;
        sends[r] += instr.op == Opcode::Send;
      } else if (span.name == "optimizer")
        tail[r] += time;
      else if (span.name != "recv")
        loose[r] += time;
    }
    for (const auto &[name, time] : byAction) {
      Action a = *parseSpanName(name).action;
      if (a.stage < 0 || a.stage >= schedule.stages())
        continue;
      Sum &s = sums[a.stage];
      if (a.kind == ActionKind::F)
        s.f += time, ++s.nf;
      else if (a.kind == ActionKind::B)
        s.b += time, ++s.nb;
      else
        s.w += time, ++s.nw;
    }
  }
  if (!program->isPipeline()) {
    // One program: the whole step is its instructions in order.
    double step = loose[0] + tail[0] + sendTime[0];
    std::printf("rank 0: arena %llu bytes (the compiled memory plan)\n",
                static_cast<unsigned long long>(program->arenaSize()));
    for (const auto &[axes, bytes] : volume)
      std::printf("comm %s: %s MB per GPU and step (bus bytes)\n", axes.c_str(),
                  fixed(bytes / 1e6, 3).c_str());
    std::printf("step time %s\n", ms(step).c_str());
    if (std::optional<double> tokens = tokensPerStep(stages))
      std::printf("tokens/s %s (%s tokens per step)\n",
                  fixed(*tokens / step, 0).c_str(), fixed(*tokens, 0).c_str());
    return 0;
  }

  ActionCosts costs;
  for (int s = 0; s < schedule.stages(); ++s) {
    const Sum &sum = sums[s];
    int r = schedule.rankOf(s);
    StageCosts c;
    c.f = sum.nf ? sum.f / sum.nf : 0;
    c.b = sum.nb ? sum.b / sum.nb : 0;
    c.w = sum.nw ? sum.w / sum.nw : 0;
    c.transfer = sends[r] ? sendTime[r] / sends[r] : 0;
    costs.perStage.push_back(c);
    std::printf("stage %d (rank %d, chunk %d): F %s, B %s, W %s, transfer "
                "%s\n",
                s, r, schedule.chunkOf(s), ms(c.f).c_str(), ms(c.b).c_str(),
                ms(c.w).c_str(), ms(c.transfer).c_str());
  }
  for (int r = 0; r < schedule.pp; ++r) {
    std::string outside =
        loose[r] > 0 ? ", outside actions " + ms(loose[r]) : std::string();
    std::printf("rank %d: arena %llu bytes (the compiled memory plan: "
                "parameters, optimizer state, activations and stash); "
                "optimizer %s%s\n",
                r, static_cast<unsigned long long>(stages[r]->arenaSize()),
                ms(tail[r]).c_str(), outside.c_str());
  }
  for (const auto &[axes, bytes] : volume)
    std::printf("comm %s: %s MB per GPU and step (bus bytes)\n", axes.c_str(),
                fixed(bytes / 1e6, 3).c_str());

  std::vector<ScheduleProblem> problems = validateSchedule(schedule);
  if (!problems.empty())
    return fail("the program's schedule is not sound: [" + problems[0].id +
                "] " + problems[0].message);
  std::optional<SimulationResult> result = simulate(schedule, costs);
  if (!result)
    return fail("the program's schedule deadlocks");
  double tailMax = *std::max_element(tail.begin(), tail.end());
  double loosest = *std::max_element(loose.begin(), loose.end());
  double step = result->makespan + tailMax + loosest;
  std::printf("pipeline %s, bubble %s\n", ms(result->makespan).c_str(),
              fixed(result->bubbleFraction, 4).c_str());
  std::printf("step time %s\n", ms(step).c_str());
  if (std::optional<double> tokens = tokensPerStep(stages))
    std::printf("tokens/s %s (%s tokens per step)\n",
                fixed(*tokens / step, 0).c_str(), fixed(*tokens, 0).c_str());
  if (!options.svg.empty())
    if (std::optional<std::string> problem =
            writeFile(options.svg, renderTimelineSvg(schedule, *result, costs)))
      return fail(*problem);
  return 0;
}
