//===- LoomAttrs.cpp - Mesh and sharding attributes -----------------------===//

#include "loom/Dialect/Loom/IR/LoomAttrs.h"
#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/runtime/Mesh.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallSet.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace loom;

//===----------------------------------------------------------------------===//
// MeshAttr
//===----------------------------------------------------------------------===//

Attribute MeshAttr::parse(AsmParser &parser, Type) {
  SmallVector<StringAttr> names;
  SmallVector<int64_t> sizes;
  if (parser.parseLess())
    return {};
  auto parseAxis = [&]() -> ParseResult {
    std::string name;
    int64_t size;
    if (parser.parseKeywordOrString(&name) || parser.parseEqual() ||
        parser.parseInteger(size))
      return failure();
    names.push_back(parser.getBuilder().getStringAttr(name));
    sizes.push_back(size);
    return success();
  };
  if (parser.parseCommaSeparatedList(parseAxis) || parser.parseGreater())
    return {};
  return parser.getChecked<MeshAttr>(parser.getContext(), names, sizes);
}

void MeshAttr::print(AsmPrinter &printer) const {
  printer << "<";
  llvm::interleaveComma(
      llvm::zip(getAxisNames(), getAxisSizes()), printer, [&](auto axis) {
        printer.printKeywordOrString(std::get<0>(axis).getValue());
        printer << " = " << std::get<1>(axis);
      });
  printer << ">";
}

LogicalResult MeshAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               ArrayRef<StringAttr> names,
                               ArrayRef<int64_t> sizes) {
  if (names.empty())
    return emitError() << "mesh needs at least one axis";
  if (names.size() != sizes.size())
    return emitError() << "mesh has " << names.size() << " axis names but "
                       << sizes.size() << " sizes";
  llvm::SmallSet<StringRef, 8> seen;
  for (auto [name, size] : llvm::zip(names, sizes)) {
    if (name.getValue().empty())
      return emitError() << "mesh axis name must not be empty";
    if (!seen.insert(name.getValue()).second)
      return emitError() << "mesh axis '" << name.getValue()
                         << "' appears twice";
    if (size < 1)
      return emitError() << "mesh axis '" << name.getValue() << "' has size "
                         << size << "; sizes must be >= 1";
  }
  if (runtime::checkedMeshSize(sizes.data(), sizes.size()) < 0)
    return emitError() << "mesh has more than 2^31 ranks";
  return success();
}

std::optional<unsigned> MeshAttr::getAxisIndex(StringRef name) const {
  for (auto [i, axis] : llvm::enumerate(getAxisNames()))
    if (axis.getValue() == name)
      return i;
  return std::nullopt;
}

int64_t MeshAttr::getAxisSize(StringRef name) const {
  return getAxisSizes()[*getAxisIndex(name)];
}

int64_t MeshAttr::getNumRanks() const {
  ArrayRef<int64_t> sizes = getAxisSizes();
  return runtime::checkedMeshSize(sizes.data(), sizes.size());
}

//===----------------------------------------------------------------------===//
// ShardingAttr
//===----------------------------------------------------------------------===//

/// Parses `{"a", "b"}` into an array of string attributes.
static ParseResult parseAxisSet(AsmParser &parser, ArrayAttr &result) {
  SmallVector<Attribute> axes;
  if (parser.parseCommaSeparatedList(
          AsmParser::Delimiter::Braces, [&]() -> ParseResult {
            std::string name;
            if (parser.parseKeywordOrString(&name))
              return failure();
            axes.push_back(parser.getBuilder().getStringAttr(name));
            return success();
          }))
    return failure();
  result = parser.getBuilder().getArrayAttr(axes);
  return success();
}

static void printAxisSet(AsmPrinter &printer, ArrayAttr axes) {
  printer << "{";
  // Quoted and escaped: any axis name prints back to itself.
  llvm::interleaveComma(axes, printer, [&](Attribute axis) {
    printer.printString(cast<StringAttr>(axis).getValue());
  });
  printer << "}";
}

Attribute ShardingAttr::parse(AsmParser &parser, Type) {
  SmallVector<Attribute> dims;
  FlatSymbolRefAttr mesh;
  if (parser.parseLess() || parser.parseAttribute(mesh) ||
      parser.parseComma() ||
      parser.parseCommaSeparatedList(AsmParser::Delimiter::Square,
                                     [&]() -> ParseResult {
                                       ArrayAttr axes;
                                       if (parseAxisSet(parser, axes))
                                         return failure();
                                       dims.push_back(axes);
                                       return success();
                                     }))
    return {};
  ArrayAttr unreduced = parser.getBuilder().getArrayAttr({});
  if (succeeded(parser.parseOptionalComma())) {
    if (parser.parseKeyword("unreduced") || parser.parseEqual() ||
        parseAxisSet(parser, unreduced))
      return {};
  }
  if (parser.parseGreater())
    return {};
  return parser.getChecked<ShardingAttr>(parser.getContext(), mesh,
                                         parser.getBuilder().getArrayAttr(dims),
                                         unreduced);
}

void ShardingAttr::print(AsmPrinter &printer) const {
  printer << "<";
  printer.printAttributeWithoutType(getMesh());
  printer << ", [";
  llvm::interleaveComma(getDimAxes(), printer, [&](Attribute dim) {
    printAxisSet(printer, cast<ArrayAttr>(dim));
  });
  printer << "]";
  if (!getUnreducedAxes().empty()) {
    printer << ", unreduced = ";
    printAxisSet(printer, getUnreducedAxes());
  }
  printer << ">";
}

LogicalResult ShardingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   FlatSymbolRefAttr mesh, ArrayAttr dimAxes,
                                   ArrayAttr unreducedAxes) {
  if (!mesh)
    return emitError() << "sharding needs the name of its mesh";
  llvm::SmallSet<StringRef, 8> seen;
  auto checkAxes = [&](ArrayAttr axes) -> LogicalResult {
    for (Attribute axis : axes) {
      auto name = dyn_cast<StringAttr>(axis);
      if (!name)
        return emitError() << "sharding axes must be strings";
      if (!seen.insert(name.getValue()).second)
        return emitError() << "mesh axis '" << name.getValue()
                           << "' is used twice in one sharding";
    }
    return success();
  };
  for (Attribute dim : dimAxes) {
    auto axes = dyn_cast<ArrayAttr>(dim);
    if (!axes)
      return emitError() << "sharding dimensions must be arrays of axes";
    if (failed(checkAxes(axes)))
      return failure();
  }
  return checkAxes(unreducedAxes);
}

SmallVector<StringRef> ShardingAttr::getAxesOfDim(unsigned dim) const {
  SmallVector<StringRef> axes;
  for (Attribute axis : cast<ArrayAttr>(getDimAxes()[dim]))
    axes.push_back(cast<StringAttr>(axis).getValue());
  return axes;
}

LogicalResult
ShardingAttr::verifyFor(MeshAttr mesh, ShapedType type,
                        function_ref<InFlightDiagnostic()> emitError) const {
  if (static_cast<int64_t>(getDimAxes().size()) != type.getRank())
    return emitError() << "sharding has " << getDimAxes().size()
                       << " dimensions but the tensor has rank "
                       << type.getRank();
  auto checkKnown = [&](StringRef axis) -> LogicalResult {
    if (!mesh.getAxisIndex(axis))
      return emitError() << "sharding names axis '" << axis << "', which mesh "
                         << getMesh() << " " << mesh << " does not have";
    return success();
  };
  for (unsigned dim = 0, e = getDimAxes().size(); dim < e; ++dim) {
    int64_t parts = 1;
    for (StringRef axis : getAxesOfDim(dim)) {
      if (failed(checkKnown(axis)))
        return failure();
      parts *= mesh.getAxisSize(axis);
    }
    int64_t size = type.getDimSize(dim);
    if (!ShapedType::isDynamic(size) && size % parts != 0)
      return emitError() << "dimension " << dim << " of size " << size
                         << " does not divide into " << parts
                         << " shards over the mesh axes";
  }
  for (Attribute axis : getUnreducedAxes())
    if (failed(checkKnown(cast<StringAttr>(axis).getValue())))
      return failure();
  return success();
}

SmallVector<int64_t>
ShardingAttr::getLocalShape(MeshAttr mesh, ArrayRef<int64_t> shape) const {
  SmallVector<int64_t> local(shape);
  for (unsigned dim = 0, e = local.size(); dim < e; ++dim)
    for (StringRef axis : getAxesOfDim(dim))
      local[dim] /= mesh.getAxisSize(axis);
  return local;
}

//===----------------------------------------------------------------------===//
// PhaseAttr
//===----------------------------------------------------------------------===//

Attribute PhaseAttr::parse(AsmParser &parser, Type) {
  std::string name;
  if (parser.parseLess() || parser.parseKeywordOrString(&name) ||
      parser.parseGreater())
    return {};
  std::optional<Phase> phase = symbolizePhase(name);
  if (!phase) {
    parser.emitError(parser.getCurrentLocation(), "unknown phase '")
        << name << "'; expected \"fwd\", \"bwd-input\" or \"bwd-weight\"";
    return {};
  }
  return PhaseAttr::get(parser.getContext(), *phase);
}

void PhaseAttr::print(AsmPrinter &printer) const {
  printer << "<";
  printer.printString(stringifyPhase(getValue()));
  printer << ">";
}

#include "loom/Dialect/Loom/IR/LoomEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "loom/Dialect/Loom/IR/LoomAttrs.cpp.inc"

void LoomDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "loom/Dialect/Loom/IR/LoomAttrs.cpp.inc"
      >();
}
