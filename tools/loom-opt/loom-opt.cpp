//===- loom-opt.cpp - The Loom optimizer driver ---------------------------===//
//
// mlir-opt for Loom: parses, verifies, runs passes and prints loom IR. Only
// the dialects Loom's graphs use are registered.
//
//===----------------------------------------------------------------------===//

#include "loom/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  loom::registerAllDialects(registry);
  loom::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Loom optimizer driver\n", registry));
}
