// RUN: loom-opt %s -loom-forward-to-program | loom-translate --loom-to-program-text --loom-function=second | FileCheck %s
// RUN: loom-opt %s -loom-forward-to-program | not loom-translate --loom-to-program-text --loom-function=third 2>&1 | FileCheck %s --check-prefix=MISSING

// A module of several functions (one per pipeline stage, later) emits the
// one --loom-function names.
// CHECK: loom.program "second"
// CHECK: = silu(
// MISSING: error: the module has no function body named @third
func.func @first(%x: tensor<4xf32> {loom.input = "x"}) -> (tensor<4xf32> {loom.output = "y"}) {
  %0 = loom.gelu %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @second(%x: tensor<4xf32> {loom.input = "x"}) -> (tensor<4xf32> {loom.output = "y"}) {
  %0 = loom.silu %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
