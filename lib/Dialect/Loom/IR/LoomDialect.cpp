//===- LoomDialect.cpp - The loom dialect ---------------------------------===//

#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace loom;

#include "loom/Dialect/Loom/IR/LoomDialect.cpp.inc"

/// One more than the largest integer attribute `name` under `root`, at
/// least `none`.
static int64_t countTagged(Operation *root, StringRef name, int64_t none) {
  int64_t count = none;
  root->walk([&](Operation *op) {
    if (auto tag = op->getAttrOfType<IntegerAttr>(name))
      count = std::max(count, tag.getInt() + 1);
  });
  return count;
}

int64_t LoomDialect::getMicrobatchCount(Operation *root) {
  return countTagged(root, kMicrobatchAttrName, 1);
}

int64_t LoomDialect::getLayerCount(Operation *root) {
  return countTagged(root, kLayerAttrName, 0);
}

void LoomDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "loom/Dialect/Loom/IR/LoomOps.cpp.inc"
      >();
  registerAttributes();
}
