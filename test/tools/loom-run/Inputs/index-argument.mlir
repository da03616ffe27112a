// A function with an index tensor argument (unused).
func.func @f(%x: tensor<4xf32> {loom.input = "x"},
             %i: tensor<4xindex> {loom.input = "i"}) -> (tensor<4xf32> {loom.output = "y"}) {
  %0 = loom.silu %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
