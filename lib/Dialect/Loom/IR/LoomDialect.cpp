//===- LoomDialect.cpp - The loom dialect ---------------------------------===//

#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace loom;

#include "loom/Dialect/Loom/IR/LoomDialect.cpp.inc"

namespace {
/// Prints meshes once at the top of a module as `#mesh = #loom.mesh<...>`.
struct LoomOpAsmInterface : public OpAsmDialectInterface {
  using OpAsmDialectInterface::OpAsmDialectInterface;

  AliasResult getAlias(Attribute attr, raw_ostream &os) const override {
    if (isa<MeshAttr>(attr)) {
      os << "mesh";
      return AliasResult::OverridableAlias;
    }
    return AliasResult::NoAlias;
  }
};
} // namespace

void LoomDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "loom/Dialect/Loom/IR/LoomOps.cpp.inc"
      >();
  registerAttributes();
  addInterfaces<LoomOpAsmInterface>();
}

/// Finds the mesh in force for `op`: its own `loom.mesh` or an ancestor's.
static MeshAttr findEnclosingMesh(Operation *op) {
  for (; op; op = op->getParentOp())
    if (auto mesh = op->getAttrOfType<MeshAttr>(LoomDialect::kMeshAttrName))
      return mesh;
  return {};
}

LogicalResult LoomDialect::verifyRegionArgAttribute(Operation *op,
                                                    unsigned regionIndex,
                                                    unsigned argIndex,
                                                    NamedAttribute attr) {
  auto emitError = [&]() {
    return op->emitOpError() << "argument #" << argIndex << " ";
  };
  if (attr.getName() == kParamAttrName || attr.getName() == kInputAttrName) {
    auto name = dyn_cast<StringAttr>(attr.getValue());
    if (!name || name.getValue().empty())
      return emitError() << "'" << attr.getName().getValue()
                         << "' must be a non-empty string naming the value";
    return success();
  }
  if (attr.getName() == kOffsetAttrName) {
    auto offset = dyn_cast<IntegerAttr>(attr.getValue());
    if (!offset || offset.getInt() < 0)
      return emitError() << "'" << kOffsetAttrName
                         << "' must be a non-negative integer";
    return success();
  }
  if (attr.getName() == kShardingAttrName) {
    auto sharding = dyn_cast<ShardingAttr>(attr.getValue());
    if (!sharding)
      return emitError() << "'" << kShardingAttrName
                         << "' must be a #loom.sharding";
    Region &region = op->getRegion(regionIndex);
    if (region.empty())
      return success();
    auto type = dyn_cast<ShapedType>(region.getArgument(argIndex).getType());
    MeshAttr mesh = findEnclosingMesh(op);
    if (!type || !mesh)
      return emitError() << "'" << kShardingAttrName
                         << "' needs a tensor argument and a '" << kMeshAttrName
                         << "' on the function or module";
    return sharding.verifyFor(mesh, type, emitError);
  }
  return emitError() << "has unknown loom attribute '"
                     << attr.getName().getValue() << "'";
}

LogicalResult LoomDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  if (attr.getName() == kMeshAttrName) {
    if (!isa<MeshAttr>(attr.getValue()))
      return op->emitOpError()
             << "'" << kMeshAttrName << "' must be a #loom.mesh";
    return success();
  }
  if (attr.getName() == kOffsetsAttrName) {
    auto offsets = dyn_cast<DenseI64ArrayAttr>(attr.getValue());
    if (!offsets ||
        offsets.size() != static_cast<int64_t>(op->getNumResults()) ||
        llvm::any_of(offsets.asArrayRef(), [](int64_t o) { return o < 0; }))
      return op->emitOpError()
             << "'" << kOffsetsAttrName
             << "' must hold one non-negative offset per result";
    return success();
  }
  if (attr.getName() == kArenaSizeAttrName) {
    auto size = dyn_cast<IntegerAttr>(attr.getValue());
    if (!size || size.getInt() < 0)
      return op->emitOpError()
             << "'" << kArenaSizeAttrName << "' must be a non-negative integer";
    return success();
  }
  if (attr.getName() == kModelAttrName) {
    if (!isa<StringAttr>(attr.getValue()))
      return op->emitOpError() << "'" << kModelAttrName << "' must be a string";
    return success();
  }
  return op->emitOpError() << "has unknown loom attribute '"
                           << attr.getName().getValue() << "'";
}

LogicalResult LoomDialect::verifyRegionResultAttribute(Operation *op,
                                                       unsigned regionIndex,
                                                       unsigned resultIndex,
                                                       NamedAttribute attr) {
  if (attr.getName() == kOutputAttrName) {
    auto name = dyn_cast<StringAttr>(attr.getValue());
    if (!name || name.getValue().empty())
      return op->emitOpError()
             << "result #" << resultIndex << " '" << kOutputAttrName
             << "' must be a non-empty string naming the output";
    return success();
  }
  return op->emitOpError() << "result #" << resultIndex
                           << " has unknown loom attribute '"
                           << attr.getName().getValue() << "'";
}
