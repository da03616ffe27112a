// tp-mlp.tp2.mlir with its all_reduce written as reduce_scatter then
// all_gather (dim 0): the same forward, every rank computing the same loss,
// the loss of tp-mlp.single.mlir. But where all_reduce's rule is the
// identity (the step's objective is that one loss), these two rules are the
// transposes of their forwards: the objective is the sum of the ranks'
// losses, 2 times the single-rank loss, and so are the gradients.
loom.mesh @world <tp = 2>
func.func @forward(%x: tensor<4x5xf32> {loom.input = "x"},
                   %r: tensor<4x5xf32> {loom.input = "r"},
                   %s: tensor<5xf32> {loom.param = "s"},
                   %w1: tensor<4x5xf32> {loom.param = "w1"},
                   %w2: tensor<5x4xf32> {loom.param = "w2"},
                   %b: tensor<5xf32> {loom.param = "b"}) -> tensor<f32> {
  %sb = loom.broadcast %s, [1] : tensor<5xf32> -> tensor<4x5xf32>
  %xs = loom.mul %x, %sb : tensor<4x5xf32>
  %h0 = loom.matmul %xs, %w1 {transpose_rhs} : tensor<4x5xf32>, tensor<4x5xf32> -> tensor<4x4xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<4x4xf32>
  %p = loom.matmul %h, %w2 {transpose_rhs} : tensor<4x4xf32>, tensor<5x4xf32> -> tensor<4x5xf32>
  %ps = loom.reduce_scatter sum %p {mesh = @world, axes = ["tp"], scatter_dim = 0 : i64} : tensor<4x5xf32> -> tensor<2x5xf32>
  %y0 = loom.all_gather %ps {mesh = @world, axes = ["tp"], gather_dim = 0 : i64} : tensor<2x5xf32> -> tensor<4x5xf32>
  %bb = loom.broadcast %b, [1] : tensor<5xf32> -> tensor<4x5xf32>
  %y = loom.add %y0, %bb : tensor<4x5xf32>
  %z = loom.gelu %y approximate tanh : tensor<4x5xf32>
  %zr = loom.mul %z, %r : tensor<4x5xf32>
  %loss = loom.reduce sum %zr {dims = array<i64: 0, 1>} : tensor<4x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
