// Megatron sequence parallelism on 2 ranks: rank r holds positions
// [r·4, (r+1)·4) of the sequence (dim 1) of x and of r; the replicated
// scale g acts on them there; all_gather assembles the sequence for the
// tensor-parallel MLP (w1 column-, w2 row-parallel, 4 hidden units each)
// and reduce_scatter sums the partial outputs while handing each rank its
// positions back. Each rank's loss is its positions' share of
// sp-mlp.single.mlir's: the ranks' losses sum to it.
loom.mesh @world <tp = 2>
func.func @forward(%x: tensor<2x4x5xf32> {loom.input = "x"},
                   %r: tensor<2x4x5xf32> {loom.input = "r"},
                   %g: tensor<5xf32> {loom.param = "g"},
                   %w1: tensor<4x5xf32> {loom.param = "w1"},
                   %w2: tensor<5x4xf32> {loom.param = "w2"}) -> tensor<f32> {
  %gb = loom.broadcast %g, [2] : tensor<5xf32> -> tensor<2x4x5xf32>
  %a = loom.mul %x, %gb : tensor<2x4x5xf32>
  %full = loom.all_gather %a {mesh = @world, axes = ["tp"], gather_dim = 1 : i64} : tensor<2x4x5xf32> -> tensor<2x8x5xf32>
  %h0 = loom.matmul %full, %w1 {transpose_rhs} : tensor<2x8x5xf32>, tensor<4x5xf32> -> tensor<2x8x4xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<2x8x4xf32>
  %p = loom.matmul %h, %w2 {transpose_rhs} : tensor<2x8x4xf32>, tensor<5x4xf32> -> tensor<2x8x5xf32>
  %y = loom.reduce_scatter sum %p {mesh = @world, axes = ["tp"], scatter_dim = 1 : i64} : tensor<2x8x5xf32> -> tensor<2x4x5xf32>
  %z = loom.gelu %y approximate tanh : tensor<2x4x5xf32>
  %zr = loom.mul %z, %r : tensor<2x4x5xf32>
  %loss = loom.reduce sum %zr {dims = array<i64: 0, 1, 2>} : tensor<2x4x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
