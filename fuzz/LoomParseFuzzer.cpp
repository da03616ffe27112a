//===- LoomParseFuzzer.cpp - libFuzzer target over parse + verify ---------===//
//
// Feeds arbitrary bytes to the MLIR parser with the loom dialect loaded, then
// verifies, prints and re-parses what parsed. Diagnostics are expected; a
// crash, a hang or a print that does not parse back is a bug.
//
//===----------------------------------------------------------------------===//

#include "loom/InitAll.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace mlir;

static MLIRContext &getContext() {
  static MLIRContext *context = [] {
    DialectRegistry registry;
    loom::registerAllDialects(registry);
    auto *ctx = new MLIRContext(registry, MLIRContext::Threading::DISABLED);
    ctx->loadAllAvailableDialects();
    ctx->printOpOnDiagnostic(false);
    ctx->getDiagEngine().registerHandler(
        [](Diagnostic &) { return success(); });
    return ctx;
  }();
  return *context;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  MLIRContext &context = getContext();
  // MLIR's lexer relies on a NUL after the buffer, as files read through
  // llvm::MemoryBuffer (what loom-opt does) have; libFuzzer's bytes do not.
  std::string text(reinterpret_cast<const char *>(data), size);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
  if (!module || failed(verify(*module)))
    return 0;
  std::string printed;
  llvm::raw_string_ostream os(printed);
  module->print(os);
  OwningOpRef<ModuleOp> again = parseSourceString<ModuleOp>(printed, &context);
  if (!again) {
    llvm::errs() << "printed IR does not parse back:\n" << printed << "\n";
    std::abort();
  }
  return 0;
}
