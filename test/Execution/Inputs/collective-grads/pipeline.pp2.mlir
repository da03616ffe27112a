// A 2-stage pipeline, stage r on rank r with its own w: each stage takes
// what the previous one sends (zeros on rank 0, which has no sender) plus
// its x (the data on rank 0, zeros on the others), applies gelu(· wᵀ) and
// sends the result on (to nobody from the last rank). A stage's step must
// return a loss too: each rank's is Σ h·r, with r zero on every rank but
// the last, so that the other stages' losses are constant zeros that
// contribute nothing; the last stage's is pipeline.single2.mlir's loss.
loom.mesh @world <pp = 2>
func.func @forward(%x: tensor<3x5xf32> {loom.input = "x"},
                   %r: tensor<3x5xf32> {loom.input = "r"},
                   %w: tensor<5x5xf32> {loom.param = "w"}) -> tensor<f32> {
  %prev = loom.recv {mesh = @world, axes = ["pp"], peer_shift = -1 : i64} : tensor<3x5xf32>
  %in = loom.add %prev, %x : tensor<3x5xf32>
  %h0 = loom.matmul %in, %w {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<3x5xf32>
  loom.send %h {mesh = @world, axes = ["pp"], peer_shift = 1 : i64} : tensor<3x5xf32>
  %hr = loom.mul %h, %r : tensor<3x5xf32>
  %loss = loom.reduce sum %hr {dims = array<i64: 0, 1>} : tensor<3x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
