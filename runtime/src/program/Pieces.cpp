//===- Pieces.cpp - Whole tensors and the ranks' pieces of them -----------===//

#include "loom/runtime/Pieces.h"

#include <cstring>
#include <stdexcept>
#include <string>

using namespace loom::runtime;

namespace {

/// Where rank `rank`'s piece starts in each dimension of the whole tensor.
std::vector<int64_t> pieceOffsets(const Program &program,
                                  const Binding &binding, int64_t rank) {
  const BufferInfo &buffer = program.buffers()[binding.buffer];
  std::vector<int64_t> offsets(buffer.shape.size(), 0);
  if (!binding.isSharded())
    return offsets;
  const Mesh &mesh = program.meshes()[binding.mesh];
  std::vector<int64_t> coords = mesh.coords(rank);
  for (size_t d = 0; d < binding.sharding.size(); ++d) {
    int64_t block = 0;
    for (const std::string &axis : binding.sharding[d]) {
      int a = mesh.axisIndex(axis);
      block = block * mesh.axisSizes[a] + coords[a];
    }
    offsets[d] = block * buffer.shape[d];
  }
  return offsets;
}

/// Copies the box of `pieceShape` at `offsets` between the whole tensor
/// and the piece, row by row of the last dimension.
void copyBox(const std::vector<int64_t> &wholeShape,
             const std::vector<int64_t> &pieceShape,
             const std::vector<int64_t> &offsets, size_t elementBytes,
             uint8_t *whole, uint8_t *piece, bool intoPiece) {
  size_t rank = pieceShape.size();
  if (rank == 0) {
    std::memcpy(intoPiece ? piece : whole, intoPiece ? whole : piece,
                elementBytes);
    return;
  }
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < rank; ++d)
    rows *= pieceShape[d];
  size_t rowBytes = pieceShape[rank - 1] * elementBytes;
  std::vector<int64_t> index(rank, 0);
  for (int64_t row = 0; row < rows; ++row) {
    int64_t at = 0;
    for (size_t d = 0; d < rank; ++d)
      at = at * wholeShape[d] + offsets[d] + index[d];
    uint8_t *w = whole + at * elementBytes;
    uint8_t *p = piece + row * rowBytes;
    std::memcpy(intoPiece ? p : w, intoPiece ? w : p, rowBytes);
    for (size_t d = rank - 1; d-- > 0;) {
      if (++index[d] < pieceShape[d])
        break;
      index[d] = 0;
    }
  }
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

} // namespace

std::vector<int64_t> loom::runtime::wholeShape(const Program &program,
                                               const Binding &binding) {
  std::vector<int64_t> shape = program.buffers()[binding.buffer].shape;
  if (!binding.isSharded())
    return shape;
  const Mesh &mesh = program.meshes()[binding.mesh];
  for (size_t d = 0; d < binding.sharding.size(); ++d)
    for (const std::string &axis : binding.sharding[d])
      shape[d] *= mesh.axisSizes[mesh.axisIndex(axis)];
  return shape;
}

HostTensor loom::runtime::pieceOf(const HostTensor &whole,
                                  const Program &program,
                                  const Binding &binding, int64_t rank) {
  std::vector<int64_t> shape = wholeShape(program, binding);
  if (whole.shape != shape)
    throw std::runtime_error("'" + binding.name + "' is " +
                             shapeText(whole.shape) + ", not the whole " +
                             shapeText(shape) + " the program cuts");
  const BufferInfo &buffer = program.buffers()[binding.buffer];
  HostTensor piece(whole.dtype, buffer.shape);
  copyBox(shape, buffer.shape, pieceOffsets(program, binding, rank),
          dtypeSize(whole.dtype), const_cast<uint8_t *>(whole.bytes.data()),
          piece.bytes.data(), /*intoPiece=*/true);
  return piece;
}

void loom::runtime::placePiece(HostTensor &whole, const HostTensor &piece,
                               const Program &program, const Binding &binding,
                               int64_t rank) {
  std::vector<int64_t> shape = wholeShape(program, binding);
  const BufferInfo &buffer = program.buffers()[binding.buffer];
  if (whole.shape != shape || piece.shape != buffer.shape)
    throw std::runtime_error("'" + binding.name +
                             "': pieces and whole tensors of other shapes");
  copyBox(shape, buffer.shape, pieceOffsets(program, binding, rank),
          dtypeSize(whole.dtype), whole.bytes.data(),
          const_cast<uint8_t *>(piece.bytes.data()), /*intoPiece=*/false);
}
