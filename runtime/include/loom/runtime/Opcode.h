//===- Opcode.h - Loom program opcodes --------------------------*- C++ -*-===//
//
// The instruction opcodes of a Loom program, the slots of their decoded
// attributes and the values of their string attributes, all from the op
// table (OpTable.inc, generated from the loom ops' TableGen). Plain data
// only, so that device code (the CUDA plugin) can include it; the table's
// descriptions are in OpTable.h.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_OPCODE_H
#define LOOM_RUNTIME_OPCODE_H

#include <cstdint>

namespace loom::runtime {

enum class Opcode : uint16_t {
  Invalid = 0,
#define LOOM_OPCODE(NAME, VALUE, ...) NAME = VALUE,
#include "loom/runtime/OpTable.inc"
};

/// Where each opcode's decoded attributes sit in OpAttrs::values:
/// attr::Scale::factor, attr::Matmul::transpose_lhs, ...
namespace attr {
#define LOOM_OP_ATTR_SLOTS
#include "loom/runtime/OpTable.inc"

/// The values of string attributes, as their decoded index:
/// attr::GeluApproximation::tanh, attr::CollectiveReduction::mean, ...
#define LOOM_OP_ATTR_ENUMS
#include "loom/runtime/OpTable.inc"
} // namespace attr

/// The loom op name in snake case ("all_reduce", "rmsnorm"), or nullptr for
/// a value that is not an opcode.
const char *opcodeName(Opcode op);

/// Parses a name produced by opcodeName(); returns false if unknown.
bool parseOpcode(const char *name, Opcode &out);

/// True for the opcodes that need a communicator.
bool isCollective(Opcode op);

enum class BufferKind : uint8_t {
  Arena = 0,
  Constant = 1,
  Input = 2,
  Output = 3,
  Parameter = 4,
  State = 5,
};
/// Parameter and State buffers persist across runs.
inline bool isPersistent(BufferKind kind) {
  return kind == BufferKind::Parameter || kind == BufferKind::State;
}
const char *bufferKindName(BufferKind kind);

enum class StreamKind : uint8_t { Compute = 0, Comm = 1 };

} // namespace loom::runtime

#endif // LOOM_RUNTIME_OPCODE_H
