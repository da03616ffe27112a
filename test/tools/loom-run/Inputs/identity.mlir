// Returns its input and a constant as they are, and their sum.
func.func @identity(%x: tensor<2xf32> {loom.input = "x"})
    -> (tensor<2xf32> {loom.output = "same"}, tensor<2xf32> {loom.output = "c"},
        tensor<2xf32> {loom.output = "sum"}) {
  %c = loom.constant dense<[1.5, -2.0]> : tensor<2xf32>
  %s = loom.add %x, %c : tensor<2xf32>
  return %x, %c, %s : tensor<2xf32>, tensor<2xf32>, tensor<2xf32>
}
