// The single-rank computation that tp-mlp.tp<N>.mlir and
// tp-mlp-rsag.tp2.mlir shard: an MLP with 8 hidden units, a bias after the
// second matmul, loss = Σ gelu(y)·r.
func.func @forward(%x: tensor<4x5xf32> {loom.input = "x"},
                   %r: tensor<4x5xf32> {loom.input = "r"},
                   %s: tensor<5xf32> {loom.param = "s"},
                   %w1: tensor<8x5xf32> {loom.param = "w1"},
                   %w2: tensor<5x8xf32> {loom.param = "w2"},
                   %b: tensor<5xf32> {loom.param = "b"}) -> tensor<f32> {
  %sb = loom.broadcast %s, [1] : tensor<5xf32> -> tensor<4x5xf32>
  %xs = loom.mul %x, %sb : tensor<4x5xf32>
  %h0 = loom.matmul %xs, %w1 {transpose_rhs} : tensor<4x5xf32>, tensor<8x5xf32> -> tensor<4x8xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<4x8xf32>
  %y0 = loom.matmul %h, %w2 {transpose_rhs} : tensor<4x8xf32>, tensor<5x8xf32> -> tensor<4x5xf32>
  %bb = loom.broadcast %b, [1] : tensor<5xf32> -> tensor<4x5xf32>
  %y = loom.add %y0, %bb : tensor<4x5xf32>
  %z = loom.gelu %y approximate tanh : tensor<4x5xf32>
  %zr = loom.mul %z, %r : tensor<4x5xf32>
  %loss = loom.reduce sum %zr {dims = array<i64: 0, 1>} : tensor<4x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
