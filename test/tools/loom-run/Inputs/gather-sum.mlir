// Looks up ids on every rank and sums the rows over two ranks.
loom.mesh @world <dp = 2>
func.func @gather_sum(%ids: tensor<4xi32> {loom.input = "ids"},
                      %table: tensor<8x4xf32> {loom.param = "table"})
    -> (tensor<4x4xf32> {loom.output = "sum"}) {
  %rows = loom.embedding %table, %ids : tensor<8x4xf32>, tensor<4xi32> -> tensor<4x4xf32>
  %sum = loom.all_reduce sum %rows {mesh = @world, axes = ["dp"]} : tensor<4x4xf32>
  return %sum : tensor<4x4xf32>
}
