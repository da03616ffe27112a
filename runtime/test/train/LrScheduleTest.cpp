//===- LrScheduleTest.cpp - Warm-up and cosine decay ----------------------===//

#include "loom/runtime/train/LrSchedule.h"

#include "TrainTestUtil.h"

#include <cmath>

using namespace loom::runtime;
using namespace loom::test;

namespace {

TEST(LrSchedule, WarmsUpLinearlyThenDecaysAlongACosine) {
  // lr 1, min 0.1, 4 warm-up steps, 12 steps: 8 decay steps.
  LrSchedule s{1.0, 0.1, 4, -1, 12};
  EXPECT_DOUBLE_EQ(learningRate(s, 1), 0.25);
  EXPECT_DOUBLE_EQ(learningRate(s, 2), 0.5);
  EXPECT_DOUBLE_EQ(learningRate(s, 4), 1.0);
  // Step 5: 1/8 of the decay; cos(pi/8) = 0.92387953251128674.
  EXPECT_NEAR(learningRate(s, 5), 0.1 + 0.9 * 0.5 * (1 + 0.92387953251128674),
              1e-15);
  EXPECT_NEAR(learningRate(s, 5), 0.96574578963, 1e-11);
  // Half-way: cos(pi/2) = 0, so the mean of lr and min lr.
  EXPECT_NEAR(learningRate(s, 8), 0.55, 1e-15);
  // Step 10: 3/4; cos(3pi/4) = -0.70710678118654752.
  EXPECT_NEAR(learningRate(s, 10), 0.1 + 0.9 * 0.5 * (1 - 0.70710678118654752),
              1e-15);
  EXPECT_DOUBLE_EQ(learningRate(s, 12), 0.1);
  EXPECT_DOUBLE_EQ(learningRate(s, 13), 0.1);
  EXPECT_DOUBLE_EQ(learningRate(s, INT64_MAX), 0.1);
}

TEST(LrSchedule, WithoutWarmUpTheFirstStepIsAlreadyDecaying) {
  LrSchedule s{3e-4, 0, 0, -1, 2};
  EXPECT_NEAR(learningRate(s, 1), 1.5e-4, 1e-18); // cos(pi/2) = 0
  EXPECT_DOUBLE_EQ(learningRate(s, 2), 0);
  LrSchedule one{3e-4, 0, 0, -1, 1};
  EXPECT_DOUBLE_EQ(learningRate(one, 1), 0);
}

TEST(LrSchedule, DecayStepsMayBeGiven) {
  LrSchedule s{1.0, 0.1, 2, 2, 100};
  EXPECT_DOUBLE_EQ(learningRate(s, 2), 1.0);
  EXPECT_NEAR(learningRate(s, 3), 0.55, 1e-15);
  EXPECT_DOUBLE_EQ(learningRate(s, 4), 0.1);
  EXPECT_DOUBLE_EQ(learningRate(s, 50), 0.1);
  // Warm-up over the whole run: no decay step at all.
  LrSchedule flat{2.0, 0, 4, -1, 4};
  EXPECT_DOUBLE_EQ(learningRate(flat, 4), 2.0);
  EXPECT_DOUBLE_EQ(learningRate(flat, 5), 0);
}

TEST(LrSchedule, BadSchedulesAndStepsAreRefused) {
  EXPECT_EQ(lrScheduleProblem({1, 0.5, 0, -1, 10}), "");
  EXPECT_EQ(lrScheduleProblem({1, 2, 0, -1, 10}),
            "the learning rates must be finite with 0 <= min lr (2.000000) <= "
            "lr (1.000000)");
  EXPECT_NE(lrScheduleProblem({NAN, 0, 0, -1, 10}), "");
  EXPECT_NE(lrScheduleProblem({1, -1, 0, -1, 10}), "");
  EXPECT_EQ(lrScheduleProblem({1, 0, -1, -1, 10}),
            "warm-up steps -1 are negative");
  EXPECT_EQ(lrScheduleProblem({1, 0, 0, -1, 0}), "total steps 0 are < 1");
  EXPECT_EQ(lrScheduleProblem({1, 0, 0, -2, 10}),
            "decay steps -2 are negative");
  EXPECT_EQ(lrScheduleProblem({1, 0, 11, -1, 10}),
            "warm-up steps 11 exceed the total steps 10");
  EXPECT_EQ(lrScheduleProblem({1, 0, 11, 5, 10}), "");
  EXPECT_EQ(errorOf([] { learningRate({1, 0, 0, -1, 10}, 0); }),
            "learning-rate schedule: step 0 is not an update (steps count "
            "from 1)");
  EXPECT_EQ(errorOf([] { learningRate({1, 0, -1, -1, 10}, 1); }),
            "learning-rate schedule: warm-up steps -1 are negative");
}

} // namespace
