// RUN: loom-opt %s -split-input-file -loom-print-sharding-rules -verify-diagnostics

// The sharding rule of every op that has one, in Shardy's text form.

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

// Attention: query heads are (key/value head, head in its group), so
// sharding the key/value heads shards whole groups; each query needs all
// keys and all of the head dimension. The queries' positions pass through
// (context parallelism's all-gather form); in the gradient, dk and dv sum
// over them.
func.func @attention(%q: tensor<2x16x8x64xf32>, %kv: tensor<2x16x2x64xf32>) {
  // expected-remark @below {{sharding rule: ([i, j, lm, n], [i, k, l, n], [i, k, l, n])->([i, j, lm, n]) {i=2, j=16, k=16, l=2, m=4, n=64} need_replication={k, m, n}}}
  %0 = loom.attention %q, %kv, %kv {causal} : tensor<2x16x8x64xf32>, tensor<2x16x2x64xf32>, tensor<2x16x2x64xf32> -> tensor<2x16x8x64xf32>
  // expected-remark @below {{sharding rule: ([i, j, lm, n], [i, k, l, n], [i, k, l, n], [i, j, lm, n], [i, j, lm, n])->([i, j, lm, n], [i, k, l, n], [i, k, l, n]) {i=2, j=16, k=16, l=2, m=4, n=64} reduction={j} need_replication={k, m, n}}}
  %1:3 = loom.attention_grad %q, %kv, %kv, %0, %0 {causal} : tensor<2x16x8x64xf32>, tensor<2x16x2x64xf32>, tensor<2x16x2x64xf32>
  return
}

// -----

// Embedding and loss: a vocabulary split over ranks needs the ops' own
// vocab-parallel forms; the loss sums over positions; the embedding's
// gradient sums rows of positions into the table.
func.func @vocab(%t: tensor<100x8xf32>, %ids: tensor<2x4xi32>, %l: tensor<2x4x100xf32>, %dy: tensor<2x4x8xf32>, %dl: tensor<f32>) {
  // expected-remark @below {{sharding rule: ([l, k], [i, j])->([i, j, k]) {i=2, j=4, k=8, l=100} own_partition={l}}}
  %0 = loom.embedding %t, %ids : tensor<100x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
  // expected-remark @below {{sharding rule: ([i, j, k], [i, j])->([]) {i=2, j=4, k=100} reduction={i, j} own_partition={k}}}
  %1 = loom.cross_entropy %l, %ids : tensor<2x4x100xf32>, tensor<2x4xi32> -> tensor<f32>
  // expected-remark @below {{sharding rule: ([i, j, k], [i, j], [])->([i, j, k]) {i=2, j=4, k=100} own_partition={k}}}
  %2 = loom.cross_entropy_grad %l, %ids, %dl : tensor<2x4x100xf32>, tensor<2x4xi32>, tensor<f32>
  // expected-remark @below {{sharding rule: ([i, j, k], [i, j])->([l, k]) {i=2, j=4, k=8, l=100} reduction={i, j} own_partition={l}}}
  %3 = loom.embedding_grad %dy, %ids : tensor<2x4x8xf32>, tensor<2x4xi32> -> tensor<100x8xf32>
  return
}

// -----

// A norm's gradient: the rows pass through to dx and are summed into dw.
func.func @norm_grad(%x: tensor<2x16x64xf32>, %w: tensor<64xf32>) {
  // expected-remark @below {{sharding rule: ([i, j, k], [k], [i, j, k])->([i, j, k], [k]) {i=2, j=16, k=64} reduction={i, j} need_replication={k}}}
  %dx, %dw = loom.rmsnorm_grad %x, %w, %x : tensor<2x16x64xf32>, tensor<64xf32>
  return
}

// -----

// Shape ops: a sliced or joined dimension needs replication, broadcast
// dimensions are the result's own, reduced dimensions are summed (max needs
// them whole).
func.func @shapes(%x: tensor<4x8xf32>, %v: tensor<8xf32>) {
  // expected-remark @below {{sharding rule: ([i, j])->([i, k]) {i=4, j=8, k=3} need_replication={j, k}}}
  %0 = loom.slice %x {offsets = array<i64: 0, 2>, sizes = array<i64: 4, 3>} : tensor<4x8xf32> -> tensor<4x3xf32>
  // expected-remark @below {{sharding rule: ([i, j], [i, k])->([i, l]) {i=4, j=8, k=3, l=11} need_replication={j, k, l}}}
  %1 = loom.concat %x, %0 {dim = 1 : i64} : tensor<4x8xf32>, tensor<4x3xf32> -> tensor<4x11xf32>
  // expected-remark @below {{sharding rule: ([j])->([i, j]) {i=4, j=8}}}
  %2 = loom.broadcast %v, [1] : tensor<8xf32> -> tensor<4x8xf32>
  // expected-remark @below {{sharding rule: ([i, j])->([i]) {i=4, j=8} reduction={j}}}
  %3 = loom.reduce sum %x {dims = array<i64: 1>} : tensor<4x8xf32> -> tensor<4xf32>
  // expected-remark @below {{sharding rule: ([i, j])->([i]) {i=4, j=8} need_replication={j}}}
  %4 = loom.reduce max %x {dims = array<i64: 1>} : tensor<4x8xf32> -> tensor<4xf32>
  return
}

// -----

// AdamW updates each element on its own; the step, learning rate and norm
// are scalars shared by all.
func.func @adamw(%p: tensor<4x8xf32>, %t: tensor<i32>, %lr: tensor<f32>) {
  // expected-remark @below {{sharding rule: ([i, j], [i, j], [i, j], [i, j], [], [], [])->([i, j], [i, j], [i, j]) {i=4, j=8}}}
  %0:3 = loom.adamw %p, %p, %p, %p, %t, %lr, %lr {max_grad_norm = 1.0 : f64} : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<i32>, tensor<f32>, tensor<f32>
  return
}
