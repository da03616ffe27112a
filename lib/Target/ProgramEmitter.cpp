//===- ProgramEmitter.cpp - Write a planned loom function as a program ----===//
//
// One loom op becomes one instruction; each SSA value becomes one buffer at
// the arena offset of the memory plan. Op attributes map to the instruction
// attributes documented in runtime/README.md.
//
//===----------------------------------------------------------------------===//

#include "loom/Target/ProgramEmitter.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Dialect/Loom/IR/PersistentUpdates.h"

#include "loom/runtime/CheckedMath.h"
#include "loom/runtime/OpTable.h"
#include "loom/runtime/Program.h"
#include "loom/runtime/program_generated.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/Support/CommandLine.h"

using namespace mlir;
using namespace loom;
namespace fb = loom::fb;

/// The most constant bytes a program carries: half of what a FlatBuffers
/// file may hold, the rest left to its tables.
constexpr int64_t kMaxConstantsBytes = int64_t(1) << 30;

namespace {

/// The mesh table of `meshes`, each with its axes in order.
std::vector<flatbuffers::Offset<fb::Mesh>>
createMeshTable(flatbuffers::FlatBufferBuilder &b, ArrayRef<MeshOp> meshes) {
  std::vector<flatbuffers::Offset<fb::Mesh>> table;
  for (MeshOp mesh : meshes) {
    std::vector<flatbuffers::Offset<fb::MeshAxis>> axes;
    MeshAttr shape = mesh.getShape();
    for (auto [name, size] :
         llvm::zip(shape.getAxisNames(), shape.getAxisSizes()))
      axes.push_back(
          fb::CreateMeshAxisDirect(b, name.getValue().str().c_str(), size));
    table.push_back(
        fb::CreateMeshDirect(b, mesh.getSymName().str().c_str(), &axes));
  }
  return table;
}

/// The finished buffer's bytes, sealed with their checksum and checked
/// with the runtime's verifier; errors are reported at `where`.
FailureOr<std::vector<uint8_t>> sealAndVerify(flatbuffers::FlatBufferBuilder &b,
                                              Operation *where) {
  std::vector<uint8_t> bytes(b.GetBufferPointer(),
                             b.GetBufferPointer() + b.GetSize());
  if (!runtime::sealProgram(bytes))
    return where->emitError(
        "cannot seal the emitted program with its checksum");
  std::string error = runtime::verifyProgram(bytes.data(), bytes.size());
  if (!error.empty())
    return where->emitError("the emitted program does not verify: ") << error;
  return bytes;
}
using AttrList = std::vector<flatbuffers::Offset<fb::Attr>>;

class ProgramEmitter {
public:
  explicit ProgramEmitter(func::FuncOp func) : func(func) {}
  FailureOr<std::vector<uint8_t>> emit();

private:
  FailureOr<fb::DType> dtypeOf(Value v);
  LogicalResult addBuffer(Value v, fb::BufferKind kind, StringRef name,
                          int64_t offset);
  LogicalResult emitOp(Operation *op, ArrayRef<int64_t> offsets);
  /// The opcode of `op` and its attributes, or failure for ops without one.
  FailureOr<fb::Opcode> lowerOp(Operation *op, AttrList &attrs, int32_t &comm);
  LogicalResult addConstant(ConstantOp op);
  LogicalResult addAttr(Operation *op, const runtime::AttrSpec &spec,
                        AttrList &attrs);
  FailureOr<int32_t> communicatorFor(CollectiveOpInterface op);
  /// A binding of `name` to buffer `id`, a piece split as `shardOf` (or the
  /// whole tensor).
  FailureOr<flatbuffers::Offset<fb::Binding>>
  createBinding(const std::string &name, uint32_t id, ShardingAttr shardOf);
  /// The index of `mesh` in the program's mesh table (added on first use).
  FailureOr<unsigned> meshIndex(Operation *op, MeshOp mesh);
  /// The rank-dependent terms of `op`'s attribute `name` (loom.rank_terms).
  FailureOr<std::vector<flatbuffers::Offset<fb::AffineTerm>>>
  rankTerms(Operation *op, StringRef name);
  std::string locationOf(Operation *op);

  void addInt(AttrList &attrs, const char *name, int64_t value) {
    attrs.push_back(fb::CreateAttrDirect(b, name, fb::AttrKind::Int, value));
  }
  void addFloat(AttrList &attrs, const char *name, double value) {
    attrs.push_back(
        fb::CreateAttrDirect(b, name, fb::AttrKind::Float, 0, value));
  }
  void addBool(AttrList &attrs, const char *name, bool value) {
    attrs.push_back(fb::CreateAttrDirect(b, name, fb::AttrKind::Bool, value));
  }
  void addInts(AttrList &attrs, const char *name, ArrayRef<int64_t> values) {
    std::vector<int64_t> copy(values.begin(), values.end());
    attrs.push_back(
        fb::CreateAttrDirect(b, name, fb::AttrKind::Ints, 0, 0, &copy));
  }
  void addString(AttrList &attrs, const char *name, StringRef value) {
    attrs.push_back(fb::CreateAttrDirect(b, name, fb::AttrKind::String, 0, 0,
                                         nullptr, value.str().c_str()));
  }

  func::FuncOp func;
  flatbuffers::FlatBufferBuilder b;
  DenseMap<Value, uint32_t> bufferIds;
  std::vector<flatbuffers::Offset<fb::Buffer>> buffers;
  std::vector<flatbuffers::Offset<fb::Binding>> inputs, outputs;
  std::vector<flatbuffers::Offset<fb::Instruction>> instructions;
  /// The read-only constants blob (loom.constant values).
  std::vector<uint8_t> constants;
  /// Communicators: their mesh (index in `meshes`) and axes; a
  /// communicator's id is its index.
  std::vector<std::pair<unsigned, std::vector<std::string>>> comms;
  /// The meshes the program's collectives name, in order of first use.
  SmallVector<MeshOp> meshes;
  SymbolTableCollection symbolTables;
  /// Values the function returns: output buffers.
  llvm::SmallPtrSet<Value, 4> returned;
  /// Returned new values of parameters and state (not outputs of their own).
  llvm::SmallPtrSet<Value, 4> persistentValues;
  int64_t arenaSize = 0;
  /// Events: the next free id, and the event each asynchronous collective's
  /// result records on the comm stream when it is done.
  int64_t nextEvent = 0;
  DenseMap<Value, int64_t> doneEvents;
  void addEvent(runtime::Opcode opcode, int64_t event, fb::Stream stream,
                Operation *op) {
    AttrList attrs;
    addInt(attrs, "event", event);
    std::vector<uint32_t> none;
    instructions.push_back(fb::CreateInstructionDirect(
        b, static_cast<fb::Opcode>(opcode), &none, &none, &attrs, -1, stream,
        locationOf(op).c_str()));
  }
};
} // namespace

FailureOr<fb::DType> ProgramEmitter::dtypeOf(Value v) {
  Type element = cast<ShapedType>(v.getType()).getElementType();
  if (element.isF32())
    return fb::DType::F32;
  if (element.isBF16())
    return fb::DType::BF16;
  if (element.isF16())
    return fb::DType::F16;
  if (element.isSignlessInteger(32))
    return fb::DType::I32;
  if (element.isSignlessInteger(64))
    return fb::DType::I64;
  return emitError(v.getLoc(), "no program element type for ") << element;
}

LogicalResult ProgramEmitter::addBuffer(Value v, fb::BufferKind kind,
                                        StringRef name, int64_t offset) {
  FailureOr<fb::DType> dtype = dtypeOf(v);
  if (failed(dtype))
    return failure();
  auto type = cast<RankedTensorType>(v.getType());
  std::vector<int64_t> shape(type.getShape().begin(), type.getShape().end());
  int64_t bits = type.getElementType().getIntOrFloatBitWidth();
  uint64_t size = type.getNumElements() * (bits / 8);
  uint32_t id = buffers.size();
  // A scalar has no shape vector: an empty one carries no alignment.
  buffers.push_back(fb::CreateBufferDirect(b, id, name.str().c_str(), *dtype,
                                           shape.empty() ? nullptr : &shape,
                                           kind, offset, size));
  bufferIds[v] = id;
  return success();
}

std::string ProgramEmitter::locationOf(Operation *op) {
  if (auto fileLoc = dyn_cast<FileLineColLoc>(op->getLoc()))
    return (fileLoc.getFilename().getValue() + ":" + Twine(fileLoc.getLine()) +
            ":" + Twine(fileLoc.getColumn()))
        .str();
  std::string text;
  llvm::raw_string_ostream os(text);
  op->getLoc().print(os);
  return text;
}

FailureOr<unsigned> ProgramEmitter::meshIndex(Operation *op, MeshOp mesh) {
  auto it = llvm::find(meshes, mesh);
  if (it != meshes.end())
    return static_cast<unsigned>(it - meshes.begin());
  int64_t ranks = mesh.getShape().getNumRanks();
  if (!meshes.empty() && ranks != meshes.front().getShape().getNumRanks())
    return op->emitOpError("uses mesh @")
           << mesh.getSymName() << " of " << ranks
           << " ranks, but the program's mesh @" << meshes.front().getSymName()
           << " has " << meshes.front().getShape().getNumRanks()
           << "; the meshes of one program span the same ranks";
  meshes.push_back(mesh);
  return static_cast<unsigned>(meshes.size() - 1);
}

FailureOr<flatbuffers::Offset<fb::Binding>>
ProgramEmitter::createBinding(const std::string &name, uint32_t id,
                              ShardingAttr shardOf) {
  if (!shardOf)
    return fb::CreateBindingDirect(b, name.c_str(), id);
  auto mesh =
      symbolTables.lookupNearestSymbolFrom<MeshOp>(func, shardOf.getMesh());
  if (!mesh)
    return func.emitError("'")
           << name << "' is split over mesh " << shardOf.getMesh()
           << ", which no 'loom.mesh' declares";
  FailureOr<unsigned> index = meshIndex(func, mesh);
  if (failed(index))
    return failure();
  std::vector<flatbuffers::Offset<fb::DimAxes>> dims;
  for (unsigned d = 0; d < shardOf.getDimAxes().size(); ++d) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> axes;
    for (StringRef axis : shardOf.getAxesOfDim(d))
      axes.push_back(b.CreateString(axis.str()));
    dims.push_back(fb::CreateDimAxesDirect(b, &axes));
  }
  return fb::CreateBindingDirect(b, name.c_str(), id, &dims, *index);
}

FailureOr<int32_t> ProgramEmitter::communicatorFor(CollectiveOpInterface op) {
  MeshOp mesh = op.getMeshOp(&symbolTables);
  if (!mesh)
    return op->emitOpError("uses mesh ")
           << op.getMeshAttr() << ", which no 'loom.mesh' declares";
  FailureOr<unsigned> index = meshIndex(op, mesh);
  if (failed(index))
    return failure();
  std::pair<unsigned, std::vector<std::string>> comm;
  comm.first = *index;
  for (Attribute axis : op.getAxes())
    comm.second.push_back(cast<StringAttr>(axis).str());
  auto found = llvm::find(comms, comm);
  if (found != comms.end())
    return static_cast<int32_t>(found - comms.begin());
  comms.push_back(comm);
  return static_cast<int32_t>(comms.size() - 1);
}

/// Places a loom.constant's bytes in the constants blob: a Constant buffer
/// that no instruction writes.
LogicalResult ProgramEmitter::addConstant(ConstantOp op) {
  auto dense = dyn_cast<DenseElementsAttr>(op.getValue());
  if (!dense)
    return op.emitOpError("only dense constants can be placed in a program");
  int64_t elementBytes = dense.getElementType().getIntOrFloatBitWidth() / 8;
  ArrayRef<char> raw = dense.getRawData();
  size_t offset = llvm::alignTo(constants.size(), 64);
  // A splat of a huge tensor is small in the IR but not in the file, which
  // FlatBuffers limits to 2 GiB in all.
  int64_t bytes, end = static_cast<int64_t>(offset);
  if (!runtime::checkedMul(dense.getNumElements(), elementBytes, bytes) ||
      !runtime::checkedAccumulate(end, bytes, kMaxConstantsBytes))
    return op.emitOpError("the program's constants would exceed ")
           << (kMaxConstantsBytes >> 20) << " MiB (a program file holds at "
           << "most 2 GiB); pass a tensor this large as an argument";
  constants.resize(offset);
  for (int64_t i = 0, n = dense.getNumElements(); i < n; ++i) {
    // A splat stores its one element once.
    const char *element = raw.data() + (dense.isSplat() ? 0 : i * elementBytes);
    constants.insert(constants.end(), element, element + elementBytes);
  }
  std::string name = ("constant." + Twine(instructions.size())).str();
  return addBuffer(op.getResult(), fb::BufferKind::Constant, name, offset);
}

/// Appends the instruction attribute `spec` of `op`, read from the op's
/// attribute of the same name (or its default, so that programs say every
/// value they use). Optional attributes without a default stay absent.
LogicalResult ProgramEmitter::addAttr(Operation *op,
                                      const runtime::AttrSpec &spec,
                                      AttrList &attrs) {
  Attribute value = op->getAttr(spec.name);
  using runtime::AttrKind;
  switch (spec.kind) {
  case AttrKind::Bool:
    addBool(attrs, spec.name, static_cast<bool>(value));
    return success();
  case AttrKind::Int:
  case AttrKind::Ints: {
    auto terms = rankTerms(op, spec.name);
    if (failed(terms))
      return failure();
    if (!terms->empty() && !spec.rankDependent)
      return op->emitOpError("attribute '")
             << spec.name << "' cannot depend on the rank in a program";
    std::vector<int64_t> values;
    if (auto i = dyn_cast_or_null<IntegerAttr>(value))
      values.push_back(i.getValue().getSExtValue());
    else if (auto ints = dyn_cast_or_null<DenseI64ArrayAttr>(value))
      values.assign(ints.asArrayRef().begin(), ints.asArrayRef().end());
    else if (spec.kind == AttrKind::Int && spec.hasDefault)
      values.push_back(spec.defaultInt);
    else
      break;
    bool isInt = spec.kind == AttrKind::Int;
    attrs.push_back(fb::CreateAttrDirect(
        b, spec.name, isInt ? fb::AttrKind::Int : fb::AttrKind::Ints,
        isInt ? values.front() : 0, 0, isInt ? nullptr : &values, nullptr,
        terms->empty() ? nullptr : &*terms));
    break;
  }
  case AttrKind::Float:
    if (auto f = dyn_cast_or_null<FloatAttr>(value))
      addFloat(attrs, spec.name, f.getValueAsDouble());
    else if (spec.hasDefault)
      addFloat(attrs, spec.name, spec.defaultFloat);
    break;
  case AttrKind::String: {
    // Enum attributes hold the index of their value (loom-tblgen checked
    // that case values are 0, 1, ...).
    int64_t index = spec.defaultInt;
    if (auto e = dyn_cast_or_null<IntegerAttr>(value))
      index = e.getValue().getSExtValue();
    else if (value || !spec.hasDefault)
      break;
    if (index < 0 || index >= static_cast<int64_t>(spec.values.size()))
      return op->emitOpError("attribute '")
             << spec.name << "' has no program value for " << index;
    addString(attrs, spec.name, spec.values[index]);
    return success();
  }
  }
  return success();
}

FailureOr<std::vector<flatbuffers::Offset<fb::AffineTerm>>>
ProgramEmitter::rankTerms(Operation *op, StringRef name) {
  std::vector<flatbuffers::Offset<fb::AffineTerm>> terms;
  auto dict =
      op->getAttrOfType<DictionaryAttr>(LoomDialect::kRankTermsAttrName);
  auto array = dict ? dict.getAs<ArrayAttr>(name) : ArrayAttr();
  if (!array)
    return terms;
  for (auto term : array.getAsRange<RankTermAttr>()) {
    auto mesh =
        symbolTables.lookupNearestSymbolFrom<MeshOp>(op, term.getMesh());
    if (!mesh)
      return op->emitOpError("rank term names mesh ")
             << term.getMesh() << ", which no 'loom.mesh' declares";
    FailureOr<unsigned> index = meshIndex(op, mesh);
    if (failed(index))
      return failure();
    std::vector<int64_t> coeffs(term.getCoeffs().begin(),
                                term.getCoeffs().end());
    terms.push_back(fb::CreateAffineTermDirect(
        b, term.getAxis().str().c_str(), &coeffs, term.getShift(), *index));
  }
  return terms;
}

FailureOr<fb::Opcode> ProgramEmitter::lowerOp(Operation *op, AttrList &attrs,
                                              int32_t &comm) {
  auto lowered = dyn_cast<ProgramOpInterface>(op);
  if (!lowered)
    return op->emitOpError("has no program instruction");
  auto opcode = static_cast<runtime::Opcode>(lowered.getProgramOpcode());
  const runtime::OpSpec *spec = runtime::findOpSpec(opcode);
  if (!spec)
    return op->emitOpError("lowers to opcode ")
           << static_cast<int>(opcode)
           << ", which the runtime's op table does not have";
  if (auto collective = dyn_cast<CollectiveOpInterface>(op)) {
    FailureOr<int32_t> id = communicatorFor(collective);
    if (failed(id))
      return failure();
    comm = *id;
  }
  for (const runtime::AttrSpec &attr : spec->attrs)
    if (failed(addAttr(op, attr, attrs)))
      return failure();
  return static_cast<fb::Opcode>(opcode);
}

LogicalResult ProgramEmitter::emitOp(Operation *op, ArrayRef<int64_t> offsets) {
  AttrList attrs;
  int32_t comm = -1;
  FailureOr<fb::Opcode> opcode = lowerOp(op, attrs, comm);
  if (failed(opcode))
    return failure();
  std::vector<uint32_t> operandIds, resultIds;
  for (Value operand : op->getOperands())
    operandIds.push_back(bufferIds.lookup(operand));
  unsigned index = instructions.size();
  for (auto [i, result] : llvm::enumerate(op->getResults())) {
    std::string name = (op->getName().stripDialect() + "." + Twine(index) +
                        (op->getNumResults() > 1 ? "." + Twine(i) : ""))
                           .str();
    auto kind = returned.contains(result) && !persistentValues.contains(result)
                    ? fb::BufferKind::Output
                    : fb::BufferKind::Arena;
    if (failed(addBuffer(result, kind, name, offsets[i])))
      return failure();
    resultIds.push_back(bufferIds[result]);
  }
  fb::Stream stream = comm >= 0 ? fb::Stream::Comm : fb::Stream::Compute;
  // An asynchronous collective runs on the comm stream between events: it
  // starts once the compute stream has made its operand, and its wait
  // (loom.wait, on the compute stream) waits for the event after it.
  bool async = comm >= 0 && op->hasAttr(LoomDialect::kAsyncAttrName);
  if (async) {
    int64_t ready = nextEvent++;
    addEvent(runtime::Opcode::EventRecord, ready, fb::Stream::Compute, op);
    addEvent(runtime::Opcode::EventWait, ready, fb::Stream::Comm, op);
  }
  instructions.push_back(
      fb::CreateInstructionDirect(b, *opcode, &operandIds, &resultIds, &attrs,
                                  comm, stream, locationOf(op).c_str()));
  if (async) {
    int64_t done = nextEvent++;
    addEvent(runtime::Opcode::EventRecord, done, fb::Stream::Comm, op);
    doneEvents[op->getResult(0)] = done;
  }
  return success();
}

FailureOr<std::vector<uint8_t>> ProgramEmitter::emit() {
  auto arena =
      func->getAttrOfType<IntegerAttr>(LoomDialect::kArenaSizeAttrName);
  if (!arena)
    return func.emitError("function @")
           << func.getSymName()
           << " has no memory plan; run loom-opt -loom-lower-to-program first";
  arenaSize = arena.getInt();

  // Arguments: parameters, state and inputs, bound by name. Parameters and
  // state persist: the host reads them back through the same name.
  auto updates = getPersistentUpdates(func);
  if (failed(updates))
    return failure();
  for (BlockArgument arg : func.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto offset =
        func.getArgAttrOfType<IntegerAttr>(i, LoomDialect::kOffsetAttrName);
    if (!offset)
      return func.emitError("argument #") << i << " has no 'loom.offset'";
    auto param =
        func.getArgAttrOfType<StringAttr>(i, LoomDialect::kParamAttrName);
    auto state =
        func.getArgAttrOfType<StringAttr>(i, LoomDialect::kStateAttrName);
    auto input =
        func.getArgAttrOfType<StringAttr>(i, LoomDialect::kInputAttrName);
    StringAttr named = param ? param : state ? state : input;
    std::string name = named ? named.str() : ("arg" + Twine(i)).str();
    auto kind = param   ? fb::BufferKind::Parameter
                : state ? fb::BufferKind::State
                        : fb::BufferKind::Input;
    if (failed(addBuffer(arg, kind, name, offset.getInt())))
      return failure();
    auto shardOf =
        func.getArgAttrOfType<ShardingAttr>(i, LoomDialect::kShardOfAttrName);
    FailureOr<flatbuffers::Offset<fb::Binding>> binding =
        createBinding(name, bufferIds[arg], shardOf);
    if (failed(binding))
      return failure();
    inputs.push_back(*binding);
    if (param || state)
      outputs.push_back(*binding);
  }

  // Instructions.
  Operation *terminator = func.getBody().front().getTerminator();
  for (Value value : terminator->getOperands())
    returned.insert(value);
  for (auto [value, argument] : *updates)
    persistentValues.insert(value);
  // The schedule action of each run of instructions (a pipeline stage's
  // ops carry `loom.action`); adjacent instructions of one action are one
  // span.
  std::vector<runtime::InstructionSpan> actionSpans;
  auto noteAction = [&](Operation &op, size_t first) {
    auto action = op.getAttrOfType<StringAttr>(LoomDialect::kActionAttrName);
    size_t end = instructions.size();
    if (!action || end == first)
      return;
    if (!actionSpans.empty() && actionSpans.back().action == action.str() &&
        actionSpans.back().last + 1 == first)
      actionSpans.back().last = end - 1;
    else
      actionSpans.push_back({action.str(), first, end - 1});
  };
  for (Operation &op : func.getBody().front().without_terminator()) {
    size_t firstInstruction = instructions.size();
    auto noted =
        llvm::make_scope_exit([&] { noteAction(op, firstInstruction); });
    if (auto constant = dyn_cast<ConstantOp>(op)) {
      if (failed(addConstant(constant)))
        return failure();
      continue;
    }
    // A wait is the compute stream waiting for its collective's event; its
    // result is the collective's buffer.
    if (auto wait = dyn_cast<WaitOp>(op)) {
      auto done = doneEvents.find(wait.getInput());
      if (done == doneEvents.end())
        return wait.emitOpError("waits for a collective that did not run "
                                "asynchronously");
      addEvent(runtime::Opcode::EventWait, done->second, fb::Stream::Compute,
               &op);
      bufferIds[wait.getResult()] = bufferIds.lookup(wait.getInput());
      continue;
    }
    // An op without results (send) has no bytes of its own to place.
    auto offsets =
        op.getAttrOfType<DenseI64ArrayAttr>(LoomDialect::kOffsetsAttrName);
    if (!offsets && op.getNumResults() != 0)
      return op.emitOpError("has no 'loom.offsets'; run "
                            "-loom-lower-to-program first");
    if (failed(
            emitOp(&op, offsets ? offsets.asArrayRef() : ArrayRef<int64_t>())))
      return failure();
  }

  // Returned values are outputs, but for the new values of parameters and
  // state: the memory plan put those in their arguments' bytes, which the
  // arguments' bindings read.
  for (auto [i, value] : llvm::enumerate(terminator->getOperands())) {
    if (BlockArgument argument = updates->lookup(value)) {
      auto offsets = value.getDefiningOp()->getAttrOfType<DenseI64ArrayAttr>(
          LoomDialect::kOffsetsAttrName);
      int64_t at = offsets[cast<OpResult>(value).getResultNumber()];
      auto argOffset = func.getArgAttrOfType<IntegerAttr>(
          argument.getArgNumber(), LoomDialect::kOffsetAttrName);
      if (at != argOffset.getInt())
        return terminator->emitOpError("result #")
               << i << " updates argument #" << argument.getArgNumber()
               << " but the memory plan put it at offset " << at
               << ", not the argument's " << argOffset.getInt();
      continue;
    }
    if (isa<BlockArgument>(value))
      return terminator->emitOpError("returns argument #")
             << cast<BlockArgument>(value).getArgNumber()
             << " directly; a program output must be computed";
    if (value.getDefiningOp<ConstantOp>())
      return terminator->emitOpError("returns constant #")
             << i << " directly; a program output must be computed";
    auto name =
        func.getResultAttrOfType<StringAttr>(i, LoomDialect::kOutputAttrName);
    std::string outName = name ? name.str() : ("output" + Twine(i)).str();
    FailureOr<flatbuffers::Offset<fb::Binding>> binding =
        createBinding(outName, bufferIds[value],
                      func.getResultAttrOfType<ShardingAttr>(
                          i, LoomDialect::kShardOfAttrName));
    if (failed(binding))
      return failure();
    outputs.push_back(*binding);
  }

  std::vector<flatbuffers::Offset<fb::Mesh>> meshTable =
      createMeshTable(b, meshes);
  std::vector<flatbuffers::Offset<fb::Communicator>> communicators;
  for (auto [id, comm] : llvm::enumerate(comms)) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> names;
    for (const std::string &axis : comm.second)
      names.push_back(b.CreateString(axis));
    communicators.push_back(
        fb::CreateCommunicatorDirect(b, id, &names, comm.first));
  }
  std::vector<flatbuffers::Offset<fb::KeyValue>> metadata;
  metadata.push_back(
      fb::CreateKeyValueDirect(b, "function", func.getSymName().str().c_str()));
  if (!actionSpans.empty())
    metadata.push_back(fb::CreateKeyValueDirect(
        b, "pipeline.action_spans",
        runtime::formatActionSpans(actionSpans).c_str()));
  if (auto model = func->getParentOfType<ModuleOp>()->getAttrOfType<StringAttr>(
          LoomDialect::kModelAttrName))
    metadata.push_back(
        fb::CreateKeyValueDirect(b, "model", model.str().c_str()));

  fb::Version version(runtime::kFormatMajor, runtime::kFormatMinor);
  auto root = fb::CreateProgramDirect(
      b, &version, func.getSymName().str().c_str(), /*mesh=*/nullptr, arenaSize,
      &buffers, &communicators, &constants, &inputs, &outputs, &instructions,
      &metadata, &meshTable, runtime::kChecksumPlaceholder);
  fb::FinishSizePrefixedProgramBuffer(b, root);
  return sealAndVerify(b, func);
}

FailureOr<std::vector<uint8_t>> loom::emitProgram(func::FuncOp func) {
  return ProgramEmitter(func).emit();
}

/// A pipeline-parallel module (-loom-split-pipeline): one program per
/// pipeline rank, in module order, wrapped in a program that carries the
/// mesh and the schedule.
static FailureOr<std::vector<uint8_t>> emitPipelineProgram(ModuleOp module) {
  auto pipeline =
      module->getAttrOfType<DictionaryAttr>(LoomDialect::kPipelineAttrName);
  SmallVector<std::vector<uint8_t>> stages;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    FailureOr<std::vector<uint8_t>> bytes = emitProgram(func);
    if (failed(bytes))
      return failure();
    stages.push_back(std::move(*bytes));
  }
  int64_t pp = pipeline.getAs<IntegerAttr>("pp").getInt();
  if (static_cast<int64_t>(stages.size()) != pp)
    return module.emitError("the pipeline module has ")
           << stages.size() << " function bodies for pp = " << pp;

  flatbuffers::FlatBufferBuilder b;
  std::vector<flatbuffers::Offset<fb::Stage>> stageTable;
  for (const std::vector<uint8_t> &bytes : stages)
    stageTable.push_back(fb::CreateStageDirect(b, &bytes));
  SmallVector<MeshOp> meshes(module.getOps<MeshOp>());
  std::vector<flatbuffers::Offset<fb::Mesh>> meshTable =
      createMeshTable(b, meshes);
  std::vector<flatbuffers::Offset<fb::KeyValue>> metadata;
  if (auto model =
          module->getAttrOfType<StringAttr>(LoomDialect::kModelAttrName))
    metadata.push_back(
        fb::CreateKeyValueDirect(b, "model", model.str().c_str()));
  for (NamedAttribute entry : pipeline) {
    std::string value;
    if (auto i = dyn_cast<IntegerAttr>(entry.getValue()))
      value = std::to_string(i.getInt());
    else if (auto str = dyn_cast<StringAttr>(entry.getValue()))
      value = str.str();
    metadata.push_back(fb::CreateKeyValueDirect(
        b, ("pipeline." + entry.getName().str()).c_str(), value.c_str()));
  }
  std::string name = "pipeline";
  for (auto func : module.getOps<func::FuncOp>())
    if (!func.isExternal()) {
      // "train_step" from "train_step_pp0".
      name = func.getSymName().rsplit("_pp").first.str();
      break;
    }
  fb::Version version(runtime::kFormatMajor, runtime::kFormatMinor);
  auto root = fb::CreateProgramDirect(
      b, &version, name.c_str(), /*mesh=*/nullptr, /*arena_size=*/0,
      /*buffers=*/nullptr, /*communicators=*/nullptr, /*constants=*/nullptr,
      /*inputs=*/nullptr, /*outputs=*/nullptr, /*instructions=*/nullptr,
      &metadata, &meshTable, runtime::kChecksumPlaceholder, &stageTable);
  fb::FinishSizePrefixedProgramBuffer(b, root);
  return sealAndVerify(b, module);
}

FailureOr<std::vector<uint8_t>> loom::emitProgram(ModuleOp module,
                                                  StringRef function) {
  if (function.empty() && module->hasAttr(LoomDialect::kPipelineAttrName))
    return emitPipelineProgram(module);
  SmallVector<func::FuncOp> funcs;
  for (auto func : module.getOps<func::FuncOp>())
    if (!func.isExternal() &&
        (function.empty() || func.getSymName() == function))
      funcs.push_back(func);
  if (funcs.size() == 1)
    return emitProgram(funcs.front());
  if (!function.empty())
    return module.emitError("the module has no function body named @")
           << function;
  std::string names;
  for (auto func : module.getOps<func::FuncOp>())
    if (!func.isExternal())
      names += (names.empty() ? "@" : ", @") + func.getSymName().str();
  if (funcs.empty())
    return module.emitError("the module has no function body to emit");
  return module.emitError("the module has ")
         << funcs.size() << " function bodies (" << names
         << "); name the one to emit (--loom-function)";
}

FailureOr<SmallVector<std::pair<std::string, std::vector<uint8_t>>>>
loom::emitPrograms(ModuleOp module) {
  SmallVector<std::pair<std::string, std::vector<uint8_t>>> programs;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    FailureOr<std::vector<uint8_t>> bytes = emitProgram(func);
    if (failed(bytes))
      return failure();
    programs.emplace_back(func.getSymName().str(), std::move(*bytes));
  }
  return programs;
}

std::string loom::dumpProgramText(const std::vector<uint8_t> &bytes) {
  // The bytes come from emitProgram, which verified them: load cannot throw.
  return runtime::Program::load(bytes.data(), bytes.size())->dump();
}

/// --loom-function: which function of the module to emit.
static llvm::cl::opt<std::string> functionName(
    "loom-function",
    llvm::cl::desc("The function to emit as a program (default: the module's "
                   "only function body)"),
    llvm::cl::init(""));

/// Emits the module's program and writes it with `write`.
static LogicalResult translateToProgram(
    Operation *op, raw_ostream &os,
    function_ref<void(const std::vector<uint8_t> &, raw_ostream &)> write) {
  auto module = dyn_cast<ModuleOp>(op);
  if (!module)
    return op->emitError("expected a module");
  FailureOr<std::vector<uint8_t>> bytes = emitProgram(module, functionName);
  if (failed(bytes))
    return failure();
  write(*bytes, os);
  return success();
}

void loom::registerToProgramTranslations() {
  auto registerDialects = [](DialectRegistry &registry) {
    registry.insert<LoomDialect, func::FuncDialect>();
  };
  static TranslateFromMLIRRegistration toBinary(
      "loom-to-program", "write the per-rank program (binary)",
      [](Operation *op, raw_ostream &os) {
        return translateToProgram(
            op, os, [](const std::vector<uint8_t> &bytes, raw_ostream &os) {
              os.write(reinterpret_cast<const char *>(bytes.data()),
                       bytes.size());
            });
      },
      registerDialects);
  static TranslateFromMLIRRegistration toText(
      "loom-to-program-text", "write the per-rank program's text dump",
      [](Operation *op, raw_ostream &os) {
        return translateToProgram(
            op, os, [](const std::vector<uint8_t> &bytes, raw_ostream &os) {
              os << dumpProgramText(bytes);
            });
      },
      registerDialects);
}
