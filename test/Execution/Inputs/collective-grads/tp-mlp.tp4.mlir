// Megatron tensor parallelism on 4 ranks: w1 is column-parallel (rank r
// holds hidden units [r·2, (r+1)·2) as rows), w2 row-parallel (the same
// hidden units as columns); all_reduce sums the partial outputs, and the
// rest (bias b, gelu, the loss) is replicated: every rank computes the same
// loss, the loss of tp-mlp.single.mlir. s scales x before the
// column-parallel matmul (replicated, upstream of the parallel region).
loom.mesh @world <tp = 4>
func.func @forward(%x: tensor<4x5xf32> {loom.input = "x"},
                   %r: tensor<4x5xf32> {loom.input = "r"},
                   %s: tensor<5xf32> {loom.param = "s"},
                   %w1: tensor<2x5xf32> {loom.param = "w1"},
                   %w2: tensor<5x2xf32> {loom.param = "w2"},
                   %b: tensor<5xf32> {loom.param = "b"}) -> tensor<f32> {
  %sb = loom.broadcast %s, [1] : tensor<5xf32> -> tensor<4x5xf32>
  %xs = loom.mul %x, %sb : tensor<4x5xf32>
  %h0 = loom.matmul %xs, %w1 {transpose_rhs} : tensor<4x5xf32>, tensor<2x5xf32> -> tensor<4x2xf32>
  %h = loom.gelu %h0 approximate tanh : tensor<4x2xf32>
  %p = loom.matmul %h, %w2 {transpose_rhs} : tensor<4x2xf32>, tensor<5x2xf32> -> tensor<4x5xf32>
  %y0 = loom.all_reduce sum %p {mesh = @world, axes = ["tp"]} : tensor<4x5xf32>
  %bb = loom.broadcast %b, [1] : tensor<5xf32> -> tensor<4x5xf32>
  %y = loom.add %y0, %bb : tensor<4x5xf32>
  %z = loom.gelu %y approximate tanh : tensor<4x5xf32>
  %zr = loom.mul %z, %r : tensor<4x5xf32>
  %loss = loom.reduce sum %zr {dims = array<i64: 0, 1>} : tensor<4x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
