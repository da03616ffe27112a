//===- ProgramOpTable.cpp - The op table read from TableGen ---------------===//

#include "ProgramOpTable.h"

#include "mlir/TableGen/Attribute.h"
#include "mlir/TableGen/EnumInfo.h"
#include "mlir/TableGen/Operator.h"
#include "mlir/TableGen/Trait.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/TableGen/Error.h"

#include <algorithm>
#include <set>

using namespace llvm;
using namespace mlir::tblgen;
using namespace loom::tblgen;

/// "grouped_matmul" -> "GroupedMatmul" is not enough ("rmsnorm" ->
/// "RmsNorm"), so the enumerator is the op's C++ class without "Op".
static std::string enumeratorOf(const Operator &op) {
  StringRef cls = op.getCppClassName();
  if (!cls.consume_back("Op"))
    PrintFatalError(op.getLoc(), "op class " + op.getCppClassName() +
                                     " does not end in 'Op'");
  return cls.str();
}

static bool contains(const std::vector<StringRef> &list, StringRef name) {
  return llvm::is_contained(list, name);
}

/// The program attribute of an ODS attribute.
static ProgramAttr describeAttr(const Operator &op, StringRef name,
                                const Attribute &attr) {
  ProgramAttr out;
  out.name = name.str();
  Attribute base = attr.getBaseAttr();
  StringRef def = base.getDef().getName();
  if (base.isEnumAttr()) {
    EnumInfo info(&base.getDef());
    out.kind = "String";
    out.enumName = info.getEnumClassName().str();
    for (auto [index, c] : llvm::enumerate(info.getAllCases())) {
      if (c.getValue() != static_cast<int64_t>(index))
        PrintFatalError(op.getLoc(),
                        "enum " + info.getEnumClassName() +
                            ": program attributes need case values 0, 1, ...");
      out.values.push_back(c.getStr().str());
    }
  } else if (def == "F64Attr" || def == "F32Attr") {
    out.kind = "Float";
  } else if (def == "I64Attr" || def == "I32Attr") {
    out.kind = "Int";
  } else if (def == "UnitAttr") {
    out.kind = "Bool";
  } else if (def == "DenseI64ArrayAttr") {
    out.kind = "Ints";
  } else {
    PrintFatalError(op.getLoc(),
                    op.getOperationName() + ": attribute '" + name +
                        "' of kind " + def +
                        " has no program form; list it in programOmit or "
                        "give it one in loom-tblgen");
  }

  out.required = !attr.isOptional() && !attr.hasDefaultValue();
  if (out.kind == "Bool") {
    out.required = false;
    out.defaultValue = "0";
  } else if (attr.hasDefaultValue()) {
    std::string value = attr.getDefaultValue().trim().str();
    if (out.kind == "String") {
      // "::loom::GeluApproximation::none" -> the index of "none".
      StringRef symbol = StringRef(value).rsplit("::").second;
      if (symbol.empty())
        symbol = value;
      auto it = llvm::find(out.values, symbol.str());
      if (it == out.values.end())
        PrintFatalError(op.getLoc(), op.getOperationName() + ": default '" +
                                         value + "' of '" + name +
                                         "' is not one of its values");
      value = std::to_string(it - out.values.begin());
    } else {
      double number;
      if (StringRef(value).getAsDouble(number))
        PrintFatalError(op.getLoc(), op.getOperationName() + ": default '" +
                                         value + "' of '" + name +
                                         "' is not a number");
    }
    out.defaultValue = value;
  }
  return out;
}

static ProgramOp describeOp(const Operator &op, const Record &lowers,
                            bool inPlace) {
  ProgramOp out;
  out.cppName = enumeratorOf(op);
  out.name = op.getDef().getValueAsString("opName").str();
  out.opcode = lowers.getValueAsInt("programOpcode");
  out.inPlace = inPlace;
  out.summary = op.getSummary().trim().str();
  out.irOpName = op.getOperationName();
  out.irCppClass = op.getQualCppClassName();
  StringRef rule = lowers.getValueAsString("programShapeRule");
  if (rule == "elementwise")
    out.shapeRule = "Elementwise";
  else if (!rule.empty())
    PrintFatalError(op.getLoc(), "unknown programShapeRule '" + rule + "'");
  out.math = lowers.getValueAsString("programMath").str();

  for (int i = 0, e = op.getNumOperands(); i < e; ++i) {
    const NamedTypeConstraint &operand = op.getOperand(i);
    if (operand.isVariadic()) {
      // An instruction's variadic group holds at least one operand.
      out.maxOperands = -1;
      ++out.minOperands;
      continue;
    }
    if (out.maxOperands >= 0)
      ++out.maxOperands;
    if (!operand.isOptional())
      ++out.minOperands;
  }
  if (op.getNumVariableLengthResults())
    PrintFatalError(op.getLoc(), op.getOperationName() +
                                     ": a program instruction has a fixed "
                                     "number of results");
  out.numResults = op.getNumResults();
  if (!out.math.empty() &&
      (out.maxOperands < 1 || out.maxOperands > 2 || out.numResults != 1))
    PrintFatalError(op.getLoc(), op.getOperationName() +
                                     ": element-wise math needs 1 or 2 "
                                     "operands and 1 result");

  std::vector<StringRef> omit = lowers.getValueAsListOfStrings("programOmit");
  std::vector<StringRef> rankDependent =
      lowers.getValueAsListOfStrings("programRankDependent");
  std::vector<StringRef> dims = lowers.getValueAsListOfStrings("programDims");
  std::set<std::string> seen;
  for (const NamedAttribute &named : op.getAttributes()) {
    if (named.attr.isDerivedAttr() || contains(omit, named.name))
      continue;
    ProgramAttr attr = describeAttr(op, named.name, named.attr);
    attr.rankDependent = contains(rankDependent, named.name);
    attr.isDim = contains(dims, named.name);
    if (attr.rankDependent && attr.kind != "Int" && attr.kind != "Ints")
      PrintFatalError(op.getLoc(), "only Int and Ints attributes can depend "
                                   "on the rank, not '" +
                                       named.name + "'");
    if (attr.isDim && attr.kind != "Int" && attr.kind != "Ints")
      PrintFatalError(op.getLoc(), "dimension attribute '" + named.name +
                                       "' must be Int or Ints");
    seen.insert(attr.name);
    out.attrs.push_back(std::move(attr));
  }
  // OpAttrs (BackendPlugin.h) holds LOOM_MAX_ATTRS decoded attributes.
  if (out.attrs.size() > 8)
    PrintFatalError(op.getLoc(), op.getOperationName() +
                                     " has more than 8 program attributes");
  for (const std::vector<StringRef> *list : {&omit, &rankDependent, &dims})
    for (StringRef name : *list)
      if (!seen.count(name.str()) && !contains(omit, name))
        PrintFatalError(op.getLoc(), op.getOperationName() +
                                         " has no attribute '" + name + "'");
  return out;
}

static ProgramOp describeRuntimeOpcode(const Record &def) {
  ProgramOp out;
  out.name = def.getValueAsString("programName").str();
  // "group_start" -> "GroupStart".
  for (StringRef part : llvm::split(out.name, '_'))
    out.cppName +=
        std::string(1, llvm::toUpper(part.front())) + part.drop_front().str();
  out.opcode = def.getValueAsInt("programOpcode");
  out.minOperands = out.maxOperands = def.getValueAsInt("numOperands");
  out.numResults = def.getValueAsInt("numResults");
  out.inPlace = def.getValueAsBit("inPlace");
  out.summary = def.getValueAsString("summary").str();
  for (const Record *attrDef : def.getValueAsListOfDefs("attrs")) {
    ProgramAttr attr;
    attr.name = attrDef->getValueAsString("name").str();
    attr.kind = attrDef->getValueAsString("kind").str();
    attr.required = attrDef->getValueAsBit("required");
    if (attr.kind == "Bool")
      attr.defaultValue = "0";
    out.attrs.push_back(std::move(attr));
  }
  return out;
}

std::vector<ProgramOp>
loom::tblgen::collectProgramOps(const RecordKeeper &records) {
  std::vector<ProgramOp> ops;
  for (const Record *def : records.getAllDerivedDefinitions("Op")) {
    Operator op(def);
    const Record *lowers = nullptr;
    bool inPlace = false, collective = false;
    for (const Trait &trait : op.getTraits()) {
      const Record &traitDef = trait.getDef();
      if (traitDef.isSubClassOf("Loom_Lowers"))
        lowers = &traitDef;
      if (traitDef.getName() == "Loom_InPlace")
        inPlace = true;
      if (traitDef.getName() == "Loom_CollectiveOpInterface")
        collective = true;
    }
    if (!lowers)
      continue;
    ops.push_back(describeOp(op, *lowers, inPlace));
    ops.back().collective = collective;
  }
  for (const Record *def :
       records.getAllDerivedDefinitions("Loom_RuntimeOpcode"))
    ops.push_back(describeRuntimeOpcode(*def));

  llvm::sort(ops, [](const ProgramOp &a, const ProgramOp &b) {
    return a.opcode < b.opcode;
  });
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].opcode <= 0 || ops[i].opcode > 0xffff)
      PrintFatalError("opcode " + Twine(ops[i].opcode) + " of '" + ops[i].name +
                      "' is not in [1, 65535]");
    if (i && ops[i].opcode == ops[i - 1].opcode)
      PrintFatalError("'" + ops[i - 1].name + "' and '" + ops[i].name +
                      "' share opcode " + Twine(ops[i].opcode));
  }
  return ops;
}
