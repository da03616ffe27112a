// Three ranks that all-reduce a vector, step after step: the program of the
// fault tests, which stop or kill its ranks and their launcher while it runs.
loom.mesh @world <dp = 3>
func.func @sum3(%x: tensor<4xf32> {loom.input = "x"})
    -> (tensor<4xf32> {loom.output = "sum"}) {
  %s = loom.all_reduce sum %x {mesh = @world, axes = ["dp"]} : tensor<4xf32>
  return %s : tensor<4xf32>
}
