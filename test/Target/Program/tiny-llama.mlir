// RUN: loom-opt %s -loom-lower-to-program -mlir-print-debuginfo | loom-translate --loom-to-program-text | FileCheck %s
// RUN: loom-opt %s -loom-lower-to-program -mlir-print-debuginfo | loom-translate --loom-to-program -o %t.loom
// RUN: loom-dump %t.loom | FileCheck %s

// A planned forward graph becomes one instruction per op, buffers at the
// planned offsets, parameters bound as inputs and outputs.

// CHECK: loom.program "forward" version 1.4
// CHECK: mesh []
// CHECK: arena [[ARENA:[0-9]+]]
// CHECK: buffer %0 "tokens" input i32[2,4] offset
// CHECK: buffer %2 "embed.weight" parameter f32[16,8] offset
// CHECK: buffer %[[LOSS:[0-9]+]] "cross_entropy.{{[0-9]+}}" output f32[] offset
// CHECK: input "tokens" = %0
// CHECK: output "embed.weight" = %2
// CHECK: output "loss" = %[[LOSS]]
// CHECK: 0: %{{[0-9]+}} = embedding(%2, %0) loc("{{.*}}tiny-llama.mlir:[[#@LINE+13]]:8")
// CHECK: = rmsnorm(%{{[0-9]+}}, %3) {epsilon = 1e-05}
// CHECK: = matmul(%{{[0-9]+}}, %4) {transpose_lhs = false, transpose_rhs = true}
// CHECK: = rope(%{{[0-9]+}}) {theta = 10000.0, position_offset = 0, inverse = false}
// CHECK: = attention(%{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}) {causal = true, query_offset = 0} loc(
// CHECK: = gelu(%{{[0-9]+}}) {approximate = "tanh"}
// CHECK: %[[LOSS]] = cross_entropy(
func.func @forward(%tokens: tensor<2x4xi32> {loom.input = "tokens"},
                   %targets: tensor<2x4xi32> {loom.input = "targets"},
                   %embed: tensor<16x8xf32> {loom.param = "embed.weight"},
                   %norm: tensor<8xf32> {loom.param = "norm.weight"},
                   %wq: tensor<8x8xf32> {loom.param = "wq.weight"})
    -> (tensor<f32> {loom.output = "loss"}) {
  %h = loom.embedding %embed, %tokens : tensor<16x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
  %x = loom.rmsnorm %h, %norm : tensor<2x4x8xf32>, tensor<8xf32>
  %q = loom.matmul %x, %wq {transpose_rhs} : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
  %q4 = loom.reshape %q : tensor<2x4x8xf32> -> tensor<2x4x2x4xf32>
  %qr = loom.rope %q4 : tensor<2x4x2x4xf32>
  %o = loom.attention %qr, %qr, %qr {causal} : tensor<2x4x2x4xf32>, tensor<2x4x2x4xf32>, tensor<2x4x2x4xf32> -> tensor<2x4x2x4xf32>
  %of = loom.reshape %o : tensor<2x4x2x4xf32> -> tensor<2x4x8xf32>
  %g = loom.gelu %of approximate tanh : tensor<2x4x8xf32>
  %logits = loom.matmul %g, %embed {transpose_rhs} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = loom.cross_entropy %logits, %targets : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
