//===- loom-tblgen.cpp - TableGen with Loom's generators ------------------===//
//
// mlir-tblgen's driver with Loom's own generators only (ProgramOpGen.cpp):
// the program format's op table and what derives from it. Upstream's
// generators stay with mlir-tblgen.
//
//===----------------------------------------------------------------------===//

#include "mlir/Tools/mlir-tblgen/MlirTblgenMain.h"

int main(int argc, char **argv) { return mlir::MlirTblgenMain(argc, argv); }
