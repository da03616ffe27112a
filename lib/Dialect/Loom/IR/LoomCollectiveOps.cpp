//===- LoomCollectiveOps.cpp - Verifiers of the collectives ---------------===//
//
// Shapes of collectives are local; each checks that the result is what the
// collective makes of the operand for the group spanned by `axes`. What needs
// the group's size is checked with the mesh, when symbol uses are verified
// (verifySymbolUses); the rest in the op's own verifier.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/runtime/Mesh.h"
#include "loom/runtime/TensorLimits.h"

#include "llvm/ADT/SmallSet.h"

using namespace mlir;
using namespace loom;

#include "loom/Dialect/Loom/IR/LoomInterfaces.cpp.inc"

MeshOp CollectiveOpInterface::getMeshOp(SymbolTableCollection *tables) {
  FlatSymbolRefAttr name = getMeshAttr();
  if (tables)
    return tables->lookupNearestSymbolFrom<MeshOp>(getOperation(), name);
  return SymbolTable::lookupNearestSymbolFrom<MeshOp>(getOperation(), name);
}

int64_t CollectiveOpInterface::getGroupSize(MeshAttr mesh) {
  SmallVector<int64_t> sizes;
  for (Attribute axis : getAxes())
    if (auto index = mesh.getAxisIndex(cast<StringAttr>(axis).getValue()))
      sizes.push_back(mesh.getAxisSizes()[*index]);
  // The mesh's own rank count bounds the product (its verifier checked it).
  return runtime::checkedMeshSize(sizes.data(), sizes.size());
}

/// Checks what needs no mesh: at least one axis, none twice.
static LogicalResult verifyAxisList(Operation *op) {
  auto collective = cast<CollectiveOpInterface>(op);
  if (collective.getAxes().empty())
    return op->emitOpError("needs at least one mesh axis");
  llvm::SmallSet<StringRef, 4> seen;
  for (Attribute axis : collective.getAxes()) {
    StringRef name = cast<StringAttr>(axis).getValue();
    if (!seen.insert(name).second)
      return op->emitOpError("axis '") << name << "' is listed twice";
  }
  return success();
}

/// Finds the op's mesh and checks its axes against it; returns the group
/// size.
static FailureOr<int64_t> verifyMeshAxes(Operation *op,
                                         SymbolTableCollection &tables) {
  auto collective = cast<CollectiveOpInterface>(op);
  MeshOp meshOp = collective.getMeshOp(&tables);
  if (!meshOp)
    return op->emitOpError("uses mesh ")
           << collective.getMeshAttr()
           << ", which no 'loom.mesh' of the module declares";
  MeshAttr mesh = meshOp.getShape();
  for (Attribute axis : collective.getAxes()) {
    StringRef name = cast<StringAttr>(axis).getValue();
    if (!mesh.getAxisIndex(name))
      return op->emitOpError("axis '")
             << name << "' is not an axis of mesh " << collective.getMeshAttr()
             << " " << mesh;
  }
  return collective.getGroupSize(mesh);
}

/// Every collective: the mesh, then its shapes for the group's size.
#define LOOM_COLLECTIVE_SYMBOL_USES(OP)                                        \
  LogicalResult OP::verifySymbolUses(SymbolTableCollection &tables) {          \
    FailureOr<int64_t> n = verifyMeshAxes(*this, tables);                      \
    if (failed(n))                                                             \
      return failure();                                                        \
    return verifyGroupShapes(*n);                                              \
  }
LOOM_COLLECTIVE_SYMBOL_USES(AllReduceOp)
LOOM_COLLECTIVE_SYMBOL_USES(AllGatherOp)
LOOM_COLLECTIVE_SYMBOL_USES(ReduceScatterOp)
LOOM_COLLECTIVE_SYMBOL_USES(AllToAllOp)
LOOM_COLLECTIVE_SYMBOL_USES(CollectivePermuteOp)
LOOM_COLLECTIVE_SYMBOL_USES(SendOp)
LOOM_COLLECTIVE_SYMBOL_USES(RecvOp)
#undef LOOM_COLLECTIVE_SYMBOL_USES

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

LogicalResult AllReduceOp::verify() { return verifyAxisList(*this); }
LogicalResult AllReduceOp::verifyGroupShapes(int64_t) { return success(); }

LogicalResult AllGatherOp::verify() {
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t dim = getGatherDim();
  if (failed(verifyAxisList(*this)) ||
      failed(verifyDimIndex(*this, "gather_dim", dim, in.getRank())) ||
      failed(verifyKeptDims(*this, in, out, {dim})))
    return failure();
  return success();
}

/// Checks that `size` times the group size `n` stays a valid dimension
/// (the product cannot overflow, and a program could hold it).
static LogicalResult verifyGrownDim(Operation *op, StringRef what, int64_t dim,
                                    int64_t size, int64_t n) {
  if (size <= runtime::kMaxTensorDim / n)
    return success();
  return op->emitOpError()
         << what << " " << dim << " of size " << size
         << " times the group size " << n
         << " exceeds the largest dimension a program holds (2^40)";
}

LogicalResult AllGatherOp::verifyGroupShapes(int64_t n) {
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t dim = getGatherDim();
  if (failed(verifyGrownDim(*this, "gather_dim", dim, in.getDimSize(dim), n)))
    return failure();
  if (out.getDimSize(dim) != in.getDimSize(dim) * n)
    return emitOpError("gather_dim ")
           << dim << " must grow from " << in.getDimSize(dim) << " to "
           << in.getDimSize(dim) * n << " (group size " << n << "), got "
           << out.getDimSize(dim);
  return success();
}

LogicalResult ReduceScatterOp::verify() {
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t dim = getScatterDim();
  if (failed(verifyAxisList(*this)) ||
      failed(verifyDimIndex(*this, "scatter_dim", dim, in.getRank())) ||
      failed(verifyKeptDims(*this, in, out, {dim})))
    return failure();
  return success();
}

LogicalResult ReduceScatterOp::verifyGroupShapes(int64_t n) {
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t dim = getScatterDim();
  if (in.getDimSize(dim) % n != 0)
    return emitOpError("scatter_dim ")
           << dim << " of size " << in.getDimSize(dim)
           << " does not divide by the group size " << n;
  if (out.getDimSize(dim) != in.getDimSize(dim) / n)
    return emitOpError("scatter_dim ")
           << dim << " must shrink from " << in.getDimSize(dim) << " to "
           << in.getDimSize(dim) / n << " (group size " << n << "), got "
           << out.getDimSize(dim);
  return success();
}

LogicalResult AllToAllOp::verify() {
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t split = getSplitDim(), concat = getConcatDim();
  if (failed(verifyAxisList(*this)) ||
      failed(verifyDimIndex(*this, "split_dim", split, in.getRank())) ||
      failed(verifyDimIndex(*this, "concat_dim", concat, in.getRank())) ||
      failed(verifyKeptDims(*this, in, out, {split, concat})))
    return failure();
  return success();
}

LogicalResult AllToAllOp::verifyGroupShapes(int64_t n) {
  auto in = tensorType(getInput()), out = tensorType(getResult());
  int64_t split = getSplitDim(), concat = getConcatDim();
  if (in.getDimSize(split) % n != 0)
    return emitOpError("split_dim ")
           << split << " of size " << in.getDimSize(split)
           << " does not divide by the group size " << n;
  if (failed(verifyGrownDim(*this, "concat_dim", concat, in.getDimSize(concat),
                            n)))
    return failure();
  SmallVector<int64_t> expected(in.getShape());
  expected[split] /= n;
  expected[concat] *= n;
  if (out.getShape() != ArrayRef<int64_t>(expected))
    return emitOpError("result shape must be ")
           << RankedTensorType::get(expected, in.getElementType())
           << " for group size " << n << ", got " << out;
  return success();
}

LogicalResult CollectivePermuteOp::verify() { return verifyAxisList(*this); }
LogicalResult CollectivePermuteOp::verifyGroupShapes(int64_t) {
  return success();
}

static LogicalResult verifyPeerShift(Operation *op, int64_t shift) {
  if (shift == 0)
    return op->emitOpError("peer_shift must not be 0");
  return success();
}

LogicalResult SendOp::verify() {
  if (failed(verifyAxisList(*this)))
    return failure();
  return verifyPeerShift(*this, getPeerShift());
}
LogicalResult SendOp::verifyGroupShapes(int64_t) { return success(); }

LogicalResult RecvOp::verify() {
  if (failed(verifyAxisList(*this)))
    return failure();
  return verifyPeerShift(*this, getPeerShift());
}
LogicalResult RecvOp::verifyGroupShapes(int64_t) { return success(); }

LogicalResult WaitOp::verify() {
  Operation *def = getInput().getDefiningOp();
  if (!def || !def->hasAttr(LoomDialect::kAsyncAttrName))
    return emitOpError("waits for a value that no asynchronous collective "
                       "(one marked 'loom.async') makes");
  if (def->getBlock() != (*this)->getBlock())
    return emitOpError("waits in another block than its collective's");
  return success();
}
