//===- InitAll.cpp - Register Loom's dialects and passes ------------------===//

#include "loom/InitAll.h"
#include "loom/Dialect/Loom/IR/LoomDialect.h"
#include "loom/Dialect/Loom/Transforms/Passes.h"
#include "loom/Pipelines/Pipelines.h"
#include "loom/Pipelining/Passes.h"
#include "loom/Sharding/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void loom::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<loom::LoomDialect, mlir::func::FuncDialect>();
}

void loom::registerAllPasses() {
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  loom::registerLoomPasses();
  loom::registerLoomShardingPasses();
  loom::registerLoomPipeliningPasses();
  loom::registerLoomPipelines();
}
