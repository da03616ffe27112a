//===- LossLogTest.cpp - The per-step CSV log -----------------------------===//

#include "loom/runtime/train/LossLog.h"

#include "TrainTestUtil.h"

#include <cmath>

using namespace loom::runtime;
using namespace loom::test;

namespace {

StepRecord record(int64_t step) {
  return {step, 2.5 / double(step), 3e-4, 1.25, 12345.67, 0.5 * double(step)};
}

TEST(LossLog, LinesKeepFloatPrecision) {
  EXPECT_EQ(lossCsvLine({12, 2.3456789123, 0.0003, 0.87654321, 12345.67, 1.5}),
            "12,2.345679,0.0003,0.8765432,12345.7,1.500\n");
  EXPECT_EQ(lossCsvLine({1, NAN, -NAN, INFINITY, -INFINITY, 0}),
            "1,nan,nan,inf,-inf,0.000\n");
  EXPECT_EQ(lossCsvLine({3, 1e-9, 1e20, 0, 0, 0}),
            "3,1e-09,1e+20,0,0.0,0.000\n");
}

TEST(LossLog, EachStepIsOnDiskAsItEnds) {
  TempDir dir;
  std::string path = dir / "loss.csv";
  LossCsvWriter log(path);
  EXPECT_EQ(readFile(path), std::string(kLossCsvHeader) + "\n");
  log.append(record(1));
  log.append(record(2));
  // No flush or close needed: the lines are already in the file.
  EXPECT_EQ(readFile(path), std::string(kLossCsvHeader) + "\n" +
                                lossCsvLine(record(1)) +
                                lossCsvLine(record(2)));
  std::vector<StepRecord> back = readLossCsv(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].step, 2);
  EXPECT_FLOAT_EQ(back[1].loss, 1.25);
  EXPECT_FLOAT_EQ(back[1].tokensPerS, 12345.7);
  EXPECT_EQ(log.records().size(), 2u);
}

TEST(LossLog, AResumedRunKeepsTheStepsItsCheckpointHolds) {
  TempDir dir;
  std::string path = dir / "loss.csv";
  {
    LossCsvWriter log(path);
    for (int s = 1; s <= 5; ++s)
      log.append(record(s));
  }
  // A crash in the middle of the line of step 6.
  std::string text = readFile(path) + "6,1.2";
  writeFile(path, text);
  EXPECT_EQ(readLossCsv(path).size(), 5u);
  LossCsvWriter resumed(path, /*resumeStep=*/3);
  EXPECT_EQ(resumed.records().size(), 3u);
  resumed.append(record(4));
  std::string want = std::string(kLossCsvHeader) + "\n";
  for (int s = 1; s <= 4; ++s)
    want += lossCsvLine(record(s));
  EXPECT_EQ(readFile(path), want);
  // Resuming without an old log starts a new one.
  LossCsvWriter fresh(dir / "new.csv", 3);
  EXPECT_EQ(readFile(dir / "new.csv"), std::string(kLossCsvHeader) + "\n");
  // A new run (no resume) replaces an old log.
  LossCsvWriter again(path);
  EXPECT_EQ(readFile(path), std::string(kLossCsvHeader) + "\n");
}

TEST(LossLog, DamagedLogsAreNamedWithTheLine) {
  TempDir dir;
  std::string path = dir / "loss.csv", header = std::string(kLossCsvHeader);
  auto error = [&](const std::string &text) {
    writeFile(path, text);
    return errorOf([&] { readLossCsv(path); });
  };
  EXPECT_EQ(error(""), path + ":1: expected the header " + header);
  EXPECT_EQ(error("step,loss\n"), path + ":1: expected the header " + header);
  EXPECT_EQ(error(header + "\n1,2,3\n"),
            path + ":2: expected 6 fields, found 3");
  EXPECT_EQ(error(header + "\nx,1,1,1,1,1\n"),
            path + ":2: the step \"x\" is not an integer");
  EXPECT_EQ(error(header + "\n1,1,1,,1,1\n"),
            path + ":2: field 4 \"\" is not a number");
  EXPECT_EQ(error(header + "\n2,1,1,1,1,1\n2,1,1,1,1,1\n"),
            path + ":3: step 2 follows step 2");
  EXPECT_EQ(errorOf([&] { readLossCsv(dir / "none.csv"); }),
            dir / "none.csv: cannot open: No such file or directory");
  EXPECT_EQ(errorOf([&] {
              LossCsvWriter(dir / "no/dir.csv");
            }).rfind(dir / "no/dir.csv: ", 0),
            0u);
}

} // namespace
