//===- ProgramEmitter.cpp - Write a planned loom function as a program ----===//
//
// One loom op becomes one instruction; each SSA value becomes one buffer at
// the arena offset of the memory plan. Op attributes map to the instruction
// attributes documented in runtime/README.md.
//
//===----------------------------------------------------------------------===//

#include "loom/Target/ProgramEmitter.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"

#include "loom/runtime/Program.h"
#include "loom/runtime/program_generated.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace loom;
namespace fb = loom::fb;

namespace {
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
  FailureOr<int32_t> communicatorFor(CollectiveOpInterface op);
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
  /// Communicators' axes; a communicator's id is its index.
  std::vector<std::vector<std::string>> comms;
  /// Values the function returns: output buffers.
  llvm::SmallPtrSet<Value, 4> returned;
  MeshAttr mesh;
  int64_t arenaSize = 0;
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

FailureOr<int32_t> ProgramEmitter::communicatorFor(CollectiveOpInterface op) {
  if (!mesh)
    mesh = op.getMesh();
  else if (mesh != op.getMesh())
    return op->emitOpError("uses mesh ")
           << op.getMesh() << " but the program's mesh is " << mesh
           << "; one program runs on one mesh";
  std::vector<std::string> axes;
  for (Attribute axis : op.getAxes())
    axes.push_back(cast<StringAttr>(axis).str());
  auto it = llvm::find(comms, axes);
  if (it != comms.end())
    return static_cast<int32_t>(it - comms.begin());
  comms.push_back(axes);
  return static_cast<int32_t>(comms.size() - 1);
}

static StringRef reductionName(CollectiveReduction reduction) {
  return stringifyCollectiveReduction(reduction);
}

FailureOr<fb::Opcode> ProgramEmitter::lowerOp(Operation *op, AttrList &attrs,
                                              int32_t &comm) {
  using fb::Opcode;
  if (auto collective = dyn_cast<CollectiveOpInterface>(op)) {
    FailureOr<int32_t> id = communicatorFor(collective);
    if (failed(id))
      return failure();
    comm = *id;
  }
  return llvm::TypeSwitch<Operation *, FailureOr<Opcode>>(op)
      .Case([](AddOp) { return Opcode::Add; })
      .Case([](SubOp) { return Opcode::Sub; })
      .Case([](MulOp) { return Opcode::Mul; })
      .Case([](DivOp) { return Opcode::Div; })
      .Case([&](ScaleOp s) {
        addFloat(attrs, "factor", s.getFactor().convertToDouble());
        return Opcode::Scale;
      })
      .Case([&](GeluOp g) {
        addString(attrs, "approximate",
                  stringifyGeluApproximation(g.getApproximate()));
        return Opcode::Gelu;
      })
      .Case([](SiluOp) { return Opcode::Silu; })
      .Case([](SwigluOp) { return Opcode::Swiglu; })
      .Case([&](RmsNormOp n) {
        addFloat(attrs, "epsilon", n.getEpsilon().convertToDouble());
        return Opcode::RmsNorm;
      })
      .Case([&](LayerNormOp n) {
        addFloat(attrs, "epsilon", n.getEpsilon().convertToDouble());
        return Opcode::LayerNorm;
      })
      .Case([&](SoftmaxOp s) {
        addInt(attrs, "axis", static_cast<int64_t>(s.getAxis()));
        return Opcode::Softmax;
      })
      .Case([&](RopeOp r) {
        addFloat(attrs, "theta", r.getTheta().convertToDouble());
        addInt(attrs, "position_offset",
               static_cast<int64_t>(r.getPositionOffset()));
        return Opcode::Rope;
      })
      .Case([&](AttentionOp a) {
        addBool(attrs, "causal", a.getCausal());
        addFloat(attrs, "scale", a.getEffectiveScale());
        return Opcode::Attention;
      })
      .Case([](CrossEntropyOp) { return Opcode::CrossEntropy; })
      .Case([](EmbeddingOp) { return Opcode::Embedding; })
      .Case([&](MatmulOp m) {
        addBool(attrs, "transpose_a", m.getTransposeLhs());
        addBool(attrs, "transpose_b", m.getTransposeRhs());
        return Opcode::Matmul;
      })
      .Case([&](GroupedMatmulOp m) {
        addBool(attrs, "transpose_w", m.getTransposeWeight());
        return Opcode::GroupedMatmul;
      })
      .Case([](ReshapeOp) { return Opcode::Reshape; })
      .Case([&](TransposeOp t) {
        addInts(attrs, "permutation", t.getPermutation());
        return Opcode::Transpose;
      })
      .Case([&](SliceOp s) {
        addInts(attrs, "offsets", s.getOffsets());
        addInts(attrs, "sizes", s.getSizes());
        return Opcode::Slice;
      })
      .Case([&](ConcatOp c) {
        addInt(attrs, "dim", static_cast<int64_t>(c.getDim()));
        return Opcode::Concat;
      })
      .Case([&](BroadcastOp bc) {
        addInts(attrs, "dims", bc.getDims());
        return Opcode::Broadcast;
      })
      .Case([&](ReduceOp r) {
        addString(attrs, "kind", stringifyReduceKind(r.getKind()));
        addInts(attrs, "dims", r.getDims());
        addBool(attrs, "keep_dims", r.getKeepDims());
        return Opcode::Reduce;
      })
      .Case([&](RouterOp r) {
        addInt(attrs, "top_k", static_cast<int64_t>(r.getTopK()));
        addBool(attrs, "softmax_before_topk", r.getSoftmaxBeforeTopk());
        addBool(attrs, "normalize", r.getNormalize());
        return Opcode::Router;
      })
      .Case([&](DispatchOp d) {
        addInt(attrs, "num_experts", static_cast<int64_t>(d.getNumExperts()));
        addInt(attrs, "capacity", static_cast<int64_t>(d.getCapacity()));
        return Opcode::Dispatch;
      })
      .Case([&](CombineOp c) {
        addInt(attrs, "capacity",
               cast<ShapedType>(c.getInput().getType()).getDimSize(1));
        return Opcode::Combine;
      })
      .Case([&](AdamWOp a) {
        addFloat(attrs, "lr", a.getLr().convertToDouble());
        addFloat(attrs, "beta1", a.getBeta1().convertToDouble());
        addFloat(attrs, "beta2", a.getBeta2().convertToDouble());
        addFloat(attrs, "epsilon", a.getEpsilon().convertToDouble());
        addFloat(attrs, "weight_decay", a.getWeightDecay().convertToDouble());
        return Opcode::AdamW;
      })
      .Case([&](AllReduceOp c) {
        addString(attrs, "reduction", reductionName(c.getReduction()));
        return Opcode::AllReduce;
      })
      .Case([&](AllGatherOp c) {
        addInt(attrs, "gather_dim", static_cast<int64_t>(c.getGatherDim()));
        return Opcode::AllGather;
      })
      .Case([&](ReduceScatterOp c) {
        addInt(attrs, "scatter_dim", static_cast<int64_t>(c.getScatterDim()));
        addString(attrs, "reduction", reductionName(c.getReduction()));
        return Opcode::ReduceScatter;
      })
      .Case([&](AllToAllOp c) {
        addInt(attrs, "split_dim", static_cast<int64_t>(c.getSplitDim()));
        addInt(attrs, "concat_dim", static_cast<int64_t>(c.getConcatDim()));
        return Opcode::AllToAll;
      })
      .Case([&](CollectivePermuteOp c) {
        addInt(attrs, "shift", static_cast<int64_t>(c.getShift()));
        return Opcode::CollectivePermute;
      })
      .Case([&](SendOp c) {
        addInt(attrs, "peer_shift", static_cast<int64_t>(c.getPeerShift()));
        return Opcode::Send;
      })
      .Case([&](RecvOp c) {
        addInt(attrs, "peer_shift", static_cast<int64_t>(c.getPeerShift()));
        return Opcode::Recv;
      })
      .Default([](Operation *op) -> FailureOr<Opcode> {
        return op->emitOpError("has no program instruction");
      });
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
    auto kind = returned.contains(result) ? fb::BufferKind::Output
                                          : fb::BufferKind::Arena;
    if (failed(addBuffer(result, kind, name, offsets[i])))
      return failure();
    resultIds.push_back(bufferIds[result]);
  }
  fb::Stream stream = comm >= 0 ? fb::Stream::Comm : fb::Stream::Compute;
  instructions.push_back(
      fb::CreateInstructionDirect(b, *opcode, &operandIds, &resultIds, &attrs,
                                  comm, stream, locationOf(op).c_str()));
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

  // Arguments: parameters and inputs, bound by name.
  for (BlockArgument arg : func.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto offset =
        func.getArgAttrOfType<IntegerAttr>(i, LoomDialect::kOffsetAttrName);
    if (!offset)
      return func.emitError("argument #") << i << " has no 'loom.offset'";
    auto param =
        func.getArgAttrOfType<StringAttr>(i, LoomDialect::kParamAttrName);
    auto input =
        func.getArgAttrOfType<StringAttr>(i, LoomDialect::kInputAttrName);
    std::string name = param   ? param.str()
                       : input ? input.str()
                               : ("arg" + Twine(i)).str();
    auto kind = param ? fb::BufferKind::Parameter : fb::BufferKind::Input;
    if (failed(addBuffer(arg, kind, name, offset.getInt())))
      return failure();
    inputs.push_back(fb::CreateBindingDirect(b, name.c_str(), bufferIds[arg]));
    if (param)
      outputs.push_back(
          fb::CreateBindingDirect(b, name.c_str(), bufferIds[arg]));
  }

  // Instructions.
  Operation *terminator = func.getBody().front().getTerminator();
  for (Value value : terminator->getOperands())
    returned.insert(value);
  for (Operation &op : func.getBody().front().without_terminator()) {
    auto offsets =
        op.getAttrOfType<DenseI64ArrayAttr>(LoomDialect::kOffsetsAttrName);
    if (!offsets)
      return op.emitOpError("has no 'loom.offsets'; run "
                            "-loom-lower-to-program first");
    if (failed(emitOp(&op, offsets.asArrayRef())))
      return failure();
  }

  // Returned values are outputs.
  for (auto [i, value] : llvm::enumerate(terminator->getOperands())) {
    if (isa<BlockArgument>(value))
      return terminator->emitOpError("returns argument #")
             << cast<BlockArgument>(value).getArgNumber()
             << " directly; a program output must be computed";
    auto name =
        func.getResultAttrOfType<StringAttr>(i, LoomDialect::kOutputAttrName);
    std::string outName = name ? name.str() : ("output" + Twine(i)).str();
    outputs.push_back(
        fb::CreateBindingDirect(b, outName.c_str(), bufferIds[value]));
  }

  std::vector<flatbuffers::Offset<fb::MeshAxis>> meshAxes;
  if (mesh)
    for (auto [name, size] :
         llvm::zip(mesh.getAxisNames(), mesh.getAxisSizes()))
      meshAxes.push_back(
          fb::CreateMeshAxisDirect(b, name.getValue().str().c_str(), size));
  std::vector<flatbuffers::Offset<fb::Communicator>> communicators;
  for (auto [id, axes] : llvm::enumerate(comms)) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> names;
    for (const std::string &axis : axes)
      names.push_back(b.CreateString(axis));
    communicators.push_back(fb::CreateCommunicatorDirect(b, id, &names));
  }
  std::vector<flatbuffers::Offset<fb::KeyValue>> metadata;
  metadata.push_back(
      fb::CreateKeyValueDirect(b, "function", func.getSymName().str().c_str()));
  if (auto model = func->getParentOfType<ModuleOp>()->getAttrOfType<StringAttr>(
          LoomDialect::kModelAttrName))
    metadata.push_back(
        fb::CreateKeyValueDirect(b, "model", model.str().c_str()));

  fb::Version version(1, 0);
  std::vector<uint8_t> constants;
  auto root = fb::CreateProgramDirect(
      b, &version, func.getSymName().str().c_str(), &meshAxes, arenaSize,
      &buffers, &communicators, &constants, &inputs, &outputs, &instructions,
      &metadata);
  fb::FinishSizePrefixedProgramBuffer(b, root);
  std::vector<uint8_t> bytes(b.GetBufferPointer(),
                             b.GetBufferPointer() + b.GetSize());
  std::string error = runtime::verifyProgram(bytes.data(), bytes.size());
  if (!error.empty())
    return func.emitError("the emitted program does not verify: ") << error;
  return bytes;
}

FailureOr<std::vector<uint8_t>> loom::emitProgram(ModuleOp module) {
  SmallVector<func::FuncOp> funcs;
  for (auto func : module.getOps<func::FuncOp>())
    if (!func.isExternal())
      funcs.push_back(func);
  if (funcs.size() != 1)
    return module.emitError("a program is emitted from a module with exactly "
                            "one function body, found ")
           << funcs.size();
  return ProgramEmitter(funcs.front()).emit();
}

std::string loom::dumpProgramText(const std::vector<uint8_t> &bytes) {
  // The bytes come from emitProgram, which verified them: load cannot throw.
  return runtime::Program::load(bytes.data(), bytes.size())->dump();
}

/// Emits the module's program and writes it with `write`.
static LogicalResult translateToProgram(
    Operation *op, raw_ostream &os,
    function_ref<void(const std::vector<uint8_t> &, raw_ostream &)> write) {
  auto module = dyn_cast<ModuleOp>(op);
  if (!module)
    return op->emitError("expected a module");
  FailureOr<std::vector<uint8_t>> bytes = emitProgram(module);
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
