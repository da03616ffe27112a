//===- ScheduleValidation.cpp - Dependency, pairing and deadlock checks
//----===//
//
// The error ids are listed in docs/Schedules.md. Static checks first (shape,
// each compute action once, the order of dependencies on each rank, sends and
// receives paired in order per channel); when they pass, a replay with unit
// costs finds deadlocks.
//
//===----------------------------------------------------------------------===//

#include "loom/Schedule/Schedule.h"

#include <map>
#include <set>
#include <tuple>

namespace loom {
namespace schedule {

namespace {

using Key = std::tuple<ActionKind, int, int>;

Key keyOf(ActionKind kind, int stage, int microbatch) {
  return {kind, stage, microbatch};
}

std::string where(int rank, size_t index, const Action &a) {
  return "rank " + std::to_string(rank) + " #" + std::to_string(index) + " " +
         a.str();
}

} // namespace

std::vector<ScheduleProblem> validateSchedule(const Schedule &s) {
  std::vector<ScheduleProblem> problems;
  auto report = [&](const char *id, std::string message) {
    problems.push_back({id, std::move(message)});
  };
  if (s.pp < 1 || s.vpp < 1 || s.microbatches < 1 ||
      (int)s.ranks.size() != s.pp) {
    report("bad-size",
           "pp=" + std::to_string(s.pp) + " vpp=" + std::to_string(s.vpp) +
               " microbatches=" + std::to_string(s.microbatches) + " with " +
               std::to_string(s.ranks.size()) + " rank lists");
    return problems;
  }
  int stages = s.stages(), last = stages - 1;
  bool split = s.splitsBackward();

  // Shape of each action.
  for (int r = 0; r < s.pp; ++r)
    for (size_t i = 0; i < s.ranks[r].size(); ++i) {
      const Action &a = s.ranks[r][i];
      if (a.stage < 0 || a.stage >= stages || a.microbatch < 0 ||
          a.microbatch >= s.microbatches) {
        report("bad-action", where(r, i, a) + ": stage or microbatch out of "
                                              "range");
      } else if (s.rankOf(a.stage) != r) {
        report("wrong-rank", where(r, i, a) + ": stage " +
                                 std::to_string(a.stage) + " lives on rank " +
                                 std::to_string(s.rankOf(a.stage)));
      } else if (((a.kind == ActionKind::SendF ||
                   a.kind == ActionKind::RecvB) &&
                  a.stage == last) ||
                 ((a.kind == ActionKind::RecvF ||
                   a.kind == ActionKind::SendB) &&
                  a.stage == 0)) {
        report("bad-action", where(r, i, a) + ": no neighbouring stage");
      }
    }
  if (!problems.empty())
    return problems;

  // Each F and B (and W when the backward is split) exactly once.
  std::map<Key, int> count;
  for (const auto &actions : s.ranks)
    for (const Action &a : actions)
      if (isCompute(a.kind))
        ++count[keyOf(a.kind, a.stage, a.microbatch)];
  std::vector<ActionKind> needed = {ActionKind::F, ActionKind::B};
  if (split)
    needed.push_back(ActionKind::W);
  for (ActionKind kind : needed)
    for (int st = 0; st < stages; ++st)
      for (int m = 0; m < s.microbatches; ++m) {
        int n = count[keyOf(kind, st, m)];
        Action a{kind, st, m};
        if (n == 0)
          report("missing-action", a.str() + " is on no rank");
        else if (n > 1)
          report("duplicate-action",
                 a.str() + " appears " + std::to_string(n) + " times");
      }

  // Dependencies in each rank's order.
  for (int r = 0; r < s.pp; ++r) {
    std::set<Key> done;
    for (size_t i = 0; i < s.ranks[r].size(); ++i) {
      const Action &a = s.ranks[r][i];
      auto has = [&](ActionKind k, int st) {
        return done.count(keyOf(k, st, a.microbatch)) > 0;
      };
      switch (a.kind) {
      case ActionKind::F:
        if (a.stage > 0) {
          if (s.rankOf(a.stage - 1) == r) {
            if (!has(ActionKind::F, a.stage - 1))
              report("f-before-input",
                     where(r, i, a) + " runs before F of stage " +
                         std::to_string(a.stage - 1) + " on the same rank");
          } else if (!has(ActionKind::RecvF, a.stage)) {
            report("missing-recv",
                   where(r, i, a) + " has no RECV_F of its input before it");
          }
        }
        break;
      case ActionKind::B:
        if (!has(ActionKind::F, a.stage))
          report("b-before-f", where(r, i, a) + " runs before its F");
        if (a.stage < last) {
          if (s.rankOf(a.stage + 1) == r) {
            if (!has(ActionKind::B, a.stage + 1))
              report("b-before-grad",
                     where(r, i, a) + " runs before B of stage " +
                         std::to_string(a.stage + 1) + " on the same rank");
          } else if (!has(ActionKind::RecvB, a.stage)) {
            report("missing-recv",
                   where(r, i, a) +
                       " has no RECV_B of its output gradient before it");
          }
        }
        break;
      case ActionKind::W:
        if (!has(ActionKind::B, a.stage))
          report("w-before-b", where(r, i, a) + " runs before its B");
        break;
      case ActionKind::SendF:
        if (!has(ActionKind::F, a.stage))
          report("send-before-compute", where(r, i, a) + " before its F");
        break;
      case ActionKind::SendB:
        if (!has(ActionKind::B, a.stage))
          report("send-before-compute", where(r, i, a) + " before its B");
        break;
      default:
        break;
      }
      done.insert(keyOf(a.kind, a.stage, a.microbatch));
    }
  }

  // Sends and receives pair up in order per (from, to, direction); a message
  // is named by the stage that receives it and its microbatch.
  using Channel = std::tuple<int, int, int>;
  std::map<Channel, std::vector<std::pair<int, int>>> sends, recvs;
  for (int r = 0; r < s.pp; ++r)
    for (const Action &a : s.ranks[r]) {
      switch (a.kind) {
      case ActionKind::SendF:
        sends[{r, s.rankOf(a.stage + 1), 0}].push_back(
            {a.stage + 1, a.microbatch});
        break;
      case ActionKind::RecvF:
        recvs[{s.rankOf(a.stage - 1), r, 0}].push_back({a.stage, a.microbatch});
        break;
      case ActionKind::SendB:
        sends[{r, s.rankOf(a.stage - 1), 1}].push_back(
            {a.stage - 1, a.microbatch});
        break;
      case ActionKind::RecvB:
        recvs[{s.rankOf(a.stage + 1), r, 1}].push_back({a.stage, a.microbatch});
        break;
      default:
        break;
      }
    }
  std::set<Channel> channels;
  for (auto &[ch, v] : sends)
    channels.insert(ch);
  for (auto &[ch, v] : recvs)
    channels.insert(ch);
  for (const Channel &ch : channels) {
    const auto &out = sends[ch];
    const auto &in = recvs[ch];
    auto name = [&](std::pair<int, int> msg) {
      const char *dir = std::get<2>(ch) == 0 ? "activation" : "gradient";
      return std::string(dir) + " for stage " + std::to_string(msg.first) +
             " microbatch " + std::to_string(msg.second) + " (rank " +
             std::to_string(std::get<0>(ch)) + " -> rank " +
             std::to_string(std::get<1>(ch)) + ")";
    };
    std::multiset<std::pair<int, int>> outSet(out.begin(), out.end()),
        inSet(in.begin(), in.end());
    bool sameSet = true;
    for (auto &msg : outSet)
      if (inSet.count(msg) < outSet.count(msg)) {
        report("unmatched-send", "the " + name(msg) +
                                     " is sent but never "
                                     "received");
        sameSet = false;
      }
    for (auto &msg : inSet)
      if (outSet.count(msg) < inSet.count(msg)) {
        report("missing-send", "the " + name(msg) +
                                   " is received but never "
                                   "sent");
        sameSet = false;
      }
    if (sameSet && out != in) {
      for (size_t k = 0; k < out.size(); ++k)
        if (out[k] != in[k]) {
          report("send-recv-order",
                 "message " + std::to_string(k) + " on the channel: sent " +
                     name(out[k]) + ", received as " + name(in[k]));
          break;
        }
    }
  }
  if (!problems.empty())
    return problems;

  ScheduleProblem deadlock;
  if (!simulate(s, ActionCosts(), &deadlock))
    problems.push_back(deadlock);
  return problems;
}

} // namespace schedule
} // namespace loom
