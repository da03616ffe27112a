// RUN: loom-opt %s -split-input-file -canonicalize | FileCheck %s

// Chains of shape ops fold into one op, and shape ops that change nothing
// fold away.

// A reshape of a reshape is one reshape of the first input.
// CHECK-LABEL: func @reshape_of_reshape
// CHECK-SAME: (%[[X:.+]]: tensor<2x16x512xf32>)
// CHECK-NEXT: %[[R:.+]] = loom.reshape %[[X]] : tensor<2x16x512xf32> -> tensor<32x8x64xf32>
// CHECK-NEXT: return %[[R]]
func.func @reshape_of_reshape(%x: tensor<2x16x512xf32>) -> tensor<32x8x64xf32> {
  %0 = loom.reshape %x : tensor<2x16x512xf32> -> tensor<2x16x8x64xf32>
  %1 = loom.reshape %0 : tensor<2x16x8x64xf32> -> tensor<32x8x64xf32>
  return %1 : tensor<32x8x64xf32>
}

// -----

// A reshape to its own type is its input, also at the end of a chain.
// CHECK-LABEL: func @reshape_identity
// CHECK-SAME: (%[[X:.+]]: tensor<4x8xf32>)
// CHECK-NEXT: return %[[X]], %[[X]]
func.func @reshape_identity(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %0 = loom.reshape %x : tensor<4x8xf32> -> tensor<4x8xf32>
  %1 = loom.reshape %x : tensor<4x8xf32> -> tensor<32xf32>
  %2 = loom.reshape %1 : tensor<32xf32> -> tensor<4x8xf32>
  return %0, %2 : tensor<4x8xf32>, tensor<4x8xf32>
}

// -----

// A transpose of a transpose is one transpose by the composed permutation.
// CHECK-LABEL: func @transpose_of_transpose
// CHECK-SAME: (%[[X:.+]]: tensor<2x3x4xf32>)
// CHECK-NEXT: %[[T:.+]] = loom.transpose %[[X]], [2, 1, 0] : tensor<2x3x4xf32> -> tensor<4x3x2xf32>
// CHECK-NEXT: return %[[T]]
func.func @transpose_of_transpose(%x: tensor<2x3x4xf32>) -> tensor<4x3x2xf32> {
  %0 = loom.transpose %x, [1, 2, 0] : tensor<2x3x4xf32> -> tensor<3x4x2xf32>
  %1 = loom.transpose %0, [1, 0, 2] : tensor<3x4x2xf32> -> tensor<4x3x2xf32>
  return %1 : tensor<4x3x2xf32>
}

// -----

// The identity permutation, given or composed, leaves the input.
// CHECK-LABEL: func @transpose_identity
// CHECK-SAME: (%[[X:.+]]: tensor<2x3x4xf32>)
// CHECK-NEXT: return %[[X]], %[[X]]
func.func @transpose_identity(%x: tensor<2x3x4xf32>) -> (tensor<2x3x4xf32>, tensor<2x3x4xf32>) {
  %0 = loom.transpose %x, [0, 1, 2] : tensor<2x3x4xf32> -> tensor<2x3x4xf32>
  %1 = loom.transpose %x, [1, 2, 0] : tensor<2x3x4xf32> -> tensor<3x4x2xf32>
  %2 = loom.transpose %1, [2, 0, 1] : tensor<3x4x2xf32> -> tensor<2x3x4xf32>
  return %0, %2 : tensor<2x3x4xf32>, tensor<2x3x4xf32>
}

// -----

// A broadcast of a broadcast is one broadcast by the composed dims.
// CHECK-LABEL: func @broadcast_of_broadcast
// CHECK-SAME: (%[[B:.+]]: tensor<64xf32>)
// CHECK-NEXT: %[[R:.+]] = loom.broadcast %[[B]], [2] : tensor<64xf32> -> tensor<2x16x64xf32>
// CHECK-NEXT: return %[[R]]
func.func @broadcast_of_broadcast(%b: tensor<64xf32>) -> tensor<2x16x64xf32> {
  %0 = loom.broadcast %b, [1] : tensor<64xf32> -> tensor<16x64xf32>
  %1 = loom.broadcast %0, [1, 2] : tensor<16x64xf32> -> tensor<2x16x64xf32>
  return %1 : tensor<2x16x64xf32>
}

// -----

// Composing keeps unit dimensions that expand in the outer broadcast.
// CHECK-LABEL: func @broadcast_of_broadcast_unit
// CHECK-SAME: (%[[B:.+]]: tensor<1x8xf32>)
// CHECK-NEXT: %[[R:.+]] = loom.broadcast %[[B]], [1, 2] : tensor<1x8xf32> -> tensor<3x4x8xf32>
// CHECK-NEXT: return %[[R]]
func.func @broadcast_of_broadcast_unit(%b: tensor<1x8xf32>) -> tensor<3x4x8xf32> {
  %0 = loom.broadcast %b, [1, 2] : tensor<1x8xf32> -> tensor<3x1x8xf32>
  %1 = loom.broadcast %0, [0, 1, 2] : tensor<3x1x8xf32> -> tensor<3x4x8xf32>
  return %1 : tensor<3x4x8xf32>
}

// -----

// A broadcast to its own type is its input.
// CHECK-LABEL: func @broadcast_identity
// CHECK-SAME: (%[[X:.+]]: tensor<4x8xf32>)
// CHECK-NEXT: return %[[X]]
func.func @broadcast_identity(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = loom.broadcast %x, [0, 1] : tensor<4x8xf32> -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// A chain whose inner op has other users keeps the inner op for them.
// CHECK-LABEL: func @shared_inner
// CHECK-SAME: (%[[X:.+]]: tensor<2x8xf32>)
// CHECK-NEXT: %[[A:.+]] = loom.reshape %[[X]] : tensor<2x8xf32> -> tensor<16xf32>
// CHECK-NEXT: %[[B:.+]] = loom.reshape %[[X]] : tensor<2x8xf32> -> tensor<4x4xf32>
// CHECK-NEXT: return %[[A]], %[[B]]
func.func @shared_inner(%x: tensor<2x8xf32>) -> (tensor<16xf32>, tensor<4x4xf32>) {
  %0 = loom.reshape %x : tensor<2x8xf32> -> tensor<16xf32>
  %1 = loom.reshape %0 : tensor<16xf32> -> tensor<4x4xf32>
  return %0, %1 : tensor<16xf32>, tensor<4x4xf32>
}
