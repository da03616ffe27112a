//===- IndexedDataset.cpp - Megatron-LM's indexed dataset reader ----------===//

#include "loom/runtime/train/IndexedDataset.h"

#include "MappedFile.h"
#include "loom/runtime/CheckedMath.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

using namespace loom::runtime;

namespace {

constexpr int64_t kMagicSize = 9;
/// magic, version u64, dtype code u8, sequence count u64, document count u64.
constexpr int64_t kHeaderSize = kMagicSize + 8 + 1 + 8 + 8;

template <typename T> T load(const uint8_t *p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

/// Token ids in .bin as int32, each checked: non-negative, integral and
/// within int32 (Megatron stores ids in any of its dtypes, floats included).
template <typename T>
void convertTokens(const uint8_t *src, int64_t count, int32_t *out,
                   int64_t streamPos, const std::string &binPath) {
  for (int64_t i = 0; i < count; ++i) {
    T v = load<T>(src + i * int64_t(sizeof(T)));
    bool ok;
    if constexpr (std::is_floating_point_v<T>)
      ok =
          std::isfinite(v) && v >= 0 && v <= T(INT32_MAX) && std::floor(v) == v;
    else if constexpr (std::is_signed_v<T>)
      ok = v >= 0 && int64_t(v) <= INT32_MAX;
    else
      ok = uint64_t(v) <= uint64_t(INT32_MAX);
    if (!ok) {
      std::string value;
      if constexpr (std::is_floating_point_v<T>)
        value = std::to_string(double(v));
      else
        value = std::to_string(v);
      throw std::runtime_error(
          binPath + ": the token at position " + std::to_string(streamPos + i) +
          " of the stream is " + value +
          ", not a token id (ids are whole numbers in [0, 2^31))");
    }
    out[i] = static_cast<int32_t>(v);
  }
}

class IndexedDataset final : public TokenSource {
public:
  explicit IndexedDataset(const std::string &prefix)
      : prefix_(prefix), idxPath_(prefix + ".idx"), binPath_(prefix + ".bin"),
        idx_(idxPath_), bin_(binPath_) {
    parseIndex();
  }

  int64_t size() const override { return tokens_; }
  void read(int64_t offset, int64_t count, int32_t *out) const override;
  int64_t vocabHint() const override {
    switch (dtype_) {
    case IndexedDtype::UInt8:
      return 256;
    case IndexedDtype::Int8:
      return 128;
    case IndexedDtype::Int16:
      return 32768;
    case IndexedDtype::UInt16:
      return 65536;
    default:
      return 0;
    }
  }
  const std::string &path() const override { return prefix_; }
  std::string kind() const override {
    return std::string("megatron ") + indexedDtypeName(dtype_);
  }

private:
  [[noreturn]] void fail(const std::string &why) const {
    throw std::runtime_error(idxPath_ + ": " + why);
  }
  void parseIndex();
  void convert(const uint8_t *src, int64_t count, int32_t *out,
               int64_t streamPos) const;

  std::string prefix_, idxPath_, binPath_;
  MappedFile idx_, bin_;
  IndexedDtype dtype_ = IndexedDtype::UInt8;
  int64_t itemSize_ = 1;
  int64_t tokens_ = 0;
  /// Whether the sequences lie back to back in .bin (as Megatron's writer
  /// puts them): then token t is at byte firstByte_ + t * itemSize_ and no
  /// per-sequence table is kept (a large corpus has 10^8 sequences).
  bool contiguous_ = true;
  int64_t firstByte_ = 0;
  /// Otherwise: the stream position where each sequence starts (S + 1
  /// entries) and each sequence's byte offset.
  std::vector<int64_t> starts_, pointers_;
};

void IndexedDataset::parseIndex() {
  const uint8_t *p = idx_.data();
  int64_t fileSize = idx_.size();
  if (fileSize < kMagicSize ||
      std::memcmp(p, kIndexedDatasetMagic, kMagicSize) != 0)
    fail("not a Megatron indexed dataset index (it does not start with the "
         "magic \"MMIDIDX\\0\\0\")");
  if (fileSize < kHeaderSize)
    fail("truncated header: " + std::to_string(fileSize) +
         " bytes, the header alone takes " + std::to_string(kHeaderSize));
  uint64_t version = load<uint64_t>(p + 9);
  if (version != kIndexedDatasetVersion)
    fail("index version " + std::to_string(version) +
         " is not supported (this reader knows version 1)");
  uint8_t code = p[17];
  if (code < 1 || code > 8)
    fail("unknown dtype code " + std::to_string(code) +
         " (Megatron's codes are 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, "
         "6 float64, 7 float32, 8 uint16)");
  dtype_ = static_cast<IndexedDtype>(code);
  itemSize_ = indexedDtypeSize(dtype_);
  uint64_t seqCount = load<uint64_t>(p + 18);
  uint64_t docCount = load<uint64_t>(p + 26);

  // 34 + 12 S + 8 D bytes, plus S bytes of sequence modes when multimodal.
  int64_t s = static_cast<int64_t>(seqCount),
          d = static_cast<int64_t>(docCount);
  int64_t lengthsBytes, pointersBytes, docBytes, need = kHeaderSize;
  if (seqCount > uint64_t(INT64_MAX) || docCount > uint64_t(INT64_MAX) ||
      !checkedMul(s, 4, lengthsBytes) || !checkedMul(s, 8, pointersBytes) ||
      !checkedMul(d, 8, docBytes) || !checkedAccumulate(need, lengthsBytes) ||
      !checkedAccumulate(need, pointersBytes) ||
      !checkedAccumulate(need, docBytes))
    fail("its counts of " + std::to_string(seqCount) + " sequences and " +
         std::to_string(docCount) + " document indices overflow any file size");
  int64_t withModes = 0;
  bool multimodal = checkedAdd(need, s, withModes) && fileSize == withModes;
  if (fileSize != need && !multimodal) {
    std::string counts = std::to_string(s) + " sequences and " +
                         std::to_string(d) + " document indices need " +
                         std::to_string(need) + " bytes";
    if (fileSize < need)
      fail("truncated: " + counts + ", the file has " +
           std::to_string(fileSize));
    fail(counts + " (" + std::to_string(withModes) +
         " with sequence modes), the file has " + std::to_string(fileSize));
  }

  const uint8_t *lengths = p + kHeaderSize;
  const uint8_t *pointers = lengths + lengthsBytes;
  const uint8_t *docs = pointers + pointersBytes;
  int64_t binSize = bin_.size();
  int64_t nextByte = 0;
  for (int64_t i = 0; i < s; ++i) {
    int32_t length = load<int32_t>(lengths + 4 * i);
    int64_t pointer = load<int64_t>(pointers + 8 * i);
    if (length < 0)
      fail("sequence " + std::to_string(i) + " has a negative length " +
           std::to_string(length));
    int64_t end;
    if (pointer < 0 || !checkedAdd(pointer, int64_t(length) * itemSize_, end) ||
        end > binSize)
      fail("sequence " + std::to_string(i) + " (" + std::to_string(length) +
           " tokens of " + std::to_string(itemSize_) + " bytes at byte " +
           std::to_string(pointer) + ") lies outside " + binPath_ + " (" +
           std::to_string(binSize) + " bytes)");
    if (i == 0)
      firstByte_ = nextByte = pointer;
    if (pointer != nextByte)
      contiguous_ = false;
    nextByte = end;
    // Cannot overflow: each sequence lies inside .bin, so tokens_ <= binSize.
    tokens_ += length;
  }
  if (!contiguous_) {
    starts_.resize(static_cast<size_t>(s) + 1);
    pointers_.resize(static_cast<size_t>(s));
    int64_t at = 0;
    for (int64_t i = 0; i < s; ++i) {
      starts_[i] = at;
      pointers_[i] = load<int64_t>(pointers + 8 * i);
      at += load<int32_t>(lengths + 4 * i);
    }
    starts_[s] = at;
  }

  // Document indices: where documents end, as sequence indices, from 0.
  if (d == 0)
    fail("no document indices (Megatron's writer always writes the leading "
         "0)");
  int64_t previous = 0;
  for (int64_t i = 0; i < d; ++i) {
    int64_t doc = load<int64_t>(docs + 8 * i);
    if ((i == 0 && doc != 0) || doc < previous || doc > s)
      fail("document index " + std::to_string(i) + " is " +
           std::to_string(doc) +
           ": document indices start at 0 and never decrease or exceed the " +
           std::to_string(s) + " sequences");
    previous = doc;
  }
}

void IndexedDataset::convert(const uint8_t *src, int64_t count, int32_t *out,
                             int64_t streamPos) const {
  switch (dtype_) {
  case IndexedDtype::UInt8:
    return convertTokens<uint8_t>(src, count, out, streamPos, binPath_);
  case IndexedDtype::Int8:
    return convertTokens<int8_t>(src, count, out, streamPos, binPath_);
  case IndexedDtype::Int16:
    return convertTokens<int16_t>(src, count, out, streamPos, binPath_);
  case IndexedDtype::Int32:
    return convertTokens<int32_t>(src, count, out, streamPos, binPath_);
  case IndexedDtype::Int64:
    return convertTokens<int64_t>(src, count, out, streamPos, binPath_);
  case IndexedDtype::Float64:
    return convertTokens<double>(src, count, out, streamPos, binPath_);
  case IndexedDtype::Float32:
    return convertTokens<float>(src, count, out, streamPos, binPath_);
  case IndexedDtype::UInt16:
    return convertTokens<uint16_t>(src, count, out, streamPos, binPath_);
  }
}

void IndexedDataset::read(int64_t offset, int64_t count, int32_t *out) const {
  checkTokenRange(*this, offset, count);
  if (contiguous_) {
    convert(bin_.data() + firstByte_ + offset * itemSize_, count, out, offset);
    return;
  }
  // The sequence holding `offset`: the last start <= offset (empty
  // sequences share their start with the next and are skipped).
  size_t seq = static_cast<size_t>(
      std::upper_bound(starts_.begin(), starts_.end(), offset) -
      starts_.begin() - 1);
  while (count > 0) {
    int64_t within = offset - starts_[seq];
    int64_t n = std::min(count, starts_[seq + 1] - offset);
    convert(bin_.data() + pointers_[seq] + within * itemSize_, n, out, offset);
    out += n;
    offset += n;
    count -= n;
    ++seq;
  }
}

} // namespace

int64_t loom::runtime::indexedDtypeSize(IndexedDtype dtype) {
  switch (dtype) {
  case IndexedDtype::UInt8:
  case IndexedDtype::Int8:
    return 1;
  case IndexedDtype::Int16:
  case IndexedDtype::UInt16:
    return 2;
  case IndexedDtype::Int32:
  case IndexedDtype::Float32:
    return 4;
  case IndexedDtype::Int64:
  case IndexedDtype::Float64:
    return 8;
  }
  return 1;
}

const char *loom::runtime::indexedDtypeName(IndexedDtype dtype) {
  switch (dtype) {
  case IndexedDtype::UInt8:
    return "uint8";
  case IndexedDtype::Int8:
    return "int8";
  case IndexedDtype::Int16:
    return "int16";
  case IndexedDtype::Int32:
    return "int32";
  case IndexedDtype::Int64:
    return "int64";
  case IndexedDtype::Float64:
    return "float64";
  case IndexedDtype::Float32:
    return "float32";
  case IndexedDtype::UInt16:
    return "uint16";
  }
  return "unknown";
}

std::unique_ptr<TokenSource>
loom::runtime::openIndexedDataset(const std::string &prefix) {
  return std::make_unique<IndexedDataset>(prefix);
}
