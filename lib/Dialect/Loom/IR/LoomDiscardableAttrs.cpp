//===- LoomDiscardableAttrs.cpp - The loom.* attributes of other ops ------===//
//
// One table of the discardable attributes Loom puts on ops, function
// arguments and function results: where each may appear and how its value
// is checked. The dialect's three verification hooks look names up here; a
// new attribute is a new row.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

using namespace mlir;
using namespace loom;

namespace {

/// Where an attribute may appear.
enum Place : unsigned {
  OnOp = 1,       ///< an op (on its results, for shardings)
  OnArgument = 2, ///< a function argument
  OnResult = 4,   ///< a function result
};

/// What a check sees: the attribute, the op holding it, the types it
/// describes (the argument's or result's type; an op's result types), and
/// how to report.
struct Subject {
  Attribute value;
  Operation *owner;
  TypeRange types;
  function_ref<InFlightDiagnostic()> emitError;
};

struct DiscardableAttr {
  StringLiteral name;
  unsigned places;
  LogicalResult (*check)(const Subject &);
};

LogicalResult checkName(const Subject &s) {
  auto name = dyn_cast<StringAttr>(s.value);
  if (!name || name.getValue().empty())
    return s.emitError() << "must be a non-empty string naming the value";
  // Tools read and write `<name>.npy` in a directory: a name is one file
  // name, never a path.
  StringRef text = name.getValue();
  if (text == "." || text == ".." || text.contains('/') ||
      text.contains('\\') || text.contains('\0'))
    return s.emitError() << "'" << text
                         << "' must not be '.', '..' or contain '/', '\\' "
                            "or NUL: it names a file";
  return success();
}

LogicalResult checkString(const Subject &s) {
  if (!isa<StringAttr>(s.value))
    return s.emitError() << "must be a string";
  return success();
}

LogicalResult checkNonNegative(const Subject &s) {
  auto n = dyn_cast<IntegerAttr>(s.value);
  if (!n || n.getValue().isNegative())
    return s.emitError() << "must be a non-negative integer";
  return success();
}

/// A priority per described value: one non-negative integer, or on an op
/// with several results an array of them.
LogicalResult checkPriorities(const Subject &s) {
  auto isPriority = [](Attribute a) {
    auto n = dyn_cast<IntegerAttr>(a);
    return n && !n.getValue().isNegative();
  };
  if (isPriority(s.value))
    return success();
  auto array = dyn_cast<ArrayAttr>(s.value);
  if (!array || array.size() != s.types.size() ||
      !llvm::all_of(array, isPriority))
    return s.emitError() << "must be a non-negative integer"
                         << (s.types.size() > 1 ? ", or one per result in an "
                                                  "array"
                                                : "");
  return success();
}

LogicalResult checkOffsets(const Subject &s) {
  auto offsets = dyn_cast<DenseI64ArrayAttr>(s.value);
  if (!offsets || offsets.size() != static_cast<int64_t>(s.types.size()) ||
      llvm::any_of(offsets.asArrayRef(), [](int64_t o) { return o < 0; }))
    return s.emitError() << "must hold one non-negative offset per result";
  return success();
}

/// Terms for integer attributes of the op, one coefficient per value, over
/// axes of declared meshes.
LogicalResult checkRankTerms(const Subject &s) {
  auto dict = dyn_cast<DictionaryAttr>(s.value);
  if (!dict)
    return s.emitError() << "must be a dictionary of #loom.rank_term arrays";
  for (NamedAttribute entry : dict) {
    Attribute target = s.owner->getAttr(entry.getName());
    int64_t count = -1;
    if (isa_and_nonnull<IntegerAttr>(target))
      count = 1;
    else if (auto ints = dyn_cast_or_null<DenseI64ArrayAttr>(target))
      count = ints.size();
    if (count < 0)
      return s.emitError() << "names '" << entry.getName().getValue()
                           << "', which is not an integer attribute of the op";
    auto terms = dyn_cast<ArrayAttr>(entry.getValue());
    if (!terms || !llvm::all_of(terms, llvm::IsaPred<RankTermAttr>))
      return s.emitError() << "'" << entry.getName().getValue()
                           << "' must be an array of #loom.rank_term";
    for (auto term : terms.getAsRange<RankTermAttr>()) {
      if (static_cast<int64_t>(term.getCoeffs().size()) != count)
        return s.emitError()
               << "has " << term.getCoeffs().size() << " coefficients for '"
               << entry.getName().getValue() << "', which has " << count
               << " values";
      auto mesh =
          SymbolTable::lookupNearestSymbolFrom<MeshOp>(s.owner, term.getMesh());
      if (!mesh || !mesh.getShape().getAxisIndex(term.getAxis().getValue()))
        return s.emitError()
               << "names axis '" << term.getAxis().getValue() << "' of "
               << term.getMesh() << ", which no 'loom.mesh' declares";
    }
  }
  return success();
}

/// The sharding a local value is a piece of: axes of a declared mesh, one
/// list per dimension (the local type need not divide again).
LogicalResult checkShardOf(const Subject &s) {
  auto sharding = dyn_cast<ShardingAttr>(s.value);
  if (!sharding)
    return s.emitError() << "must be a #loom.sharding";
  auto mesh =
      SymbolTable::lookupNearestSymbolFrom<MeshOp>(s.owner, sharding.getMesh());
  if (!mesh)
    return s.emitError() << "names mesh " << sharding.getMesh()
                         << ", which no 'loom.mesh' of the module declares";
  auto shaped =
      s.types.empty() ? ShapedType() : dyn_cast<ShapedType>(s.types[0]);
  if (shaped &&
      static_cast<int64_t>(sharding.getDimAxes().size()) != shaped.getRank())
    return s.emitError() << "has " << sharding.getDimAxes().size()
                         << " dimensions for a tensor of rank "
                         << shaped.getRank();
  for (unsigned d = 0; d < sharding.getDimAxes().size(); ++d)
    for (StringRef axis : sharding.getAxesOfDim(d))
      if (!mesh.getShape().getAxisIndex(axis))
        return s.emitError() << "names axis '" << axis << "', which "
                             << sharding.getMesh() << " does not have";
  return success();
}

LogicalResult checkUnit(const Subject &s) {
  if (!isa<UnitAttr>(s.value))
    return s.emitError() << "is a unit attribute (present or absent)";
  return success();
}

LogicalResult checkPhase(const Subject &s) {
  if (!isa<PhaseAttr>(s.value))
    return s.emitError() << "must be a #loom.phase (\"fwd\", \"bwd-input\" or "
                            "\"bwd-weight\")";
  return success();
}

/// One sharding of a value of `type`, against the mesh it names.
LogicalResult checkSharding(ShardingAttr sharding, Type type,
                            const Subject &s) {
  auto shaped = dyn_cast<ShapedType>(type);
  if (!shaped)
    return s.emitError() << "shards a value that is not a tensor";
  auto mesh =
      SymbolTable::lookupNearestSymbolFrom<MeshOp>(s.owner, sharding.getMesh());
  if (!mesh)
    return s.emitError() << "names mesh " << sharding.getMesh()
                         << ", which no 'loom.mesh' of the module declares";
  return sharding.verifyFor(mesh.getShape(), shaped, s.emitError);
}

/// A sharding per described value: one #loom.sharding, or on an op with
/// several results an array of them.
LogicalResult checkShardings(const Subject &s) {
  if (auto sharding = dyn_cast<ShardingAttr>(s.value)) {
    if (s.types.size() != 1)
      return s.emitError() << "must be an array of one #loom.sharding per "
                              "result for an op with "
                           << s.types.size() << " results";
    return checkSharding(sharding, s.types.front(), s);
  }
  auto array = dyn_cast<ArrayAttr>(s.value);
  if (!array || array.size() != s.types.size() ||
      !llvm::all_of(array, llvm::IsaPred<ShardingAttr>))
    return s.emitError() << "must be a #loom.sharding"
                         << (s.types.size() > 1 ? " per result, in an array"
                                                : "");
  for (auto [sharding, type] : llvm::zip(array, s.types))
    if (failed(checkSharding(cast<ShardingAttr>(sharding), type, s)))
      return failure();
  return success();
}

/// An asynchronous collective: one operand and one result, read only by
/// `loom.wait`.
LogicalResult checkAsync(const Subject &s) {
  if (failed(checkUnit(s)))
    return failure();
  if (!isa<CollectiveOpInterface>(s.owner) || s.owner->getNumResults() != 1 ||
      s.owner->getNumOperands() != 1)
    return s.emitError() << "marks a collective with one operand and one "
                            "result";
  for (Operation *user : s.owner->getResult(0).getUsers())
    if (!isa<WaitOp>(user))
      return s.emitError() << "marks a collective whose result is read "
                              "through 'loom.wait' only, not by '"
                           << user->getName() << "'";
  return success();
}

LogicalResult checkPipeline(const Subject &s) {
  auto dict = dyn_cast<DictionaryAttr>(s.value);
  if (!dict || !isa<ModuleOp>(s.owner))
    return s.emitError() << "is a dictionary on a module";
  for (StringRef key : {"pp", "vpp", "microbatches"}) {
    auto value = dict.getAs<IntegerAttr>(key);
    if (!value || value.getInt() < 1)
      return s.emitError() << "needs a positive integer '" << key << "'";
  }
  for (StringRef key : {"schedule", "actions"})
    if (!dict.getAs<StringAttr>(key))
      return s.emitError() << "needs a string '" << key << "'";
  return success();
}

const DiscardableAttr kAttrs[] = {
    {LoomDialect::kParamAttrName, OnArgument | OnResult, checkName},
    {LoomDialect::kStateAttrName, OnArgument | OnResult, checkName},
    {LoomDialect::kMicrobatchAttrName, OnOp, checkNonNegative},
    {LoomDialect::kRecomputedAttrName, OnOp, checkUnit},
    {LoomDialect::kPriorityAttrName, OnOp | OnArgument, checkPriorities},
    {LoomDialect::kRankTermsAttrName, OnOp, checkRankTerms},
    {LoomDialect::kShardOfAttrName, OnArgument | OnResult, checkShardOf},
    {LoomDialect::kInputAttrName, OnArgument, checkName},
    {LoomDialect::kOutputAttrName, OnResult, checkName},
    {LoomDialect::kShardingAttrName, OnOp | OnArgument | OnResult,
     checkShardings},
    {LoomDialect::kLayerAttrName, OnOp, checkNonNegative},
    {LoomDialect::kPhaseAttrName, OnOp, checkPhase},
    {LoomDialect::kOffsetAttrName, OnArgument, checkNonNegative},
    {LoomDialect::kOffsetsAttrName, OnOp, checkOffsets},
    {LoomDialect::kArenaSizeAttrName, OnOp, checkNonNegative},
    {LoomDialect::kModelAttrName, OnOp, checkString},
    {LoomDialect::kAsyncAttrName, OnOp, checkAsync},
    {LoomDialect::kPipelineAttrName, OnOp, checkPipeline},
    {LoomDialect::kActionAttrName, OnOp, checkString},
    {LoomDialect::kCpChunksAttrName, OnOp, checkNonNegative},
};

/// Finds `attr`'s row and checks that it may appear at `place`.
LogicalResult verifyDiscardable(NamedAttribute attr, Place place,
                                Operation *owner, TypeRange types,
                                function_ref<InFlightDiagnostic()> where) {
  StringRef name = attr.getName().getValue();
  const DiscardableAttr *row = llvm::find_if(
      kAttrs, [&](const DiscardableAttr &a) { return a.name == name; });
  if (row == std::end(kAttrs))
    return where() << "has unknown loom attribute '" << name << "'";
  auto emitError = [&] { return where() << "'" << name << "' "; };
  if (!(row->places & place))
    return emitError() << "cannot appear on "
                       << (place == OnOp         ? "an op"
                           : place == OnArgument ? "a function argument"
                                                 : "a function result");
  return row->check(Subject{attr.getValue(), owner, types, emitError});
}

/// The type of argument `index` of region `region`, if the region has a
/// body (a function declaration has none).
Type argumentType(Operation *op, unsigned region, unsigned index) {
  Region &r = op->getRegion(region);
  if (r.empty())
    return {};
  return r.getArgument(index).getType();
}

} // namespace

LogicalResult LoomDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  return verifyDiscardable(attr, OnOp, op, op->getResultTypes(),
                           [&] { return op->emitOpError(); });
}

LogicalResult LoomDialect::verifyRegionArgAttribute(Operation *op,
                                                    unsigned regionIndex,
                                                    unsigned argIndex,
                                                    NamedAttribute attr) {
  Type type = argumentType(op, regionIndex, argIndex);
  // Without a body there is no type to check a sharding against.
  if (!type && attr.getName() == kShardingAttrName)
    return success();
  return verifyDiscardable(
      attr, OnArgument, op, type ? TypeRange(type) : TypeRange(),
      [&] { return op->emitOpError() << "argument #" << argIndex << " "; });
}

LogicalResult LoomDialect::verifyRegionResultAttribute(Operation *op,
                                                       unsigned regionIndex,
                                                       unsigned resultIndex,
                                                       NamedAttribute attr) {
  Type type;
  if (auto func = dyn_cast<FunctionOpInterface>(op))
    type = func.getResultTypes()[resultIndex];
  if (!type && attr.getName() == kShardingAttrName)
    return success();
  return verifyDiscardable(
      attr, OnResult, op, type ? TypeRange(type) : TypeRange(),
      [&] { return op->emitOpError() << "result #" << resultIndex << " "; });
}
