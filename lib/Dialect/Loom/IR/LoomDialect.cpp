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
                         << "' needs a tensor argument and a '"
                         << kMeshAttrName << "' on the function or module";
    return sharding.verifyFor(mesh, type, emitError);
  }
  return emitError() << "has unknown loom attribute '" << attr.getName().getValue()
                     << "'";
}

LogicalResult LoomDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  if (attr.getName() == kMeshAttrName) {
    if (!isa<MeshAttr>(attr.getValue()))
      return op->emitOpError()
             << "'" << kMeshAttrName << "' must be a #loom.mesh";
    return success();
  }
  if (attr.getName() == kModelAttrName) {
    if (!isa<StringAttr>(attr.getValue()))
      return op->emitOpError()
             << "'" << kModelAttrName << "' must be a string";
    return success();
  }
  return op->emitOpError() << "has unknown loom attribute '"
                           << attr.getName().getValue() << "'";
}
