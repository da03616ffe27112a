//===- loom-sim.cpp - Build, check and simulate pipeline schedules --------===//
//
//   loom-sim --pp P [--vpp V] --microbatches M --schedule NAME|FILE.csv
//            [--costs F,B,W,T] [--csv OUT] [--svg OUT]
//   loom-sim --model NAME --plan SPEC --cluster PRESET|--cluster-file FILE
//            [--trace OUT.svg|OUT.json]
//
// A thin main over LoomSchedule (include/loom/Schedule/Schedule.h): builds a
// schedule (or reads one from CSV), validates it, simulates it and prints
// each rank's busy and idle time and the step's bubble fraction next to the
// theory; --svg draws the timeline (Timeline.cpp). With --model it prices a
// zoo model's training step with LoomCostModel instead (ModelStep.cpp).
//
//===----------------------------------------------------------------------===//

#include "ModelStep.h"
#include "ProgramReplay.h"
#include "Text.h"
#include "Timeline.h"

#include "loom/Schedule/Schedule.h"
#include "loom/runtime/ParseNumber.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace loom::schedule;
using namespace loom::sim;

static const char *const kUsage =
    R"(usage: loom-sim --pp P [--vpp V] --microbatches M --schedule NAME|FILE.csv
                [--costs F,B,W,T] [--csv OUT] [--svg OUT]
       loom-sim --model NAME --plan SPEC (--cluster PRESET | --cluster-file F)
                [--trace OUT.svg|OUT.json]
       loom-sim --program FILE.loom [--cluster PRESET | --cluster-file F]
                [--svg OUT]

Builds a pipeline schedule (or reads one from a CSV file), validates it,
simulates it lock-step and prints each rank's busy and idle time and the
step's bubble fraction next to the theory for that schedule.

options:
  --pp P             pipeline ranks, 1-1024
  --vpp V            virtual chunks per rank (interleaved only), 1-64, 1
  --microbatches M   microbatches per step, 1-65536
  --schedule S       gpipe, 1f1b, interleaved, zb-h1, or a CSV file (ending
                     in .csv; docs/Schedules.md gives the format); a file
                     brings its own sizes, --pp/--vpp/--microbatches must
                     then agree with it when given
  --costs F,B,W,T    time of a forward, an input-gradient backward, a weight
                     gradient and a transfer, each 0-1000000, 1,1,1,0 (with
                     no W actions a backward takes B + W)
  --csv OUT          write the schedule as CSV to OUT
  --svg OUT          draw the simulated timeline as SVG to OUT
  --help             print this text

a model's training step (the cost model, docs/CostModel.md):
  --model NAME       a zoo model (loom-models --list), dense or MoE
  --plan SPEC        a plan spec (docs/PlanSpec.md), e.g.
                     'tp=8,sp,pp=4,vpp=5,dp=2,mbs=1,gbs=128'; its degrees
                     must multiply to the cluster's GPUs; cp with cp_comm
                     p2p (the default), all_gather or a2a; ep = dp with the
                     allgather (the default) or alltoall dispatcher, as
                     Loom compiles them
  --cluster PRESET   h100-node, h100-ib:N or a100-ib:N (N nodes of 8 GPUs)
  --cluster-file F   a cluster described in a file (key = value lines)
  --trace OUT        write the simulated timeline: OUT.svg (the schedule
                     picture, milliseconds) or OUT.json (Chrome trace)

a compiled program (loom-translate --loom-to-program; a pipeline program
holds one program per pipeline rank and its schedule):
  --program FILE     replay it on the cluster (default h100-node): each
                     instruction priced (matmul FLOPs, other kernels' bytes,
                     collectives by the alpha-beta model on their group's
                     link), summed per schedule action, the schedule
                     simulated; prints per-stage F/B/W, each rank's arena
                     (the compiled memory plan), traffic per mesh axis, the
                     bubble, step time and tokens/s; --svg draws it
)";

namespace {
struct Options {
  std::optional<int64_t> pp, vpp, microbatches;
  std::string schedule, csvOut, svgOut;
  ActionCosts costs;
  bool costsGiven = false;
  loom::sim::ModelStepOptions model;
  std::string program;
};
} // namespace

/// Parses "F,B,W,T" into `costs`; a problem worded after "--costs".
static loom::runtime::NumberProblem parseCosts(const std::string &text,
                                               ActionCosts &costs) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ','))
    parts.push_back(part);
  if (!text.empty() && text.back() == ',')
    parts.push_back("");
  if (parts.size() != 4)
    return "needs four numbers F,B,W,T, got '" + text + "'";
  double values[4];
  for (int i = 0; i < 4; ++i)
    if (auto problem =
            loom::runtime::parseReal(parts[i], 0, 1000000, values[i]))
      return "'" + std::string("FBWT").substr(i, 1) + "' " + *problem;
  costs.f = values[0];
  costs.b = values[1];
  costs.w = values[2];
  costs.transfer = values[3];
  return std::nullopt;
}

/// Parses the command line; prints the problem and returns false on error.
static bool parseArgs(int argc, char **argv, Options &options, bool &help) {
  struct IntFlag {
    std::optional<int64_t> *value;
    int64_t max;
  };
  std::map<std::string, IntFlag> intFlags = {
      {"--pp", {&options.pp, 1024}},
      {"--vpp", {&options.vpp, 64}},
      {"--microbatches", {&options.microbatches, 65536}}};
  std::map<std::string, std::string *> textFlags = {
      {"--schedule", &options.schedule},
      {"--csv", &options.csvOut},
      {"--svg", &options.svgOut},
      {"--model", &options.model.model},
      {"--plan", &options.model.plan},
      {"--cluster", &options.model.cluster},
      {"--cluster-file", &options.model.clusterFile},
      {"--trace", &options.model.trace},
      {"--program", &options.program}};
  std::map<std::string, bool> seen;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      return true;
    }
    std::string flag = arg, value;
    bool inlineValue = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != arg.npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inlineValue = true;
    }
    bool known =
        intFlags.count(flag) || textFlags.count(flag) || flag == "--costs";
    if (!known) {
      fail("unknown argument '" + arg + "'; run 'loom-sim --help'");
      return false;
    }
    if (seen[flag]) {
      fail(flag + " given twice");
      return false;
    }
    seen[flag] = true;
    if (!inlineValue) {
      if (i + 1 >= argc) {
        fail(flag + " needs a value");
        return false;
      }
      value = argv[++i];
    }
    if (auto it = intFlags.find(flag); it != intFlags.end()) {
      int64_t v = 0;
      if (auto problem =
              loom::runtime::parseInteger(value, 1, it->second.max, v)) {
        fail(flag + " " + *problem);
        return false;
      }
      *it->second.value = v;
    } else if (auto it = textFlags.find(flag); it != textFlags.end()) {
      if (value.empty()) {
        fail(flag + " needs a value");
        return false;
      }
      *it->second = value;
    } else if (auto problem = parseCosts(value, options.costs)) {
      fail("--costs " + *problem);
      return false;
    } else {
      options.costsGiven = true;
    }
  }
  return true;
}

/// "(p-1)/(m+p-1) = 0.2727" and friends for a known schedule; empty else.
static std::string theoryText(const Schedule &s) {
  double p = s.pp, m = s.microbatches, v = s.vpp;
  double oneF1B = (p - 1) / (m + p - 1);
  if (s.name == "gpipe" || s.name == "1f1b")
    return "(p-1)/(m+p-1) = " + fixed(oneF1B, 4);
  if (s.name == "interleaved")
    return "(p-1)/(v*m+p-1) = " + fixed((p - 1) / (v * m + p - 1), 4);
  if (s.name == "zb-h1")
    return "about a third of 1F1B's (p-1)/(m+p-1) = " + fixed(oneF1B, 4) +
           "; (p-1)/(3m+p-1) = " + fixed((p - 1) / (3 * m + p - 1), 4) +
           " with F = B = W";
  return "";
}

int main(int argc, char **argv) {
  Options options;
  bool help = false;
  if (!parseArgs(argc, argv, options, help))
    return 1;
  if (help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const loom::sim::ModelStepOptions &model = options.model;
  if (!options.program.empty()) {
    if (!model.model.empty() || !model.plan.empty() ||
        !options.schedule.empty() || options.pp || options.vpp ||
        options.microbatches || options.costsGiven || !model.trace.empty() ||
        !options.csvOut.empty())
      return fail("--program takes only --cluster or --cluster-file and "
                  "--svg (the program holds its plan and schedule)");
    if (!model.cluster.empty() && !model.clusterFile.empty())
      return fail("give --cluster or --cluster-file, not both");
    loom::sim::ProgramReplayOptions replay;
    replay.program = options.program;
    replay.cluster = model.cluster;
    replay.clusterFile = model.clusterFile;
    replay.svg = options.svgOut;
    return loom::sim::runProgramReplay(replay);
  }
  bool modelMode = !model.model.empty();
  struct Given {
    const char *flag;
    bool given;
  };
  if (modelMode) {
    Given scheduleFlags[] = {
        {"--pp", options.pp.has_value()},
        {"--vpp", options.vpp.has_value()},
        {"--microbatches", options.microbatches.has_value()},
        {"--schedule", !options.schedule.empty()},
        {"--costs", options.costsGiven},
        {"--csv", !options.csvOut.empty()},
        {"--svg", !options.svgOut.empty()}};
    for (const Given &g : scheduleFlags)
      if (g.given)
        return fail(std::string(g.flag) +
                    " does not go with --model (the plan gives the "
                    "schedule; --trace OUT.svg draws it)");
    if (model.plan.empty())
      return fail("--model needs --plan SPEC");
    return loom::sim::runModelStep(model);
  }
  Given modelFlags[] = {{"--plan", !model.plan.empty()},
                        {"--cluster", !model.cluster.empty()},
                        {"--cluster-file", !model.clusterFile.empty()},
                        {"--trace", !model.trace.empty()}};
  for (const Given &g : modelFlags)
    if (g.given)
      return fail(std::string(g.flag) + " needs --model NAME");
  if (options.schedule.empty())
    return fail("--schedule is required (gpipe, 1f1b, interleaved, zb-h1 or "
                "FILE.csv); run 'loom-sim --help'");

  Schedule schedule;
  ScheduleProblem problem;
  if (endsWith(options.schedule, ".csv")) {
    std::ifstream in(options.schedule, std::ios::binary);
    if (!in)
      return fail("cannot read '" + options.schedule + "'");
    std::stringstream text;
    text << in.rdbuf();
    auto read = readCsv(text.str(), &problem);
    if (!read)
      return fail(options.schedule + ": " + problem.id + ": " +
                  problem.message);
    schedule = std::move(*read);
    struct Size {
      const char *flag;
      std::optional<int64_t> given;
      int actual;
    } sizes[] = {
        {"--pp", options.pp, schedule.pp},
        {"--vpp", options.vpp, schedule.vpp},
        {"--microbatches", options.microbatches, schedule.microbatches}};
    for (const Size &size : sizes)
      if (size.given && *size.given != size.actual)
        return fail(std::string(size.flag) + " " + std::to_string(*size.given) +
                    " does not match " + options.schedule + "'s " +
                    std::to_string(size.actual));
  } else {
    if (!options.pp)
      return fail("--pp is required with --schedule " + options.schedule);
    if (!options.microbatches)
      return fail("--microbatches is required with --schedule " +
                  options.schedule);
    if (options.vpp && *options.vpp > 1 && options.schedule != "interleaved")
      return fail("--vpp " + std::to_string(*options.vpp) +
                  " needs --schedule interleaved");
    auto made = makeSchedule(options.schedule, static_cast<int>(*options.pp),
                             static_cast<int>(options.vpp.value_or(1)),
                             static_cast<int>(*options.microbatches), &problem);
    if (!made)
      return fail(problem.id + ": " + problem.message);
    schedule = std::move(*made);
  }

  if (!options.csvOut.empty())
    if (auto error = writeFile(options.csvOut, writeCsv(schedule)))
      return fail(*error);

  std::vector<ScheduleProblem> problems = validateSchedule(schedule);
  if (!problems.empty()) {
    for (const ScheduleProblem &p : problems)
      std::fprintf(stderr, "loom-sim: error: %s: %s\n", p.id.c_str(),
                   p.message.c_str());
    std::fprintf(stderr, "loom-sim: error: schedule '%s' is invalid (%zu %s)\n",
                 schedule.name.c_str(), problems.size(),
                 problems.size() == 1 ? "problem" : "problems");
    return 1;
  }

  auto result = simulate(schedule, options.costs, &problem);
  if (!result)
    return fail(problem.id + ": " + problem.message);

  const ActionCosts &c = options.costs;
  std::printf("schedule %s: pp=%d vpp=%d microbatches=%d; costs F=%s B=%s "
              "W=%s transfer=%s\n",
              schedule.name.c_str(), schedule.pp, schedule.vpp,
              schedule.microbatches, formatNumber(c.f).c_str(),
              formatNumber(c.b).c_str(), formatNumber(c.w).c_str(),
              formatNumber(c.transfer).c_str());
  std::printf("rank        busy        idle\n");
  for (size_t r = 0; r < result->ranks.size(); ++r)
    std::printf("%4zu %11s %11s\n", r, fixed(result->ranks[r].busy, 3).c_str(),
                fixed(result->ranks[r].idle, 3).c_str());
  std::printf("makespan %s\n", fixed(result->makespan, 3).c_str());
  std::string theory = theoryText(schedule);
  std::printf("bubble %s (theory %s)\n",
              fixed(result->bubbleFraction, 4).c_str(),
              theory.empty() ? "none for this schedule name" : theory.c_str());

  if (!options.svgOut.empty())
    if (auto error =
            writeFile(options.svgOut, renderTimelineSvg(schedule, *result, c)))
      return fail(*error);
  return 0;
}
