//===- OverlapGradReduce.cpp - Bucketed, asynchronous gradient reductions -===//
//
// Megatron-LM's `--overlap-grad-reduce` on a partitioned step: the
// data-parallel reductions of parameter gradients (all_reduce, or
// reduce_scatter under ZeRO, over the data-parallel axis alone) are grouped
// into buckets in the order backward makes their gradients, each bucket one
// collective over a flat buffer:
//
//   flat = concat(flatten(g_1), ..., flatten(g_k))     after g_k is made
//   r    = all_reduce sum flat {loom.async}            (or reduce_scatter)
//   ...  backward of earlier layers goes on ...
//   w    = loom.wait r                                 before the first use
//   g_i' = reshape(slice(w, offset_i, size_i))         of any reduced g_i
//
// A reduce_scatter bucket lays each gradient out as [n, piece] (its split
// dimension's pieces first, a transpose when that dimension is not the
// first), concatenates along the piece and scatters the rows, so that each
// rank keeps exactly the pieces the unbucketed reduce_scatters gave it.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Sharding/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"

namespace loom {
#define GEN_PASS_DEF_LOOMOVERLAPGRADREDUCEPASS
#include "loom/Sharding/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;

namespace {

/// One gradient reduction the pass may bucket.
struct Reduction {
  Operation *op;    ///< the all_reduce or reduce_scatter
  Operation *ready; ///< the op that makes its operand
  int64_t readyPos; ///< ready's position in the block
  Operation *firstUse;
  int64_t firstUsePos;
  int64_t bytes; ///< of the operand
};

struct Bucket {
  SmallVector<Reduction> members;
  int64_t bytes = 0;
  int64_t firstUsePos = std::numeric_limits<int64_t>::max();
  Operation *firstUse = nullptr;
};

/// Whether `v` reaches the gradient operand of an AdamW update through ops
/// that only move, add or scale it (accumulation, reshapes, conversions).
bool feedsOptimizer(Value v) {
  SmallVector<Value> work = {v};
  llvm::SmallPtrSet<Value, 8> seen;
  while (!work.empty()) {
    Value x = work.pop_back_val();
    if (!seen.insert(x).second || seen.size() > 64)
      continue;
    for (OpOperand &use : x.getUses()) {
      Operation *user = use.getOwner();
      if (isa<AdamWOp>(user) && use.getOperandNumber() == 1)
        return true;
      if (isa<AddOp, ReshapeOp, ConvertOp, ScaleOp, WaitOp>(user))
        work.push_back(user->getResult(0));
    }
  }
  return false;
}

int64_t bytesOf(Type type) {
  auto t = cast<RankedTensorType>(type);
  return t.getNumElements() *
         std::max<int64_t>(1, t.getElementType().getIntOrFloatBitWidth() / 8);
}

class Bucketer {
public:
  Bucketer(func::FuncOp func, StringRef axes, int64_t bucketBytes)
      : func(func), bucketBytes(bucketBytes), b(func.getContext()) {
    llvm::SplitString(axes, dataAxes, ",");
  }

  /// Buckets the function's gradient reductions; returns how many buckets.
  int64_t run();

private:
  std::optional<Reduction> candidate(Operation *op);
  void emit(Bucket &bucket);
  /// `g`'s operand laid out flat for its bucket: [numel] for an all-reduce,
  /// [n, numel / n] for a reduce-scatter (its pieces as rows).
  Value flatten(const Reduction &r);

  func::FuncOp func;
  /// The data-parallel axes: a reduction over some of them is a candidate.
  SmallVector<StringRef> dataAxes;
  int64_t bucketBytes;
  OpBuilder b;
  DenseMap<Operation *, int64_t> position;
};

std::optional<Reduction> Bucketer::candidate(Operation *op) {
  auto collective = dyn_cast<CollectiveOpInterface>(op);
  if (!collective || !isa<AllReduceOp, ReduceScatterOp>(op) ||
      op->hasAttr(LoomDialect::kAsyncAttrName))
    return std::nullopt;
  if (auto ar = dyn_cast<AllReduceOp>(op);
      ar && ar.getReduction() != CollectiveReduction::sum)
    return std::nullopt;
  if (auto rs = dyn_cast<ReduceScatterOp>(op);
      rs && rs.getReduction() != CollectiveReduction::sum)
    return std::nullopt;
  ArrayAttr axes = collective.getAxes();
  if (axes.empty() || llvm::any_of(axes, [&](Attribute a) {
        return !llvm::is_contained(dataAxes, cast<StringAttr>(a).getValue());
      }))
    return std::nullopt;
  Value input = op->getOperand(0);
  Operation *ready = input.getDefiningOp();
  if (!ready || ready->getBlock() != op->getBlock() ||
      !feedsOptimizer(op->getResult(0)))
    return std::nullopt;
  auto type = cast<RankedTensorType>(input.getType());
  if (!type.getElementType().isIntOrFloat() || type.getNumElements() == 0)
    return std::nullopt;
  Reduction r{op,
              ready,
              position.lookup(ready),
              nullptr,
              std::numeric_limits<int64_t>::max(),
              bytesOf(type)};
  for (Operation *user : op->getResult(0).getUsers()) {
    if (user->getBlock() != op->getBlock())
      return std::nullopt;
    if (position.lookup(user) < r.firstUsePos) {
      r.firstUsePos = position.lookup(user);
      r.firstUse = user;
    }
  }
  if (!r.firstUse)
    return std::nullopt;
  return r;
}

Value Bucketer::flatten(const Reduction &r) {
  Value input = r.op->getOperand(0);
  auto type = cast<RankedTensorType>(input.getType());
  Location loc = r.op->getLoc();
  int64_t numel = type.getNumElements();
  auto rs = dyn_cast<ReduceScatterOp>(r.op);
  if (!rs) {
    if (type.getRank() == 1)
      return input;
    return ReshapeOp::create(b, loc, type.clone({numel}), input);
  }
  int64_t dim = rs.getScatterDim();
  auto result = cast<RankedTensorType>(rs.getType());
  int64_t n = type.getDimSize(dim) / result.getDimSize(dim);
  int64_t outer = 1;
  for (int64_t d = 0; d < dim; ++d)
    outer *= type.getDimSize(d);
  int64_t piece = numel / (outer * n);
  if (outer == 1)
    return ReshapeOp::create(b, loc, type.clone({n, piece}), input);
  Value v = ReshapeOp::create(b, loc, type.clone({outer, n, piece}), input);
  v = TransposeOp::create(b, loc, type.clone({n, outer, piece}), v,
                          b.getDenseI64ArrayAttr({1, 0, 2}));
  return ReshapeOp::create(b, loc, type.clone({n, outer * piece}), v);
}

void Bucketer::emit(Bucket &bucket) {
  Operation *first = bucket.members.front().op;
  auto collective = cast<CollectiveOpInterface>(first);
  bool scatter = isa<ReduceScatterOp>(first);
  Location loc = bucket.members.back().op->getLoc();
  // The bucket starts right after its last gradient is made.
  Operation *last = bucket.members.back().ready;
  for (const Reduction &r : bucket.members)
    if (r.readyPos > position.lookup(last))
      last = r.ready;
  b.setInsertionPointAfter(last);
  SmallVector<Value> pieces;
  SmallVector<int64_t> widths;
  for (const Reduction &r : bucket.members) {
    pieces.push_back(flatten(r));
    widths.push_back(
        cast<RankedTensorType>(pieces.back().getType()).getShape().back());
  }
  auto pieceType = cast<RankedTensorType>(pieces.front().getType());
  int64_t total = 0;
  for (int64_t w : widths)
    total += w;
  int64_t n = scatter ? pieceType.getDimSize(0) : 1;
  RankedTensorType flatType =
      scatter ? pieceType.clone({n, total}) : pieceType.clone({total});
  Value flat = pieces.front();
  if (pieces.size() > 1)
    flat = ConcatOp::create(b, loc, flatType, pieces,
                            b.getI64IntegerAttr(scatter ? 1 : 0));
  auto sum =
      CollectiveReductionAttr::get(b.getContext(), CollectiveReduction::sum);
  auto mesh = FlatSymbolRefAttr::get(b.getContext(),
                                     collective.getMeshAttr().getValue());
  Operation *reduce;
  if (scatter)
    reduce = ReduceScatterOp::create(b, loc, flatType.clone({1, total}), flat,
                                     sum, mesh, collective.getAxes(),
                                     b.getI64IntegerAttr(0));
  else
    reduce = AllReduceOp::create(b, loc, flatType, flat, sum, mesh,
                                 collective.getAxes());
  reduce->setAttr(LoomDialect::kAsyncAttrName, b.getUnitAttr());

  // The wait goes right before the first use of any reduced gradient; each
  // gradient is cut out of the bucket there.
  b.setInsertionPoint(bucket.firstUse);
  Value done = WaitOp::create(b, loc, reduce->getResult(0));
  int64_t offset = 0;
  for (auto [r, width] : llvm::zip(bucket.members, widths)) {
    auto want = cast<RankedTensorType>(r.op->getResult(0).getType());
    auto doneType = cast<RankedTensorType>(done.getType());
    Value v = done;
    if (width != doneType.getShape().back()) {
      SmallVector<int64_t> offsets(doneType.getRank(), 0), sizes;
      offsets.back() = offset;
      sizes.assign(doneType.getShape().begin(), doneType.getShape().end());
      sizes.back() = width;
      v = SliceOp::create(b, r.op->getLoc(), v, b.getDenseI64ArrayAttr(offsets),
                          b.getDenseI64ArrayAttr(sizes));
    }
    if (v.getType() != want)
      v = ReshapeOp::create(b, r.op->getLoc(), want, v);
    offset += width;
    r.op->getResult(0).replaceAllUsesWith(v);
    r.op->erase();
  }
}

int64_t Bucketer::run() {
  Block &block = func.getBody().front();
  int64_t index = 0;
  for (Operation &op : block)
    position[&op] = index++;
  SmallVector<Reduction> found;
  for (Operation &op : block)
    if (std::optional<Reduction> r = candidate(&op))
      found.push_back(*r);
  // Gradients in the order backward makes them (ties: program order).
  llvm::stable_sort(found, [](const Reduction &x, const Reduction &y) {
    return x.readyPos < y.readyPos;
  });
  // One bucket open per kind of collective, element type and axes (under
  // MoE folding the experts' gradients reduce over fewer data axes): a
  // bucket is one collective over one flat buffer.
  llvm::MapVector<std::tuple<OperationName, Type, Attribute>, Bucket> open;
  SmallVector<Bucket> done;
  for (const Reduction &r : found) {
    Type element =
        cast<ShapedType>(r.op->getOperand(0).getType()).getElementType();
    std::tuple<OperationName, Type, Attribute> key{
        r.op->getName(), element, cast<CollectiveOpInterface>(r.op).getAxes()};
    Bucket &bucket = open[key];
    // A bucket must start before any of its gradients is used.
    if (!bucket.members.empty() && r.readyPos >= bucket.firstUsePos) {
      done.push_back(std::move(bucket));
      bucket = Bucket();
    }
    bucket.members.push_back(r);
    bucket.bytes += r.bytes;
    if (r.firstUsePos < bucket.firstUsePos) {
      bucket.firstUsePos = r.firstUsePos;
      bucket.firstUse = r.firstUse;
    }
    if (bucket.bytes >= bucketBytes) {
      done.push_back(std::move(bucket));
      bucket = Bucket();
    }
  }
  for (auto &entry : open)
    if (!entry.second.members.empty())
      done.push_back(std::move(entry.second));
  // Emitted in the order their last gradient is made.
  llvm::stable_sort(done, [](const Bucket &x, const Bucket &y) {
    return x.members.back().readyPos < y.members.back().readyPos;
  });
  for (Bucket &bucket : done)
    emit(bucket);
  return done.size();
}

struct LoomOverlapGradReducePass
    : public loom::impl::LoomOverlapGradReducePassBase<
          LoomOverlapGradReducePass> {
  using LoomOverlapGradReducePassBase::LoomOverlapGradReducePassBase;

  void runOnOperation() override {
    if (bucketSize < 1) {
      getOperation().emitError("-loom-overlap-grad-reduce: bucket-size must "
                               "be at least 1 byte, got ")
          << static_cast<int64_t>(bucketSize);
      return signalPassFailure();
    }
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal() || !func.getBody().hasOneBlock())
        continue;
      int64_t buckets = Bucketer(func, axis, bucketSize).run();
      if (report)
        emitRemark(func.getLoc()) << "overlap-grad-reduce: " << buckets
                                  << " bucket(s) over '" << axis << "'";
    }
  }
};

} // namespace
