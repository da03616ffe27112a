//===- ProgramOpTableTest.cpp - The loom dialect and the op table agree ---===//
//
// The runtime's op table is generated from the ops' TableGen; these tests
// check that the generated table, as the runtime reads it, matches the
// dialect the compiler registers: every op that can reach a program has a
// row, the row's attributes are the op's attributes under the same names,
// and the runtime-only opcodes are the ones no op lowers to.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/runtime/BackendPlugin.h"
#include "loom/runtime/OpTable.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/STLExtras.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

using namespace mlir;
using namespace loom;

namespace {

/// Ops that never become an instruction, and why.
const std::map<std::string, std::string> kNotLowered = {
    {"loom.constant", "kept in the program's constants blob"},
    {"loom.mesh", "declares a mesh: an entry of the program's mesh table"},
    {"loom.shard", "pins a sharding; -loom-partition erases it"},
    {"loom.reshard", "asks for a sharding; -loom-partition makes the "
                     "collective and erases it"},
    {"loom.wait", "an event_wait on the compute stream; its result is the "
                  "bytes of the asynchronous collective it waits for"},
};

/// Instructions no op lowers to.
const std::set<std::string> kRuntimeOnly = {"copy", "group_start", "group_end",
                                            "event_record", "event_wait"};

/// Attributes that become something other than an instruction attribute.
const std::set<std::string> kNotAttributes = {
    "mesh",
    "axes", // a collective's communicator
};

class ProgramOpTable : public ::testing::Test {
protected:
  ProgramOpTable() { context.loadDialect<LoomDialect>(); }

  std::vector<RegisteredOperationName> loomOps() {
    std::vector<RegisteredOperationName> ops;
    for (RegisteredOperationName name : context.getRegisteredOperations())
      if (name.getDialectNamespace() == "loom")
        ops.push_back(name);
    return ops;
  }

  MLIRContext context;
};

TEST_F(ProgramOpTable, EveryOpHasARowOrAReason) {
  std::set<uint16_t> claimed;
  for (RegisteredOperationName name : loomOps()) {
    std::string op = name.getStringRef().str();
    if (!name.hasInterface<ProgramOpInterface>()) {
      EXPECT_TRUE(kNotLowered.count(op))
          << op << " has no Loom_Lowers trait and no reason not to";
      continue;
    }
    EXPECT_FALSE(kNotLowered.count(op)) << op << " lowers after all";
    auto *concept_ = name.getInterface<ProgramOpInterface>();
    uint16_t opcode = concept_->getProgramOpcode();
    const runtime::OpSpec *spec =
        runtime::findOpSpec(static_cast<runtime::Opcode>(opcode));
    ASSERT_NE(spec, nullptr) << op << " lowers to opcode " << opcode
                             << ", which the runtime's table lacks";
    EXPECT_EQ(std::string("loom.") + spec->name, op)
        << "opcode " << opcode << " is named after its op";
    EXPECT_TRUE(claimed.insert(opcode).second)
        << "two ops lower to opcode " << opcode;
    EXPECT_EQ(spec->inPlace, name.hasTrait<loom::OpTrait::InPlace>())
        << op << ": the table's in-place flag is the op's InPlace trait";
  }
  for (const runtime::OpSpec &spec : runtime::allOpSpecs())
    if (!claimed.count(static_cast<uint16_t>(spec.op)))
      EXPECT_TRUE(kRuntimeOnly.count(spec.name))
          << "opcode '" << spec.name << "' has neither an op nor a place in "
          << "the runtime-only list";
}

TEST_F(ProgramOpTable, AttributeNamesAgree) {
  for (RegisteredOperationName name : loomOps()) {
    if (!name.hasInterface<ProgramOpInterface>())
      continue;
    uint16_t opcode =
        name.getInterface<ProgramOpInterface>()->getProgramOpcode();
    const runtime::OpSpec &spec =
        *runtime::findOpSpec(static_cast<runtime::Opcode>(opcode));
    std::set<std::string> irNames, programNames;
    for (StringAttr attr : name.getAttributeNames())
      if (!kNotAttributes.count(attr.str()) &&
          attr.getValue() != "operandSegmentSizes")
        irNames.insert(attr.str());
    for (const runtime::AttrSpec &attr : spec.attrs)
      programNames.insert(attr.name);
    EXPECT_EQ(irNames, programNames)
        << name.getStringRef().str()
        << ": instruction attributes are the op's attributes";
  }
}

TEST_F(ProgramOpTable, SlotsAreDenseAndValuesKnown) {
  for (const runtime::OpSpec &spec : runtime::allOpSpecs()) {
    for (auto [i, attr] : llvm::enumerate(spec.attrs)) {
      EXPECT_EQ(attr.slot, static_cast<int>(i))
          << spec.name << "." << attr.name;
      EXPECT_LT(attr.slot, LOOM_MAX_ATTRS);
      if (attr.kind == runtime::AttrKind::String)
        EXPECT_FALSE(attr.values.empty()) << spec.name << "." << attr.name;
      if (attr.hasDefault && attr.kind == runtime::AttrKind::String)
        EXPECT_LT(attr.defaultInt, static_cast<int64_t>(attr.values.size()));
    }
  }
}

} // namespace
