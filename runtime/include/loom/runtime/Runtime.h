//===- Runtime.h - Running Loom programs ------------------------*- C++ -*-===//
//
// The C++ API of the Loom runtime:
//
//   auto program = Program::loadFile("stage0.loom");       // verified
//   ExecutorOptions opts;
//   opts.rank = rank;                                       // global rank
//   opts.communicators = myFactory;                         // see CommGroup
//   Executor exec(program, opts);                           // arena, comms,
//   decode exec.setInput("tokens", readNpy("tokens.npy")); exec.run(); // one
//   step writeNpy("loss.npy", exec.getOutput("loss"));
//
// An Executor is one rank's instance of a program: it owns the arena (one
// allocation of the planned size; buffers are views at their offsets), the
// communicators and the pre-decoded instruction list. Parameters and inputs
// stay in the arena between runs. run() executes the instructions in order;
// on the CPU, instructions of the communication stream between an
// event_wait and an event_record of that stream run on a communication
// thread of the executor, ordered with the compute stream by the events.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_RUNTIME_H
#define LOOM_RUNTIME_RUNTIME_H

#include "loom/runtime/Backend.h"
#include "loom/runtime/Communicator.h"
#include "loom/runtime/HostTensor.h"
#include "loom/runtime/Npy.h"
#include "loom/runtime/Program.h"

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::runtime {

/// A run-time failure of one instruction (an embedding id or a target out of
/// range, an unset input). The message names the instruction and its source
/// location. Communication failures stay CommError, with the same prefix.
class ExecutionError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// What a communicator factory is asked for: one group of the program's
/// communicator table, seen from this rank.
struct CommGroup {
  uint32_t id = 0;               ///< communicator id in the program
  std::string mesh;              ///< the mesh's name
  std::vector<std::string> axes; ///< mesh axes spanned, major first
  std::vector<int64_t> ranks;    ///< global ranks of the group, in group order
  int64_t groupRank = 0;         ///< this rank's index in `ranks`
  int64_t worldRank = 0;
  int64_t worldSize = 1;
  /// Identifies the group identically on all of its ranks and differently
  /// from every other group, e.g. "tp:4,5,6,7" (usable as a rendezvous key).
  std::string key;
};

/// Creates (or returns a shared) communicator for a group. Called once per
/// communicator of the program whose group has more than one rank, in table
/// order, while the Executor is constructed; every rank of the group makes
/// the same calls, so a factory may rendezvous.
using CommunicatorFactory =
    std::function<std::shared_ptr<Communicator>(const CommGroup &group)>;

/// One executed instruction, for traces (ExecutorOptions::trace).
struct TraceEvent {
  uint32_t instruction = 0;
  StreamKind stream = StreamKind::Compute;
  /// Microseconds on the system-wide steady clock.
  double startUs = 0;
  double durationUs = 0;
};

struct ExecutorOptions {
  /// Global rank; mesh coordinates follow Mesh::coords().
  int64_t rank = 0;
  /// Needed only if the program has a communicator spanning > 1 rank;
  /// collectives over a single rank run locally.
  CommunicatorFactory communicators;
  /// Backend name for createBackend() ("cpu", "cuda", or a plugin path),
  /// unless `backendInstance` is given.
  std::string backend = "cpu";
  std::shared_ptr<Backend> backendInstance;
  /// Record a TraceEvent per executed instruction (see traceEvents()).
  bool trace = false;
};

class Executor {
public:
  /// Decodes the program for `options.rank`. Throws ExecutionError (bad
  /// rank, missing factory, backend cannot run an instruction) or CommError.
  Executor(std::shared_ptr<const Program> program, ExecutorOptions options);
  ~Executor();
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;

  const Program &program() const { return *program_; }
  int64_t rank() const { return rank_; }
  const std::vector<int64_t> &coords() const { return coords_; }
  Backend &backend() { return *backend_; }

  /// Copies host data into the buffer bound to input `name`; `bytes` must be
  /// the buffer's size. Throws ExecutionError for an unknown name or size.
  void setInput(const std::string &name, const void *data, size_t bytes);
  /// Same, checking that the tensor's dtype and shape equal the buffer's.
  void setInput(const std::string &name, const HostTensor &tensor);

  /// Runs the program once. Throws ExecutionError or CommError.
  void run();

  /// Copies the buffer bound to output `name` to host memory.
  void getOutput(const std::string &name, void *data, size_t bytes) const;
  HostTensor getOutput(const std::string &name) const;
  /// Any buffer by id (for tests and debugging).
  HostTensor readBuffer(uint32_t id) const;

  /// The program's planned arena size.
  uint64_t plannedPeakBytes() const { return program_->arenaSize(); }
  /// max(offset + size) over the arena buffers that instructions, inputs and
  /// outputs have touched so far.
  uint64_t executedPeakBytes() const { return executedPeak_; }
  /// Scratch memory the backend's kernels and collective packing use
  /// (outside the arena).
  size_t scratchBytes() const { return scratchBytes_; }

  /// Instructions executed so far, when ExecutorOptions::trace is set.
  const std::vector<TraceEvent> &traceEvents() const { return traceEvents_; }

  struct Step;
  struct CommThread;

  /// Whether run() hands the program's asynchronous communication (the
  /// comm-stream instructions between events) to a communication thread.
  bool usesCommThread() const { return commThread_ != nullptr; }

private:
  void recordTrace(size_t index, std::chrono::steady_clock::time_point start);
  void zeroState();
  /// Sets `bytes` of the backend's memory at `data` to zero.
  void zeroBytes(void *data, uint64_t bytes);
  void createCommunicators();
  void prepare();
  void releaseResources();
  void runCollective(Step &s, void *scratch);
  void startCommThread();
  void stopCommThread();
  void commThreadMain();
  /// Blocks until the communication thread has run everything queued;
  /// rethrows its failure.
  void drainCommThread();
  /// After a failure on the compute thread: drop what is queued and wait
  /// for the communication thread to finish what it is running.
  void abortCommThread() noexcept;
  [[noreturn]] void rethrowCommFailure();
  [[noreturn]] void failAt(size_t index, const std::string &msg) const;
  void *bufferData(uint32_t id) const;

  std::shared_ptr<const Program> program_;
  ExecutorOptions options_;
  std::shared_ptr<Backend> backend_;
  int64_t rank_ = 0;
  std::vector<int64_t> coords_;
  std::vector<std::vector<int64_t>> meshCoords_; ///< per program mesh
  void *arena_ = nullptr;
  void *constants_ = nullptr;
  bool ownConstants_ = false;
  void *scratch_ = nullptr;
  size_t scratchBytes_ = 0;
  std::vector<std::shared_ptr<Communicator>> comms_;
  std::vector<Step> steps_;
  std::vector<bool> inputSet_;
  uint64_t executedPeak_ = 0;
  std::vector<TraceEvent> traceEvents_;
  /// Scratch of the communication thread's packing (outside the arena).
  void *commScratch_ = nullptr;
  std::unique_ptr<CommThread> commThread_;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_RUNTIME_H
