// A tensor-parallel MLP over two ranks (Megatron's column- then row-parallel
// pair): each rank holds half of the hidden units; the partial outputs are
// summed with an all-reduce, and again with reduce-scatter + all-gather.
loom.mesh @world <tp = 2>
func.func @tp_mlp(%x: tensor<8x16xf32> {loom.input = "x"},
                  %w1: tensor<32x16xf32> {loom.param = "w1"},
                  %w2: tensor<16x32xf32> {loom.param = "w2"})
    -> (tensor<8x16xf32> {loom.output = "y"}, tensor<8x16xf32> {loom.output = "y_gathered"}) {
  %h = loom.matmul %x, %w1 {transpose_rhs} : tensor<8x16xf32>, tensor<32x16xf32> -> tensor<8x32xf32>
  %a = loom.gelu %h approximate tanh : tensor<8x32xf32>
  %p = loom.matmul %a, %w2 {transpose_rhs} : tensor<8x32xf32>, tensor<16x32xf32> -> tensor<8x16xf32>
  %y = loom.all_reduce sum %p {mesh = @world, axes = ["tp"]} : tensor<8x16xf32>
  %s = loom.reduce_scatter sum %p {mesh = @world, axes = ["tp"], scatter_dim = 0 : i64} : tensor<8x16xf32> -> tensor<4x16xf32>
  %g = loom.all_gather %s {mesh = @world, axes = ["tp"], gather_dim = 0 : i64} : tensor<4x16xf32> -> tensor<8x16xf32>
  return %y, %g : tensor<8x16xf32>, tensor<8x16xf32>
}
