//===- Opcode.h - Loom program opcodes --------------------------*- C++ -*-===//
//
// The instruction opcodes of a Loom program. Values match the `Opcode` enum of
// runtime/schema/program.fbs (checked at compile time in Opcode.cpp), so the
// runtime's public headers need no generated code.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_OPCODE_H
#define LOOM_RUNTIME_OPCODE_H

#include <cstdint>

namespace loom::runtime {

enum class Opcode : uint16_t {
  Invalid = 0,
  Fill = 1,
  Copy = 2,
  Add = 10,
  Sub = 11,
  Mul = 12,
  Div = 13,
  Scale = 14,
  Gelu = 15,
  Silu = 16,
  Swiglu = 17,
  RmsNorm = 20,
  LayerNorm = 21,
  Softmax = 22,
  Rope = 23,
  Attention = 30,
  CrossEntropy = 31,
  Embedding = 32,
  Matmul = 40,
  GroupedMatmul = 41,
  Reshape = 50,
  Transpose = 51,
  Slice = 52,
  Concat = 53,
  Broadcast = 54,
  Reduce = 55,
  Router = 60,
  Dispatch = 61,
  Combine = 62,
  AdamW = 70,
  AllReduce = 100,
  AllGather = 101,
  ReduceScatter = 102,
  AllToAll = 103,
  CollectivePermute = 104,
  Send = 105,
  Recv = 106,
  GroupStart = 107,
  GroupEnd = 108,
  EventRecord = 120,
  EventWait = 121,
};

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
};
const char *bufferKindName(BufferKind kind);

enum class StreamKind : uint8_t { Compute = 0, Comm = 1 };

} // namespace loom::runtime

#endif // LOOM_RUNTIME_OPCODE_H
