// RUN: loom-opt %s -loom-forward-to-program | FileCheck %s
// RUN: loom-opt %s -loom-forward-to-program="simplify=false reuse=false" | FileCheck %s --check-prefix=PLAIN

// The named pipeline simplifies the graph, then plans its memory.
// CHECK-LABEL: func @twice
// CHECK-SAME: loom.arena_size
// CHECK: %[[A:.+]] = loom.silu %{{.*}} {loom.offsets
// CHECK-NOT: loom.silu
// CHECK: loom.add %[[A]], %[[A]]
// Without simplification the duplicate stays, and every tensor has its own
// bytes.
// PLAIN-LABEL: func @twice
// PLAIN: loom.silu
// PLAIN: loom.silu
func.func @twice(%x: tensor<4xf32> {loom.input = "x"}) -> (tensor<4xf32> {loom.output = "y"}) {
  %a = loom.silu %x : tensor<4xf32>
  %b = loom.silu %x : tensor<4xf32>
  %y = loom.add %a, %b : tensor<4xf32>
  return %y : tensor<4xf32>
}
