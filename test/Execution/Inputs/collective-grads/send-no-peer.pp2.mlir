// Every rank a last pipeline stage: a send to the rank 2 away, which no
// rank of 2 has, does nothing, and its rule (a recv from that peer) must
// give zeros: each rank's step is send-no-peer.single.mlir's, whose loss
// and gradients every rank must reproduce.
loom.mesh @world <pp = 2>
func.func @forward(%x: tensor<3x5xf32> {loom.input = "x"},
                   %r: tensor<3x5xf32> {loom.input = "r"},
                   %w: tensor<5x5xf32> {loom.param = "w"}) -> tensor<f32> {
  %h0 = loom.matmul %x, %w {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<3x5xf32>
  loom.send %h {mesh = @world, axes = ["pp"], peer_shift = 2 : i64} : tensor<3x5xf32>
  %hr = loom.mul %h, %r : tensor<3x5xf32>
  %loss = loom.reduce sum %hr {dims = array<i64: 0, 1>} : tensor<3x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
