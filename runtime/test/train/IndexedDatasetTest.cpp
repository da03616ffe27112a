//===- IndexedDatasetTest.cpp - Megatron's indexed dataset reader ---------===//

#include "loom/runtime/train/IndexedDataset.h"

#include "TrainTestUtil.h"

#include <cmath>
#include <limits>

using namespace loom::runtime;
using namespace loom::test;

namespace {

std::vector<int32_t> readAll(const TokenSource &source) {
  std::vector<int32_t> out(static_cast<size_t>(source.size()));
  source.read(0, source.size(), out.data());
  return out;
}

/// Three documents of four sequences (one empty) of `dtype`.
MegatronWriter sample(IndexedDtype dtype) {
  MegatronWriter w(dtype);
  w.addItem({0, 1, 2});
  w.endDocument();
  w.addItem({3});
  w.addItem({});
  w.addItem({4, 5, 6, 7, 127});
  w.endDocument();
  w.endDocument(); // an empty document, as the builder allows
  return w;
}

const std::vector<int32_t> kSampleTokens = {0, 1, 2, 3, 4, 5, 6, 7, 127};

TEST(IndexedDataset, ReadsEveryDtypeAsAStream) {
  struct Case {
    IndexedDtype dtype;
    const char *name;
    int64_t vocab;
  };
  for (Case c : {Case{IndexedDtype::UInt8, "uint8", 256},
                 Case{IndexedDtype::Int8, "int8", 128},
                 Case{IndexedDtype::Int16, "int16", 32768},
                 Case{IndexedDtype::Int32, "int32", 0},
                 Case{IndexedDtype::Int64, "int64", 0},
                 Case{IndexedDtype::Float64, "float64", 0},
                 Case{IndexedDtype::Float32, "float32", 0},
                 Case{IndexedDtype::UInt16, "uint16", 65536}}) {
    TempDir dir;
    sample(c.dtype).finalize(dir / "d");
    auto source = openIndexedDataset(dir / "d");
    EXPECT_EQ(source->kind(), std::string("megatron ") + c.name);
    EXPECT_EQ(source->vocabHint(), c.vocab) << c.name;
    EXPECT_EQ(source->size(), 9) << c.name;
    EXPECT_EQ(readAll(*source), kSampleTokens) << c.name;
    // A range across the empty sequence and two boundaries.
    std::vector<int32_t> part(4);
    source->read(2, 4, part.data());
    EXPECT_EQ(part, (std::vector<int32_t>{2, 3, 4, 5})) << c.name;
  }
}

TEST(IndexedDataset, SequencesMayLieAnywhereInTheBin) {
  // Pointers in reverse order with a gap: the stream still follows the
  // sequence order of the index.
  TempDir dir;
  std::string bin;
  for (int16_t t :
       {int16_t(7), int16_t(8), int16_t(-1), int16_t(5), int16_t(6)})
    MegatronWriter::put<int16_t>(bin, t);
  std::string idx(kIndexedDatasetMagic, 9);
  MegatronWriter::put<uint64_t>(idx, 1);
  MegatronWriter::put<uint8_t>(idx, 3); // int16
  MegatronWriter::put<uint64_t>(idx, 2);
  MegatronWriter::put<uint64_t>(idx, 2);
  MegatronWriter::put<int32_t>(idx, 2);
  MegatronWriter::put<int32_t>(idx, 2);
  MegatronWriter::put<int64_t>(idx, 6); // 5, 6
  MegatronWriter::put<int64_t>(idx, 0); // 7, 8
  MegatronWriter::put<int64_t>(idx, 0);
  MegatronWriter::put<int64_t>(idx, 2);
  writeFile(dir / "d.bin", bin);
  writeFile(dir / "d.idx", idx);
  auto source = openIndexedDataset(dir / "d");
  EXPECT_EQ(readAll(*source), (std::vector<int32_t>{5, 6, 7, 8}));
  std::vector<int32_t> middle(2);
  source->read(1, 2, middle.data());
  EXPECT_EQ(middle, (std::vector<int32_t>{6, 7}));
}

TEST(IndexedDataset, SequenceModesOfMultimodalDatasetsAreSkipped) {
  TempDir dir;
  MegatronWriter w = sample(IndexedDtype::Int32);
  w.finalize(dir / "d");
  writeFile(dir / "d.idx", w.indexBytes() + std::string(4, '\0'));
  EXPECT_EQ(readAll(*openIndexedDataset(dir / "d")), kSampleTokens);
}

/// Writes `w`'s .bin and `idx` as dataset `d` and returns what opening
/// (and reading all of) it throws.
std::string openError(const TempDir &dir, const MegatronWriter &w,
                      const std::string &idx) {
  writeFile(dir / "d.bin", w.binBytes());
  writeFile(dir / "d.idx", idx);
  return errorOf([&] { readAll(*openIndexedDataset(dir / "d")); });
}

template <typename T> void poke(std::string &bytes, size_t at, T v) {
  std::memcpy(bytes.data() + at, &v, sizeof(T));
}

TEST(IndexedDataset, MalformedHeadersAreNamed) {
  TempDir dir;
  MegatronWriter w = sample(IndexedDtype::UInt16);
  std::string good = w.indexBytes(), idxPath = dir / "d.idx: ";
  EXPECT_EQ(openError(dir, w, good), "");

  std::string bad = good;
  bad[0] = 'X';
  EXPECT_EQ(openError(dir, w, bad),
            idxPath + "not a Megatron indexed dataset index (it does not "
                      "start with the magic \"MMIDIDX\\0\\0\")");
  bad = good;
  poke<uint64_t>(bad, 9, 2);
  EXPECT_EQ(openError(dir, w, bad),
            idxPath + "index version 2 is not supported (this reader knows "
                      "version 1)");
  for (uint8_t code : {0, 9, 255}) {
    bad = good;
    bad[17] = char(code);
    EXPECT_EQ(openError(dir, w, bad),
              idxPath + "unknown dtype code " + std::to_string(code) +
                  " (Megatron's codes are 1 uint8, 2 int8, 3 int16, 4 "
                  "int32, 5 int64, 6 float64, 7 float32, 8 uint16)");
  }
  EXPECT_EQ(openError(dir, w, good.substr(0, 20)),
            idxPath + "truncated header: 20 bytes, the header alone takes 34");
}

TEST(IndexedDataset, EveryTruncationIsRefused) {
  TempDir dir;
  MegatronWriter w = sample(IndexedDtype::Int32);
  std::string good = w.indexBytes();
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_NE(openError(dir, w, good.substr(0, n)), "") << n << " bytes";
  EXPECT_EQ(openError(dir, w, good.substr(0, good.size() - 8)),
            dir / "d.idx: truncated: 4 sequences and 4 document indices need "
                  "114 bytes, the file has 106");
  EXPECT_EQ(openError(dir, w, good + "xy"),
            dir / "d.idx: 4 sequences and 4 document indices need 114 bytes "
                  "(118 with sequence modes), the file has 116");
}

TEST(IndexedDataset, CountsThatOverflowAreRefused) {
  TempDir dir;
  MegatronWriter w = sample(IndexedDtype::Int32);
  std::string good = w.indexBytes();
  for (uint64_t count : {uint64_t(1) << 62, uint64_t(1) << 61, ~uint64_t(0),
                         uint64_t(INT64_MAX) / 8}) {
    std::string bad = good;
    poke<uint64_t>(bad, 18, count);
    std::string seq = openError(dir, w, bad);
    bad = good;
    poke<uint64_t>(bad, 26, count);
    std::string doc = openError(dir, w, bad);
    EXPECT_NE(seq, "") << count;
    EXPECT_NE(doc, "") << count;
  }
  std::string bad = good;
  poke<uint64_t>(bad, 18, uint64_t(1) << 62);
  EXPECT_EQ(openError(dir, w, bad),
            dir / "d.idx: its counts of 4611686018427387904 sequences and 4 "
                  "document indices overflow any file size");
}

TEST(IndexedDataset, SequencesOutsideTheBinAreRefused) {
  TempDir dir;
  MegatronWriter w = sample(IndexedDtype::UInt16);
  std::string good = w.indexBytes();
  size_t lengths = 34, pointers = 34 + 4 * 4;
  std::string bad = good;
  poke<int64_t>(bad, pointers + 8 * 3, 10); // 5 tokens of 2 bytes at 10: 20
  EXPECT_EQ(openError(dir, w, bad),
            dir / "d.idx: sequence 3 (5 tokens of 2 bytes at byte 10) lies "
                  "outside " +
                (dir / "d.bin") + " (18 bytes)");
  bad = good;
  poke<int64_t>(bad, pointers, -2);
  EXPECT_EQ(openError(dir, w, bad),
            dir / "d.idx: sequence 0 (3 tokens of 2 bytes at byte -2) lies "
                  "outside " +
                (dir / "d.bin") + " (18 bytes)");
  bad = good;
  poke<int64_t>(bad, pointers, INT64_MAX);
  EXPECT_NE(openError(dir, w, bad), "");
  bad = good;
  poke<int32_t>(bad, lengths + 4, -1);
  EXPECT_EQ(openError(dir, w, bad),
            dir / "d.idx: sequence 1 has a negative length -1");
  bad = good;
  poke<int32_t>(bad, lengths + 12, INT32_MAX);
  EXPECT_NE(openError(dir, w, bad), "");
  // A .bin cut short.
  writeFile(dir / "d.idx", good);
  writeFile(dir / "d.bin", w.binBytes().substr(0, 17));
  EXPECT_NE(errorOf([&] { openIndexedDataset(dir / "d"); }), "");
  std::filesystem::remove(dir / "d.bin");
  EXPECT_EQ(errorOf([&] { openIndexedDataset(dir / "d"); }),
            dir / "d.bin: No such file or directory");
}

TEST(IndexedDataset, DocumentIndicesAreChecked) {
  TempDir dir;
  MegatronWriter w = sample(IndexedDtype::UInt8);
  std::string good = w.indexBytes();
  size_t docs = 34 + 4 * 4 + 8 * 4;
  std::string rule = ": document indices start at 0 and never decrease or "
                     "exceed the 4 sequences";
  std::string bad = good;
  poke<int64_t>(bad, docs, 1);
  EXPECT_EQ(openError(dir, w, bad),
            dir / "d.idx: document index 0 is 1" + rule);
  bad = good;
  poke<int64_t>(bad, docs + 16, 0);
  EXPECT_EQ(openError(dir, w, bad),
            dir / "d.idx: document index 2 is 0" + rule);
  bad = good;
  poke<int64_t>(bad, docs + 24, 5);
  EXPECT_EQ(openError(dir, w, bad),
            dir / "d.idx: document index 3 is 5" + rule);
  MegatronWriter none(IndexedDtype::UInt8);
  std::string noDocs = none.indexBytes();
  poke<uint64_t>(noDocs, 26, 0);
  noDocs.resize(34);
  EXPECT_EQ(openError(dir, none, noDocs),
            dir / "d.idx: no document indices (Megatron's writer always "
                  "writes the leading 0)");
}

TEST(IndexedDataset, TokensThatAreNotIdsAreNamedWithTheirPosition) {
  struct Case {
    IndexedDtype dtype;
    double value;
    const char *shown;
  };
  double nan = std::numeric_limits<double>::quiet_NaN();
  for (Case c :
       {Case{IndexedDtype::Int8, -1, "-1"}, Case{IndexedDtype::Int32, -5, "-5"},
        Case{IndexedDtype::Int64, 2147483648.0, "2147483648"},
        Case{IndexedDtype::Float32, 1.5, "1.500000"},
        Case{IndexedDtype::Float64, nan, "nan"},
        Case{IndexedDtype::Float64, -0.5, "-0.500000"}}) {
    TempDir dir;
    MegatronWriter w(c.dtype);
    w.addItem({1, 2});
    w.addItem({3, c.value, 4});
    w.endDocument();
    w.finalize(dir / "d");
    auto source = openIndexedDataset(dir / "d"); // opening reads no tokens
    std::vector<int32_t> out(5);
    source->read(0, 3, out.data());
    EXPECT_EQ(errorOf([&] { source->read(1, 4, out.data()); }),
              dir / "d.bin: the token at position 3 of the stream is " +
                  c.shown +
                  ", not a token id (ids are whole numbers in [0, 2^31))");
  }
}

/// Megatron's own writer lines (indexed_dataset.py, _IndexWriter and
/// IndexedDatasetBuilder.add_item/end_document) with NumPy; torch is not
/// needed for them.
const char *kMegatronWriter = R"PY(
import struct, sys, numpy
prefix = sys.argv[1]
dtype = numpy.uint16
items = [[5, 6, 7], [8], [], [65535, 0]]
sequence_lengths, document_indices = [], [0]
with open(prefix + ".bin", "wb") as data_file:
    for i, tokens in enumerate(items):
        np_array = numpy.array(tokens, dtype=dtype)
        data_file.write(np_array.tobytes(order="C"))
        sequence_lengths.append(np_array.size)
        if i in (0, 3):
            document_indices.append(len(sequence_lengths))
itemsize = numpy.int64(numpy.dtype(dtype).itemsize)
curr_ptr = numpy.int64(0)
sequence_pointers = []
for length in sequence_lengths:
    sequence_pointers.append(curr_ptr.item())
    curr_ptr += length * itemsize
with open(prefix + ".idx", "wb") as idx_writer:
    idx_writer.write(b"MMIDIDX\x00\x00")
    idx_writer.write(struct.pack("<Q", 1))
    idx_writer.write(struct.pack("<B", 8))
    idx_writer.write(struct.pack("<Q", len(sequence_lengths)))
    idx_writer.write(struct.pack("<Q", len(document_indices)))
    idx_writer.write(numpy.array(sequence_lengths, dtype=numpy.int32).tobytes(order="C"))
    idx_writer.write(numpy.array(sequence_pointers, dtype=numpy.int64).tobytes(order="C"))
    idx_writer.write(numpy.array(document_indices, dtype=numpy.int64).tobytes(order="C"))
)PY";

TEST(IndexedDataset, ReadsWhatMegatronsWriterWrites) {
  if (std::system(
          (std::string(kPython) + " -c 'import numpy' 2>/dev/null").c_str()) !=
      0)
    GTEST_SKIP() << kPython << " with NumPy is not installed";
  TempDir dir;
  writeFile(dir / "writer.py", kMegatronWriter);
  ASSERT_EQ(std::system((std::string(kPython) + " " + (dir / "writer.py") +
                         " " + (dir / "megatron"))
                            .c_str()),
            0);
  auto source = openIndexedDataset(dir / "megatron");
  EXPECT_EQ(readAll(*source), (std::vector<int32_t>{5, 6, 7, 8, 65535, 0}));
  // The test's writer writes the same bytes.
  MegatronWriter w(IndexedDtype::UInt16);
  w.addItem({5, 6, 7});
  w.endDocument();
  w.addItem({8});
  w.addItem({});
  w.addItem({65535, 0});
  w.endDocument();
  EXPECT_EQ(w.indexBytes(), readFile(dir / "megatron.idx"));
  EXPECT_EQ(w.binBytes(), readFile(dir / "megatron.bin"));
}

} // namespace
