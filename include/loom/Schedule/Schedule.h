//===- Schedule.h - Pipeline schedules as per-rank action lists -*- C++ -*-===//
//
// Pipeline-parallel schedules in the style of PyTorch's pipelining (`_Action`):
// one ordered list of actions per pipeline rank, each naming a kind (F, B, W,
// SEND_F, RECV_F, SEND_B, RECV_B), a global stage and a microbatch. With vpp
// virtual chunks, stage s lives on rank s % pp as its chunk s / pp (Megatron's
// interleaved layout). Free of MLIR; docs/Schedules.md describes the
// generators, the validator's error ids, the simulator and the CSV format.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_SCHEDULE_SCHEDULE_H
#define LOOM_SCHEDULE_SCHEDULE_H

#include <optional>
#include <string>
#include <vector>

namespace loom {
namespace schedule {

enum class ActionKind {
  /// Forward of (stage, microbatch).
  F,
  /// Backward: the input gradient when the schedule has W actions (ZB's B),
  /// the full backward otherwise.
  B,
  /// Weight gradient (zero-bubble's W), after the B of the same pair.
  W,
  /// Send F's output of `stage` to stage + 1.
  SendF,
  /// Receive the input of `stage` from stage - 1.
  RecvF,
  /// Send B's input gradient of `stage` to stage - 1.
  SendB,
  /// Receive the output gradient of `stage` from stage + 1.
  RecvB,
};

/// "F", "B", "W", "SEND_F", "RECV_F", "SEND_B", "RECV_B".
const char *kindName(ActionKind kind);
std::optional<ActionKind> parseKind(const std::string &name);
bool isCompute(ActionKind kind);

struct Action {
  ActionKind kind = ActionKind::F;
  /// Global (virtual) stage, 0 .. pp·vpp - 1.
  int stage = 0;
  int microbatch = 0;

  bool operator==(const Action &o) const {
    return kind == o.kind && stage == o.stage && microbatch == o.microbatch;
  }
  /// "F(s1,m3)".
  std::string str() const;
};

struct Schedule {
  std::string name;
  int pp = 1;
  int vpp = 1;
  int microbatches = 1;
  /// ranks[r]: rank r's actions in execution order.
  std::vector<std::vector<Action>> ranks;

  int stages() const { return pp * vpp; }
  int rankOf(int stage) const { return stage % pp; }
  int chunkOf(int stage) const { return stage / pp; }
  /// Whether any W action appears (B is then the input gradient only).
  bool splitsBackward() const;
};

/// A named problem: `id` is stable (docs/Schedules.md lists them).
struct ScheduleProblem {
  std::string id;
  std::string message;
};

//===----------------------------------------------------------------------===//
// Generators
//===----------------------------------------------------------------------===//

/// All forwards, then all backwards, both in microbatch order.
std::optional<Schedule> makeGPipe(int pp, int microbatches,
                                  ScheduleProblem *error = nullptr);
/// Megatron's forward_backward_pipelining_without_interleaving.
std::optional<Schedule> make1F1B(int pp, int microbatches,
                                 ScheduleProblem *error = nullptr);
/// Megatron's forward_backward_pipelining_with_interleaving with
/// microbatch_group_size_per_vp_stage = pp; refuses microbatches that are not
/// a multiple of pp (`interleaved-microbatches`).
std::optional<Schedule> makeInterleaved1F1B(int pp, int vpp, int microbatches,
                                            ScheduleProblem *error = nullptr);
/// Zero-bubble H1: 1F1B with B split into B and W; rank r defers its first r
/// W's into the cool-down (PyTorch's ScheduleInterleavedZeroBubble with one
/// stage per rank).
std::optional<Schedule> makeZBH1(int pp, int microbatches,
                                 ScheduleProblem *error = nullptr);
/// By name: gpipe, 1f1b, interleaved, zb-h1.
std::optional<Schedule> makeSchedule(const std::string &name, int pp, int vpp,
                                     int microbatches,
                                     ScheduleProblem *error = nullptr);

/// Inserts RECV_F/RECV_B right before and SEND_F/SEND_B right after each
/// compute action whose neighbouring stage lives on another rank. The
/// generators call it; a hand-written compute-only order can use it too.
void addCommunication(Schedule &schedule);

/// Megatron's get_pp_rank_microbatches for rank r: warm-up forwards, steady
/// 1F1B pairs and cool-down backwards, counted in (microbatch, chunk) units.
struct PhaseCounts {
  int warmup = 0;
  int steady = 0;
  int cooldown = 0;
  bool operator==(const PhaseCounts &o) const {
    return warmup == o.warmup && steady == o.steady && cooldown == o.cooldown;
  }
};
PhaseCounts megatronPhaseCounts(int pp, int vpp, int microbatches, int rank);
/// The counts as they appear in a rank's action list: warm-up = forwards
/// before the first B, steady = the remaining forwards, cool-down = the
/// backwards after the last forward (a single steady pair reads as one
/// more warm-up forward: the orders are the same).
PhaseCounts measuredPhaseCounts(const Schedule &schedule, int rank);

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

/// Every dependency, pairing and deadlock problem; empty when the schedule is
/// sound. Deadlocks are looked for only when the static checks pass.
std::vector<ScheduleProblem> validateSchedule(const Schedule &schedule);

//===----------------------------------------------------------------------===//
// Simulation
//===----------------------------------------------------------------------===//

/// The costs of one global stage's actions (ActionCosts::perStage).
struct StageCosts {
  double f = 1.0;
  double b = 1.0;
  double w = 1.0;
  /// Time from a send of this stage (its F output or its B input gradient)
  /// to the matching receive.
  double transfer = 0.0;
};

/// Time of each action. Without W actions, B is the full backward and costs
/// b + w. Sends are asynchronous (the sender does not wait); a receive ends
/// `transfer` after its send.
struct ActionCosts {
  double f = 1.0;
  double b = 1.0;
  double w = 1.0;
  double transfer = 0.0;
  /// When not empty, one entry per global stage (pp · vpp), used instead of
  /// f, b, w and transfer: stages may differ (the first holds the
  /// embedding, the last the output layer; a transfer within a node is
  /// faster than one across nodes).
  std::vector<StageCosts> perStage;

  /// The costs of `stage`: perStage[stage], or f, b, w and transfer.
  StageCosts of(int stage) const {
    if (stage >= 0 && static_cast<size_t>(stage) < perStage.size())
      return perStage[stage];
    return {f, b, w, transfer};
  }
};

struct TimedAction {
  Action action;
  double start = 0;
  double end = 0;
};

struct RankTimeline {
  std::vector<TimedAction> actions;
  /// Time spent in F, B and W.
  double busy = 0;
  /// makespan - busy.
  double idle = 0;
};

struct SimulationResult {
  std::vector<RankTimeline> ranks;
  double makespan = 0;
  /// Sum of idle over pp · makespan.
  double bubbleFraction = 0;
};

/// Runs every rank in lock step with the dependencies of validateSchedule;
/// std::nullopt (and a `deadlock` problem) when no rank can move.
std::optional<SimulationResult> simulate(const Schedule &schedule,
                                         const ActionCosts &costs,
                                         ScheduleProblem *error = nullptr);

//===----------------------------------------------------------------------===//
// CSV
//===----------------------------------------------------------------------===//

/// `# loom-schedule name=... pp=... vpp=... microbatches=...`, the header
/// `rank,index,kind,stage,microbatch`, then one line per action.
std::string writeCsv(const Schedule &schedule);
/// Parses writeCsv's format; the directive line is optional (pp, vpp and
/// microbatches are then inferred). Problems: `csv-syntax`.
std::optional<Schedule> readCsv(const std::string &text,
                                ScheduleProblem *error = nullptr);

} // namespace schedule
} // namespace loom

#endif // LOOM_SCHEDULE_SCHEDULE_H
