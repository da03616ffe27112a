//===- TrainTestUtil.h - Files and datasets for loom_train tests -*- C++
//-*-===//

#ifndef LOOM_RUNTIME_TEST_TRAIN_TRAINTESTUTIL_H
#define LOOM_RUNTIME_TEST_TRAIN_TRAINTESTUTIL_H

#include "loom/runtime/train/IndexedDataset.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace loom::test {

/// Debian's Python, to which scripts/setup.sh adds NumPy (as lit's
/// %python): not whichever python3 comes first on the PATH.
inline constexpr const char *kPython = "/usr/bin/python3";

/// A directory removed with everything in it at the end of the test.
class TempDir {
public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "loom-train-XXXXXX").string();
    if (!::mkdtemp(pattern.data()))
      ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string &path() const { return path_; }
  std::string operator/(const std::string &name) const {
    return path_ + "/" + name;
  }

private:
  std::string path_;
};

inline void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The message of what `fn` throws, or "" if nothing.
template <typename Fn> std::string errorOf(Fn fn) {
  try {
    fn();
  } catch (const std::exception &e) {
    return e.what();
  }
  return "";
}

/// Writes a Megatron indexed dataset as megatron/core/datasets/
/// indexed_dataset.py's IndexedDatasetBuilder and _IndexWriter do: tokens
/// of each item appended to .bin in the dataset's dtype, the document
/// indices starting with 0, and the .idx laid out as the header, int32
/// lengths, int64 byte pointers (running sums of length * itemsize) and
/// int64 document indices.
class MegatronWriter {
public:
  explicit MegatronWriter(runtime::IndexedDtype dtype) : dtype_(dtype) {}

  /// IndexedDatasetBuilder.add_item: one sequence.
  void addItem(const std::vector<double> &tokens) {
    for (double t : tokens)
      appendToken(t);
    lengths_.push_back(static_cast<int32_t>(tokens.size()));
  }
  /// IndexedDatasetBuilder.end_document.
  void endDocument() { documents_.push_back(int64_t(lengths_.size())); }

  const std::string &binBytes() const { return bin_; }
  /// _IndexWriter: header, then write(sequence_lengths, None,
  /// document_indices).
  std::string indexBytes() const {
    std::string idx(runtime::kIndexedDatasetMagic, 9);
    put<uint64_t>(idx, 1);
    put<uint8_t>(idx, static_cast<uint8_t>(dtype_));
    put<uint64_t>(idx, lengths_.size());
    put<uint64_t>(idx, documents_.size());
    for (int32_t l : lengths_)
      put<int32_t>(idx, l);
    int64_t pointer = 0;
    for (int32_t l : lengths_) {
      put<int64_t>(idx, pointer);
      pointer += l * runtime::indexedDtypeSize(dtype_);
    }
    for (int64_t d : documents_)
      put<int64_t>(idx, d);
    return idx;
  }
  /// IndexedDatasetBuilder.finalize: PREFIX.bin and PREFIX.idx.
  void finalize(const std::string &prefix) const {
    writeFile(prefix + ".bin", bin_);
    writeFile(prefix + ".idx", indexBytes());
  }

  template <typename T> static void put(std::string &out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
  }

private:
  void appendToken(double t) {
    using runtime::IndexedDtype;
    switch (dtype_) {
    case IndexedDtype::UInt8:
      return put<uint8_t>(bin_, static_cast<uint8_t>(t));
    case IndexedDtype::Int8:
      return put<int8_t>(bin_, static_cast<int8_t>(t));
    case IndexedDtype::Int16:
      return put<int16_t>(bin_, static_cast<int16_t>(t));
    case IndexedDtype::Int32:
      return put<int32_t>(bin_, static_cast<int32_t>(t));
    case IndexedDtype::Int64:
      return put<int64_t>(bin_, static_cast<int64_t>(t));
    case IndexedDtype::Float64:
      return put<double>(bin_, t);
    case IndexedDtype::Float32:
      return put<float>(bin_, static_cast<float>(t));
    case IndexedDtype::UInt16:
      return put<uint16_t>(bin_, static_cast<uint16_t>(t));
    }
  }

  runtime::IndexedDtype dtype_;
  std::string bin_;
  std::vector<int32_t> lengths_;
  std::vector<int64_t> documents_{0};
};

} // namespace loom::test

#endif // LOOM_RUNTIME_TEST_TRAIN_TRAINTESTUTIL_H
