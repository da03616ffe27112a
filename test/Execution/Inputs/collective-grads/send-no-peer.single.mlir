// send-no-peer.pp2.mlir without its send (to nobody).
func.func @forward(%x: tensor<3x5xf32> {loom.input = "x"},
                   %r: tensor<3x5xf32> {loom.input = "r"},
                   %w: tensor<5x5xf32> {loom.param = "w"}) -> tensor<f32> {
  %h0 = loom.matmul %x, %w {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<3x5xf32>
  %hr = loom.mul %h, %r : tensor<3x5xf32>
  %loss = loom.reduce sum %hr {dims = array<i64: 0, 1>} : tensor<3x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
