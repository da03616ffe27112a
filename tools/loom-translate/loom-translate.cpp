//===- loom-translate.cpp - Loom's translation driver ---------------------===//
//
//   loom-translate --loom-to-program planned.mlir -o stage0.loom
//   loom-translate --loom-to-program-text planned.mlir
//
//===----------------------------------------------------------------------===//

#include "loom/Target/ProgramEmitter.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"

int main(int argc, char **argv) {
  loom::registerToProgramTranslations();
  return mlir::failed(
      mlir::mlirTranslateMain(argc, argv, "Loom translation driver"));
}
