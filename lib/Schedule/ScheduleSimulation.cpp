//===- ScheduleSimulation.cpp - Lock-step replay of a schedule
//--------------===//
//
// Every rank runs its list in order. Compute actions take their cost (their
// stage's, when ActionCosts::perStage is given); a send takes no time on its
// rank and delivers its stage's `transfer` later; a receive waits for
// the matching send (the k-th receive on a (from, to, direction) channel takes
// the k-th send, as NCCL and Gloo pair point-to-point messages). A rank blocked
// on a receive whose send never comes is a deadlock.
//
//===----------------------------------------------------------------------===//

#include "loom/Schedule/Schedule.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <tuple>

namespace loom {
namespace schedule {

namespace {
/// (from rank, to rank, 0 = forward activations / 1 = gradients).
using Channel = std::tuple<int, int, int>;

/// The channel a send or receive uses, seen from `rank`.
Channel channelOf(const Schedule &s, int rank, const Action &a) {
  switch (a.kind) {
  case ActionKind::SendF:
    return {rank, s.rankOf(a.stage + 1), 0};
  case ActionKind::RecvF:
    return {s.rankOf(a.stage - 1), rank, 0};
  case ActionKind::SendB:
    return {rank, s.rankOf(a.stage - 1), 1};
  case ActionKind::RecvB:
    return {s.rankOf(a.stage + 1), rank, 1};
  default:
    return {-1, -1, -1};
  }
}
} // namespace

std::optional<SimulationResult> simulate(const Schedule &schedule,
                                         const ActionCosts &costs,
                                         ScheduleProblem *error) {
  int p = (int)schedule.ranks.size();
  bool split = schedule.splitsBackward();
  std::vector<size_t> pc(p, 0);
  std::vector<double> now(p, 0.0);
  std::map<Channel, std::vector<double>> arrivals;
  std::map<Channel, size_t> received;
  SimulationResult result;
  result.ranks.resize(p);

  bool progress = true;
  while (progress) {
    progress = false;
    for (int r = 0; r < p; ++r) {
      const auto &actions = schedule.ranks[r];
      while (pc[r] < actions.size()) {
        const Action &a = actions[pc[r]];
        TimedAction t;
        t.action = a;
        t.start = now[r];
        if (a.kind == ActionKind::RecvF || a.kind == ActionKind::RecvB) {
          Channel ch = channelOf(schedule, r, a);
          auto &sent = arrivals[ch];
          size_t &k = received[ch];
          if (k >= sent.size())
            break; // blocked: the send has not happened yet
          t.end = std::max(now[r], sent[k]);
          ++k;
        } else if (a.kind == ActionKind::SendF || a.kind == ActionKind::SendB) {
          arrivals[channelOf(schedule, r, a)].push_back(
              now[r] + costs.of(a.stage).transfer);
          t.end = now[r];
        } else {
          StageCosts stage = costs.of(a.stage);
          double cost = a.kind == ActionKind::F ? stage.f
                        : a.kind == ActionKind::B
                            ? (split ? stage.b : stage.b + stage.w)
                            : stage.w;
          t.end = now[r] + cost;
          result.ranks[r].busy += cost;
        }
        now[r] = t.end;
        result.ranks[r].actions.push_back(t);
        ++pc[r];
        progress = true;
      }
    }
  }

  std::vector<int> stuck;
  for (int r = 0; r < p; ++r)
    if (pc[r] < schedule.ranks[r].size())
      stuck.push_back(r);
  if (!stuck.empty()) {
    if (error) {
      std::ostringstream os;
      os << "ranks";
      for (size_t i = 0; i < stuck.size(); ++i)
        os << (i ? ", " : " ") << stuck[i];
      os << " wait forever:";
      for (int r : stuck) {
        const Action &a = schedule.ranks[r][pc[r]];
        os << " rank " << r << " at #" << pc[r] << " " << a.str()
           << " (waits for rank " << std::get<0>(channelOf(schedule, r, a))
           << ");";
      }
      *error = {"deadlock", os.str()};
    }
    return std::nullopt;
  }

  for (double t : now)
    result.makespan = std::max(result.makespan, t);
  double idle = 0;
  for (auto &rank : result.ranks) {
    rank.idle = result.makespan - rank.busy;
    idle += rank.idle;
  }
  result.bubbleFraction =
      result.makespan > 0 && p > 0 ? idle / (p * result.makespan) : 0.0;
  return result;
}

} // namespace schedule
} // namespace loom
