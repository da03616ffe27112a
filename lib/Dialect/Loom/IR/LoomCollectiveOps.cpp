//===- LoomCollectiveOps.cpp - Verifiers of the collectives ---------------===//
//
// Shapes of collectives are local; each verifier checks that the result is
// what the collective makes of the operand for the group spanned by `axes`.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"

#include "llvm/ADT/SmallSet.h"

using namespace mlir;
using namespace loom;

#include "loom/Dialect/Loom/IR/LoomInterfaces.cpp.inc"

int64_t CollectiveOpInterface::getGroupSize() {
  MeshAttr mesh = getMesh();
  int64_t size = 1;
  for (Attribute axis : getAxes())
    if (auto index = mesh.getAxisIndex(cast<StringAttr>(axis).getValue()))
      size *= mesh.getAxisSizes()[*index];
  return size;
}

/// Checks the axes against the mesh and returns the group size.
static FailureOr<int64_t> verifyAxes(Operation *op) {
  auto collective = cast<CollectiveOpInterface>(op);
  MeshAttr mesh = collective.getMesh();
  if (collective.getAxes().empty())
    return op->emitOpError("needs at least one mesh axis");
  llvm::SmallSet<StringRef, 4> seen;
  for (Attribute axis : collective.getAxes()) {
    StringRef name = cast<StringAttr>(axis).getValue();
    if (!mesh.getAxisIndex(name))
      return op->emitOpError("axis '")
             << name << "' is not an axis of mesh " << mesh;
    if (!seen.insert(name).second)
      return op->emitOpError("axis '") << name << "' is listed twice";
  }
  return collective.getGroupSize();
}

static RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// Checks element types and ranks of a shape-changing collective and that
/// every dimension but the ones in `changed` keeps its size.
static LogicalResult verifyKeptDims(Operation *op, RankedTensorType in,
                                    RankedTensorType out,
                                    ArrayRef<int64_t> changed) {
  if (in.getElementType() != out.getElementType())
    return op->emitOpError("element type changes from ")
           << in.getElementType() << " to " << out.getElementType();
  if (in.getRank() != out.getRank())
    return op->emitOpError("rank changes from ")
           << in.getRank() << " to " << out.getRank();
  for (int64_t d = 0, e = in.getRank(); d < e; ++d)
    if (!llvm::is_contained(changed, d) &&
        in.getDimSize(d) != out.getDimSize(d))
      return op->emitOpError("dimension ")
             << d << " changes from " << in.getDimSize(d) << " to "
             << out.getDimSize(d);
  return success();
}

static LogicalResult verifyDimIndex(Operation *op, StringRef what, int64_t dim,
                                    int64_t rank) {
  if (dim < 0 || dim >= rank)
    return op->emitOpError()
           << what << " " << dim << " is out of range for rank " << rank;
  return success();
}

LogicalResult AllReduceOp::verify() { return verifyAxes(*this); }

LogicalResult AllGatherOp::verify() {
  FailureOr<int64_t> n = verifyAxes(*this);
  if (failed(n))
    return failure();
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t dim = getGatherDim();
  if (failed(verifyDimIndex(*this, "gather_dim", dim, in.getRank())) ||
      failed(verifyKeptDims(*this, in, out, {dim})))
    return failure();
  if (out.getDimSize(dim) != in.getDimSize(dim) * *n)
    return emitOpError("gather_dim ")
           << dim << " must grow from " << in.getDimSize(dim) << " to "
           << in.getDimSize(dim) * *n << " (group size " << *n << "), got "
           << out.getDimSize(dim);
  return success();
}

LogicalResult ReduceScatterOp::verify() {
  FailureOr<int64_t> n = verifyAxes(*this);
  if (failed(n))
    return failure();
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t dim = getScatterDim();
  if (failed(verifyDimIndex(*this, "scatter_dim", dim, in.getRank())) ||
      failed(verifyKeptDims(*this, in, out, {dim})))
    return failure();
  if (in.getDimSize(dim) % *n != 0)
    return emitOpError("scatter_dim ")
           << dim << " of size " << in.getDimSize(dim)
           << " does not divide by the group size " << *n;
  if (out.getDimSize(dim) != in.getDimSize(dim) / *n)
    return emitOpError("scatter_dim ")
           << dim << " must shrink from " << in.getDimSize(dim) << " to "
           << in.getDimSize(dim) / *n << " (group size " << *n << "), got "
           << out.getDimSize(dim);
  return success();
}

LogicalResult AllToAllOp::verify() {
  FailureOr<int64_t> n = verifyAxes(*this);
  if (failed(n))
    return failure();
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t split = getSplitDim(), concat = getConcatDim();
  if (failed(verifyDimIndex(*this, "split_dim", split, in.getRank())) ||
      failed(verifyDimIndex(*this, "concat_dim", concat, in.getRank())) ||
      failed(verifyKeptDims(*this, in, out, {split, concat})))
    return failure();
  if (in.getDimSize(split) % *n != 0)
    return emitOpError("split_dim ")
           << split << " of size " << in.getDimSize(split)
           << " does not divide by the group size " << *n;
  SmallVector<int64_t> expected(in.getShape());
  expected[split] /= *n;
  expected[concat] *= *n;
  if (out.getShape() != ArrayRef<int64_t>(expected))
    return emitOpError("result shape must be ")
           << RankedTensorType::get(expected, in.getElementType())
           << " for group size " << *n << ", got " << out;
  return success();
}

LogicalResult CollectivePermuteOp::verify() { return verifyAxes(*this); }

static LogicalResult verifyPeerShift(Operation *op, int64_t shift) {
  if (shift == 0)
    return op->emitOpError("peer_shift must not be 0");
  return success();
}

LogicalResult SendOp::verify() {
  if (failed(verifyAxes(*this)))
    return failure();
  return verifyPeerShift(*this, getPeerShift());
}

LogicalResult RecvOp::verify() {
  if (failed(verifyAxes(*this)))
    return failure();
  return verifyPeerShift(*this, getPeerShift());
}
