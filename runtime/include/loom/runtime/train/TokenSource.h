//===- TokenSource.h - A stream of token ids read from disk -----*- C++ -*-===//
//
// Training reads its tokens from one of two formats, both memory-mapped
// read-only:
//
//   - a plain file, one token per byte (ids 0..255): any text, e.g. the
//     default data set (runtime/README.md, "Training");
//   - a Megatron-LM indexed dataset PREFIX.bin + PREFIX.idx (IndexedDataset.h),
//     the format Megatron's tools/preprocess_data.py writes.
//
// Either is one flat stream of token ids that the batch sampler cuts into
// windows (BatchSampler.h).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_TOKENSOURCE_H
#define LOOM_RUNTIME_TRAIN_TOKENSOURCE_H

#include <cstdint>
#include <memory>
#include <string>

namespace loom::runtime {

/// A read-only stream of token ids. Errors are std::runtime_error whose
/// message starts with the file's path.
class TokenSource {
public:
  virtual ~TokenSource() = default;

  /// The number of tokens in the stream.
  virtual int64_t size() const = 0;

  /// Copies tokens [offset, offset + count) into `out` as int32. Throws when
  /// the range is outside [0, size()) or a stored id is negative or does not
  /// fit int32 (naming the file and the token's position).
  virtual void read(int64_t offset, int64_t count, int32_t *out) const = 0;

  /// An exclusive upper bound on the ids the format can hold (256 for
  /// bytes, 65536 for uint16 data), or 0 when it does not bound them.
  virtual int64_t vocabHint() const = 0;

  /// The file (or Megatron prefix) the tokens come from, for messages.
  virtual const std::string &path() const = 0;

  /// What the source is, for logs: "bytes" or "megatron uint16".
  virtual std::string kind() const = 0;
};

/// Every byte of the file at `path` is one token.
std::unique_ptr<TokenSource> openByteTokens(const std::string &path);

/// Opens `path` as Megatron's indexed dataset when it names one (a prefix
/// with PREFIX.idx and PREFIX.bin beside it, or PREFIX.idx / PREFIX.bin
/// itself), otherwise as a plain file of byte tokens.
std::unique_ptr<TokenSource> openTokenSource(const std::string &path);

/// The common range check of TokenSource::read: throws
/// "PATH: 3 tokens at position 4 are outside the 6 tokens it holds".
void checkTokenRange(const TokenSource &source, int64_t offset, int64_t count);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_TOKENSOURCE_H
