//===- LoomFolders.cpp - Folders of the loom ops --------------------------===//
//
// A chain of shape ops folds into one: the graphs the builders and autodiff
// emit reshape heads in and out and transpose cotangents back, and each op
// left in a chain is a kernel launch and a copy at run time.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"

using namespace mlir;
using namespace loom;

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

OpFoldResult ConvertOp::fold(FoldAdaptor) {
  // Converting to the same element type changes nothing.
  if (getInput().getType() == getResult().getType())
    return getInput();
  return {};
}

OpFoldResult ReshapeOp::fold(FoldAdaptor) {
  // Reshapes keep the element order, so a chain of them is one reshape of
  // the first input.
  bool changed = false;
  if (auto inner = getInput().getDefiningOp<ReshapeOp>()) {
    getInputMutable().assign(inner.getInput());
    changed = true;
  }
  if (getInput().getType() == getResult().getType())
    return getInput();
  return changed ? getResult() : OpFoldResult();
}

OpFoldResult TransposeOp::fold(FoldAdaptor) {
  ArrayRef<int64_t> permutation = getPermutation();
  if (llvm::equal(permutation, llvm::seq<int64_t>(permutation.size())))
    return getInput();
  auto inner = getInput().getDefiningOp<TransposeOp>();
  if (!inner)
    return {};
  // Result dimension i is the inner result's dimension permutation[i],
  // which is the inner input's dimension inner.permutation[permutation[i]].
  SmallVector<int64_t> composed = llvm::map_to_vector(
      permutation, [&](int64_t dim) { return inner.getPermutation()[dim]; });
  if (llvm::equal(composed, llvm::seq<int64_t>(composed.size())))
    return inner.getInput();
  setPermutation(composed);
  getInputMutable().assign(inner.getInput());
  return getResult();
}

OpFoldResult BroadcastOp::fold(FoldAdaptor) {
  if (getInput().getType() == getResult().getType())
    return getInput();
  auto inner = getInput().getDefiningOp<BroadcastOp>();
  if (!inner)
    return {};
  // Inner input dimension i lands in the inner result's dimension
  // inner.dims[i], which lands in dims[inner.dims[i]]. Each dimension of the
  // inner input is 1 or equal to where it lands, so it still is.
  if (inner.getInput().getType() == getResult().getType())
    return inner.getInput();
  SmallVector<int64_t> composed = llvm::map_to_vector(
      inner.getDims(), [&](int64_t dim) { return getDims()[dim]; });
  setDims(composed);
  getInputMutable().assign(inner.getInput());
  return getResult();
}
