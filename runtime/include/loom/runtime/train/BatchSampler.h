//===- BatchSampler.h - Batches of windows of a token stream ----*- C++ -*-===//
//
// Cuts a token stream into windows of seq + 1 tokens, as Megatron's
// GPTDataset does without shuffling: window w covers tokens
// [w * seq, w * seq + seq], so consecutive windows share one token and every
// token after the first is a target exactly once per epoch. A row's inputs
// are a window's first seq tokens, its targets the last seq.
//
// A step takes `rows` consecutive windows (the global batch); at the end of
// the stream the windows wrap around to the start (the next epoch). The
// sampler's whole state is one integer, the number of windows consumed, so
// a checkpoint that stores it resumes on exactly the next batch.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_BATCHSAMPLER_H
#define LOOM_RUNTIME_TRAIN_BATCHSAMPLER_H

#include "loom/runtime/HostTensor.h"
#include "loom/runtime/train/TokenSource.h"

#include <cstdint>
#include <vector>

namespace loom::runtime {

/// One step's data: tokens and targets, both i32 [rows, seq].
struct Batch {
  HostTensor tokens, targets;
};

/// Rows [index * rows / count, (index + 1) * rows / count) of `batch`: the
/// `index`-th of `count` micro-batches. Throws std::invalid_argument unless
/// `count` divides the rows and 0 <= index < count.
Batch microBatch(const Batch &batch, int64_t index, int64_t count);

class BatchSampler {
public:
  /// Batches of `rows` windows of `seq` + 1 tokens from `source` (which must
  /// outlive the sampler), for a model with `vocab` token ids. Throws
  /// std::runtime_error when the source is shorter than one window (naming
  /// the file, its tokens and the tokens needed) and std::invalid_argument
  /// for sizes < 1.
  BatchSampler(const TokenSource &source, int64_t rows, int64_t seq,
               int64_t vocab);

  /// The next batch; advances the position by `rows`. Throws
  /// std::runtime_error naming the file and the token's position when a
  /// token is outside [0, vocab).
  Batch next();

  /// Windows consumed since the start of training (over all epochs).
  int64_t position() const { return position_; }
  /// Resumes after `windows` windows (a checkpoint's data position).
  /// Throws std::invalid_argument when negative.
  void setPosition(int64_t windows);

  /// Windows in one pass over the stream: (tokens - 1) / seq.
  int64_t windowsPerEpoch() const { return windowsPerEpoch_; }
  /// The epoch (from 0) the next batch starts in.
  int64_t epoch() const { return position_ / windowsPerEpoch_; }
  int64_t rows() const { return rows_; }
  int64_t seq() const { return seq_; }

private:
  const TokenSource &source_;
  int64_t rows_, seq_, vocab_;
  int64_t windowsPerEpoch_;
  int64_t position_ = 0;
  std::vector<int32_t> window_;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_BATCHSAMPLER_H
