// The single-rank computation that sp-mlp.tp<N>.mlir shards: batch 2,
// sequence 8, an MLP with 8 hidden units, loss = Σ gelu(y)·r.
func.func @forward(%x: tensor<2x8x5xf32> {loom.input = "x"},
                   %r: tensor<2x8x5xf32> {loom.input = "r"},
                   %g: tensor<5xf32> {loom.param = "g"},
                   %w1: tensor<8x5xf32> {loom.param = "w1"},
                   %w2: tensor<5x8xf32> {loom.param = "w2"}) -> tensor<f32> {
  %gb = loom.broadcast %g, [2] : tensor<5xf32> -> tensor<2x8x5xf32>
  %a = loom.mul %x, %gb : tensor<2x8x5xf32>
  %h0 = loom.matmul %a, %w1 {transpose_rhs} : tensor<2x8x5xf32>, tensor<8x5xf32> -> tensor<2x8x8xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<2x8x8xf32>
  %y = loom.matmul %h, %w2 {transpose_rhs} : tensor<2x8x8xf32>, tensor<5x8xf32> -> tensor<2x8x5xf32>
  %z = loom.gelu %y approximate tanh : tensor<2x8x5xf32>
  %zr = loom.mul %z, %r : tensor<2x8x5xf32>
  %loss = loom.reduce sum %zr {dims = array<i64: 0, 1, 2>} : tensor<2x8x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
