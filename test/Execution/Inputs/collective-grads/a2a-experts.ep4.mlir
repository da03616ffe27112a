// Expert parallelism on 4 ranks, rank r holding expert r (w) and 12 tokens
// (x, scaled by the rank's own g): token block j (rows 3j..3j+2) goes to
// expert j. The first all_to_all sends block j to rank j, which lays the
// blocks it receives side by side (concat_dim 1, in source order); the
// expert runs on each row; the second all_to_all (split_dim 1, concat_dim 0)
// returns each source's rows, blocks in expert order. Each rank's loss is
// its own tokens' share of a2a-experts.single4.mlir's: the ranks' losses
// sum to it.
loom.mesh @world <ep = 4>
func.func @forward(%x: tensor<12x5xf32> {loom.input = "x"},
                   %r: tensor<12x4xf32> {loom.input = "r"},
                   %g: tensor<5xf32> {loom.param = "g"},
                   %w: tensor<4x5xf32> {loom.param = "w"}) -> tensor<f32> {
  %gb = loom.broadcast %g, [1] : tensor<5xf32> -> tensor<12x5xf32>
  %u = loom.mul %x, %gb : tensor<12x5xf32>
  %e = loom.all_to_all %u {mesh = @world, axes = ["ep"], split_dim = 0 : i64, concat_dim = 1 : i64} : tensor<12x5xf32> -> tensor<3x20xf32>
  %rows = loom.reshape %e : tensor<3x20xf32> -> tensor<12x5xf32>
  %h0 = loom.matmul %rows, %w {transpose_rhs} : tensor<12x5xf32>, tensor<4x5xf32> -> tensor<12x4xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<12x4xf32>
  %back = loom.reshape %h : tensor<12x4xf32> -> tensor<3x16xf32>
  %o = loom.all_to_all %back {mesh = @world, axes = ["ep"], split_dim = 1 : i64, concat_dim = 0 : i64} : tensor<3x16xf32> -> tensor<12x4xf32>
  %z = loom.gelu %o approximate tanh : tensor<12x4xf32>
  %zr = loom.mul %z, %r : tensor<12x4xf32>
  %loss = loom.reduce sum %zr {dims = array<i64: 0, 1>} : tensor<12x4xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
