//===- Opcode.cpp - Opcode and DType names --------------------------------===//

#include "loom/runtime/Opcode.h"
#include "loom/runtime/DType.h"
#include "loom/runtime/program_generated.h"

#include <cstring>

namespace loom::runtime {

#define LOOM_CHECK_OPCODE(X)                                                   \
  static_assert(static_cast<int>(Opcode::X) ==                                 \
                    static_cast<int>(fb::Opcode::X),                           \
                "Opcode::" #X " must match the schema");
LOOM_CHECK_OPCODE(Fill)
LOOM_CHECK_OPCODE(Copy)
LOOM_CHECK_OPCODE(Add)
LOOM_CHECK_OPCODE(Swiglu)
LOOM_CHECK_OPCODE(RmsNorm)
LOOM_CHECK_OPCODE(Rope)
LOOM_CHECK_OPCODE(Attention)
LOOM_CHECK_OPCODE(Embedding)
LOOM_CHECK_OPCODE(Matmul)
LOOM_CHECK_OPCODE(GroupedMatmul)
LOOM_CHECK_OPCODE(Reshape)
LOOM_CHECK_OPCODE(Reduce)
LOOM_CHECK_OPCODE(Router)
LOOM_CHECK_OPCODE(Combine)
LOOM_CHECK_OPCODE(AdamW)
LOOM_CHECK_OPCODE(AllReduce)
LOOM_CHECK_OPCODE(GroupEnd)
LOOM_CHECK_OPCODE(EventRecord)
LOOM_CHECK_OPCODE(EventWait)
#undef LOOM_CHECK_OPCODE

namespace {
struct OpName {
  Opcode op;
  const char *name;
};
constexpr OpName kOpNames[] = {
    {Opcode::Fill, "fill"},
    {Opcode::Copy, "copy"},
    {Opcode::Add, "add"},
    {Opcode::Sub, "sub"},
    {Opcode::Mul, "mul"},
    {Opcode::Div, "div"},
    {Opcode::Scale, "scale"},
    {Opcode::Gelu, "gelu"},
    {Opcode::Silu, "silu"},
    {Opcode::Swiglu, "swiglu"},
    {Opcode::RmsNorm, "rmsnorm"},
    {Opcode::LayerNorm, "layernorm"},
    {Opcode::Softmax, "softmax"},
    {Opcode::Rope, "rope"},
    {Opcode::Attention, "attention"},
    {Opcode::CrossEntropy, "cross_entropy"},
    {Opcode::Embedding, "embedding"},
    {Opcode::Matmul, "matmul"},
    {Opcode::GroupedMatmul, "grouped_matmul"},
    {Opcode::Reshape, "reshape"},
    {Opcode::Transpose, "transpose"},
    {Opcode::Slice, "slice"},
    {Opcode::Concat, "concat"},
    {Opcode::Broadcast, "broadcast"},
    {Opcode::Reduce, "reduce"},
    {Opcode::Router, "router"},
    {Opcode::Dispatch, "dispatch"},
    {Opcode::Combine, "combine"},
    {Opcode::AdamW, "adamw"},
    {Opcode::AllReduce, "all_reduce"},
    {Opcode::AllGather, "all_gather"},
    {Opcode::ReduceScatter, "reduce_scatter"},
    {Opcode::AllToAll, "all_to_all"},
    {Opcode::CollectivePermute, "collective_permute"},
    {Opcode::Send, "send"},
    {Opcode::Recv, "recv"},
    {Opcode::GroupStart, "group_start"},
    {Opcode::GroupEnd, "group_end"},
    {Opcode::EventRecord, "event_record"},
    {Opcode::EventWait, "event_wait"},
};
} // namespace

const char *opcodeName(Opcode op) {
  for (const OpName &n : kOpNames)
    if (n.op == op)
      return n.name;
  return nullptr;
}

bool parseOpcode(const char *name, Opcode &out) {
  for (const OpName &n : kOpNames)
    if (std::strcmp(n.name, name) == 0) {
      out = n.op;
      return true;
    }
  return false;
}

bool isCollective(Opcode op) {
  switch (op) {
  case Opcode::AllReduce:
  case Opcode::AllGather:
  case Opcode::ReduceScatter:
  case Opcode::AllToAll:
  case Opcode::CollectivePermute:
  case Opcode::Send:
  case Opcode::Recv:
    return true;
  default:
    return false;
  }
}

const char *bufferKindName(BufferKind kind) {
  switch (kind) {
  case BufferKind::Arena:
    return "arena";
  case BufferKind::Constant:
    return "constant";
  case BufferKind::Input:
    return "input";
  case BufferKind::Output:
    return "output";
  case BufferKind::Parameter:
    return "parameter";
  }
  return "?";
}

bool parseDType(const char *name, DType &out) {
  for (unsigned i = 0; i < kNumDTypes; ++i)
    if (std::strcmp(dtypeName(static_cast<DType>(i)), name) == 0) {
      out = static_cast<DType>(i);
      return true;
    }
  return false;
}

} // namespace loom::runtime
