//===- TokenSourceTest.cpp - Byte tokens and the choice of format ---------===//

#include "loom/runtime/train/TokenSource.h"

#include "TrainTestUtil.h"

#include <sys/stat.h>

using namespace loom::runtime;
using namespace loom::test;

namespace {

std::vector<int32_t> readAll(const TokenSource &source) {
  std::vector<int32_t> out(static_cast<size_t>(source.size()));
  source.read(0, source.size(), out.data());
  return out;
}

TEST(ByteTokens, EveryByteIsAToken) {
  TempDir dir;
  writeFile(dir / "t.txt", std::string("hi\n\0\xff", 5));
  auto source = openTokenSource(dir / "t.txt");
  EXPECT_EQ(source->kind(), "bytes");
  EXPECT_EQ(source->path(), dir / "t.txt");
  EXPECT_EQ(source->size(), 5);
  EXPECT_EQ(source->vocabHint(), 256);
  EXPECT_EQ(readAll(*source), (std::vector<int32_t>{'h', 'i', '\n', 0, 255}));
  std::vector<int32_t> two(2);
  source->read(3, 2, two.data());
  EXPECT_EQ(two, (std::vector<int32_t>{0, 255}));
  source->read(5, 0, two.data()); // an empty range at the end is fine
}

TEST(ByteTokens, RangesOutsideTheFileAreRefused) {
  TempDir dir;
  writeFile(dir / "t.txt", "abcdef");
  auto source = openByteTokens(dir / "t.txt");
  std::vector<int32_t> out(8);
  std::string prefix = dir / "t.txt: ";
  EXPECT_EQ(errorOf([&] { source->read(4, 3, out.data()); }),
            prefix +
                "3 tokens at position 4 are outside the 6 tokens it holds");
  EXPECT_EQ(errorOf([&] { source->read(-1, 1, out.data()); }),
            prefix + "1 tokens at position -1 are outside the 6 tokens it "
                     "holds");
  EXPECT_EQ(errorOf([&] { source->read(1, -1, out.data()); }),
            prefix + "-1 tokens at position 1 are outside the 6 tokens it "
                     "holds");
  EXPECT_NE(errorOf([&] { source->read(INT64_MAX, 2, out.data()); }), "");
}

TEST(ByteTokens, FilesThatCannotBeReadAreNamed) {
  TempDir dir;
  EXPECT_EQ(errorOf([&] { openTokenSource(dir / "none.txt"); }),
            dir / "none.txt: No such file or directory");
  EXPECT_EQ(errorOf([&] { openTokenSource(dir.path()); }),
            dir.path() + ": not a regular file");
  writeFile(dir / "empty.txt", "");
  EXPECT_EQ(openTokenSource(dir / "empty.txt")->size(), 0);
}

TEST(TokenSource, MegatronDatasetsAreRecognizedByTheirFiles) {
  TempDir dir;
  MegatronWriter w(IndexedDtype::UInt16);
  w.addItem({1, 2, 300});
  w.endDocument();
  w.finalize(dir / "corpus_text_document");
  for (const char *name : {"corpus_text_document", "corpus_text_document.idx",
                           "corpus_text_document.bin"}) {
    auto source = openTokenSource(dir / name);
    EXPECT_EQ(source->kind(), "megatron uint16") << name;
    EXPECT_EQ(source->path(), dir / "corpus_text_document");
    EXPECT_EQ(readAll(*source), (std::vector<int32_t>{1, 2, 300}));
  }
  // A .bin without its .idx is not read as bytes.
  writeFile(dir / "lonely.bin", "abcd");
  EXPECT_EQ(errorOf([&] { openTokenSource(dir / "lonely.bin"); }),
            dir / "lonely.idx: No such file or directory");
}

TEST(DefaultDataSet, IsTheKingJamesBibleAsText) {
  struct stat st;
  if (::stat(LOOM_DEFAULT_DATA, &st) != 0)
    GTEST_SKIP() << LOOM_DEFAULT_DATA << " is missing (scripts/setup.sh)";
  auto source = openTokenSource(LOOM_DEFAULT_DATA);
  EXPECT_EQ(source->kind(), "bytes");
  EXPECT_EQ(source->size(), 4137850);
  std::string start =
      "In the beginning God created the heaven and the earth.\n";
  std::vector<int32_t> head(start.size());
  source->read(0, int64_t(head.size()), head.data());
  EXPECT_EQ(head, std::vector<int32_t>(start.begin(), start.end()));
  std::string end = "Amen.\n";
  std::vector<int32_t> tail(end.size());
  source->read(source->size() - int64_t(end.size()), int64_t(end.size()),
               tail.data());
  EXPECT_EQ(tail, std::vector<int32_t>(end.begin(), end.end()));
}

} // namespace
