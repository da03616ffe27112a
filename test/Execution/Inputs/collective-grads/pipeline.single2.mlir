// The single-rank computation that pipeline.pp2.mlir splits into 2 stages:
// h = gelu(h wₖᵀ) for k = 0..1 from h = x, loss = Σ h·r.
func.func @forward(%x: tensor<3x5xf32> {loom.input = "x"}, %r: tensor<3x5xf32> {loom.input = "r"}, %w0: tensor<5x5xf32> {loom.param = "w0"}, %w1: tensor<5x5xf32> {loom.param = "w1"}) -> tensor<f32> {
  %a0 = loom.matmul %x, %w0 {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %h0 = loom.gelu %a0 approximate tanh : tensor<3x5xf32>
  %a1 = loom.matmul %h0, %w1 {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %h1 = loom.gelu %a1 approximate tanh : tensor<3x5xf32>
  %hr = loom.mul %h1, %r : tensor<3x5xf32>
  %loss = loom.reduce sum %hr {dims = array<i64: 0, 1>} : tensor<3x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
