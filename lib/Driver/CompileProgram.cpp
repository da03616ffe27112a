//===- CompileProgram.cpp - MLIR file to per-rank program -----------------===//

#include "loom/Driver/CompileProgram.h"
#include "loom/Dialect/Loom/Transforms/Passes.h"
#include "loom/InitAll.h"
#include "loom/Target/ProgramEmitter.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;

bool loom::compileMlirFileToProgram(const std::string &path,
                                    std::vector<uint8_t> &program,
                                    std::string &error) {
  llvm::raw_string_ostream errors(error);
  std::string openError;
  auto file = openInputFile(path, &openError);
  if (!file) {
    errors << openError;
    return false;
  }
  DialectRegistry registry;
  registerAllDialects(registry);
  MLIRContext context(registry);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  SourceMgrDiagnosticHandler handler(sourceMgr, &context, errors);

  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return false;
  PassManager pm(&context);
  pm.addPass(createLoomLowerToProgramPass());
  if (failed(pm.run(*module)))
    return false;
  FailureOr<std::vector<uint8_t>> bytes = emitProgram(*module);
  if (failed(bytes))
    return false;
  program = std::move(*bytes);
  return true;
}
