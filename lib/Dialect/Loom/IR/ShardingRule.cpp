//===- ShardingRule.cpp - Factor rules of how an op may be sharded --------===//

#include "loom/Dialect/Loom/IR/ShardingRule.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <numeric>
#include <optional>

using namespace mlir;
using namespace loom;

std::string loom::getFactorSymbol(int64_t index) {
  constexpr int64_t lastLetter = 'z' - 'i';
  if (index <= lastLetter)
    return std::string(1, static_cast<char>('i' + index));
  return "z_" + std::to_string(index - lastLetter);
}

static int64_t getRank(Type type) {
  auto shaped = dyn_cast<ShapedType>(type);
  return shaped && shaped.hasRank() ? shaped.getRank() : 0;
}

ShardingRule::ShardingRule(ArrayRef<int64_t> operandRanks,
                           ArrayRef<int64_t> resultRanks) {
  for (int64_t rank : operandRanks)
    operands.emplace_back(rank);
  for (int64_t rank : resultRanks)
    results.emplace_back(rank);
}

ShardingRule::ShardingRule(Operation *op)
    : ShardingRule(llvm::map_to_vector(op->getOperandTypes(), getRank),
                   llvm::map_to_vector(op->getResultTypes(), getRank)) {}

int64_t ShardingRule::addFactor(int64_t size, FactorKind kind) {
  factorSizes.push_back(size);
  factorKinds.push_back(kind);
  return factorSizes.size() - 1;
}

void ShardingRule::addOperandFactor(unsigned operand, int64_t dim,
                                    int64_t factor) {
  operands[operand][dim].push_back(factor);
}

void ShardingRule::addResultFactor(unsigned result, int64_t dim,
                                   int64_t factor) {
  results[result][dim].push_back(factor);
}

ShardingRule ShardingRule::getPointwise(Operation *op) {
  ShardingRule rule(op);
  auto shape = cast<ShapedType>(op->getResult(0).getType()).getShape();
  // Tensors of another shape (adamw's scalar step and learning rate) take
  // no part.
  auto sameShape = [&](Value v) {
    return cast<ShapedType>(v.getType()).getShape() == shape;
  };
  SmallVector<TensorFactors *> tensors;
  for (auto [operand, factors] : llvm::zip(op->getOperands(), rule.operands))
    if (sameShape(operand))
      tensors.push_back(&factors);
  for (auto [result, factors] : llvm::zip(op->getResults(), rule.results))
    if (sameShape(result))
      tensors.push_back(&factors);
  for (auto [dim, size] : llvm::enumerate(shape)) {
    int64_t factor = rule.addFactor(size);
    for (TensorFactors *tensor : tensors)
      (*tensor)[dim].push_back(factor);
  }
  return rule;
}

//===----------------------------------------------------------------------===//
// Reshape
//===----------------------------------------------------------------------===//

namespace {
/// One side of a reshape, split into factors from its major end. `placed`
/// is the product of the factors placed so far: the number of blocks the
/// linear index has been cut into, which both sides must agree on for a
/// factor to be shared.
struct ReshapeSide {
  ArrayRef<int64_t> shape;
  ShardingRule::TensorFactors *dims;
  size_t dim = 0;
  int64_t placed = 1;
  /// Product of the sizes of dimensions 0..dim.
  int64_t end = 1;

  bool done() const { return dim == shape.size(); }
  /// The part of the current dimension no factor covers yet.
  int64_t remaining() const { return end / placed; }
};
} // namespace

/// Divisors of `n` > 0 in increasing order.
static SmallVector<int64_t> getDivisors(int64_t n) {
  SmallVector<int64_t> low, high;
  for (int64_t d = 1; d * d <= n; ++d) {
    if (n % d)
      continue;
    low.push_back(d);
    if (d != n / d)
      high.push_back(n / d);
  }
  low.append(high.rbegin(), high.rend());
  return low;
}

ShardingRule ShardingRule::getReshape(ArrayRef<int64_t> inShape,
                                      ArrayRef<int64_t> outShape) {
  ShardingRule rule({static_cast<int64_t>(inShape.size())},
                    {static_cast<int64_t>(outShape.size())});
  // Without elements nothing lines up: each dimension is its own factor.
  if (llvm::is_contained(inShape, 0) || llvm::is_contained(outShape, 0)) {
    for (auto [dim, size] : llvm::enumerate(inShape))
      rule.addOperandFactor(0, dim, rule.addFactor(size));
    for (auto [dim, size] : llvm::enumerate(outShape))
      rule.addResultFactor(0, dim, rule.addFactor(size));
    return rule;
  }

  auto side = [](ArrayRef<int64_t> shape, TensorFactors &dims) {
    return ReshapeSide{shape, &dims, 0, 1, shape.empty() ? 1 : shape[0]};
  };
  ReshapeSide in = side(inShape, rule.operands[0]);
  ReshapeSide out = side(outShape, rule.results[0]);
  auto place = [&](ReshapeSide &side, int64_t factor) {
    (*side.dims)[side.dim].push_back(factor);
    side.placed *= rule.getFactorSize(factor);
  };
  // Moves past covered dimensions; a size-1 dimension holds no piece of the
  // other side and gets a factor of its own.
  auto settle = [&](ReshapeSide &side) {
    while (!side.done()) {
      if (side.shape[side.dim] == 1 && (*side.dims)[side.dim].empty())
        place(side, rule.addFactor(1));
      if (side.placed < side.end)
        return;
      if (++side.dim < side.shape.size())
        side.end *= side.shape[side.dim];
    }
  };

  settle(in);
  settle(out);
  while (!in.done() && !out.done()) {
    int64_t remIn = in.remaining(), remOut = out.remaining();
    // Both sides cut at the same block: the largest piece both current
    // dimensions can take next is shared.
    if (in.placed == out.placed) {
      if (int64_t common = std::gcd(remIn, remOut); common > 1) {
        int64_t factor = rule.addFactor(common);
        place(in, factor);
        place(out, factor);
        settle(in);
        settle(out);
        continue;
      }
    }
    // Otherwise the sides must meet again at some cut `meet` that both
    // current dimensions reach; the smallest one leaves the most to share.
    // The pieces up to it belong to one side only.
    int64_t lower = std::min(in.placed, out.placed);
    std::optional<int64_t> meet;
    for (int64_t step : getDivisors(remIn)) {
      int64_t cut = in.placed * step;
      if (cut > lower && cut % out.placed == 0 &&
          remOut % (cut / out.placed) == 0) {
        meet = cut;
        break;
      }
    }
    if (meet) {
      if (*meet > in.placed)
        place(in, rule.addFactor(*meet / in.placed));
      if (*meet > out.placed)
        place(out, rule.addFactor(*meet / out.placed));
    } else {
      // No cut in reach: the dimension that ends first keeps the rest of
      // itself as a factor of its own.
      int64_t inEnd = in.end, outEnd = out.end;
      if (inEnd <= outEnd)
        place(in, rule.addFactor(remIn));
      if (outEnd <= inEnd)
        place(out, rule.addFactor(remOut));
    }
    settle(in);
    settle(out);
  }
  return rule;
}

//===----------------------------------------------------------------------===//
// Verification and printing
//===----------------------------------------------------------------------===//

LogicalResult ShardingRule::verify(Operation *op) const {
  SmallVector<bool> used(getNumFactors(), false);
  auto check = [&](StringRef what, TypeRange types,
                   ArrayRef<TensorFactors> tensors) -> LogicalResult {
    if (types.size() != tensors.size())
      return op->emitOpError("sharding rule maps ")
             << tensors.size() << " " << what << "s but the op has "
             << types.size();
    for (auto [index, type, tensor] : llvm::enumerate(types, tensors)) {
      auto shape = isa<ShapedType>(type) ? cast<ShapedType>(type).getShape()
                                         : ArrayRef<int64_t>();
      if (shape.size() != tensor.size())
        return op->emitOpError("sharding rule gives ")
               << what << " #" << index << " " << tensor.size()
               << " dimensions but it has rank " << shape.size();
      for (auto [dim, factors] : llvm::enumerate(tensor)) {
        int64_t product = 1;
        for (int64_t factor : factors) {
          if (factor < 0 || factor >= getNumFactors())
            return op->emitOpError("sharding rule uses factor #")
                   << factor << " of " << getNumFactors();
          used[factor] = true;
          product *= getFactorSize(factor);
        }
        if (factors.empty())
          return op->emitOpError("sharding rule: dimension ")
                 << dim << " of " << what << " #" << index << " has no factor";
        if (product != shape[dim])
          return op->emitOpError("sharding rule: dimension ")
                 << dim << " of " << what << " #" << index << " has size "
                 << shape[dim] << " but its factors multiply to " << product;
      }
    }
    return success();
  };
  if (failed(check("operand", op->getOperandTypes(), operands)) ||
      failed(check("result", op->getResultTypes(), results)))
    return failure();
  if (const bool *unused = llvm::find(used, false); unused != used.end()) {
    int64_t factor = unused - used.begin();
    return op->emitOpError("sharding rule: factor ")
           << getFactorSymbol(factor) << "=" << getFactorSize(factor)
           << " is in no operand or result";
  }
  return success();
}

static void printTensors(raw_ostream &os,
                         ArrayRef<ShardingRule::TensorFactors> tensors) {
  os << "(";
  llvm::interleaveComma(tensors, os, [&](const auto &tensor) {
    os << "[";
    llvm::interleaveComma(tensor, os, [&](const auto &factors) {
      for (int64_t factor : factors)
        os << getFactorSymbol(factor);
    });
    os << "]";
  });
  os << ")";
}

void ShardingRule::print(raw_ostream &os) const {
  printTensors(os, operands);
  os << "->";
  printTensors(os, results);
  if (factorSizes.empty())
    return;
  os << " {";
  llvm::interleaveComma(
      llvm::seq<int64_t>(getNumFactors()), os, [&](int64_t factor) {
        os << getFactorSymbol(factor) << "=" << getFactorSize(factor);
      });
  os << "}";
  for (auto [kind, name] : {std::pair{FactorKind::Reduction, "reduction"},
                            {FactorKind::NeedReplication, "need_replication"},
                            {FactorKind::OwnPartition, "own_partition"}}) {
    SmallVector<int64_t> factors = llvm::filter_to_vector(
        llvm::seq<int64_t>(getNumFactors()),
        [&, kind = kind](int64_t f) { return getFactorKind(f) == kind; });
    if (factors.empty())
      continue;
    os << " " << name << "={";
    llvm::interleaveComma(factors, os,
                          [&](int64_t f) { os << getFactorSymbol(f); });
    os << "}";
  }
}

std::string ShardingRule::str() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  print(os);
  return text;
}
