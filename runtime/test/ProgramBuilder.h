//===- ProgramBuilder.h - Test-only Loom program builder --------*- C++ -*-===//
//
// Builds program files with the FlatBuffers API, the way the compiler does.
// Everything is kept in plain structs until finish(), so tests can corrupt
// any field before serializing.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TEST_PROGRAMBUILDER_H
#define LOOM_RUNTIME_TEST_PROGRAMBUILDER_H

#include "loom/runtime/DType.h"
#include "loom/runtime/Opcode.h"
#include "loom/runtime/Program.h"
#include "loom/runtime/program_generated.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace loom::test {

using runtime::BufferKind;
using runtime::DType;
using runtime::Opcode;

struct TAttr {
  std::string name;
  fb::AttrKind kind = fb::AttrKind::Int;
  int64_t i = 0;
  double f = 0;
  std::vector<int64_t> ints;
  std::string s;
  struct Term {
    std::string axis;
    std::vector<int64_t> coeffs;
    int64_t shift = 0;
  };
  std::vector<Term> terms;

  static TAttr I(std::string n, int64_t v) {
    TAttr a;
    a.name = std::move(n);
    a.i = v;
    return a;
  }
  static TAttr F(std::string n, double v) {
    TAttr a;
    a.name = std::move(n);
    a.kind = fb::AttrKind::Float;
    a.f = v;
    return a;
  }
  static TAttr B(std::string n, bool v) {
    TAttr a;
    a.name = std::move(n);
    a.kind = fb::AttrKind::Bool;
    a.i = v;
    return a;
  }
  static TAttr Is(std::string n, std::vector<int64_t> v) {
    TAttr a;
    a.name = std::move(n);
    a.kind = fb::AttrKind::Ints;
    a.ints = std::move(v);
    return a;
  }
  static TAttr S(std::string n, std::string v) {
    TAttr a;
    a.name = std::move(n);
    a.kind = fb::AttrKind::String;
    a.s = std::move(v);
    return a;
  }
  TAttr &term(std::string axis, std::vector<int64_t> coeffs,
              int64_t shift = 0) {
    terms.push_back({std::move(axis), std::move(coeffs), shift});
    return *this;
  }
};

struct TBuffer {
  uint32_t id;
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  BufferKind kind;
  uint64_t offset;
  uint64_t size;
};

struct TInstr {
  Opcode op;
  std::vector<uint32_t> operands, results;
  std::vector<TAttr> attrs;
  int32_t comm = -1;
  uint8_t stream = 0;
  std::string loc;
};

class ProgramBuilder {
public:
  explicit ProgramBuilder(std::string name = "test") : name(std::move(name)) {}

  std::string name;
  uint16_t major = runtime::kFormatMajor, minor = runtime::kFormatMinor;
  /// The first mesh, "world" (format 1.0: the program's one mesh).
  std::vector<std::pair<std::string, int64_t>> mesh;
  /// Further meshes over the same ranks, by name.
  std::vector<
      std::pair<std::string, std::vector<std::pair<std::string, int64_t>>>>
      moreMeshes;
  std::vector<TBuffer> buffers;
  /// Communicators: mesh index (0: `mesh`, k: moreMeshes[k - 1]) and axes.
  std::vector<std::pair<uint32_t, std::vector<std::string>>> comms;
  std::vector<uint8_t> constants;
  std::vector<std::pair<std::string, uint32_t>> inputs, outputs;
  std::vector<TInstr> instrs;
  uint64_t arenaTop = 0;
  /// If set, written as arena_size instead of arenaTop.
  int64_t arenaSizeOverride = -1;
  /// A pipeline program's stages: each a whole program file's bytes.
  std::vector<std::vector<uint8_t>> stages;

  static uint64_t bytesOf(DType t, const std::vector<int64_t> &shape) {
    uint64_t n = runtime::dtypeSize(t);
    for (int64_t d : shape)
      n *= static_cast<uint64_t>(d);
    return n;
  }

  /// A buffer in the arena at the next 64-byte aligned offset.
  uint32_t buffer(const std::string &n, DType t, std::vector<int64_t> shape,
                  BufferKind kind = BufferKind::Arena) {
    uint64_t size = bytesOf(t, shape);
    uint64_t off = (arenaTop + 63) / 64 * 64;
    arenaTop = off + size;
    uint32_t id = static_cast<uint32_t>(buffers.size());
    buffers.push_back({id, n, t, std::move(shape), kind, off, size});
    return id;
  }
  /// A buffer at an explicit arena offset (for memory reuse and aliases).
  uint32_t bufferAt(const std::string &n, DType t, std::vector<int64_t> shape,
                    uint64_t offset, BufferKind kind = BufferKind::Arena) {
    uint64_t size = bytesOf(t, shape);
    if (offset + size > arenaTop)
      arenaTop = offset + size;
    uint32_t id = static_cast<uint32_t>(buffers.size());
    buffers.push_back({id, n, t, std::move(shape), kind, offset, size});
    return id;
  }
  uint32_t input(const std::string &n, DType t, std::vector<int64_t> shape) {
    uint32_t id = buffer(n, t, std::move(shape), BufferKind::Input);
    inputs.push_back({n, id});
    return id;
  }
  uint32_t output(const std::string &n, DType t, std::vector<int64_t> shape) {
    uint32_t id = buffer(n, t, std::move(shape), BufferKind::Output);
    outputs.push_back({n, id});
    return id;
  }
  uint32_t parameter(const std::string &n, DType t,
                     std::vector<int64_t> shape) {
    uint32_t id = buffer(n, t, std::move(shape), BufferKind::Parameter);
    inputs.push_back({n, id});
    outputs.push_back({n, id});
    return id;
  }
  uint32_t constant(const std::string &n, DType t, std::vector<int64_t> shape,
                    const void *data) {
    uint64_t size = bytesOf(t, shape);
    uint64_t off = (constants.size() + 63) / 64 * 64;
    constants.resize(off + size);
    if (size)
      std::memcpy(constants.data() + off, data, size);
    uint32_t id = static_cast<uint32_t>(buffers.size());
    buffers.push_back(
        {id, n, t, std::move(shape), BufferKind::Constant, off, size});
    return id;
  }
  uint32_t constantF32(const std::string &n, std::vector<int64_t> shape,
                       const std::vector<float> &v) {
    return constant(n, DType::F32, std::move(shape), v.data());
  }
  int32_t comm(std::vector<std::string> axes, uint32_t meshIndex = 0) {
    comms.push_back({meshIndex, std::move(axes)});
    return static_cast<int32_t>(comms.size() - 1);
  }
  TInstr &op(Opcode op, std::vector<uint32_t> operands,
             std::vector<uint32_t> results, std::vector<TAttr> attrs = {},
             int32_t comm = -1, std::string loc = "") {
    if (loc.empty())
      loc = "test.mlir:" + std::to_string(instrs.size() + 1) + ":1";
    instrs.push_back({op, std::move(operands), std::move(results),
                      std::move(attrs), comm, 0, std::move(loc)});
    return instrs.back();
  }

  std::vector<uint8_t> finish() const {
    flatbuffers::FlatBufferBuilder b;
    auto meshAxes = [&](const std::vector<std::pair<std::string, int64_t>> &m) {
      std::vector<flatbuffers::Offset<fb::MeshAxis>> axes;
      for (auto &a : m)
        axes.push_back(fb::CreateMeshAxisDirect(b, a.first.c_str(), a.second));
      return axes;
    };
    // Format 1.0 has one unnamed mesh; 1.1 names its meshes.
    bool legacy = major == 1 && minor == 0;
    std::vector<flatbuffers::Offset<fb::MeshAxis>> axes = meshAxes(mesh);
    std::vector<flatbuffers::Offset<fb::Mesh>> meshes;
    if (!legacy && !mesh.empty()) {
      meshes.push_back(fb::CreateMeshDirect(b, "world", &axes));
      for (auto &[meshName, meshAxesList] : moreMeshes) {
        auto more = meshAxes(meshAxesList);
        meshes.push_back(fb::CreateMeshDirect(b, meshName.c_str(), &more));
      }
    }
    std::vector<flatbuffers::Offset<fb::Buffer>> bufs;
    for (const TBuffer &t : buffers)
      bufs.push_back(fb::CreateBufferDirect(
          b, t.id, t.name.c_str(), static_cast<fb::DType>(t.dtype), &t.shape,
          static_cast<fb::BufferKind>(t.kind), t.offset, t.size));
    std::vector<flatbuffers::Offset<fb::Communicator>> cs;
    for (size_t i = 0; i < comms.size(); ++i) {
      std::vector<flatbuffers::Offset<flatbuffers::String>> names;
      for (auto &a : comms[i].second)
        names.push_back(b.CreateString(a));
      cs.push_back(fb::CreateCommunicatorDirect(b, static_cast<uint32_t>(i),
                                                &names, comms[i].first));
    }
    auto bindings =
        [&](const std::vector<std::pair<std::string, uint32_t>> &v) {
          std::vector<flatbuffers::Offset<fb::Binding>> r;
          for (auto &p : v)
            r.push_back(fb::CreateBindingDirect(b, p.first.c_str(), p.second));
          return r;
        };
    auto ins = bindings(inputs), outs = bindings(outputs);
    std::vector<flatbuffers::Offset<fb::Instruction>> is;
    for (const TInstr &t : instrs) {
      std::vector<flatbuffers::Offset<fb::Attr>> as;
      for (const TAttr &a : t.attrs) {
        std::vector<flatbuffers::Offset<fb::AffineTerm>> terms;
        for (auto &tm : a.terms)
          terms.push_back(fb::CreateAffineTermDirect(b, tm.axis.c_str(),
                                                     &tm.coeffs, tm.shift));
        as.push_back(fb::CreateAttrDirect(
            b, a.name.c_str(), a.kind, a.i, a.f,
            a.kind == fb::AttrKind::Ints ? &a.ints : nullptr,
            a.kind == fb::AttrKind::String ? a.s.c_str() : nullptr,
            terms.empty() ? nullptr : &terms));
      }
      is.push_back(fb::CreateInstructionDirect(
          b, static_cast<fb::Opcode>(t.op), &t.operands, &t.results, &as,
          t.comm, static_cast<fb::Stream>(t.stream), t.loc.c_str()));
    }
    std::vector<flatbuffers::Offset<fb::Stage>> stageTable;
    for (const std::vector<uint8_t> &stage : stages)
      stageTable.push_back(fb::CreateStageDirect(b, &stage));
    fb::Version version(major, minor);
    auto root = fb::CreateProgramDirect(
        b, &version, name.c_str(), legacy ? &axes : nullptr,
        arenaSizeOverride >= 0 ? static_cast<uint64_t>(arenaSizeOverride)
                               : arenaTop,
        &bufs, &cs, &constants, &ins, &outs, &is, nullptr,
        legacy ? nullptr : &meshes, legacy ? 0 : runtime::kChecksumPlaceholder,
        stages.empty() ? nullptr : &stageTable);
    fb::FinishSizePrefixedProgramBuffer(b, root);
    std::vector<uint8_t> bytes(b.GetBufferPointer(),
                               b.GetBufferPointer() + b.GetSize());
    // Format 1.1 programs carry their checksum (1.0 ones none).
    if (!legacy)
      runtime::sealProgram(bytes);
    return bytes;
  }
};

} // namespace loom::test

#endif // LOOM_RUNTIME_TEST_PROGRAMBUILDER_H
