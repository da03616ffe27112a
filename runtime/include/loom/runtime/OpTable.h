//===- OpTable.h - What every program opcode is -----------------*- C++ -*-===//
//
// The op table (OpTable.inc, generated from the loom ops' TableGen) as data:
// each opcode's name, operand and result counts, in-place capability, shape
// rule and attributes. The loader and verifier check instructions against
// it, the executor decodes attributes with it, and the compiler's program
// emitter writes attributes by it, so that both sides agree by
// construction.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_OPTABLE_H
#define LOOM_RUNTIME_OPTABLE_H

#include "loom/runtime/Opcode.h"

#include <cstdint>
#include <string>
#include <vector>

namespace loom::runtime {

enum class AttrKind : uint8_t {
  Int = 0,
  Float = 1,
  Bool = 2,
  Ints = 3,
  String = 4
};
const char *attrKindName(AttrKind kind);

/// How the verifier checks an instruction's shapes.
enum class ShapeRule : uint8_t {
  /// Operands and the result share shape and float element type.
  Elementwise,
  /// The opcode's own rule (runtime/src/program/Verifier.cpp).
  Custom,
};

struct AttrSpec {
  const char *name;
  /// Index in OpAttrs::values (attr::<Op>::<name>).
  int slot;
  AttrKind kind;
  bool required;
  /// Int/Ints that may carry rank-dependent terms.
  bool rankDependent;
  /// A dimension index (or, for Ints, indices) of operand 0.
  bool isDim;
  bool hasDefault;
  int64_t defaultInt;  ///< Int, Bool, String (the value's index)
  double defaultFloat; ///< Float
  /// String attributes: the allowed values, in index order.
  std::vector<const char *> values;
};

struct OpSpec {
  Opcode op;
  const char *name;
  int minOperands;
  /// kAnyNumber for a variadic operand group.
  int maxOperands;
  int numResults;
  /// A result may be exactly an operand's bytes.
  bool inPlace;
  ShapeRule shapeRule;
  std::vector<AttrSpec> attrs;

  static constexpr int kAnyNumber = -1;
  const AttrSpec *findAttr(const std::string &name) const;
};

/// Every opcode, in value order.
const std::vector<OpSpec> &allOpSpecs();
/// The spec of `op`, or null for a value that is not an opcode.
const OpSpec *findOpSpec(Opcode op);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_OPTABLE_H
