//===- BatchSampler.cpp - Batches of windows of a token stream ------------===//

#include "loom/runtime/train/BatchSampler.h"

#include "loom/runtime/CheckedMath.h"

#include <cstring>
#include <stdexcept>

using namespace loom::runtime;

BatchSampler::BatchSampler(const TokenSource &source, int64_t rows, int64_t seq,
                           int64_t vocab)
    : source_(source), rows_(rows), seq_(seq), vocab_(vocab) {
  if (rows < 1 || seq < 1 || vocab < 1)
    throw std::invalid_argument(
        "batch sampler: rows, sequence length and vocabulary must be >= 1 "
        "(got " +
        std::to_string(rows) + ", " + std::to_string(seq) + ", " +
        std::to_string(vocab) + ")");
  // A window (seq + 1 tokens) and a batch tensor (rows x seq) must have
  // sizes that int64 holds.
  int64_t window, elements;
  if (!checkedAdd(seq, 1, window) || !checkedMul(rows, seq, elements))
    throw std::invalid_argument("batch sampler: " + std::to_string(rows) +
                                " rows of " + std::to_string(seq) +
                                " tokens overflow");
  if (source.size() < window)
    throw std::runtime_error(
        source.path() + ": " + std::to_string(source.size()) +
        " tokens are fewer than one window of " + std::to_string(window) +
        " (sequence length " + std::to_string(seq) + " + 1 for the target)");
  windowsPerEpoch_ = (source.size() - 1) / seq;
  window_.resize(static_cast<size_t>(window));
}

void BatchSampler::setPosition(int64_t windows) {
  if (windows < 0)
    throw std::invalid_argument("batch sampler: data position " +
                                std::to_string(windows) + " is negative");
  position_ = windows;
}

Batch BatchSampler::next() {
  int64_t after;
  if (!checkedAdd(position_, rows_, after))
    throw std::runtime_error(source_.path() + ": data position " +
                             std::to_string(position_) + " overflows");
  Batch batch{HostTensor(DType::I32, {rows_, seq_}),
              HostTensor(DType::I32, {rows_, seq_})};
  for (int64_t r = 0; r < rows_; ++r) {
    // Reduced before multiplying: position_ may be far past one epoch.
    int64_t w = (position_ % windowsPerEpoch_ + r) % windowsPerEpoch_;
    int64_t start = w * seq_;
    source_.read(start, seq_ + 1, window_.data());
    for (int64_t i = 0; i <= seq_; ++i)
      if (window_[i] >= vocab_)
        throw std::runtime_error(source_.path() + ": token " +
                                 std::to_string(window_[i]) + " at position " +
                                 std::to_string(start + i) +
                                 " is outside the model's vocabulary [0, " +
                                 std::to_string(vocab_) + ")");
    size_t rowBytes = static_cast<size_t>(seq_) * sizeof(int32_t);
    std::memcpy(batch.tokens.as<int32_t>() + r * seq_, window_.data(),
                rowBytes);
    std::memcpy(batch.targets.as<int32_t>() + r * seq_, window_.data() + 1,
                rowBytes);
  }
  position_ = after;
  return batch;
}

Batch loom::runtime::microBatch(const Batch &batch, int64_t index,
                                int64_t count) {
  int64_t rows = batch.tokens.shape.at(0), seq = batch.tokens.shape.at(1);
  if (count < 1 || rows % count != 0 || index < 0 || index >= count)
    throw std::invalid_argument("micro-batch " + std::to_string(index) +
                                " of " + std::to_string(count) +
                                ": the global batch's " + std::to_string(rows) +
                                " rows do not split into " +
                                std::to_string(count) + " equal micro-batches");
  int64_t part = rows / count;
  Batch out{HostTensor(DType::I32, {part, seq}),
            HostTensor(DType::I32, {part, seq})};
  size_t bytes = out.tokens.byteSize();
  std::memcpy(out.tokens.data(), batch.tokens.bytes.data() + index * bytes,
              bytes);
  std::memcpy(out.targets.data(), batch.targets.bytes.data() + index * bytes,
              bytes);
  return out;
}
