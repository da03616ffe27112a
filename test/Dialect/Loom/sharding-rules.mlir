// RUN: loom-opt %s -split-input-file -loom-print-sharding-rules -verify-diagnostics

// The sharding rule of every op that has one, in Shardy's text form. Ops
// without a rule (attention here) get no remark.

// Element-wise ops share one pass-through factor per dimension.
func.func @elementwise(%x: tensor<2x8xf32>, %h: tensor<2x8xbf16>) {
  // expected-remark @below {{sharding rule: ([i, j], [i, j])->([i, j]) {i=2, j=8}}}
  %0 = loom.add %x, %x : tensor<2x8xf32>
  // expected-remark @below {{sharding rule: ([i, j])->([i, j]) {i=2, j=8}}}
  %1 = loom.scale %0, 2.0 : tensor<2x8xf32>
  // expected-remark @below {{sharding rule: ([i, j])->([i, j]) {i=2, j=8}}}
  %2 = loom.gelu %1 approximate tanh : tensor<2x8xf32>
  // expected-remark @below {{sharding rule: ([i, j], [i, j])->([i, j]) {i=2, j=8}}}
  %3 = loom.swiglu %h, %h : tensor<2x8xbf16>
  // expected-remark @below {{sharding rule: ([i, j])->([i, j]) {i=2, j=8}}}
  %4 = loom.convert %3 : tensor<2x8xbf16> -> tensor<2x8xf32>
  return
}

// -----

// A matmul passes M and N through and reduces over K.
func.func @matmul(%x: tensor<8x32xf32>, %w: tensor<32x16xf32>) {
  // expected-remark @below {{sharding rule: ([i, k], [k, j])->([i, j]) {i=8, j=16, k=32} reduction={k}}}
  %0 = loom.matmul %x, %w : tensor<8x32xf32>, tensor<32x16xf32> -> tensor<8x16xf32>
  return
}

// -----

// A weight stored [out, in] (transpose_rhs) has no batch dimensions: the
// batch factors are the activation's and the result's only.
func.func @matmul_weight(%x: tensor<2x4x32xf32>, %w: tensor<16x32xf32>) {
  // expected-remark @below {{sharding rule: ([i, j, l], [k, l])->([i, j, k]) {i=2, j=4, k=16, l=32} reduction={l}}}
  %0 = loom.matmul %x, %w {transpose_rhs} : tensor<2x4x32xf32>, tensor<16x32xf32> -> tensor<2x4x16xf32>
  return
}

// -----

// Batched operands share their batch factor; transpose_lhs moves M and K.
func.func @matmul_batched(%a: tensor<4x32x8xf32>, %b: tensor<4x32x16xf32>) {
  // expected-remark @below {{sharding rule: ([i, l, j], [i, l, k])->([i, j, k]) {i=4, j=8, k=16, l=32} reduction={l}}}
  %0 = loom.matmul %a, %b {transpose_lhs} : tensor<4x32x8xf32>, tensor<4x32x16xf32> -> tensor<4x8x16xf32>
  return
}

// -----

// Transpose factors follow the result's dimensions.
func.func @transpose(%x: tensor<256x32x64x100xf32>) {
  // expected-remark @below {{sharding rule: ([k, j, l, i])->([i, j, k, l]) {i=100, j=32, k=256, l=64}}}
  %0 = loom.transpose %x, [3, 1, 0, 2] : tensor<256x32x64x100xf32> -> tensor<100x32x256x64xf32>
  return
}

// -----

// Splitting hidden into heads: one factor per piece.
func.func @reshape_split(%x: tensor<2x16x512xf32>) {
  // expected-remark @below {{sharding rule: ([i, j, kl])->([i, j, k, l]) {i=2, j=16, k=8, l=64}}}
  %0 = loom.reshape %x : tensor<2x16x512xf32> -> tensor<2x16x8x64xf32>
  return
}

// -----

// Merging batch and sequence into tokens.
func.func @reshape_merge(%x: tensor<2x16x64xf32>) {
  // expected-remark @below {{sharding rule: ([i, j, k])->([ij, k]) {i=2, j=16, k=64}}}
  %0 = loom.reshape %x : tensor<2x16x64xf32> -> tensor<32x64xf32>
  return
}

// -----

// A split and a merge at once share the common piece.
func.func @reshape_split_merge(%x: tensor<8x4x5xf32>) {
  // expected-remark @below {{sharding rule: ([ij, k, l])->([i, jk, l]) {i=2, j=4, k=4, l=5}}}
  %0 = loom.reshape %x : tensor<8x4x5xf32> -> tensor<2x16x5xf32>
  return
}

// -----

// Pieces with no counterpart get factors of their own: of [6, 4] and
// [4, 6] only the major 2 and the minor 2 line up.
func.func @reshape_swap(%x: tensor<6x4xf32>) {
  // expected-remark @below {{sharding rule: ([ik, ln])->([ij, mn]) {i=2, j=2, k=3, l=2, m=3, n=2}}}
  %0 = loom.reshape %x : tensor<6x4xf32> -> tensor<4x6xf32>
  return
}

// -----

// Size-1 dimensions get factors of their own.
func.func @reshape_unit_dims(%x: tensor<1x8x4xf32>) {
  // expected-remark @below {{sharding rule: ([i, j, l])->([j, k, l, m]) {i=1, j=8, k=1, l=4, m=1}}}
  %0 = loom.reshape %x : tensor<1x8x4xf32> -> tensor<8x1x4x1xf32>
  return
}

// -----

// Norms need the normalized dimension whole; the others pass through.
func.func @norms(%x: tensor<2x16x64xf32>, %w: tensor<64xf32>, %b: tensor<64xf32>) {
  // expected-remark @below {{sharding rule: ([i, j, k], [k])->([i, j, k]) {i=2, j=16, k=64} need_replication={k}}}
  %0 = loom.rmsnorm %x, %w : tensor<2x16x64xf32>, tensor<64xf32>
  // expected-remark @below {{sharding rule: ([i, j, k], [k], [k])->([i, j, k]) {i=2, j=16, k=64} need_replication={k}}}
  %1 = loom.layernorm %0, %w, %b : tensor<2x16x64xf32>, tensor<64xf32>, tensor<64xf32>
  return
}

// -----

// Ops without a rule yet are left alone.
func.func @no_rule(%q: tensor<2x16x8x64xf32>, %kv: tensor<2x16x2x64xf32>) {
  %0 = loom.attention %q, %kv, %kv {causal} : tensor<2x16x8x64xf32>, tensor<2x16x2x64xf32>, tensor<2x16x2x64xf32> -> tensor<2x16x8x64xf32>
  return
}
