//===- BatchSamplerTest.cpp - Windows, epochs and resuming ----------------===//

#include "loom/runtime/train/BatchSampler.h"

#include "TrainTestUtil.h"

using namespace loom::runtime;
using namespace loom::test;

namespace {

std::vector<int32_t> values(const HostTensor &t) {
  return std::vector<int32_t>(t.as<int32_t>(), t.as<int32_t>() + t.numel());
}

std::vector<int32_t> ids(const std::string &text) {
  return std::vector<int32_t>(text.begin(), text.end());
}

TEST(BatchSampler, WindowsShareOneTokenAndWrapAround) {
  TempDir dir;
  writeFile(dir / "t.txt", "abcdefghij"); // 10 tokens: 3 windows of 3 + 1
  auto source = openByteTokens(dir / "t.txt");
  BatchSampler sampler(*source, /*rows=*/2, /*seq=*/3, /*vocab=*/256);
  EXPECT_EQ(sampler.windowsPerEpoch(), 3);

  Batch first = sampler.next();
  EXPECT_EQ(first.tokens.dtype, DType::I32);
  EXPECT_EQ(first.tokens.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(values(first.tokens), ids("abcdef"));
  EXPECT_EQ(values(first.targets), ids("bcdefg"));
  EXPECT_EQ(sampler.position(), 2);
  EXPECT_EQ(sampler.epoch(), 0);

  // Window 2, then window 0 of the next epoch.
  Batch second = sampler.next();
  EXPECT_EQ(values(second.tokens), ids("ghiabc"));
  EXPECT_EQ(values(second.targets), ids("hijbcd"));
  EXPECT_EQ(sampler.position(), 4);
  EXPECT_EQ(sampler.epoch(), 1);
}

TEST(BatchSampler, ARestoredPositionResumesOnTheNextBatch) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 1000; ++i)
    text += char('a' + (i * 7 + i / 26) % 26);
  writeFile(dir / "t.txt", text);
  auto source = openByteTokens(dir / "t.txt");
  BatchSampler run(*source, 4, 16, 256);
  std::vector<Batch> batches;
  for (int i = 0; i < 40; ++i) // several epochs: 62 windows each
    batches.push_back(run.next());
  for (int saved : {0, 1, 15, 16, 33}) {
    BatchSampler resumed(*source, 4, 16, 256);
    resumed.setPosition(saved * 4);
    for (int i = saved; i < 40; ++i) {
      Batch b = resumed.next();
      ASSERT_EQ(values(b.tokens), values(batches[i].tokens)) << i;
      ASSERT_EQ(values(b.targets), values(batches[i].targets)) << i;
    }
  }
  // Far past the data the arithmetic stays exact.
  BatchSampler far(*source, 4, 16, 256);
  int64_t w = far.windowsPerEpoch();
  far.setPosition(w * (int64_t(1) << 50) + 5 * 4);
  EXPECT_EQ(values(far.next().tokens), values(batches[5].tokens));
  far.setPosition(INT64_MAX - 2);
  EXPECT_NE(errorOf([&] { far.next(); }), "");
  EXPECT_EQ(errorOf([&] { far.setPosition(-1); }),
            "batch sampler: data position -1 is negative");
}

TEST(BatchSampler, DataShorterThanOneWindowIsNamed) {
  TempDir dir;
  writeFile(dir / "t.txt", "abc");
  auto source = openByteTokens(dir / "t.txt");
  EXPECT_EQ(errorOf([&] { BatchSampler(*source, 1, 3, 256); }),
            dir / "t.txt: 3 tokens are fewer than one window of 4 (sequence "
                  "length 3 + 1 for the target)");
  BatchSampler exact(*source, 2, 2, 256); // one window: every row the same
  EXPECT_EQ(values(exact.next().tokens), ids("abab"));
  EXPECT_EQ(errorOf([&] { BatchSampler(*source, 0, 2, 256); }),
            "batch sampler: rows, sequence length and vocabulary must be >= 1 "
            "(got 0, 2, 256)");
}

TEST(BatchSampler, TokensOutsideTheVocabularyAreNamedWithTheirPosition) {
  TempDir dir;
  writeFile(dir / "t.txt", "aaaaaaazaaa");
  auto source = openByteTokens(dir / "t.txt");
  BatchSampler sampler(*source, 1, 3, 'z');
  sampler.next(); // tokens 0..3
  sampler.next(); // tokens 3..6
  EXPECT_EQ(errorOf([&] { sampler.next(); }),
            dir / "t.txt: token 122 at position 7 is outside the model's "
                  "vocabulary [0, 122)");
}

TEST(BatchSampler, MicroBatchesAreConsecutiveRows) {
  TempDir dir;
  writeFile(dir / "t.txt", "abcdefghijklmnopq");
  auto source = openByteTokens(dir / "t.txt");
  BatchSampler sampler(*source, 4, 2, 256);
  Batch batch = sampler.next();
  Batch second = microBatch(batch, 1, 2);
  EXPECT_EQ(second.tokens.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(values(second.tokens), ids("efgh"));
  EXPECT_EQ(values(second.targets), ids("fghi"));
  EXPECT_EQ(values(microBatch(batch, 3, 4).tokens), ids("gh"));
  EXPECT_EQ(errorOf([&] { microBatch(batch, 0, 3); }),
            "micro-batch 0 of 3: the global batch's 4 rows do not split into "
            "3 equal micro-batches");
  EXPECT_NE(errorOf([&] { microBatch(batch, 2, 2); }), "");
}

} // namespace
