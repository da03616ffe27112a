//===- ScheduleTest.cpp - Pipeline schedules
//-------------------------------===//
//
// Phase counts against Megatron's formulas, the validator on hand-broken
// schedules, the CSV round trip and the simulator's bubble against theory.
//
//===----------------------------------------------------------------------===//

#include "loom/Schedule/Schedule.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <string>
#include <vector>

using namespace loom::schedule;

namespace {

bool hasProblem(const std::vector<ScheduleProblem> &problems,
                const std::string &id) {
  return std::any_of(problems.begin(), problems.end(),
                     [&](const ScheduleProblem &p) { return p.id == id; });
}

std::string describe(const std::vector<ScheduleProblem> &problems) {
  std::string out;
  for (const auto &p : problems)
    out += p.id + ": " + p.message + "\n";
  return out;
}

int count(const Schedule &s, int rank, ActionKind kind) {
  const auto &a = s.ranks[rank];
  return (int)std::count_if(a.begin(), a.end(),
                            [&](const Action &x) { return x.kind == kind; });
}

/// Index of the first action equal to `a` on `rank`, or -1.
int find(const Schedule &s, int rank, Action a) {
  const auto &v = s.ranks[rank];
  auto it = std::find(v.begin(), v.end(), a);
  return it == v.end() ? -1 : (int)(it - v.begin());
}

struct Case {
  int p, v, m;
};

} // namespace

// Megatron's get_pp_rank_microbatches, written out per rank: 1F1B warms up
// with p - r - 1 forwards, the interleaved schedule with
// 2(p - r - 1) + (v - 1) p, both capped at v m.
TEST(ScheduleTest, PhaseCountsMatchMegatron) {
  std::vector<Case> cases = {{2, 1, 4}, {4, 1, 8}, {4, 1, 2}, {8, 1, 32},
                             {2, 2, 4}, {4, 2, 8}, {4, 3, 8}, {8, 2, 16},
                             {4, 4, 4}, {3, 2, 6}};
  for (const Case &c : cases) {
    ScheduleProblem error;
    auto s = c.v == 1 ? make1F1B(c.p, c.m, &error)
                      : makeInterleaved1F1B(c.p, c.v, c.m, &error);
    ASSERT_TRUE(s) << error.message;
    for (int r = 0; r < c.p; ++r) {
      int total = c.v * c.m;
      int warmup = c.v == 1 ? c.p - r - 1 : 2 * (c.p - r - 1) + (c.v - 1) * c.p;
      warmup = std::min(warmup, total);
      PhaseCounts expected{warmup, total - warmup, warmup};
      EXPECT_EQ(megatronPhaseCounts(c.p, c.v, c.m, r), expected);
      // The F/B order is F^warmup (F B)^steady B^warmup.
      std::vector<ActionKind> order, expectedOrder;
      for (const Action &a : s->ranks[r])
        if (a.kind == ActionKind::F || a.kind == ActionKind::B)
          order.push_back(a.kind);
      expectedOrder.assign(warmup, ActionKind::F);
      for (int k = 0; k < total - warmup; ++k) {
        expectedOrder.push_back(ActionKind::F);
        expectedOrder.push_back(ActionKind::B);
      }
      expectedOrder.insert(expectedOrder.end(), warmup, ActionKind::B);
      EXPECT_EQ(order, expectedOrder);
      // One steady pair reads as one more warm-up forward.
      if (total - warmup == 1)
        continue;
      PhaseCounts got = measuredPhaseCounts(*s, r);
      EXPECT_EQ(got.warmup, warmup)
          << "p=" << c.p << " v=" << c.v << " m=" << c.m << " r=" << r;
      EXPECT_EQ(got.steady, total - warmup)
          << "p=" << c.p << " v=" << c.v << " m=" << c.m << " r=" << r;
      EXPECT_EQ(got.cooldown, warmup)
          << "p=" << c.p << " v=" << c.v << " m=" << c.m << " r=" << r;
      EXPECT_EQ(count(*s, r, ActionKind::F), total);
      EXPECT_EQ(count(*s, r, ActionKind::B), total);
    }
    EXPECT_TRUE(validateSchedule(*s).empty()) << describe(validateSchedule(*s));
  }
}

// A table for p = 4, m = 8 written by hand from the formulas.
TEST(ScheduleTest, PhaseCountTable) {
  int expected1F1B[4] = {3, 2, 1, 0};
  int expectedInterleaved[4] = {10, 8, 6, 4}; // 2(4 - r - 1) + (2 - 1) 4
  auto a = make1F1B(4, 8);
  auto b = makeInterleaved1F1B(4, 2, 8);
  ASSERT_TRUE(a && b);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(measuredPhaseCounts(*a, r).warmup, expected1F1B[r]);
    EXPECT_EQ(measuredPhaseCounts(*a, r).steady, 8 - expected1F1B[r]);
    EXPECT_EQ(measuredPhaseCounts(*b, r).warmup, expectedInterleaved[r]);
    EXPECT_EQ(measuredPhaseCounts(*b, r).steady, 16 - expectedInterleaved[r]);
  }
}

// Megatron's schedule table: microbatches in groups of p, chunks in turn.
TEST(ScheduleTest, InterleavedOrderFollowsScheduleTable) {
  auto s = makeInterleaved1F1B(2, 2, 4);
  ASSERT_TRUE(s);
  std::vector<std::pair<int, int>> forwards; // (stage, microbatch) on rank 0
  for (const Action &a : s->ranks[0])
    if (a.kind == ActionKind::F)
      forwards.push_back({a.stage, a.microbatch});
  std::vector<std::pair<int, int>> expected = {{0, 0}, {0, 1}, {2, 0}, {2, 1},
                                               {0, 2}, {0, 3}, {2, 2}, {2, 3}};
  EXPECT_EQ(forwards, expected);
}

TEST(ScheduleTest, InterleavedRefusesMicrobatchesNotMultipleOfP) {
  ScheduleProblem error;
  EXPECT_FALSE(makeInterleaved1F1B(4, 2, 6, &error));
  EXPECT_EQ(error.id, "interleaved-microbatches");
  EXPECT_FALSE(makeInterleaved1F1B(1, 2, 4, &error));
  EXPECT_EQ(error.id, "interleaved-pp");
  EXPECT_FALSE(makeSchedule("pipedream", 4, 1, 8, &error));
  EXPECT_EQ(error.id, "unknown-schedule");
}

TEST(ScheduleTest, GeneratedSchedulesValidate) {
  for (int p : {1, 2, 4, 8})
    for (int m : {1, 3, 8, 32}) {
      for (const char *name : {"gpipe", "1f1b", "zb-h1"}) {
        auto s = makeSchedule(name, p, 1, m);
        ASSERT_TRUE(s);
        auto problems = validateSchedule(*s);
        EXPECT_TRUE(problems.empty())
            << name << " p=" << p << " m=" << m << "\n"
            << describe(problems);
      }
      for (int v : {2, 3}) {
        if (m % p != 0 || p == 1)
          continue;
        auto s = makeInterleaved1F1B(p, v, m);
        ASSERT_TRUE(s);
        auto problems = validateSchedule(*s);
        EXPECT_TRUE(problems.empty())
            << "interleaved p=" << p << " v=" << v << " m=" << m << "\n"
            << describe(problems);
      }
    }
}

// ZB-H1 keeps 1F1B's warm-up (and so its memory) and defers r W's on rank r.
TEST(ScheduleTest, ZBH1DefersWeightGradients) {
  auto s = makeZBH1(4, 8);
  ASSERT_TRUE(s);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(measuredPhaseCounts(*s, r).warmup, 4 - r - 1);
    EXPECT_EQ(count(*s, r, ActionKind::W), 8);
    // The W of microbatch 0 comes after the B of microbatch r.
    EXPECT_GT(find(*s, r, Action{ActionKind::W, r, 0}),
              find(*s, r, Action{ActionKind::B, r, r}));
  }
}

TEST(ScheduleTest, ValidatorFindsMissingRecv) {
  auto s = make1F1B(4, 8);
  ASSERT_TRUE(s);
  int i = find(*s, 2, Action{ActionKind::RecvF, 2, 3});
  ASSERT_GE(i, 0);
  s->ranks[2].erase(s->ranks[2].begin() + i);
  auto problems = validateSchedule(*s);
  EXPECT_TRUE(hasProblem(problems, "missing-recv")) << describe(problems);
  EXPECT_TRUE(hasProblem(problems, "unmatched-send")) << describe(problems);
}

TEST(ScheduleTest, ValidatorFindsWBeforeB) {
  auto s = makeZBH1(4, 8);
  ASSERT_TRUE(s);
  auto &rank1 = s->ranks[1];
  int b = find(*s, 1, Action{ActionKind::B, 1, 5});
  int w = find(*s, 1, Action{ActionKind::W, 1, 5});
  ASSERT_GE(b, 0);
  ASSERT_GT(w, b);
  Action moved = rank1[w];
  rank1.erase(rank1.begin() + w);
  rank1.insert(rank1.begin() + b, moved);
  auto problems = validateSchedule(*s);
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].id, "w-before-b");
}

TEST(ScheduleTest, ValidatorFindsBBeforeF) {
  auto s = make1F1B(2, 4);
  ASSERT_TRUE(s);
  // On the last rank, swap F(m1) with the B(m1) that follows it.
  int f = find(*s, 1, Action{ActionKind::F, 1, 1});
  int b = find(*s, 1, Action{ActionKind::B, 1, 1});
  ASSERT_LT(f, b);
  std::swap(s->ranks[1][f], s->ranks[1][b]);
  EXPECT_TRUE(hasProblem(validateSchedule(*s), "b-before-f"));
}

// Rank 0 receives the gradient of microbatch 0 before it sends microbatch 1's
// activation while rank 1 waits for that activation before sending the
// gradient: every dependency is there, but both wait on each other.
TEST(ScheduleTest, ValidatorFindsDeadlock) {
  Schedule s;
  s.pp = 2;
  s.microbatches = 2;
  s.ranks = {{{ActionKind::F, 0, 0},
              {ActionKind::SendF, 0, 0},
              {ActionKind::F, 0, 1},
              {ActionKind::RecvB, 0, 0},
              {ActionKind::SendF, 0, 1},
              {ActionKind::B, 0, 0},
              {ActionKind::RecvB, 0, 1},
              {ActionKind::B, 0, 1}},
             {{ActionKind::RecvF, 1, 0},
              {ActionKind::F, 1, 0},
              {ActionKind::RecvF, 1, 1},
              {ActionKind::F, 1, 1},
              {ActionKind::B, 1, 0},
              {ActionKind::SendB, 1, 0},
              {ActionKind::B, 1, 1},
              {ActionKind::SendB, 1, 1}}};
  auto problems = validateSchedule(s);
  ASSERT_EQ(problems.size(), 1u) << describe(problems);
  EXPECT_EQ(problems[0].id, "deadlock");
  EXPECT_NE(problems[0].message.find("rank 0"), std::string::npos);
  EXPECT_NE(problems[0].message.find("rank 1"), std::string::npos);
  EXPECT_NE(problems[0].message.find("RECV_B(s0,m0)"), std::string::npos);
  EXPECT_FALSE(simulate(s, ActionCosts()));
}

TEST(ScheduleTest, ValidatorFindsOrderAndShapeErrors) {
  auto s = make1F1B(2, 4);
  ASSERT_TRUE(s);
  // Swap two RECV_F on rank 1 (and their F's): pairing order breaks.
  Schedule t = *s;
  for (Action &a : t.ranks[1])
    if (a.microbatch == 0 && a.kind != ActionKind::B &&
        a.kind != ActionKind::SendB && a.kind != ActionKind::RecvB)
      a.microbatch = 1;
    else if (a.microbatch == 1 && a.kind != ActionKind::B &&
             a.kind != ActionKind::SendB && a.kind != ActionKind::RecvB)
      a.microbatch = 0;
  EXPECT_TRUE(hasProblem(validateSchedule(t), "send-recv-order"))
      << describe(validateSchedule(t));
  Schedule u = *s;
  u.ranks[0].push_back({ActionKind::F, 1, 0});
  EXPECT_TRUE(hasProblem(validateSchedule(u), "wrong-rank"));
  Schedule v = *s;
  v.ranks[0].pop_back();
  EXPECT_TRUE(hasProblem(validateSchedule(v), "missing-action"));
}

TEST(ScheduleTest, CsvRoundTrip) {
  for (const char *name : {"gpipe", "1f1b", "interleaved", "zb-h1"}) {
    auto s =
        makeSchedule(name, 4, std::string(name) == "interleaved" ? 2 : 1, 8);
    ASSERT_TRUE(s);
    std::string csv = writeCsv(*s);
    ScheduleProblem error;
    auto back = readCsv(csv, &error);
    ASSERT_TRUE(back) << error.message;
    EXPECT_EQ(back->name, s->name);
    EXPECT_EQ(back->pp, s->pp);
    EXPECT_EQ(back->vpp, s->vpp);
    EXPECT_EQ(back->microbatches, s->microbatches);
    EXPECT_EQ(back->ranks, s->ranks);
    EXPECT_EQ(writeCsv(*back), csv);
  }
}

TEST(ScheduleTest, CsvSyntaxErrors) {
  ScheduleProblem error;
  EXPECT_FALSE(readCsv("0,0,X,0,0\n", &error));
  EXPECT_EQ(error.id, "csv-syntax");
  EXPECT_FALSE(readCsv("0,0,F,0\n", &error));
  EXPECT_EQ(error.id, "csv-syntax");
  EXPECT_FALSE(readCsv("0,0,F,0,0\n0,0,B,0,0\n", &error));
  EXPECT_EQ(error.id, "csv-syntax");
  EXPECT_FALSE(readCsv("# loom-schedule pp=two\n", &error));
  EXPECT_EQ(error.id, "csv-syntax");
}

// A user's hand-written GPipe for two ranks and two microbatches, without
// the directive (sizes inferred), rows out of order: it validates and runs.
TEST(ScheduleTest, ImportedCsvValidatesAndRuns) {
  const char *csv = R"(# a hand-written schedule
rank,index,kind,stage,microbatch
0,0,F,0,0
0,1,SEND_F,0,0
0,2,F,0,1
0,3,SEND_F,0,1
0,4,RECV_B,0,0
0,5,B,0,0
0,6,RECV_B,0,1
0,7,B,0,1
1,3,F,1,1
1,0,RECV_F,1,0
1,1,F,1,0
1,2,RECV_F,1,1
1,4,B,1,0
1,5,SEND_B,1,0
1,6,B,1,1
1,7,SEND_B,1,1
)";
  ScheduleProblem error;
  auto s = readCsv(csv, &error);
  ASSERT_TRUE(s) << error.message;
  EXPECT_EQ(s->pp, 2);
  EXPECT_EQ(s->vpp, 1);
  EXPECT_EQ(s->microbatches, 2);
  auto problems = validateSchedule(*s);
  EXPECT_TRUE(problems.empty()) << describe(problems);
  auto sim = simulate(*s, ActionCosts{1, 2, 0, 0});
  ASSERT_TRUE(sim);
  // GPipe, p = 2, m = 2: (p - 1) / (m + p - 1) = 1/3.
  EXPECT_NEAR(sim->bubbleFraction, 1.0 / 3.0, 1e-9);
}

TEST(ScheduleTest, SimulatorTimeline) {
  auto s = make1F1B(2, 2);
  ASSERT_TRUE(s);
  auto sim = simulate(*s, ActionCosts{1, 2, 0, 0.5});
  ASSERT_TRUE(sim);
  // Rank 1's first F waits for rank 0's F (1) plus the transfer (0.5).
  const auto &r1 = sim->ranks[1].actions;
  ASSERT_EQ(r1[0].action.kind, ActionKind::RecvF);
  EXPECT_DOUBLE_EQ(r1[1].start, 1.5);
  EXPECT_DOUBLE_EQ(sim->ranks[0].busy, 6.0);
  EXPECT_DOUBLE_EQ(sim->ranks[0].idle, sim->makespan - 6.0);
}

// Uniform costs (B = 2 F for the full backward; F = B = W for ZB-H1).
TEST(ScheduleTest, BubbleFractionsMatchTheory) {
  for (int p : {4, 8})
    for (int m : {8, 32}) {
      double theory = double(p - 1) / (m + p - 1);
      ActionCosts full{1, 1, 1, 0}; // B = b + w = 2
      auto gpipe = simulate(*makeGPipe(p, m), full);
      auto f1b = simulate(*make1F1B(p, m), full);
      ASSERT_TRUE(gpipe && f1b);
      EXPECT_NEAR(gpipe->bubbleFraction, theory, 0.02) << p << " " << m;
      EXPECT_NEAR(f1b->bubbleFraction, theory, 0.02) << p << " " << m;
      for (int v : {2, 4}) {
        auto inter = simulate(*makeInterleaved1F1B(p, v, m), full);
        ASSERT_TRUE(inter);
        double theoryV = double(p - 1) / (v * m + p - 1);
        EXPECT_NEAR(inter->bubbleFraction, theoryV, 0.02)
            << "p=" << p << " v=" << v << " m=" << m;
      }
      auto zb = simulate(*makeZBH1(p, m), full);
      ASSERT_TRUE(zb);
      // ZB-H1: (p - 1) (F + B - W) of bubble against 1F1B's (p - 1)(F+B+W).
      double theoryZB = double(p - 1) / (3 * m + p - 1);
      EXPECT_NEAR(zb->bubbleFraction, theoryZB, 0.02) << p << " " << m;
      EXPECT_LT(zb->bubbleFraction, f1b->bubbleFraction / 2);
    }
}

// Per-stage costs replace the uniform ones: each stage's compute takes its
// own time, and a send arrives after its sender stage's transfer.
TEST(ScheduleTest, SimulatorPerStageCosts) {
  auto s = makeGPipe(2, 1);
  ASSERT_TRUE(s);
  ActionCosts costs;
  costs.perStage = {StageCosts{1, 1, 0, 0.5}, StageCosts{3, 2, 0, 0.25}};
  auto sim = simulate(*s, costs);
  ASSERT_TRUE(sim);
  // Rank 1: F from 1.5 (1 + 0.5) to 4.5, B to 6.5; rank 0's B waits for
  // the gradient until 6.75 and ends at 7.75.
  EXPECT_DOUBLE_EQ(sim->ranks[1].busy, 5.0);
  EXPECT_DOUBLE_EQ(sim->ranks[0].busy, 2.0);
  EXPECT_DOUBLE_EQ(sim->makespan, 7.75);
  EXPECT_DOUBLE_EQ(costs.of(1).f, 3.0);
  EXPECT_DOUBLE_EQ(costs.of(5).f, 1.0); // out of range: the uniform costs
}
