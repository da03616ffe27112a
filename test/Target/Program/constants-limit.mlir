// RUN: loom-opt %s -loom-forward-to-program | not loom-translate --loom-to-program -o %t.loom 2>&1 | FileCheck %s

// A splat constant is small in the IR and huge in the file (4 GiB here):
// the emitter refuses it before it allocates the bytes.
// CHECK: error: 'loom.constant' op the program's constants would exceed 1024 MiB (a program file holds at most 2 GiB); pass a tensor this large as an argument
func.func @big_constant(%x: tensor<4xf32> {loom.input = "x"})
    -> (tensor<1073741824xf32> {loom.output = "y"}) {
  %c = loom.constant dense<1.0> : tensor<1073741824xf32>
  return %c : tensor<1073741824xf32>
}
