// RUN: loom-opt %s -loom-forward-to-program -verify-diagnostics

// Each tensor fits the dialect's limits (2^50 elements) but the arena of a
// program holds at most 2^50 bytes: the memory plan refuses it, by name,
// rather than emit offsets no loader accepts.
// expected-error @+1 {{the memory plan needs an arena of more than 2^50 bytes, the most a program holds}}
func.func @big_arena(%x: tensor<33554432x33554432xf32> {loom.input = "x"})
    -> (tensor<33554432x33554432xf32> {loom.output = "y"}) {
  %y = loom.neg %x : tensor<33554432x33554432xf32>
  return %y : tensor<33554432x33554432xf32>
}
