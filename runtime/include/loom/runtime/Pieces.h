//===- Pieces.h - Whole tensors and the ranks' pieces of them ----*- C++
//-*-===//
//
// A program's inputs, parameters and outputs may be a rank's piece of a
// larger tensor (Binding::sharding): hosts hold whole tensors (a data
// batch, an initialized weight, a checkpoint) and give each rank its piece,
// or put the pieces back together. Dimension d split over axes [a, b]
// (major first) is cut into size(a)·size(b) equal blocks; rank r holds
// block coord(a)·size(b) + coord(b).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_PIECES_H
#define LOOM_RUNTIME_PIECES_H

#include "loom/runtime/HostTensor.h"
#include "loom/runtime/Program.h"

#include <cstdint>
#include <vector>

namespace loom::runtime {

/// The whole tensor's shape of binding `binding` of `program`.
std::vector<int64_t> wholeShape(const Program &program, const Binding &binding);

/// Rank `rank`'s piece of `whole` for `binding` (a copy of `whole` when the
/// binding is not split). Throws std::runtime_error when `whole` does not
/// have the whole shape.
HostTensor pieceOf(const HostTensor &whole, const Program &program,
                   const Binding &binding, int64_t rank);

/// Writes rank `rank`'s `piece` into `whole` (of the whole shape).
void placePiece(HostTensor &whole, const HostTensor &piece,
                const Program &program, const Binding &binding, int64_t rank);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_PIECES_H
