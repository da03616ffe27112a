// An output whose name is a path outside the output directory.
func.func @escape(%x: tensor<4xf32> {loom.input = "x"}) -> (tensor<4xf32> {loom.output = "../../escaped"}) {
  %0 = loom.silu %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
