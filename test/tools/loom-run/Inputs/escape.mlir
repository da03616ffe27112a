// An output whose name the test rewrites, in the program file, into the
// same-length "../escape": a name that would write outside --outputs.
func.func @escape(%x: tensor<2xf32> {loom.input = "x"})
    -> (tensor<2xf32> {loom.output = "zz_escape"}) {
  %y = loom.scale %x, 2.0 : tensor<2xf32>
  return %y : tensor<2xf32>
}
