//===- ShapeChecks.cpp - Shape checks shared by the loom op verifiers -----===//

#include "ShapeChecks.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace loom;

std::string loom::shapeString(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleaveComma(shape, os);
  os << "]";
  return s;
}

FailureOr<RankedTensorType> loom::staticTensor(Value v, StringRef what,
                                               const ShapeErrors &err) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || !type.hasStaticShape()) {
    (void)err.fail(what, " must be a statically shaped tensor, got ",
                   v.getType());
    return failure();
  }
  return type;
}

FailureOr<int64_t> loom::normalizeDim(int64_t dim, int64_t rank, StringRef what,
                                      const ShapeErrors &err) {
  int64_t d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= rank) {
    (void)err.fail(what, " ", dim, " is out of range for rank ", rank);
    return failure();
  }
  return d;
}

LogicalResult loom::verifyNormWeight(Operation *op, RankedTensorType input,
                                     Value weight, StringRef what) {
  auto type = cast<RankedTensorType>(weight.getType());
  if (input.getRank() < 1)
    return op->emitOpError("input must have rank >= 1");
  if (type.getRank() != 1)
    return op->emitOpError()
           << what << " must be a vector, got rank " << type.getRank();
  int64_t hidden = input.getShape().back();
  if (type.getDimSize(0) != hidden)
    return op->emitOpError() << what << " has size " << type.getDimSize(0)
                             << " but the normalized (last) dimension of the "
                                "input has size "
                             << hidden;
  if (type.getElementType() != input.getElementType())
    return op->emitOpError()
           << what << " element type " << type.getElementType()
           << " differs from the input's " << input.getElementType();
  return success();
}

LogicalResult loom::verifyLogSumExp(Operation *op, Value logsumexp,
                                    ArrayRef<int64_t> positions) {
  if (!logsumexp)
    return success();
  auto type = cast<RankedTensorType>(logsumexp.getType());
  if (!type.getElementType().isF32() || type.getShape() != positions)
    return op->emitOpError("logsumexp must be f32 of the positions' shape ")
           << shapeString(positions) << ", got " << type;
  return success();
}

LogicalResult loom::verifyEpsilon(Operation *op, double epsilon) {
  if (!(epsilon > 0.0))
    return op->emitOpError() << "epsilon must be positive, got " << epsilon;
  return success();
}

FailureOr<RankedTensorType>
loom::checkAttentionOperands(Value query, Value key, Value value,
                             std::optional<int64_t> queryOffset,
                             const ShapeErrors &err) {
  auto q = staticTensor(query, "query", err);
  auto k = staticTensor(key, "key", err);
  auto v = staticTensor(value, "value", err);
  if (failed(q) || failed(k) || failed(v))
    return failure();
  for (auto [name, type] : {std::pair{"query", *q}, {"key", *k}, {"value", *v}})
    if (type.getRank() != 4) {
      (void)err.fail(name, " must be [batch, seq, heads, head_dim], got rank ",
                     type.getRank());
      return failure();
    }
  if (k->getShape() != v->getShape()) {
    (void)err.fail("key shape ", shapeString(k->getShape()),
                   " differs from value shape ", shapeString(v->getShape()));
    return failure();
  }
  if (q->getElementType() != k->getElementType() ||
      q->getElementType() != v->getElementType()) {
    (void)err.fail("query, key and value must have one element type");
    return failure();
  }
  static const char *dimNames[] = {"batch (dim 0)", "", "", "head_dim (dim 3)"};
  for (int dim : {0, 3})
    if (q->getDimSize(dim) != k->getDimSize(dim)) {
      (void)err.fail(dimNames[dim], " of query is ", q->getDimSize(dim),
                     " but of key/value is ", k->getDimSize(dim));
      return failure();
    }
  // The queries are a piece of the keys' sequence (all of it but under
  // context parallelism).
  if (queryOffset && (*queryOffset < 0 ||
                      *queryOffset + q->getDimSize(1) > k->getDimSize(1))) {
    (void)err.fail("query positions ", *queryOffset, " .. ",
                   *queryOffset + q->getDimSize(1) - 1,
                   " (query_offset + sequence, dim 1) lie outside the ",
                   k->getDimSize(1), " key/value positions");
    return failure();
  }
  int64_t qHeads = q->getDimSize(2), kvHeads = k->getDimSize(2);
  if (kvHeads == 0 || qHeads % kvHeads != 0) {
    (void)err.fail("query heads (", qHeads,
                   ") must be a multiple of key/value heads (", kvHeads, ")");
    return failure();
  }
  return *q;
}

LogicalResult loom::checkExpertBlock(int64_t start,
                                     std::optional<int64_t> total,
                                     int64_t local, const ShapeErrors &err) {
  int64_t all = total.value_or(local);
  if (start < 0 || start + local > all)
    return err.fail("experts ", start, " .. ", start + local - 1,
                    " (expert_start + the experts held) lie outside the ", all,
                    " experts (total_experts)");
  return success();
}

LogicalResult loom::checkTokenGroups(int64_t groups, int64_t tokens,
                                     int64_t slots, const ShapeErrors &err) {
  if (groups < 1 || tokens % groups != 0 || slots % groups != 0)
    return err.fail("token_groups (", groups, ") must be >= 1 and divide the ",
                    tokens, " tokens and the ", slots,
                    " slots of each expert (capacity)");
  return success();
}

LogicalResult loom::checkRouting(RankedTensorType routing, StringRef what,
                                 int64_t tokens, const ShapeErrors &err) {
  if (routing.getRank() != 2)
    return err.fail(what, " must be [tokens, top_k], got rank ",
                    routing.getRank());
  if (routing.getDimSize(0) != tokens)
    return err.fail(what, " has ", routing.getDimSize(0),
                    " tokens (dim 0) but the input has ", tokens);
  return success();
}
