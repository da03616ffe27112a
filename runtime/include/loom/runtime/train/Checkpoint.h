//===- Checkpoint.h - Saving and resuming a training run --------*- C++ -*-===//
//
// A checkpoint directory is laid out as Megatron-LM lays out its own:
//
//   DIR/latest_checkpointed_iteration.txt   "100\n": the last complete one
//   DIR/iter_0000100/metadata.json          step, data position, seed,
//                                           model, program, tensor list
//   DIR/iter_0000100/<tensor>.npy           one NumPy file per tensor
//
// Saving is atomic. The iteration is written into a hidden staging
// directory (DIR/.staging.iter_0000100.XXXXXX) whose files and the
// directory itself are flushed to disk (fsync), then renamed into place
// (exchanged with an existing iter_0000100, so that re-saving an iteration
// never leaves a moment without one), and only then is the latest file
// replaced (temporary file, fsync, rename, fsync of DIR). A crash at any
// point leaves the previous checkpoint loadable; leftovers of a crash
// (staging directories) are removed by the next save. One process saves
// into a directory at a time.
//
// Loading checks everything and names the file and the problem: a missing
// or garbled latest file, a missing iteration, a metadata.json that does
// not parse or lacks a field, a missing or truncated .npy, a tensor whose
// dtype or shape differs from the metadata. Whether the checkpoint belongs
// to the run (its model and program) is the caller's comparison
// (checkpointMismatch).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_CHECKPOINT_H
#define LOOM_RUNTIME_TRAIN_CHECKPOINT_H

#include "loom/runtime/HostTensor.h"

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

namespace loom::runtime {

class CheckpointError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct Checkpoint {
  /// The number of completed training steps.
  int64_t step = 0;
  /// BatchSampler::position() after those steps.
  int64_t dataPosition = 0;
  uint64_t seed = 0;
  /// The model's name (e.g. "tiny-llama").
  std::string model;
  /// The training program's identity (its hash), given by the caller.
  std::string programId;
  /// Parameters and optimizer state by name (each name a file name: the
  /// tensor is <name>.npy). Sorted, so files and metadata are deterministic.
  std::map<std::string, HostTensor> tensors;
};

/// DIR/iter_0000100 (at least seven digits, as Megatron names them).
std::string checkpointIterationDir(const std::string &dir, int64_t step);
/// DIR/latest_checkpointed_iteration.txt.
std::string latestCheckpointFile(const std::string &dir);

/// Saves `checkpoint` as iteration checkpoint.step of `dir` (created if
/// missing) and makes it the latest. Throws CheckpointError naming the path.
void saveCheckpoint(const std::string &dir, const Checkpoint &checkpoint);

/// The iteration the latest file names, or nullopt when `dir` or its latest
/// file does not exist (nothing saved yet). Throws CheckpointError when the
/// file exists but does not hold a step number.
std::optional<int64_t> latestCheckpointStep(const std::string &dir);

/// Loads the latest checkpoint of `dir`. Throws CheckpointError (also when
/// there is none).
Checkpoint loadCheckpoint(const std::string &dir);
/// Loads iteration `step` of `dir`.
Checkpoint loadCheckpoint(const std::string &dir, int64_t step);

/// Why `checkpoint` (loaded from `dir`) cannot resume a run of `model` with
/// program `programId`, or "" if it can.
std::string checkpointMismatch(const std::string &dir,
                               const Checkpoint &checkpoint,
                               const std::string &model,
                               const std::string &programId);

/// For tests only: when set, saveCheckpoint calls it at each point between
/// two changes on disk ("staging created", "tensor written", ..., "latest
/// written"), so that a test can end the process there as a crash would.
extern void (*checkpointSaveProbe)(const char *point);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_CHECKPOINT_H
