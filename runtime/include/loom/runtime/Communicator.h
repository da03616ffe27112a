//===- Communicator.h - Collective communication interface ------*- C++ -*-===//
//
// A communicator connects the ranks of one group (the ranks that span a set
// of mesh axes, see the program's communicator table). Every collective works
// on flat, contiguous buffers; the executor packs and unpacks non-leading
// dimensions around these calls. Every blocking call honours the deadline the
// communicator was created with and fails with a CommError naming the
// collective and the peer instead of hanging.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMMUNICATOR_H
#define LOOM_RUNTIME_COMMUNICATOR_H

#include "loom/runtime/DType.h"

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

namespace loom::runtime {

enum class ReduceOp { Sum, Max, Min, Avg };

/// "sum", "max", "min" or "avg".
const char *reduceOpName(ReduceOp op);

/// Raised by a communicator when a peer dies, a deadline expires or the
/// transport fails. The message names the collective and the peer/group.
class CommError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class Communicator {
public:
  virtual ~Communicator() = default;

  /// This rank's index within the group, and the group size.
  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// In place: every rank ends with the element-wise reduction of all ranks'
  /// `count` elements. Reduction is computed in f32 for bf16/f16 and the
  /// result is identical on every rank.
  virtual void allReduce(void *data, size_t count, DType dtype,
                         ReduceOp op) = 0;
  /// `recv` holds size() * count elements: rank r's `send` lands at r * count.
  virtual void allGather(const void *send, void *recv, size_t count,
                         DType dtype) = 0;
  /// `send` holds size() * count elements; this rank receives the reduction
  /// of chunk rank() from every rank into `recv` (count elements).
  virtual void reduceScatter(const void *send, void *recv, size_t count,
                             DType dtype, ReduceOp op) = 0;
  /// `send` and `recv` hold size() * count elements; chunk j of `send` goes to
  /// rank j and lands at chunk rank() of its `recv`.
  virtual void allToAll(const void *send, void *recv, size_t count,
                        DType dtype) = 0;
  /// Copies root's buffer to every rank.
  virtual void broadcast(void *data, size_t count, DType dtype, int root) = 0;
  /// Point to point within the group. Sends and receives issued between
  /// groupStart() and groupEnd() may complete in any order (no deadlock for a
  /// ring where every rank sends and receives); outside a group each call
  /// completes before it returns.
  virtual void send(const void *data, size_t bytes, int peer) = 0;
  virtual void recv(void *data, size_t bytes, int peer) = 0;
  virtual void groupStart() = 0;
  virtual void groupEnd() = 0;
  virtual void barrier() = 0;
  /// A buffered send (MPI's MPI_Bsend): the bytes are copied and the call
  /// returns at once; the message pairs in order with this rank's other
  /// sends to `peer`. A pipeline stage sends its activations this way and
  /// goes on with its schedule. flushSends() waits until every buffered
  /// send has been received, and throws CommError naming any that was not.
  /// The default sends and waits at once.
  virtual void sendBuffered(const void *data, size_t bytes, int peer) {
    send(data, bytes, peer);
  }
  virtual void flushSends() {}
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMMUNICATOR_H
