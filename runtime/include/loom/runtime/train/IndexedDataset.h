//===- IndexedDataset.h - Megatron-LM's indexed dataset reader --*- C++ -*-===//
//
// The "MMIDIDX" format of megatron/core/datasets/indexed_dataset.py
// (written by tools/preprocess_data.py through IndexedDatasetBuilder):
//
//   PREFIX.idx, little-endian:
//     9 bytes   magic "MMIDIDX\0\0"
//     u64       version, 1
//     u8        dtype code of the tokens (IndexedDtype)
//     u64       S, the number of sequences
//     u64       D, the number of document indices
//     i32[S]    sequence lengths, in tokens
//     i64[S]    sequence pointers, byte offsets into PREFIX.bin
//     i64[D]    document indices: sequence indices where documents end,
//               starting with 0 (non-decreasing, at most S)
//     i8[S]     sequence modes, only in multimodal datasets (ignored here)
//   PREFIX.bin: the tokens of each sequence at its pointer.
//
// The token stream is the concatenation of all sequences in order. Every
// field is validated when the dataset is opened (sizes with overflow-checked
// arithmetic, each sequence inside PREFIX.bin); token ids are checked as
// they are read (non-negative, integral, within int32), so that opening a
// large dataset does not read all of it.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_INDEXEDDATASET_H
#define LOOM_RUNTIME_TRAIN_INDEXEDDATASET_H

#include "loom/runtime/train/TokenSource.h"

#include <cstdint>
#include <memory>
#include <string>

namespace loom::runtime {

/// Megatron's `DType` enum codes (indexed_dataset.py), in the .idx header.
enum class IndexedDtype : uint8_t {
  UInt8 = 1,
  Int8 = 2,
  Int16 = 3,
  Int32 = 4,
  Int64 = 5,
  Float64 = 6,
  Float32 = 7,
  UInt16 = 8,
};

/// The size in bytes of an element of `dtype`.
int64_t indexedDtypeSize(IndexedDtype dtype);
/// NumPy's name of `dtype` ("uint16").
const char *indexedDtypeName(IndexedDtype dtype);

/// The magic at the start of every .idx file (9 bytes, two NULs included).
inline constexpr char kIndexedDatasetMagic[] = "MMIDIDX\0\0";
inline constexpr uint64_t kIndexedDatasetVersion = 1;

/// Opens PREFIX.idx and PREFIX.bin. Throws std::runtime_error naming the
/// file and the cause for every malformed field.
std::unique_ptr<TokenSource> openIndexedDataset(const std::string &prefix);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_INDEXEDDATASET_H
