//===- CompileProgram.cpp - Loom IR to per-rank program -------------------===//

#include "loom/Driver/CompileProgram.h"
#include "loom/Driver/CompileModule.h"
#include "loom/InitAll.h"
#include "loom/Pipelines/Pipelines.h"
#include "loom/Target/ProgramEmitter.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;

FailureOr<std::vector<uint8_t>>
loom::compileModule(ModuleOp module, const CompileOptions &options) {
  PassManager pm(module.getContext());
  if (options.pipeline.empty()) {
    ForwardToProgramOptions pipeline;
    pipeline.simplify = options.simplify;
    pipeline.reuse = options.reuse;
    buildLoomForwardToProgramPipeline(pm, pipeline);
  } else {
    // As mlir-opt's --pass-pipeline: anchored on the module,
    // "builtin.module(...)".
    std::string message;
    llvm::raw_string_ostream os(message);
    FailureOr<OpPassManager> parsed = parsePassPipeline(options.pipeline, os);
    if (failed(parsed))
      return module.emitError("cannot parse the pass pipeline '")
             << options.pipeline << "': " << message;
    if (parsed->getOpAnchorName() != ModuleOp::getOperationName())
      return module.emitError("the pass pipeline '")
             << options.pipeline << "' must be anchored on builtin.module";
    static_cast<OpPassManager &>(pm) = *parsed;
  }
  if (failed(pm.run(module)))
    return failure();
  return emitProgram(module, options.function);
}

/// Compiles the source buffer already in `sourceMgr`.
static bool compileSource(llvm::SourceMgr &sourceMgr,
                          const loom::CompileOptions &options,
                          std::vector<uint8_t> &program, std::string &error) {
  llvm::raw_string_ostream errors(error);
  DialectRegistry registry;
  loom::registerAllDialects(registry);
  // Textual pipelines name passes; register them once per process.
  static bool registered = (loom::registerAllPasses(), true);
  (void)registered;
  MLIRContext context(registry);
  SourceMgrDiagnosticHandler handler(sourceMgr, &context, errors);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return false;
  FailureOr<std::vector<uint8_t>> bytes = loom::compileModule(*module, options);
  if (failed(bytes))
    return false;
  program = std::move(*bytes);
  return true;
}

bool loom::compileMlirToProgram(const std::string &text,
                                const std::string &bufferName,
                                const CompileOptions &options,
                                std::vector<uint8_t> &program,
                                std::string &error) {
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(text, bufferName), llvm::SMLoc());
  return compileSource(sourceMgr, options, program, error);
}

bool loom::compileMlirFileToProgram(const std::string &path,
                                    const CompileOptions &options,
                                    std::vector<uint8_t> &program,
                                    std::string &error) {
  std::string openError;
  auto file = openInputFile(path, &openError);
  if (!file) {
    error = openError;
    return false;
  }
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  return compileSource(sourceMgr, options, program, error);
}
