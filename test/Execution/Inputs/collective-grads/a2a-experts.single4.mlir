// The single-rank computation that a2a-experts.ep4.mlir shards: 4 sources
// (dim 0 of x, g, r) of 12 tokens each, 4 experts (dim 0 of w); token block
// j of source s (rows 3j..3j+2) is scaled by g[s] and goes through expert j.
func.func @forward(%x: tensor<4x12x5xf32> {loom.input = "x"},
                   %r: tensor<4x12x4xf32> {loom.input = "r"},
                   %g: tensor<4x5xf32> {loom.param = "g"},
                   %w: tensor<4x4x5xf32> {loom.param = "w"}) -> tensor<f32> {
  %gb = loom.broadcast %g, [0, 2] : tensor<4x5xf32> -> tensor<4x12x5xf32>
  %u = loom.mul %x, %gb : tensor<4x12x5xf32>
  // [source, expert, token, 5] -> [expert, source, token, 5]
  %u4 = loom.reshape %u : tensor<4x12x5xf32> -> tensor<4x4x3x5xf32>
  %ut = loom.transpose %u4, [1, 0, 2, 3] : tensor<4x4x3x5xf32> -> tensor<4x4x3x5xf32>
  %rows = loom.reshape %ut : tensor<4x4x3x5xf32> -> tensor<4x12x5xf32>
  %h0 = loom.matmul %rows, %w {transpose_rhs} : tensor<4x12x5xf32>, tensor<4x4x5xf32> -> tensor<4x12x4xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<4x12x4xf32>
  // [expert, source, token, 4] -> [source, expert, token, 4]
  %h4 = loom.reshape %h : tensor<4x12x4xf32> -> tensor<4x4x3x4xf32>
  %ht = loom.transpose %h4, [1, 0, 2, 3] : tensor<4x4x3x4xf32> -> tensor<4x4x3x4xf32>
  %o = loom.reshape %ht : tensor<4x4x3x4xf32> -> tensor<4x12x4xf32>
  %z = loom.gelu %o approximate tanh : tensor<4x12x4xf32>
  %zr = loom.mul %z, %r : tensor<4x12x4xf32>
  %loss = loom.reduce sum %zr {dims = array<i64: 0, 1, 2>} : tensor<4x12x4xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
