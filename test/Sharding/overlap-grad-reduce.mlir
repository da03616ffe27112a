// RUN: loom-opt %s -split-input-file -loom-overlap-grad-reduce=bucket-size=48 | FileCheck %s
// RUN: loom-opt %s -split-input-file -loom-overlap-grad-reduce=bucket-size=48 -loom-lower-to-program | FileCheck %s --check-prefix=PLAN
// RUN: not loom-opt %s -split-input-file -loom-overlap-grad-reduce=bucket-size=0 2>&1 | FileCheck %s --check-prefix=SIZE
// SIZE: bucket-size must be at least 1 byte, got 0

// Three gradients, made in the order g2 (32 bytes), g1 (16), g0 (64), each
// all-reduced over dp after backward. Buckets of 48 bytes: [g2, g1] starts
// as soon as g1 is made, before g0's matmul; [g0] right after it. Each
// waits right before the first use of one of its reduced gradients: [g0]
// before the norm's mul, [g2, g1] before g1's AdamW.

loom.mesh @world <dp = 2>
func.func @step(%p0: tensor<4x4xf32>, %p1: tensor<4xf32>, %p2: tensor<2x4xf32>,
                %x: tensor<4x4xf32>, %m0: tensor<4x4xf32>, %m1: tensor<4xf32>,
                %m2: tensor<2x4xf32>, %step: tensor<i32>, %lr: tensor<f32>)
    -> (tensor<f32>, tensor<4x4xf32>, tensor<4xf32>, tensor<2x4xf32>) {
  %g2 = loom.scale %p2, 2.0 : tensor<2x4xf32>
  %g1 = loom.scale %p1, 2.0 : tensor<4xf32>
  %g0 = loom.matmul %x, %p0 : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
  %r0 = loom.all_reduce sum %g0 {axes = ["dp"], mesh = @world} : tensor<4x4xf32>
  %r1 = loom.all_reduce sum %g1 {axes = ["dp"], mesh = @world} : tensor<4xf32>
  %r2 = loom.all_reduce sum %g2 {axes = ["dp"], mesh = @world} : tensor<2x4xf32>
  %sq = loom.mul %r0, %r0 : tensor<4x4xf32>
  %n = loom.reduce sum %sq {dims = array<i64: 0, 1>} : tensor<4x4xf32> -> tensor<f32>
  %a0, %b0, %c0 = loom.adamw %p0, %r0, %m0, %m0, %step, %lr, %n : tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<i32>, tensor<f32>, tensor<f32>
  %a1, %b1, %c1 = loom.adamw %p1, %r1, %m1, %m1, %step, %lr, %n : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<i32>, tensor<f32>, tensor<f32>
  %a2, %b2, %c2 = loom.adamw %p2, %r2, %m2, %m2, %step, %lr, %n : tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<i32>, tensor<f32>, tensor<f32>
  return %n, %a0, %a1, %a2 : tensor<f32>, tensor<4x4xf32>, tensor<4xf32>, tensor<2x4xf32>
}

// CHECK-LABEL: func.func @step
// CHECK: %[[G2:.+]] = loom.scale %arg2
// CHECK: %[[G1:.+]] = loom.scale %arg1
// CHECK: %[[F2:.+]] = loom.reshape %[[G2]] : tensor<2x4xf32> -> tensor<8xf32>
// CHECK: %[[B1:.+]] = loom.concat %[[F2]], %[[G1]] {dim = 0 : i64} : tensor<8xf32>, tensor<4xf32> -> tensor<12xf32>
// CHECK: %[[R1:.+]] = loom.all_reduce sum %[[B1]] {axes = ["dp"], loom.async, mesh = @world} : tensor<12xf32>
// CHECK: %[[G0:.+]] = loom.matmul
// CHECK: %[[F0:.+]] = loom.reshape %[[G0]] : tensor<4x4xf32> -> tensor<16xf32>
// CHECK: %[[R2:.+]] = loom.all_reduce sum %[[F0]] {axes = ["dp"], loom.async, mesh = @world} : tensor<16xf32>
// CHECK-NOT: loom.all_reduce
// CHECK: %[[W2:.+]] = loom.wait %[[R2]] : tensor<16xf32>
// CHECK: %[[U0:.+]] = loom.reshape %[[W2]] : tensor<16xf32> -> tensor<4x4xf32>
// CHECK: loom.mul %[[U0]], %[[U0]]
// CHECK: loom.adamw %arg0, %[[U0]]
// CHECK: %[[W1:.+]] = loom.wait %[[R1]] : tensor<12xf32>
// CHECK: %[[S2:.+]] = loom.slice %[[W1]] {offsets = array<i64: 0>, sizes = array<i64: 8>}
// CHECK: %[[U2:.+]] = loom.reshape %[[S2]] : tensor<8xf32> -> tensor<2x4xf32>
// CHECK: %[[U1:.+]] = loom.slice %[[W1]] {offsets = array<i64: 8>, sizes = array<i64: 4>}
// CHECK: loom.adamw %arg1, %[[U1]]
// CHECK: loom.adamw %arg2, %[[U2]]

// The memory plan keeps each bucket live until its wait: the all-reduce
// runs in place over the concatenation, the wait is a view of it, and
// nothing between them is placed over those bytes.
// PLAN-LABEL: func.func @step
// PLAN: loom.concat {{.*}}loom.offsets = array<i64: [[B:[0-9]+]]>
// PLAN: loom.all_reduce sum {{.*}}loom.offsets = array<i64: [[B]]>
// PLAN: loom.matmul
// PLAN: loom.all_reduce sum {{.*}}loom.offsets = array<i64: [[B0:[0-9]+]]>
// PLAN: loom.wait {{.*}}loom.offsets = array<i64: [[B0]]>
// PLAN: loom.wait {{.*}}loom.offsets = array<i64: [[B]]>

// -----

// ZeRO: reduce_scatters over dp, one split on an inner dimension (a
// transpose puts its pieces first). Each rank keeps the pieces the
// separate reduce_scatters gave it.

loom.mesh @world <dp = 2>
func.func @zero(%a: tensor<4x2xf32>, %b: tensor<2x4xf32>) -> (tensor<2x2xf32>, tensor<2x2xf32>) {
  %ga = loom.scale %a, 2.0 : tensor<4x2xf32>
  %gb = loom.scale %b, 2.0 : tensor<2x4xf32>
  %ra = loom.reduce_scatter sum %ga {axes = ["dp"], mesh = @world, scatter_dim = 0 : i64} : tensor<4x2xf32> -> tensor<2x2xf32>
  %rb = loom.reduce_scatter sum %gb {axes = ["dp"], mesh = @world, scatter_dim = 1 : i64} : tensor<2x4xf32> -> tensor<2x2xf32>
  %step = loom.constant dense<1> : tensor<i32>
  %lr = loom.constant dense<1.0> : tensor<f32>
  %na, %ma, %va = loom.adamw %ra, %ra, %ra, %ra, %step, %lr : tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<i32>, tensor<f32>
  %nb, %mb, %vb = loom.adamw %rb, %rb, %rb, %rb, %step, %lr : tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<i32>, tensor<f32>
  return %na, %nb : tensor<2x2xf32>, tensor<2x2xf32>
}

// CHECK-LABEL: func.func @zero
// CHECK: %[[GB:.+]] = loom.scale %arg1
// CHECK: %[[FA:.+]] = loom.reshape %{{.+}} : tensor<4x2xf32> -> tensor<2x4xf32>
// CHECK: %[[B3:.+]] = loom.reshape %[[GB]] : tensor<2x4xf32> -> tensor<2x2x2xf32>
// CHECK: %[[T:.+]] = loom.transpose %[[B3]], [1, 0, 2] : tensor<2x2x2xf32> -> tensor<2x2x2xf32>
// CHECK: %[[FB:.+]] = loom.reshape %[[T]] : tensor<2x2x2xf32> -> tensor<2x4xf32>
// CHECK: %[[C:.+]] = loom.concat %[[FA]], %[[FB]] {dim = 1 : i64} : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x8xf32>
// CHECK: %[[R:.+]] = loom.reduce_scatter sum %[[C]] {axes = ["dp"], loom.async, mesh = @world, scatter_dim = 0 : i64} : tensor<2x8xf32> -> tensor<1x8xf32>
// CHECK: %[[W:.+]] = loom.wait %[[R]] : tensor<1x8xf32>
// CHECK: loom.slice %[[W]] {offsets = array<i64: 0, 0>, sizes = array<i64: 1, 4>}
// CHECK: loom.slice %[[W]] {offsets = array<i64: 0, 4>, sizes = array<i64: 1, 4>}
