//===- Opcode.cpp - The op table as data ----------------------------------===//
//
// Builds the OpSpec of every opcode from OpTable.inc, and checks at compile
// time that every opcode of the table is the same value in the FlatBuffers
// schema (runtime/schema/opcodes.fbs).
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/DType.h"
#include "loom/runtime/OpTable.h"
#include "loom/runtime/program_generated.h"

#include <algorithm>
#include <cstring>

namespace loom::runtime {

#define LOOM_OPCODE(NAME, VALUE, ...)                                          \
  static_assert(static_cast<int>(Opcode::NAME) ==                              \
                    static_cast<int>(fb::Opcode::NAME),                        \
                "Opcode::" #NAME " must have its schema value");
#include "loom/runtime/OpTable.inc"

namespace {

std::vector<OpSpec> buildOpSpecs() {
  std::vector<OpSpec> specs;
#define LOOM_OPCODE(NAME, VALUE, STR, MIN, MAX, RESULTS, IN_PLACE, COLLECTIVE, \
                    RULE)                                                      \
  specs.push_back(OpSpec{                                                      \
      Opcode::NAME, STR, MIN, MAX, RESULTS, IN_PLACE, ShapeRule::RULE, {}});
#include "loom/runtime/OpTable.inc"
  auto spec = [&](Opcode op) -> OpSpec & {
    return *std::find_if(specs.begin(), specs.end(),
                         [&](const OpSpec &s) { return s.op == op; });
  };
#define LOOM_OP_ATTR(OP, ATTR, STR, SLOT, KIND, REQUIRED, RANK_DEPENDENT,      \
                     IS_DIM, HAS_DEFAULT, DEFAULT)                             \
  spec(Opcode::OP)                                                             \
      .attrs.push_back(AttrSpec{STR,                                           \
                                SLOT,                                          \
                                AttrKind::KIND,                                \
                                REQUIRED,                                      \
                                RANK_DEPENDENT,                                \
                                IS_DIM,                                        \
                                HAS_DEFAULT,                                   \
                                static_cast<int64_t>(DEFAULT),                 \
                                static_cast<double>(DEFAULT),                  \
                                {}});
#include "loom/runtime/OpTable.inc"
#define LOOM_OP_ATTR_VALUES(OP, ATTR, ...)                                     \
  spec(Opcode::OP).attrs[attr::OP::ATTR].values = {__VA_ARGS__};
#include "loom/runtime/OpTable.inc"
  return specs;
}

} // namespace

const std::vector<OpSpec> &allOpSpecs() {
  static const std::vector<OpSpec> specs = buildOpSpecs();
  return specs;
}

const OpSpec *findOpSpec(Opcode op) {
  for (const OpSpec &s : allOpSpecs())
    if (s.op == op)
      return &s;
  return nullptr;
}

const AttrSpec *OpSpec::findAttr(const std::string &attrName) const {
  for (const AttrSpec &a : attrs)
    if (attrName == a.name)
      return &a;
  return nullptr;
}

const char *opcodeName(Opcode op) {
  const OpSpec *spec = findOpSpec(op);
  return spec ? spec->name : nullptr;
}

bool parseOpcode(const char *name, Opcode &out) {
  for (const OpSpec &s : allOpSpecs())
    if (std::strcmp(s.name, name) == 0) {
      out = s.op;
      return true;
    }
  return false;
}

bool isCollective(Opcode op) {
  switch (op) {
#define LOOM_OPCODE(NAME, VALUE, STR, MIN, MAX, RESULTS, IN_PLACE, COLLECTIVE, \
                    RULE)                                                      \
  case Opcode::NAME:                                                           \
    return COLLECTIVE;
#include "loom/runtime/OpTable.inc"
  default:
    return false;
  }
}

const char *attrKindName(AttrKind k) {
  switch (k) {
  case AttrKind::Int:
    return "int";
  case AttrKind::Float:
    return "float";
  case AttrKind::Bool:
    return "bool";
  case AttrKind::Ints:
    return "ints";
  case AttrKind::String:
    return "string";
  }
  return "?";
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
  case BufferKind::State:
    return "state";
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
