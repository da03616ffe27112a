//===- Program.h - Loading and verifying Loom programs ----------*- C++ -*-===//
//
// A Program is a verified, immutable, decoded copy of a program file
// (runtime/schema/program.fbs). Loading runs flatbuffers::Verifier and then
// Loom's semantic rules (runtime/README.md, "Verifier rules"); a program that
// breaks any rule is rejected with a ProgramError naming the instruction, its
// source location and the rule, and is never executed.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_PROGRAM_H
#define LOOM_RUNTIME_PROGRAM_H

#include "loom/runtime/DType.h"
#include "loom/runtime/Mesh.h"
#include "loom/runtime/OpTable.h"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::runtime {

/// The format version this runtime reads and writes. Programs with another
/// major version are rejected; any minor version of the same major loads.
constexpr uint16_t kFormatMajor = 1;
constexpr uint16_t kFormatMinor = 4;

/// Maximum tensor rank.
constexpr int kMaxRank = 8;

/// A program that cannot be loaded: malformed, truncated, wrong version, or
/// breaking a semantic rule.
class ProgramError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct BufferInfo {
  uint32_t id = 0;
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  BufferKind kind = BufferKind::Arena;
  uint64_t offset = 0; ///< arena offset, or constants offset for Constant
  uint64_t size = 0;   ///< bytes
  int64_t numel = 1;

  bool inArena() const { return kind != BufferKind::Constant; }
  /// "f32[2,3]".
  std::string typeStr() const;
};

/// term value = coeffs[i] * ((coord(axis) + shift) mod size(axis)).
struct AffineTerm {
  int mesh = 0; ///< index in Program::meshes()
  int axis = 0; ///< axis index in that mesh
  std::vector<int64_t> coeffs;
  int64_t shift = 0;
};

struct AttrValue {
  std::string name;
  AttrKind kind = AttrKind::Int;
  int64_t i = 0; ///< Int, Bool
  double f = 0;  ///< Float
  std::vector<int64_t> ints;
  std::string s;
  std::vector<AffineTerm> terms; ///< rank-dependent part of Int / Ints

  /// The Int or Ints value of a rank whose coordinates in each mesh are
  /// `coords[mesh]`.
  std::vector<int64_t>
  resolve(const std::vector<Mesh> &meshes,
          const std::vector<std::vector<int64_t>> &coords) const;
  /// Smallest and largest value element `idx` can take over all ranks.
  int64_t minValue(const std::vector<Mesh> &meshes, size_t idx) const;
  int64_t maxValue(const std::vector<Mesh> &meshes, size_t idx) const;
};

struct InstrInfo {
  Opcode op = Opcode::Invalid;
  std::vector<uint32_t> operands;
  std::vector<uint32_t> results;
  std::vector<AttrValue> attrs;
  int32_t communicator = -1;
  StreamKind stream = StreamKind::Compute;
  std::string loc;

  const AttrValue *attr(const char *name) const;
  /// Convenience accessors with defaults for absent attributes.
  bool getBool(const char *name, bool dflt = false) const;
  double getFloat(const char *name, double dflt = 0) const;
  int64_t getInt(const char *name, int64_t dflt = 0) const;
  std::vector<int64_t> getInts(const char *name) const;
  std::string getString(const char *name, const std::string &dflt = "") const;
};

struct CommInfo {
  uint32_t id = 0;
  uint32_t mesh = 0; ///< index in Program::meshes()
  std::vector<std::string> axisNames;
  std::vector<int> axes; ///< mesh axis indices, major first
  int64_t size = 1;      ///< group size
};

struct Binding {
  std::string name;
  uint32_t buffer = 0;
  /// When the buffer is a rank's piece of a larger tensor: the mesh axes
  /// splitting each dimension (major first) of Program::meshes()[mesh];
  /// empty for a whole tensor.
  std::vector<std::vector<std::string>> sharding;
  unsigned mesh = 0;
  bool isSharded() const {
    for (const auto &axes : sharding)
      if (!axes.empty())
        return true;
    return false;
  }
};

/// Instructions [first, last] of a program that run one schedule action
/// ("F(s0,m1)", "B(s1,m0)", "W(...)", "send", "recv", "optimizer").
struct InstructionSpan {
  std::string action;
  size_t first = 0, last = 0;
};

/// The `pipeline.action_spans` metadata text of `spans`:
/// "F(s0,m1):12-40;recv:41-41;...". Program::actionSpans reads it back.
std::string formatActionSpans(const std::vector<InstructionSpan> &spans);

class Program {
public:
  /// Verifies and decodes `size` bytes at `data` (copied). Throws
  /// ProgramError.
  static std::shared_ptr<const Program> load(const void *data, size_t size);
  /// Reads and loads a program file. Throws ProgramError.
  static std::shared_ptr<const Program> loadFile(const std::string &path);

  uint16_t versionMajor() const { return major_; }
  uint16_t versionMinor() const { return minor_; }
  const std::string &name() const { return name_; }
  /// The meshes the program's communicators and rank-dependent attributes
  /// name; all span the same ranks (the world of the program's stage).
  const std::vector<Mesh> &meshes() const { return meshes_; }
  /// The first mesh, or a mesh of one rank when the program has none.
  const Mesh &mesh() const;
  /// Each mesh's coordinates of `rank`.
  std::vector<std::vector<int64_t>> coords(int64_t rank) const;
  uint64_t arenaSize() const { return arenaSize_; }
  const std::vector<BufferInfo> &buffers() const { return buffers_; }
  const std::vector<CommInfo> &communicators() const { return comms_; }
  const std::vector<Binding> &inputs() const { return inputs_; }
  const std::vector<Binding> &outputs() const { return outputs_; }
  const std::vector<InstrInfo> &instructions() const { return instrs_; }
  const std::vector<std::pair<std::string, std::string>> &metadata() const {
    return metadata_;
  }
  /// The constants blob, 64-byte aligned.
  const uint8_t *constants() const { return constants_.get(); }
  uint64_t constantsSize() const { return constantsSize_; }

  /// Buffer id bound to an input / output name, or -1.
  int64_t findInput(const std::string &name) const;
  int64_t findOutput(const std::string &name) const;

  /// "instruction 3 (matmul) at model.mlir:4:2" for messages.
  std::string describe(size_t instrIndex) const;

  /// The stable text form (what `loom-dump` prints).
  std::string dump() const;

  /// A pipeline-parallel program holds one program per pipeline rank (its
  /// stages) and nothing else; the ranks whose coordinate on the mesh's
  /// `pp` axis is i run stage i.
  bool isPipeline() const { return !stages_.empty(); }
  const std::vector<std::shared_ptr<const Program>> &stages() const {
    return stages_;
  }
  /// The stage of world rank `rank` (its `pp` coordinate).
  size_t stageOf(int64_t rank) const;
  /// A metadata value, or "" when the key is absent.
  std::string metadataValue(const std::string &key) const;
  /// A pipeline stage's schedule actions by instruction range, from its
  /// `pipeline.action_spans` metadata; empty for other programs.
  std::vector<InstructionSpan> actionSpans() const;
  /// The program world rank `rank` runs: its stage of a pipeline program,
  /// or this one.
  const Program &forRank(int64_t rank) const;

  /// A 64-bit hash of the program file's bytes: the ranks of a job check at
  /// rendezvous that they run the same program.
  uint64_t contentHash() const { return contentHash_; }
  /// False for a program of format 1.0, which carries no checksum: damage to
  /// it may go unnoticed (tools say so).
  bool hasChecksum() const { return hasChecksum_; }

private:
  friend class ProgramLoader;
  Program() = default;

  uint16_t major_ = 0, minor_ = 0;
  std::string name_;
  std::vector<Mesh> meshes_;
  uint64_t arenaSize_ = 0;
  std::vector<BufferInfo> buffers_;
  std::vector<CommInfo> comms_;
  std::vector<Binding> inputs_, outputs_;
  std::vector<InstrInfo> instrs_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::unique_ptr<uint8_t, void (*)(void *)> constants_{nullptr, nullptr};
  uint64_t constantsSize_ = 0;
  uint64_t contentHash_ = 0;
  bool hasChecksum_ = false;
  std::vector<std::shared_ptr<const Program>> stages_;
};

/// The program world rank `rank` runs: its stage of a pipeline-parallel
/// program, or `program` itself.
std::shared_ptr<const Program>
programForRank(const std::shared_ptr<const Program> &program, int64_t rank);

/// Normalizes a possibly negative dimension index against `rank`; returns -1
/// when out of range.
inline int normalizeDim(int64_t d, size_t rank) {
  int64_t r = static_cast<int64_t>(rank);
  if (d < -r || d >= r)
    return -1;
  return static_cast<int>(d < 0 ? d + r : d);
}

/// The placeholder writers give Program.checksum before sealing (a value
/// the FlatBuffers builder does not omit).
constexpr uint64_t kChecksumPlaceholder = 1;

/// Writes the checksum into a finished program whose `checksum` field is
/// present (set to kChecksumPlaceholder). Returns false, changing nothing,
/// for bytes that are not such a program.
bool sealProgram(std::vector<uint8_t> &bytes);

/// Verifies a program without keeping it: "" if valid, else the error.
/// Never throws (usable from code built without exceptions).
std::string verifyProgram(const void *data, size_t size) noexcept;

} // namespace loom::runtime

#endif // LOOM_RUNTIME_PROGRAM_H
