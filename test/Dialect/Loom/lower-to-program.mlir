// RUN: loom-opt %s -split-input-file -loom-lower-to-program | FileCheck %s
// RUN: loom-opt %s -split-input-file -loom-lower-to-program=report 2>&1 >/dev/null | FileCheck %s --check-prefix=REPORT

// A chain of element-wise ops runs in place over its first result (arguments are never overwritten).
// CHECK-LABEL: func @chain
// CHECK-SAME: %arg0: tensor<4x8xf32> {loom.offset = 0 : i64}
// CHECK-SAME: attributes {loom.arena_size = 256 : i64}
// CHECK: loom.gelu %arg0 {loom.offsets = array<i64: [[T:[0-9]+]]>}
// CHECK: loom.silu %{{.*}} {loom.offsets = array<i64: [[T]]>}
// CHECK: loom.scale %{{.*}}, 2.000000e+00 {loom.offsets = array<i64: [[T]]>}
// REPORT: remark: memory plan: arena 256 bytes, live lower bound 256 bytes, 4 tensors in 2 storages
func.func @chain(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = loom.gelu %x : tensor<4x8xf32>
  %1 = loom.silu %0 : tensor<4x8xf32>
  %2 = loom.scale %1, 2.0 : tensor<4x8xf32>
  return %2 : tensor<4x8xf32>
}

// -----

// Parameters keep their own bytes; a reshape is a view of its operand.
// CHECK-LABEL: func @params
// CHECK-SAME: %arg0: tensor<8x8xf32> {loom.offset = 0 : i64, loom.param = "w"}
// CHECK-SAME: %arg1: tensor<2x8xf32> {loom.offset = [[X:[0-9]+]] : i64}
// CHECK: loom.matmul %arg1, %arg0 {loom.offsets = array<i64: [[M:[0-9]+]]>}
// CHECK: loom.reshape %{{.*}} {loom.offsets = array<i64: [[M]]>}
// CHECK-NOT: array<i64: 0>
func.func @params(%w: tensor<8x8xf32> {loom.param = "w"}, %x: tensor<2x8xf32>) -> tensor<16xf32> {
  %0 = loom.matmul %x, %w : tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x8xf32>
  %1 = loom.reshape %0 : tensor<2x8xf32> -> tensor<16xf32>
  %2 = loom.silu %1 : tensor<16xf32>
  return %2 : tensor<16xf32>
}

// -----

// Values live at the same time never share bytes: both matmul results are live at the add.
// CHECK-LABEL: func @overlap
// CHECK: loom.matmul {{.*}} {loom.offsets = array<i64: [[A:[0-9]+]]>}
// CHECK-NOT: array<i64: [[A]]>
// CHECK: loom.matmul {{.*}} {loom.offsets = array<i64: [[B:[0-9]+]]>}
// CHECK: loom.add {{.*}} {loom.offsets = array<i64: [[A]]>}
func.func @overlap(%x: tensor<4x4xf32>, %y: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %0 = loom.matmul %x, %y : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
  %1 = loom.matmul %y, %x : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
  %2 = loom.add %0, %1 : tensor<4x4xf32>
  return %2 : tensor<4x4xf32>
}

// -----

// An argument or a constant returned as it is becomes a copy: a program
// output is a buffer an instruction writes.
// CHECK-LABEL: func @identity
// CHECK: %[[X:.+]] = loom.convert %arg0 {loom.offsets = array<i64: {{[0-9]+}}>} : tensor<4xf32> -> tensor<4xf32>
// CHECK: %[[C:.+]] = loom.convert %{{.+}} {loom.offsets
// CHECK: return %[[X]], %[[C]]
func.func @identity(%x: tensor<4xf32> {loom.input = "x"}) -> (tensor<4xf32>, tensor<2xf32>) {
  %c = loom.constant dense<[1.0, 2.0]> : tensor<2xf32>
  return %x, %c : tensor<4xf32>, tensor<2xf32>
}
