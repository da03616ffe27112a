//===- ProgressTest.cpp - The progress bar and plain progress lines -------===//

#include "loom/runtime/train/Progress.h"

#include "TrainTestUtil.h"

#include <algorithm>
#include <cmath>

using namespace loom::runtime;
using namespace loom::test;

namespace {

TEST(Progress, DurationsForPeople) {
  struct Case {
    double seconds;
    const char *text;
  };
  for (Case c :
       {Case{0, "0s"}, Case{7.4, "7s"}, Case{59.4, "59s"}, Case{59.6, "1m00s"},
        Case{83, "1m23s"}, Case{3599.4, "59m59s"}, Case{3599.6, "1h00m"},
        Case{7500, "2h05m"}, Case{86399, "1d00h"}, Case{273600, "3d04h"},
        Case{1e12, ">9999d"}, Case{-1, "?"}, Case{NAN, "?"},
        Case{INFINITY, "?"}})
    EXPECT_EQ(formatDuration(c.seconds), c.text) << c.seconds;
}

TEST(Progress, RatesInThreeFigures) {
  struct Case {
    double rate;
    const char *text;
  };
  for (Case c : {Case{0, "0"}, Case{950.2, "950"}, Case{999.6, "1.00k"},
                 Case{1234, "1.23k"}, Case{12345, "12.3k"},
                 Case{123456, "123k"}, Case{4.56e6, "4.56M"},
                 Case{1.234e9, "1.23G"}, Case{-1, "?"}, Case{NAN, "?"}})
    EXPECT_EQ(formatRate(c.rate), c.text) << c.rate;
}

TEST(Progress, PlainLinesEveryRoundNumberOfSteps) {
  EXPECT_EQ(defaultProgressEvery(10), 1);
  EXPECT_EQ(defaultProgressEvery(100), 5);
  EXPECT_EQ(defaultProgressEvery(1000), 50);
  EXPECT_EQ(defaultProgressEvery(3000), 200);
  EXPECT_EQ(defaultProgressEvery(INT64_MAX) > 0, true);

  std::ostringstream out;
  ProgressDisplay progress(out, /*terminal=*/false, 100);
  for (int64_t s = 1; s <= 100; ++s)
    progress.update(
        {s, 3.0 - 0.01 * double(s), 3e-4, 1, 12345, 0.5 * double(s)});
  progress.finish();
  std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 21); // 1, 5, ..., 100
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "step 1/100 loss 2.9900 lr 3.00e-04 tokens/s 12345 eta 50s");
  EXPECT_NE(text.find("\nstep 50/100 loss 2.5000 lr 3.00e-04 tokens/s 12345 "
                      "eta 25s\n"),
            std::string::npos);
  EXPECT_EQ(text.substr(text.rfind("step ")),
            "step 100/100 loss 2.0000 lr 3.00e-04 tokens/s 12345 elapsed "
            "50s\n");
}

TEST(Progress, ARunStoppedEarlyEndsWithItsLastStep) {
  std::ostringstream out;
  ProgressDisplay progress(out, false, 1000, /*firstStep=*/500, /*every=*/100);
  progress.update({501, 1, 1e-3, 1, 10, 2});
  progress.update({502, 1, 1e-3, 1, 10, 4}); // not a line of its own
  progress.print("checkpoint saved");
  progress.finish();
  EXPECT_EQ(out.str(),
            "step 501/1000 loss 1.0000 lr 1.00e-03 tokens/s 10 eta 16m38s\n"
            "checkpoint saved\n"
            "step 502/1000 loss 1.0000 lr 1.00e-03 tokens/s 10 elapsed 4s\n");
}

TEST(Progress, ATerminalLineIsRedrawnAtMostTenTimesASecond) {
  std::ostringstream out;
  ProgressDisplay progress(out, /*terminal=*/true, 200);
  // 200 steps of 10 ms: 2 s, about 20 redraws.
  for (int64_t s = 1; s <= 200; ++s)
    progress.update({s, 2.5, 3e-4, 1, 12345, 0.01 * double(s)});
  progress.finish();
  std::string text = out.str();
  long redraws = std::count(text.begin(), text.end(), '\r');
  EXPECT_GE(redraws, 19);
  EXPECT_LE(redraws, 21);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  EXPECT_EQ(text.substr(0, text.find("\x1b[K")),
            "\r  1/200 [--------------------]   0% loss 2.5000 | 12.3k tok/s | "
            "0s<2s");
  EXPECT_EQ(text.substr(text.rfind('\r')),
            "\r200/200 [####################] 100% loss 2.5000 | 12.3k tok/s | "
            "2s<0s\x1b[K\n");
  for (size_t at = 0; (at = text.find('\r', at)) != std::string::npos; ++at)
    EXPECT_LE(text.find("\x1b[K", at) - at, 80u) << "lines fit 80 columns";
}

TEST(Progress, MessagesOnATerminalGoAboveTheBar) {
  std::ostringstream out;
  ProgressDisplay progress(out, true, 10);
  progress.print("starting");
  progress.update({1, 2, 1e-3, 1, 100, 1});
  progress.print("saved checkpoint 1");
  progress.finish();
  EXPECT_EQ(out.str(),
            "starting\n"
            "\r 1/10 [##------------------]  10% loss 2.0000 | 100 tok/s | "
            "1s<9s\x1b[K"
            "\r\x1b[Ksaved checkpoint 1\n"
            " 1/10 [##------------------]  10% loss 2.0000 | 100 tok/s | "
            "1s<9s\x1b[K\n");
}

TEST(Progress, TheEstimateCountsOnlyTheStepsOfThisRun) {
  std::ostringstream out;
  ProgressDisplay progress(out, false, 300, /*firstStep=*/100);
  EXPECT_DOUBLE_EQ(progress.eta({150, 0, 0, 0, 0, 10}), 30); // 0.2 s a step
  EXPECT_EQ(progress.eta({100, 0, 0, 0, 0, 0}), -1);
  EXPECT_EQ(isTerminal(-1), false);
}

} // namespace
