//===- Schedule.cpp - Actions, generators and the CSV format
//----------------===//
//
// The generators follow Megatron-Core's schedules.py
// (get_pp_rank_microbatches, get_schedule_table,
// forward_backward_pipelining_{without,with}_interleaving) and, for ZB-H1,
// PyTorch's torch/distributed/pipelining/schedules.py (_get_1f1b_rank_ops with
// enable_zero_bubble). docs/Schedules.md gives the formulas.
//
//===----------------------------------------------------------------------===//

#include "loom/Schedule/Schedule.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <utility>

namespace loom {
namespace schedule {

const char *kindName(ActionKind kind) {
  switch (kind) {
  case ActionKind::F:
    return "F";
  case ActionKind::B:
    return "B";
  case ActionKind::W:
    return "W";
  case ActionKind::SendF:
    return "SEND_F";
  case ActionKind::RecvF:
    return "RECV_F";
  case ActionKind::SendB:
    return "SEND_B";
  case ActionKind::RecvB:
    return "RECV_B";
  }
  return "?";
}

std::optional<ActionKind> parseKind(const std::string &name) {
  for (ActionKind k :
       {ActionKind::F, ActionKind::B, ActionKind::W, ActionKind::SendF,
        ActionKind::RecvF, ActionKind::SendB, ActionKind::RecvB})
    if (name == kindName(k))
      return k;
  return std::nullopt;
}

bool isCompute(ActionKind kind) {
  return kind == ActionKind::F || kind == ActionKind::B ||
         kind == ActionKind::W;
}

std::string Action::str() const {
  return std::string(kindName(kind)) + "(s" + std::to_string(stage) + ",m" +
         std::to_string(microbatch) + ")";
}

bool Schedule::splitsBackward() const {
  for (const auto &actions : ranks)
    for (const Action &a : actions)
      if (a.kind == ActionKind::W)
        return true;
  return false;
}

namespace {

void setError(ScheduleProblem *error, std::string id, std::string message) {
  if (error)
    *error = {std::move(id), std::move(message)};
}

bool checkSizes(int pp, int vpp, int microbatches, ScheduleProblem *error) {
  if (pp < 1 || vpp < 1 || microbatches < 1) {
    setError(error, "bad-size",
             "pp, vpp and microbatches must be at least 1 (got pp=" +
                 std::to_string(pp) + ", vpp=" + std::to_string(vpp) +
                 ", microbatches=" + std::to_string(microbatches) + ")");
    return false;
  }
  return true;
}

Schedule emptySchedule(std::string name, int pp, int vpp, int microbatches) {
  Schedule s;
  s.name = std::move(name);
  s.pp = pp;
  s.vpp = vpp;
  s.microbatches = microbatches;
  s.ranks.resize(pp);
  return s;
}

Action act(ActionKind kind, int stage, int microbatch) {
  Action a;
  a.kind = kind;
  a.stage = stage;
  a.microbatch = microbatch;
  return a;
}

} // namespace

void addCommunication(Schedule &schedule) {
  int last = schedule.stages() - 1;
  for (int r = 0; r < (int)schedule.ranks.size(); ++r) {
    std::vector<Action> out;
    for (const Action &a : schedule.ranks[r]) {
      bool remotePrev = a.stage > 0 && schedule.rankOf(a.stage - 1) != r;
      bool remoteNext = a.stage < last && schedule.rankOf(a.stage + 1) != r;
      if (a.kind == ActionKind::F) {
        if (remotePrev)
          out.push_back(act(ActionKind::RecvF, a.stage, a.microbatch));
        out.push_back(a);
        if (remoteNext)
          out.push_back(act(ActionKind::SendF, a.stage, a.microbatch));
      } else if (a.kind == ActionKind::B) {
        if (remoteNext)
          out.push_back(act(ActionKind::RecvB, a.stage, a.microbatch));
        out.push_back(a);
        if (remotePrev)
          out.push_back(act(ActionKind::SendB, a.stage, a.microbatch));
      } else {
        out.push_back(a);
      }
    }
    schedule.ranks[r] = std::move(out);
  }
}

std::optional<Schedule> makeGPipe(int pp, int microbatches,
                                  ScheduleProblem *error) {
  if (!checkSizes(pp, 1, microbatches, error))
    return std::nullopt;
  Schedule s = emptySchedule("gpipe", pp, 1, microbatches);
  for (int r = 0; r < pp; ++r) {
    for (int m = 0; m < microbatches; ++m)
      s.ranks[r].push_back(act(ActionKind::F, r, m));
    for (int m = 0; m < microbatches; ++m)
      s.ranks[r].push_back(act(ActionKind::B, r, m));
  }
  addCommunication(s);
  return s;
}

PhaseCounts megatronPhaseCounts(int pp, int vpp, int microbatches, int rank) {
  // schedules.py, get_pp_rank_microbatches.
  int total = microbatches * vpp;
  int warmup;
  if (pp <= 1)
    warmup = 0;
  else if (vpp == 1)
    warmup = pp - rank - 1;
  else
    warmup = (pp - rank - 1) * 2 + (vpp - 1) * pp;
  warmup = std::min(warmup, total);
  PhaseCounts c;
  c.warmup = warmup;
  c.steady = total - warmup;
  c.cooldown = warmup;
  return c;
}

PhaseCounts measuredPhaseCounts(const Schedule &schedule, int rank) {
  // Over the F and B actions: a steady pair is "F then B", so the F just
  // before the first B and the B just after the last F belong to the steady
  // phase when there is one.
  PhaseCounts c;
  const auto &actions = schedule.ranks[rank];
  int forwards = 0, beforeFirstB = 0, afterLastF = 0;
  bool seenB = false;
  for (const Action &a : actions) {
    if (a.kind == ActionKind::F) {
      ++forwards;
      if (!seenB)
        ++beforeFirstB;
      afterLastF = 0;
    } else if (a.kind == ActionKind::B) {
      seenB = true;
      ++afterLastF;
    }
  }
  bool steady = beforeFirstB < forwards;
  c.warmup = beforeFirstB - (steady ? 1 : 0);
  c.steady = forwards - c.warmup;
  c.cooldown = afterLastF - (steady ? 1 : 0);
  return c;
}

namespace {

/// The (microbatch, chunk) order of Megatron's get_schedule_table with
/// microbatch_group_size_per_vp_stage = group.
std::vector<std::pair<int, int>> scheduleTable(int microbatches, int vpp,
                                               int group) {
  std::vector<std::pair<int, int>> table;
  for (int first = 0; first < microbatches; first += group) {
    int end = first + group >= microbatches ? microbatches : first + group;
    for (int chunk = 0; chunk < vpp; ++chunk)
      for (int m = first; m < end; ++m)
        table.push_back({m, chunk});
  }
  return table;
}

/// Megatron's loop: warm-up forwards, (forward k + warmup, backward k) pairs,
/// cool-down backwards, over the virtual microbatch ids of `table`.
Schedule megatronOrder(std::string name, int pp, int vpp, int microbatches) {
  Schedule s = emptySchedule(std::move(name), pp, vpp, microbatches);
  auto table = scheduleTable(microbatches, vpp, pp);
  int total = (int)table.size();
  for (int r = 0; r < pp; ++r) {
    PhaseCounts c = megatronPhaseCounts(pp, vpp, microbatches, r);
    auto fwd = [&](int k) {
      return act(ActionKind::F, table[k].second * pp + r, table[k].first);
    };
    auto bwd = [&](int k) {
      return act(ActionKind::B, (vpp - 1 - table[k].second) * pp + r,
                 table[k].first);
    };
    auto &out = s.ranks[r];
    for (int k = 0; k < c.warmup; ++k)
      out.push_back(fwd(k));
    for (int k = 0; k < c.steady; ++k) {
      out.push_back(fwd(k + c.warmup));
      out.push_back(bwd(k));
    }
    for (int k = c.steady; k < total; ++k)
      out.push_back(bwd(k));
  }
  addCommunication(s);
  return s;
}

} // namespace

std::optional<Schedule> make1F1B(int pp, int microbatches,
                                 ScheduleProblem *error) {
  if (!checkSizes(pp, 1, microbatches, error))
    return std::nullopt;
  return megatronOrder("1f1b", pp, 1, microbatches);
}

std::optional<Schedule> makeInterleaved1F1B(int pp, int vpp, int microbatches,
                                            ScheduleProblem *error) {
  if (!checkSizes(pp, vpp, microbatches, error))
    return std::nullopt;
  if (pp < 2 && vpp > 1) {
    setError(error, "interleaved-pp",
             "the interleaved schedule needs pp > 1 (Megatron-LM: "
             "\"pipeline-model-parallel size should be greater than 1 with "
             "interleaved schedule\")");
    return std::nullopt;
  }
  // forward_backward_pipelining_with_interleaving: the group size (here pp)
  // must lie in [pp, M], and the last group must not be shorter than pp; with
  // groups of pp that is "M is a multiple of pp".
  if (microbatches % pp != 0) {
    setError(error, "interleaved-microbatches",
             "the interleaved schedule needs the number of microbatches (" +
                 std::to_string(microbatches) +
                 ") to be a multiple of the pipeline size (" +
                 std::to_string(pp) + "), as in Megatron-Core");
    return std::nullopt;
  }
  return megatronOrder("interleaved", pp, vpp, microbatches);
}

std::optional<Schedule> makeZBH1(int pp, int microbatches,
                                 ScheduleProblem *error) {
  if (!checkSizes(pp, 1, microbatches, error))
    return std::nullopt;
  Schedule s = emptySchedule("zb-h1", pp, 1, microbatches);
  for (int r = 0; r < pp; ++r) {
    // PyTorch's _get_1f1b_rank_ops(enable_zero_bubble=True) with one local
    // stage: warm-up p - r - 1 forwards; each B is followed by the oldest
    // pending W once r B's have been deferred; the rest W's close the list.
    int warmup = std::min(pp - r - 1, microbatches);
    int steady = microbatches - warmup;
    auto &out = s.ranks[r];
    int f = 0, b = 0, w = 0;
    for (; f < warmup; ++f)
      out.push_back(act(ActionKind::F, r, f));
    for (int op = 0; op < microbatches; ++op) {
      if (op < steady)
        out.push_back(act(ActionKind::F, r, f++));
      out.push_back(act(ActionKind::B, r, b++));
      if (op >= r)
        out.push_back(act(ActionKind::W, r, w++));
    }
    while (w < b)
      out.push_back(act(ActionKind::W, r, w++));
  }
  addCommunication(s);
  return s;
}

std::optional<Schedule> makeSchedule(const std::string &name, int pp, int vpp,
                                     int microbatches, ScheduleProblem *error) {
  if (name != "interleaved" && vpp != 1) {
    setError(error, "bad-size",
             "schedule '" + name + "' has one chunk per rank (vpp=1)");
    return std::nullopt;
  }
  if (name == "gpipe")
    return makeGPipe(pp, microbatches, error);
  if (name == "1f1b")
    return make1F1B(pp, microbatches, error);
  if (name == "interleaved")
    return makeInterleaved1F1B(pp, vpp, microbatches, error);
  if (name == "zb-h1")
    return makeZBH1(pp, microbatches, error);
  setError(error, "unknown-schedule",
           "unknown schedule '" + name +
               "' (expected gpipe, 1f1b, interleaved or zb-h1)");
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// CSV
//===----------------------------------------------------------------------===//

std::string writeCsv(const Schedule &schedule) {
  std::ostringstream os;
  os << "# loom-schedule";
  if (!schedule.name.empty())
    os << " name=" << schedule.name;
  os << " pp=" << schedule.pp << " vpp=" << schedule.vpp
     << " microbatches=" << schedule.microbatches << "\n";
  os << "rank,index,kind,stage,microbatch\n";
  for (int r = 0; r < (int)schedule.ranks.size(); ++r)
    for (int i = 0; i < (int)schedule.ranks[r].size(); ++i) {
      const Action &a = schedule.ranks[r][i];
      os << r << "," << i << "," << kindName(a.kind) << "," << a.stage << ","
         << a.microbatch << "\n";
    }
  return os.str();
}

namespace {

std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos)
    return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

bool parseInt(const std::string &s, int &out) {
  std::string t = trim(s);
  if (t.empty())
    return false;
  long v = 0;
  for (char c : t) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + (c - '0');
    if (v > 1000000000)
      return false;
  }
  out = (int)v;
  return true;
}

} // namespace

std::optional<Schedule> readCsv(const std::string &text,
                                ScheduleProblem *error) {
  Schedule s;
  int pp = -1, vpp = -1, microbatches = -1;
  // (rank, index) -> action.
  std::map<std::pair<int, int>, Action> rows;
  std::istringstream is(text);
  std::string line;
  int lineNo = 0;
  auto fail = [&](const std::string &why) {
    setError(error, "csv-syntax",
             "line " + std::to_string(lineNo) + ": " + why);
    return std::nullopt;
  };
  while (std::getline(is, line)) {
    ++lineNo;
    line = trim(line);
    if (line.empty())
      continue;
    if (line[0] == '#') {
      std::istringstream ws(line.substr(1));
      std::string word;
      ws >> word;
      if (word != "loom-schedule")
        continue;
      while (ws >> word) {
        size_t eq = word.find('=');
        if (eq == std::string::npos)
          return fail("expected key=value in the directive, got '" + word +
                      "'");
        std::string key = word.substr(0, eq), value = word.substr(eq + 1);
        if (key == "name") {
          s.name = value;
          continue;
        }
        int v;
        if (!parseInt(value, v) || v < 1)
          return fail("bad value for '" + key + "'");
        if (key == "pp")
          pp = v;
        else if (key == "vpp")
          vpp = v;
        else if (key == "microbatches")
          microbatches = v;
        else
          return fail("unknown directive key '" + key + "'");
      }
      continue;
    }
    std::vector<std::string> fields;
    std::string field;
    std::istringstream fs(line);
    while (std::getline(fs, field, ','))
      fields.push_back(trim(field));
    if (fields.size() == 5 && fields[0] == "rank")
      continue; // the header
    if (fields.size() != 5)
      return fail("expected 5 fields rank,index,kind,stage,microbatch");
    int rank, index;
    Action a;
    auto kind = parseKind(fields[2]);
    if (!kind)
      return fail("unknown action kind '" + fields[2] + "'");
    if (!parseInt(fields[0], rank) || !parseInt(fields[1], index) ||
        !parseInt(fields[3], a.stage) || !parseInt(fields[4], a.microbatch))
      return fail("rank, index, stage and microbatch must be integers >= 0");
    a.kind = *kind;
    if (!rows.emplace(std::make_pair(rank, index), a).second)
      return fail("rank " + std::to_string(rank) + " has index " +
                  std::to_string(index) + " twice");
  }
  int maxRank = -1, maxStage = -1, maxMb = -1;
  for (auto &[key, a] : rows) {
    maxRank = std::max(maxRank, key.first);
    maxStage = std::max(maxStage, a.stage);
    maxMb = std::max(maxMb, a.microbatch);
  }
  if (pp < 0)
    pp = std::max(1, maxRank + 1);
  if (vpp < 0)
    vpp = std::max(1, (maxStage + 1 + pp - 1) / pp);
  if (microbatches < 0)
    microbatches = std::max(1, maxMb + 1);
  if (maxRank >= pp) {
    lineNo = 0;
    return fail("rank " + std::to_string(maxRank) +
                " is not below pp=" + std::to_string(pp));
  }
  s.pp = pp;
  s.vpp = vpp;
  s.microbatches = microbatches;
  s.ranks.resize(pp);
  // Rows sorted by (rank, index): the order of the indices is the order.
  for (auto &[key, a] : rows)
    s.ranks[key.first].push_back(a);
  return s;
}

} // namespace schedule
} // namespace loom
