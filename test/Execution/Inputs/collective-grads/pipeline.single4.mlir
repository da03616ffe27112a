// The single-rank computation that pipeline.pp4.mlir splits into 4 stages:
// h = gelu(h wₖᵀ) for k = 0..3 from h = x, loss = Σ h·r.
func.func @forward(%x: tensor<3x5xf32> {loom.input = "x"}, %r: tensor<3x5xf32> {loom.input = "r"}, %w0: tensor<5x5xf32> {loom.param = "w0"}, %w1: tensor<5x5xf32> {loom.param = "w1"}, %w2: tensor<5x5xf32> {loom.param = "w2"}, %w3: tensor<5x5xf32> {loom.param = "w3"}) -> tensor<f32> {
  %a0 = loom.matmul %x, %w0 {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %h0 = loom.gelu %a0 approximate tanh : tensor<3x5xf32>
  %a1 = loom.matmul %h0, %w1 {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %h1 = loom.gelu %a1 approximate tanh : tensor<3x5xf32>
  %a2 = loom.matmul %h1, %w2 {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %h2 = loom.gelu %a2 approximate tanh : tensor<3x5xf32>
  %a3 = loom.matmul %h2, %w3 {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %h3 = loom.gelu %a3 approximate tanh : tensor<3x5xf32>
  %hr = loom.mul %h3, %r : tensor<3x5xf32>
  %loss = loom.reduce sum %hr {dims = array<i64: 0, 1>} : tensor<3x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
